"""`automix-jax route`: decisions per row, in order, from a saved or fresh tuning."""

import json

import numpy as np
import pytest

import automix_jax as am
from automix_jax.cli import main

MODELS = ["small", "large"]


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(7)
    n = 600
    scores = rng.integers(0, 2, (n, 2)).astype(float)
    conf = rng.integers(0, 9, (n, 2)) / 8
    train = tmp_path / "train.jsonl"
    logs = tmp_path / "logs.jsonl"
    with open(train, "w") as t, open(logs, "w") as g:
        for i in range(n):
            row = {
                "id": i,
                "small_f1": scores[i, 0],
                "large_f1": scores[i, 1],
                "p_ver_small": conf[i, 0],
                "p_ver_large": conf[i, 1],
                "split": "train",
            }
            t.write(json.dumps(row) + "\n")
            g.write(json.dumps({"id": f"log{i}", "p_ver_small": conf[i, 0]}) + "\n")
    return tmp_path, str(train), str(logs), scores, conf


def _read(path):
    return [json.loads(line) for line in open(path)]


def test_route_with_a_saved_policy(files, capsys):
    folder, train, logs, scores, conf = files
    data = am.load(train, MODELS)
    tuned = am.fit(data, "threshold")
    saved = str(folder / "tuned.json")
    tuned.save(saved)
    out = str(folder / "out.jsonl")
    argv = ["route", "--policy", saved, "--input", logs, "--out", out]
    assert main([*argv, "--chunk-size", "128"]) == 0
    rows = _read(out)
    # Independent expectation: the in-memory router on the same confidences.
    conf_only = conf.copy()
    conf_only[:, 1] = 1.0
    obs = am.Observations(
        np.zeros_like(scores), conf_only, np.array(tuned.costs), tuned.verifier_cost
    )
    stop, cost, _ = tuned.outcome(obs)
    assert [r["id"] for r in rows] == [f"log{i}" for i in range(600)]
    assert [r["stop"] for r in rows] == stop.tolist()
    assert [r["model"] for r in rows] == [MODELS[s] for s in stop]
    np.testing.assert_array_equal(np.float32([r["cost"] for r in rows]), cost)
    printed = capsys.readouterr()
    assert "routed 600 rows" in printed.out and "rows/s" in printed.out
    assert printed.err == ""  # no progress when stderr is not a terminal


def test_route_tunes_a_policy_name_first(files, capsys):
    folder, train, logs, *_ = files
    out, saved = str(folder / "out.jsonl"), str(folder / "t.json")
    argv = ["route", "--policy", "double-threshold", "--train", train]
    argv += ["--models", "small,large", "--input", logs, "--out", out]
    assert main([*argv, "--save-policy", saved, "--progress"]) == 0
    tuned = am.fit(am.load(train, MODELS), "double-threshold")
    assert am.load_tuned(saved).params == tuned.params
    conf = np.array([[r["p_ver_small"], 1.0] for r in _read(logs)])
    obs = am.Observations(np.zeros_like(conf), conf, np.array([1.0, 50.0]))
    assert [r["stop"] for r in _read(out)] == tuned.route(obs).tolist()
    assert "rows/s" in capsys.readouterr().err


def test_route_per_model_costs_from_flags(files):
    folder, train, logs, *_ = files
    saved = str(folder / "tuned.json")
    am.fit(am.load(train, MODELS), "always-large").save(saved)
    out = str(folder / "out.jsonl")
    argv = ["route", "--policy", saved, "--input", logs, "--out", out]
    assert main([*argv, "--costs", "2,30"]) == 0
    assert {r["cost"] for r in _read(out)} == {30.0}


def test_policy_name_without_training_data_is_one_line_error(files, capsys):
    folder, _, logs, *_ = files
    argv = ["route", "--policy", "threshold", "--input", logs, "--out", "-"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--train DATA" in err


def test_bad_row_names_file_and_line(files, capsys):
    folder, train, logs, *_ = files
    saved = str(folder / "tuned.json")
    am.fit(am.load(train, MODELS), "threshold").save(saved)
    with open(logs, "a") as handle:
        handle.write('{"id": "x", "p_ver_small": "high"}\n')
    out = str(folder / "out.jsonl")
    assert main(["route", "--policy", saved, "--input", logs, "--out", out]) == 2
    err = capsys.readouterr().err
    assert "logs.jsonl:601" in err and "'p_ver_small'" in err and "not a number" in err
