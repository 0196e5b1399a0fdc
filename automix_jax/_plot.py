"""The pictures of cost-aware routing: the cost-quality plane and reliability.

Both figures are drawn from JSON-ready numbers only (the `Report.to_json()`
object, extended with `curves` and `reliability` by `plot_data`), so that what a
figure shows is exactly what the JSON says. Figures are `matplotlib.figure.Figure`
objects made without pyplot, so nothing here touches global plotting state, and
files are rendered with the Agg backend.

* `cost_quality_figure`: each model as a labelled point, the small-to-large
  baseline line (AutoMix's IBC_base), every policy's mean cost and performance
  over the seeds with min-max bars, and each tunable family's curve over all of
  its candidates on the evaluation split (its upper frontier; the λ sweep for
  a policy that exposes one).
* `reliability_figure`: verifier confidence against the share of correct answers
  in equal-width confidence bins, per model, with the expected calibration error.

Shape legend: n queries, M models, C candidates, B confidence bins.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._errors import DataError

RELIABILITY_BINS = 10

# Labels for the artists the tests and readers look up.
MODELS_GID = "models"
BASELINE_GID = "baseline"


def reliability(data: Any, split: str = "val", bins: int = RELIABILITY_BINS) -> dict:
    """Confidence against correctness on one split, in B equal-width bins.

    Bin k holds confidences in [k / B, (k + 1) / B), the last bin also 1.0.
    Empty bins are left out.

    Args:
        data: a `Dataset`.
        split: the split to measure on (None: every row).
        bins: B.

    Returns:
        `{"split", "bins", "models": [{"model", "confidence", "accuracy",
        "count", "ece"}]}`: per non-empty bin the mean confidence, the mean
        score and the number of answers; `ece` is the count-weighted mean gap
        between confidence and accuracy.
    """
    if int(bins) != bins or bins < 1:
        raise DataError(f"reliability bins must be a whole number >= 1, got {bins!r}")
    rows = data if split is None else data.split_rows(split)
    obs = rows.observations
    scores = np.asarray(obs.scores, dtype=np.float64)
    confidences = np.asarray(obs.confidences, dtype=np.float64)
    models = []
    for m, model in enumerate(rows.models):
        conf, score = confidences[:, m], scores[:, m]
        index = np.minimum(np.floor(conf * bins).astype(int), bins - 1)
        count = np.bincount(index, minlength=bins)
        present = count > 0
        safe = np.maximum(count, 1)
        mean_conf = np.bincount(index, weights=conf, minlength=bins) / safe
        accuracy = np.bincount(index, weights=score, minlength=bins) / safe
        gap = np.abs(mean_conf - accuracy)
        ece = float(np.sum(count * gap) / max(int(count.sum()), 1))
        models.append(
            {
                "model": model,
                "confidence": mean_conf[present].tolist(),
                "accuracy": accuracy[present].tolist(),
                "count": count[present].tolist(),
                "ece": ece,
            }
        )
    return {"split": split, "bins": int(bins), "models": models}


def candidate_curves(
    data: Any,
    policies: Sequence[Any],
    *,
    bins: int = 8,
    split: str = "val",
    train_split: str = "train",
) -> dict[str, dict[str, list[float]]]:
    """Every candidate of each tunable policy scored on one split.

    A deterministic grid family gives the mean cost and performance of every
    candidate on `split`, kept to its upper frontier (no cheaper candidate
    performs as well); for the POMDP the candidates are its λ sweep, solved on
    `train_split`. A policy with a `sweep(data, split)` method gives its own
    points instead. Random and untuned policies have no curve.

    Returns:
        `{policy name: {"cost": [...], "performance": [...]}}`, costs ascending.
    """
    from ._routing import score_grid

    rows = data.split_rows(split)
    obs = rows.observations
    train = data.split_rows(train_split).observations
    curves = {}
    for policy in policies:
        sweep: Callable | None = getattr(policy, "sweep", None)
        if sweep is not None:
            cost, perf = sweep(data, split)
        elif policy.tunable and not policy.needs_noise:
            policy = policy.with_bins(bins)
            grid = policy.grid(bins, obs.num_models)
            if len(np.asarray(grid)) < 2:
                continue
            # Families whose candidates are built from training rows (the
            # POMDP solves one model per λ) expand their grid on train first.
            candidates = policy.expand(grid, train)
            summary = score_grid(policy, candidates, obs)
            cost, perf = np.asarray(summary.cost), np.asarray(summary.performance)
        else:
            continue
        cost, perf = _frontier(np.asarray(cost), np.asarray(perf))
        curves[policy.name] = {"cost": cost.tolist(), "performance": perf.tolist()}
    return curves


def _frontier(cost: np.ndarray, perf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points no cheaper (or equally cheap) point matches, by rising cost."""
    order = np.lexsort((-perf, cost))
    cost, perf = cost[order], perf[order]
    keep = np.ones(cost.shape, dtype=bool)
    best = -np.inf
    for i, p in enumerate(perf):
        keep[i] = p > best
        best = max(best, p)
    return cost[keep], perf[keep]


