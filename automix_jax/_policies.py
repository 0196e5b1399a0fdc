"""Meta-verifier policies: pure functions of one query, vmapped at the edge.

A policy answers one question per query: whose answer stands? It returns the index
of that model (`stop`, an int in [0, M)). A *cascade* policy runs the models in
order and, after each model i < M - 1, reads model i's verifier confidence and
decides to stop or escalate; it pays every model up to `stop` and a verification
for each of them but the last. A *direct* policy (one model alone) pays only the
model it names and no verification.

Every threshold-like policy has a grid of candidate parameters on B bins: edges
k / B for k = 0..B, computed as exact fractions (not k * (1 / B)), so a confidence
that equals an edge is on the same side of it for any B. Edges are inclusive, as
in the AutoMix reference: `confidence <= t` escalates.

Shape legend: M models, C candidates, n queries.
"""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._errors import PolicyError
from ._observations import Query, float_dtype

Params = Any  # a pytree of arrays; a grid of candidates has a leading axis C.


def bin_edges(bins: int) -> np.ndarray:
    """The B + 1 edges k / B, each the float nearest to the exact fraction.

    In JAX's default float (float32, or float64 under x64), so that a confidence
    stored in the same precision compares with an edge exactly.
    """
    if int(bins) != bins or bins < 1:
        raise PolicyError(f"`bins` must be a whole number >= 1, got {bins!r}")
    return (np.arange(bins + 1, dtype=np.float64) / bins).astype(float_dtype())


def first_false(escalate: Bool[Array, " models"]) -> Int[Array, ""]:
    """Index of the first model that does not escalate (the last always stops)."""
    escalate = escalate.at[-1].set(False)
    return jnp.argmin(escalate).astype(jnp.int32)


@attrs.frozen
class Policy:
    """A routing policy family.

    Subclasses set `name` and implement `escalate_at` (cascade policies) or
    override `decide` (the others), plus `grid` for tuning.

    Attributes:
        uses_verifier: whether the policy pays for verifications.
        direct: whether it runs one model alone instead of a cascade prefix.
        needs_noise: whether `decide` reads `query.noise` (random policies); the
            router then draws it once per query, shared by every candidate.
    """

    name = "policy"
    uses_verifier = True
    direct = False
    needs_noise = False
    tunable = True

    def escalate_at(
        self,
        params: Params,
        confidence: Float[Array, ""],
        step: Int[Array, ""],
        noise: Float[Array, ""],
    ) -> Bool[Array, ""]:
        """Whether to escalate after the model at `step` gave `confidence`.

        `noise` is a uniform draw in [0, 1) for this step (random policies only).
        """
        raise NotImplementedError

    def decide(self, params: Params, query: Query) -> Int[Array, ""]:
        """The index of the model whose answer stands, for one query.

        Args:
            params: one candidate's parameters (no leading axis).
            query: one query's `Query` (fields `[M]`).

        Returns:
            `[]` int32 in [0, M).
        """
        m = query.confidences.shape[0]
        steps = jnp.arange(m)
        escalate = jax.vmap(self.escalate_at, in_axes=(None, 0, 0, 0))(
            params, query.confidences, steps, query.noise
        )
        # The fixed-answer override: some first answers must never stand.
        escalate = escalate.at[0].set(escalate[0] | query.escalate)
        return first_false(escalate)

    def grid(self, bins: int, num_models: int) -> Params:
        """Every candidate parameter, stacked on a leading axis C (host arrays)."""
        raise NotImplementedError

    def expand(self, grid: Params, obs) -> Params:
        """The candidates to score on `obs`, from the grid (traced; default: as is).

        A family whose candidates depend on the rows it is tuned on (the POMDP
        solves its model, estimated from them, for every λ of its grid) overrides
        this; it runs inside the jitted, seed-vmapped tuning.
        """
        return grid

    def with_bins(self, bins: int) -> Policy:
        """This family for a grid of `bins` bins (for families that carry it)."""
        return self

    def describe(self, params: Params) -> Any:
        """`params` as plain Python numbers for JSON output."""
        return np.asarray(params).tolist()


# Bands use these out-of-range ends so that an unused band matches no confidence
# and a half-open one ("at most t") needs no special case.
_BELOW, _ABOVE = -1.0, 2.0


@attrs.frozen
class Bands(Policy):
    """Escalate when the confidence lies in any of K inclusive bands `[K, 2]`.

    Threshold, double and triple threshold and self-consistency are all bands
    (`as_bands`), so the protocol tunes all of them with one compiled function.
    """

    name = "bands"

    def escalate_at(self, params, confidence, step, noise):
        return jnp.any((params[:, 0] <= confidence) & (confidence <= params[:, 1]))

    def as_bands(self, params):
        """`params` (host arrays, any leading shape) as `[..., 2, 2]` bands."""
        return params


def _two_bands(lo1, hi1, lo2, hi2):
    first = np.stack([lo1, hi1], axis=-1)
    second = np.stack([lo2, hi2], axis=-1)
    return np.stack([first, second], axis=-2)


@attrs.frozen
class Threshold(Bands):
    """Escalate when the confidence is at most t (the same t at every step).

    Grid: t = k / B for k = 0..B (t = 0 escalates only confidence 0; t = 1
    escalates everything).
    """

    name = "threshold"

    def escalate_at(self, params, confidence, step, noise):
        return confidence <= params

    def as_bands(self, params):
        params = np.asarray(params)
        below, above = np.full_like(params, _BELOW), np.full_like(params, _ABOVE)
        return _two_bands(below, params, above, above)

    def grid(self, bins, num_models):
        return np.asarray(bin_edges(bins))


