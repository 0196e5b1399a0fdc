"""The awkward inputs in the shared cases folder get the outcomes users need."""

import json
import os

import numpy as np
import pytest

import automix_jax as am
from automix_jax.cli import main


def _case(cases_dir, name):
    return os.path.join(cases_dir, name)


def test_large_no_better_says_why_and_still_shows_figures(cases_dir, capsys):
    path = _case(cases_dir, "large-no-better.jsonl")
    data = am.load_jsonl(path, ["llama13b", "gpt4"])
    report = am.evaluate(data, ["threshold", "always-large"], seeds=2)
    out = report.to_json()
    assert out["lift_defined"] is False
    assert "no better" in out["lift_note"]
    for r in out["results"]:
        assert r["ibc_lift"] is None
        assert np.isfinite(r["cost"]["mean"]) and np.isfinite(r["performance"]["mean"])
    assert (
        main(["evaluate", "--data", path, "--seeds", "2", "--policy", "threshold"]) == 0
    )
    assert "no better" in capsys.readouterr().out


def test_large_worse_never_reports_a_positive_lift(cases_dir):
    data = am.load_jsonl(_case(cases_dir, "large-worse.jsonl"), ["llama13b", "gpt4"])
    report = am.evaluate(data, seeds=2)
    out = report.to_json()
    assert "negative baseline slope" in out["lift_note"]
    for r in out["results"]:
        assert r["ibc_lift"] is None or r["ibc_lift"]["max"] <= 0


def test_custom_columns_work_for_every_policy(cases_dir):
    columns = am.Columns(
        score="{model}_score", confidence="{model}_confidence", split="part", id="qid"
    )
    data = am.load_jsonl(
        _case(cases_dir, "custom-columns.jsonl"), ["small", "large"], columns=columns
    )
    report = am.evaluate(data, seeds=2)
    assert len(report.results) == len(am.DEFAULT_POLICIES)


def test_out_of_range_confidence_is_refused_where_it_is(cases_dir):
    path = _case(cases_dir, "confidence-out-of-range.jsonl")
    bad = [
        i + 1
        for i, line in enumerate(open(path))
        if not 0 <= json.loads(line)["p_ver_llama13b"] <= 1
    ]
    with pytest.raises(am.DataError) as info:
        am.load_jsonl(path, ["llama13b", "gpt4"])
    message = str(info.value)
    assert f"confidence-out-of-range.jsonl:{bad[0]}" in message
    assert "p_ver_llama13b" in message and "outside [0, 1]" in message


def test_identical_confidence_routes_all_or_none_and_says_so(cases_dir):
    data = am.load_jsonl(
        _case(cases_dir, "identical-confidence.jsonl"), ["llama13b", "gpt4"]
    )
    report = am.evaluate(data, ["threshold"], seeds=2)
    assert any("carries no information" in n for n in report.notes)
    val = data.split_rows("val").observations
    stops = am.route(am.Threshold(), np.float32(report.results[0].params[0]), val)
    assert np.all(stops == stops[0])


def test_no_val_rows_is_a_clear_error(cases_dir, capsys):
    path = _case(cases_dir, "no-val-rows.jsonl")
    assert main(["evaluate", "--data", path, "--seeds", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "split 'val' has no rows" in err[0] and "--eval-split" in err[0]
