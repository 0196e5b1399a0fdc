"""Chunked readers, exact accumulation, one compiled function, flat memory."""

import csv
import json
import math
import os
import subprocess
import sys
import textwrap
from fractions import Fraction

import numpy as np
import pytest

import automix_jax as am
from automix_jax import _stream
from automix_jax._stream import ExactSum, evaluate_stream, read_chunks, route_file

MODELS = ["small", "large"]


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 2, (n, 2)).astype(np.float64)
    conf = rng.integers(0, 9, (n, 2)) / 8
    return scores, conf


def _write_jsonl(path, scores, conf, labels=True):
    with open(path, "w") as handle:
        for i in range(len(scores)):
            row = {"id": f"q{i}", "p_ver_small": conf[i, 0], "p_ver_large": conf[i, 1]}
            if labels:
                row.update(small_f1=scores[i, 0], large_f1=scores[i, 1], split="val")
            handle.write(json.dumps(row) + "\n")


def _write_csv(path, scores, conf):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "small_f1", "large_f1", "p_ver_small", "p_ver_large"])
        for i in range(len(scores)):
            writer.writerow([f"q{i}", *scores[i], *conf[i]])


def _expected(policy, params, scores, conf):
    """Per-row outcome in memory, summed with math.fsum."""
    obs = am.Observations(scores, conf, np.array([1.0, 50.0]), 1.0)
    stop, cost, perf = (np.asarray(x) for x in am.outcome(policy, params, obs))
    n = len(scores)
    return {
        "stop": stop,
        "cost": cost,
        "counts": np.bincount(stop, minlength=2),
        "mean_cost": math.fsum(cost.astype(float).tolist()) / n,
        "mean_perf": math.fsum(perf.astype(float).tolist()) / n,
    }


def test_exact_sum_matches_fsum_across_magnitudes():
    rng = np.random.default_rng(1)
    acc, every = ExactSum(), []
    for _ in range(300):
        # Alternating huge and tiny values, with cancellation.
        values = rng.normal(size=257) * 10.0 ** rng.integers(-8, 9)
        values = values.astype(np.float32)
        acc.add(values)
        every.extend(values.astype(float).tolist())
    expected = math.fsum(every)
    assert float(acc.value) == expected


def test_exact_sum_over_ten_million_rows_has_no_drift():
    # 1e7 float32 copies of 0.1: a float32 running sum would be off by percent;
    # the exact total is 1e7 times the float32 value.
    acc = ExactSum()
    value = np.float32(0.1)
    for _ in range(100):
        acc.add(np.full(100_000, value))
    exact = Fraction(float(value)) * 10_000_000
    assert float(acc.value) == float(exact)


def test_exact_sum_per_column():
    acc = ExactSum((2,))
    acc.add(np.array([[1e16, 1.0], [1.0, 2.0]]))
    acc.add(np.array([[-1e16, 3.0]]))
    np.testing.assert_array_equal(acc.value, [1.0, 6.0])


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "npz"])
def test_streaming_evaluate_matches_in_memory(tmp_path, fmt):
    scores, conf = _rows(2_500)
    path = str(tmp_path / f"rows.{fmt}")
    if fmt == "jsonl":
        _write_jsonl(path, scores, conf)
    elif fmt == "csv":
        _write_csv(path, scores, conf)
    else:
        np.savez(path, scores=scores, confidences=conf)
    kwargs = {"require_labels": False} if fmt == "csv" else {}
    chunks = read_chunks(path, MODELS, chunk_size=512, **kwargs)
    got = evaluate_stream(am.Threshold(), 0.5, chunks)
    want = _expected(am.Threshold(), np.float32(0.5), scores, conf)
    assert got.num_rows == 2_500
    np.testing.assert_array_equal(got.stops, want["counts"])
    assert got.summary.cost == pytest.approx(want["mean_cost"], rel=1e-15)
    assert got.summary.performance == pytest.approx(want["mean_perf"], rel=1e-15)
    np.testing.assert_allclose(got.baseline.performance, scores.mean(axis=0))
    assert got.lift is not None


def test_one_trace_serves_every_chunk(tmp_path):
    scores, conf = _rows(1_000)
    path = str(tmp_path / "rows.npz")
    np.savez(path, scores=scores, confidences=conf)
    # A chunk size no other test uses, so the first call traces once.
    before = _stream.trace_count()
    evaluate_stream(am.Threshold(), 0.5, read_chunks(path, MODELS, chunk_size=333))
    assert _stream.trace_count() - before == 1  # 4 chunks, the last one padded
    np.savez(path, scores=scores[:700], confidences=conf[:700])
    evaluate_stream(am.Threshold(), 0.25, read_chunks(path, MODELS, chunk_size=333))
    assert _stream.trace_count() - before == 1


def test_chunks_are_padded_and_in_order(tmp_path):
    scores, conf = _rows(10)
    path = str(tmp_path / "rows.jsonl")
    _write_jsonl(path, scores, conf)
    chunks = [
        (c.count, c.start, c.ids.tolist(), c.valid.copy(), c.confidences.copy())
        for c in read_chunks(path, MODELS, chunk_size=4)
    ]
    assert [c[:2] for c in chunks] == [(4, 0), (4, 4), (2, 8)]
    assert chunks[2][2] == ["q8", "q9"]
    np.testing.assert_array_equal(chunks[2][3], [True, True, False, False])
    np.testing.assert_array_equal(chunks[2][4][2:], 1.0)
    np.testing.assert_array_equal(chunks[2][4][:2], conf[8:].astype(np.float32))