@attrs.frozen
class DoubleThreshold(Bands):
    """Escalate when the confidence lies in the band [lo, hi] (inclusive).

    Grid: every pair of edges lo < hi on the B-bin grid, the top edge 1.0 included
    (the AutoMix reference stops at (B - 1) / B and so never routes confidence 1).
    """

    name = "double-threshold"

    def escalate_at(self, params, confidence, step, noise):
        return (params[0] <= confidence) & (confidence <= params[1])

    def as_bands(self, params):
        params = np.asarray(params)
        above = np.full_like(params[..., 0], _ABOVE)
        return _two_bands(params[..., 0], params[..., 1], above, above)

    def grid(self, bins, num_models):
        edges = bin_edges(bins)
        pairs = list(itertools.combinations(range(bins + 1), 2))
        return np.asarray(edges[np.array(pairs)])


@attrs.frozen
class TripleThreshold(Bands):
    """Escalate when the confidence is at most a, or lies in [b, c] (a < b < c)."""

    name = "triple-threshold"

    def escalate_at(self, params, confidence, step, noise):
        low = confidence <= params[0]
        band = (params[1] <= confidence) & (confidence <= params[2])
        return low | band

    def as_bands(self, params):
        params = np.asarray(params)
        below = np.full_like(params[..., 0], _BELOW)
        return _two_bands(below, params[..., 0], params[..., 1], params[..., 2])

    def grid(self, bins, num_models):
        edges = bin_edges(bins)
        triples = list(itertools.combinations(range(bins + 1), 3))
        if not triples:
            raise PolicyError(
                f"triple-threshold needs at least 2 bins for three distinct edges, "
                f"got bins={bins}"
            )
        return np.asarray(edges[np.array(triples)])


@attrs.frozen
class ChainedThreshold(Policy):
    """One threshold per step of an M-model cascade, tuned jointly on the grid.

    Grid: every combination of B + 1 edges over the M - 1 steps, (B + 1)^(M - 1)
    candidates.
    """

    name = "chained-threshold"

    def escalate_at(self, params, confidence, step, noise):
        t = params[jnp.minimum(step, params.shape[0] - 1)]
        return confidence <= t

    def grid(self, bins, num_models):
        edges = bin_edges(bins)
        combos = list(itertools.product(range(bins + 1), repeat=num_models - 1))
        return np.asarray(edges[np.array(combos)])


@attrs.frozen
class SelfConsistency(Threshold):
    """A fixed threshold of 0.5, not tuned (the AutoMix paper's baseline)."""

    name = "self-consistency"
    tunable = False

    def grid(self, bins, num_models):
        return np.asarray([0.5], dtype=np.float32)


@attrs.frozen
class RandomRate(Policy):
    """Escalate at each step with probability `rate`, ignoring the verifier.

    Grid: rate = k / B for k = 0..B. Reads one uniform draw per step.
    """

    name = "random"
    uses_verifier = False
    needs_noise = True

    def escalate_at(self, params, confidence, step, noise):
        return noise < params

    def grid(self, bins, num_models):
        return bin_edges(bins)


@attrs.frozen
class AlwaysModel(Policy):
    """Use model `index` alone (no cascade, no verification).

    `AlwaysModel(0)` is "always-small"; `AlwaysModel(-1)` is "always-large".
    """

    index: int = 0
    uses_verifier = False
    direct = True
    tunable = False

    @property
    def name(self) -> str:  # type: ignore[override]
        return {0: "always-small", -1: "always-large"}.get(
            self.index, f"always-model-{self.index}"
        )

    def decide(self, params, query):
        m = query.confidences.shape[0]
        return jnp.asarray(self.index % m, dtype=jnp.int32)

    def grid(self, bins, num_models):
        return np.zeros((1,), dtype=np.float32)

    def describe(self, params):
        return None


@attrs.frozen
class Oracle(Policy):
    """The upper bound: stop at the first model whose score is the best of all.

    It reads the scores, so it cannot be run live; it pays no verification.
    """

    name = "oracle"
    uses_verifier = False
    tunable = False

    def decide(self, params, query):
        best = query.scores.max()
        return jnp.argmax(query.scores >= best).astype(jnp.int32)

    def grid(self, bins, num_models):
        return np.zeros((1,), dtype=np.float32)

    def describe(self, params):
        return None


def query_cost(
    policy: Policy,
    stop: Int[Array, ""],
    costs: Float[Array, " models"],
    verifier_costs: Float[Array, " models"],
) -> Float[Array, ""]:
    """What one query costs when the answer of model `stop` stands."""
    steps = jnp.arange(costs.shape[0])
    ran = (steps == stop) if policy.direct else (steps <= stop)
    verified = ran & (steps < costs.shape[0] - 1) & (not policy.direct)
    verified = verified & policy.uses_verifier
    return jnp.sum(jnp.where(ran, costs, 0.0)) + jnp.sum(
        jnp.where(verified, verifier_costs, 0.0)
    )


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Threshold(),
        DoubleThreshold(),
        TripleThreshold(),
        ChainedThreshold(),
        SelfConsistency(),
        RandomRate(),
        AlwaysModel(0),
        AlwaysModel(-1),
        Oracle(),
    )
}


def get_policy(name: str) -> Policy:
    """The policy family called `name` (see `POLICIES`).

    `always-model-I` is model I alone (0-based); `pomdp` is the cascade POMDP.
    """
    if name.startswith("always-model-") and name[13:].isdigit():
        return AlwaysModel(int(name[13:]))
    if name == "pomdp":
        from ._cascade import CascadePomdp

        return CascadePomdp()
    try:
        return POLICIES[name]
    except KeyError:
        known = ", ".join(sorted([*POLICIES, "best-of", "pomdp", "always-model-I"]))
        raise PolicyError(f"unknown policy {name!r}; choose one of: {known}") from None
