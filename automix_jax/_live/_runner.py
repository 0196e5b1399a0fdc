"""The AutoMix steps over live endpoints, query by query, resumable.

For each query, starting with the cheapest model (Madaan et al., "AutoMix", 2023):

1. the model answers: temperature 0, a short completion, the context cut to fit
   its window;
2. the same model checks that answer: the few-shot verification prompt, k samples
   at temperature 1 (one request with `n=k` where the server supports it, else k
   requests); the confidence is the share of parsed verdicts that say "correct".
   When no sample has a verdict the confidence is `LiveSettings.no_verdict_confidence`
   (0.0 by default, so a threshold policy escalates);
3. the policy decides whether the answer stands;
4. if not, the next model repeats the steps; the last model is not verified unless
   the policy collects data.

Rows are written in input order in the AutoMix column style that `automix-jax
evaluate` reads. A query that fails (retries spent, an HTTP error that cannot be
retried) gets an `error` column with the reason and does not stop the batch. Every
paid response goes through the journal first, so running again resumes for free.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from .._errors import DataError
from ._client import CHARS_PER_TOKEN, ChatClient, ChatError
from ._endpoints import Endpoint, EndpointsConfig
from ._journal import Journal
from ._policy import LivePolicy
from ._prompts import PromptTemplates, extract_answer, fit_context, parse_verdict
from ._scoring import ScoreMethod, score_answer

__all__ = [
    "LiveSettings",
    "Progress",
    "Query",
    "RunSummary",
    "read_queries",
    "run_live",
    "run_live_async",
]


@attrs.frozen
class Query:
    """One input row.

    Attributes:
        index: 0-based position in the input (output order).
        id: the row's `id`, or its 1-based line number as a string.
        question: the question.
        context: text the question is about ("" for none).
        gold: the gold answer (`output`, else `answer`), `None` when absent.
        split: the row's `split`, `None` when absent.
    """

    index: int
    id: Any
    question: str
    context: str = ""
    gold: Any = None
    split: str | None = None


def read_queries(path: str | os.PathLike[str]) -> list[Query]:
    """Read the questions of a live run from a JSON Lines file.

    Each non-blank line is an object with `question` (a non-empty string) and
    optionally `id` (string or integer, unique), `context` (string), `output` or
    `answer` (the gold answer) and `split` (string).

    Raises:
        DataError: the file cannot be read, or a line is not such an object;
            the message names the file, line and field and the fix.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(
            f"cannot read the input ({error.strerror})",
            file=source,
            fix="pass an existing JSON Lines file to --input",
        ) from None
    queries: list[Query] = []
    seen: dict[Any, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise DataError(
                f"not valid JSON ({error.msg} at character {error.pos + 1})",
                file=source,
                line=number,
                fix="write one JSON object per line",
            ) from None
        if not isinstance(row, dict):
            raise DataError(
                "the line is not a JSON object",
                file=source,
                line=number,
                fix='write {"question": "..."} objects',
            )
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataError(
                "missing or empty question",
                file=source,
                line=number,
                column="question",
                value=question,
                fix="give every row a non-empty string `question`",
            )
        for field in ("context", "split"):
            if field in row and not isinstance(row[field], str):
                raise DataError(
                    f"`{field}` must be a string",
                    file=source,
                    line=number,
                    column=field,
                    value=row[field],
                    fix=f"write {field} as a string or leave it out",
                )
        qid = row.get("id", str(number))
        if isinstance(qid, bool) or not isinstance(qid, (str, int)):
            raise DataError(
                "`id` must be a string or an integer",
                file=source,
                line=number,
                column="id",
                value=qid,
                fix="use string or integer ids",
            )
        if qid in seen:
            raise DataError(
                f"duplicate id (first on line {seen[qid]})",
                file=source,
                line=number,
                column="id",
                value=qid,
                fix="make ids unique",
            )
        seen[qid] = number
        gold = row.get("output", row.get("answer"))
        queries.append(
            Query(
                index=len(queries),
                id=qid,
                question=question,
                context=row.get("context", ""),
                gold=gold,
                split=row.get("split"),
            )
        )
    return queries


@attrs.frozen
class LiveSettings:
    """How a live run samples, scores and schedules.

    Attributes:
        k: verification samples per answer.
        verify_temperature: temperature of the verification samples.
        score: how answers are scored against gold (see `score_answer`).
        no_verdict_confidence: the confidence when no sample has a verdict.
        max_in_flight: queries routed at once (requests are further limited per
            endpoint).
        templates: the prompts.
    """

    k: int = attrs.field(default=8)
    verify_temperature: float = 1.0
    score: ScoreMethod = attrs.field(default="auto")
    no_verdict_confidence: float = attrs.field(default=0.0)
    max_in_flight: int = attrs.field(default=32)
    templates: PromptTemplates = attrs.field(factory=PromptTemplates)

    @k.validator
    def _check_k(self, attribute: attrs.Attribute, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`k` must be an integer >= 1, got {value!r}")

    @score.validator
    def _check_score(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in ("auto", "exact", "f1", "numeric"):
            raise ValueError(f"`score` must be auto, exact, f1 or numeric: {value!r}")

    @no_verdict_confidence.validator
    def _check_conf(self, attribute: attrs.Attribute, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"`no_verdict_confidence` must be in [0, 1]: {value!r}")

    @max_in_flight.validator
    def _check_inflight(self, attribute: attrs.Attribute, value: int) -> None:
        if value < 1:
            raise ValueError(f"`max_in_flight` must be >= 1, got {value!r}")


@attrs.define
class Progress:
    """Counters shown while a run goes (mutable)."""

    total: int
    done: int = 0
    escalated: int = 0
    failed: int = 0
    spent: float = 0.0


@attrs.define
class RunSummary:
    """What a finished (or stopped) run did.

    Attributes:
        total: queries in the input.
        done: queries answered.
        failed: queries recorded with an error.
        escalated: queries that ran more than one model.
        stops: how many queries each model answered for good.
        cost: summed `total_cost` of the written rows (journaled calls included).
        spent: money paid in this run (calls not found in the journal).
        paid: requests paid in this run.
        reused: requests answered from the journal.
        retries: retried attempts.
        mean_score: mean score of the standing answers over rows with gold,
            `None` when no row has gold.
        errors: reason per failed query id.
    """

    total: int
    done: int = 0
    failed: int = 0
    escalated: int = 0
    stops: dict[str, int] = attrs.field(factory=dict)
    cost: float = 0.0
    spent: float = 0.0
    paid: int = 0
    reused: int = 0
    retries: int = 0
    mean_score: float | None = None
    errors: dict[Any, str] = attrs.field(factory=dict)


def _messages_fitting(
    endpoint: Endpoint,
    build: Callable[[str], list[dict[str, str]]],
    context: str,
    reserve: int,
) -> list[dict[str, str]]:
    fixed = sum(len(m["content"]) for m in build("")) / CHARS_PER_TOKEN
    fitted = fit_context(
        context, math.ceil(fixed), endpoint.context_window, reserve, CHARS_PER_TOKEN
    )
    return build(fitted)


class _Router:
    def __init__(
        self,
        config: EndpointsConfig,
        client: ChatClient,
        policy: LivePolicy | Callable[[int, tuple[float, ...], str], bool],
        settings: LiveSettings,
    ):
        self.endpoints = config.endpoints
        self.client = client
        self.policy = policy
        self.settings = settings
        self.start = getattr(policy, "start", 0) % len(self.endpoints)
        self.verify = getattr(policy, "verify", True)
        self.collect = getattr(policy, "collect", False)

    async def _answer(self, endpoint: Endpoint, query: Query) -> tuple[str, Any]:
        templates = self.settings.templates
        messages = _messages_fitting(
            endpoint,
            lambda c: templates.answer_messages(query.question, c),
            query.context,
            endpoint.answer_max_tokens,
        )
        response = await self.client.complete(
            endpoint, messages, temperature=0.0, max_tokens=endpoint.answer_max_tokens
        )
        return response.texts[0], response

    async def _verify(
        self, endpoint: Endpoint, query: Query, answer: str
    ) -> tuple[list[str], list[Any]]:
        templates = self.settings.templates
        messages = _messages_fitting(
            endpoint,
            lambda c: templates.verify_messages(query.question, c, answer),
            query.context,
            endpoint.verify_max_tokens,
        )
        k = self.settings.k
        common = {
            "temperature": self.settings.verify_temperature,
            "max_tokens": endpoint.verify_max_tokens,
            "stop": templates.verify_stop,
        }
        samples: list[str] = []
        responses: list[Any] = []
        if endpoint.supports_n:
            # One request for all k; a server that returns fewer choices than asked
            # is asked again for the rest (each such request is journaled apart).
            replicate = 0
            while len(samples) < k:
                response = await self.client.complete(
                    endpoint,
                    messages,
                    n=k - len(samples),
                    replicate=replicate,
                    **common,
                )
                samples.extend(response.texts)
                responses.append(response)
                replicate += 1
        else:
            responses = list(
                await asyncio.gather(
                    *(
                        self.client.complete(endpoint, messages, replicate=r, **common)
                        for r in range(k)
                    )
                )
            )
            samples = [r.texts[0] for r in responses]
        return samples[:k], responses

    async def route(self, query: Query) -> dict[str, Any]:
        row: dict[str, Any] = {"id": query.id, "question": query.question}
        if query.gold is not None:
            row["output"] = query.gold
        if query.split is not None:
            row["split"] = query.split
        confidences: list[float] = []
        total = 0.0
        stop: str | None = None
        last = len(self.endpoints) - 1
        for step in range(self.start, last + 1):
            endpoint = self.endpoints[step]
            name = endpoint.name
            try:
                completion, answered = await self._answer(endpoint, query)
                answer = extract_answer(completion)
                calls = [answered]
                checked: dict[str, Any] = {}
                confidence = math.nan
                if self.collect or (self.verify and step < last):
                    samples, verified = await self._verify(endpoint, query, answer)
                    calls.extend(verified)
                    verdicts = [parse_verdict(s) for s in samples]
                    parsed = [v for v in verdicts if v is not None]
                    # No parsable verdict at all: the documented fallback value.
                    confidence = (
                        sum(parsed) / len(parsed)
                        if parsed
                        else self.settings.no_verdict_confidence
                    )
                    checked = {
                        f"{name}_ver": samples,
                        f"{name}_verdicts": [
                            None if v is None else ("correct" if v else "incorrect")
                            for v in verdicts
                        ],
                        f"p_ver_{name}": confidence,
                        f"{name}_ver_cost": sum(c.cost for c in verified),
                    }
            except ChatError as error:
                row["error"] = error.reason
                row["failed_model"] = name
                row["stop_model"] = None
                row["total_cost"] = total
                return row
            row[f"{name}_pred_ans"] = answer
            row[f"{name}_completion"] = completion
            if query.gold is not None:
                row[f"{name}_f1"] = score_answer(
                    answer, query.gold, self.settings.score
                )
            row.update(checked)
            row[f"{name}_input_tokens"] = sum(c.input_tokens for c in calls)
            row[f"{name}_output_tokens"] = sum(c.output_tokens for c in calls)
            row[f"{name}_cost"] = cost = sum(c.cost for c in calls)
            total += cost
            confidences.append(confidence)
            stop = name
            if step == last:
                break
            if not self.collect and not self.policy(step, tuple(confidences), answer):
                break
        row["stop_model"] = stop
        row["total_cost"] = total
        return row


async def run_live_async(
    config: EndpointsConfig,
    queries: Sequence[Query],
    policy: LivePolicy | Callable[[int, tuple[float, ...], str], bool],
    *,
    out_path: str | os.PathLike[str],
    journal_path: str | os.PathLike[str],
    settings: LiveSettings | None = None,
    keys: dict[str, str | None] | None = None,
    preflight: bool = True,
    on_progress: Callable[[Progress], None] | None = None,
    seed: int | None = None,
) -> RunSummary:
    """Route every query live and write one output row per query, in input order.

    Args:
        config: the cascade.
        queries: the input rows (`read_queries`).
        policy: a `LivePolicy` or a bare `escalate(step, confidences, answer)`.
        out_path: the JSON Lines output, rewritten from the start.
        journal_path: the journal of paid responses, appended to.
        settings: sampling, scoring and scheduling settings.
        keys: API key per endpoint; read from the environment when `None`.
        preflight: check that every endpoint is reachable before anything is sent.
        on_progress: called after each finished query and each paid response.
        seed: seed of the backoff jitter.

    Returns:
        The run's summary.

    Raises:
        EndpointError: a key variable is missing or an endpoint unreachable (at
            start, before anything is paid for).
    """
    settings = settings or LiveSettings()
    progress = Progress(total=len(queries))

    def paid(cost: float) -> None:
        progress.spent += cost
        if on_progress is not None:
            on_progress(progress)

    summary = RunSummary(total=len(queries))
    keys = config.api_keys() if keys is None else keys
    journal = Journal(journal_path)
    client = ChatClient(
        config, journal, keys=keys, rng=random.Random(seed), on_paid=paid
    )
    results: dict[int, dict[str, Any]] = {}
    scores: list[float] = []
    stops: Counter[str] = Counter()
    out: IO[str] | None = None
    try:
        async with client:
            if preflight:
                await client.preflight()
            router = _Router(config, client, policy, settings)
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            out = open(out_path, "w", encoding="utf-8")
            pending = iter(queries)
            written = 0

            def finish(query: Query, row: dict[str, Any]) -> None:
                nonlocal written
                results[query.index] = row
                progress.done += 1
                if "error" in row:
                    progress.failed += 1
                    summary.errors[query.id] = row["error"]
                else:
                    stops[row["stop_model"]] += 1
                    ran = sum(1 for e in config.endpoints if f"{e.name}_cost" in row)
                    progress.escalated += ran > 1
                    if query.gold is not None:
                        scores.append(row[f"{row['stop_model']}_f1"])
                summary.cost += row["total_cost"]
                while written in results:
                    assert out is not None
                    out.write(json.dumps(results.pop(written), ensure_ascii=False))
                    out.write("\n")
                    written += 1
                out.flush()
                if on_progress is not None:
                    on_progress(progress)

            async def worker() -> None:
                for query in pending:
                    finish(query, await router.route(query))

            workers = [
                asyncio.ensure_future(worker())
                for _ in range(min(settings.max_in_flight, max(1, len(queries))))
            ]
            try:
                await asyncio.gather(*workers)
            finally:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
    finally:
        if out is not None:
            out.close()
        journal.close()
        summary.done = progress.done - progress.failed
        summary.failed = progress.failed
        summary.escalated = progress.escalated
        summary.stops = dict(stops)
        summary.spent = client.stats.spent
        summary.paid = client.stats.paid
        summary.reused = client.stats.reused
        summary.retries = client.stats.retries
        summary.mean_score = sum(scores) / len(scores) if scores else None
    return summary


def run_live(*args: Any, **kwargs: Any) -> RunSummary:
    """`run_live_async` run to the end in a fresh event loop.

    SIGTERM stops the run like Ctrl-C does: requests in flight are abandoned,
    everything already paid for is in the journal, and `KeyboardInterrupt` is
    raised. Run again with the same journal to resume.
    """

    async def main() -> RunSummary:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        try:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
            pass
        try:
            return await run_live_async(*args, **kwargs)
        finally:
            try:
                loop.remove_signal_handler(signal.SIGTERM)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                pass

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
