# ruff: noqa: F722  (jaxtyping shape strings are not Python expressions)
"""Differentiable routing: soft policies, expected cost and quality, gradient tuning.

A hard cascade policy escalates past model i when a *margin* is at least 0: for a
threshold t the margin is `t - confidence` (so `confidence <= t` escalates, the
library's inclusive convention). The soft version escalates with probability
`sigmoid(margin / temperature)`. A query then stops at model k with probability

    pi_k = e_0 * ... * e_(k-1) * (1 - e_k),    e_(M-1) = 0,

and its expected cost and score are `sum_k pi_k * cost_k` and `sum_k pi_k *
score_k`, where `cost_k` is exactly what `query_cost` charges a cascade stopping
at k (every model up to k and a verification for each of them below the last
model). Both are smooth in the policy parameters, the temperature, the costs and
any trade-off weight, so optax can tune them.

Tuning (`fit`, `tune_soft`) runs Adam inside one jitted `lax.scan` while the
temperature falls geometrically, so the soft policy ends close to a hard one, and
then evaluates the *hard* policy at the final parameters:

* lift objective: maximise the soft Δ_IBC (`automix_jax.objective`);
* budget objective: maximise performance subject to mean cost <= budget with an
  augmented-Lagrangian penalty; its multiplier is learned by projected gradient
  ascent alongside the parameters.

Because the hard objective is piecewise constant, gradient ascent may stall on a
plateau. Two finishing steps make the result dependable, and both are reported:

* `polish` (the shared threshold only): an exact search over every threshold that
  changes the routing on the rows (`threshold_curve`, a sort and a cumulative
  sum); the grid's thresholds route like one of these, so the polished lift is at
  least the best grid lift on the same rows.
* a feasibility step (budget objective): when the hard policy at the final
  parameters costs more than the budget, every margin is shifted down by the
  smallest amount that makes the hard mean cost fit (a bisection; the cost falls
  monotonically with the shift). For a threshold this is the largest threshold
  below the tuned one whose hard cost is within budget.

Shape legend:
    n  queries
    M  models in the cascade, cheapest first
    K  optimisation steps
    C  candidate parameters (a grid) or candidate thresholds (`threshold_curve`)
    S  seeds
    B  budgets
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float

from ._errors import PolicyError
from ._metrics import (
    OBJECTIVE_FLOOR,
    Baseline,
    Summary,
    baseline,
    ibc_lift,
    objective,
)
from ._observations import Observations
from ._policies import (
    Bands,
    ChainedThreshold,
    Params,
    Policy,
    Threshold,
    first_false,
    query_cost,
)
from ._tuned import register_family

__all__ = [
    "SoftBands",
    "SoftCascade",
    "SoftFit",
    "SoftThreshold",
    "SoftTuned",
    "TrainConfig",
    "budget_sweep",
    "escalation_probabilities",
    "expected_summary",
    "fit",
    "hard_summary",
    "stop_costs",
    "stop_probabilities",
    "threshold_curve",
    "tune_soft",
]

# The trained parameters are float32; a bisection on a float32 shift has nothing
# left to halve after this many steps from any interval of width <= 4.
_BISECTION_STEPS = 48


_OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd, "adamw": optax.adamw}

# --------------------------------------------------------------------------------
# Soft policy families: a hard rule "margin >= 0" and a soft one.
# --------------------------------------------------------------------------------


class _Margins:
    """Mixin: per-step margins over a confidence matrix, and a monotone shift.

    A family defines `margin(params, confidence, step)`, whose sign is its hard
    rule (`escalate_at` must be `margin >= 0`; `x - y >= 0` is exactly `x >= y` in
    IEEE arithmetic, so the two never disagree), and `shift(params, delta)`, which
    lowers every margin by about `delta` and so escalates less as `delta` grows.
    """

    def margin(self, params, confidence, step):
        raise NotImplementedError

    def shift(self, params, delta):
        raise NotImplementedError

    def inputs(self, obs: Observations) -> Float[Array, "queries models"]:
        """What `margins` reads: the confidences (the learned router reads more)."""
        return obs.confidences

    def margins(
        self, params: Params, inputs: Float[Array, "queries models"]
    ) -> Float[Array, "queries models"]:
        """`[n, M]` margin of every query at every step (the last is never read)."""
        steps = jnp.arange(inputs.shape[1])
        per_step = jax.vmap(self.margin, in_axes=(None, 0, 0))
        return jax.vmap(per_step, in_axes=(None, 0, None))(params, inputs, steps)


@attrs.frozen
class SoftThreshold(_Margins, Threshold):
    """One threshold t at every step; soft escalation `sigmoid((t - c) / T)`.

    As a hard policy it is `Threshold` (escalate when `c <= t`), so it saves,
    loads and routes like one, under its own name.
    """

    name = "soft-threshold"

    def margin(self, params, confidence, step):
        return params - confidence

    def shift(self, params, delta):
        return params - delta


@attrs.frozen
class SoftCascade(_Margins, ChainedThreshold):
    """One threshold per step of an M-model cascade; soft `sigmoid((t_i - c) / T)`.

    Params: `[M - 1]` thresholds. Hard rule: `ChainedThreshold`.
    """

    name = "soft-cascade"

    def margin(self, params, confidence, step):
        params = jnp.asarray(params)
        return params[jnp.minimum(step, params.shape[0] - 1)] - confidence

    def shift(self, params, delta):
        return params - delta


@attrs.frozen
class SoftBands(_Margins, Bands):
    """Escalate when the confidence lies in one of `count` bands `[lo, hi]`.

    Params: `[count, 2]`. The margin of a band is `min(c - lo, hi - c)` (at least
    0 exactly inside it) and of several bands the largest of theirs; soft
    escalation is `sigmoid(margin / T)`. Both are differentiable almost
    everywhere (a min and a max of smooth functions). The shift narrows every
    band from both ends. Grid: the double threshold (count 1) or the triple
    threshold (count 2) on B bins, as bands.

    Attributes:
        count: the number of bands, 1 or 2.
    """

    count: int = 1
    name = "soft-bands"

    def __attrs_post_init__(self):
        if self.count not in (1, 2):
            raise PolicyError(f"`count` must be 1 or 2 bands, got {self.count!r}")

    def margin(self, params, confidence, step):
        params = jnp.asarray(params)
        inside = jnp.minimum(confidence - params[:, 0], params[:, 1] - confidence)
        return jnp.max(inside)

    def shift(self, params, delta):
        return params + jnp.asarray([delta, -delta])

    def grid(self, bins, num_models):
        from ._policies import DoubleThreshold, TripleThreshold

        if self.count == 1:
            pairs = DoubleThreshold().grid(bins, num_models)
            return np.asarray(pairs[:, None, :])
        triples = TripleThreshold().grid(bins, num_models)
        bands = TripleThreshold().as_bands(triples)
        # `as_bands` writes the half-open band as [-1, a]; keep it in [0, 1] so
        # the soft margin is not dominated by the out-of-range end.
        bands[:, 0, 0] = np.minimum(bands[:, 0, 0], 0.0)
        return bands


SOFT_POLICIES: dict[str, Policy] = {
    p.name: p for p in (SoftThreshold(), SoftCascade(), SoftBands())
}


# --------------------------------------------------------------------------------
# Expected outcome of a soft policy.
# --------------------------------------------------------------------------------


def escalation_probabilities(
    margins: Float[Array, "... models"],
    forced: Bool[Array, "..."],
    temperature: Float[Array, ""] | float,
) -> Float[Array, "... models"]:
    """`sigmoid(margin / T)` at every step; 1 at step 0 where `forced`, 0 at the last.

    Args:
        margins: `[..., M]` margins (the last step's is ignored).
        forced: `[...]` the fixed-answer override (the first answer never stands).
        temperature: `[]` T > 0; as T -> 0 this tends to the hard rule.
    """
    probs = jax.nn.sigmoid(margins / temperature)
    probs = probs.at[..., 0].set(jnp.where(forced, 1.0, probs[..., 0]))
    return probs.at[..., -1].set(0.0)


def stop_probabilities(
    escalate: Float[Array, "... models"],
) -> Float[Array, "... models"]:
    """`pi_k = e_0 ... e_(k-1) (1 - e_k)`: the chance that model k's answer stands.

    Args:
        escalate: `[..., M]` escalation probability at each step (the last 0).

    Returns:
        `[..., M]`, summing to 1 over the models.
    """
    # Reaching step k needs every earlier step to escalate: an exclusive cumprod.
    reach = jnp.cumprod(escalate, axis=-1)
    reach = jnp.concatenate([jnp.ones_like(reach[..., :1]), reach[..., :-1]], axis=-1)
    return reach * (1.0 - escalate)


def stop_costs(
    costs: Float[Array, "... models"], verifier_costs: Float[Array, " models"]
) -> Float[Array, "... models"]:
    """`[..., M]` what a cascade pays when model k's answer stands (`query_cost`)."""
    m = costs.shape[-1]
    per_stop = jax.vmap(query_cost, in_axes=(None, 0, None, None))
    flat = costs.reshape(-1, m)
    out = jax.vmap(per_stop, in_axes=(None, None, 0, None))(
        Threshold(), jnp.arange(m), flat, verifier_costs
    )
    return out.reshape(costs.shape)


def _expected(
    margins: Float[Array, "queries models"],
    obs: Observations,
    temperature,
) -> Summary:
    pi = stop_probabilities(
        escalation_probabilities(margins, obs.escalate, temperature)
    )
    cost = jnp.sum(pi * stop_costs(obs.costs, obs.verifier_costs), axis=-1)
    performance = jnp.sum(pi * obs.scores, axis=-1)
    return Summary(cost.mean(), performance.mean())


def expected_summary(
    policy: _Margins,
    params: Params,
    obs: Observations,
    temperature: Float[Array, ""] | float,
    inputs: Any = None,
) -> Summary:
    """Expected mean cost and performance of the soft policy over the rows.

    Differentiable in `params`, `temperature` and every field of `obs` (costs,
    verifier costs, scores, confidences).

    Args:
        policy: a soft family (`SoftThreshold`, `SoftCascade`, `SoftBands`, or a
            `LearnedRouter`).
        params: its parameters.
        obs: `n` queries.
        temperature: `[]` T > 0.
        inputs: what `policy.margins` reads; `policy.inputs(obs)` when None.

    Example:
        >>> obs = Observations([[0.0, 1.0]], [[0.5, 1.0]], [1.0, 10.0], 0.0)
        >>> s = expected_summary(SoftThreshold(), 0.5, obs, 0.1)
        >>> float(s.cost), float(s.performance)  # sigmoid(0) = 1/2
        (6.0, 0.5)
    """
    if inputs is None:
        inputs = policy.inputs(obs)
    return _expected(policy.margins(params, inputs), obs, temperature)


def _hard(margins, obs: Observations) -> Summary:
    escalate = margins >= 0
    escalate = escalate.at[:, 0].set(escalate[:, 0] | obs.escalate)
    stop = jax.vmap(first_false)(escalate)
    cost = jnp.take_along_axis(
        stop_costs(obs.costs, obs.verifier_costs), stop[:, None], axis=1
    )[:, 0]
    performance = jnp.take_along_axis(obs.scores, stop[:, None], axis=1)[:, 0]
    if obs.num_queries == 0:
        return Summary(jnp.zeros(()), jnp.zeros(()))
    return Summary(cost.mean(), performance.mean())


def hard_summary(
    policy: _Margins, params: Params, obs: Observations, inputs: Any = None
) -> Summary:
    """Mean cost and performance of the hard policy (`margin >= 0` escalates).

    For the soft threshold families this equals `automix_jax.summarize` with the
    same parameters (the hard rule is the parent family's `escalate_at`).
    """
    if inputs is None:
        inputs = policy.inputs(obs)
    return _hard(policy.margins(params, inputs), obs)


# --------------------------------------------------------------------------------
# Exact search over a shared threshold.
# --------------------------------------------------------------------------------


class Curve(NamedTuple):
    """Every distinct hard routing of a shared threshold (fields `[C]`).

    Attributes:
        threshold: candidate thresholds, ascending; -1 routes only the forced rows.
        summary: the mean cost and performance of each.
    """

    threshold: Float[Array, " candidates"]
    summary: Summary


def threshold_curve(obs: Observations) -> Curve:
    """The hard shared-threshold policy at every threshold that changes its routing.

    A query stops at step k or later exactly when `max(c_0..c_(k-1)) <= t` (with
    c_0 taken as -2 where the first answer is forced on). So its outcome changes
    only at those prefix maxima, and the mean outcome at any t is the mean outcome
    below every confidence plus the sum of the changes at prefix maxima <= t: one
    sort and one cumulative sum over the `n (M - 1)` events, no loop over rows or
    thresholds. Any threshold routes exactly like the largest candidate at or
    below it, so the best candidate is the best threshold, grid points included.

    Returns:
        A `Curve` with `C = n (M - 1) + 1` candidates (repeated values included).
    """
    n, m = obs.confidences.shape
    conf = obs.confidences[:, : m - 1]
    conf = conf.at[:, 0].set(jnp.where(obs.escalate, -2.0, conf[:, 0]))
    # events[:, k - 1]: the threshold from which the query goes past model k - 1.
    events = jax.lax.cummax(conf, axis=1)
    per_stop_cost = stop_costs(obs.costs, obs.verifier_costs)
    delta_cost = jnp.diff(per_stop_cost, axis=1).reshape(-1)
    delta_perf = jnp.diff(obs.scores, axis=1).reshape(-1)
    order = jnp.argsort(events.reshape(-1))
    sorted_events = events.reshape(-1)[order]
    zero = jnp.zeros((1,))
    cum_cost = jnp.concatenate([zero, jnp.cumsum(delta_cost[order])])
    cum_perf = jnp.concatenate([zero, jnp.cumsum(delta_perf[order])])
    candidates = jnp.concatenate(
        [jnp.full((1,), -1.0), jnp.maximum(sorted_events, -1.0)]
    )
    # Ties: a threshold takes every event at or below it.
    taken = jnp.searchsorted(sorted_events, candidates, side="right")
    scale = 1.0 / max(n, 1)
    cost = per_stop_cost[:, 0].sum() * scale + cum_cost[taken] * scale
    perf = obs.scores[:, 0].sum() * scale + cum_perf[taken] * scale
    return Curve(candidates, Summary(cost, perf))


# --------------------------------------------------------------------------------
# Objectives and the training loop.
# --------------------------------------------------------------------------------


@attrs.frozen
class TrainConfig:
    """Settings of `fit` (hashable: a static argument of the jitted loop).

    Attributes:
        steps: K optimisation steps.
        learning_rate: Adam's step size for the policy parameters.
        temperature_start: T at the first step.
        temperature_end: T at the last step; it falls geometrically between.
        penalty: rho, the quadratic penalty on budget overruns (in units of the
            small-to-large cost gap).
        multiplier_rate: the step of the projected gradient ascent on the
            Lagrange multiplier.
        optimizer: the optax optimiser of the policy parameters: "adam", "sgd"
            or "adamw".
    """

    steps: int = 300
    learning_rate: float = 0.01
    temperature_start: float = 0.1
    temperature_end: float = 0.002
    penalty: float = 20.0
    multiplier_rate: float = 0.5
    optimizer: str = "adam"

    def __attrs_post_init__(self):
        if self.optimizer not in _OPTIMIZERS:
            raise PolicyError(
                f"`optimizer` must be one of {', '.join(_OPTIMIZERS)}, got "
                f"{self.optimizer!r}"
            )
        if self.steps < 1:
            raise PolicyError(f"`steps` must be at least 1, got {self.steps}")
        if not 0 < self.temperature_end <= self.temperature_start:
            raise PolicyError(
                "need 0 < `temperature_end` <= `temperature_start`, got "
                f"{self.temperature_end} and {self.temperature_start}"
            )

    def temperatures(self) -> Float[Array, " steps"]:
        """`[K]` the annealing schedule (geometric from start to end)."""
        ratio = self.temperature_end / self.temperature_start
        frac = jnp.arange(self.steps) / max(self.steps - 1, 1)
        return self.temperature_start * ratio**frac


def _cost_scale(base: Baseline) -> Float[Array, ""]:
    # Budget overruns are measured in units of the small-to-large cost gap, so
    # the penalty means the same on any price scale (1 where there is no gap).
    gap = base.cost[-1] - base.cost[0]
    return jnp.where(gap > 1e-6, gap, 1.0)


def soft_objective(
    summary: Summary,
    base: Baseline,
    num_rows: int,
    budget: Float[Array, ""] | None = None,
    multiplier: Float[Array, ""] | float = 0.0,
    penalty: float = 0.0,
) -> Float[Array, ""]:
    """What training maximises.

    Without a budget: `automix_jax.objective` of the IBC lift (Δ_IBC, or IBC_M
    when the baseline is degenerate). With a budget b: the augmented Lagrangian
    `P - mu g - rho / 2 max(g, 0)^2`, `g = (C - b) / (C_L - C_S)`.
    """
    if budget is None:
        return objective(ibc_lift(summary, base, num_rows=num_rows))
    g = (summary.cost - budget) / _cost_scale(base)
    return (
        summary.performance
        - multiplier * g
        - 0.5 * penalty * jnp.square(jnp.maximum(g, 0.0))
    )


class SoftFit(NamedTuple):
    """What `fit` returns.

    Attributes:
        params: the parameters after the last step.
        multiplier: `[]` the learned Lagrange multiplier (0 without a budget).
        history: `Summary` of the soft policy before each step (fields `[K]`).
        temperature: `[K]` the schedule.
    """

    params: Params
    multiplier: Float[Array, ""]
    history: Summary
    temperature: Float[Array, " steps"]


class _Carry(NamedTuple):
    params: Params
    multiplier: Float[Array, ""]
    opt_state: Any


def make_step(policy: _Margins, config: TrainConfig, obs, inputs, budget):
    """One optimisation step `(carry, temperature) -> (carry, summary)`.

    Exposed so that tests can count its traces; `fit` scans it.
    """
    base = baseline(obs.scores, obs.costs)
    optimiser = _OPTIMIZERS[config.optimizer](config.learning_rate)

    def loss(params, multiplier, temperature):
        summary = _expected(policy.margins(params, inputs), obs, temperature)
        value = soft_objective(
            summary, base, obs.num_queries, budget, multiplier, config.penalty
        )
        return -value, summary

    def step(carry: _Carry, temperature):
        grad_fn = jax.value_and_grad(loss, has_aux=True)
        (_, summary), grads = grad_fn(carry.params, carry.multiplier, temperature)
        updates, opt_state = optimiser.update(grads, carry.opt_state, carry.params)
        params = optax.apply_updates(carry.params, updates)
        multiplier = carry.multiplier
        if budget is not None:
            # Projected gradient ascent: raise mu while the budget is overrun.
            g = (summary.cost - budget) / _cost_scale(base)
            multiplier = jnp.maximum(multiplier + config.multiplier_rate * g, 0.0)
        return _Carry(params, multiplier, opt_state), summary

    return step, optimiser


def _fit(policy, params, obs, inputs, budget, config, step_wrapper=None):
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    step, optimiser = make_step(policy, config, obs, inputs, budget)
    if step_wrapper is not None:
        step = step_wrapper(step)
    carry = _Carry(params, jnp.zeros(()), optimiser.init(params))
    temperatures = config.temperatures()
    carry, history = jax.lax.scan(step, carry, temperatures)
    return SoftFit(carry.params, carry.multiplier, history, temperatures)


@functools.partial(jax.jit, static_argnames=("policy", "config"))
def fit(
    policy: _Margins,
    params: Params,
    obs: Observations,
    budget: Float[Array, ""] | None = None,
    *,
    config: TrainConfig = TrainConfig(),
    inputs: Any = None,
) -> SoftFit:
    """Trains a soft policy by Adam while annealing the temperature (one compile).

    The K steps run in one `lax.scan` inside one `jax.jit`: the step is traced
    once per shape, not once per step. `jax.vmap` over `budget` (or over `obs` for
    seeds) trains many at once.

    Args:
        policy: the soft family (static).
        params: the starting parameters (say, the best grid point).
        obs: the training rows.
        budget: `[]` mean-cost budget, or None to maximise the IBC lift.
        config: the schedule (static).
        inputs: what `policy.margins` reads (`policy.inputs(obs)` when None).

    Returns:
        A `SoftFit`; evaluate its parameters hard with `hard_summary`.
    """
    if inputs is None:
        inputs = policy.inputs(obs)
    return _fit(policy, params, obs, inputs, budget, config)


def _feasible_shift(policy, params, obs, inputs, budget):
    """Smallest shift (>= 0) whose hard mean cost is within `budget`; a bisection.

    The hard cost does not rise as the shift grows (every margin falls, so no
    query goes further down the cascade), which is what makes bisection valid.
    At the upper end every margin is negative and only forced rows escalate.
    """

    def cost(delta):
        return _hard(policy.margins(policy.shift(params, delta), inputs), obs).cost

    spread = jnp.max(jnp.abs(policy.margins(params, inputs))) + 1.0

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        ok = cost(mid) <= budget
        return jnp.where(ok, lo, mid), jnp.where(ok, mid, hi)

    _, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, body, (jnp.zeros(()), spread))
    return jnp.where(cost(jnp.zeros(())) <= budget, 0.0, hi)


