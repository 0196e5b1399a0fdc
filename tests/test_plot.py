"""The plots: files written by `evaluate --output-dir`, numbers equal to the JSON."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

import automix_jax as ax
from automix_jax import _plot
from automix_jax.cli import main

FILES = ("cost_quality.png", "cost_quality.svg", "reliability.png", "reliability.svg")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One `automix-jax evaluate --output-dir --save-policy --json` on GSM8K."""
    out = tmp_path_factory.mktemp("plots")
    argv = [
        "evaluate",
        "--seeds",
        "2",
        "--policy",
        "policies/automix-paper.toml",
        "--output-dir",
        str(out),
        "--save-policy",
        str(out / "tuned.json"),
        "--json",
    ]
    capture = pytest.MonkeyPatch()
    import io
    import sys

    stdout = io.StringIO()
    capture.setattr(sys, "stdout", stdout)
    try:
        code = main(argv)
    finally:
        capture.undo()
    with open(out / "results.json", encoding="utf-8") as handle:
        results = json.load(handle)
    return code, json.loads(stdout.getvalue()), results, out


def test_output_dir_has_every_file(run):
    code, _, _, out = run
    assert code == 0
    for name in (*FILES, "table.txt", "results.json", "tuned.json"):
        assert os.path.getsize(out / name) > 0, name
    assert (out / "cost_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (out / "cost_quality.svg").read_bytes()[:2000]
    assert "always-large" in (out / "table.txt").read_text()
    assert ax.load_tuned(out / "tuned.json").spec["label"] == "threshold"


def test_results_json_is_the_printed_json_plus_plot_data(run):
    _, printed, results, _ = run
    results = dict(results)
    extra = {k: results.pop(k) for k in ("curves", "reliability")}
    assert results == printed
    assert set(extra["curves"]) >= {"threshold", "double-threshold"}


def test_cost_quality_artists_hold_the_json_numbers(run):
    _, _, results, _ = run
    fig = _plot.cost_quality_figure(results)
    axes = fig.axes[0]
    lines = {line.get_gid(): line for line in axes.lines if line.get_gid()}
    base = results["baseline"]
    models = lines[_plot.MODELS_GID]
    np.testing.assert_allclose(models.get_xdata(), base["cost"])
    np.testing.assert_allclose(models.get_ydata(), base["performance"])
    line = lines[_plot.BASELINE_GID]
    np.testing.assert_allclose(line.get_xdata(), [base["cost"][0], base["cost"][-1]])
    labels = {t.get_text() for t in axes.texts}
    assert set(results["models"]) <= labels
    bars = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == len(results["results"])
    for container, result in zip(bars, results["results"]):
        assert container.get_label().startswith(result["policy"])
        point, _, (xbar, ybar) = container.lines
        assert point.get_xdata()[0] == pytest.approx(result["cost"]["mean"])
        assert point.get_ydata()[0] == pytest.approx(result["performance"]["mean"])
        # The bars span min to max over the seeds.
        (x_seg,) = xbar.get_segments()
        (y_seg,) = ybar.get_segments()
        np.testing.assert_allclose(
            sorted(x_seg[:, 0]), [result["cost"]["min"], result["cost"]["max"]]
        )
        np.testing.assert_allclose(
            sorted(y_seg[:, 1]),
            [result["performance"]["min"], result["performance"]["max"]],
            rtol=1e-6,
        )
    for name, curve in results["curves"].items():
        drawn = lines[f"curve:{name}"]
        np.testing.assert_allclose(drawn.get_xdata(), curve["cost"])
        np.testing.assert_allclose(drawn.get_ydata(), curve["performance"])
        # An upper frontier: cost and performance both rise along it.
        assert np.all(np.diff(curve["cost"]) >= 0)
        assert np.all(np.diff(curve["performance"]) > 0)


def test_reliability_numbers_match_an_independent_count(run, shared_dir):
    _, _, results, _ = run
    rel = results["reliability"]
    path = os.path.join(shared_dir, "data", "automix-format", "gsm8k.jsonl")
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rows = [r for r in rows if r["split"] == "val"]
    fig = _plot.reliability_figure(rel)
    for axes, entry in zip(fig.axes, rel["models"]):
        model = entry["model"]
        conf = np.array([r[f"p_ver_{model}"] for r in rows])
        score = np.array([r[f"{model}_f1"] for r in rows])
        expected_conf, expected_acc, expected_n = [], [], []
        for k in range(rel["bins"]):
            lo, hi = k / rel["bins"], (k + 1) / rel["bins"]
            inside = (conf >= lo) & (
                (conf < hi) | ((k == rel["bins"] - 1) & (conf <= hi))
            )
            if inside.any():
                expected_conf.append(conf[inside].mean())
                expected_acc.append(score[inside].mean())
                expected_n.append(int(inside.sum()))
        assert entry["count"] == expected_n
        np.testing.assert_allclose(entry["confidence"], expected_conf, rtol=1e-6)
        np.testing.assert_allclose(entry["accuracy"], expected_acc)
        (observed,) = [line for line in axes.lines if line.get_label() == "observed"]
        np.testing.assert_allclose(observed.get_xdata(), entry["confidence"])
        np.testing.assert_allclose(observed.get_ydata(), entry["accuracy"])


def test_plot_command_redraws_from_results(run, tmp_path, capsys):
    _, _, _, out = run
    code = main(
        ["plot", str(out / "results.json"), "--output-dir", str(tmp_path), "--json"]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert [os.path.basename(f) for f in printed["files"]] == list(FILES)
    for name in FILES:
        assert os.path.getsize(tmp_path / name) > 0


def test_cli_errors_are_one_line_with_a_nonzero_exit(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('family = "threshold"\nbins = -3\n')
    assert main(["evaluate", "--policy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{bad}: bins: must be at least 1, got -3" in err
    assert main(["plot", str(tmp_path / "none.json")]) == 2
    assert "no such results file" in capsys.readouterr().err
