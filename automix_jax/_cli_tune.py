"""`automix-jax tune`: gradient-tune a soft or learned router, report train and val."""

from __future__ import annotations

import argparse
import json

import numpy as np

from ._cli_evaluate import add_data_arguments, load_from_args
from ._errors import PolicyError

__all__ = ["register"]


TUNE_EXAMPLES = """\
examples:
  automix-jax tune --policy soft --json
  automix-jax tune --policy soft --budget 20 --seeds 10 --train-size 100
  automix-jax tune --policy learned --demo date --models llama13b,gpt35,gpt4 \\
      --costs 1,10,50
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune",
        epilog=TUNE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="tune a soft (differentiable) or learned router by gradient",
        description=(
            "Tunes a soft threshold policy (or, with three or more models, one "
            "threshold per step) or a learned MLP router on samples of the train "
            "split by annealed gradient ascent, finishes with a hard policy, and "
            "scores it on the val split over several seeds."
        ),
    )
    parser.add_argument("--policy", choices=("soft", "learned"), default="soft")
    parser.add_argument(
        "--budget", type=float, default=None, help="mean cost budget (default: none)"
    )
    add_data_arguments(parser)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=_handle, command="tune")


def _stats(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def run_tune(args) -> dict:
    """Runs the command and returns its JSON object (no printing)."""
    from . import _learned, _soft
    from ._data import demo_path
    from ._metrics import LiftStatus, baseline, ibc_lift, lift_message

    path = args.data or demo_path(args.demo)
    data = load_from_args(args)
    if args.seeds < 1 or args.train_size < 1:
        raise PolicyError("`--seeds` and `--train-size` must be at least 1")
    train = data.split_rows(args.train_split).observations
    val = data.split_rows(args.eval_split).observations
    m = train.num_models
    train_inputs = val_inputs = None
    if args.policy == "soft":
        policy = _soft.SoftThreshold() if m == 2 else _soft.SoftCascade()
        config = _soft.TrainConfig(steps=args.steps)
    else:
        features = _learned.load_features(path, data)
        train_inputs = features.split(data, args.train_split)
        val_inputs = features.split(data, args.eval_split)
        policy = _learned.LearnedRouter.for_features(train_inputs, features.names)
        config = _soft.TrainConfig(
            steps=args.steps, temperature_start=1.0, temperature_end=0.01
        )
    tuned, val_summary, val_lift = _soft.tune_seeds(
        policy,
        train,
        val,
        seeds=args.seeds,
        train_size=args.train_size,
        budget=args.budget,
        config=config,
        train_inputs=train_inputs,
        val_inputs=val_inputs,
    )
    # The train lift of each seed, on the rows it was tuned on.
    idx = _soft.sample_rows(
        train.num_queries, min(args.train_size, train.num_queries), args.seeds
    )
    train_lifts, train_ok = [], []
    for s in range(args.seeds):
        rows = train[idx[s]]
        base = baseline(rows.scores, rows.costs)
        summary = type(val_summary)(tuned.summary.cost[s], tuned.summary.performance[s])
        lift = ibc_lift(summary, base, num_rows=len(idx[s]))
        train_lifts.append(float(lift.lift))
        train_ok.append(int(lift.status) == LiftStatus.OK)
    train_ok = np.asarray(train_ok)
    ok = np.asarray(val_lift.status) == LiftStatus.OK
    undefined = sorted({int(x) for x in np.asarray(val_lift.status) if x != 0})
    params = np.asarray(tuned.params)
    if args.policy == "learned":
        params_json = [policy.describe(p) for p in params]
    else:
        params_json = params.tolist()
    result = {
        "policy": policy.name,
        "ibc_lift": _stats(np.asarray(val_lift.lift)[ok]) if ok.any() else None,
        "lift_undefined": [lift_message(x) for x in undefined],
        "cost": _stats(val_summary.cost),
        "performance": _stats(val_summary.performance),
        "params": params_json,
        "train": {
            "ibc_lift": _stats(np.asarray(train_lifts)[train_ok])
            if train_ok.any()
            else None,
            "cost": _stats(tuned.summary.cost),
            "performance": _stats(tuned.summary.performance),
        },
        "budget": args.budget,
        "budget_met": [bool(x) for x in np.asarray(tuned.met)],
    }
    return {
        "data": path,
        "models": list(data.models),
        "costs": np.asarray(data.observations.costs).mean(axis=0).tolist(),
        "seeds": args.seeds,
        "train_size": int(idx.shape[1]),
        "budget": args.budget,
        "results": [result],
    }


def _handle(args) -> int:
    out = run_tune(args)
    if args.json:
        print(json.dumps(out, indent=2, allow_nan=False))
        return 0
    r = out["results"][0]

    def lift_text(stats):
        return "undefined" if stats is None else f"{stats['mean']:.3f}"

    print(f"{r['policy']} on {out['data']} ({out['seeds']} seeds)")
    print(
        f"  train: lift {lift_text(r['train']['ibc_lift'])}  cost "
        f"{r['train']['cost']['mean']:.3f}  performance "
        f"{r['train']['performance']['mean']:.3f}"
    )
    print(
        f"  val:   lift {lift_text(r['ibc_lift'])}  cost {r['cost']['mean']:.3f}  "
        f"performance {r['performance']['mean']:.3f}"
    )
    for message in r["lift_undefined"]:
        print(f"  note: {message}")
    if out["budget"] is not None:
        met = sum(r["budget_met"])
        print(f"  budget {out['budget']:g}: met on train in {met}/{out['seeds']} seeds")
    return 0