# --------------------------------------------------------------------------------
# The whole tuning pipeline: grid start, annealed training, hard finish.
# --------------------------------------------------------------------------------


class SoftTuned(NamedTuple):
    """The outcome of `tune_soft` (add a leading axis when vmapped).

    Attributes:
        params: the final hard parameters.
        summary: their hard mean cost and performance on the rows tuned on.
        objective: `[]` the hard objective (lift; or performance, -inf-like
            `OBJECTIVE_FLOOR` when over budget).
        met: `[]` whether the hard mean cost is within the budget (True without
            one).
        start: the grid point training started from.
        annealed: the parameters straight after training (before any finish).
        annealed_summary: their hard figures.
        annealed_objective: `[]` their hard objective.
        multiplier: `[]` the learned Lagrange multiplier.
        history: the soft `Summary` at every step (fields `[K]`).
    """

    params: Params
    summary: Summary
    objective: Float[Array, ""]
    met: Bool[Array, ""]
    start: Params
    annealed: Params
    annealed_summary: Summary
    annealed_objective: Float[Array, ""]
    multiplier: Float[Array, ""]
    history: Summary


def _hard_objective(summary, base, num_rows, budget):
    if budget is None:
        return objective(ibc_lift(summary, base, num_rows=num_rows))
    return jnp.where(summary.cost <= budget, summary.performance, OBJECTIVE_FLOOR)


