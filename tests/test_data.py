"""Loading AutoMix-style rows, and the located errors bad rows get."""

import json
import os

import numpy as np
import pytest

import automix_jax as am

ROWS = [
    {"id": "a", "split": "train", "s_f1": 1.0, "l_f1": 1.0, "p_ver_s": 0.8},
    {"id": "b", "split": "val", "s_f1": 0.0, "l_f1": 1.0, "p_ver_s": 0.2},
    {"id": "c", "split": "val", "s_f1": 1.0, "l_f1": 0.0, "p_ver_s": 0.6},
]


def _write(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_load_jsonl_reads_every_column(tmp_path):
    data = am.load_jsonl(_write(tmp_path, ROWS), ["s", "l"], costs=[2, 30])
    obs = data.observations
    np.testing.assert_array_equal(np.asarray(obs.scores), [[1, 1], [0, 1], [1, 0]])
    np.testing.assert_allclose(np.asarray(obs.confidences)[:, 0], [0.8, 0.2, 0.6])
    np.testing.assert_array_equal(np.asarray(obs.costs)[0], [2, 30])
    assert list(data.split) == ["train", "val", "val"]
    assert list(data.ids) == ["a", "b", "c"]
    assert len(data.split_rows("val")) == 2


def test_csv_and_jsonl_agree(tmp_path):
    path = tmp_path / "data.csv"
    header = ["id", "split", "s_f1", "l_f1", "p_ver_s"]
    lines = [",".join(header)] + [",".join(str(r[k]) for k in header) for r in ROWS]
    path.write_text("\n".join(lines) + "\n")
    a = am.load_csv(str(path), ["s", "l"])
    b = am.load_jsonl(_write(tmp_path, ROWS), ["s", "l"])
    np.testing.assert_array_equal(
        np.asarray(a.observations.scores), np.asarray(b.observations.scores)
    )
    np.testing.assert_array_equal(
        np.asarray(a.observations.confidences), np.asarray(b.observations.confidences)
    )


def test_dataframe_loading(tmp_path):
    pd = pytest.importorskip("pandas")
    data = am.load_dataframe(pd.DataFrame(ROWS), ["s", "l"])
    assert data.observations.num_queries == 3


def test_models_are_detected_from_the_score_columns(tmp_path):
    assert am.detect_models(_write(tmp_path, ROWS)) == ["s", "l"]


@pytest.mark.parametrize(
    "change, models, pattern",
    [
        (lambda r: r.pop("l_f1"), ["s", "l"], r"data.jsonl:2, column 'l_f1'.*missing"),
        (
            lambda r: r.update(l_f1="yes"),
            ["s", "l"],
            r"data.jsonl:2, column 'l_f1', value 'yes': the score is not a number",
        ),
        (
            lambda r: r.update(p_ver_s=float("nan")),
            ["s", "l"],
            r"data.jsonl:2, column 'p_ver_s'.*not finite",
        ),
        (
            lambda r: r.update(p_ver_s=1.5),
            ["s", "l"],
            r"data.jsonl:2, column 'p_ver_s', value 1.5: the confidence is outside",
        ),
        (
            lambda r: r.pop("split"),
            ["s", "l"],
            r"data.jsonl:2, column 'split'.*missing",
        ),
        (lambda r: None, ["s"], r"at least two models"),
    ],
)
def test_bad_rows_are_refused_with_file_line_column_and_fix(
    tmp_path, change, models, pattern
):
    rows = [dict(r) for r in ROWS]
    change(rows[1])
    with pytest.raises(am.DataError, match=pattern) as info:
        am.load_jsonl(_write(tmp_path, rows), models)
    assert "; " in str(info.value)  # a fix follows the reason


def test_a_truncated_line_is_refused_with_its_line_number(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1])[:20] + "\n")
    with pytest.raises(am.DataError, match=r"data.jsonl:2: the line is not valid JSON"):
        am.load_jsonl(str(path), ["s", "l"])


def test_three_models_need_costs(tmp_path):
    rows = [dict(r, m_f1=1.0, p_ver_m=0.5) for r in ROWS]
    with pytest.raises(am.DataError, match="3 models need 3 costs"):
        am.load_jsonl(_write(tmp_path, rows), ["s", "m", "l"])


def test_an_empty_split_names_the_splits_present(tmp_path):
    data = am.load_jsonl(_write(tmp_path, ROWS), ["s", "l"])
    with pytest.raises(
        am.DataError,
        match=r"split 'test' has no rows \(splits "
        r"present: train, val\)",
    ):
        data.split_rows("test")


def test_a_missing_file(tmp_path):
    with pytest.raises(am.DataError, match="does not exist"):
        am.load_jsonl(str(tmp_path / "nope.jsonl"), ["s", "l"])


def test_demo_data_is_bundled():
    data = am.load_jsonl(
        am.demo_path("date"), ["llama13b", "gpt35", "gpt4"], costs=[1, 10, 50]
    )
    assert data.observations.num_queries == 369
    assert os.path.exists(os.path.join(os.path.dirname(am.demo_path()), "SOURCE.md"))


def test_costs_must_not_fall_along_the_cascade(tmp_path):
    with pytest.raises(am.DataError, match=r"costs \[50.0, 1.0\] fall along"):
        am.load_jsonl(_write(tmp_path, ROWS), ["s", "l"], costs=[50.0, 1.0])


def test_a_byte_order_mark_is_skipped(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_text(
        "\ufeff" + "".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8"
    )
    assert am.load_jsonl(str(path), ["s", "l"]).observations.num_queries == 3
