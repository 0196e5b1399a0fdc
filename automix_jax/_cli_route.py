"""`automix-jax route`: route a large log of queries in chunks, one line per row."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

import attrs
import jax

from ._cli_evaluate import add_data_arguments, load_from_args
from ._data import Columns
from ._errors import PolicyError
from ._shard import query_mesh
from ._stream import DEFAULT_CHUNK_SIZE, StreamSummary, route_file
from ._tuned import TunedPolicy, fit, load_tuned

EXAMPLES = """\
examples:
  automix-jax route --policy tuned.json --input logs.jsonl --out decisions.jsonl
  automix-jax route --policy threshold --train runs.jsonl --models small,large \\
      --input logs.jsonl --out decisions.jsonl --save-policy tuned.json
  automix-jax route --policy tuned.json --input logs.npz --out - --chunk-size 262144

Each output line is {"id": ..., "model": NAME, "stop": INDEX, "cost": ...}, in input
order. Inputs: .jsonl, .csv, .npz (uncompressed), .npy, .parquet (with pyarrow).
"""


class Throughput:
    """Rows done and rows per second on one line of a text stream, redrawn in place.

    Args:
        stream: where to draw (standard error in the CLI).
        min_interval: seconds between redraws.
    """

    def __init__(self, stream: TextIO, min_interval: float = 0.5):
        self.stream = stream
        self.min_interval = min_interval
        self.start = time.perf_counter()
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if now - self._last < self.min_interval:
            return
        self._last = now
        rate = done / max(now - self.start, 1e-9)
        self.stream.write(f"\rrouted {done:,} rows, {rate:,.0f} rows/s")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Ends the line the progress was drawn on."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def _tuned_from_args(args: argparse.Namespace, columns: Columns) -> TunedPolicy:
    if os.path.isfile(args.policy):
        return load_tuned(args.policy)
    if args.data is None:
        raise PolicyError(
            f"--policy {args.policy!r} is not a tuned-result file; give a file "
            "written by `automix-jax evaluate`/`tune`, or a policy name with "
            "--train DATA to tune it first"
        )
    data = load_from_args(args)
    if args.escalate_answer:
        data = data.with_escalation(args.escalate_answer)
    if args.cost_range is not None and len(args.cost_range) != 2:
        raise PolicyError("--cost-range takes two numbers: LOW,HIGH")
    tuned = fit(
        data,
        args.policy,
        bins=args.bins,
        train_split=args.train_split,
        cost_range=tuple(args.cost_range) if args.cost_range else None,
    )
    tuned = attrs.evolve(
        tuned, columns=columns, escalate_answers=tuple(args.escalate_answer)
    )
    if args.save_policy:
        tuned.save(args.save_policy)
    return tuned


def _columns(args: argparse.Namespace, parser_defaults: dict, base: Columns):
    """`base` with every column flag the user changed from its default."""
    flags = {
        "score": "score_column",
        "confidence": "confidence_column",
        "answer": "answer_column",
        "cost": "cost_column",
        "split": "split_column",
    }
    changed = {
        field: getattr(args, flag)
        for field, flag in flags.items()
        if getattr(args, flag) != parser_defaults[flag]
    }
    return attrs.evolve(base, **changed)


def _summary_line(summary: StreamSummary, models, seconds: float, out: str) -> str:
    stops = ", ".join(f"{m} {int(c):,}" for m, c in zip(models, summary.stops))
    rate = summary.num_rows / max(seconds, 1e-9)
    return (
        f"routed {summary.num_rows:,} rows in {seconds:.2f} s ({rate:,.0f} rows/s); "
        f"answered by: {stops}; mean cost {float(summary.summary.cost):.6g}; "
        f"wrote {out}"
    )


def run(args: argparse.Namespace) -> int:
    defaults = args._defaults
    given = _columns(args, defaults, Columns())
    tuned = _tuned_from_args(args, given)
    columns = _columns(args, defaults, tuned.columns)
    family = tuned.family()
    # Per-model costs: the flags when given, else those the policy was tuned with.
    costs = args.costs if args.costs is not None else list(tuned.costs)
    verifier = args.verifier_cost
    if verifier == defaults["verifier_cost"] and tuned.verifier_cost:
        verifier = list(tuned.verifier_cost)
    mesh = query_mesh() if jax.device_count() > 1 else None
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    bar = Throughput(sys.stderr) if show else None
    to_stdout = args.out == "-"
    start = time.perf_counter()
    try:
        summary = route_file(
            family,
            tuned.array_params(),
            args.input,
            sys.stdout if to_stdout else args.out,
            tuned.models,
            chunk_size=args.chunk_size,
            mesh=mesh,
            on_progress=bar,
            costs=costs,
            verifier_cost=verifier,
            columns=columns,
            escalate_answers=tuple(tuned.escalate_answers)
            + tuple(args.escalate_answer),
        )
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    line = _summary_line(summary, tuned.models, seconds, args.out)
    print(line, file=sys.stderr if to_stdout else sys.stdout)
    return 0


def register(subparsers) -> None:
    """Adds the `route` subcommand to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "route",
        help="route a large log of queries with a tuned policy, in chunks",
        description=(
            "Route every row of INPUT with a tuned policy (a file saved by evaluate "
            "or tune, or a policy name tuned first on --train DATA), reading the "
            "input in fixed-size chunks so memory stays flat, and split each chunk "
            "over every JAX device. Writes one JSON line per row, in input order."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--policy",
        required=True,
        metavar="P",
        help="a tuned-result JSON file, or a policy name to tune on --train",
    )
    parser.add_argument("--input", required=True, help="the rows to route")
    parser.add_argument(
        "--out", required=True, help="decisions, JSON Lines (- for stdout)"
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--train",
        dest="data",
        metavar="PATH",
        help="rows to tune a policy name on (the same as --data)",
    )
    tuning = parser.add_argument_group("tuning (with a policy name)")
    tuning.add_argument("--bins", type=int, default=8)
    tuning.add_argument(
        "--cost-range",
        type=lambda t: [float(x) for x in t.split(",")],
        metavar="LOW,HIGH",
        help="keep only candidates whose mean train cost lies in [LOW, HIGH]",
    )
    tuning.add_argument("--save-policy", metavar="PATH", help="save the tuned policy")
    parser.add_argument(
        "--escalate-answer",
        action="append",
        default=[],
        metavar="TEXT",
        help="always escalate when the first model answers TEXT (repeatable)",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help=f"rows per chunk (default: {DEFAULT_CHUNK_SIZE})",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rows done and rows/s on stderr (default: only on a terminal)",
    )
    flags = ("score_column", "confidence_column", "answer_column", "cost_column")
    flags += ("split_column", "verifier_cost")
    defaults = {flag: parser.get_default(flag) for flag in flags}
    parser.set_defaults(handler=run, command="route", _defaults=defaults)