def _tune_core(policy, grid, obs, inputs, budget, config, polish):
    base = baseline(obs.scores, obs.costs)
    n = obs.num_queries
    # 1. Start from the best grid point (every candidate scored at once).
    if grid is not None:
        hard_all = jax.vmap(lambda p: _hard(policy.margins(p, inputs), obs))(grid)
        value = _hard_objective(hard_all, base, n, budget)
        if budget is not None:
            # No grid point within budget: start from the cheapest.
            value = jnp.where(jnp.any(hard_all.cost <= budget), value, -hard_all.cost)
        start = jax.tree.map(lambda g: g[jnp.argmax(value)], grid)
    else:
        start = policy.init_params()
    # 2. Anneal.
    trained = _fit(policy, start, obs, inputs, budget, config)
    annealed = trained.params
    annealed_summary = _hard(policy.margins(annealed, inputs), obs)
    annealed_objective = _hard_objective(annealed_summary, base, n, budget)
    params = annealed
    # 3. Feasibility: shift the margins down until the hard cost fits.
    if budget is not None:
        params = policy.shift(
            annealed, _feasible_shift(policy, annealed, obs, inputs, budget)
        )
    summary = _hard(policy.margins(params, inputs), obs)
    value = _hard_objective(summary, base, n, budget)
    # 4. Polish (shared threshold): the exact best over every distinct routing.
    if polish:
        curve = threshold_curve(obs)
        exact = _hard_objective(curve.summary, base, n, budget)
        best = jnp.argmax(exact)
        better = exact[best] > value
        params = jnp.where(better, curve.threshold[best], params)
        summary = jax.tree.map(
            lambda a, b: jnp.where(better, a[best], b), curve.summary, summary
        )
        value = jnp.maximum(exact[best], value)
    met = jnp.asarray(True) if budget is None else summary.cost <= budget
    return SoftTuned(
        params,
        summary,
        value,
        met,
        start,
        annealed,
        annealed_summary,
        annealed_objective,
        trained.multiplier,
        trained.history,
    )


