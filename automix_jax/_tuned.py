"""Tuned policies saved to a file and loaded back to route new data or live traffic.

A tuned result is JSON: the policy family and its fitted parameters, the models and
costs it was tuned for, the column templates it reads, a fingerprint of the rows it
was tuned on and the automix-jax version. Loading it back gives a `TunedPolicy` whose
decisions are bit for bit those of the policy that was tuned.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import attrs
import jax.numpy as jnp
import numpy as np

from ._data import Columns, Dataset
from ._errors import PolicyError
from ._observations import Observations
from ._policies import Policy, get_policy
from ._routing import outcome, route

FORMAT = "automix-jax/tuned-policy"
FORMAT_VERSION = 1


def fingerprint(data: Dataset) -> str:
    """A short SHA-256 of the observations and splits of `data`."""
    digest = hashlib.sha256()
    obs = data.observations
    for field in (obs.scores, obs.confidences, obs.costs, obs.verifier_costs):
        digest.update(np.ascontiguousarray(np.asarray(field)).tobytes())
    digest.update("\x00".join(map(str, data.split.tolist())).encode())
    return digest.hexdigest()[:16]


@attrs.frozen
class TunedPolicy:
    """A policy family with fitted parameters, ready to route.

    Attributes:
        policy: the family name (see `automix_jax.POLICIES`), or a name that a
            registered loader understands (`register_family`).
        params: the fitted parameters as nested lists (JSON-ready).
        models: the cascade the parameters were tuned for, cheapest first.
        costs: per-model costs used when tuning.
        verifier_cost: per-model verification cost used when tuning.
        columns: the column templates the data was read with.
        escalate_answers: first-model answers that always escalate (fixed-answer
            override); empty for none.
        fingerprint: `fingerprint()` of the rows it was tuned on.
        extra: anything else a family needs (say, a POMDP's alpha vectors).
        version: the automix-jax version that wrote it.
        spec: the declarative spec the policy was built from
            (`{"policy": <spec table>, "label": <name>}`), or None for a library
            family; loading rebuilds the policy from it.
    """

    policy: str
    params: Any
    models: tuple[str, ...]
    costs: tuple[float, ...]
    verifier_cost: tuple[float, ...]
    columns: Columns = Columns()
    escalate_answers: tuple[str, ...] = ()
    fingerprint: str = ""
    extra: dict = attrs.field(factory=dict)
    version: str = ""
    spec: dict | None = None

    def family(self) -> Policy:
        """The `Policy` object that routes with these parameters."""
        if self.spec is not None:
            from ._specs import policy_from_saved

            return policy_from_saved(self.spec)
        if self.policy in _LOADERS:
            return _LOADERS[self.policy](self)
        return get_policy(self.policy).with_bins(int(self.extra.get("bins", 8)))

    def array_params(self):
        """The parameters as float32 arrays (what the jitted router takes)."""
        if self.params is None:
            return jnp.zeros((), dtype=jnp.float32)
        return jnp.asarray(np.asarray(self.params, dtype=np.float32))

    def route(self, obs: Observations) -> np.ndarray:
        """`[n]` index of the model whose answer stands, for every query."""
        self._check_models(obs.num_models)
        return np.asarray(route(self.family(), self.array_params(), obs))

    def route_data(self, data: Dataset) -> np.ndarray:
        """`[n]` decisions on a dataset, with the saved override answers applied."""
        if self.escalate_answers:
            data = data.with_escalation(self.escalate_answers)
        return self.route(data.observations)

    def outcome(self, obs: Observations):
        """Per-query `(stop, cost, performance)` as NumPy arrays."""
        self._check_models(obs.num_models)
        out = outcome(self.family(), self.array_params(), obs)
        return tuple(np.asarray(x) for x in out)

    def escalate(self, step: int, confidences: Sequence[float], answer: str) -> bool:
        """The live decision: escalate past model `step` given what was seen?

        Args:
            step: 0-based index of the model just answered and verified.
            confidences: verifier confidences of the models run so far.
            answer: the answer of model `step`.
        """
        m = len(self.models)
        if step >= m - 1:
            return False
        conf = np.ones((1, m), dtype=np.float32)
        conf[0, : len(confidences)] = confidences
        # Models not yet run score 0 and are never read by a non-oracle policy.
        flag = np.array([step == 0 and answer in self.escalate_answers])
        obs = Observations(np.zeros((1, m)), conf, np.asarray(self.costs), 0.0, flag)
        stop = int(self.route(obs)[0])
        return stop > step

    def _check_models(self, m: int) -> None:
        if m != len(self.models):
            raise PolicyError(
                f"the tuned policy is for {len(self.models)} models "
                f"({', '.join(self.models)}), the data has {m}"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "policy": self.policy,
            "params": self.params,
            "models": list(self.models),
            "costs": list(self.costs),
            "verifier_cost": list(self.verifier_cost),
            "columns": attrs.asdict(self.columns),
            "escalate_answers": list(self.escalate_answers),
            "fingerprint": self.fingerprint,
            "extra": self.extra,
            "version": self.version,
            **({"spec": self.spec} if self.spec is not None else {}),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Writes the tuned policy as JSON (atomically: a temp file, then rename)."""
        path = os.fspath(path)
        temp = path + ".tmp"
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle, indent=2)
            handle.write("\n")
        os.replace(temp, path)


