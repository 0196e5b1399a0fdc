"""`automix-jax plot`: the cost-quality picture and the verifier's reliability."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ._errors import DataError

EXAMPLES = """\
examples:
  automix-jax plot
      evaluate every policy on the bundled GSM8K runs and draw plots/ from it
  automix-jax plot --policy policies/automix-paper.toml --seeds 5 --output-dir out
  automix-jax plot out/results.json --output-dir out
      redraw from the results.json that `automix-jax evaluate --output-dir` wrote
  automix-jax plot --demo date --policy policies/cascade-3.toml --json
      print the written files and the plotted numbers as one JSON object
"""


def register(subparsers) -> None:
    from ._cli_evaluate import add_data_arguments, add_progress_argument

    parser = subparsers.add_parser(
        "plot",
        help="draw the cost-quality plot and the verifier reliability diagram",
        description=(
            "Draw the AutoMix cost-quality picture (each model as a point, the "
            "small-to-large baseline, every policy's mean and seed spread, each "
            "family's curve over its candidates) and a reliability diagram of "
            "the verifier confidence, as PNG and SVG. With RESULTS, redraw from "
            "a results.json; without, evaluate first (same flags as evaluate)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "results",
        nargs="?",
        metavar="RESULTS",
        help="a results.json written by `automix-jax evaluate --output-dir` or "
        "the output of `automix-jax evaluate --json`",
    )
    add_data_arguments(parser)
    protocol = parser.add_argument_group("protocol (without RESULTS)")
    protocol.add_argument("--policy", action="append", metavar="NAME|FILE.toml")
    protocol.add_argument("--seeds", type=int, default=10)
    protocol.add_argument("--train-size", type=int, default=1000)
    protocol.add_argument("--bins", type=int, default=8)
    protocol.add_argument("--seed", type=int, default=0)
    output = parser.add_argument_group("output")
    output.add_argument(
        "--output-dir",
        default="plots",
        metavar="DIR",
        help="where to write the figures (default: plots)",
    )
    output.add_argument(
        "--json", action="store_true", help="print the files and plotted numbers"
    )
    add_progress_argument(output)
    parser.set_defaults(
        handler=run,
        command="plot",
        cost_range=None,
        escalate_answer=[],
        save_policy=None,
    )


def _read_results(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            results = json.load(handle)
    except FileNotFoundError:
        raise DataError("no such results file", file=path) from None
    except json.JSONDecodeError as error:
        raise DataError(
            f"not valid JSON ({error.msg})",
            file=path,
            line=error.lineno,
            fix="give the JSON that `automix-jax evaluate --json` prints",
        ) from None
    needed = ("models", "baseline", "results", "seeds")
    if not isinstance(results, dict) or any(k not in results for k in needed):
        raise DataError(
            "not an evaluation result (needs models, baseline, results, seeds)",
            file=path,
            fix="give the JSON that `automix-jax evaluate --json` prints",
        )
    return results


def run(args: argparse.Namespace) -> int:
    from ._cli_evaluate import evaluate_from_args, progress_printer, write_output_dir
    from ._plot import write_plots

    say = progress_printer(args)
    if args.results:
        results = _read_results(args.results)
        if "reliability" not in results and os.path.exists(str(results.get("data"))):
            from ._data import load
            from ._plot import reliability

            data = load(results["data"], results["models"], costs=results["costs"])
            results["reliability"] = reliability(data, split=args.eval_split)
        say(f"drawing the plots into {args.output_dir}")
        try:
            os.makedirs(args.output_dir, exist_ok=True)
        except OSError as error:
            raise DataError(
                f"cannot create the output folder ({error.strerror})",
                file=args.output_dir,
            ) from None
        files = write_plots(results, args.output_dir)
    else:
        report, data, policies = evaluate_from_args(args, say)
        results = write_output_dir(args, report, data, policies, say)
        files = [
            os.path.join(args.output_dir, name)
            for name in (
                "cost_quality.png",
                "cost_quality.svg",
                "reliability.png",
                "reliability.svg",
            )
        ]
    if args.json:
        json.dump({"files": files, "results": results}, sys.stdout)
        sys.stdout.write("\n")
    else:
        for path in files:
            print(path)
    return 0
