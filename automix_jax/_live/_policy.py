"""Routing decisions for live runs: the `escalate` callable and its loader.

The live runner asks one question after each model has answered and (when needed)
checked its answer: go on to the next model? It asks it of a callable

    escalate(step: int, confidences: tuple[float, ...], answer: str) -> bool

where `step` is the 0-based cascade index of the model just run and `confidences`
the verifier confidences of the models run so far, cheapest first (NaN for a model
that was not verified). Any such callable works; `LivePolicy` wraps one with the few
facts the runner needs to avoid paying for steps no decision reads (where to start,
whether to verify).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import attrs

from .._errors import PolicyError

__all__ = ["EscalateFn", "LivePolicy", "load_live_policy"]

EscalateFn = Callable[[int, tuple[float, ...], str], bool]


def _never(step: int, confidences: tuple[float, ...], answer: str) -> bool:
    return False


def _always(step: int, confidences: tuple[float, ...], answer: str) -> bool:
    return True


@attrs.frozen
class LivePolicy:
    """An escalation rule plus what the runner may skip for it.

    Attributes:
        name: how the policy was given, for messages and the summary.
        escalate: the decision after each step.
        start: cascade index of the first model to run (negative counts from the
            end, so -1 is the largest model).
        verify: whether a model that is not the last is verified (a decision
            that reads no confidence need not pay for one).
        collect: run and verify every model on every query (for data to tune on);
            `escalate` is not consulted.
        models: the cascade a tuned policy was tuned for (None for the rules
            given by name), so the runner can check it against the endpoints.
    """

    name: str
    escalate: EscalateFn
    start: int = 0
    verify: bool = True
    collect: bool = False
    models: tuple[str, ...] | None = None

    def __call__(self, step: int, confidences: tuple[float, ...], answer: str) -> bool:
        return bool(self.escalate(step, confidences, answer))


@attrs.frozen
class _Threshold:
    threshold: float

    def __call__(self, step: int, confidences: tuple[float, ...], answer: str) -> bool:
        confidence = confidences[-1] if confidences else math.nan
        # An unverified answer (NaN) is not trusted.
        return not (confidence > self.threshold)


def load_live_policy(text: str) -> LivePolicy:
    """Turn the `--policy` argument of `automix-jax run` into a `LivePolicy`.

    Accepted forms:

    - `always-small`: answer with the first model, never verify or escalate.
    - `always-large`: answer with the last model only.
    - `threshold:T`: escalate when the confidence of the model just run is <= T
      (the AutoMix convention), T in [0, 1].
    - `collect`: run and verify every model (output that can be tuned on).
    - a path to a tuned-result file, read by `automix_jax.load_tuned`; its
      `.escalate(step, confidences, answer)` decides.

    Args:
        text: the argument.

    Returns:
        The policy.

    Raises:
        PolicyError: the text is none of these, or the tuned file cannot be used.
    """
    text = text.strip()
    if text == "always-small":
        return LivePolicy(text, _never, start=0, verify=False)
    if text == "always-large":
        return LivePolicy(text, _always, start=-1, verify=False)
    if text == "collect":
        return LivePolicy(text, _always, collect=True)
    if text.startswith("threshold:"):
        raw = text.split(":", 1)[1]
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not 0.0 <= value <= 1.0:
            raise PolicyError(
                f"--policy {text!r}: the threshold must be a number in [0, 1], "
                f"got {raw!r}; write e.g. threshold:0.6"
            )
        return LivePolicy(text, _Threshold(value))
    if os.path.exists(text):
        return _load_tuned_policy(Path(text))
    raise PolicyError(
        f"--policy {text!r}: not a policy name and no such file; use always-small, "
        "always-large, threshold:T, collect, or the path of a tuned-result file"
    )


def _load_tuned_policy(path: Path) -> LivePolicy:
    import automix_jax

    loader = getattr(automix_jax, "load_tuned", None)
    if loader is None:
        raise PolicyError(
            f"--policy {str(path)!r}: this build of automix_jax cannot read "
            "tuned-result files (no automix_jax.load_tuned); use threshold:T"
        )
    tuned = loader(path)
    decide = getattr(tuned, "escalate", None)
    if not callable(decide):
        raise PolicyError(
            f"--policy {str(path)!r}: the tuned result has no escalate(step, "
            "confidences, answer) method, so it cannot route live queries"
        )
    models = getattr(tuned, "models", None)
    return LivePolicy(
        f"tuned:{path.name}", decide, models=tuple(models) if models else None
    )
