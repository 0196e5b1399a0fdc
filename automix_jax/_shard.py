"""Routing, metric sums and grid tuning over every JAX device, split by query.

A batch of observations is placed on a one-axis `jax.sharding.Mesh` whose axis
(`"queries"`) splits the rows; the verifier costs and the candidate parameters are
replicated. The jitted functions are the same ones that run on one device: XLA's
SPMD partitioner splits the per-query work and inserts the few collectives the sums
need, so nothing here schedules work by hand.

Results do not depend on the number of devices:

* rows are padded (masked rows) to a multiple of `BLOCK * devices`, so every device
  holds whole blocks; a padded row is routed like any other and then dropped;
* per-query outputs (`stop`, `cost`, `performance`) are elementwise, so they are the
  same on any number of devices;
* a mean is never a float32 sum across devices (whose order would change with the
  device count): each device sums fixed blocks of `BLOCK` consecutive rows, the same
  blocks for any device count, and the host adds the `[n / BLOCK]` block sums
  exactly in float64 (`math.fsum`).

Several hosts: start every process with `jax.distributed.initialize()` before any
other JAX call; `query_mesh()` then spans every device of every host
(`jax.devices()`), and each process must pass the same global batch (see
`docs/scale.md`).

Shape legend:
    n  queries (rows)
    N  rows after padding (a multiple of BLOCK * devices)
    B  blocks of BLOCK rows (N / BLOCK)
    M  models in the cascade, cheapest first
    C  candidate parameters of a grid
    L  cost weights λ of a sweep
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._errors import DegenerateError, PolicyError
from ._metrics import OBJECTIVE_FLOOR, Baseline, Summary, ibc_lift, objective
from ._observations import Observations, as_numpy
from ._policies import Params, Policy
from ._routing import Tuned, _outcome, draw_noise

QUERY_AXIS = "queries"

# Rows per block of a device-side partial sum. A block never straddles two devices
# (the padding makes N a multiple of BLOCK * devices), so each block sum is the
# same float32 number whatever the device count.
BLOCK = 256


def query_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (`"queries"`) over `devices` (default: all of them).

    With `jax.distributed` initialised, `jax.devices()` lists the devices of every
    host, so the default mesh spans the whole cluster.

    Example:
        >>> mesh = query_mesh()
        >>> mesh.shape["queries"] == jax.device_count()
        True
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise PolicyError("`devices` is empty; give at least one JAX device")
    return Mesh(np.asarray(devices), (QUERY_AXIS,))


class ShardedBatch(NamedTuple):
    """Observations padded and placed over a mesh.

    Attributes:
        observations: `Observations` of N rows, the per-query fields split over
            the mesh's query axis, the verifier costs replicated.
        valid: `[N]` True for the n real rows, False for padding.
        noise: `[N, M]` uniform draws for random policies (None for the others).
        num_rows: n, the real rows (the first n of N).
        mesh: the mesh the batch lives on.
    """

    observations: Observations
    valid: Bool[Array, " rows"]
    noise: Float[Array, "rows models"] | None
    num_rows: int
    mesh: Mesh


def padded_size(num_rows: int, num_devices: int) -> int:
    """The smallest multiple of `BLOCK * num_devices` that holds `num_rows` (>= 1)."""
    step = BLOCK * num_devices
    return max(1, math.ceil(num_rows / step)) * step


def _pad_rows(array: np.ndarray, size: int, fill) -> np.ndarray:
    if array.shape[0] == size:
        return array
    out = np.full((size, *array.shape[1:]), fill, dtype=array.dtype)
    out[: array.shape[0]] = array
    return out


def shard_observations(
    obs: Observations,
    mesh: Mesh | None = None,
    *,
    policy: Policy | None = None,
    key: PRNGKeyArray | None = None,
) -> ShardedBatch:
    """Pads `obs` with masked rows and splits it over the mesh's query axis.

    Padded rows have confidence 1, score 0 and cost 0; they are routed and then
    masked out of every sum and dropped from every per-query output.

    Args:
        obs: n queries (host or device arrays).
        mesh: from `query_mesh` (default: every device).
        policy: when it is random (`needs_noise`), its draws are made here for the
            n real rows with `key`, exactly as `automix_jax.route` draws them, so
            the decisions match the unsharded router's.
        key: consumed by random policies.

    Returns:
        A `ShardedBatch`.
    """
    mesh = query_mesh() if mesh is None else mesh
    n = obs.num_queries
    size = padded_size(n, mesh.size)
    fields = as_numpy(obs)
    rows = NamedSharding(mesh, PartitionSpec(QUERY_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())
    put = functools.partial(jax.device_put, device=rows)
    padded = Observations(
        put(_pad_rows(fields["scores"], size, 0.0)),
        put(_pad_rows(fields["confidences"], size, 1.0)),
        put(_pad_rows(fields["costs"], size, 0.0)),
        jax.device_put(fields["verifier_costs"], replicated),
        put(_pad_rows(fields["escalate"], size, False)),
    )
    valid = put(np.arange(size) < n)
    noise = None
    if policy is not None and policy.needs_noise:
        draws = np.asarray(draw_noise(policy, key, obs))
        noise = put(_pad_rows(draws, size, 0.0))
    return ShardedBatch(padded, valid, noise, n, mesh)


def _batch(obs, mesh, policy, key) -> ShardedBatch:
    if isinstance(obs, ShardedBatch):
        return obs
    return shard_observations(obs, mesh, policy=policy, key=key)


def _block_sums(values: Float[Array, "... rows"], valid) -> Float[Array, "... blocks"]:
    # Masked rows add exactly 0; each block is summed on the device holding it.
    values = jnp.where(valid, values, 0.0)
    return values.reshape(*values.shape[:-1], -1, BLOCK).sum(axis=-1)


def _exact_mean(block_sums: np.ndarray, count: int) -> np.ndarray:
    """Means over the last axis of float32 block sums, added exactly in float64.

    `math.fsum` rounds once, at the end, so the result does not depend on the order
    the blocks arrive in (that is, on how many devices produced them).
    """
    block_sums = np.asarray(block_sums, dtype=np.float64)
    flat = block_sums.reshape(-1, block_sums.shape[-1])
    totals = np.array([math.fsum(row) for row in flat.tolist()], dtype=np.float64)
    return totals.reshape(block_sums.shape[:-1]) / max(count, 1)


@functools.partial(jax.jit, static_argnames="policy")
def _outcome_jit(policy, params, obs, noise):
    return _outcome(policy, params, obs, None, noise)


def sharded_outcome(
    policy: Policy,
    params: Params,
    obs: Observations | ShardedBatch,
    *,
    mesh: Mesh | None = None,
    key: PRNGKeyArray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-query `(stop, cost, performance)` computed over every device.

    Args:
        policy: the family (static).
        params: one candidate's parameters (replicated).
        obs: n queries, or a `ShardedBatch` already placed.
        mesh: the mesh to place `obs` on (default: every device).
        key: consumed by random policies.

    Returns:
        `[n]` int32 stops, `[n]` float32 costs and `[n]` float32 performances as
        NumPy arrays, equal to `automix_jax.outcome` on one device.
    """
    batch = _batch(obs, mesh, policy, key)
    stop, cost, perf = _outcome_jit(
        policy, jnp.asarray(params), batch.observations, batch.noise
    )
    n = batch.num_rows
    return np.asarray(stop)[:n], np.asarray(cost)[:n], np.asarray(perf)[:n]


