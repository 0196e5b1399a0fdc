"""The AutoMix evaluation protocol: tune on train samples, evaluate on val, S seeds.

For each of S seeds, `train_size` rows are drawn without replacement from the train
split, each policy family is tuned on them (every candidate scored at once), and the
chosen parameters are evaluated on the whole val split. All seeds of one family run
in one jitted call (a vmap over seeds of a vmap over candidates of a vmap over rows).
Madaan et al. (2024), Section 5, use 10 seeds and 1000 training rows.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from ._data import Dataset
from ._errors import DegenerateError, PolicyError
from ._metrics import (
    LiftStatus,
    Summary,
    baseline,
    cost_quality_auc,
    ibc_lift,
    lift_message,
)
from ._observations import Observations
from ._policies import Bands, Policy, get_policy
from ._routing import _summarize, _tune, cheapest_best

logger = logging.getLogger("automix_jax")

DEFAULT_POLICIES = (
    "threshold",
    "double-threshold",
    "triple-threshold",
    "self-consistency",
    "always-small",
    "always-large",
    "random",
    "oracle",
    "best-of",
)
BEST_OF_FAMILIES = ("threshold", "double-threshold", "triple-threshold")


@attrs.frozen
class PolicyResult:
    """One policy's figures over the seeds (arrays are `[S]`).

    `train_lift` is what tuning maximised on each seed's sample: Δ_IBC, or the
    method's own slope IBC_M where the lift is undefined there; NaN for a policy
    that is not tuned.
    """

    policy: str
    lift: np.ndarray
    status: np.ndarray
    cost: np.ndarray
    performance: np.ndarray
    gap_recovered: np.ndarray
    train_lift: np.ndarray
    params: list
    families: list
    auc: float | None = None


@attrs.frozen
class Report:
    """Everything `evaluate` measured; `to_json()` gives the CLI's JSON object."""

    data: str
    models: tuple[str, ...]
    costs: list
    verifier_cost: list
    baseline_performance: list
    baseline_cost: list
    baseline_lift_status: int
    results: list[PolicyResult]
    seeds: int
    train_size: int
    bins: int
    notes: list[str]

    @property
    def gap_defined(self) -> bool:
        """Whether "gap recovered" means anything: the large model scores higher."""
        perf = self.baseline_performance
        return perf[-1] - perf[0] > 1e-6

    def to_json(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "models": list(self.models),
            "costs": self.costs,
            "verifier_cost": self.verifier_cost,
            "seeds": self.seeds,
            "train_size": self.train_size,
            "bins": self.bins,
            "baseline": {
                "performance": self.baseline_performance,
                "cost": self.baseline_cost,
                "auc": (self.baseline_performance[0] + self.baseline_performance[-1])
                / 2,
            },
            "lift_defined": self.baseline_lift_status == LiftStatus.OK,
            "lift_note": lift_message(self.baseline_lift_status) or None,
            "notes": self.notes,
            "results": [_result_json(r, self.gap_defined) for r in self.results],
        }


def _stats(values: np.ndarray, defined: np.ndarray | None = None) -> dict | None:
    # float64 so that equal float32 values give a std of exactly 0.
    values = np.asarray(values, dtype=np.float64)
    if defined is not None:
        values = values[defined]
    # Figures that do not exist (an untuned policy's train objective) are left out.
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def _result_json(result: PolicyResult, gap_defined: bool) -> dict[str, Any]:
    defined = result.status == LiftStatus.OK
    statuses = sorted({int(s) for s in result.status if s != LiftStatus.OK})
    return {
        "policy": result.policy,
        "ibc_lift": _stats(result.lift, defined),
        "lift_undefined": [lift_message(s) for s in statuses],
        "cost": _stats(result.cost),
        "performance": _stats(result.performance),
        "gap_recovered": _stats(result.gap_recovered) if gap_defined else None,
        "train_objective": _stats(result.train_lift),
        "auc": result.auc,
        "params": result.params,
        "family": result.families,
    }


