"""`automix-jax run`: route questions live over OpenAI-compatible endpoints."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, TextIO

from ._errors import AutomixError, PolicyError
from ._live import (
    LiveSettings,
    Progress,
    PromptTemplates,
    RunSummary,
    load_endpoints,
    load_live_policy,
    load_prompts,
    read_queries,
    run_live,
)

__all__ = ["load_live_policy", "register"]


class ProgressBar:
    """A one-line progress display on a text stream, redrawn in place.

    Args:
        stream: where to draw (standard error in the CLI).
        width: characters of the bar itself.
        min_interval: seconds between redraws (the last one is always drawn).
    """

    def __init__(self, stream: TextIO, width: int = 24, min_interval: float = 0.1):
        self.stream = stream
        self.width = width
        self.min_interval = min_interval
        self._last = 0.0
        self._drawn = False

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.done < progress.total and now - self._last < self.min_interval:
            return
        self._last = now
        share = progress.done / progress.total if progress.total else 1.0
        filled = int(round(share * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(
            f"\r[{bar}] {progress.done}/{progress.total} done, "
            f"{progress.escalated} escalated, {progress.failed} failed, "
            f"spent {progress.spent:.4f}"
        )
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the line the bar was drawn on."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def _summary_lines(summary: RunSummary, out: str, journal: str) -> list[str]:
    stops = ", ".join(f"{name} {count}" for name, count in summary.stops.items())
    lines = [
        f"{summary.done} of {summary.total} answered, {summary.failed} failed, "
        f"{summary.escalated} escalated; answered by: {stops or 'none'}",
        f"cost of the rows {summary.cost:.6f}; paid in this run {summary.spent:.6f} "
        f"for {summary.paid} requests; {summary.reused} reused from the journal; "
        f"{summary.retries} retries",
    ]
    if summary.mean_score is not None:
        lines.append(f"mean score of the standing answers {summary.mean_score:.4f}")
    for qid, reason in list(summary.errors.items())[:5]:
        lines.append(f"failed {qid}: {reason}")
    if len(summary.errors) > 5:
        lines.append(f"... and {len(summary.errors) - 5} more failures (see {out})")
    lines.append(f"wrote {out} (journal {journal})")
    return lines


def _check_cascade(policy, names: tuple[str, ...], given: str) -> None:
    """A tuned policy must be for a cascade as long as the endpoints'; a cascade
    of other names is allowed (live names need not match the logged ones) but said.
    """
    if policy.models is None:
        return
    if len(policy.models) != len(names):
        raise PolicyError(
            f"--policy {given}: tuned for {len(policy.models)} models "
            f"({' -> '.join(policy.models)}), the endpoints declare {len(names)} "
            f"({' -> '.join(names)}); tune on a cascade of the same length"
        )
    if tuple(policy.models) != tuple(names):
        print(
            f"automix-jax run: note: the policy was tuned for "
            f"{' -> '.join(policy.models)}; routing {' -> '.join(names)} with it",
            file=sys.stderr,
        )


def _handle(args: argparse.Namespace) -> int:
    if args.verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger = logging.getLogger("automix_jax")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    config = load_endpoints(args.endpoints)
    keys = config.api_keys()
    policy = load_live_policy(args.policy)
    _check_cascade(policy, config.names, args.policy)
    queries = read_queries(args.input)
    templates = load_prompts(args.prompts) if args.prompts else PromptTemplates()
    try:
        settings = LiveSettings(
            k=args.k,
            score=args.score,
            no_verdict_confidence=args.no_verdict_confidence,
            max_in_flight=args.max_in_flight,
            templates=templates,
        )
    except ValueError as error:
        raise PolicyError(str(error)) from None
    journal = args.journal or f"{args.out}.journal.jsonl"
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    bar = ProgressBar(sys.stderr) if show else None
    kwargs: dict[str, Any] = {
        "out_path": args.out,
        "journal_path": journal,
        "settings": settings,
        "keys": keys,
        "preflight": not args.no_preflight,
        "on_progress": bar,
        "seed": args.seed,
    }
    try:
        summary = run_live(config, queries, policy, **kwargs)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(
            f"automix-jax run: stopped; paid responses are in {journal}; run the "
            "same command again to resume",
            file=sys.stderr,
        )
        return 130
    except AutomixError:
        if bar is not None:
            bar.close()
        raise
    if bar is not None:
        bar.close()
    for line in _summary_lines(summary, args.out, journal):
        print(line)
    return 0


RUN_EXAMPLES = """\
examples:
  automix-jax run --endpoints examples/endpoints.toml --input questions.jsonl \\
      --policy threshold:0.5 --out results.jsonl
  automix-jax run --endpoints endpoints.toml --input questions.jsonl \\
      --policy collect --out logged.jsonl          # every model, to tune on
  automix-jax run --endpoints endpoints.toml --input questions.jsonl \\
      --policy tuned.json --out results.jsonl      # a policy saved by evaluate
"""


def register(subparsers: Any) -> None:
    """Add the `run` subcommand to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "run",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="route questions live over OpenAI-compatible endpoints",
        description=(
            "Answer each question with the cheapest model, let it verify its answer "
            "(k sampled verdicts), let the policy decide, and escalate down the "
            "cascade. Paid responses go to a journal first: rerun the same command "
            "to resume an interrupted run without paying twice."
        ),
    )
    parser.add_argument("--endpoints", required=True, help="endpoints TOML file")
    parser.add_argument("--input", required=True, help="questions, JSON Lines")
    parser.add_argument(
        "--policy",
        required=True,
        help="always-small, always-large, threshold:T, collect, or a tuned-result file",
    )
    parser.add_argument("--out", required=True, help="output rows, JSON Lines")
    parser.add_argument(
        "--journal", help="journal of paid responses (default: OUT.journal.jsonl)"
    )
    parser.add_argument(
        "--k", type=int, default=8, help="verification samples per answer (8)"
    )
    parser.add_argument(
        "--score",
        choices=("auto", "exact", "f1", "numeric"),
        default="auto",
        help="score vs gold: numeric for numeric gold, else token F1 (auto)",
    )
    parser.add_argument("--prompts", help="TOML file replacing the prompt templates")
    parser.add_argument(
        "--no-verdict-confidence",
        type=float,
        default=0.0,
        help="confidence when no verification sample has a verdict (0.0)",
    )
    parser.add_argument(
        "--max-in-flight", type=int, default=32, help="queries routed at once (32)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of retry jitter")
    parser.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the reachability check of every endpoint at start",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: only on a terminal)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log each HTTP call to stderr"
    )
    parser.set_defaults(handler=_handle, command="run")