def sharded_route(
    policy: Policy,
    params: Params,
    obs: Observations | ShardedBatch,
    *,
    mesh: Mesh | None = None,
    key: PRNGKeyArray | None = None,
) -> np.ndarray:
    """`[n]` index of the model whose answer stands; see `sharded_outcome`."""
    return sharded_outcome(policy, params, obs, mesh=mesh, key=key)[0]


class ExactSummary(NamedTuple):
    """Means computed from device block sums added exactly on the host.

    Attributes:
        summary: `Summary` of float64 NumPy means (fields `[]`, or `[C]` for a
            grid).
        baseline: `Baseline` of float64 NumPy per-model means (fields `[M]`).
        num_rows: n.
    """

    summary: Summary
    baseline: Baseline
    num_rows: int


@functools.partial(jax.jit, static_argnames="policy")
def _grid_block_sums(policy, grid, obs, noise, valid):
    def one(params):
        _, cost, perf = _outcome(policy, params, obs, None, noise)
        return _block_sums(cost, valid), _block_sums(perf, valid)

    # One pass over the rows per candidate, vmapped: [C, B] partial sums.
    cost, perf = jax.vmap(one)(grid)
    # Each model's column is summed as a 1-D array, the same reduction as the
    # candidates' (a reduction over a transposed [M, N] view may be reordered
    # differently for different device counts).
    m = obs.num_models
    base_cost = jnp.stack([_block_sums(obs.costs[:, j], valid) for j in range(m)])
    base_perf = jnp.stack([_block_sums(obs.scores[:, j], valid) for j in range(m)])
    return cost, perf, base_cost, base_perf


def sharded_score_grid(
    policy: Policy,
    grid: Params,
    obs: Observations | ShardedBatch,
    *,
    mesh: Mesh | None = None,
    key: PRNGKeyArray | None = None,
) -> ExactSummary:
    """Mean cost and performance of every candidate (fields `[C]`), over all devices.

    Random policies share one draw per query across candidates, as in
    `automix_jax.score_grid`.

    Args:
        policy: the family (static).
        grid: candidates with a leading axis C (replicated).
        obs: n queries, or a `ShardedBatch`.
        mesh: the mesh to place `obs` on (default: every device).
        key: consumed by random policies.
    """
    batch = _batch(obs, mesh, policy, key)
    sums = _grid_block_sums(
        policy, jnp.asarray(grid), batch.observations, batch.noise, batch.valid
    )
    n = batch.num_rows
    cost, perf, base_cost, base_perf = (_exact_mean(s, n) for s in sums)
    return ExactSummary(Summary(cost, perf), Baseline(base_cost, base_perf), n)


