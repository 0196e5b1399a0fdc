# ruff: noqa: F722  (jaxtyping shape strings are not Python expressions)
"""A learned router: a small Equinox MLP over what is known before each escalation.

After model i has answered, the router may read, for models 0..i only, each
model's verifier confidence, the shares of its k most frequent sampled answers
(its vote histogram, sorted), the number of distinct answers over the number of
samples, and the log of its mean answer length. Features of models not yet run
are zeroed and the step is given as a one-hot code, so one MLP serves every step.
Its output is the step's *margin*: `margin >= 0` escalates (hard), and
`sigmoid(margin / T)` is the soft escalation probability, exactly as for the soft
threshold families in `automix_jax._soft`, whose training loop, budget and
feasibility steps it shares.

The parameters are one flat float32 vector (the MLP's weights, then an offset
subtracted from every margin), so a tuned router saves into a `TunedPolicy` as a
list and routes identically after loading. Where the data lacks sampled answers
or lengths, the router reads the confidence alone (`FEATURES_CONFIDENCE`), and
then `automix_jax.route` can run it straight from `Observations`.

Shape legend:
    n  queries
    M  models, cheapest first
    F  features per model
    H  hidden units
    P  flat parameters
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import attrs
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._data import Dataset
from ._errors import DataError, PolicyError
from ._observations import Observations
from ._policies import Policy, first_false
from ._soft import _Margins
from ._tuned import TunedPolicy, register_family

__all__ = [
    "FEATURES_CONFIDENCE",
    "Features",
    "LearnedRouter",
    "load_features",
    "route_features",
    "router_from_tuned",
    "router_to_tuned",
]

FEATURES_CONFIDENCE = ("confidence",)
_TOP_K = 3


class Features(NamedTuple):
    """Per-query, per-model router inputs aligned with a `Dataset`'s rows.

    Attributes:
        values: `[n, M, F]` raw (unstandardised) features.
        names: the F feature names.
    """

    values: np.ndarray
    names: tuple[str, ...]

    def take(self, mask: np.ndarray) -> Features:
        return Features(self.values[mask], self.names)

    def split(self, data: Dataset, name: str) -> Float[Array, "queries models feats"]:
        """The rows of split `name` (same order as `data.split_rows(name)`)."""
        return jnp.asarray(self.values[data.split == name])


def _answer_key(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _vote_features(samples: Sequence) -> list[float]:
    counts = sorted(Counter(_answer_key(s) for s in samples).values(), reverse=True)
    total = max(len(samples), 1)
    shares = [c / total for c in counts[:_TOP_K]]
    shares += [0.0] * (_TOP_K - len(shares))
    return [*shares, len(counts) / total]


def load_features(
    path: str | os.PathLike,
    data: Dataset,
    confidence_column: str = "p_ver_{model}",
) -> Features:
    """Reads router features from the JSON Lines file `data` was loaded from.

    For each model: the confidence, the top-3 vote shares and the distinct-answer
    rate from `<m>_ver` (the sampled answers), and `log1p` of the mean answer
    length from `<m>_gen_chars` (characters over all samples). When any row lacks
    the samples or the length of a model other than the last, only the
    confidence is used (`FEATURES_CONFIDENCE`).

    Raises:
        DataError: the file has a different number of rows than `data`.
    """
    path = os.fspath(path)
    rows = []
    with open(path, encoding="utf-8") as handle:
        for text in handle:
            if text.strip():
                rows.append(json.loads(text))
    if len(rows) != len(data):
        raise DataError(
            f"the file has {len(rows)} rows, the dataset {len(data)}",
            file=path,
            fix="load the features from the file the dataset was read from",
        )
    models = data.models
    conf = np.asarray(data.observations.confidences, dtype=np.float32)
    rich = all(
        isinstance(row.get(f"{m}_ver"), list)
        and len(row[f"{m}_ver"]) > 0
        and isinstance(row.get(f"{m}_gen_chars"), int | float)
        for row in rows
        for m in models[:-1]
    )
    if not rich:
        return Features(conf[:, :, None], FEATURES_CONFIDENCE)
    names = (
        "confidence",
        *(f"vote_share_{i + 1}" for i in range(_TOP_K)),
        "distinct_rate",
        "log_mean_chars",
    )
    values = np.zeros((len(rows), len(models), len(names)), dtype=np.float32)
    values[:, :, 0] = conf
    for q, row in enumerate(rows):
        for i, m in enumerate(models[:-1]):
            samples = row[f"{m}_ver"]
            values[q, i, 1 : 2 + _TOP_K] = _vote_features(samples)
            values[q, i, -1] = math.log1p(row[f"{m}_gen_chars"] / len(samples))
    return Features(values, names)


@attrs.frozen
class LearnedRouter(_Margins, Policy):
    """An MLP router over per-step features (a `Policy`; static, hashable).

    Attributes:
        num_models: M.
        feature_names: the F features per model (`Features.names`).
        mean: `[M * F]` feature means used to standardise (a tuple).
        scale: `[M * F]` feature standard deviations (a tuple; 1 where constant).
        hidden: H, hidden units of each hidden layer (tanh).
        depth: the number of hidden layers.
    """

    num_models: int
    feature_names: tuple[str, ...] = FEATURES_CONFIDENCE
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    hidden: int = 16
    depth: int = 1
    name = "learned"

    @classmethod
    def for_features(
        cls, features: Float[Array, "queries models feats"], names, hidden: int = 16
    ) -> LearnedRouter:
        """A router standardising with the mean and spread of `features`."""
        flat = np.asarray(features, dtype=np.float64).reshape(features.shape[0], -1)
        mean = flat.mean(axis=0)
        # A constant feature (say, the last model's) gets scale 1, not 0.
        scale = np.where(flat.std(axis=0) > 1e-6, flat.std(axis=0), 1.0)
        return cls(
            num_models=int(features.shape[1]),
            feature_names=tuple(names),
            mean=tuple(float(x) for x in mean.astype(np.float32)),
            scale=tuple(float(x) for x in scale.astype(np.float32)),
            hidden=hidden,
        )

    @property
    def _in_size(self) -> int:
        return self.num_models * len(self.feature_names) + self.num_models

    def _mlp(self, key) -> eqx.nn.MLP:
        return eqx.nn.MLP(
            self._in_size,
            "scalar",
            self.hidden,
            self.depth,
            activation=jnp.tanh,
            key=key,
        )

    def init_params(self, key=None) -> Float[Array, " params"]:
        """`[P]` fresh weights (Equinox's default initialisation) and offset 0."""
        if key is None:
            key = jax.random.key(0)
        leaves = jax.tree.leaves(eqx.filter(self._mlp(key), eqx.is_array))
        return jnp.concatenate([*(x.reshape(-1) for x in leaves), jnp.zeros((1,))])

    def unflatten(self, params: Float[Array, " params"]) -> eqx.nn.MLP:
        """The Equinox MLP that `params` (less its last entry) holds."""
        shapes = eqx.filter_eval_shape(self._mlp, jax.random.key(0))
        leaves, treedef = jax.tree.flatten(shapes)
        out, start = [], 0
        for leaf in leaves:
            if isinstance(leaf, jax.ShapeDtypeStruct):
                size = math.prod(leaf.shape)
                out.append(params[start : start + size].reshape(leaf.shape))
                start += size
            else:
                out.append(leaf)
        return jax.tree.unflatten(treedef, out)

    def inputs(self, obs: Observations) -> Float[Array, "queries models feats"]:
        """Features from the confidences; only for a confidence-only router."""
        if self.feature_names != FEATURES_CONFIDENCE:
            raise PolicyError(
                f"this router reads {', '.join(self.feature_names)}; the "
                "observations hold only confidences: pass features from "
                "`load_features` (see `route_features`)"
            )
        return obs.confidences[..., None]

    def margins(
        self,
        params: Float[Array, " params"],
        inputs: Float[Array, "queries models feats"],
    ) -> Float[Array, "queries models"]:
        """`[n, M]` the router's margin at every step (>= 0 escalates)."""
        n, m, f = inputs.shape
        mlp = self.unflatten(params)
        mean = jnp.asarray(self.mean, jnp.float32).reshape(m, f)
        scale = jnp.asarray(self.scale, jnp.float32).reshape(m, f)
        z = (inputs - mean) / scale
        # Step i sees models 0..i only: the rest are zeroed, the step is one-hot.
        seen = (jnp.arange(m)[None, :] <= jnp.arange(m)[:, None]).astype(z.dtype)

        def one(z_query, step):
            x = (z_query * seen[step][:, None]).reshape(-1)
            return mlp(jnp.concatenate([x, jax.nn.one_hot(step, m)])) - params[-1]

        steps = jnp.arange(m)
        return jax.vmap(lambda zq: jax.vmap(lambda s: one(zq, s))(steps))(z)

    def shift(self, params, delta):
        return params.at[-1].add(delta)

    def decide(self, params, query) -> Int[Array, ""]:
        margin = self.margins(params, self.inputs_one(query))[0]
        escalate = margin >= 0
        escalate = escalate.at[0].set(escalate[0] | query.escalate)
        return first_false(escalate)

    def inputs_one(self, query):
        if self.feature_names != FEATURES_CONFIDENCE:
            self.inputs(None)  # raises with the explanation
        return query.confidences[None, :, None]

    def grid(self, bins, num_models):
        raise PolicyError("the learned router has no grid; it starts from init_params")

    def describe(self, params):
        return {"weights": len(np.asarray(params)), "features": self.feature_names}


@functools.partial(jax.jit, static_argnums=0)
def _route_features(router, params, features, escalate):
    margins = router.margins(params, features)
    hard = (margins >= 0).at[:, 0].set((margins[:, 0] >= 0) | escalate)
    return jax.vmap(first_false)(hard)


def route_features(
    router: LearnedRouter,
    params: Float[Array, " params"],
    features: Float[Array, "queries models feats"],
    escalate=None,
) -> np.ndarray:
    """`[n]` the model whose answer stands, from features (any feature set)."""
    features = jnp.asarray(features, jnp.float32)
    if escalate is None:
        escalate = jnp.zeros(features.shape[0], dtype=bool)
    return np.asarray(
        _route_features(router, jnp.asarray(params, jnp.float32), features, escalate)
    )


def router_to_tuned(
    router: LearnedRouter, params, data: Dataset, **fields
) -> TunedPolicy:
    """A `TunedPolicy` holding the router (weights in `params`, shape in `extra`)."""
    from . import __version__
    from ._tuned import fingerprint

    obs = data.observations
    return TunedPolicy(
        policy=router.name,
        params=np.asarray(params, dtype=np.float32).tolist(),
        models=tuple(data.models),
        costs=tuple(np.asarray(obs.costs).mean(axis=0).tolist()),
        verifier_cost=tuple(np.asarray(obs.verifier_costs).tolist()),
        fingerprint=fields.pop("fingerprint", fingerprint(data)),
        extra={
            "num_models": router.num_models,
            "feature_names": list(router.feature_names),
            "mean": list(router.mean),
            "scale": list(router.scale),
            "hidden": router.hidden,
            "depth": router.depth,
        },
        version=__version__,
        **fields,
    )


def router_from_tuned(tuned: TunedPolicy) -> LearnedRouter:
    """The `LearnedRouter` a saved `TunedPolicy` describes (the family loader)."""
    extra = tuned.extra
    try:
        return LearnedRouter(
            num_models=int(extra["num_models"]),
            feature_names=tuple(extra["feature_names"]),
            mean=tuple(float(x) for x in extra["mean"]),
            scale=tuple(float(x) for x in extra["scale"]),
            hidden=int(extra["hidden"]),
            depth=int(extra.get("depth", 1)),
        )
    except KeyError as error:
        raise PolicyError(
            f"the tuned learned router lacks {error.args[0]!r} in `extra`"
        ) from None


register_family("learned", router_from_tuned)


@attrs.frozen
class TrainedLearned(Policy):
    """A confidence-only learned router trained on the rows being tuned on.

    What a `LearnedSpec` compiles to for `automix_jax.evaluate`: every seed's
    `expand` initialises the MLP (from `seed`), trains it with `tune_soft`'s
    annealed loop (and budget shift) on its own train sample, and returns the
    weights as the single candidate. The router is built for the cascade's length
    when traced; confidences, already in [0, 1], are centred at 0.5 and scaled by
    0.5 rather than standardised on data.

    Attributes:
        hidden: units per hidden layer.
        depth: hidden layers.
        config: the training schedule.
        budget: a mean-cost budget, or None.
        seed: seeds the initial weights.
    """

    hidden: int = 16
    depth: int = 1
    config: Any = None
    budget: float | None = None
    seed: int = 0
    name = "learned"

    def router(self, num_models: int) -> LearnedRouter:
        return LearnedRouter(
            num_models=num_models,
            mean=(0.5,) * num_models,
            scale=(0.5,) * num_models,
            hidden=self.hidden,
            depth=self.depth,
        )

    def decide(self, params, query):
        return self.router(query.confidences.shape[0]).decide(params, query)

    def grid(self, bins, num_models):
        # The candidate comes from training (`expand`); the grid is a placeholder.
        return np.zeros((1,), dtype=np.float32)

    def expand(self, grid, obs):
        from ._soft import TrainConfig, _tune_core

        router = self.router(obs.num_models)
        start = router.init_params(jax.random.key(self.seed))
        budget = None if self.budget is None else jnp.float32(self.budget)
        config = self.config if self.config is not None else TrainConfig()
        tuned = _tune_core(
            router, start[None], obs, router.inputs(obs), budget, config, False
        )
        return tuned.params[None]

    def describe(self, params):
        return {
            "weights": len(np.asarray(params)),
            "hidden": [self.hidden] * self.depth,
        }


def _from_spec(spec) -> TrainedLearned:
    """The policy a `LearnedSpec` (see `automix_jax._specs`) describes."""
    from ._soft import TrainConfig
    from ._specs import SpecError

    if len(set(spec.hidden)) != 1:
        raise SpecError(
            f"hidden: the learned router's layers have one width, got {spec.hidden}"
        )
    config = TrainConfig(
        steps=spec.steps, learning_rate=spec.learning_rate, optimizer=spec.optimizer
    )
    return TrainedLearned(
        hidden=spec.hidden[0],
        depth=len(spec.hidden),
        config=config,
        budget=spec.budget,
        seed=spec.seed,
    )


def _register_spec() -> None:
    from ._specs import register_spec_family

    register_spec_family("learned", _from_spec)


_register_spec()
