"""Scores of a live answer against a gold answer.

Three methods, chosen per run (`automix-jax run --score`):

- `numeric`: 1.0 when the last number in the prediction equals the gold number
  (thousands separators, `$` and `%` ignored; equal within 1e-6 relative), else 0.0.
- `exact`: 1.0 when the normalised strings are equal, else 0.0.
- `f1`: token-overlap F1 of the normalised strings, in [0, 1] (the SQuAD measure,
  Rajpurkar et al., 2016).
- `auto` (the default): `numeric` when the gold answer is a number (a JSON number, or
  a string that is one number), else `f1`.

Normalising lower-cases, drops punctuation and the articles a/an/the, and collapses
white space.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Literal

__all__ = ["ScoreMethod", "normalize_answer", "score_answer", "token_f1"]

ScoreMethod = Literal["auto", "exact", "f1", "numeric"]

_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, strip punctuation and articles, collapse white space."""
    text = str(text).lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 of two answers after `normalize_answer`.

    Two empty answers score 1.0; one empty answer scores 0.0.
    """
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    text = str(value).strip().replace("$", "").replace("%", "").replace(",", "")
    try:
        return float(text)
    except ValueError:
        return None


def _last_number(text: str) -> float | None:
    found = _NUMBER.findall(str(text))
    return float(found[-1].replace(",", "")) if found else None


def score_answer(prediction: str, gold: object, method: ScoreMethod = "auto") -> float:
    """Score `prediction` against `gold`.

    Args:
        prediction: the model's short answer.
        gold: the gold answer (a string or a number).
        method: `auto`, `exact`, `f1` or `numeric` (see the module docstring).

    Returns:
        The score in [0, 1].
    """
    if method == "auto":
        method = "numeric" if _as_number(gold) is not None else "f1"
    if method == "numeric":
        want = _as_number(gold)
        got = _last_number(prediction)
        if want is None or got is None:
            return 0.0
        return float(abs(got - want) <= 1e-6 * max(1.0, abs(want)))
    if method == "exact":
        return float(normalize_answer(prediction) == normalize_answer(str(gold)))
    if method == "f1":
        return token_f1(prediction, str(gold))
    raise ValueError(f"`method` must be auto, exact, f1 or numeric, got {method!r}")
