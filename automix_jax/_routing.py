"""Bulk routing, scoring and grid tuning: jitted, vmapped over queries and candidates.

Shape legend: n queries, M models, C candidate parameters.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._metrics import (
    OBJECTIVE_FLOOR,
    Baseline,
    Lift,
    Summary,
    baseline,
    ibc_lift,
    objective,
)
from ._observations import Observations, queries
from ._policies import Params, Policy, query_cost

_DEFAULT_KEY_SEED = 0


def draw_noise(policy: Policy, key: PRNGKeyArray | None, obs: Observations):
    """`[n, M]` uniform draws for a random policy; None for the others."""
    if not policy.needs_noise:
        return None
    if key is None:
        key = jax.random.key(_DEFAULT_KEY_SEED)
    return jax.random.uniform(key, obs.confidences.shape)


def _route(policy: Policy, params: Params, obs: Observations, key, noise=None):
    if noise is None:
        noise = draw_noise(policy, key, obs)
    return jax.vmap(policy.decide, in_axes=(None, 0))(params, queries(obs, noise))


def _outcome(policy: Policy, params: Params, obs: Observations, key, noise=None):
    stop = _route(policy, params, obs, key, noise)
    cost = jax.vmap(query_cost, in_axes=(None, 0, 0, None))(
        policy, stop, obs.costs, obs.verifier_costs
    )
    performance = jnp.take_along_axis(obs.scores, stop[:, None], axis=1)[:, 0]
    return stop, cost, performance


@functools.partial(jax.jit, static_argnames="policy")
def route(
    policy: Policy,
    params: Params,
    obs: Observations,
    key: PRNGKeyArray | None = None,
) -> Int[Array, " queries"]:
    """The model whose answer stands for every query.

    Args:
        policy: the policy family (static: one compile per family and shape).
        params: one candidate's parameters.
        obs: the queries.
        key: consumed only by random policies (one uniform draw per query and
            model).

    Returns:
        `[n]` int32 model indices.
    """
    return _route(policy, params, obs, key)


@functools.partial(jax.jit, static_argnames="policy")
def outcome(
    policy: Policy,
    params: Params,
    obs: Observations,
    key: PRNGKeyArray | None = None,
) -> tuple[Int[Array, " queries"], Float[Array, " queries"], Float[Array, " queries"]]:
    """Per-query `(stop, cost, performance)` of routing `obs` with `params`."""
    return _outcome(policy, params, obs, key)


def _summarize(policy, params, obs, key, noise=None) -> Summary:
    _, cost, performance = _outcome(policy, params, obs, key, noise)
    if obs.num_queries == 0:
        return Summary(jnp.zeros(()), jnp.zeros(()))
    return Summary(cost.mean(), performance.mean())


@functools.partial(jax.jit, static_argnames="policy")
def summarize(
    policy: Policy,
    params: Params,
    obs: Observations,
    key: PRNGKeyArray | None = None,
) -> Summary:
    """Mean cost and performance of routing `obs` with one candidate."""
    return _summarize(policy, params, obs, key)


@functools.partial(jax.jit, static_argnames="policy")
def score_grid(
    policy: Policy,
    grid: Params,
    obs: Observations,
    key: PRNGKeyArray | None = None,
) -> Summary:
    """`Summary` of every candidate at once (fields `[C]`), vmapped over the grid."""
    noise = draw_noise(policy, key, obs)
    return jax.vmap(_summarize, in_axes=(None, 0, None, None, None))(
        policy, grid, obs, None, noise
    )


def cheapest_best(
    value: Float[Array, "... candidates"], cost: Float[Array, "... candidates"]
) -> Int[Array, "..."]:
    """The best candidate along the last axis; of equals, the cheapest, then the first.

    Equal objectives are common (a slope of 0 when the large model is no better,
    or bins no row falls in), and paying more for the same figure is never the
    better choice. For thresholds the cheapest of equals is also the first, which
    is what the AutoMix reference's `max` over its candidates picks.
    """
    tied = value == jnp.max(value, axis=-1, keepdims=True)
    return jnp.argmin(jnp.where(tied, cost, jnp.inf), axis=-1)


class Tuned(NamedTuple):
    """The outcome of a grid search.

    Attributes:
        index: `[]` the chosen candidate: the best objective, the cheapest of
            equals.
        candidates: the candidates scored (`policy.expand(grid, obs)`); the choice
            is `jax.tree.map(lambda c: c[index], candidates)`.
        objective: `[C]` what was maximised (see `automix_jax.objective`).
        summary: `Summary` of every candidate (fields `[C]`).
        lift: `Lift` of every candidate (fields `[C]`).
        in_range: `[C]` whether the candidate's mean cost lies in the cost range.
        baseline: the per-model means on the rows tuned on.
    """

    index: Int[Array, ""]
    candidates: Params
    objective: Float[Array, " candidates"]
    summary: Summary
    lift: Lift
    in_range: Array
    baseline: Baseline


def _tune(policy, grid, obs, noise, cost_low, cost_high, small, large) -> Tuned:
    # `noise` is one draw per query shared by every candidate (common random
    # numbers), or None for policies that draw nothing.
    candidates = policy.expand(grid, obs)
    summary = jax.vmap(_summarize, in_axes=(None, 0, None, None, None))(
        policy, candidates, obs, None, noise
    )
    base = baseline(obs.scores, obs.costs)
    lift = ibc_lift(summary, base, small=small, large=large, num_rows=obs.num_queries)
    in_range = (summary.cost >= cost_low) & (summary.cost <= cost_high)
    budget = getattr(policy, "budget", None)
    if budget is not None:
        # A family with its own budget keeps to it as well as to the range.
        in_range &= summary.cost <= budget
    value = jnp.where(in_range, objective(lift), OBJECTIVE_FLOOR)
    index = cheapest_best(value, summary.cost)
    return Tuned(index, candidates, value, summary, lift, in_range, base)


@functools.partial(jax.jit, static_argnames=("policy", "small", "large"))
def tune(
    policy: Policy,
    grid: Params,
    obs: Observations,
    key: PRNGKeyArray | None = None,
    cost_range: tuple[float, float] = (-jnp.inf, jnp.inf),
    small: int = 0,
    large: int = -1,
) -> Tuned:
    """Scores every candidate of `grid` on `obs` and picks the best IBC lift.

    Args:
        policy: the family (static).
        grid: candidates with a leading axis C (`policy.grid(bins, M)`).
        obs: the rows to tune on.
        key: consumed by random policies.
        cost_range: keep only candidates whose mean cost lies in [low, high];
            check `Tuned.in_range.any()` (the protocol raises when none does).
        small, large: the models the IBC slopes are measured between.

    Returns:
        A `Tuned`; `jax.tree.map(lambda c: c[t.index], t.candidates)` is the
        choice.
    """
    low, high = cost_range
    noise = draw_noise(policy, key, obs)
    return _tune(policy, grid, obs, noise, low, high, small, large)
