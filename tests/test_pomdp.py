"""Point-based value iteration against published values and exact DP."""

import itertools

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automix_jax._errors import AutomixError
from automix_jax._pomdp import (
    Pomdp,
    _backup_one,
    _backup_sparse,
    _dynamics,
    backup,
    belief_update,
    blind_lower_bound,
    blind_policy_bound,
    policy,
    solve,
    value,
)

# Kaelbling, Littman & Cassandra (1998); optimum at the uniform belief 19.3714
# (SARSOP, converged).
TIGER_OPTIMUM = 19.3714


def tiger() -> Pomdp:
    """Listen, open-left, open-right; states tiger-left, tiger-right."""
    stay = jnp.eye(2)
    reset = jnp.full((2, 2), 0.5)
    hear = jnp.array([[0.85, 0.15], [0.15, 0.85]])
    return Pomdp(
        transition=jnp.stack([stay, reset, reset]),
        observation=jnp.stack([hear, reset, reset]),
        reward=jnp.array([[-1.0, -1.0], [-100.0, 10.0], [10.0, -100.0]]),
        start=jnp.array([0.5, 0.5]),
        discount=0.95,
    )


def random_pomdp(seed: int, states=3, actions=2, observations=2, discount=1.0):
    rng = np.random.default_rng(seed)
    return Pomdp(
        transition=jnp.asarray(rng.dirichlet(np.ones(states), (actions, states))),
        observation=jnp.asarray(
            rng.dirichlet(np.ones(observations), (actions, states))
        ),
        reward=jnp.asarray(rng.normal(size=(actions, states))),
        start=jnp.asarray(rng.dirichlet(np.ones(states))),
        discount=discount,
    )


def test_tiger_value_matches_published_optimum():
    result = solve(tiger(), num_beliefs=32, tolerance=1e-6, max_iterations=3000)
    assert result.converged
    assert abs(result.value - TIGER_OPTIMUM) < 1e-2
    # Listening is optimal at the uniform belief; opening is optimal when sure.
    assert int(policy(result.alphas, result.actions, jnp.array([0.5, 0.5]))) == 0
    assert int(policy(result.alphas, result.actions, jnp.array([0.001, 0.999]))) == 1
    assert int(policy(result.alphas, result.actions, jnp.array([0.999, 0.001]))) == 2


def test_tiger_belief_update_by_hand():
    # After one "hear left" from uniform: 0.85 * 0.5 / (0.85 * 0.5 + 0.15 * 0.5).
    posterior = belief_update(tiger(), jnp.array([0.5, 0.5]), 0, 0)
    np.testing.assert_allclose(posterior, [0.85, 0.15], rtol=1e-6)
    jitted = jax.jit(belief_update)(tiger(), jnp.array([0.5, 0.5]), 0, 0)
    np.testing.assert_allclose(jitted, posterior, rtol=1e-6)


def test_belief_update_impossible_observation_returns_prediction():
    problem = Pomdp(
        transition=jnp.eye(2)[None],
        observation=jnp.array([[[1.0, 0.0], [1.0, 0.0]]]),
        reward=jnp.zeros((1, 2)),
        start=jnp.array([0.3, 0.7]),
        discount=0.9,
    )
    updated = belief_update(problem, problem.start, 0, 1)
    np.testing.assert_allclose(updated, [0.3, 0.7])


def test_blind_lower_bound_and_value():
    alpha, action = blind_lower_bound(tiger())
    # Listening forever: -1 / (1 - 0.95) = -20.
    np.testing.assert_allclose(alpha, [[-20.0, -20.0]], rtol=1e-6)
    assert int(action[0]) == 0
    alphas = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    assert float(value(alphas, jnp.array([0.5, 0.5]))) == pytest.approx(1.0)


def exact_value(pomdp: Pomdp, belief: np.ndarray, horizon: int) -> float:
    """H-step optimal value by enumerating every action and observation history."""
    if horizon == 0:
        return 0.0
    T = np.asarray(pomdp.transition, np.float64)
    obs = np.asarray(pomdp.observation, np.float64)
    R = np.asarray(pomdp.reward, np.float64)
    best = -np.inf
    for a in range(T.shape[0]):
        total = R[a] @ belief
        predicted = belief @ T[a]
        for o in range(obs.shape[2]):
            joint = predicted * obs[a, :, o]
            probability = joint.sum()
            if probability > 0:
                next_value = exact_value(pomdp, joint / probability, horizon - 1)
                total += probability * next_value
        best = max(best, total)
    return best


def reachable_beliefs(pomdp: Pomdp, depth: int) -> np.ndarray:
    T = np.asarray(pomdp.transition, np.float64)
    obs = np.asarray(pomdp.observation, np.float64)
    layer = [np.asarray(pomdp.start, np.float64)]
    found = list(layer)
    for _ in range(depth):
        nxt = []
        for b, a, o in itertools.product(layer, range(T.shape[0]), range(obs.shape[2])):
            joint = (b @ T[a]) * obs[a, :, o]
            if joint.sum() > 0:
                nxt.append(joint / joint.sum())
        found += nxt
        layer = nxt
    return np.stack(found)


@pytest.mark.parametrize("seed", [0, 1])
def test_finite_horizon_matches_exact_dynamic_programming(seed):
    horizon = 3
    with jax.enable_x64(True):
        problem = random_pomdp(seed)
        points = reachable_beliefs(problem, horizon - 1)
        result = solve(
            problem,
            beliefs=jnp.asarray(points),
            max_iterations=horizon,
            tolerance=0.0,
        )
        expected = exact_value(problem, np.asarray(problem.start), horizon)
        assert result.iterations == horizon
        assert result.value == pytest.approx(expected, abs=1e-6)