@functools.partial(
    jax.jit, static_argnames=("policy", "num_segments", "small", "large")
)
def _seeds_family(
    policy,
    grid,
    segments,
    num_segments,
    train,
    idx,
    val,
    train_noise,
    val_noise,
    low,
    high,
    small,
    large,
):
    """Tunes each segment of `grid` on each seed's sample, evaluates on val.

    `segments[c]` says which family candidate c belongs to, so several families
    that share a kernel (the bands) are tuned in one compiled call. Random draws
    come in as `train_noise` `[S, n_train, M]` and `val_noise` `[S, n_val, M]`
    (None for policies that draw nothing), made on the host so that no random
    number generator is compiled into this function.

    Returns:
        Per-seed `(index, train objective, in range, val Summary, val Lift, chosen
        params)` with fields `[S, F, ...]`, and the val area under the
        cost-quality curve `[F]` of all of each segment's candidates.
    """
    segment_ids = jnp.arange(num_segments)
    mine = segments[None, :] == segment_ids[:, None]  # [F, C]
    base = baseline(val.scores, val.costs)

    def one_seed(rows, train_draws, val_draws):
        draws = None if train_draws is None else train_draws[rows]
        tuned = _tune(policy, grid, train[rows], draws, low, high, small, large)
        # The best candidate of each segment (the first of equals, as the
        # reference's max over its candidates does).
        value = jnp.where(mine, tuned.objective[None, :], -jnp.inf)
        index = cheapest_best(value, tuned.summary.cost[None, :])
        in_range = jnp.any(mine & tuned.in_range[None, :], axis=1)
        params = jax.tree.map(lambda c: c[index], tuned.candidates)
        summary = jax.vmap(_summarize, in_axes=(None, 0, None, None, None))(
            policy, params, val, None, val_draws
        )
        lift = ibc_lift(
            summary, base, small=small, large=large, num_rows=val.num_queries
        )
        return index, tuned.objective[index], in_range, summary, lift, params

    per_seed = jax.vmap(one_seed)(idx, train_noise, val_noise)
    first_draws = None if val_noise is None else val_noise[0]
    # The cost-quality curve on val of the candidates fitted on all train rows.
    every = jax.vmap(_summarize, in_axes=(None, 0, None, None, None))(
        policy, policy.expand(grid, train), val, None, first_draws
    )

    def segment_auc(member):
        # Other segments' points are moved past the large model's cost, where
        # they hold for no budget at all.
        costs = jnp.where(member, every.cost, jnp.inf)
        return cost_quality_auc(
            costs, every.performance, base, small=small, large=large
        )

    return per_seed, jax.vmap(segment_auc)(mine)


@functools.partial(jax.jit, static_argnames=("policies", "small", "large"))
def _fixed_policies(policies, val, small, large):
    """Val `Summary` and `Lift` (fields `[P]`) of untuned, non-random policies."""
    base = baseline(val.scores, val.costs)
    summaries = [_summarize(p, jnp.zeros(()), val, None) for p in policies]
    summary = jax.tree.map(lambda *x: jnp.stack(x), *summaries)
    return summary, ibc_lift(
        summary, base, small=small, large=large, num_rows=val.num_queries
    )


def _sample_rows(n_train: int, train_size: int, seeds: int, seed: int) -> np.ndarray:
    """`[S, k]` row indices, each seed without replacement."""
    return np.stack(
        [
            np.random.default_rng(seed + s).permutation(n_train)[:train_size]
            for s in range(seeds)
        ]
    )


