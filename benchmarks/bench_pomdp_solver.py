"""Point-based value iteration on the classic benchmark POMDPs, against SARSOP.

Solves Tiger, Hallway and TagAvoid (Cassandra's .pomdp files) with a wall-clock
budget and prints the value of the start belief (a lower bound), the number of alpha
vectors, and compile and solve time apart, beside SARSOP's lower bound after the
same budget (measured with the C++ solver on the same kind of 2-core machine; see
the data folder's SOURCE.md).

    python benchmarks/bench_pomdp_solver.py [--data-dir DIR] [--time-limit 60]
"""

from __future__ import annotations

import argparse
import pathlib
import time

from automix_jax._pomdp import solve
from automix_jax._pomdp_file import read_pomdp

REPO = pathlib.Path(__file__).resolve().parents[1]

# name: (method, belief points, observations argmaxed per belief and action,
# SARSOP's lower bound after 60 s). TagAvoid's robot sees its own cell, so after
# any step at most two observations are possible; three keeps the truncated backup
# exact at the random-walk beliefs (the start belief gets an exact backup at the
# end).
PROBLEMS = {
    "Tiger": ("pbvi", 64, None, 19.3714),
    "Hallway": ("perseus", 2048, None, 0.994),
    "TagAvoid": ("perseus", 4096, 3, -6.201),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=pathlib.Path,
        default=REPO / ".." / "shared" / "data" / "pomdp-files",
    )
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--only", nargs="*", default=list(PROBLEMS))
    args = parser.parse_args()
    header = (
        f"{'problem':<10} {'method':<8} {'value':>9} {'SARSOP 60s':>10} {'alphas':>6} "
        f"{'sweeps':>6} {'parse s':>7} {'compile s':>9} {'solve s':>7}"
    )
    print(header)
    for name in args.only:
        method, points, kept, sarsop = PROBLEMS[name]
        started = time.perf_counter()
        pomdp = read_pomdp(args.data_dir / f"{name}.pomdp").pomdp
        parse_seconds = time.perf_counter() - started
        result = solve(
            pomdp,
            method=method,
            num_beliefs=points,
            max_observations=kept,
            time_limit=args.time_limit,
            max_iterations=100_000,
            tolerance=1e-5,
        )
        print(
            f"{name:<10} {method:<8} {result.value:>9.4f} {sarsop:>10.4f} "
            f"{result.alphas.shape[0]:>6} {result.iterations:>6} "
            f"{parse_seconds:>7.2f} {result.compile_seconds:>9.2f} "
            f"{result.solve_seconds:>7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