def plot_data(
    report_json: dict,
    *,
    curves: dict | None = None,
    reliability: dict | None = None,
) -> dict:
    """The report's JSON with the curves and reliability the figures also draw."""
    out = dict(report_json)
    if curves is not None:
        out["curves"] = curves
    if reliability is not None:
        out["reliability"] = reliability
    return out


_MARKERS = "osD^vP*Xph<>"


def cost_quality_figure(results: dict) -> Figure:
    """The cost-quality plane of a report (see the module docstring).

    Args:
        results: `Report.to_json()`, optionally with `curves` (`plot_data`).

    Returns:
        A `Figure` with one axes; each policy's error bar carries its name as
        label, the model points have gid "models" and the baseline "baseline".
    """
    fig = Figure(figsize=(9.0, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    base = results["baseline"]
    models = results["models"]
    costs, perfs = base["cost"], base["performance"]
    ax.plot(
        [costs[0], costs[-1]],
        [perfs[0], perfs[-1]],
        linestyle="--",
        color="0.45",
        linewidth=1.2,
        label="small → large baseline",
        gid=BASELINE_GID,
        zorder=1,
    )
    ax.plot(
        costs,
        perfs,
        linestyle="none",
        marker="s",
        markersize=9,
        color="black",
        label="models alone",
        gid=MODELS_GID,
        zorder=4,
    )
    for name, c, p in zip(models, costs, perfs):
        ax.annotate(
            name,
            (c, p),
            xytext=(6, -12),
            textcoords="offset points",
            fontsize=9,
            fontweight="bold",
        )
    colors = matplotlib.colormaps["tab10"].colors
    curves = results.get("curves") or {}
    for i, result in enumerate(results["results"]):
        name = result["policy"]
        color = colors[i % len(colors)]
        if name in curves:
            curve = curves[name]
            ax.plot(
                curve["cost"],
                curve["performance"],
                color=color,
                linewidth=1.0,
                alpha=0.55,
                marker=".",
                markersize=4,
                label=f"{name}: all candidates",
                gid=f"curve:{name}",
                zorder=2,
            )
        cost, perf = result["cost"], result["performance"]
        ax.errorbar(
            cost["mean"],
            perf["mean"],
            xerr=[[cost["mean"] - cost["min"]], [cost["max"] - cost["mean"]]],
            yerr=[[perf["mean"] - perf["min"]], [perf["max"] - perf["mean"]]],
            fmt=_MARKERS[i % len(_MARKERS)],
            color=color,
            markersize=8,
            markerfacecolor="none",
            markeredgewidth=1.8,
            capsize=3,
            label=_result_label(result),
            zorder=3,
        )
    ax.set_xlabel("mean cost per query (model calls + verifications)")
    ax.set_ylabel("performance on the evaluation split (mean score)")
    data = os.path.basename(str(results.get("data", "")))
    ax.set_title(
        f"Cost-quality: {data}, {results['seeds']} seeds "
        f"(points: mean; bars: min-max over seeds)",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return fig


def _result_label(result: dict) -> str:
    lift = result.get("ibc_lift")
    if lift is None:
        return f"{result['policy']} (lift undefined)"
    return f"{result['policy']} (ΔIBC {lift['mean']:+.2f})"


def reliability_figure(rel: dict) -> Figure:
    """Verifier confidence against correctness, one panel per model.

    Args:
        rel: the output of `reliability`.

    Returns:
        A `Figure`; in each axes the line labelled "observed" holds the plotted
        (confidence, accuracy) points.
    """
    models = rel["models"]
    fig = Figure(figsize=(4.2 * len(models), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, entry in zip(axes, models):
        ax.plot(
            [0, 1], [0, 1], linestyle="--", color="0.5", label="perfectly calibrated"
        )
        ax.plot(
            entry["confidence"],
            entry["accuracy"],
            marker="o",
            color="tab:blue",
            label="observed",
        )
        for c, a, n in zip(entry["confidence"], entry["accuracy"], entry["count"]):
            ax.annotate(
                f"{n}",
                (c, a),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7,
                color="0.3",
            )
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel("verifier confidence (bin mean)")
        ax.set_ylabel("share of answers correct")
        ax.set_title(f"{entry['model']}  (ECE {entry['ece']:.3f})", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(
        f"Reliability of the verifier on the {rel['split']} split "
        f"({rel['bins']} bins; numbers: answers per bin)",
        fontsize=10,
    )
    return fig


def save_figure(fig: Figure, stem: str | os.PathLike) -> list[str]:
    """Writes `stem.png` (150 dpi) and `stem.svg`; returns the two paths."""
    stem = os.fspath(stem)
    paths = [f"{stem}.png", f"{stem}.svg"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths


def write_plots(results: dict, out_dir: str | os.PathLike) -> list[str]:
    """Draws `cost_quality` (and `reliability`, when present) into `out_dir`."""
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = save_figure(
        cost_quality_figure(results), os.path.join(out_dir, "cost_quality")
    )
    if results.get("reliability"):
        paths += save_figure(
            reliability_figure(results["reliability"]),
            os.path.join(out_dir, "reliability"),
        )
    return paths
