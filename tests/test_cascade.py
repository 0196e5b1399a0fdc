"""The cascade POMDP: exact against dynamic programming, and on real rows."""

import itertools

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import automix_jax as am
from automix_jax import _cascade as cascade


def _random_obs(n, m, seed):
    rng = np.random.default_rng(seed)
    skill = np.linspace(0.3, 0.9, m)
    scores = (rng.random((n, m)) < skill).astype(float)
    conf = np.clip(0.35 * scores + 0.65 * rng.random((n, m)), 0, 1)
    costs = np.cumsum(np.geomspace(1, 40, m))
    return am.Observations(scores, conf, costs, 0.5)


def _exact_values(est, costs, verify, lam, bins):
    """Dynamic programming over every observation history, by enumeration."""
    prior = np.asarray(est.prior, np.float64)
    obs_model = np.asarray(est.observation, np.float64)  # [M, Q, B]
    level_value = np.asarray(est.level_value, np.float64)
    m = obs_model.shape[0]
    levels = level_value.shape[0]
    qv = np.array(list(itertools.product(range(levels), repeat=m)))
    price = np.asarray(costs, np.float64) + np.where(
        np.arange(m) < m - 1, np.asarray(verify, np.float64), 0.0
    )

    def posterior(history):
        weight = prior.copy()
        for j, o in enumerate(history):
            weight = weight * obs_model[j, :, o]
        return weight / weight.sum()

    def value(history):
        p = len(history) - 1
        belief = posterior(history)
        answer = belief @ level_value[qv[:, p]]
        if p == m - 1:
            return answer
        # P(next bin | history) under the belief.
        nxt = belief @ obs_model[p + 1]
        go = -lam * price[p + 1] + sum(
            nxt[o] * value((*history, o)) for o in range(bins)
        )
        return max(answer, go)

    out = []
    for length in range(1, m):
        for history in itertools.product(range(bins), repeat=length):
            out.append(value(history))
    return np.array(out)


@pytest.mark.parametrize("m", [2, 3])
def test_point_based_values_equal_exact_dynamic_programming(m):
    bins = 4
    with jax.enable_x64(True):
        obs = _random_obs(300, m, seed=m)
        lams = np.array([0.01, 0.2, 1.0, 5.0])
        tables, values = cascade.sweep_tables(obs, lams, bins)
        est = cascade.estimate(obs, bins)
        costs = np.asarray(obs.costs).mean(0)
        scale = 1.0 / (costs[-1] - costs[0])
        for k, lam in enumerate(lams):
            expected = _exact_values(
                est, costs, np.asarray(obs.verifier_costs), lam * scale, bins
            )
            np.testing.assert_allclose(np.asarray(values[k]), expected, atol=1e-6)


def test_belief_points_are_on_the_simplex():
    obs = _random_obs(200, 3, seed=1)
    beliefs = jax.jit(lambda o: cascade.history_beliefs(cascade.estimate(o, 5)))(obs)
    beliefs = np.asarray(beliefs)
    assert np.all(beliefs >= 0)
    np.testing.assert_allclose(beliefs.sum(-1), 1.0, atol=1e-5)


def test_smoothing_keeps_empty_bins_possible():
    obs = _random_obs(50, 2, seed=3)
    est = jax.jit(lambda o: cascade.estimate(o, 16, smoothing=0.5))(obs)
    assert np.all(np.asarray(est.observation) > 0)


@given(st.integers(0, 10_000))
def test_mean_cost_never_rises_as_lambda_rises(seed):
    obs = _random_obs(120, 2, seed)
    lams = cascade.lambda_grid(12)
    tables, _ = cascade.sweep_tables(obs, lams, 4)
    policy = cascade.CascadePomdp(bins=4)
    costs = np.asarray(am.score_grid(policy, tables, obs).cost)
    assert np.all(np.diff(costs) <= 1e-5)


def test_pomdp_in_the_protocol_on_three_real_models():
    data = am.load_jsonl(
        am.demo_path("date"), ["llama13b", "gpt35", "gpt4"], costs=[1, 10, 50]
    )
    report = am.evaluate(data, ["pomdp", "chained-threshold"], seeds=2)
    out = {r["policy"]: r for r in report.to_json()["results"]}
    pomdp = out["pomdp"]
    assert pomdp["ibc_lift"] is not None
    params = pomdp["params"][0]
    assert set(params) == {"lambda", "escalate"}
    assert len(params["escalate"]) == 8 + 64
    # The reported figures are those of the reported table, routed again here.
    val = data.split_rows("val").observations
    table = np.asarray([params["lambda"], *params["escalate"]], np.float32)
    summary = am.summarize(cascade.CascadePomdp(), table, val)
    assert float(summary.cost) == pytest.approx(pomdp["cost"]["min"], rel=1e-5)


@given(st.integers(1, 40), st.data())
def test_confidence_bins_match_a_search_over_the_edges(bins, data):
    k = data.draw(st.integers(0, bins))
    edge = np.float32(k / bins)
    values = np.array(
        [
            edge,
            np.nextafter(edge, np.float32(2)),
            np.nextafter(edge, np.float32(-1)),
            data.draw(st.floats(0, 1, width=32)),
        ],
        dtype=np.float32,
    )
    values = np.clip(values, 0, 1)
    expected = np.searchsorted(am.bin_edges(bins)[1:-1], values, side="right")
    got = np.asarray(cascade.confidence_bins(jax.numpy.asarray(values), bins))
    np.testing.assert_array_equal(got, expected)
