"""The AutoMix protocol: automix-jax against the reference implementation.

Runs the same protocol (S seeds; tune a threshold family on a train sample; evaluate
on val) with automix-jax and with the reference `automix-llm` 1.0.3 (install it with
`pip install automix-llm==1.0.3`; it is not a dependency), on the bundled GSM8K rows
and on the same rows tiled to a larger size. Prints the lifts side by side (they must
agree for `threshold`, whose grid is the same in both) and the times as ratios, with
automix-jax's first call (compile + run) and steady state apart.

    python benchmarks/bench_evaluate.py [--seeds 10] [--tile 50]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import automix_jax as am

SMALL, LARGE = "llama13b", "gpt4"


def _rows(tile: int) -> list[dict]:
    with open(am.demo_path("gsm8k"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    out = []
    for copy in range(tile):
        for row in rows:
            out.append(
                {
                    "id": f"{row['id']}-{copy}",
                    "split": row["split"],
                    f"{SMALL}_f1": row[f"{SMALL}_f1"],
                    f"{LARGE}_f1": row[f"{LARGE}_f1"],
                    f"p_ver_{SMALL}": row[f"p_ver_{SMALL}"],
                }
            )
    return out


def _ours(rows, family: str, seeds: int):
    data = am.from_records(enumerate(rows, 1), [SMALL, LARGE], costs=[1, 50])
    n_train = int(np.sum(data.split == "train"))
    start = time.perf_counter()
    report = am.evaluate(data, [family], seeds=seeds, train_size=n_train)
    first = time.perf_counter() - start
    start = time.perf_counter()
    report = am.evaluate(data, [family], seeds=seeds, train_size=n_train)
    steady = time.perf_counter() - start
    return report.results[0].lift, first, steady


def _reference(rows, family: str, seeds: int):
    import pandas as pd
    from automix import automix_methods
    from automix.main import Automix

    frame = pd.DataFrame(rows)
    train = frame[frame["split"] == "train"]
    val = frame[frame["split"] == "val"]
    make = {
        "threshold": automix_methods.Threshold,
        "double-threshold": automix_methods.DoubleThreshold,
    }[family]
    lifts = []
    start = time.perf_counter()
    for seed in range(seeds):
        # Each seed tunes on the whole train split in another order, as ours does.
        sample = train.sample(n=len(train), random_state=seed)
        model = Automix(
            make(num_bins=8),
            slm_column=f"{SMALL}_f1",
            llm_column=f"{LARGE}_f1",
            verifier_column=f"p_ver_{SMALL}",
            costs=[1, 50],
            verifier_cost=1,
        )
        model.train(sample)
        lifts.append(model.evaluate(val)[0])
    return np.asarray(lifts), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--tile", type=int, default=50)
    args = parser.parse_args()
    try:
        import automix  # noqa: F401

        have_reference = True
    except ImportError:
        have_reference = False
        print("reference automix-llm is not installed: printing automix-jax only")
    print(
        f"{'rows':>8} {'family':<18} {'ours lift':>10} {'ref lift':>10} "
        f"{'ours first s':>13} {'ours steady s':>14} {'ref s':>9} "
        f"{'ref/steady':>11} {'ref/first':>10}"
    )
    for tile in (1, args.tile):
        rows = _rows(tile)
        for family in ("threshold", "double-threshold"):
            lift, first, steady = _ours(rows, family, args.seeds)
            if have_reference:
                ref_lift, ref_time = _reference(rows, family, args.seeds)
                ref_cols = (
                    f"{np.mean(ref_lift):>10.4f} {first:>13.3f} {steady:>14.4f} "
                    f"{ref_time:>9.3f} {ref_time / steady:>10.0f}x "
                    f"{ref_time / first:>9.1f}x"
                )
            else:
                ref_cols = f"{'-':>10} {first:>13.3f} {steady:>14.4f}"
            print(f"{len(rows):>8} {family:<18} {np.mean(lift):>10.4f} {ref_cols}")


if __name__ == "__main__":
    main()
