"""Declarative routing policies: typed specs, TOML files, and their compilation.

A spec is a frozen attrs object that says *what* a policy is (its family and
settings) without running anything. Specs are checked when they are built, load
from TOML files, and compile to `Policy` objects whose `decide` is the library's
pure per-query function, so `automix_jax.evaluate`, `automix_jax.route` and
`automix_jax.fit` take them unchanged.

A policy file holds one policy at its top level, or several under
`[[policies]]`, and optionally a `[data]` table naming the cascade it was written
for:

    # policies/automix-threshold.toml
    family = "threshold"
    name = "automix-threshold"
    bins = 8

    # a fixed-answer override around a best-of composition
    family = "override"
    answers = ["unanswerable"]
    [policy]
    family = "best-of"
    [[policy.members]]
    family = "threshold"
    [[policy.members]]
    family = "double-threshold"

Every mistake is a `SpecError` whose message names the file, the key path
(`policies[1].members[0].bins`) and the reason: an unknown key, a value of the
wrong type, a value out of range, or an unknown family.

Families implemented elsewhere (the POMDP, the soft and the learned routers) are
resolved only when a spec is compiled: a builder registered with
`register_spec_family`, else the policy of that name in `automix_jax.POLICIES`
(with every spec setting that matches one of its attrs fields set on it). When
neither exists the compile fails with "family 'pomdp' is not available in this
build".
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from ._errors import PolicyError, SpecError
from ._policies import (
    AlwaysModel,
    Bands,
    ChainedThreshold,
    DoubleThreshold,
    Oracle,
    Params,
    Policy,
    RandomRate,
    SelfConsistency,
    Threshold,
    TripleThreshold,
)

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None  # type: ignore[assignment]

# --------------------------------------------------------------------------------
# Field checks shared by construction and TOML loading.
# --------------------------------------------------------------------------------


class _FieldError(SpecError):
    """A `SpecError` about one key; the loader prefixes the file and key path."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


_KIND_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "ints": "a list of integers",
    "floats": "a list of numbers",
    "strs": "a list of strings",
    "bands": "a list of [low, high] pairs",
    "spec": "a policy table",
    "specs": "a list of policy tables",
}


