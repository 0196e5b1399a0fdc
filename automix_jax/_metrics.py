"""Cost, performance and the AutoMix incremental-benefit-per-cost (IBC) lift.

Definitions follow Madaan et al., "AutoMix: Automatically Mixing Language Models"
(NeurIPS 2024, arXiv 2310.12963), Section 3:

* per-query cost = the price of every model run + the price of every verification
  run; performance = the score of the answer that stands;
* IBC of a method relative to the small model: IBC_M = (P_M - P_S) / (C_M - C_S);
* the baseline slope is the straight line from the small to the large model:
  IBC_base = (P_L - P_S) / (C_L - C_S);
* the lift Δ_IBC = (IBC_M - IBC_base) / IBC_base.

Degenerate cases have a status code (`LiftStatus`) instead of a NaN: the lift is
reported as 0 with that status, and `lift_message` says what it means.

Shape legend: n queries, M models, C candidate parameters.
"""

from __future__ import annotations

import enum
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

# A gap in performance or cost smaller than this is treated as no gap at all, so
# that float32 rounding of equal means never turns into a huge or negative slope.
_EPS = 1e-6

# Candidates whose objective is undefined are ranked at this finite floor rather
# than -inf, so that an argmax over them stays well defined and NaN-free.
OBJECTIVE_FLOOR = -1e30


class LiftStatus(enum.IntEnum):
    """Why a lift is or is not defined (the `status` of a `Lift`)."""

    OK = 0
    EMPTY = 1  # no rows to average over
    LARGE_NOT_DEARER = 2  # C_L <= C_S: the baseline slope has no run
    LARGE_NO_BETTER = 3  # P_L == P_S: the baseline slope is 0
    LARGE_WORSE = 4  # P_L < P_S: the baseline slope is negative
    METHOD_NO_DEARER = 5  # C_M <= C_S: the method's own slope has no run


_MESSAGES = {
    LiftStatus.OK: "",
    LiftStatus.EMPTY: "the lift is undefined: there are no rows",
    LiftStatus.LARGE_NOT_DEARER: (
        "the lift is undefined: the large model costs no more than the small one, "
        "so there is no cost to save"
    ),
    LiftStatus.LARGE_NO_BETTER: (
        "the lift is undefined: the large model scores no better than the small "
        "one (baseline slope 0), so escalating cannot pay off"
    ),
    LiftStatus.LARGE_WORSE: (
        "the lift is undefined: the large model scores lower than the small one "
        "(negative baseline slope), so every escalation costs more and loses "
        "quality; compare the methods by cost and performance instead"
    ),
    LiftStatus.METHOD_NO_DEARER: (
        "the lift is undefined: the method costs no more than the small model "
        "alone (it never escalates)"
    ),
}


def lift_message(status: int) -> str:
    """A sentence explaining `status` ("" when the lift is defined)."""
    return _MESSAGES[LiftStatus(int(status))]


class Summary(NamedTuple):
    """Average cost and performance of a routing over some rows.

    Attributes:
        cost: `[]` mean per-query cost.
        performance: `[]` mean score of the answers that stand.
    """

    cost: Float[Array, ""]
    performance: Float[Array, ""]


class Baseline(NamedTuple):
    """Each model used alone on the same rows.

    Attributes:
        cost: `[M]` mean cost of model i alone (no verification).
        performance: `[M]` mean score of model i.
    """

    cost: Float[Array, " models"]
    performance: Float[Array, " models"]


class Lift(NamedTuple):
    """The IBC figures of a method against the small-to-large baseline.

    Attributes:
        ibc: `[...]` the method's slope from the small model, 0 where undefined.
        ibc_base: `[...]` the baseline slope (the same everywhere), 0 where
            undefined.
        lift: `[...]` Δ_IBC, 0 where undefined (see `status`).
        gap_recovered: `[...]` (P_M - P_S) / (P_L - P_S): the share of the
            small-to-large performance gap the method recovers; 0 where P_L == P_S.
        status: `[...]` a `LiftStatus` code.
        ibc_defined: `[...]` whether the method costs more than the small model,
            so that its own slope `ibc` is defined whatever the baseline.
    """

    ibc: Float[Array, "..."]
    ibc_base: Float[Array, "..."]
    lift: Float[Array, "..."]
    gap_recovered: Float[Array, "..."]
    status: Int[Array, "..."]
    ibc_defined: Bool[Array, "..."]


@jax.jit
def baseline(
    scores: Float[Array, "queries models"], costs: Float[Array, "queries models"]
) -> Baseline:
    """Mean cost and score of each model alone; zeros when there are no rows."""
    n = scores.shape[0]
    if n == 0:
        m = scores.shape[1]
        return Baseline(jnp.zeros((m,)), jnp.zeros((m,)))
    return Baseline(costs.mean(axis=0), scores.mean(axis=0))


