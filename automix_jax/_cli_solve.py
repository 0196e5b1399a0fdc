"""`automix-jax solve FILE.pomdp`: point-based value iteration on a `.pomdp` file."""

from __future__ import annotations

import argparse
import json

from ._errors import AutomixError
from ._pomdp import solve
from ._pomdp_file import read_pomdp

SOLVE_EXAMPLES = """\
examples:
  automix-jax solve Tiger.pomdp
  automix-jax solve TagAvoid.pomdp --time-limit 60 --json
  automix-jax solve Hallway.pomdp --method pbvi --belief-points 1024
"""


def register(subparsers) -> None:
    """Adds the `solve` subcommand to `subparsers` (from `add_subparsers`)."""
    parser = subparsers.add_parser(
        "solve",
        epilog=SOLVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="solve a POMDP in Cassandra's .pomdp format by point-based value "
        "iteration",
        description=(
            "Solve a finite POMDP written in Cassandra's .pomdp format by "
            "point-based value iteration (Pineau, Gordon & Thrun 2003) and print "
            "the value of the start belief (a lower bound when discount < 1; the "
            "start belief is uniform where the file gives none)."
        ),
    )
    parser.add_argument("file", metavar="FILE.pomdp", help="the problem")
    parser.add_argument(
        "--belief-points",
        type=int,
        default=None,
        metavar="K",
        help="number of belief points (default: 256 for pbvi, 4096 for perseus)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="S",
        help="wall-clock seconds for solving, compilation excluded (default: none)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="stop when no belief point's value changes by more (default: %(default)s)",
    )
    parser.add_argument(
        "--max-iterations",
        type=int,
        default=1000,
        help="cap on backup sweeps; the horizon when discount is 1 (default: "
        "%(default)s)",
    )
    parser.add_argument(
        "--max-observations",
        type=int,
        default=None,
        metavar="M",
        help="per belief and action, consider only the M most probable "
        "observations (a sound, faster lower bound; default: all for pbvi, 3 for "
        "perseus)",
    )
    parser.add_argument(
        "--method",
        choices=("auto", "pbvi", "perseus"),
        default="auto",
        help="pbvi: back up every point each sweep (Pineau et al. 2003); perseus: "
        "randomised backups over random-walk beliefs (Spaan & Vlassis 2005); auto: "
        "perseus for discounted problems of 16 states or more, where it is much "
        "faster "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--alpha-vectors",
        type=int,
        default=512,
        metavar="C",
        help="perseus: room for alpha vectors per stage (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="belief sampling seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_run, command="solve")


def _run(args: argparse.Namespace) -> int:
    for name in ("belief_points", "max_iterations", "alpha_vectors"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            raise AutomixError(f"{flag} must be at least 1, got {getattr(args, name)}")
    if args.time_limit is not None and args.time_limit <= 0:
        raise AutomixError(f"--time-limit must be positive, got {args.time_limit}")
    if args.tolerance < 0:
        raise AutomixError(f"--tolerance must be >= 0, got {args.tolerance}")
    parsed = read_pomdp(args.file)
    method = args.method
    if method == "auto":
        large = parsed.pomdp.num_states >= 16 and parsed.pomdp.discount < 1.0
        method = "perseus" if large else "pbvi"
    points = args.belief_points
    if points is None:
        # Perseus needs many cheap points; PBVI backs up all of its points.
        points = 4096 if method == "perseus" else 256
    max_observations = args.max_observations
    if max_observations is None and method == "perseus":
        # Three keeps the backup exact where the belief fixes all but one bit of
        # the observation (TagAvoid), and is a sound lower bound elsewhere.
        max_observations = 3
    result = solve(
        parsed.pomdp,
        method=method,
        num_alphas=args.alpha_vectors,
        num_beliefs=points,
        max_iterations=args.max_iterations,
        tolerance=args.tolerance,
        time_limit=args.time_limit,
        seed=args.seed,
        max_observations=max_observations,
    )
    report = {
        "file": str(args.file),
        "value": result.value,
        "alpha_vectors": int(result.alphas.shape[0]),
        "seconds": result.solve_seconds,
        "compile_seconds": result.compile_seconds,
        "iterations": result.iterations,
        "method": method,
        "converged": result.converged,
        "belief_points": int(result.beliefs.shape[0]),
        "states": len(parsed.states),
        "actions": len(parsed.actions),
        "observations": len(parsed.observations),
        "discount": parsed.pomdp.discount,
        "start": "file" if parsed.start_given else "uniform",
    }
    if args.json:
        print(json.dumps(report))
        return 0
    start = "start belief" if parsed.start_given else "uniform start belief"
    state = "converged" if result.converged else "not converged"
    print(f"value at {start}: {result.value:.6f}")
    print(f"alpha vectors: {report['alpha_vectors']}")
    print(
        f"solve time: {result.solve_seconds:.2f} s (+ {result.compile_seconds:.2f} s "
        f"compiling), {result.iterations} sweeps, {state}"
    )
    return 0
