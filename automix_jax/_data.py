"""Loading logged cascade outputs: AutoMix-style JSON Lines, CSV and DataFrames.

The AutoMix release stores one query per line with, for each model `m`, a score
column `m_f1`, a verifier confidence `p_ver_m`, the answer `m_pred_ans` and a
`split` column. Every column name here is a template over the model name, so no
model is hard-wired; `Columns` says which template to use.

Every refusal is a `DataError` naming the file, the line, the column, the value and
what to do.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from ._errors import DataError
from ._observations import Observations

DEMO_DATASETS = ("gsm8k", "date")


@attrs.frozen
class Columns:
    """Column-name templates; `{model}` is replaced by each model's name.

    Attributes:
        score: the quality of a model's answer (default `{model}_f1`).
        confidence: its verifier confidence in [0, 1] (default `p_ver_{model}`).
        answer: its answer text, used by the fixed-answer override
            (default `{model}_pred_ans`; optional in the data).
        cost: an optional per-query cost column (say `{model}_cost`); when None the
            per-model costs given to the loader are used.
        split: the column naming each row's split (default `split`).
        id: the row identifier column (default `id`; optional in the data).
    """

    score: str = "{model}_f1"
    confidence: str = "p_ver_{model}"
    answer: str = "{model}_pred_ans"
    cost: str | None = None
    split: str = "split"
    id: str = "id"

    def for_model(self, template: str, model: str) -> str:
        return template.replace("{model}", model)


@attrs.frozen(eq=False)
class Dataset:
    """Observations plus what only Python needs: names, splits, ids and answers.

    Attributes:
        observations: the `Observations` pytree of every row.
        models: the model names, cheapest first.
        split: `[n]` the split of each row (strings).
        ids: `[n]` row identifiers (the line number where the data has none).
        answers: `[n, M]` answer strings (None where the data has none).
        source: where the rows came from (a path, or a short description).
    """

    observations: Observations
    models: tuple[str, ...]
    split: np.ndarray
    ids: np.ndarray
    answers: np.ndarray
    source: str = "<memory>"

    def __len__(self) -> int:
        return int(self.split.shape[0])

    def take(self, index: np.ndarray) -> Dataset:
        """The rows at `index` (an integer array or a boolean mask)."""
        return attrs.evolve(
            self,
            observations=self.observations[np.asarray(index)],
            split=self.split[index],
            ids=self.ids[index],
            answers=self.answers[index],
        )

    def split_rows(self, name: str) -> Dataset:
        """The rows of split `name`; refused when there are none.

        Raises:
            DataError: no row has that split (the message lists the splits present).
        """
        mask = self.split == name
        if not mask.any():
            present = ", ".join(sorted(set(self.split.tolist()))) or "none"
            raise DataError(
                f"the split {name!r} has no rows (splits present: {present})",
                file=self.source,
                fix="choose another split with --train-split / --eval-split, "
                "or add rows with that split",
            )
        return self.take(np.flatnonzero(mask))

    def with_escalation(self, answers: Iterable[str], model: int = 0) -> Dataset:
        """Marks rows whose answer of `model` is one of `answers` to escalate.

        This is the AutoMix fixed-answer override: an answer such as "unanswerable"
        is never allowed to stand, whatever the verifier says.
        """
        wanted = set(answers)
        mask = np.array([a in wanted for a in self.answers[:, model]], dtype=bool)
        obs = self.observations
        return attrs.evolve(
            self,
            observations=Observations(
                obs.scores, obs.confidences, obs.costs, obs.verifier_costs, mask
            ),
        )


def _number(
    value: Any, *, file: str, line: int, column: str, what: str, allow_missing=False
) -> float:
    """Parses one numeric cell, refusing text, booleans, NaN and infinities."""
    if value is None or value == "":
        if allow_missing:
            return math.nan
        raise DataError(
            f"the {what} is missing",
            file=file,
            line=line,
            column=column,
            fix=f"give a number in column {column!r} on every row",
        )
    if isinstance(value, bool):
        raise DataError(
            f"the {what} is a boolean, not a number",
            file=file,
            line=line,
            column=column,
            value=value,
            fix="write 1.0 / 0.0 instead of true / false",
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(
            f"the {what} is not a number",
            file=file,
            line=line,
            column=column,
            value=value,
            fix=f"put a number in column {column!r}",
        ) from None
    if not math.isfinite(number):
        raise DataError(
            f"the {what} is not finite",
            file=file,
            line=line,
            column=column,
            value=value,
            fix="remove the row or put a finite number there",
        )
    return number


def _missing(what: str, *, file: str, line: int, column: str, fix: str) -> DataError:
    """The error for a row that lacks a column."""
    return DataError(
        f"the {what} column is missing", file=file, line=line, column=column, fix=fix
    )


def _bounded(
    row: Mapping[str, Any],
    column: str,
    *,
    what: str,
    low: float,
    high: float,
    reason: str,
    fix: str,
    file: str,
    line: int,
) -> float:
    """A numeric cell that must lie in [low, high]."""
    value = _number(row[column], file=file, line=line, column=column, what=what)
    if not low <= value <= high:
        raise DataError(
            reason, file=file, line=line, column=column, value=row[column], fix=fix
        )
    return value


def from_records(
    records: Iterable[tuple[int, Mapping[str, Any]]],
    models: Sequence[str],
    *,
    costs: Sequence[float] | None = None,
    verifier_cost: float | Sequence[float] = 1.0,
    columns: Columns | None = None,
    source: str = "<memory>",
    require_labels: bool = True,
) -> Dataset:
    """Builds a `Dataset` from `(line number, row mapping)` pairs.

    Args:
        records: the rows, each with the line it came from (for error messages).
        models: model names, cheapest first (at least two).
        costs: the cost of running each model once; default 1 and 50 for two
            models (the AutoMix paper's ratio). Required for three models or more.
        verifier_cost: the cost of one self-verification (a scalar, or one per model).
        columns: column templates; `Columns()` reads the AutoMix release layout.
        source: the file name used in error messages.
        require_labels: whether every row must carry what evaluation reads (the
            scores and the split). False for rows that are only routed: a missing
            score is NaN and a missing split is "".

    Returns:
        The `Dataset`.

    Raises:
        DataError: on any row or setting that cannot be used.
    """
    columns = columns or Columns()
    models = tuple(models)
    if len(models) < 2:
        raise DataError(
            f"a cascade needs at least two models, got {list(models)}",
            file=source,
            fix="name two or more models, cheapest first (--models small,large)",
        )
    if len(set(models)) != len(models):
        raise DataError(
            f"model names repeat: {list(models)}", file=source, fix="name each once"
        )
    m = len(models)
    if columns.cost is None:
        if costs is None:
            if m != 2:
                raise DataError(
                    f"{m} models need {m} costs",
                    file=source,
                    fix="pass --costs with one number per model, cheapest first",
                )
            costs = (1.0, 50.0)
        if len(costs) != m:
            raise DataError(
                f"{len(costs)} costs for {m} models",
                file=source,
                fix="pass one cost per model, cheapest first",
            )
        for c in costs:
            if not (math.isfinite(c) and c >= 0):
                raise DataError(
                    "a model cost must be a finite number >= 0",
                    file=source,
                    value=c,
                    fix="pass costs such as --costs 1,50",
                )
        if any(b < a for a, b in zip(costs, costs[1:])):
            raise DataError(
                f"the costs {list(costs)} fall along the cascade "
                f"({' -> '.join(models)})",
                file=source,
                fix="list the models and their costs cheapest first",
            )
    score_cols = [columns.for_model(columns.score, x) for x in models]
    conf_cols = [columns.for_model(columns.confidence, x) for x in models]
    answer_cols = [columns.for_model(columns.answer, x) for x in models]
    cost_cols = (
        [columns.for_model(columns.cost, x) for x in models] if columns.cost else None
    )
    scores, confs, row_costs, splits, ids, answers = [], [], [], [], [], []
    for line, row in records:
        if not isinstance(row, Mapping):
            raise DataError(
                "the row is not an object",
                file=source,
                line=line,
                fix="write one JSON object per line",
            )
        for col in score_cols:
            if col not in row and require_labels:
                raise _missing(
                    "score",
                    file=source,
                    line=line,
                    column=col,
                    fix="name the columns with --score-column (e.g. '{model}_score')"
                    " or fix the model names with --models",
                )
        scores.append(
            [
                _number(
                    row.get(c),
                    file=source,
                    line=line,
                    column=c,
                    what="score",
                    allow_missing=not require_labels,
                )
                for c in score_cols
            ]
        )
        conf_row = []
        for i, c in enumerate(conf_cols):
            last = i == m - 1
            if c not in row:
                if last:
                    # The last model's answer always stands: its confidence is unused.
                    conf_row.append(1.0)
                    continue
                raise _missing(
                    "confidence",
                    file=source,
                    line=line,
                    column=c,
                    fix="name it with --confidence-column (e.g. '{model}_confidence')",
                )
            value = _bounded(
                row,
                c,
                what="confidence",
                low=0.0,
                high=1.0,
                reason="the confidence is outside [0, 1]",
                fix="verifier confidences are probabilities; clip or fix the row",
                file=source,
                line=line,
            )
            conf_row.append(value)
        confs.append(conf_row)
        if cost_cols is not None:
            cost_row = []
            for c in cost_cols:
                if c not in row:
                    raise _missing(
                        "cost",
                        file=source,
                        line=line,
                        column=c,
                        fix="give a cost on every row or use per-model --costs",
                    )
                value = _bounded(
                    row,
                    c,
                    what="cost",
                    low=0.0,
                    high=math.inf,
                    reason="the cost is negative",
                    fix="costs must be >= 0",
                    file=source,
                    line=line,
                )
                cost_row.append(value)
            row_costs.append(cost_row)
        if columns.split not in row and require_labels:
            raise _missing(
                "split",
                file=source,
                line=line,
                column=columns.split,
                fix="add a split (e.g. 'train' / 'val') to every row, or name the "
                "column with --split-column",
            )
        splits.append(str(row.get(columns.split, "")))
        ids.append(str(row.get(columns.id, line)))
        answers.append([_answer_text(row.get(c)) for c in answer_cols])
    if not scores:
        raise DataError(
            "there are no rows", file=source, fix="give at least one row per split"
        )
    if cost_cols is not None:
        cost_array = np.asarray(row_costs, dtype=np.float64)
    else:
        cost_array = np.asarray(costs, dtype=np.float64)
    obs = Observations(
        np.asarray(scores, dtype=np.float64),
        np.asarray(confs, dtype=np.float64),
        cost_array,
        verifier_cost,
    )
    return Dataset(
        observations=obs,
        models=models,
        split=np.asarray(splits, dtype=object),
        ids=np.asarray(ids, dtype=object),
        answers=np.asarray(answers, dtype=object).reshape(len(scores), m),
        source=source,
    )


def _answer_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        # 18.0 and "18" are the same answer for the fixed-answer override.
        return str(int(value))
    return str(value)


def _jsonl_records(path: str):
    # utf-8-sig: a byte-order mark some editors write is skipped, not an error.
    with open(path, encoding="utf-8-sig") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as error:
                raise DataError(
                    f"the line is not valid JSON ({error.msg}, character "
                    f"{error.pos}); it may be truncated",
                    file=path,
                    line=number,
                    fix="repair or remove the line",
                ) from None
            yield number, row


def _csv_records(path: str):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        # Line 1 is the header, so the first row is line 2.
        for number, row in enumerate(reader, start=2):
            if None in row:
                raise DataError(
                    "the row has more fields than the header",
                    file=path,
                    line=number,
                    fix="quote fields that contain commas",
                )
            yield number, row


def _check_path(path: str) -> None:
    if not os.path.exists(path):
        raise DataError(
            "the file does not exist", file=path, fix="check the path given to --data"
        )


def load_jsonl(path: str | os.PathLike, models: Sequence[str], **kwargs) -> Dataset:
    """Loads AutoMix-style JSON Lines (one object per line).

    Args:
        path: the file.
        models: model names, cheapest first.
        **kwargs: `costs`, `verifier_cost` and `columns`, as in `from_records`.

    Example:
        >>> data = load_jsonl("gsm8k.jsonl", ["llama13b", "gpt4"])  # doctest: +SKIP
    """
    path = os.fspath(path)
    _check_path(path)
    return from_records(_jsonl_records(path), models, source=path, **kwargs)


def load_csv(path: str | os.PathLike, models: Sequence[str], **kwargs) -> Dataset:
    """Loads a CSV file with a header row; arguments as in `load_jsonl`."""
    path = os.fspath(path)
    _check_path(path)
    return from_records(_csv_records(path), models, source=path, **kwargs)


def load_dataframe(frame, models: Sequence[str], **kwargs) -> Dataset:
    """Loads a pandas DataFrame (pandas is optional); lines count from 1."""
    records = ((i + 1, row) for i, row in enumerate(frame.to_dict(orient="records")))
    kwargs.setdefault("source", "<DataFrame>")
    return from_records(records, models, **kwargs)


def load(path: str | os.PathLike, models: Sequence[str] | None = None, **kwargs):
    """Loads `path` by its extension (`.jsonl`/`.json`, `.csv`).

    When `models` is None they are read off the columns: every `m` with a score
    column, in the order they first appear (the cheapest and the dearest are the
    first and the last). Use `detect_models` to see them.
    """
    path = os.fspath(path)
    _check_path(path)
    if models is None:
        models = detect_models(path, kwargs.get("columns"))
    if path.endswith(".csv"):
        return load_csv(path, models, **kwargs)
    if path.endswith((".jsonl", ".json", ".ndjson")):
        return load_jsonl(path, models, **kwargs)
    raise DataError(
        "unknown file type",
        file=path,
        fix="give a .jsonl or .csv file",
    )


def detect_models(path: str, columns: Columns | None = None) -> list[str]:
    """The model names whose score columns appear in the first row of `path`."""
    columns = columns or Columns()
    prefix, _, suffix = columns.score.partition("{model}")
    if path.endswith(".csv"):
        with open(path, encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
    else:
        header = next((list(row) for _, row in _jsonl_records(path)), [])
    names = [
        key[len(prefix) : len(key) - len(suffix)]
        for key in header
        if key.startswith(prefix)
        and key.endswith(suffix)
        and len(key) > len(prefix) + len(suffix)
    ]
    if len(names) < 2:
        raise DataError(
            f"found {len(names)} score column(s) matching {columns.score!r}",
            file=path,
            line=1,
            fix="name the models with --models small,large or the score column with "
            "--score-column",
        )
    return names


def demo_path(name: str = "gsm8k") -> str:
    """The path of a bundled demo dataset (`gsm8k` or `date`).

    These are real runs of Llama-2-13B, GPT-3.5-turbo and GPT-4 (Yue et al., ICLR
    2024); `demo/SOURCE.md` beside them gives their provenance.
    """
    if name not in DEMO_DATASETS:
        raise DataError(
            f"unknown demo dataset {name!r}",
            fix=f"choose one of {', '.join(DEMO_DATASETS)}",
        )
    return os.path.join(os.path.dirname(__file__), "demo", f"{name}.jsonl")