@functools.partial(jax.jit, static_argnames=("policy", "config", "polish"))
def _tune_jit(policy, grid, obs, inputs, budget, config, polish):
    return _tune_core(policy, grid, obs, inputs, budget, config, polish)


def _start_grid(policy, bins: int, num_models: int):
    """The start candidates as float32 arrays; None for a family without a grid
    (the learned router starts from `policy.init_params()`)."""
    if hasattr(policy, "init_params"):
        return None
    return jax.tree.map(
        lambda g: jnp.asarray(g, jnp.float32), policy.grid(bins, num_models)
    )


def tune_soft(
    policy: _Margins,
    obs: Observations,
    budget: float | None = None,
    *,
    config: TrainConfig = TrainConfig(),
    bins: int = 8,
    polish: bool | None = None,
    inputs: Any = None,
    grid: Params | None = None,
) -> SoftTuned:
    """Tunes a soft policy: best grid start, annealed Adam, hard finish.

    Args:
        policy: a soft family or a `LearnedRouter`.
        obs: the rows to tune on.
        budget: a mean-cost budget, or None to maximise the IBC lift.
        config: the training schedule.
        bins: B, the grid the start is chosen from.
        polish: finish with the exact threshold search (`threshold_curve`);
            default True for `SoftThreshold`, and only valid for it.
        inputs: what `policy.margins` reads (`policy.inputs(obs)` when None).
        grid: the start candidates; `policy.grid(bins, M)` when None.

    Returns:
        A `SoftTuned`. With a budget the hard policy meets it whenever any
        policy of the family can (see `met`): the feasibility shift ensures it.
    """
    if polish is None:
        polish = isinstance(policy, SoftThreshold)
    if polish and not isinstance(policy, SoftThreshold):
        raise PolicyError("`polish` is the exact shared-threshold search")
    if inputs is None:
        inputs = policy.inputs(obs)
    if grid is None:
        grid = _start_grid(policy, bins, obs.num_models)
    if budget is not None:
        budget = jnp.asarray(budget, jnp.float32)
    return _tune_jit(policy, grid, obs, inputs, budget, config, polish)


