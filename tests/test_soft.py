"""Soft policies: values, gradients, hard agreement, annealed tuning and budgets."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import automix_jax as aj
from automix_jax import _soft

GSM8K = aj.demo_path("gsm8k")


@functools.cache
def gsm8k():
    data = aj.load_jsonl(GSM8K, ["llama13b", "gpt4"])
    return data.split_rows("train").observations, data.split_rows("val").observations


def small_obs(m=3, n=6, seed=0):
    rng = np.random.default_rng(seed)
    costs = np.sort(rng.uniform(1, 20, size=m)).astype(np.float32)
    return aj.Observations(
        rng.integers(0, 2, size=(n, m)).astype(np.float32),
        rng.uniform(size=(n, m)).astype(np.float32),
        costs,
        rng.uniform(0, 2, size=m).astype(np.float32),
    )


def test_expected_summary_by_hand():
    # One query, two models; escalation probability sigmoid((0.5 - 0.3) / 0.1).
    obs = aj.Observations([[0.0, 1.0]], [[0.3, 1.0]], [2.0, 10.0], [1.0, 0.0])
    e = 1.0 / (1.0 + np.exp(-2.0))
    out = _soft.expected_summary(_soft.SoftThreshold(), 0.5, obs, 0.1)
    # Stop at 0: model 0 plus its verification (3); stop at 1: 2 + 1 + 10 = 13.
    np.testing.assert_allclose(out.cost, (1 - e) * 3.0 + e * 13.0, rtol=1e-6)
    np.testing.assert_allclose(out.performance, e, rtol=1e-6)


def test_stop_probabilities_three_models_by_hand():
    pi = _soft.stop_probabilities(jnp.array([0.5, 0.25, 0.0]))
    np.testing.assert_allclose(pi, [0.5, 0.375, 0.125])


def test_forced_rows_always_escalate():
    probs = _soft.escalation_probabilities(
        jnp.array([[-50.0, 0.0], [-50.0, 0.0]]), jnp.array([True, False]), 0.1
    )
    np.testing.assert_allclose(probs[:, 0], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(probs[:, 1], [0.0, 0.0])


@pytest.mark.parametrize(
    "policy, params",
    [
        (_soft.SoftThreshold(), jnp.float32(0.4)),
        (_soft.SoftCascade(), jnp.array([0.4, 0.6])),
        (_soft.SoftBands(), jnp.array([[0.2, 0.7]])),
    ],
)
def test_gradients_match_finite_differences(policy, params):
    obs = small_obs()

    def f(params, temperature, costs, lam):
        o = aj.Observations(obs.scores, obs.confidences, costs, obs.verifier_costs)
        s = _soft.expected_summary(policy, params, o, temperature)
        # The trade-off objective, so the check covers lambda too.
        return s.performance - lam * s.cost, s.cost

    args = (params, jnp.float32(0.2), obs.costs, jnp.float32(0.01))
    check_grads(
        jax.jit(f), args, order=1, modes=("fwd", "rev"), eps=1e-3, atol=2e-2, rtol=2e-2
    )


@pytest.mark.parametrize("jit", [True, False])
def test_hard_summary_matches_core_summarize(jit):
    obs = small_obs(n=40, seed=1)
    cases = [
        (_soft.SoftThreshold(), aj.Threshold(), jnp.float32(0.5)),
        (_soft.SoftCascade(), aj.ChainedThreshold(), jnp.array([0.6, 0.3])),
        (_soft.SoftBands(), aj.Bands(), jnp.array([[0.1, 0.4], [0.8, 2.0]])),
    ]
    hard = jax.jit(_soft.hard_summary, static_argnums=0) if jit else _soft.hard_summary
    for soft, core, params in cases:
        mine = hard(soft, params, obs)
        theirs = aj.summarize(core, params, obs)
        np.testing.assert_array_equal(mine.cost, theirs.cost)
        np.testing.assert_array_equal(mine.performance, theirs.performance)
        # And the soft policy is the hard one in the limit T -> 0.
        near = _soft.expected_summary(soft, params, obs, 1e-6)
        np.testing.assert_allclose(near.cost, theirs.cost, rtol=1e-4)


@jax.jit
def _curve_and_grid(obs):
    curve = _soft.threshold_curve(obs)
    grid = jax.vmap(lambda t: aj.summarize(aj.Threshold(), t, obs))(curve.threshold)
    return curve, grid


@settings(max_examples=10, deadline=None)
@given(st.integers(2, 3), st.integers(0, 10_000))
def test_threshold_curve_matches_summarize(m, seed):
    # A fixed n keeps one compile per M; the values vary.
    obs = small_obs(m=m, n=24, seed=seed)
    flags = np.random.default_rng(seed).uniform(size=24) < 0.2
    obs = aj.Observations(
        obs.scores, obs.confidences, obs.costs, obs.verifier_costs, flags
    )
    curve, grid = _curve_and_grid(obs)
    np.testing.assert_allclose(curve.summary.cost, grid.cost, rtol=1e-5)
    np.testing.assert_allclose(curve.summary.performance, grid.performance, atol=1e-6)
    # Cost does not fall as the threshold rises.
    assert np.all(np.diff(np.asarray(curve.summary.cost)) >= -1e-4)


def test_annealed_threshold_reaches_grid_on_gsm8k_10_seeds():
    train, val = gsm8k()
    tuned, _, val_lift = _soft.tune_seeds(
        _soft.SoftThreshold(),
        train,
        val,
        seeds=10,
        train_size=100,
        config=_soft.TrainConfig(steps=200),
    )
    idx = _soft.sample_rows(train.num_queries, 100, 10, 0)
    grid = aj.Threshold().grid(8, 2)
    for s in range(10):
        best = aj.tune(aj.Threshold(), grid, train[idx[s]])
        grid_lift = float(best.objective[best.index])
        assert float(tuned.objective[s]) >= grid_lift - 0.005
        # The reported objective is the hard lift of the reported threshold.
        hard = aj.summarize(aj.Threshold(), tuned.params[s], train[idx[s]])
        base = aj.baseline(train[idx[s]].scores, train[idx[s]].costs)
        lift = aj.ibc_lift(hard, base, num_rows=100)
        np.testing.assert_allclose(lift.lift, tuned.objective[s], rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(val_lift.lift)))


def test_budget_sweep_meets_every_budget():
    train, _ = gsm8k()
    # Every cascade pays the small model and its verification: 1 + 1 = 2, so
    # the first budget cannot be met; the others lie between 2 and 50.
    budgets = jnp.array([1.5, 3.0, 8.0, 15.0, 25.0, 40.0, 50.0])
    out = _soft.budget_sweep(
        _soft.SoftThreshold(), train, budgets, config=_soft.TrainConfig(steps=150)
    )
    np.testing.assert_array_equal(out.met, [False] + [True] * 6)
    hard = jax.vmap(lambda t: aj.summarize(aj.Threshold(), t, train))(out.params)
    assert np.all(np.asarray(hard.cost)[1:] <= np.asarray(budgets)[1:] * 1.01)
    np.testing.assert_allclose(hard.cost, out.summary.cost)
    # More budget buys no less quality here (the curve rises on these rows).
    assert np.all(np.diff(np.asarray(hard.performance)[1:]) >= -0.02)


def test_training_step_compiles_once_per_shape():
    chex.clear_trace_counter()
    config = _soft.TrainConfig(steps=7)
    policy = _soft.SoftThreshold()

    def wrap(step):
        return chex.assert_max_traces(step, n=2)

    @jax.jit
    def run(params, obs):
        return _soft._fit(policy, params, obs, obs.confidences, None, config, wrap)

    for seed in range(3):  # same shape, other values: no new trace
        run(jnp.float32(0.3 + 0.1 * seed), small_obs(n=8, seed=seed))
    run(jnp.float32(0.3), small_obs(n=9))  # a new shape: one more
    with pytest.raises(AssertionError, match="traced > 2 times"):
        run(jnp.float32(0.3), small_obs(n=10))


def test_tuned_gradient_matches_finite_differences():
    obs = small_obs(m=2, n=30, seed=3)
    config = _soft.TrainConfig(steps=10, temperature_end=0.05)
    grad_fn = functools.partial(
        _soft.tuned_lift_gradient,
        _soft.SoftThreshold(),
        jnp.float32(0.5),
        obs,
        config=config,
    )
    value, grad = grad_fn(jnp.float32(20.0))
    h = 0.5
    up, _ = grad_fn(jnp.float32(20.0 + h))
    down, _ = grad_fn(jnp.float32(20.0 - h))
    np.testing.assert_allclose(grad, (up - down) / (2 * h), rtol=0.1, atol=1e-3)
    assert np.isfinite(value)


def test_soft_policy_saves_and_routes_like_threshold(tmp_path):
    train, _ = gsm8k()
    threshold = np.float32(0.3749)
    tuned = aj.TunedPolicy(
        policy="soft-threshold",
        params=float(threshold),
        models=("llama13b", "gpt4"),
        costs=(1.0, 50.0),
        verifier_cost=(1.0, 1.0),
    )
    tuned.save(tmp_path / "p.json")
    loaded = aj.load_tuned(tmp_path / "p.json")
    np.testing.assert_array_equal(
        loaded.route(train), aj.route(aj.Threshold(), jnp.asarray(threshold), train)
    )


def test_config_errors_name_the_argument():
    with pytest.raises(aj.PolicyError, match="temperature_end"):
        _soft.TrainConfig(temperature_end=1.0, temperature_start=0.1)
    with pytest.raises(aj.PolicyError, match="steps"):
        _soft.TrainConfig(steps=0)
