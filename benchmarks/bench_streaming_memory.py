"""Peak resident memory of `automix-jax route` on inputs of growing size.

Writes inputs of 1e5 .. 1e7 rows to a temporary folder (JSON Lines and an
uncompressed .npz), routes each with the CLI in a fresh process, and prints the
child's peak resident set size (`ru_maxrss`), rows per second and bytes on disk.
Memory should stay flat: only one chunk of rows is ever held.

    python benchmarks/bench_streaming_memory.py            # 1e5, 1e6, 1e7 rows
    python benchmarks/bench_streaming_memory.py --rows 1e5 1e6 --formats npz
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def write_inputs(folder: str, n: int, formats: list[str]) -> dict[str, str]:
    """Writes n AutoMix-style rows in each format, block by block (bounded memory)."""
    rng = np.random.default_rng(0)
    paths = {}
    if "jsonl" in formats:
        path = os.path.join(folder, f"rows{n}.jsonl")
        with open(path, "w") as handle:
            for start in range(0, n, 100_000):
                stop = min(start + 100_000, n)
                conf = rng.integers(0, 65, (stop - start,)) / 64
                handle.write(
                    "".join(
                        f'{{"id": "q{start + i}", "p_ver_small": {c}, '
                        f'"p_ver_large": 1.0}}\n'
                        for i, c in enumerate(conf.tolist())
                    )
                )
        paths["jsonl"] = path
    if "npz" in formats:
        path = os.path.join(folder, f"rows{n}.npz")
        conf = np.ones((n, 2), np.float32)
        conf[:, 0] = rng.integers(0, 65, (n,)) / 64
        np.savez(path, confidences=conf)
        del conf
        paths["npz"] = path
    return paths


def route(policy: str, path: str, out: str) -> tuple[float, float]:
    """Runs the route CLI in a child; returns (seconds, peak RSS in MiB)."""
    command = [
        sys.executable,
        "-m",
        "automix_jax",
        "route",
        "--policy",
        policy,
        "--input",
        path,
        "--out",
        out,
        "--models",
        "small,large",
    ]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"route failed on {path} (status {status})")
    # ru_maxrss is in KiB on Linux.
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    parser.add_argument("--formats", nargs="+", default=["npz", "jsonl"])
    parser.add_argument("--folder", help="where to write inputs (default: a temp dir)")
    args = parser.parse_args()
    folder = args.folder or tempfile.mkdtemp(prefix="automix-bench-")
    policy = os.path.join(folder, "tuned.json")
    with open(policy, "w") as handle:
        handle.write(
            '{"format": "automix-jax/tuned-policy", "format_version": 1, '
            '"policy": "threshold", "params": 0.5, "models": ["small", "large"], '
            '"costs": [1.0, 50.0], "verifier_cost": [1.0, 1.0]}\n'
        )
    print(
        f"{'format':6} {'rows':>10} {'disk MiB':>9} {'seconds':>8} "
        f"{'rows/s':>11} {'peak RSS MiB':>13}"
    )
    for rows in args.rows:
        n = int(rows)
        for fmt, path in write_inputs(folder, n, args.formats).items():
            out = os.path.join(folder, "decisions.jsonl")
            seconds, peak = route(policy, path, out)
            disk = os.path.getsize(path) / 2**20
            print(
                f"{fmt:6} {n:>10,} {disk:>9.1f} {seconds:>8.1f} "
                f"{n / seconds:>11,.0f} {peak:>13.1f}",
                flush=True,
            )
            os.remove(path)
            os.remove(out)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this driver's own peak RSS: {own:.1f} MiB)")


if __name__ == "__main__":
    main()