@functools.partial(jax.jit, static_argnames=("policy", "config", "polish"))
def _sweep(policy, grid, obs, inputs, budgets, config, polish):
    tune_one = functools.partial(
        _tune_core, policy, grid, obs, inputs, config=config, polish=polish
    )
    return jax.vmap(lambda b: tune_one(budget=b))(budgets)


def budget_sweep(
    policy: _Margins,
    obs: Observations,
    budgets: Float[Array, " budgets"],
    *,
    config: TrainConfig = TrainConfig(),
    bins: int = 8,
    polish: bool = False,
    inputs: Any = None,
) -> SoftTuned:
    """Tunes one policy per budget in a single vmapped, jitted run.

    Each budget's hard mean cost and performance trace the cost-quality curve.

    Args:
        budgets: `[B]` mean-cost budgets.
        (the rest as in `tune_soft`; `polish` defaults to False here so that the
        figures show what training and the feasibility step reach alone.)

    Returns:
        A `SoftTuned` whose fields have a leading axis B.
    """
    if inputs is None:
        inputs = policy.inputs(obs)
    grid = _start_grid(policy, bins, obs.num_models)
    budgets = jnp.asarray(budgets, jnp.float32)
    return _sweep(policy, grid, obs, inputs, budgets, config, polish)


def scaled_costs(obs: Observations, ratio: Float[Array, ""]) -> Observations:
    """`obs` with the last model's cost set to `ratio` times the first model's."""
    costs = obs.costs.at[:, -1].set(ratio * obs.costs[:, 0])
    return Observations(
        obs.scores, obs.confidences, costs, obs.verifier_costs, obs.escalate
    )