def simplex(size):
    return (
        hnp.arrays(
            np.float64, size, elements=st.floats(0.0, 1.0, allow_subnormal=False)
        )
        .filter(lambda x: x.sum() > 1e-3)
        .map(lambda x: x / x.sum())
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    belief=simplex(3),
    action=st.integers(0, 1),
    observation=st.integers(0, 1),
)
def test_belief_update_stays_on_simplex(seed, belief, action, observation):
    problem = random_pomdp(seed)
    updated = np.asarray(
        belief_update(problem, jnp.asarray(belief, jnp.float32), action, observation)
    )
    assert np.all(np.isfinite(updated))
    assert np.all(updated >= 0)
    assert updated.sum() == pytest.approx(1.0, abs=1e-5)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_backup_never_lowers_value_at_belief_points(seed):
    problem = random_pomdp(seed, discount=0.9)
    rng = np.random.default_rng(seed)
    beliefs = jnp.asarray(rng.dirichlet(np.ones(3), 6), jnp.float32)
    alpha, action = blind_lower_bound(problem)
    alphas = jnp.broadcast_to(alpha, (6, 3))
    actions = jnp.broadcast_to(action, (6,))
    for _ in range(3):
        before = np.asarray(jnp.max(beliefs @ alphas.T, axis=1))
        alphas, actions = backup(problem, alphas, actions, beliefs)
        after = np.asarray(jnp.max(beliefs @ alphas.T, axis=1))
        assert np.all(after >= before - 1e-5)


def test_observation_truncation_is_a_lower_bound():
    problem = random_pomdp(3, states=4, actions=2, observations=4, discount=0.9)
    full = solve(problem, num_beliefs=16, tolerance=1e-6, max_iterations=500)
    truncated = solve(
        problem,
        num_beliefs=16,
        tolerance=1e-6,
        max_iterations=500,
        max_observations=1,
        beliefs=full.beliefs,
    )
    assert truncated.value <= full.value + 1e-4


def test_blind_policy_bound_matches_linear_solve():
    problem = random_pomdp(5, states=4, actions=3, observations=2, discount=0.9)
    alphas, actions = blind_policy_bound(problem)
    T = np.asarray(problem.transition, np.float64)
    R = np.asarray(problem.reward, np.float64)
    # alpha_a = R_a + discount T_a alpha_a, solved directly.
    expected = np.stack(
        [np.linalg.solve(np.eye(4) - 0.9 * T[a], R[a]) for a in range(3)]
    )
    np.testing.assert_allclose(alphas, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(actions, [0, 1, 2])
    # Few iterations stay below the fixed point: still a lower bound.
    early, _ = blind_policy_bound(problem, iterations=3)
    assert np.all(np.asarray(early) <= expected + 1e-5)


def test_blind_policy_bound_refuses_finite_horizon():
    with pytest.raises(AutomixError, match="discount < 1"):
        blind_policy_bound(random_pomdp(0))


@pytest.mark.parametrize("sparse", [False, True])
def test_sparse_backup_equals_dense_backup(sparse):
    states, observations = 6, 3
    problem = random_pomdp(7, states=states, actions=2, observations=observations)
    rng = np.random.default_rng(7)
    alphas = jnp.asarray(rng.normal(size=(5, states)), jnp.float32)
    beliefs = jnp.asarray(rng.dirichlet(np.ones(states), 4), jnp.float32)
    dynamics = _dynamics(np.asarray(problem.transition), sparse)
    observation_t = jnp.swapaxes(problem.observation, 1, 2)
    args = (problem.reward, 0.9, alphas)
    fallback = jnp.zeros(4, jnp.int32)
    dense = jax.vmap(
        lambda b, f: _backup_one(dynamics, observation_t, *args, b, f, observations)
    )(beliefs, fallback)
    # With every state in the support and every observation kept, the sparse
    # scoring is exact.
    on_support = jax.jit(
        jax.vmap(
            lambda b, f: _backup_sparse(
                dynamics,
                problem.observation,
                observation_t,
                *args[:2],
                alphas,
                alphas.T,
                b,
                f,
                observations,
                states,
            )
        )
    )(beliefs, fallback)
    for got, want in zip(on_support, dense):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_perseus_reaches_tiger_optimum_on_pbvi_beliefs():
    pbvi = solve(tiger(), num_beliefs=32, tolerance=1e-6, max_iterations=3000)
    result = solve(
        tiger(),
        method="perseus",
        beliefs=pbvi.beliefs,
        num_alphas=64,
        round_size=4,
        tolerance=1e-6,
        max_iterations=3000,
    )
    assert result.converged
    assert abs(result.value - TIGER_OPTIMUM) < 1e-2


def test_perseus_random_walks_give_a_lower_bound():
    result = solve(
        tiger(), method="perseus", num_beliefs=64, num_alphas=64, round_size=8
    )
    # A lower bound: at most the optimum, and above the blind-policy bound.
    assert -20.0 < result.value <= TIGER_OPTIMUM + 1e-3
    assert result.beliefs.shape == (64, 2)


def test_perseus_refuses_finite_horizon_and_bad_sizes():
    with pytest.raises(AutomixError, match="discount < 1"):
        solve(random_pomdp(0), method="perseus")
    with pytest.raises(AutomixError, match="num_alphas"):
        solve(tiger(), method="perseus", num_alphas=2)
    with pytest.raises(AutomixError, match="method"):
        solve(tiger(), method="hsvi")
