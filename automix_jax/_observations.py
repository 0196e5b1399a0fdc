"""The observation pytree every numerical function in automix-jax reads.

Shape legend:
    n  queries
    M  models in the cascade, cheapest first (M >= 2)
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._errors import DataError


class Observations(eqx.Module):
    """Logged outputs of a cascade of M models on n queries.

    Attributes:
        scores: `[n, M]` quality of each model's answer (F1, or 0/1 correctness).
        confidences: `[n, M]` verifier confidence of each model's answer, in [0, 1].
            The last model's confidence is never read by a cascade policy.
        costs: `[n, M]` cost of running each model on each query (a per-model price
            is broadcast over the queries).
        verifier_costs: `[M]` cost of verifying model i's answer; charged only for
            the answers a verifier actually checked.
        escalate: `[n]` queries that must go past the first model whatever its
            confidence (the fixed-answer override); all False by default.

    Index it like an array (`obs[idx]`) to select queries; `jax.vmap` over it to get
    one query (then every field loses its leading axis).
    """

    scores: Float[Array, "queries models"]
    confidences: Float[Array, "queries models"]
    costs: Float[Array, "queries models"]
    verifier_costs: Float[Array, " models"]
    escalate: Bool[Array, " queries"]

    def __init__(self, scores, confidences, costs, verifier_costs=0.0, escalate=None):
        scores = _array(scores, float_dtype())
        confidences = _array(confidences, float_dtype())
        if scores.ndim != 2 or scores.shape[1] < 2:
            raise DataError(
                f"scores must have shape [queries, models] with at least two models, "
                f"got shape {scores.shape}",
                fix="give one column per model, cheapest first",
            )
        n, m = scores.shape
        if confidences.shape != (n, m):
            raise DataError(
                f"confidences have shape {confidences.shape}, expected {(n, m)}",
                fix="give one confidence per query and model",
            )
        costs = _array(costs, float_dtype())
        if costs.ndim == 1 and costs.shape == (m,):
            costs = _broadcast(costs, (n, m))
        if costs.shape != (n, m):
            raise DataError(
                f"costs have shape {costs.shape}, expected ({m},) or {(n, m)}",
                fix="give one cost per model, or one per query and model",
            )
        verifier_costs = _broadcast(_array(verifier_costs, float_dtype()), (m,))
        if escalate is None:
            escalate = np.zeros((n,), dtype=bool)
        self.scores = scores
        self.confidences = confidences
        self.costs = costs
        self.verifier_costs = verifier_costs
        self.escalate = _array(escalate, np.bool_)

    @property
    def num_queries(self) -> int:
        return self.scores.shape[0]

    @property
    def num_models(self) -> int:
        return self.scores.shape[1]

    def __getitem__(self, index) -> Observations:
        """Selects queries; the per-model verifier costs are kept whole."""
        if _is_host(index) and not isinstance(self.scores, jax.core.Tracer):
            # Host-side selection: a NumPy gather, no kernel to compile.
            fields = as_numpy(self)
            return Observations(
                fields["scores"][index],
                fields["confidences"][index],
                fields["costs"][index],
                fields["verifier_costs"],
                fields["escalate"][index],
            )
        return Observations(
            self.scores[index],
            self.confidences[index],
            self.costs[index],
            self.verifier_costs,
            self.escalate[index],
        )


class Query(NamedTuple):
    """What a policy sees of one query (a row of `Observations`).

    Attributes:
        confidences: `[M]` verifier confidence of each model's answer.
        scores: `[M]` quality of each answer; only the oracle reads it.
        escalate: `[]` True when the first model's answer must not stand.
        noise: `[M]` uniform draws in [0, 1) for random policies (zeros when the
            policy draws nothing).
    """

    confidences: Float[Array, " models"]
    scores: Float[Array, " models"]
    escalate: Bool[Array, ""]
    noise: Float[Array, " models"]


def queries(obs: Observations, noise=None) -> Query:
    """The per-query view of `obs`, to `jax.vmap` over its leading axis.

    Args:
        obs: the queries.
        noise: `[n, M]` uniform draws for random policies; zeros when None.
    """
    if noise is None:
        noise = jnp.zeros_like(obs.confidences)
    return Query(obs.confidences, obs.scores, obs.escalate, noise)


def float_dtype():
    """JAX's default float: float32, or float64 when x64 is enabled."""
    return jax.dtypes.canonicalize_dtype(np.float64)


def _is_host(x) -> bool:
    return not isinstance(x, jax.Array)


def _array(x, dtype):
    """`x` as a JAX array of `dtype`.

    Host data is converted with NumPy first so that building observations outside
    `jit` compiles nothing (an eager JAX cast or broadcast compiles a kernel).
    """
    if _is_host(x):
        return jnp.asarray(np.asarray(x, dtype=dtype))
    return x.astype(dtype) if x.dtype != dtype else x


def _broadcast(x, shape):
    if isinstance(x, jax.core.Tracer):
        return jnp.broadcast_to(x, shape)
    return jnp.asarray(np.broadcast_to(np.asarray(x), shape))


def as_numpy(obs: Observations) -> dict[str, np.ndarray]:
    """The fields of `obs` as NumPy arrays (for printing and saving)."""
    return {
        "scores": np.asarray(obs.scores),
        "confidences": np.asarray(obs.confidences),
        "costs": np.asarray(obs.costs),
        "verifier_costs": np.asarray(obs.verifier_costs),
        "escalate": np.asarray(obs.escalate),
    }