@functools.partial(jax.jit, static_argnames=("small", "large"))
def ibc_lift(
    summary: Summary,
    base: Baseline,
    *,
    small: int = 0,
    large: int = -1,
    num_rows: int | Int[Array, ""] = 1,
) -> Lift:
    """Δ_IBC of a method (a `Summary`, any batch shape) over the baseline.

    Args:
        summary: the method's mean cost and performance; any leading shape.
        base: per-model means on the same rows.
        small: index of the model the slopes start from (the first by default).
        large: index of the model that ends the baseline (the last by default; for
            M models the AutoMix paper measures from the first to the last).
        num_rows: how many rows the means are over (0 gives `LiftStatus.EMPTY`).

    Returns:
        A `Lift`; undefined figures are 0 and explained by `status`.

    Example:
        >>> base = Baseline(jnp.array([1.0, 50.0]), jnp.array([0.4, 0.9]))
        >>> out = ibc_lift(Summary(jnp.array(11.0), jnp.array(0.7)), base)
        >>> round(float(out.lift), 4)  # (0.3/10 - 0.5/49) / (0.5/49)
        1.94
    """
    p_s, p_l = base.performance[small], base.performance[large]
    c_s, c_l = base.cost[small], base.cost[large]
    dp_base, dc_base = p_l - p_s, c_l - c_s
    dp, dc = summary.performance - p_s, summary.cost - c_s
    empty = jnp.asarray(num_rows) == 0
    # Statuses in order of precedence: the first that applies wins.
    status = jnp.select(
        [
            empty,
            dc_base <= _EPS,
            jnp.abs(dp_base) <= _EPS,
            dp_base < 0,
            dc <= _EPS,
        ],
        [
            LiftStatus.EMPTY,
            LiftStatus.LARGE_NOT_DEARER,
            LiftStatus.LARGE_NO_BETTER,
            LiftStatus.LARGE_WORSE,
            LiftStatus.METHOD_NO_DEARER,
        ],
        LiftStatus.OK,
    ).astype(jnp.int32)
    status = jnp.broadcast_to(status, jnp.shape(dp))
    # Divide by a safe denominator and mask afterwards, so no NaN is ever formed
    # (a NaN in the forward pass would also poison gradients through `where`).
    method_ok = dc > _EPS
    ibc = jnp.where(method_ok, dp / jnp.where(method_ok, dc, 1.0), 0.0)
    base_ok = (dc_base > _EPS) & (jnp.abs(dp_base) > _EPS)
    ibc_base = jnp.where(base_ok, dp_base / jnp.where(base_ok, dc_base, 1.0), 0.0)
    safe_base = jnp.where(base_ok, ibc_base, 1.0)
    lift = jnp.where(status == LiftStatus.OK, (ibc - ibc_base) / safe_base, 0.0)
    ibc_base = jnp.broadcast_to(ibc_base, jnp.shape(dp))
    gap_ok = jnp.abs(dp_base) > _EPS
    gap = jnp.where(gap_ok, dp / jnp.where(gap_ok, dp_base, 1.0), 0.0)
    return Lift(ibc, ibc_base, lift, gap, status, method_ok)


def objective(lift: Lift) -> Float[Array, "..."]:
    """What tuning maximises: Δ_IBC, or IBC_M where the baseline is degenerate.

    When the large model is no better, worse, or no dearer, the lift is undefined
    for every candidate alike; tuning then ranks candidates by their own slope
    IBC_M (quality gained per unit of extra cost), which is still meaningful.
    Candidates whose IBC_M is undefined too rank at `OBJECTIVE_FLOOR`.
    """
    base_degenerate = (lift.status == LiftStatus.LARGE_NOT_DEARER) | (
        lift.status == LiftStatus.LARGE_NO_BETTER
    )
    base_degenerate |= lift.status == LiftStatus.LARGE_WORSE
    fallback = jnp.where(lift.ibc_defined, lift.ibc, OBJECTIVE_FLOOR)
    defined = jnp.where(lift.status == LiftStatus.OK, lift.lift, OBJECTIVE_FLOOR)
    return jnp.where(base_degenerate, fallback, defined)


@functools.partial(jax.jit, static_argnames=("small", "large"))
def cost_quality_auc(
    costs: Float[Array, " points"],
    performances: Float[Array, " points"],
    base: Baseline,
    *,
    small: int = 0,
    large: int = -1,
) -> Float[Array, ""]:
    """Mean best performance over budgets from the small to the large model's cost.

    At a budget c the best performance is the highest among the points whose cost
    is at most c, the small model alone included (a step function). Its mean over
    c in [C_S, C_L] is the normalised area under the cost-quality curve; the
    small-to-large line has area (P_S + P_L) / 2. Returns P_S when C_L <= C_S.

    Args:
        costs: `[P]` mean cost of each operating point (say, every candidate).
        performances: `[P]` its mean performance.
        base: per-model means on the same rows.
    """
    c_s, c_l = base.cost[small], base.cost[large]
    p_s = base.performance[small]
    costs = jnp.concatenate([jnp.atleast_1d(c_s), costs])
    performances = jnp.concatenate([jnp.atleast_1d(p_s), performances])
    order = jnp.argsort(costs)
    costs, performances = costs[order], performances[order]
    best = jax.lax.cummax(performances)
    # Each point holds from its own cost to the next point's cost (or C_L).
    start = jnp.clip(costs, c_s, c_l)
    end = jnp.clip(jnp.concatenate([costs[1:], jnp.atleast_1d(c_l)]), c_s, c_l)
    span = c_l - c_s
    area = jnp.sum(best * (end - start))
    return jnp.where(span > _EPS, area / jnp.where(span > _EPS, span, 1.0), p_s)
