"""`automix-jax evaluate`: the AutoMix protocol on logged model outputs."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from ._data import Columns, demo_path, detect_models, load
from ._errors import DataError, PolicyError, SpecError
from ._policies import POLICIES
from ._protocol import DEFAULT_POLICIES, Report, evaluate

EXAMPLES = """\
examples:
  automix-jax evaluate
      the bundled real runs (GSM8K: Llama-2-13B, then GPT-4), every policy
  automix-jax evaluate --data runs.jsonl --models llama13b,gpt4 --costs 1,50 --json
  automix-jax evaluate --demo date --models llama13b,gpt35,gpt4 --costs 1,10,50 \\
      --policy threshold --policy chained-threshold
  automix-jax evaluate --data custom.jsonl --models small,large \\
      --score-column '{model}_score' --confidence-column '{model}_confidence' \\
      --split-column part
  automix-jax evaluate --policy policies/automix-paper.toml --output-dir out/
      a policy file (several named policies), with table, JSON and plots in out/
  automix-jax evaluate --demo date --policy policies/cascade-3.toml
      a 3-model cascade; the file names its models and costs
  automix-jax evaluate --policy policies/automix-threshold.toml \\
      --save-policy tuned.json
      tune on the whole train split and save it for `automix-jax run`
"""


def _number_list(text: str, what: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{what} must be comma-separated numbers, got {text!r}"
        ) from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{what} must be finite numbers, got {text!r}")
    return values


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data, model, cost and column flags shared by evaluate, tune and route."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        metavar="PATH",
        help="AutoMix-style .jsonl or .csv (default: the bundled demo data)",
    )
    data.add_argument(
        "--demo",
        default="gsm8k",
        choices=("gsm8k", "date"),
        help="which bundled dataset to use without --data (default: gsm8k)",
    )
    data.add_argument(
        "--models",
        type=lambda t: [x.strip() for x in t.split(",") if x.strip()],
        help="model names, cheapest first (default: the cheapest and the dearest "
        "in the file)",
    )
    data.add_argument(
        "--costs",
        type=lambda t: _number_list(t, "--costs"),
        help="cost of one call to each model, cheapest first (default: 1,50)",
    )
    data.add_argument(
        "--verifier-cost",
        type=float,
        default=1.0,
        help="cost of one self-verification (default: 1); with --cost-column, "
        "pass 0 when that column already includes verification, as the output "
        "of `automix-jax run` does",
    )
    data.add_argument("--score-column", default="{model}_f1", metavar="TEMPLATE")
    data.add_argument(
        "--confidence-column", default="p_ver_{model}", metavar="TEMPLATE"
    )
    data.add_argument("--answer-column", default="{model}_pred_ans", metavar="TEMPLATE")
    data.add_argument(
        "--cost-column",
        metavar="TEMPLATE",
        help="per-query cost column, e.g. '{model}_cost' (overrides --costs)",
    )
    data.add_argument("--split-column", default="split")
    data.add_argument("--train-split", default="train")
    data.add_argument("--eval-split", default="val")


def load_from_args(args: argparse.Namespace):
    """Loads the dataset the data flags describe."""
    path = args.data or demo_path(args.demo)
    if not os.path.exists(path):
        raise DataError("the file does not exist", file=path, fix="check --data")
    columns = Columns(
        score=args.score_column,
        confidence=args.confidence_column,
        answer=args.answer_column,
        cost=args.cost_column,
        split=args.split_column,
    )
    models = args.models
    if models is None:
        found = detect_models(path, columns)
        # The cheapest and the dearest: the first and the last model in the file.
        models = [found[0], found[-1]]
    if args.verifier_cost < 0 or not math.isfinite(args.verifier_cost):
        raise DataError(
            "the verifier cost must be a finite number >= 0",
            value=args.verifier_cost,
            fix="pass --verifier-cost 1",
        )
    return load(
        path,
        models,
        costs=args.costs,
        verifier_cost=args.verifier_cost,
        columns=columns,
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="tune meta-verifier policies on train, report IBC lift on val",
        description=(
            "Run the AutoMix evaluation protocol: for each seed, sample train rows, "
            "tune every policy on them, and report cost, performance and IBC lift "
            "on the val split (mean, std, min, max over seeds)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(parser)
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument(
        "--policy",
        action="append",
        metavar="NAME|FILE.toml",
        help="a policy name or a policy file (repeatable; default: all of "
        + ", ".join(DEFAULT_POLICIES)
        + "; chained-threshold for M-model cascades)",
    )
    protocol.add_argument("--seeds", type=int, default=10)
    protocol.add_argument("--train-size", type=int, default=1000)
    protocol.add_argument("--bins", type=int, default=8)
    protocol.add_argument(
        "--cost-range",
        type=lambda t: _number_list(t, "--cost-range"),
        metavar="LOW,HIGH",
        help="keep only candidates whose mean train cost lies in [LOW, HIGH]",
    )
    protocol.add_argument("--seed", type=int, default=0, help="the first seed")
    protocol.add_argument(
        "--escalate-answer",
        action="append",
        default=[],
        metavar="TEXT",
        help="always escalate when the first model answers TEXT (repeatable)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout"
    )
    output.add_argument(
        "--output-dir",
        metavar="DIR",
        help="also write table.txt, results.json, cost_quality.png/.svg and "
        "reliability.png/.svg into DIR",
    )
    output.add_argument(
        "--save-policy",
        metavar="PATH",
        help="tune the first policy on the whole train split and save it as JSON "
        "(for `automix-jax run --policy PATH`)",
    )
    add_progress_argument(output)
    parser.set_defaults(handler=run, command="evaluate")


def add_progress_argument(group) -> None:
    """`--progress` / `--no-progress`: stage lines on stderr (default: on a tty)."""
    group.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print progress lines on stderr (default: when stderr is a terminal)",
    )


def progress_printer(args: argparse.Namespace):
    """A `say(message)` that prints one progress line on stderr, or does nothing."""
    enabled = args.progress
    if enabled is None:
        enabled = sys.stderr.isatty()
    command = getattr(args, "command", "evaluate")

    def say(message: str) -> None:
        if enabled:
            print(f"automix-jax {command}: {message}", file=sys.stderr, flush=True)

    return say


def _policy_specs(args: argparse.Namespace):
    """The specs and the file hints (models, costs) the --policy flags name.

    Returns None when every policy is a library name, so the protocol runs on
    the names as it always has.
    """
    from ._specs import load_spec_file, spec_for_name

    names = args.policy or list(DEFAULT_POLICIES)
    if all(n in POLICIES or n == "best-of" for n in names) and not args.save_policy:
        return None, None, None
    specs, models, costs = [], None, None
    for name in names:
        if name.endswith(".toml"):
            loaded = load_spec_file(name)
            specs += loaded.specs
            if loaded.models is not None:
                if models is not None and models != loaded.models:
                    raise SpecError(
                        f"{name}: data.models {list(loaded.models)} differ from "
                        f"another file's {list(models)}"
                    )
                models, costs = loaded.models, loaded.costs or costs
        else:
            specs.append(spec_for_name(name))
    return specs, models, costs


def evaluate_from_args(args: argparse.Namespace, say=None):
    """Loads the data, runs the protocol; returns `(report, data, policies)`.

    `policies` are the compiled `Policy` objects whose candidate curves the plot
    draws (best-of members excluded).
    """
    from ._specs import compile_all, evaluate_specs, fit_spec

    say = say or (lambda message: None)
    if args.cost_range is not None and len(args.cost_range) != 2:
        raise PolicyError("--cost-range takes two numbers: LOW,HIGH")
    specs, models, costs = _policy_specs(args)
    if models is not None and args.models is None:
        args.models = list(models)
        if costs is not None and args.costs is None:
            args.costs = list(costs)
    say(f"loading {args.data or demo_path(args.demo)}")
    data = load_from_args(args)
    if args.escalate_answer:
        data = data.with_escalation(args.escalate_answer)
    protocol = dict(
        seeds=args.seeds,
        train_size=args.train_size,
        bins=args.bins,
        train_split=args.train_split,
        eval_split=args.eval_split,
        cost_range=tuple(args.cost_range) if args.cost_range else None,
        seed=args.seed,
    )
    if specs is None:
        names = args.policy or list(DEFAULT_POLICIES)
        say(f"tuning {len(names)} policies over {args.seeds} seeds (compiling first)")
        report = evaluate(data, names, **protocol)
        policies = [POLICIES[n] for n in names if n in POLICIES]
    else:
        say(f"tuning {len(specs)} policies over {args.seeds} seeds (compiling first)")
        report = evaluate_specs(data, specs, **protocol)
        policies = [p for c in compile_all(specs) if not c.best_of for p in c.policies]
        if args.save_policy:
            say(f"tuning {specs[0].label()!r} on the whole train split")
            tuned = fit_spec(
                data,
                specs[0],
                bins=args.bins,
                train_split=args.train_split,
                cost_range=protocol["cost_range"],
            )
            try:
                tuned.save(args.save_policy)
            except OSError as error:
                raise DataError(
                    f"cannot write the tuned policy ({error.strerror})",
                    file=args.save_policy,
                    fix="choose another --save-policy path",
                ) from None
            say(f"saved the tuned policy to {args.save_policy}")
    return report, data, policies


def write_output_dir(
    args: argparse.Namespace, report: Report, data, policies, say
) -> dict:
    """Writes the table, the JSON (with curves and reliability) and the plots."""
    from ._plot import candidate_curves, plot_data, reliability, write_plots

    out_dir = args.output_dir
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"cannot create the output folder ({error.strerror})",
            file=out_dir,
            fix="choose another --output-dir",
        ) from None
    say("scoring every candidate on the evaluation split for the curves")
    results = plot_data(
        report.to_json(),
        curves=candidate_curves(
            data,
            policies,
            bins=args.bins,
            split=args.eval_split,
            train_split=args.train_split,
        ),
        reliability=reliability(data, split=args.eval_split),
    )
    with open(os.path.join(out_dir, "table.txt"), "w", encoding="utf-8") as handle:
        handle.write(format_table(report, args.eval_split))
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, allow_nan=False)
        handle.write("\n")
    say("drawing the plots")
    write_plots(results, out_dir)
    say(f"wrote table.txt, results.json and the plots in {out_dir}")
    return results


def run(args: argparse.Namespace) -> int:
    say = progress_printer(args)
    report, data, policies = evaluate_from_args(args, say)
    if args.output_dir:
        write_output_dir(args, report, data, policies, say)
    if args.json:
        json.dump(report.to_json(), sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(report, args.eval_split))
    return 0


def _fmt(stats: dict | None, digits: int = 3) -> str:
    if stats is None:
        return "undefined"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def format_table(report: Report, eval_split: str = "val") -> str:
    """A readable table of a `Report` (figures on the `eval_split` rows)."""
    out = report.to_json()
    lines = [
        f"data: {out['data']}",
        "models: "
        + ", ".join(
            f"{m} (cost {c:g}, performance {p:.3f})"
            for m, c, p in zip(
                out["models"], out["baseline"]["cost"], out["baseline"]["performance"]
            )
        ),
        f"verifier cost: {out['verifier_cost'][0]:g}   seeds: {out['seeds']}   "
        f"train rows per seed: {out['train_size']}   bins: {out['bins']}",
    ]
    for note in out["notes"]:
        lines.append(f"note: {note}")
    header = (
        f"{'policy':<20} {f'IBC lift ({eval_split})':>18} {'cost':>16} "
        f"{'performance':>16} {'gap recovered':>16}"
    )
    lines += ["", header, "-" * len(header)]
    for r in out["results"]:
        lines.append(
            f"{r['policy']:<20} {_fmt(r['ibc_lift']):>18} {_fmt(r['cost'], 2):>16} "
            f"{_fmt(r['performance']):>16} {_fmt(r['gap_recovered']):>16}"
        )
    # Each reason once, with the policies it applies to.
    reasons: dict[str, list[str]] = {}
    for r in out["results"]:
        for message in r["lift_undefined"]:
            reasons.setdefault(message, []).append(r["policy"])
    for message, names in reasons.items():
        if len(names) == len(out["results"]) and len(names) > 1:
            continue  # said once above, for the whole baseline
        lines.append(f"note ({', '.join(names)}): {message}")
    if not report.gap_defined:
        lines.append(
            "note: gap recovered is undefined: the large model scores no better "
            "than the small one"
        )
    return "\n".join(lines) + "\n"