def load_tuned(path: str | os.PathLike) -> TunedPolicy:
    """Reads a tuned policy written by `TunedPolicy.save`.

    Raises:
        PolicyError: the file is not a tuned policy, or is from a newer format.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such tuned-policy file") from None
    except json.JSONDecodeError as error:
        raise PolicyError(
            f"{path}:{error.lineno}: not valid JSON ({error.msg}); "
            "give a file written by `automix-jax evaluate --save-policy`"
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise PolicyError(f'{path}: not a tuned-policy file (no "format": {FORMAT!r})')
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise PolicyError(
            f"{path}: written by a newer automix-jax (format version "
            f"{raw['format_version']}); upgrade automix-jax"
        )
    return TunedPolicy(
        policy=raw["policy"],
        params=raw["params"],
        models=tuple(raw["models"]),
        costs=tuple(raw["costs"]),
        verifier_cost=tuple(raw["verifier_cost"]),
        columns=Columns(**raw.get("columns", {})),
        escalate_answers=tuple(raw.get("escalate_answers", ())),
        fingerprint=raw.get("fingerprint", ""),
        extra=raw.get("extra", {}),
        version=raw.get("version", ""),
        spec=raw.get("spec"),
    )


# Families whose `Policy` object is built from the saved result itself (say, a
# POMDP policy from its alpha vectors, or a learned router from its weights).
_LOADERS: dict[str, Any] = {}


def register_family(name: str, loader) -> None:
    """Registers `loader(tuned) -> Policy` for tuned results of family `name`."""
    _LOADERS[name] = loader


def fit(
    data: Dataset,
    policy: str | Policy,
    *,
    bins: int = 8,
    train_split: str | None = "train",
    cost_range: tuple[float, float] | None = None,
    small: int = 0,
    large: int = -1,
) -> TunedPolicy:
    """Tunes one grid family on the whole train split and returns it, ready to save.

    Args:
        data: the rows.
        policy: a family name or object with a grid (threshold, double-threshold,
            ...).
        bins: B, the grid of candidate edges.
        train_split: the split to tune on (None: every row).
        cost_range: keep only candidates whose mean cost lies in [low, high].
        small, large: the models the IBC slopes are measured between.

    Raises:
        DegenerateError: no candidate lies in `cost_range`.
    """
    tuned, _ = fit_with_objective(
        data,
        policy,
        bins=bins,
        train_split=train_split,
        cost_range=cost_range,
        small=small,
        large=large,
    )
    return tuned


def fit_with_objective(
    data: Dataset,
    policy: str | Policy,
    *,
    bins: int = 8,
    train_split: str | None = "train",
    cost_range: tuple[float, float] | None = None,
    small: int = 0,
    large: int = -1,
) -> tuple[TunedPolicy, float]:
    """`fit`, and the train objective of its choice (to compare families)."""
    from . import __version__
    from ._errors import DegenerateError
    from ._routing import tune

    family = get_policy(policy) if isinstance(policy, str) else policy
    family = family.with_bins(bins)
    rows = data if train_split is None else data.split_rows(train_split)
    grid = family.grid(bins, rows.observations.num_models)
    low, high = cost_range if cost_range is not None else (-np.inf, np.inf)
    tuned = tune(family, grid, rows.observations, None, (low, high), small, large)
    if not bool(tuned.in_range.any()):
        raise DegenerateError(
            f"no candidate of policy {family.name!r} has a mean cost in "
            f"[{low:g}, {high:g}]; widen the cost range"
        )
    chosen = np.asarray(tuned.candidates)[int(tuned.index)]
    params = chosen.tolist()
    obs = data.observations
    costs = np.asarray(obs.costs)
    result = TunedPolicy(
        policy=family.name,
        params=params,
        models=tuple(data.models),
        costs=tuple(costs.mean(axis=0).tolist()),
        verifier_cost=tuple(np.asarray(obs.verifier_costs).tolist()),
        fingerprint=fingerprint(rows),
        extra={"bins": bins},
        version=__version__,
    )
    return result, float(tuned.objective[int(tuned.index)])