@functools.partial(jax.jit, static_argnames=("policy", "config"))
def tuned_lift_gradient(
    policy: _Margins,
    params: Params,
    obs: Observations,
    ratio: Float[Array, ""],
    *,
    config: TrainConfig = TrainConfig(),
    budget: Float[Array, ""] | None = None,
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """The tuned soft objective and its derivative in the large model's cost ratio.

    Training is a differentiable function of the costs (a `lax.scan` of smooth
    steps), so reverse-mode differentiation through the whole run gives how the
    *tuned* objective moves when the large model gets dearer or cheaper: the
    direct effect on cost and the baseline, and the effect through the retuned
    parameters. The objective is the soft one at the final temperature.

    Args:
        params: the starting parameters.
        ratio: `[]` the large model's cost over the small model's.
        budget: with a budget, the objective is the augmented Lagrangian (at the
            optimum: the performance the budget buys).

    Returns:
        `(objective, d objective / d ratio)`.
    """

    def tuned(r):
        scaled = scaled_costs(obs, r)
        inputs = policy.inputs(scaled)
        out = _fit(policy, params, scaled, inputs, budget, config)
        summary = _expected(
            policy.margins(out.params, inputs), scaled, out.temperature[-1]
        )
        base = baseline(scaled.scores, scaled.costs)
        return soft_objective(
            summary, base, obs.num_queries, budget, out.multiplier, config.penalty
        )

    return jax.value_and_grad(tuned)(jnp.asarray(ratio, jnp.float32))


def sample_rows(n_train: int, train_size: int, seeds: int, seed: int = 0) -> np.ndarray:
    """`[S, k]` row indices, each seed a permutation's prefix (as `evaluate`)."""
    return np.stack(
        [
            np.random.default_rng(seed + s).permutation(n_train)[:train_size]
            for s in range(seeds)
        ]
    )


@functools.partial(jax.jit, static_argnames=("policy", "config", "polish"))
def _seeds(
    policy, grid, train, train_inputs, idx, val, val_inputs, budget, config, polish
):
    val_base = baseline(val.scores, val.costs)

    def one(rows):
        out = _tune_core(
            policy, grid, train[rows], train_inputs[rows], budget, config, polish
        )
        val_summary = _hard(policy.margins(out.params, val_inputs), val)
        val_lift = ibc_lift(val_summary, val_base, num_rows=val.num_queries)
        return out, val_summary, val_lift

    return jax.vmap(one)(idx)


def tune_seeds(
    policy: _Margins,
    train: Observations,
    val: Observations,
    *,
    seeds: int = 10,
    train_size: int = 1000,
    budget: float | None = None,
    config: TrainConfig = TrainConfig(),
    bins: int = 8,
    polish: bool | None = None,
    train_inputs: Any = None,
    val_inputs: Any = None,
    seed: int = 0,
):
    """The AutoMix seeds protocol for a soft or learned policy, vmapped over seeds.

    Seed s tunes on the rows `sample_rows(...)[s]` of `train` (the same samples
    `automix_jax.evaluate` draws) and is scored hard on all of `val`.

    Returns:
        `(tuned, val_summary, val_lift)`: a `SoftTuned`, a `Summary` and a `Lift`,
        every field with a leading axis S.
    """
    if polish is None:
        polish = isinstance(policy, SoftThreshold)
    train_inputs = policy.inputs(train) if train_inputs is None else train_inputs
    val_inputs = policy.inputs(val) if val_inputs is None else val_inputs
    train_size = min(train_size, train.num_queries)
    idx = jnp.asarray(sample_rows(train.num_queries, train_size, seeds, seed))
    grid = _start_grid(policy, bins, train.num_models)
    if budget is not None:
        budget = jnp.asarray(budget, jnp.float32)
    return _seeds(
        policy, grid, train, train_inputs, idx, val, val_inputs, budget, config, polish
    )


# Saved soft policies route as their hard parent family, under their own name.
register_family("soft-threshold", lambda tuned: SoftThreshold())
register_family("soft-cascade", lambda tuned: SoftCascade())
register_family("soft-bands", lambda tuned: SoftBands(count=len(tuned.params)))


# --------------------------------------------------------------------------------
# Soft tuning inside the evaluation protocol (what a `SoftSpec` compiles to).
# --------------------------------------------------------------------------------


@attrs.frozen
class TrainedSoft(Policy):
    """A soft family whose one candidate is trained on the rows being tuned on.

    In `automix_jax.evaluate` every seed calls `expand` on its own train sample:
    it runs `tune_soft`'s steps (best grid start, annealing, the budget's
    feasibility shift, the exact polish for a shared threshold) inside the jitted,
    seed-vmapped protocol and returns the trained hard parameters as the single
    candidate. Routing is the hard parent family's.

    Attributes:
        base: `SoftThreshold()`, `SoftCascade()` or `SoftBands(...)`.
        config: the training schedule.
        budget: a mean-cost budget (also kept by the protocol), or None.
        bins: B of the start grid.
    """

    base: Any = attrs.field(factory=SoftThreshold)
    config: TrainConfig = attrs.field(factory=TrainConfig)
    budget: float | None = None
    bins: int = 8
    name = "soft"

    def family(self, num_models: int):
        """The soft family for M models: one threshold per step beyond two."""
        if isinstance(self.base, SoftThreshold) and num_models > 2:
            return SoftCascade()
        return self.base

    def decide(self, params, query):
        return self.family(query.confidences.shape[0]).decide(params, query)

    def grid(self, bins, num_models):
        family = self.family(num_models)
        return np.asarray(family.grid(self.bins, num_models), dtype=np.float32)

    def expand(self, grid, obs):
        base = self.family(obs.num_models)
        budget = None if self.budget is None else jnp.float32(self.budget)
        tuned = _tune_core(
            base,
            grid,
            obs,
            base.inputs(obs),
            budget,
            self.config,
            isinstance(base, SoftThreshold),
        )
        return jax.tree.map(lambda p: p[None], tuned.params)

    def describe(self, params):
        return self.base.describe(params)


def _from_spec(spec) -> TrainedSoft:
    """The policy a `SoftSpec` (see `automix_jax._specs`) describes."""
    base = {
        "threshold": SoftThreshold(),
        "cascade": SoftCascade(),
        "bands": SoftBands(),
    }[spec.form]
    config = TrainConfig(
        steps=spec.steps,
        learning_rate=spec.learning_rate,
        temperature_start=spec.temperature_start,
        temperature_end=spec.temperature_end,
        optimizer=spec.optimizer,
    )
    return TrainedSoft(base=base, config=config, budget=spec.budget)


def _register_spec() -> None:
    from ._specs import register_spec_family

    register_spec_family("soft", _from_spec)


_register_spec()
