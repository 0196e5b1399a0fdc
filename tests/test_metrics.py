"""IBC, lift, gap recovered and the cost-quality area, against hand computation."""

import jax.numpy as jnp
import numpy as np
import pytest

import automix_jax as am
from automix_jax import LiftStatus


def _base(costs, perfs):
    return am.Baseline(jnp.asarray(costs, jnp.float32), jnp.asarray(perfs, jnp.float32))


def test_lift_matches_hand_computation():
    base = _base([1.0, 50.0], [0.4, 0.9])
    out = am.ibc_lift(am.Summary(jnp.float32(11.0), jnp.float32(0.7)), base)
    ibc = (0.7 - 0.4) / (11.0 - 1.0)
    ibc_base = (0.9 - 0.4) / (50.0 - 1.0)
    assert float(out.ibc) == pytest.approx(ibc, rel=1e-5)
    assert float(out.ibc_base) == pytest.approx(ibc_base, rel=1e-5)
    assert float(out.lift) == pytest.approx((ibc - ibc_base) / ibc_base, rel=1e-5)
    assert float(out.gap_recovered) == pytest.approx(0.3 / 0.5, rel=1e-5)
    assert int(out.status) == LiftStatus.OK


def test_the_large_model_alone_has_zero_lift():
    base = _base([1.0, 50.0], [0.4, 0.9])
    out = am.ibc_lift(am.Summary(base.cost[1], base.performance[1]), base)
    assert float(out.lift) == pytest.approx(0.0, abs=1e-6)
    assert float(out.gap_recovered) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "costs, perfs, method, status",
    [
        ([1.0, 50.0], [0.5, 0.5], (20.0, 0.6), LiftStatus.LARGE_NO_BETTER),
        ([1.0, 50.0], [0.6, 0.5], (20.0, 0.55), LiftStatus.LARGE_WORSE),
        ([5.0, 5.0], [0.4, 0.9], (5.0, 0.6), LiftStatus.LARGE_NOT_DEARER),
        ([1.0, 50.0], [0.4, 0.9], (1.0, 0.4), LiftStatus.METHOD_NO_DEARER),
    ],
)
def test_degenerate_lifts_have_a_status_and_no_nan(costs, perfs, method, status):
    out = am.ibc_lift(
        am.Summary(jnp.float32(method[0]), jnp.float32(method[1])), _base(costs, perfs)
    )
    assert int(out.status) == status
    assert float(out.lift) == 0.0
    assert all(np.isfinite(np.asarray(x)).all() for x in out)
    assert "undefined" in am.lift_message(int(out.status))


def test_a_worse_large_model_never_gives_a_positive_lift():
    # Costs more and scores less than the small model: the naive formula divides
    # two negatives and reports a positive lift.
    base = _base([1.0, 50.0], [0.6, 0.5])
    out = am.ibc_lift(am.Summary(jnp.float32(30.0), jnp.float32(0.52)), base)
    naive = ((0.52 - 0.6) / 29.0 - (-0.1 / 49.0)) / (-0.1 / 49.0)
    assert naive > 0
    assert int(out.status) == LiftStatus.LARGE_WORSE
    assert float(out.lift) == 0.0


def test_empty_rows_give_the_empty_status():
    base = am.baseline(jnp.zeros((0, 2)), jnp.zeros((0, 2)))
    out = am.ibc_lift(am.Summary(jnp.float32(0), jnp.float32(0)), base, num_rows=0)
    assert int(out.status) == LiftStatus.EMPTY


def test_objective_falls_back_to_the_methods_own_slope():
    base = _base([1.0, 50.0], [0.5, 0.5])
    summary = am.Summary(jnp.array([10.0, 20.0, 1.0]), jnp.array([0.6, 0.6, 0.5]))
    out = am.ibc_lift(summary, base)
    value = np.asarray(am.objective(out))
    assert value[0] == pytest.approx(0.1 / 9.0, rel=1e-5)
    assert value[1] == pytest.approx(0.1 / 19.0, rel=1e-5)
    assert value[2] < -1e29  # no cost over the small model: ranked last


def test_cost_quality_auc_by_hand():
    base = _base([1.0, 11.0], [0.2, 0.8])
    # Points: (3, 0.5), (6, 0.4) dominated, (9, 0.7). Best-so-far staircase over
    # [1, 11]: 0.2 on [1,3), 0.5 on [3,9), 0.7 on [9,11).
    auc = am.cost_quality_auc(
        jnp.array([3.0, 6.0, 9.0]), jnp.array([0.5, 0.4, 0.7]), base
    )
    expected = (0.2 * 2 + 0.5 * 6 + 0.7 * 2) / 10
    assert float(auc) == pytest.approx(expected, rel=1e-5)


def test_cost_quality_auc_when_costs_are_equal():
    base = _base([2.0, 2.0], [0.2, 0.8])
    auc = am.cost_quality_auc(jnp.array([2.0]), jnp.array([0.5]), base)
    assert float(auc) == pytest.approx(0.2)