def evaluate(
    data: Dataset,
    policies: Sequence[str | Policy] = DEFAULT_POLICIES,
    *,
    seeds: int = 10,
    train_size: int = 1000,
    bins: int = 8,
    train_split: str = "train",
    eval_split: str = "val",
    cost_range: tuple[float, float] | None = None,
    seed: int = 0,
    small: int = 0,
    large: int = -1,
) -> Report:
    """Runs the AutoMix protocol for every policy in `policies`.

    Args:
        data: the loaded rows (see `load_jsonl`).
        policies: family names or `Policy` objects; "best-of" is the union of
            threshold, double and triple threshold, chosen per seed on train.
        seeds: S, the number of train samples.
        train_size: rows per sample, capped (with a note) at the train split's size.
        bins: B, the grid of candidate edges.
        train_split, eval_split: the split names to tune and to evaluate on.
        cost_range: keep only candidates whose mean train cost lies in [low, high].
        seed: the first seed; seed s uses `seed + s`.
        small, large: the models the IBC slopes are measured between.

    Returns:
        A `Report`.

    Raises:
        DataError: a split is empty.
        DegenerateError: no candidate of a family lies in `cost_range`.
    """
    if seeds < 1:
        raise PolicyError(f"`seeds` must be at least 1, got {seeds}")
    if train_size < 1:
        raise PolicyError(f"`train_size` must be at least 1, got {train_size}")
    train = data.split_rows(train_split)
    val = data.split_rows(eval_split)
    notes: list[str] = []
    if train_size > len(train):
        note = (
            f"train_size {train_size} is more than the {len(train)} rows of split "
            f"{train_split!r}; each seed uses all {len(train)} (in another order)"
        )
        logger.info(note)
        notes.append(note)
        train_size = len(train)
    confidence = np.asarray(train.observations.confidences[:, small])
    if np.ptp(confidence) == 0:
        note = (
            f"every confidence of {data.models[small]!r} on the train split is "
            f"{confidence[0]:g}: the verifier signal carries no information, so a "
            f"tuned threshold policy can only route every query or none"
        )
        logger.info(note)
        notes.append(note)
    low, high = cost_range if cost_range is not None else (-math.inf, math.inf)
    idx = _sample_rows(len(train), train_size, seeds, seed)
    val_obs = val.observations
    base = baseline(val_obs.scores, val_obs.costs)
    base_status = int(
        ibc_lift(
            _summary_of(base, large), base, small=small, large=large, num_rows=len(val)
        ).status
    )
    if base_status != LiftStatus.OK:
        notes.append(lift_message(base_status))

    requested = [
        (get_policy(p) if isinstance(p, str) else p).with_bins(bins)
        if p != "best-of"
        else p
        for p in policies
    ]
    families = [p for p in requested if p != "best-of"]
    if "best-of" in requested:
        families += [get_policy(name) for name in BEST_OF_FAMILIES]
    outputs = _run_families(
        families,
        data,
        bins,
        train.observations,
        idx,
        val_obs,
        seed,
        low,
        high,
        small,
        large,
    )
    results = []
    for policy in requested:
        if policy == "best-of":
            results.append(_best_of(outputs, seeds))
            continue
        out = outputs[policy.name]
        auc = None if out.auc is None else float(out.auc)
        results.append(
            PolicyResult(
                policy=policy.name,
                lift=out.lift.lift,
                status=out.lift.status,
                cost=out.summary.cost,
                performance=out.summary.performance,
                gap_recovered=out.lift.gap_recovered,
                train_lift=out.train_objective,
                params=[policy.describe(p) for p in out.params],
                families=[policy.name] * seeds,
                auc=auc,
            )
        )
    obs = data.observations
    return Report(
        data=data.source,
        models=data.models,
        costs=_costs_json(obs),
        verifier_cost=np.asarray(obs.verifier_costs).tolist(),
        baseline_performance=np.asarray(base.performance).tolist(),
        baseline_cost=np.asarray(base.cost).tolist(),
        baseline_lift_status=base_status,
        results=results,
        seeds=seeds,
        train_size=train_size,
        bins=bins,
        notes=notes,
    )


def _summary_of(base, index):
    return Summary(base.cost[index], base.performance[index])


def _costs_json(obs: Observations) -> list:
    costs = np.asarray(obs.costs)
    if np.all(costs == costs[:1]):
        return costs[0].tolist()
    return costs.mean(axis=0).tolist()


class _FamilyOutput(NamedTuple):
    """One family's protocol outputs; per-seed fields are `[S]`."""

    policy: Policy
    params: list
    train_objective: np.ndarray
    summary: Summary
    lift: Any
    auc: float | None