def _type_name(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        tuple: "a list",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return _is_int(x) or (isinstance(x, float) and math.isfinite(x))


def _type_reason(kind: str, value: Any) -> str | None:
    """Why `value` is not of `kind` (None when it is)."""
    ok = {
        "int": _is_int,
        "float": _is_number,
        "str": lambda x: isinstance(x, str),
        "ints": lambda x: isinstance(x, tuple) and all(map(_is_int, x)),
        "floats": lambda x: isinstance(x, tuple) and all(map(_is_number, x)),
        "strs": lambda x: isinstance(x, tuple) and all(isinstance(s, str) for s in x),
        "bands": lambda x: (
            isinstance(x, tuple)
            and all(
                isinstance(b, tuple) and len(b) == 2 and all(map(_is_number, b))
                for b in x
            )
        ),
        "spec": lambda x: isinstance(x, PolicySpec),
        "specs": lambda x: (
            isinstance(x, tuple) and all(isinstance(s, PolicySpec) for s in x)
        ),
    }[kind](value)
    if ok:
        return None
    shown = f" ({value!r})" if isinstance(value, (str, int, float)) else ""
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    return f"expected {_KIND_WORDS[kind]}, got {_type_name(value)}{shown}"


def _tuples(value: Any) -> Any:
    """Lists (nested too) as tuples, so that specs stay hashable and frozen."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _validator(kind: str, check: Callable[[Any], str | None] | None):
    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None and attribute.default is None:
            return
        reason = _type_reason(kind, value)
        if reason is None and check is not None:
            reason = check(value)
        if reason is not None:
            raise _FieldError(attribute.name, reason)

    return validate


def _field(kind: str, default: Any = attrs.NOTHING, check=None, doc: str = ""):
    """An attrs field of `kind`, converted lists to tuples, checked by `check`."""
    return attrs.field(
        default=default,
        converter=_tuples,
        validator=_validator(kind, check),
        metadata={"kind": kind, "doc": doc},
    )


def _at_least(low: float):
    def check(value):
        values = value if isinstance(value, tuple) else (value,)
        bad = [v for v in values if v < low]
        return f"must be at least {low:g}, got {bad[0]!r}" if bad else None

    return check


def _positive(value):
    values = value if isinstance(value, tuple) else (value,)
    bad = [v for v in values if v <= 0]
    return f"must be greater than 0, got {bad[0]!r}" if bad else None


def _unit(value):
    flat = np.asarray(value, dtype=np.float64).ravel().tolist()
    bad = [v for v in flat if not 0.0 <= v <= 1.0]
    return f"must be in [0, 1], got {bad[0]!r}" if bad else None


def _one_of(*choices: str):
    def check(value):
        if value in choices:
            return None
        return f"must be one of {', '.join(choices)}; got {value!r}"

    return check


def _non_empty(value):
    return "must not be empty" if len(value) == 0 else None


# --------------------------------------------------------------------------------
# Compiled specs and the policy wrapper they compile to.
# --------------------------------------------------------------------------------


@attrs.frozen
class SpecPolicy(Policy):
    """A library policy under a spec's name, with the spec's bins or fixed params.

    It routes exactly as `base` does (it calls `base.decide`); only the name, the
    candidate grid and the description differ, so the protocol reports it under
    the spec's name and tunes it on the spec's grid.

    Attributes:
        label: the name results are reported under.
        base: the library policy that routes.
        fixed: fixed parameters (nested tuples), or None to tune on a grid.
        bins: B for the grid, or None for the caller's B.
    """

    label: str
    base: Policy
    fixed: Any = None
    bins: int | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.label

    @property
    def uses_verifier(self) -> bool:  # type: ignore[override]
        return self.base.uses_verifier

    @property
    def direct(self) -> bool:  # type: ignore[override]
        return self.base.direct

    @property
    def needs_noise(self) -> bool:  # type: ignore[override]
        return self.base.needs_noise

    @property
    def tunable(self) -> bool:  # type: ignore[override]
        return self.base.tunable

    def escalate_at(self, params, confidence, step, noise):
        return self.base.escalate_at(params, confidence, step, noise)

    def decide(self, params, query):
        return self.base.decide(params, query)

    def grid(self, bins: int, num_models: int) -> Params:
        if self.fixed is not None:
            fixed = np.asarray(self.fixed, dtype=np.float32)
            if isinstance(self.base, ChainedThreshold) and fixed.shape != (
                num_models - 1,
            ):
                raise PolicyError(
                    f"policy {self.label!r} gives {fixed.size} thresholds; a cascade "
                    f"of {num_models} models needs {num_models - 1}"
                )
            return fixed[None]
        return self.base.grid(self.bins or bins, num_models)

    def expand(self, grid: Params, obs: Any) -> Params:
        return self.base.expand(grid, obs)

    def with_bins(self, bins: int) -> Policy:
        # The spec's own bins win over the caller's.
        if self.bins is not None:
            return self
        return attrs.evolve(self, base=self.base.with_bins(bins))

    def describe(self, params: Params) -> Any:
        return self.base.describe(params)

    @property
    def budget(self) -> float | None:
        """The base family's mean-cost budget, where it has one (the POMDP)."""
        return getattr(self.base, "budget", None)


@attrs.frozen
class SpecBands(SpecPolicy, Bands):
    """A `SpecPolicy` over a band family, tuned in one compile with the others."""

    def as_bands(self, params):
        return self.base.as_bands(params)


def _wrap(label: str, base: Policy, fixed: Any = None, bins: int | None = None):
    cls = SpecBands if isinstance(base, Bands) else SpecPolicy
    return cls(label, base, fixed, bins)


@attrs.frozen
class Compiled:
    """A spec compiled for the protocol.

    Attributes:
        name: the name its result is reported under.
        policies: `Policy` objects to evaluate: one, or the members of a best-of
            (chosen per seed by train objective).
        best_of: whether `policies` are the members of a best-of.
        escalate_answers: first-model answers that must always escalate (the
            fixed-answer override); empty for none.
        spec: the spec it came from.
    """

    name: str
    policies: tuple[Policy, ...]
    best_of: bool = False
    escalate_answers: tuple[str, ...] = ()
    spec: Any = None

    @property
    def policy(self) -> Policy:
        """The single policy (refused for a best-of, which has several)."""
        if self.best_of:
            raise SpecError(
                f"policy {self.name!r} is a best-of over {len(self.policies)} "
                "members; it has no single policy before tuning (use `fit_spec`)"
            )
        return self.policies[0]


# --------------------------------------------------------------------------------
# Specs.
# --------------------------------------------------------------------------------

SPEC_FAMILIES: dict[str, type[PolicySpec]] = {}


def _family(cls):
    SPEC_FAMILIES[cls.family] = cls
    return cls


@attrs.frozen(kw_only=True)
class PolicySpec:
    """Base of every spec: a family name and the fields all specs share.

    Attributes:
        name: what results are reported under (default: the family, or the file
            name for a single-policy file).
        description: free text for people reading the file.
    """

    family: ClassVar[str] = ""
    name: str | None = _field("str", None)
    description: str = _field("str", "")

    def label(self) -> str:
        """The name results are reported under."""
        return self.name or self.family

    def compile(self) -> Compiled:
        """The `Policy` objects this spec stands for (see `Compiled`).

        Raises:
            SpecError: the family is not available in this build.
        """
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The spec as TOML-ready data (`spec_from_dict` reads it back)."""
        out: dict[str, Any] = {"family": self.family}
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            if value is None or (field.name == "description" and not value):
                continue
            if isinstance(value, PolicySpec):
                value = value.to_dict()
            elif field.metadata.get("kind") == "specs":
                value = [v.to_dict() for v in value]
            out[field.name] = _lists(value)
        return out


def _lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_lists(v) for v in value]
    return value


_BINS_DOC = "B for the grid of candidate edges k / B (default: the caller's)"


@_family
@attrs.frozen(kw_only=True)
class ThresholdSpec(PolicySpec):
    """Escalate when the confidence is at most t (AutoMix's threshold policy).

    Attributes:
        bins: B for the tuning grid (default: the caller's bins).
        threshold: a fixed t in [0, 1]; None tunes t on the grid.
    """

    family: ClassVar[str] = "threshold"
    bins: int | None = _field("int", None, _at_least(1), _BINS_DOC)
    threshold: float | None = _field("float", None, _unit)

    def compile(self) -> Compiled:
        return Compiled(
            self.label(), (_wrap(self.label(), Threshold(), self.threshold, self.bins),)
        )


@_family
@attrs.frozen(kw_only=True)
class DoubleThresholdSpec(PolicySpec):
    """Escalate when the confidence lies in one band [low, high].

    Attributes:
        bins: B for the tuning grid.
        low, high: a fixed band (both or neither; 0 <= low < high <= 1).
    """

    family: ClassVar[str] = "double-threshold"
    bins: int | None = _field("int", None, _at_least(1), _BINS_DOC)
    low: float | None = _field("float", None, _unit)
    high: float | None = _field("float", None, _unit)

    def __attrs_post_init__(self):
        _both_or_neither(self, ("low", "high"))
        if self.low is not None and not self.low < self.high:
            raise _FieldError(
                "high", f"must be above low ({self.low}), got {self.high}"
            )

    def compile(self) -> Compiled:
        fixed = None if self.low is None else (self.low, self.high)
        return Compiled(
            self.label(), (_wrap(self.label(), DoubleThreshold(), fixed, self.bins),)
        )


@_family
@attrs.frozen(kw_only=True)
class TripleThresholdSpec(PolicySpec):
    """Escalate when the confidence is at most a, or lies in [b, c].

    Attributes:
        bins: B for the tuning grid (at least 2).
        edges: fixed (a, b, c) with 0 <= a < b < c <= 1; None tunes them.
    """

    family: ClassVar[str] = "triple-threshold"
    bins: int | None = _field("int", None, _at_least(2), _BINS_DOC)
    edges: tuple[float, ...] | None = _field("floats", None, _unit)

    def __attrs_post_init__(self):
        if self.edges is not None and not (
            len(self.edges) == 3 and self.edges[0] < self.edges[1] < self.edges[2]
        ):
            raise _FieldError(
                "edges", f"must be three increasing numbers, got {list(self.edges)}"
            )

    def compile(self) -> Compiled:
        return Compiled(
            self.label(),
            (_wrap(self.label(), TripleThreshold(), self.edges, self.bins),),
        )


@_family
@attrs.frozen(kw_only=True)
class BandsSpec(PolicySpec):
    """Escalate when the confidence lies in any of one or two fixed bands.

    Attributes:
        bands: `[[low, high], ...]`, one or two inclusive bands in [0, 1].
    """

    family: ClassVar[str] = "bands"
    bands: tuple[tuple[float, float], ...] = _field("bands", check=_unit)

    def __attrs_post_init__(self):
        if not 1 <= len(self.bands) <= 2:
            raise _FieldError(
                "bands", f"must hold one or two bands, got {len(self.bands)}"
            )
        for i, (low, high) in enumerate(self.bands):
            if not low <= high:
                raise _FieldError(
                    f"bands[{i}]", f"low must not exceed high, got [{low}, {high}]"
                )

    def compile(self) -> Compiled:
        # An unused second band lies above every confidence, so it matches none.
        padded = (*self.bands, (2.0, 2.0))[:2]
        return Compiled(self.label(), (_wrap(self.label(), Bands(), padded),))


@_family
@attrs.frozen(kw_only=True)
class SelfConsistencySpec(PolicySpec):
    """The paper's fixed 0.5 threshold baseline (not tuned)."""

    family: ClassVar[str] = "self-consistency"

    def compile(self) -> Compiled:
        return Compiled(self.label(), (_wrap(self.label(), SelfConsistency()),))


@_family
@attrs.frozen(kw_only=True)
class RandomSpec(PolicySpec):
    """Escalate at each step with probability `rate` (ignores the verifier).

    Attributes:
        bins: B for the grid of rates.
        rate: a fixed rate in [0, 1]; None tunes it.
    """

    family: ClassVar[str] = "random"
    bins: int | None = _field("int", None, _at_least(1), _BINS_DOC)
    rate: float | None = _field("float", None, _unit)

    def compile(self) -> Compiled:
        return Compiled(
            self.label(), (_wrap(self.label(), RandomRate(), self.rate, self.bins),)
        )


@_family
@attrs.frozen(kw_only=True)
class AlwaysSpec(PolicySpec):
    """Use one model alone: `model = 0` is the smallest, `-1` the largest."""

    family: ClassVar[str] = "always"
    model: int = _field("int", 0)

    def label(self) -> str:
        return self.name or AlwaysModel(self.model).name

    def compile(self) -> Compiled:
        return Compiled(self.label(), (_wrap(self.label(), AlwaysModel(self.model)),))


@_family
@attrs.frozen(kw_only=True)
class OracleSpec(PolicySpec):
    """The upper bound that reads the scores (evaluation only, never live)."""

    family: ClassVar[str] = "oracle"

    def compile(self) -> Compiled:
        return Compiled(self.label(), (_wrap(self.label(), Oracle()),))


@_family
@attrs.frozen(kw_only=True)
class ChainSpec(PolicySpec):
    """One threshold per step of an M-model cascade.

    Attributes:
        bins: B for the joint grid ((B + 1)^(M - 1) candidates).
        thresholds: M - 1 fixed thresholds in [0, 1]; None tunes them jointly.
    """

    family: ClassVar[str] = "chain"
    bins: int | None = _field("int", None, _at_least(1), _BINS_DOC)
    thresholds: tuple[float, ...] | None = _field("floats", None, _unit)

    def __attrs_post_init__(self):
        if self.thresholds is not None and not self.thresholds:
            raise _FieldError("thresholds", "must not be empty")

    def label(self) -> str:
        return self.name or ChainedThreshold.name

    def compile(self) -> Compiled:
        return Compiled(
            self.label(),
            (_wrap(self.label(), ChainedThreshold(), self.thresholds, self.bins),),
        )


@_family
@attrs.frozen(kw_only=True)
class BestOfSpec(PolicySpec):
    """Per training sample, the member with the best train objective.

    Attributes:
        members: two or more policy specs (overrides excluded).
    """

    family: ClassVar[str] = "best-of"
    members: tuple[PolicySpec, ...] = _field("specs")

    def __attrs_post_init__(self):
        if len(self.members) < 2:
            raise _FieldError(
                "members", f"needs at least two policies, got {len(self.members)}"
            )
        for i, member in enumerate(self.members):
            if isinstance(member, (BestOfSpec, OverrideSpec)):
                raise _FieldError(
                    f"members[{i}].family",
                    f"a best-of member cannot be {member.family!r}; list its "
                    "policies directly, and put an override around the best-of",
                )
        labels = [m.label() for m in self.members]
        for i, label in enumerate(labels):
            if label in labels[:i]:
                raise _FieldError(
                    f"members[{i}].name",
                    f"two members are named {label!r}; give each a distinct name",
                )

    def compile(self) -> Compiled:
        policies = []
        for member in self.members:
            inner = member.compile()
            policy = inner.policy
            label = f"{self.label()}/{inner.name}"
            if isinstance(policy, SpecPolicy):
                policy = attrs.evolve(policy, label=label)
            policies.append(policy)
        return Compiled(self.label(), tuple(policies), best_of=True)


@_family
@attrs.frozen(kw_only=True)
class OverrideSpec(PolicySpec):
    """The fixed-answer override: some first-model answers never stand.

    Attributes:
        answers: answer strings (say "unanswerable") that always escalate.
        policy: the spec that decides every other query.
    """

    family: ClassVar[str] = "override"
    answers: tuple[str, ...] = _field("strs", check=_non_empty)
    policy: PolicySpec = _field("spec")

    def __attrs_post_init__(self):
        if isinstance(self.policy, OverrideSpec):
            raise _FieldError(
                "policy.family", "an override inside an override; merge the answers"
            )

    def label(self) -> str:
        return self.name or self.policy.label()

    def compile(self) -> Compiled:
        inner = self.policy.compile()
        policies = inner.policies
        if not inner.best_of and self.name:
            policies = tuple(
                attrs.evolve(p, label=self.label()) if isinstance(p, SpecPolicy) else p
                for p in policies
            )
        return attrs.evolve(
            inner,
            name=self.label(),
            policies=policies,
            escalate_answers=self.answers,
            spec=self,
        )


_OPTIMIZERS = ("adam", "sgd", "adamw")


@_family
@attrs.frozen(kw_only=True)
class PomdpSpec(PolicySpec):
    """The cascade POMDP solved by point-based value iteration.

    Hidden state: the quality level of every model's answer; observation: the bin
    of the verifier confidence; reward: quality minus λ times cost.

    Attributes:
        bins: B confidence bins (the observations).
        levels: quality levels per model (2: wrong or right).
        lam: λ, quality given up per C_last - C_first of cost (1: the whole
            small-to-large price difference is worth one point of quality).
        budget: a mean cost per query; λ is the smallest that keeps to it.
            Give `lam` or `budget`, not both; neither chooses λ by IBC lift on
            the training rows.
        smoothing: pseudo-count added to every (state, bin) cell, so an empty bin
            is not a zero probability.
        num_lambdas: the size of the λ sweep when λ is chosen on train.

    The belief points are every observation history the cascade can reach, so
    the point-based backups are exact there and need no point budget.
    """

    family: ClassVar[str] = "pomdp"
    bins: int = _field("int", 8, _at_least(1))
    levels: int = _field("int", 2, _at_least(2))
    lam: float | None = _field("float", None, _at_least(0))
    budget: float | None = _field("float", None, _positive)
    smoothing: float = _field("float", 1.0, _positive)
    num_lambdas: int = _field("int", 48, _at_least(1))

    def __attrs_post_init__(self):
        if self.lam is not None and self.budget is not None:
            raise _FieldError(
                "budget", "give `lam` or `budget`, not both (neither: λ by IBC lift)"
            )

    def compile(self) -> Compiled:
        return _lazy_compile(self)


@_family
@attrs.frozen(kw_only=True)
class SoftSpec(PolicySpec):
    """A soft (differentiable) router tuned by gradient with an annealed sigmoid.

    Attributes:
        form: "threshold" (one t), "cascade" (one t per step) or "bands".
        temperature_start, temperature_end: the annealing schedule (end <= start).
        steps: optimisation steps.
        learning_rate: the optimiser's step size.
        optimizer: adam, sgd or adamw.
        budget: a mean cost per query to keep to; None maximises the IBC lift.
    """

    family: ClassVar[str] = "soft"
    form: str = _field("str", "threshold", _one_of("threshold", "cascade", "bands"))
    temperature_start: float = _field("float", 0.1, _positive)
    temperature_end: float = _field("float", 0.002, _positive)
    steps: int = _field("int", 300, _at_least(1))
    learning_rate: float = _field("float", 0.01, _positive)
    optimizer: str = _field("str", "adam", _one_of(*_OPTIMIZERS))
    budget: float | None = _field("float", None, _positive)

    def __attrs_post_init__(self):
        if self.temperature_end > self.temperature_start:
            raise _FieldError(
                "temperature_end",
                f"must not exceed temperature_start ({self.temperature_start}), "
                f"got {self.temperature_end}",
            )

    def compile(self) -> Compiled:
        return _lazy_compile(self)


@_family
@attrs.frozen(kw_only=True)
class LearnedSpec(PolicySpec):
    """A learned router (a small MLP over the confidences) trained with optax.

    Attributes:
        hidden: the hidden layer sizes.
        steps, learning_rate, optimizer: the training settings.
        budget: a mean cost per query to keep to; None maximises the IBC lift.
        seed: the initialisation seed.
    """

    family: ClassVar[str] = "learned"
    hidden: tuple[int, ...] = _field("ints", (16, 16), _at_least(1))
    steps: int = _field("int", 500, _at_least(1))
    learning_rate: float = _field("float", 0.003, _positive)
    optimizer: str = _field("str", "adam", _one_of(*_OPTIMIZERS))
    budget: float | None = _field("float", None, _positive)
    seed: int = _field("int", 0)

    def compile(self) -> Compiled:
        return _lazy_compile(self)


# Aliases accepted for `family` in files (the library's policy names).
_ALIASES = {
    "chained-threshold": "chain",
    "always-small": "always",
    "always-large": "always",
}

# Families whose implementation lives in another module, imported on first use
# (importing it registers the family).
_LAZY_MODULES = {"pomdp": "._cascade", "soft": "._soft", "learned": "._learned"}

_BUILDERS: dict[str, Callable[[PolicySpec], Policy]] = {}


def register_spec_family(family: str, builder: Callable[[Any], Policy]) -> None:
    """Registers `builder(spec) -> Policy` for specs of `family`.

    The module implementing a family (the POMDP, the soft or learned router)
    calls this on import; `PolicySpec.compile` then uses it.
    """
    _BUILDERS[family] = builder


def _lazy_compile(spec: PolicySpec) -> Compiled:
    """Builds a family implemented elsewhere, or says it is not available."""
    family = spec.family
    if family not in _BUILDERS and family in _LAZY_MODULES:
        try:
            importlib.import_module(_LAZY_MODULES[family], __package__)
        except ImportError:
            pass
    if family in _BUILDERS:
        policy = _BUILDERS[family](spec)
    else:
        from ._policies import POLICIES

        base = POLICIES.get(family)
        if base is None:
            raise SpecError(f"family {family!r} is not available in this build")
        # Settings that name one of the policy's own fields configure it.
        names = {f.name for f in attrs.fields(type(base))}
        settings = {
            f.name: getattr(spec, f.name)
            for f in attrs.fields(type(spec))
            if f.name in names
        }
        policy = attrs.evolve(base, **settings)
    bins = getattr(spec, "bins", None)
    if bins is not None:
        policy = policy.with_bins(bins)
    return Compiled(spec.label(), (_wrap(spec.label(), policy, None, bins),), spec=spec)


def _both_or_neither(spec: PolicySpec, keys: tuple[str, str]) -> None:
    given = [getattr(spec, k) is not None for k in keys]
    if any(given) and not all(given):
        missing = keys[given.index(False)]
        raise _FieldError(missing, f"give both {keys[0]} and {keys[1]}, or neither")


# --------------------------------------------------------------------------------
# Loading from dicts and TOML files.
# --------------------------------------------------------------------------------


@attrs.frozen
class SpecFile:
    """What one policy file declares.

    Attributes:
        path: the file.
        specs: its policies, in file order.
        models: the cascade it was written for (cheapest first), or None.
        costs: per-model costs it was written for, or None.
    """

    path: str
    specs: tuple[PolicySpec, ...]
    models: tuple[str, ...] | None = None
    costs: tuple[float, ...] | None = None


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _fail(source: str, path: str, reason: str):
    where = f"{source}: " + (f"{path}: " if path else "")
    return SpecError(where + reason)


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def spec_from_dict(
    raw: Mapping[str, Any], *, source: str = "<spec>", path: str = ""
) -> PolicySpec:
    """Builds one spec from TOML-style data (`family` plus the family's keys).

    Args:
        raw: the table.
        source: what to name in errors (a file path).
        path: the key path of `raw` inside the source.

    Raises:
        SpecError: `source: path.key: reason` for an unknown key or family, a
            value of the wrong type or out of range.
    """
    if not isinstance(raw, Mapping):
        raise _fail(source, path, f"expected a policy table, got {_type_name(raw)}")
    if "family" not in raw:
        raise _fail(source, _join(path, "family"), "missing key 'family'")
    family = raw["family"]
    if not isinstance(family, str):
        raise _fail(
            source,
            _join(path, "family"),
            f"expected a string, got {_type_name(family)}",
        )
    values = {k: v for k, v in raw.items() if k != "family"}
    if family in _ALIASES:
        if family == "always-large":
            values.setdefault("model", -1)
        if family in ("always-small", "always-large"):
            values.setdefault("name", family)
        family = _ALIASES[family]
    cls = SPEC_FAMILIES.get(family)
    if cls is None:
        known = sorted([*SPEC_FAMILIES, *_ALIASES])
        raise _fail(
            source,
            _join(path, "family"),
            f"unknown family {family!r}{_suggest(family, known)}; choose one of: "
            + ", ".join(known),
        )
    fields = {f.name: f for f in attrs.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        key_path = _join(path, key)
        if key not in fields:
            known = ", ".join(["family", *fields])
            raise _fail(
                source,
                key_path,
                f"unknown key {key!r} for family {family!r}"
                f"{_suggest(key, list(fields))}; known keys: {known}",
            )
        kind = fields[key].metadata["kind"]
        if kind == "spec":
            value = spec_from_dict(value, source=source, path=key_path)
        elif kind == "specs":
            if not isinstance(value, list):
                raise _fail(
                    source,
                    key_path,
                    f"expected a list of policy tables, got {_type_name(value)}",
                )
            value = [
                spec_from_dict(v, source=source, path=_join(key_path, i))
                for i, v in enumerate(value)
            ]
        else:
            reason = _type_reason(kind, _tuples(value))
            if reason is not None:
                raise _fail(source, key_path, reason)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except _FieldError as error:
        raise _fail(source, _join(path, error.key), error.reason) from None
    except TypeError as error:  # a required key is missing
        missing = [
            n
            for n, f in fields.items()
            if f.default is attrs.NOTHING and n not in kwargs
        ]
        if missing:
            raise _fail(
                source, _join(path, missing[0]), f"missing key {missing[0]!r}"
            ) from None
        raise _fail(source, path, str(error)) from None


def _read_toml(path: str) -> dict[str, Any]:
    if tomllib is None:  # pragma: no cover - Python 3.10
        raise SpecError(f"{path}: reading TOML needs Python 3.11 or later")
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such policy file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a folder, not a policy file") from None
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML ({error})") from None


def load_spec_file(path: str | os.PathLike) -> SpecFile:
    """Reads a policy file: one policy at the top level, or `[[policies]]`.

    A single policy without a `name` is named after the file (`threshold.toml`
    gives "threshold"). An optional `[data]` table holds `models` and `costs`.

    Raises:
        SpecError: `file: key.path: reason`.
    """
    path = os.fspath(path)
    raw = _read_toml(path)
    data = raw.pop("data", {})
    models = costs = None
    if not isinstance(data, dict):
        raise _fail(path, "data", f"expected a table, got {_type_name(data)}")
    for key, value in data.items():
        if key not in ("models", "costs"):
            raise _fail(
                path,
                _join("data", key),
                f"unknown key {key!r}{_suggest(key, ['models', 'costs'])}; "
                "known keys: models, costs",
            )
        kind = "strs" if key == "models" else "floats"
        reason = _type_reason(kind, _tuples(value))
        if reason is None and key == "costs":
            reason = _at_least(0)(_tuples(value))
        if reason is None and len(value) < 2:
            reason = f"needs at least two entries, got {len(value)}"
        if reason is not None:
            raise _fail(path, _join("data", key), reason)
    models = tuple(data["models"]) if "models" in data else None
    costs = tuple(float(c) for c in data["costs"]) if "costs" in data else None
    if models and costs and len(models) != len(costs):
        raise _fail(
            path,
            "data.costs",
            f"gives {len(costs)} costs for {len(models)} models",
        )
    if "policies" in raw:
        extra = sorted(set(raw) - {"policies"})
        if extra:
            raise _fail(
                path,
                extra[0],
                f"unknown key {extra[0]!r} beside [[policies]]; put it inside a "
                "policy table",
            )
        tables = raw["policies"]
        if not isinstance(tables, list) or not tables:
            raise _fail(path, "policies", "expected a non-empty list of policy tables")
        specs = tuple(
            spec_from_dict(t, source=path, path=f"policies[{i}]")
            for i, t in enumerate(tables)
        )
    else:
        spec = spec_from_dict(raw, source=path)
        if spec.name is None:
            stem = os.path.splitext(os.path.basename(path))[0]
            spec = attrs.evolve(spec, name=stem)
        specs = (spec,)
    labels = [s.label() for s in specs]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise _fail(
                path,
                f"policies[{i}].name",
                f"two policies are named {label!r}; give each a distinct name",
            )
    return SpecFile(path, specs, models, costs)


def load_spec(path: str | os.PathLike) -> PolicySpec:
    """The one policy of a single-policy file (see `load_spec_file`)."""
    loaded = load_spec_file(path)
    if len(loaded.specs) != 1:
        raise SpecError(
            f"{loaded.path}: holds {len(loaded.specs)} policies; use "
            "`load_spec_file` to read them all"
        )
    return loaded.specs[0]


def spec_for_name(name: str) -> PolicySpec:
    """The spec of a library policy name ("threshold", "always-large", ...)."""
    if name == "best-of":
        from ._protocol import BEST_OF_FAMILIES

        return BestOfSpec(
            name="best-of",
            members=tuple(spec_from_dict({"family": f}) for f in BEST_OF_FAMILIES),
        )
    if name in SPEC_FAMILIES or name in _ALIASES:
        return spec_from_dict({"family": name}, source="--policy")
    if name.startswith("always-model-") and name[13:].isdigit():
        return spec_from_dict(
            {"family": "always", "model": int(name[13:])}, source="--policy"
        )
    raise SpecError(
        f"--policy: unknown policy {name!r}"
        f"{_suggest(name, [*SPEC_FAMILIES, *_ALIASES, 'best-of'])}; give a family "
        "name or a .toml policy file"
    )


# --------------------------------------------------------------------------------
# Evaluating and fitting specs.
# --------------------------------------------------------------------------------


def compile_all(specs: Sequence[PolicySpec]) -> list[Compiled]:
    """Compiles every spec; refuses two results under one name."""
    compiled = [spec.compile() for spec in specs]
    names = [c.name for c in compiled]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise SpecError(
                f"two policies are named {name!r}; give one a distinct `name`"
            )
    return compiled


def evaluate_specs(data: Any, specs: Sequence[PolicySpec], **protocol: Any) -> Any:
    """Runs the AutoMix protocol (`automix_jax.evaluate`) for every spec.

    Specs with the same override answers share one protocol run; a best-of
    result takes, per seed, the member with the best train objective (the first
    of equals), as the protocol's own best-of does.

    Args:
        data: the `Dataset`.
        specs: the policies, in the order the results should come in.
        **protocol: seeds, train_size, bins, splits, cost range and the rest of
            `automix_jax.evaluate`'s keyword arguments.

    Returns:
        One `Report` with one result per spec, named by `PolicySpec.label`.
    """
    from ._protocol import evaluate

    compiled = compile_all(specs)
    groups: dict[tuple[str, ...], list[Compiled]] = {}
    for c in compiled:
        groups.setdefault(c.escalate_answers, []).append(c)
    by_name: dict[str, Any] = {}
    report = None
    notes: list[str] = []
    for answers, members in groups.items():
        rows = data.with_escalation(answers) if answers else data
        policies = [p for c in members for p in c.policies]
        report = evaluate(rows, policies, **protocol)
        notes += [n for n in report.notes if n not in notes]
        results = {r.policy: r for r in report.results}
        for c in members:
            if c.best_of:
                by_name[c.name] = _best_of(
                    c.name, [results[p.name] for p in c.policies]
                )
            else:
                by_name[c.name] = attrs.evolve(
                    results[c.policies[0].name], policy=c.name
                )
    assert report is not None, "no specs to evaluate"
    return attrs.evolve(
        report, results=[by_name[c.name] for c in compiled], notes=notes
    )


def _best_of(name: str, members: list[Any]) -> Any:
    """Per seed, the member result with the best train objective."""
    # An untuned member has no train objective (NaN); it is never preferred.
    train = np.stack([np.nan_to_num(m.train_lift, nan=-np.inf) for m in members])
    choice = np.argmax(train, axis=0)
    seeds = np.arange(train.shape[1])

    def pick(field: str) -> np.ndarray:
        return np.stack([getattr(m, field) for m in members])[choice, seeds]

    return attrs.evolve(
        members[0],
        policy=name,
        lift=pick("lift"),
        status=pick("status"),
        cost=pick("cost"),
        performance=pick("performance"),
        gap_recovered=pick("gap_recovered"),
        train_lift=np.stack([m.train_lift for m in members])[choice, seeds],
        params=[members[f].params[s] for s, f in enumerate(choice)],
        families=[members[f].families[s] for s, f in enumerate(choice)],
        auc=None,
    )


def fit_spec(
    data: Any,
    spec: PolicySpec,
    *,
    bins: int = 8,
    train_split: str | None = "train",
    cost_range: tuple[float, float] | None = None,
    small: int = 0,
    large: int = -1,
) -> Any:
    """Tunes `spec` on the whole train split; the result saves with the spec.

    A best-of keeps the member with the best train objective; an override tunes
    with its answers escalated and keeps them for live routing.

    Returns:
        A `TunedPolicy` whose `spec` field rebuilds the policy on load.
    """
    from ._tuned import fit_with_objective

    compiled = spec.compile()
    rows = (
        data.with_escalation(compiled.escalate_answers)
        if compiled.escalate_answers
        else data
    )
    best, best_value = None, -np.inf
    for policy in compiled.policies:
        # A best-of keeps the member whose choice has the best train objective.
        tuned, value = fit_with_objective(
            rows,
            policy,
            bins=bins,
            train_split=train_split,
            cost_range=cost_range,
            small=small,
            large=large,
        )
        if best is None or value > best_value:
            best, best_value = tuned, value
    assert best is not None
    chosen = next(
        s for s in _flat_members(spec) if _member_label(spec, s) == best.policy
    )
    return attrs.evolve(
        best,
        escalate_answers=tuple(compiled.escalate_answers),
        spec={"policy": chosen.to_dict(), "label": best.policy},
    )


def _flat_members(spec: PolicySpec) -> list[PolicySpec]:
    inner = spec.policy if isinstance(spec, OverrideSpec) else spec
    return list(inner.members) if isinstance(inner, BestOfSpec) else [inner]


def _member_label(spec: PolicySpec, member: PolicySpec) -> str:
    compiled = spec.compile()
    if not compiled.best_of:
        return compiled.policies[0].name
    inner = spec.policy if isinstance(spec, OverrideSpec) else spec
    return f"{inner.label()}/{member.label()}"


def policy_from_saved(saved: Mapping[str, Any]) -> Policy:
    """The `Policy` a tuned result's `spec` entry stands for."""
    spec = spec_from_dict(saved["policy"], source="tuned result", path="spec.policy")
    policy = spec.compile().policy
    if isinstance(policy, SpecPolicy):
        policy = attrs.evolve(policy, label=saved.get("label", policy.label))
    return policy