def test_error_names_the_line_in_a_later_chunk(tmp_path):
    scores, conf = _rows(50)
    path = str(tmp_path / "rows.jsonl")
    _write_jsonl(path, scores, conf)
    lines = open(path).read().splitlines()
    lines[36] = lines[36].replace('"p_ver_small": ', '"p_ver_small": 7')
    open(path, "w").write("\n".join(lines) + "\n")
    with pytest.raises(am.DataError, match=r"rows.jsonl:37.*p_ver_small.*outside"):
        for _ in read_chunks(path, MODELS, chunk_size=16):
            pass


def test_numpy_error_names_row_and_column(tmp_path):
    scores, conf = _rows(40)
    conf[33, 0] = 1.5
    path = str(tmp_path / "rows.npz")
    np.savez(path, scores=scores, confidences=conf)
    with pytest.raises(
        am.DataError, match=r"confidences\[:, 0\] \(small\).*1.5: row 33 "
    ):
        list(read_chunks(path, MODELS, chunk_size=16))


def test_compressed_npz_is_refused(tmp_path):
    scores, conf = _rows(8)
    path = str(tmp_path / "rows.npz")
    np.savez_compressed(path, scores=scores, confidences=conf)
    with pytest.raises(am.DataError, match="savez, not numpy.savez_compressed"):
        list(read_chunks(path, MODELS))


def test_unlabelled_rows_route_but_do_not_evaluate(tmp_path):
    scores, conf = _rows(30)
    path = str(tmp_path / "rows.jsonl")
    _write_jsonl(path, scores, conf, labels=False)
    with pytest.raises(am.DataError, match="score column is missing"):
        list(read_chunks(path, MODELS))
    out = str(tmp_path / "out.jsonl")
    summary = route_file(am.Threshold(), 0.5, path, out, MODELS, chunk_size=8)
    assert summary.num_rows == 30 and summary.lift is None
    assert math.isnan(summary.summary.performance)


def test_route_file_lines_match_in_memory_outcome(tmp_path):
    scores, conf = _rows(777)
    path = str(tmp_path / "rows.jsonl")
    _write_jsonl(path, scores, conf)
    out = str(tmp_path / "out.jsonl")
    route_file(am.Threshold(), 0.375, path, out, MODELS, chunk_size=100)
    rows = [json.loads(line) for line in open(out)]
    want = _expected(am.Threshold(), np.float32(0.375), scores, conf)
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(777)]
    np.testing.assert_array_equal([r["stop"] for r in rows], want["stop"])
    assert [r["model"] for r in rows] == [MODELS[s] for s in want["stop"]]
    np.testing.assert_array_equal(np.float32([r["cost"] for r in rows]), want["cost"])
    assert not os.path.exists(out + ".tmp")


def test_failed_route_leaves_no_output(tmp_path):
    scores, conf = _rows(20)
    path = str(tmp_path / "rows.jsonl")
    _write_jsonl(path, scores, conf)
    with open(path, "a") as handle:
        handle.write('{"id": "broken"\n')
    out = str(tmp_path / "out.jsonl")
    with pytest.raises(am.DataError, match="rows.jsonl:21.*not valid JSON"):
        route_file(am.Threshold(), 0.5, path, out, MODELS, chunk_size=8)
    assert not os.path.exists(out) and not os.path.exists(out + ".tmp")


def test_parquet_when_pyarrow_is_installed(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    scores, conf = _rows(100)
    table = pa.table(
        {
            "small_f1": scores[:, 0],
            "large_f1": scores[:, 1],
            "p_ver_small": conf[:, 0],
            "p_ver_large": conf[:, 1],
            "split": ["val"] * 100,
        }
    )
    path = str(tmp_path / "rows.parquet")
    pq.write_table(table, path)
    got = evaluate_stream(am.Threshold(), 0.5, read_chunks(path, MODELS, chunk_size=32))
    want = _expected(am.Threshold(), np.float32(0.5), scores, conf)
    np.testing.assert_array_equal(got.stops, want["counts"])


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import automix_jax as am
    from automix_jax._stream import route_file

    def write(path, n):
        rng = np.random.default_rng(0)
        conf = rng.integers(0, 9, (n, 2)) / 8
        with open(path, "w") as handle:
            for start in range(0, n, 10_000):
                handle.write("".join(
                    f'{{"id": "q{i}", "p_ver_a": {conf[i, 0]}, "p_ver_b": 1.0}}\\n'
                    for i in range(start, min(start + 10_000, n))
                ))

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    folder = sys.argv[1]
    peaks = []
    for n in (25_000, 100_000):
        path = f"{folder}/in{n}.jsonl"
        write(path, n)
        route_file(am.Threshold(), 0.5, path, f"{folder}/out.jsonl", ["a", "b"],
                   chunk_size=4096)
        peaks.append(peak_mib())
    print(json.dumps(peaks))
    """
)


def test_memory_is_flat_as_the_input_grows(tmp_path):
    # Peak resident memory after streaming 25k rows, then after 100k rows (4x):
    # loading 100k rows whole takes well over 40 MiB of Python objects.
    script = tmp_path / "memory.py"
    script.write_text(_MEMORY_SCRIPT)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    small, large = json.loads(result.stdout.strip().splitlines()[-1])
    assert large - small < 25, (small, large)
