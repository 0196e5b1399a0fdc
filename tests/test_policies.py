"""Policies for one query, the candidate grids and per-query costs."""

import itertools
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import automix_jax as am


def _query(conf, scores=None, escalate=False):
    conf = jnp.asarray(conf, jnp.float32)
    scores = (
        jnp.zeros_like(conf) if scores is None else jnp.asarray(scores, jnp.float32)
    )
    return am.Query(conf, scores, jnp.asarray(escalate), jnp.zeros_like(conf))


@given(st.integers(1, 40))
def test_bin_edges_are_the_nearest_floats_to_exact_fractions(bins):
    edges = am.bin_edges(bins)
    assert len(edges) == bins + 1
    for k, edge in enumerate(edges):
        assert edge == np.float32(float(Fraction(k, bins)))


@given(st.integers(1, 30), st.data())
def test_a_confidence_on_an_edge_is_escalated_by_that_edge(bins, data):
    k = data.draw(st.integers(0, bins))
    conf = np.float32(k / bins)
    t = am.bin_edges(bins)[k]
    # Computed from the other side of the fraction, as data often is.
    conf = np.float32((k * 3) / (bins * 3))
    assert int(am.Threshold().decide(jnp.float32(t), _query([conf, 1.0]))) == 1


@pytest.mark.parametrize("bins", [3, 5, 8, 10])
def test_grid_sizes(bins):
    assert am.Threshold().grid(bins, 2).shape == (bins + 1,)
    assert am.DoubleThreshold().grid(bins, 2).shape == (
        len(list(itertools.combinations(range(bins + 1), 2))),
        2,
    )
    assert am.TripleThreshold().grid(bins, 2).shape[0] == len(
        list(itertools.combinations(range(bins + 1), 3))
    )
    assert am.ChainedThreshold().grid(bins, 3).shape == ((bins + 1) ** 2, 2)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize(
    "policy, params, conf, expected",
    [
        (am.Threshold(), 0.5, [0.5, 1.0], 1),
        (am.Threshold(), 0.5, [0.51, 1.0], 0),
        (am.DoubleThreshold(), [0.25, 0.5], [0.25, 1.0], 1),
        (am.DoubleThreshold(), [0.25, 0.5], [0.2, 1.0], 0),
        (am.TripleThreshold(), [0.1, 0.5, 0.7], [0.05, 1.0], 1),
        (am.TripleThreshold(), [0.1, 0.5, 0.7], [0.3, 1.0], 0),
        (am.TripleThreshold(), [0.1, 0.5, 0.7], [0.6, 1.0], 1),
        (am.ChainedThreshold(), [0.5, 0.3], [0.4, 0.4, 1.0], 1),
        (am.ChainedThreshold(), [0.5, 0.3], [0.4, 0.2, 1.0], 2),
        (am.ChainedThreshold(), [0.5, 0.3], [0.9, 0.2, 1.0], 0),
        (am.SelfConsistency(), 0.5, [0.5, 1.0], 1),
    ],
)
def test_decisions(policy, params, conf, expected, jit):
    decide = jax.jit(policy.decide) if jit else policy.decide
    assert int(decide(jnp.asarray(params, jnp.float32), _query(conf))) == expected


@pytest.mark.parametrize(
    "family, params",
    [
        (am.Threshold(), 0.375),
        (am.DoubleThreshold(), [0.125, 0.5]),
        (am.TripleThreshold(), [0.125, 0.25, 0.75]),
    ],
)
def test_bands_agree_with_each_family(family, params):
    params = np.asarray(params, np.float32)
    bands = jnp.asarray(family.as_bands(params))
    for conf in np.linspace(0, 1, 25, dtype=np.float32):
        q = _query([conf, 1.0])
        assert int(family.decide(jnp.asarray(params), q)) == int(
            am.Bands().decide(bands, q)
        )


def test_oracle_stops_at_the_first_best_answer():
    q = _query([0.0, 0.0, 0.0], scores=[0.0, 1.0, 1.0])
    assert int(am.Oracle().decide(None, q)) == 1
    q = _query([0.0, 0.0, 0.0], scores=[1.0, 1.0, 0.0])
    assert int(am.Oracle().decide(None, q)) == 0


def test_fixed_answer_override_escalates_the_first_model():
    q = _query([0.99, 1.0], escalate=True)
    assert int(am.Threshold().decide(jnp.float32(0.5), q)) == 1


def test_cascade_cost_by_hand():
    costs = jnp.array([1.0, 10.0, 50.0])
    verify = jnp.array([0.5, 2.0, 7.0])
    # Stop at the second model: models 0 and 1 run, both verified.
    assert float(am.query_cost(am.Threshold(), jnp.int32(1), costs, verify)) == 13.5
    # Stop at the last: the last answer is never verified.
    assert float(am.query_cost(am.Threshold(), jnp.int32(2), costs, verify)) == 63.5
    # A direct policy runs one model, no verification.
    assert float(am.query_cost(am.AlwaysModel(-1), jnp.int32(2), costs, verify)) == 50
    # Random and the oracle do not verify.
    assert float(am.query_cost(am.RandomRate(), jnp.int32(1), costs, verify)) == 11


def _obs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return am.Observations(
        rng.integers(0, 2, (n, 2)).astype(float),
        rng.random((n, 2)),
        [1.0, 50.0],
        1.0,
    )


@given(st.integers(0, 1000))
def test_cost_never_falls_as_the_threshold_rises(seed):
    obs = _obs(seed=seed)
    summary = am.score_grid(am.Threshold(), am.Threshold().grid(8, 2), obs)
    assert np.all(np.diff(np.asarray(summary.cost)) >= 0)


def test_random_rate_escalates_about_the_rate():
    obs = _obs(n=4000)
    stop = am.route(am.RandomRate(), jnp.float32(0.3), obs, jax.random.key(1))
    assert abs(float(np.mean(np.asarray(stop))) - 0.3) < 0.03


def test_unknown_policy_name():
    with pytest.raises(am.PolicyError, match="unknown policy 'nope'.*threshold"):
        am.get_policy("nope")
