"""The AutoMix protocol on real rows, checked against independent formulas."""

import json
import os

import numpy as np
import pytest

import automix_jax as am


@pytest.fixture(scope="module")
def gsm8k():
    return am.load_jsonl(am.demo_path("gsm8k"), ["llama13b", "gpt4"])


def _reference_threshold_lifts(scores, conf, thresholds, costs=(1, 50), verify=1):
    """The AutoMix reference's formulas, written out in NumPy (one candidate each).

    Route when conf <= t; mean cost = C_S + routed share * C_L + verifier cost;
    slopes measured from (C_S, P_S), baseline slope (P_L - P_S) / (C_L - C_S).
    """
    p_s, p_l = scores[:, 0].mean(), scores[:, 1].mean()
    base = (p_l - p_s) / (costs[1] - costs[0])
    lifts = []
    for t in thresholds:
        routed = conf <= t
        perf = np.where(routed, scores[:, 1], scores[:, 0]).mean()
        cost = costs[0] + routed.mean() * costs[1] + verify
        lifts.append(((perf - p_s) / (cost - costs[0]) - base) / base)
    return np.array(lifts)


def test_grid_objective_matches_the_reference_formulas(gsm8k):
    train = gsm8k.split_rows("train").observations
    grid = am.Threshold().grid(8, 2)
    tuned = am.tune(am.Threshold(), grid, train)
    expected = _reference_threshold_lifts(
        np.asarray(train.scores, np.float64), np.asarray(train.confidences)[:, 0], grid
    )
    np.testing.assert_allclose(np.asarray(tuned.objective), expected, rtol=1e-4)
    assert int(tuned.index) == int(np.argmax(expected))


@pytest.fixture(scope="module")
def report(gsm8k):
    return am.evaluate(gsm8k, seeds=3, train_size=150)


def test_seed_statistics_are_over_the_per_seed_figures(report, gsm8k):
    result = {r.policy: r for r in report.results}["threshold"]
    out = {r["policy"]: r for r in report.to_json()["results"]}["threshold"]
    assert out["ibc_lift"]["mean"] == pytest.approx(float(np.mean(result.lift)))
    assert out["ibc_lift"]["max"] == pytest.approx(float(np.max(result.lift)))
    # Re-tune seed 0 by hand on its sample and evaluate on val.
    train = gsm8k.split_rows("train")
    rows = np.random.default_rng(0).permutation(len(train))[:150]
    grid = am.Threshold().grid(8, 2)
    tuned = am.tune(am.Threshold(), grid, train.observations[rows])
    val = gsm8k.split_rows("val").observations
    summary = am.summarize(am.Threshold(), grid[int(tuned.index)], val)
    assert float(result.cost[0]) == pytest.approx(float(summary.cost))
    assert result.params[0] == pytest.approx(float(grid[int(tuned.index)]))


def test_report_json_has_the_documented_shape(report):
    out = json.loads(json.dumps(report.to_json()))
    assert set(out) >= {
        "data",
        "models",
        "costs",
        "verifier_cost",
        "baseline",
        "results",
    }
    assert out["models"] == ["llama13b", "gpt4"]
    assert len(out["baseline"]["performance"]) == 2
    names = [r["policy"] for r in out["results"]]
    assert names == list(am.DEFAULT_POLICIES)
    for r in out["results"]:
        assert set(r) >= {"policy", "ibc_lift", "cost", "performance", "params"}
        assert len(r["params"]) == 3


def test_best_of_takes_the_best_train_family_per_seed(report):
    results = {r.policy: r for r in report.results}
    best = results["best-of"]
    for s in range(3):
        family = best.families[s]
        assert best.train_lift[s] == pytest.approx(
            max(
                results[f].train_lift[s]
                for f in ("threshold", "double-threshold", "triple-threshold")
            )
        )
        assert best.cost[s] == pytest.approx(results[family].cost[s])


def test_always_large_has_zero_lift_and_oracle_beats_the_grid(report):
    out = {r["policy"]: r for r in report.to_json()["results"]}
    assert out["always-large"]["ibc_lift"]["mean"] == pytest.approx(0.0, abs=1e-5)
    assert out["always-small"]["ibc_lift"] is None
    assert out["oracle"]["ibc_lift"]["mean"] > out["threshold"]["ibc_lift"]["mean"]


def test_train_size_is_capped_with_a_note(gsm8k):
    report = am.evaluate(gsm8k, ["threshold"], seeds=2, train_size=5000)
    assert report.train_size == 200
    assert any("train_size 5000" in n for n in report.notes)


def test_cost_range_with_no_candidate_is_an_error(gsm8k):
    with pytest.raises(am.DegenerateError, match="widen the cost range"):
        am.evaluate(gsm8k, ["threshold"], seeds=2, cost_range=(1000.0, 2000.0))


def test_cost_range_keeps_the_choice_in_range(gsm8k):
    report = am.evaluate(gsm8k, ["threshold"], seeds=2, cost_range=(2.0, 20.0))
    result = report.results[0]
    grid = am.Threshold().grid(8, 2)
    train = gsm8k.split_rows("train").observations
    costs = np.asarray(am.score_grid(am.Threshold(), grid, train).cost)
    chosen = [list(grid).index(np.float32(p)) for p in result.params]
    assert all(2.0 <= costs[i] <= 20.0 for i in chosen)


def test_fit_save_load_routes_identically(gsm8k, tmp_path):
    tuned = am.fit(gsm8k, "double-threshold")
    path = os.path.join(tmp_path, "tuned.json")
    tuned.save(path)
    again = am.load_tuned(path)
    obs = gsm8k.split_rows("val").observations
    np.testing.assert_array_equal(again.route(obs), tuned.route(obs))


def test_equal_objectives_go_to_the_cheapest_candidate():
    # The large model is never better: every escalating candidate has slope 0, the
    # same as never escalating, so the cheapest (route none) must be chosen.
    scores = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    conf = np.array([[0.1, 1.0], [0.4, 1.0], [0.6, 1.0], [0.9, 1.0]])
    obs = am.Observations(scores, conf, [1.0, 50.0], 1.0)
    grid = am.Threshold().grid(4, 2)
    tuned = am.tune(am.Threshold(), grid, obs)
    costs = np.asarray(tuned.summary.cost)
    assert float(costs[int(tuned.index)]) == costs.min()


def test_json_output_is_strict_when_figures_are_undefined(cases_dir, capsys):
    from automix_jax.cli import main

    path = os.path.join(cases_dir, "large-worse.jsonl")
    assert (
        main(
            [
                "evaluate",
                "--data",
                path,
                "--seeds",
                "2",
                "--policy",
                "threshold",
                "--policy",
                "always-large",
                "--json",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    out = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    for r in out["results"]:
        assert r["ibc_lift"] is None and r["gap_recovered"] is None
