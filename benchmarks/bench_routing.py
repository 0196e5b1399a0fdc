"""Rows per second of bulk routing, beside a NumPy copy and the AutoMix reference.

For n in-memory rows (default 1e6 and 1e7) of a two-model cascade this times:

* threshold routing (`automix_jax.route` with `Threshold`) and POMDP routing (the
  cascade POMDP's solved history table, `CascadePomdp`, tuned on 50k train rows),
  compile and steady state apart (`block_until_ready`, median of repeats);
* a NumPy copy of the same bytes the router reads (confidences and the override
  flags) into a preallocated array: the memory-bandwidth yardstick;
* the reference implementation (pip package automix-llm, pandas): `Threshold.run`
  on the same rows, and `Automix.evaluate` (one pandas `apply` per row) on a slice,
  run by another interpreter when `--reference-python` is given or `automix` is
  importable here.

    python benchmarks/bench_routing.py
    python benchmarks/bench_routing.py --rows 1e6 --reference-python PATH/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

import automix_jax as am
from automix_jax._cascade import CascadePomdp

_REFERENCE = r"""
import json, sys, time
import numpy as np, pandas as pd
try:
    from automix.automix_methods import Threshold
    from automix.main import Automix
except ImportError:
    print(json.dumps({"missing": True})); sys.exit()
data = np.load(sys.argv[1])
df = pd.DataFrame({"small_f1": data["scores"][:, 0], "large_f1": data["scores"][:, 1],
                   "p_ver_small": data["conf"][:, 0]})
method = Threshold(num_bins=8)
times = []
for _ in range(3):
    start = time.perf_counter()
    method.run(df, 0.5, verifier_column="p_ver_small")
    times.append(time.perf_counter() - start)
part = df.iloc[: int(sys.argv[2])]
mix = Automix(method, slm_column="small_f1", llm_column="large_f1",
              verifier_column="p_ver_small", costs=[1, 50], verifier_cost=1)
mix.best_param = 0.5
start = time.perf_counter()
mix.evaluate(part)
evaluate_s = time.perf_counter() - start
print(json.dumps({"run_s": sorted(times)[1], "evaluate_rows": len(part),
                  "evaluate_s": evaluate_s}))
"""


def make_rows(n: int, seed: int = 0):
    """Confidences in 1/64 steps; the small model is right about as often as sure."""
    rng = np.random.default_rng(seed)
    conf = np.ones((n, 2), np.float32)
    conf[:, 0] = rng.integers(0, 65, n) / 64
    scores = np.empty((n, 2), np.float32)
    scores[:, 0] = rng.random(n) < conf[:, 0]
    scores[:, 1] = rng.random(n) < 0.8
    return scores, conf


def timed(fn, repeats: int) -> tuple[float, float]:
    """(first call seconds, median of `repeats` later calls)."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def reference(python: str | None, scores, conf, evaluate_rows: int) -> dict:
    if python is None:
        try:
            import automix  # noqa: F401
        except ImportError:
            return {"missing": True}
        python = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "rows.npz")
        np.savez(path, scores=scores, conf=conf)
        out = subprocess.run(
            [python, "-c", _REFERENCE, path, str(evaluate_rows)],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--reference-python", help="interpreter with automix-llm")
    parser.add_argument("--evaluate-rows", type=int, default=20_000)
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.device_count()} device(s): {jax.devices()}")
    # The POMDP is solved once, on separate train rows.
    train_scores, train_conf = make_rows(50_000, seed=1)
    train = am.Observations(train_scores, train_conf, np.array([1.0, 50.0]), 1.0)
    pomdp = CascadePomdp()
    tuned = am.tune(pomdp, pomdp.grid(8, 2), train)
    pomdp_params = tuned.candidates[int(tuned.index)]
    print(f"POMDP: λ sweep of {len(pomdp.grid(8, 2))} solved on 50k train rows")
    for rows in args.rows:
        bench(int(rows), args, pomdp, pomdp_params)


def bench(n: int, args, pomdp, pomdp_params) -> None:
    scores, conf = make_rows(n)
    obs = am.Observations(scores, conf, np.array([1.0, 50.0]), 1.0)
    threshold = np.float32(0.5)
    t_first, t_steady = timed(
        lambda: am.route(am.Threshold(), threshold, obs), args.repeats
    )
    p_first, p_steady = timed(lambda: am.route(pomdp, pomdp_params, obs), args.repeats)
    # The same bytes the router reads, copied into memory already touched.
    src_conf, src_flag = np.asarray(obs.confidences), np.asarray(obs.escalate)
    dst_conf, dst_flag = np.empty_like(src_conf), np.empty_like(src_flag)

    def copy():
        np.copyto(dst_conf, src_conf)
        np.copyto(dst_flag, src_flag)

    copy()
    _, c_steady = timed(copy, args.repeats)
    mib = (src_conf.nbytes + src_flag.nbytes) / 2**20
    ref = reference(args.reference_python, scores, conf, args.evaluate_rows)
    print(f"\n{n:,} rows ({mib:.0f} MiB read by the router)")
    print(f"  {'':30}{'first call s':>13}{'steady s':>10}{'rows/s':>15}")
    table = [
        ("threshold route", t_first, t_steady),
        ("POMDP route (history table)", p_first, p_steady),
        ("NumPy copy of the bytes", None, c_steady),
    ]
    if not ref.get("missing"):
        table.append(("reference Threshold.run", None, ref["run_s"]))
        rows = ref["evaluate_rows"]
        per_row = ref["evaluate_s"] / rows
        table.append((f"reference evaluate ({rows:,} rows)", None, per_row * n))
    for name, first, steady in table:
        first_text = "" if first is None else f"{first:.4f}"
        print(f"  {name:30}{first_text:>13}{steady:>10.4f}{n / steady:>15,.0f}")
    print(
        f"  time ratios: threshold / copy {t_steady / c_steady:.2f}, "
        f"POMDP / copy {p_steady / c_steady:.2f}"
    )
    if ref.get("missing"):
        print("  reference automix-llm: not installed (give --reference-python)")
        return
    print(
        f"  threshold route is {ref['run_s'] / t_steady:.1f}x the rows/s of "
        f"Threshold.run and {per_row * n / t_steady:,.0f}x that of "
        "Automix.evaluate (its time for n rows extrapolated from the slice)"
    )


if __name__ == "__main__":
    main()
