"""Budget sweep: 64 budgets tuned in one vmapped, jitted run over 1e5 rows.

Rows are drawn with replacement from the bundled gsm8k demo (real confidences and
correctness), so the cost-quality curve is that of gsm8k. Compile time and
steady-state time are measured apart (`block_until_ready`); the reference is the
exact hard curve (`threshold_curve`: a sort and a cumulative sum), measured in the
same run, which gives the best performance within each budget for a shared
threshold.

Usage: python benchmarks/bench_budget_sweep.py [--rows 100000] [--steps 200]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import automix_jax as aj
from automix_jax import _soft


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--budgets", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    data = aj.load_jsonl(aj.demo_path("gsm8k"), ["llama13b", "gpt4"])
    base = data.observations
    idx = np.random.default_rng(0).integers(0, base.num_queries, size=args.rows)
    obs = base[idx]
    budgets = jnp.linspace(2.5, 50.0, args.budgets)
    config = _soft.TrainConfig(steps=args.steps)
    policy = _soft.SoftThreshold()

    start = time.perf_counter()
    out = _soft.budget_sweep(policy, obs, budgets, config=config)
    jax.block_until_ready(out)
    first = time.perf_counter() - start
    start = time.perf_counter()
    out = _soft.budget_sweep(policy, obs, budgets, config=config)
    jax.block_until_ready(out)
    steady = time.perf_counter() - start

    curve_fn = jax.jit(_soft.threshold_curve)
    start = time.perf_counter()
    jax.block_until_ready(curve_fn(obs))
    curve_first = time.perf_counter() - start
    start = time.perf_counter()
    curve = jax.block_until_ready(curve_fn(obs))
    curve_steady = time.perf_counter() - start

    # The exact best performance within each budget (the reference curve).
    feasible = curve.summary.cost[None, :] <= budgets[:, None]
    best = jnp.max(jnp.where(feasible, curve.summary.performance[None, :], -1.0), 1)
    gap = np.asarray(best - out.summary.performance)
    updates = args.budgets * args.steps * args.rows
    print(f"rows {args.rows}, budgets {args.budgets}, steps {args.steps}")
    print(f"sweep: compile+first run {first:.2f} s, steady state {steady:.2f} s")
    print(f"  {updates / steady / 1e6:.1f} M query-steps per second")
    print(
        f"exact curve: compile+first {curve_first:.2f} s, steady {curve_steady:.4f} s"
    )
    print(f"  steady-state ratio sweep / exact curve: {steady / curve_steady:.0f}x")
    print(f"budgets met: {int(out.met.sum())}/{args.budgets}")
    print(
        f"performance short of the exact best within budget: mean {gap.mean():.4f},"
        f" max {gap.max():.4f}"
    )


if __name__ == "__main__":
    main()
