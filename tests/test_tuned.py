"""Tuned results: save with their spec, reload, route with identical decisions."""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

import automix_jax as ax


@pytest.fixture(scope="module")
def gsm8k(shared_dir):
    path = os.path.join(shared_dir, "data", "automix-format", "gsm8k.jsonl")
    return ax.load(path, ["llama13b", "gpt4"])


@pytest.fixture(scope="module")
def date(shared_dir):
    path = os.path.join(shared_dir, "data", "automix-format", "date.jsonl")
    return ax.load(path, ["llama13b", "gpt35", "gpt4"], costs=[1, 10, 50])


def _round_trip(tmp_path, tuned, name="tuned.json"):
    path = tmp_path / name
    tuned.save(path)
    return ax.load_tuned(path), json.loads(path.read_text())


def test_threshold_spec_reloads_with_identical_decisions(tmp_path, gsm8k):
    spec = ax.load_spec("policies/automix-threshold.toml")
    tuned = ax.fit_spec(gsm8k, spec)
    loaded, raw = _round_trip(tmp_path, tuned)
    assert raw["spec"]["policy"] == spec.to_dict()
    assert raw["fingerprint"] == ax.fingerprint(gsm8k.split_rows("train"))
    assert raw["version"] == ax.__version__
    val = gsm8k.split_rows("val")
    before = tuned.route(val.observations)
    after = loaded.route(val.observations)
    np.testing.assert_array_equal(before, after)
    # Independently: the library's threshold rule at the saved parameter.
    t = np.float32(raw["params"])
    conf = np.asarray(val.observations.confidences)[:, 0]
    np.testing.assert_array_equal(after, (conf <= t).astype(np.int32))
    # And the library's own fit picks the same threshold.
    assert ax.fit(gsm8k, "threshold").params == raw["params"]


def test_override_best_of_reloads_with_identical_decisions(tmp_path, gsm8k):
    spec = ax.OverrideSpec(
        answers=["18"],
        policy=ax.BestOfSpec(
            name="bo", members=[ax.ThresholdSpec(), ax.DoubleThresholdSpec()]
        ),
    )
    tuned = ax.fit_spec(gsm8k, spec)
    loaded, raw = _round_trip(tmp_path, tuned)
    assert raw["escalate_answers"] == ["18"]
    assert raw["policy"] in ("bo/threshold", "bo/double-threshold")
    val = gsm8k.split_rows("val")
    decisions = loaded.route_data(val)
    np.testing.assert_array_equal(decisions, tuned.route_data(val))
    # Every query whose first answer is "18" goes past the small model.
    forced = val.answers[:, 0] == "18"
    assert forced.any()
    assert (decisions[forced] == 1).all()
    # The live decision agrees with the bulk one, query by query.
    conf = np.asarray(val.observations.confidences)
    for i in range(20):
        live = loaded.escalate(0, [float(conf[i, 0])], val.answers[i, 0] or "")
        assert live == bool(decisions[i] > 0)


def test_three_model_chain_reloads(tmp_path, date):
    spec = ax.load_spec("policies/cascade-3.toml")
    tuned = ax.fit_spec(date, spec, bins=4)
    loaded, raw = _round_trip(tmp_path, tuned)
    assert len(raw["params"]) == 2
    val = date.split_rows("val")
    decisions = loaded.route(val.observations)
    np.testing.assert_array_equal(decisions, tuned.route(val.observations))
    params = jnp.asarray(raw["params"], jnp.float32)
    direct = ax.route(ax.ChainedThreshold(), params, val.observations)
    np.testing.assert_array_equal(decisions, np.asarray(direct))