def _run_families(families, data, bins, train, idx, val, seed, low, high, small, large):
    """Runs the protocol for every family.

    Compiles are what a run on a few hundred rows spends its time on, so families
    are grouped: every band family (threshold, double, triple, self-consistency)
    is tuned in one compiled call, and every untuned deterministic policy
    (always-small, always-large, oracle) is scored in another.
    """
    m = data.observations.num_models
    seeds = idx.shape[0]
    unique = list({p.name: p for p in families}.values())
    bands = [p for p in unique if isinstance(p, Bands)]
    fixed = [
        p for p in unique if not p.tunable and not p.needs_noise and p not in bands
    ]
    groups = [[p] for p in unique if p not in bands and p not in fixed]
    if bands:
        groups.append(bands)
    outputs = {}
    if fixed:
        summary, lift = jax.tree.map(
            np.asarray, _fixed_policies(tuple(fixed), val, small, large)
        )
        for f, policy in enumerate(fixed):
            outputs[policy.name] = _FamilyOutput(
                policy=policy,
                params=[None] * seeds,
                train_objective=np.full(seeds, np.nan),
                summary=jax.tree.map(lambda x, f=f: np.repeat(x[f], seeds), summary),
                lift=jax.tree.map(lambda x, f=f: np.repeat(x[f], seeds), lift),
                auc=None,
            )
    for group in groups:
        grids = [p.grid(bins, m) for p in group]
        if isinstance(group[0], Bands):
            # Every band family is scored by the one band kernel.
            kernel = Bands()
            kernel_grid = np.concatenate([p.as_bands(g) for p, g in zip(group, grids)])
        else:
            kernel, kernel_grid = group[0], grids[0]
        sizes = [len(g) for g in grids]
        segments = np.repeat(np.arange(len(group)), sizes)
        train_noise = val_noise = None
        if kernel.needs_noise:
            # Host-made draws, one per seed, query and model.
            rngs = [np.random.default_rng([seed, s]) for s in range(seeds)]
            shapes = train.confidences.shape, val.confidences.shape
            train_noise, val_noise = (
                np.stack([r.random(shape) for r in rngs]).astype(np.float32)
                for shape in shapes
            )
        per_seed, auc = _seeds_family(
            kernel,
            kernel_grid,
            segments,
            len(group),
            train,
            idx,
            val,
            train_noise,
            val_noise,
            low,
            high,
            small,
            large,
        )
        per_seed = jax.tree.map(np.asarray, per_seed)
        index, train_obj, in_range, summary, lift, chosen = per_seed
        auc = np.asarray(auc)
        offsets = np.cumsum([0, *sizes])
        for f, (policy, grid) in enumerate(zip(group, grids)):
            if not in_range[:, f].all():
                budget = getattr(policy, "budget", None)
                limit = f" within its budget {budget:g}" if budget is not None else ""
                raise DegenerateError(
                    f"no candidate of policy {policy.name!r} has a mean train cost "
                    f"in [{low:g}, {high:g}]{limit}; widen the cost range"
                    + (" or raise the budget" if budget is not None else "")
                )
            outputs[policy.name] = _FamilyOutput(
                policy=policy,
                params=[np.asarray(grid)[i] for i in index[:, f] - offsets[f]]
                if isinstance(kernel, Bands)
                else list(chosen[:, f]),
                train_objective=train_obj[:, f],
                summary=jax.tree.map(lambda x, f=f: x[:, f], summary),
                lift=jax.tree.map(lambda x, f=f: x[:, f], lift),
                auc=auc[f],
            )
    return outputs


def _best_of(outputs, seeds: int) -> PolicyResult:
    """Per seed, the family with the best train objective (first wins ties)."""
    outs = [outputs[name] for name in BEST_OF_FAMILIES]
    train_obj = np.stack([out.train_objective for out in outs])  # [F, S]
    choice = np.argmax(train_obj, axis=0)
    seeds_range = np.arange(seeds)

    def pick(values):
        return np.stack(values)[choice, seeds_range]

    params, families = [], []
    for s, f in enumerate(choice):
        out = outs[f]
        params.append(out.policy.describe(out.params[s]))
        families.append(out.policy.name)
    return PolicyResult(
        policy="best-of",
        lift=pick([o.lift.lift for o in outs]),
        status=pick([o.lift.status for o in outs]),
        cost=pick([o.summary.cost for o in outs]),
        performance=pick([o.summary.performance for o in outs]),
        gap_recovered=pick([o.lift.gap_recovered for o in outs]),
        train_lift=train_obj[choice, seeds_range],
        params=params,
        families=families,
    )
