"""The 10-seed table: the POMDP beside the threshold families and the reference union.

On the bundled real runs (GSM8K with two models, Date Understanding with three), runs
the AutoMix protocol for the cascade POMDP, threshold, double threshold, chained
thresholds, best-of, the soft (annealed) router and the confidence-only learned
router (both trained on each seed's sample), and, on GSM8K, the reference
implementation's own union search (`AutomixUnion(POMDPSimple, GreedyPOMDP,
DoubleThreshold, Threshold)` from `automix-llm` 1.0.3, when installed) on the same
seeds' samples.

The reference's POMDPSimple reads a `category` column that the data do not have; it is
derived here as GOOD (the small model is right), NEEDY (the small model is wrong and
the large one right) or HOPELESS (both wrong). Its GreedyPOMDP reads the columns
`llama13b_f1` and `llama70b_f1` whatever it is told, so the large model's scores are
copied into a `llama70b_f1` column for it.

    python benchmarks/compare_policies.py [--seeds 10] [--train-size 100]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import automix_jax as am
from automix_jax._learned import TrainedLearned
from automix_jax._soft import TrainedSoft

FAMILIES = (
    "pomdp",
    "threshold",
    "double-threshold",
    "chained-threshold",
    "best-of",
    TrainedSoft(),
    TrainedLearned(),
)


def _table(report, title):
    print(f"\n{title}")
    print(f"{'policy':<20} {'IBC lift (val)':>22} {'cost':>16} {'performance':>16}")
    for r in report.to_json()["results"]:
        lift = r["ibc_lift"]
        lift_text = (
            "undefined" if lift is None else f"{lift['mean']:.3f} ± {lift['std']:.3f}"
        )
        print(
            f"{r['policy']:<20} {lift_text:>22} "
            f"{r['cost']['mean']:>9.2f} ± {r['cost']['std']:<5.2f}"
            f"{r['performance']['mean']:>9.3f} ± {r['performance']['std']:.3f}"
        )


def _reference_union(seeds: int, train_size: int):
    try:
        import pandas as pd
        from automix import automix_methods as methods
        from automix.main import Automix
    except ImportError:
        print("\nreference automix-llm is not installed: no reference union row")
        return
    with open(am.demo_path("gsm8k"), encoding="utf-8") as handle:
        frame = pd.DataFrame([json.loads(line) for line in handle])
    small, large = frame["llama13b_f1"], frame["gpt4_f1"]
    frame["category"] = np.where(
        small >= 1, "GOOD", np.where(large >= 1, "NEEDY", "HOPELESS")
    )
    frame["llama70b_f1"] = large
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    val = frame[frame["split"] == "val"].reset_index(drop=True)
    lifts, costs, perfs = [], [], []
    for seed in range(seeds):
        # The same rows as automix-jax's seed `seed` (`automix_jax.evaluate`).
        rows = np.random.default_rng(seed).permutation(len(train))[:train_size]
        union = methods.POMDP(num_bins=8)
        model = Automix(
            union,
            slm_column="llama13b_f1",
            llm_column="llama70b_f1",
            verifier_column="p_ver_llama13b",
            costs=[1, 50],
            verifier_cost=1,
        )
        model.train(train.iloc[rows])
        lift, _, perf, cost = model.evaluate(val)
        lifts.append(lift)
        costs.append(cost)
        perfs.append(perf)
    print(
        f"{'reference union':<20} {np.mean(lifts):>14.3f} ± {np.std(lifts):.3f} "
        f"{np.mean(costs):>9.2f} ± {np.std(costs):<5.2f}"
        f"{np.mean(perfs):>9.3f} ± {np.std(perfs):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=100)
    args = parser.parse_args()
    protocol = {"seeds": args.seeds, "train_size": args.train_size}
    gsm8k = am.load_jsonl(am.demo_path("gsm8k"), ["llama13b", "gpt4"])
    _table(
        am.evaluate(
            gsm8k, [f for f in FAMILIES if f != "chained-threshold"], **protocol
        ),
        f"gsm8k: llama13b -> gpt4, costs 1, 50, verifier 1; {args.seeds} seeds of "
        f"{args.train_size} train rows",
    )
    _reference_union(args.seeds, min(args.train_size, 200))
    date = am.load_jsonl(
        am.demo_path("date"), ["llama13b", "gpt35", "gpt4"], costs=[1, 10, 50]
    )
    _table(
        am.evaluate(date, FAMILIES, **protocol),
        f"date: llama13b -> gpt35 -> gpt4, costs 1, 10, 50, verifier 1; "
        f"{args.seeds} seeds of {args.train_size} train rows",
    )


if __name__ == "__main__":
    main()