def sharded_summarize(
    policy: Policy,
    params: Params,
    obs: Observations | ShardedBatch,
    *,
    mesh: Mesh | None = None,
    key: PRNGKeyArray | None = None,
) -> ExactSummary:
    """Mean cost and performance of one candidate (fields `[]`), over all devices."""
    grid = jnp.asarray(params)[None]
    out = sharded_score_grid(policy, grid, obs, mesh=mesh, key=key)
    summary = Summary(out.summary.cost[0], out.summary.performance[0])
    return out._replace(summary=summary)


def sharded_tune(
    policy: Policy,
    grid: Params,
    obs: Observations | ShardedBatch,
    *,
    mesh: Mesh | None = None,
    key: PRNGKeyArray | None = None,
    cost_range: tuple[float, float] = (-math.inf, math.inf),
    small: int = 0,
    large: int = -1,
) -> Tuned:
    """`automix_jax.tune` with the rows split over every device.

    The candidates' means come from `sharded_score_grid` (exact on the host), so
    the choice is the same for any number of devices. The lift and the objective
    are then computed by the same functions `tune` uses.

    Returns:
        A `Tuned` whose `summary` and `baseline` hold the float64 means.
    """
    batch = _batch(obs, mesh, policy, key)
    # A family whose candidates depend on the rows (say, a POMDP solved for each
    # λ) derives them from the real rows only, never from the padding.
    real = batch.observations[jnp.arange(batch.num_rows)]
    candidates = jax.jit(policy.expand)(jnp.asarray(grid), real)
    out = sharded_score_grid(policy, candidates, batch)
    summary, base = out.summary, out.baseline
    lift = ibc_lift(
        Summary(*(jnp.asarray(x, jnp.float32) for x in summary)),
        Baseline(*(jnp.asarray(x, jnp.float32) for x in base)),
        small=small,
        large=large,
        num_rows=out.num_rows,
    )
    low, high = cost_range
    in_range = (summary.cost >= low) & (summary.cost <= high)
    budget = getattr(policy, "budget", None)
    if budget is not None:
        # A family with its own budget keeps to it as well, as in `tune`.
        in_range &= summary.cost <= budget
    value = np.where(in_range, np.asarray(objective(lift)), OBJECTIVE_FLOOR)
    # The first of equal candidates wins, as in `tune`.
    index = int(np.argmax(value))
    return Tuned(np.asarray(index), candidates, value, summary, lift, in_range, base)


class Sweep(NamedTuple):
    """The best candidate for each cost weight λ of a sweep.

    Attributes:
        lambdas: `[L]` the cost weights.
        index: `[L]` the candidate maximising mean performance - λ * mean cost.
        cost: `[L]` its mean cost.
        performance: `[L]` its mean performance.
        grid_summary: `Summary` of every candidate (fields `[C]`).
    """

    lambdas: np.ndarray
    index: np.ndarray
    cost: np.ndarray
    performance: np.ndarray
    grid_summary: Summary


def lambda_sweep(
    policy: Policy,
    grid: Params,
    obs: Observations | ShardedBatch,
    lambdas: Float[Array, " lambdas"] | Sequence[float],
    *,
    mesh: Mesh | None = None,
    key: PRNGKeyArray | None = None,
) -> Sweep:
    """Traces the cost-quality curve: for each λ, the candidate with the best reward.

    The reward of a candidate is its mean performance minus λ times its mean cost
    (the per-query reward of the cascade POMDP, averaged). Every candidate is
    scored once over all devices (`sharded_score_grid`); the choice for every λ
    is then one `[L, C]` argmax.

    Args:
        policy: the family (static).
        grid: candidates with a leading axis C.
        obs: n queries, or a `ShardedBatch`.
        lambdas: `[L]` cost weights (>= 0).
        mesh, key: as in `sharded_score_grid`.
    """
    lambdas = np.asarray(lambdas, dtype=np.float64).reshape(-1)
    if lambdas.size == 0:
        raise DegenerateError("`lambdas` is empty; give at least one cost weight")
    out = sharded_score_grid(policy, grid, obs, mesh=mesh, key=key)
    cost, perf = out.summary
    reward = perf[None, :] - lambdas[:, None] * cost[None, :]
    index = np.argmax(reward, axis=1)
    return Sweep(lambdas, index, cost[index], perf[index], out.summary)


__all__ = [
    "BLOCK",
    "QUERY_AXIS",
    "ExactSummary",
    "ShardedBatch",
    "Sweep",
    "lambda_sweep",
    "padded_size",
    "query_mesh",
    "shard_observations",
    "sharded_outcome",
    "sharded_route",
    "sharded_score_grid",
    "sharded_summarize",
    "sharded_tune",
]
