"""Live routing against a scripted chat-completions server on loopback."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import pytest
from _fake_openai import FakeOpenAI, Fault, write_endpoints

from automix_jax import cli
from automix_jax._errors import DataError, EndpointError
from automix_jax._live import (
    LiveSettings,
    load_endpoints,
    load_live_policy,
    read_queries,
    run_live,
)

QUESTIONS = [f"What is {i} plus {i}?" for i in range(6)]


def scripted(**kwargs) -> FakeOpenAI:
    """Small is right on even i; the verifier doubts odd i; large is always right."""
    answers, verdicts = {}, {}
    for i, q in enumerate(QUESTIONS):
        answers[("small-m", q)] = str(2 * i if i % 2 == 0 else 2 * i + 1)
        answers[("large-m", q)] = f"Answer: {2 * i}."
        verdicts[("small-m", q)] = (
            [True] * 4 if i % 2 == 0 else [False, False, True, None]
        )
    return FakeOpenAI(answers, verdicts, **kwargs)


def write_input(path: Path, questions=QUESTIONS) -> Path:
    with open(path, "w") as handle:
        for i, q in enumerate(questions):
            handle.write(json.dumps({"id": f"q{i}", "question": q, "output": 2 * i}))
            handle.write("\n")
    return path


def run(tmp_path, server, policy="threshold:0.5", k=4, keys=None, **endpoint_kw):
    write_endpoints(tmp_path / "e.toml", server.base_url, **endpoint_kw)
    config = load_endpoints(tmp_path / "e.toml")
    summary = run_live(
        config,
        read_queries(write_input(tmp_path / "in.jsonl")),
        load_live_policy(policy),
        out_path=tmp_path / "out.jsonl",
        journal_path=tmp_path / "journal.jsonl",
        settings=LiveSettings(k=k),
        keys=keys,
        seed=0,
    )
    rows = [
        json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()
    ]
    return summary, rows


def test_threshold_run_rows_and_escalation(tmp_path):
    with scripted() as server:
        summary, rows = run(tmp_path, server)
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(6)]
    for i, row in enumerate(rows):
        assert row["output"] == 2 * i and "split" not in row
        if i % 2 == 0:
            assert row["stop_model"] == "small" and row["p_ver_small"] == 1.0
            assert row["small_f1"] == 1.0 and "large_pred_ans" not in row
        else:
            # Two "incorrect", one "correct", one unparsable: 1/3 <= 0.5.
            assert row["p_ver_small"] == pytest.approx(1 / 3)
            assert row["small_verdicts"] == ["incorrect", "incorrect", "correct", None]
            assert row["stop_model"] == "large" and row["large_pred_ans"] == str(2 * i)
            assert row["small_f1"] == 0.0 and row["large_f1"] == 1.0
            assert "p_ver_large" not in row
            assert row["total_cost"] == pytest.approx(
                row["small_cost"] + row["large_cost"]
            )
        assert len(row["small_ver"]) == 4 and row["small_input_tokens"] > 0
    assert summary.done == 6 and summary.escalated == 3 and summary.failed == 0
    assert summary.stops == {"small": 3, "large": 3}
    assert summary.mean_score == 1.0 and summary.paid == 6 + 6 + 3


def test_faults_are_retried_and_failures_recorded(tmp_path):
    with scripted() as server:
        server.faults = [
            Fault("429", match=QUESTIONS[0], retry_after=0.3),
            Fault("500", match=QUESTIONS[1]),
            Fault("stall", match=QUESTIONS[2], stall=3.0),
            Fault("malformed", match=QUESTIONS[3]),
            Fault("drop", match=QUESTIONS[4]),
            Fault("500", match=QUESTIONS[5], times=-1),
        ]
        summary, rows = run(tmp_path, server, timeout=0.4)
        arrivals = list(server.arrivals)
    assert [("error" in r) for r in rows] == [False] * 5 + [True]
    failed = rows[5]
    assert failed["error"] == "small: HTTP 500 (server error) after 3 attempts"
    assert failed["failed_model"] == "small" and failed["stop_model"] is None
    # max_retries = 2: three attempts at q5, then nothing more for it.
    assert sum(q == QUESTIONS[5] for _, q in arrivals) == 3
    # Each one-off fault cost exactly one retry.
    assert summary.retries == 5 + 2 and summary.failed == 1 and summary.done == 5
    # Retry-After: 0.3 s was waited although the backoff base is 0.01 s.
    times = [t for t, q in arrivals if q == QUESTIONS[0]]
    assert times[1] - times[0] >= 0.28
    for i in range(5):
        assert rows[i]["stop_model"] in ("small", "large")


def test_zero_retries_means_one_attempt(tmp_path):
    with scripted() as server:
        server.faults = [Fault("500", match=QUESTIONS[0], times=-1)]
        summary, rows = run(
            tmp_path, server, retry="max_retries = 0\nbackoff_base = 0.01"
        )
        assert sum(q == QUESTIONS[0] for _, q in server.arrivals) == 1
    assert rows[0]["error"] == "small: HTTP 500 (server error) after 1 attempt"
    assert summary.failed == 1


def test_non_retryable_status_is_not_retried(tmp_path):
    with scripted() as server:
        server.faults = []
        server.api_key = "expected"
        write_endpoints(tmp_path / "e.toml", server.base_url, api_key_env="K")
        config = load_endpoints(tmp_path / "e.toml")
        summary = run_live(
            config,
            read_queries(write_input(tmp_path / "in.jsonl", QUESTIONS[:1])),
            load_live_policy("threshold:0.5"),
            out_path=tmp_path / "out.jsonl",
            journal_path=tmp_path / "j.jsonl",
            keys={"small": "wrong", "large": "wrong"},
            preflight=False,
        )
        assert len(server.auth_seen) == 1
    assert "HTTP 401" in summary.errors["q0"] and "not retried" in summary.errors["q0"]


def test_concurrency_limit_is_kept(tmp_path):
    with scripted(delay=0.05) as server:
        run(tmp_path, server, concurrency=2, supports_n=False)
        assert server.max_inflight["small-m"] == 2


def test_requests_per_minute_spaces_starts(tmp_path):
    with scripted() as server:
        run(
            tmp_path,
            server,
            policy="always-small",
            rpm=600,
            models=("small",),
        )
        times = sorted(t for t, _ in server.arrivals)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) == 6 and min(gaps) >= 0.08


def test_server_capping_n_is_asked_for_the_rest(tmp_path):
    with scripted(max_n=3) as server:
        _, rows = run(tmp_path, server, k=8)
        ns = sorted(n for (m, _, n, t), c in server.received.items() if t == 1.0)
    assert len(rows[0]["small_ver"]) == 8 and rows[0]["p_ver_small"] == 1.0
    assert set(ns) == {8, 5, 2}


def test_k_requests_without_n_support(tmp_path):
    with scripted() as server:
        _, rows = run(tmp_path, server, supports_n=False, k=4)
        verify = [c for (m, _, n, t), c in server.received.items() if t == 1.0]
    assert all(c == 4 for c in verify) and len(verify) == 6
    assert all(len(r["small_ver"]) == 4 for r in rows)


def test_missing_usage_is_estimated(tmp_path):
    with scripted(usage=False) as server:
        _, rows = run(tmp_path, server)
    assert rows[0]["small_input_tokens"] > 0 and rows[0]["small_cost"] > 0


def test_no_parsable_verdict_gives_documented_confidence(tmp_path):
    with FakeOpenAI(verdicts={("small-m", q): [None] for q in QUESTIONS}) as server:
        _, rows = run(tmp_path, server)
    assert all(r["p_ver_small"] == 0.0 for r in rows)
    assert all(r["stop_model"] == "large" for r in rows)


@pytest.mark.parametrize(
    "policy, models_run, verified",
    [
        ("always-small", {"small"}, set()),
        ("always-large", {"large"}, set()),
        ("collect", {"small", "large"}, {"small", "large"}),
    ],
)
def test_fixed_policies_pay_only_what_they_need(tmp_path, policy, models_run, verified):
    with scripted() as server:
        _, rows = run(tmp_path, server, policy=policy)
        seen = {m[:-2] for (m, *_), c in server.received.items()}
    assert seen == models_run
    for row in rows:
        assert {m for m in ("small", "large") if f"{m}_pred_ans" in row} == models_run
        assert {m for m in ("small", "large") if f"p_ver_{m}" in row} == verified
    if policy == "collect":
        assert all(row["stop_model"] == "large" for row in rows)


def test_identical_questions_share_one_paid_request(tmp_path):
    with scripted() as server:
        write_endpoints(tmp_path / "e.toml", server.base_url)
        rows = [json.dumps({"id": i, "question": QUESTIONS[0]}) for i in range(3)]
        (tmp_path / "in.jsonl").write_text("\n".join(rows) + "\n")
        summary = run_live(
            load_endpoints(tmp_path / "e.toml"),
            read_queries(tmp_path / "in.jsonl"),
            load_live_policy("threshold:0.5"),
            out_path=tmp_path / "out.jsonl",
            journal_path=tmp_path / "j.jsonl",
        )
        assert set(server.received.values()) == {1}
    assert summary.done == 3 and summary.paid == 2


def test_api_key_never_leaks(tmp_path, monkeypatch, caplog, capsys):
    secret = "sk-LEAK-CHECK-7f3a9c"
    monkeypatch.setenv("LIVE_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with scripted(api_key=secret) as server:
        summary, _ = run(tmp_path, server, api_key_env="LIVE_TEST_KEY")
        assert summary.done == 6
        assert set(server.auth_seen) == {f"Bearer {secret}"}
        # A server that echoes the credentials it refused: the echo is scrubbed.
        server.api_key = "something-else"
        write_endpoints(
            tmp_path / "e.toml", server.base_url, api_key_env="LIVE_TEST_KEY"
        )
        code = cli.main(
            [
                "run",
                "--endpoints",
                str(tmp_path / "e.toml"),
                "--input",
                str(tmp_path / "in.jsonl"),
                "--policy",
                "threshold:0.5",
                "--out",
                str(tmp_path / "out2.jsonl"),
                "--no-preflight",
                "-v",
            ]
        )
        assert code == 0
        code = cli.main(
            [
                "run",
                "--endpoints",
                str(tmp_path / "e.toml"),
                "--input",
                str(tmp_path / "in.jsonl"),
                "--policy",
                "threshold:0.5",
                "--out",
                str(tmp_path / "out3.jsonl"),
                "-v",
            ]
        )
        assert code == 2
    out2 = (tmp_path / "out2.jsonl").read_text()
    assert "HTTP 401" in out2 and "***" in out2
    captured = capsys.readouterr()
    assert "refused the API key" in captured.err
    texts = [captured.out, captured.err, caplog.text]
    texts += [p.read_text() for p in tmp_path.iterdir() if p.is_file()]
    assert all(secret not in text for text in texts)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("automix-jax run: error: ")
    return err


def test_start_failures_are_one_line(tmp_path, capsys, monkeypatch):
    inp = str(write_input(tmp_path / "in.jsonl"))
    args = [
        "run",
        "--input",
        inp,
        "--policy",
        "always-small",
        "--out",
        str(tmp_path / "o.jsonl"),
        "--endpoints",
        str(tmp_path / "e.toml"),
    ]
    # Unreachable endpoint.
    write_endpoints(tmp_path / "e.toml", f"http://127.0.0.1:{closed_port()}/v1")
    started = time.monotonic()
    err = cli_error(capsys, args)
    assert "'small'" in err and "unreachable" in err
    assert time.monotonic() - started < 5 and not (tmp_path / "o.jsonl").exists()
    # Missing key variable.
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    write_endpoints(
        tmp_path / "e.toml", "http://127.0.0.1:9/v1", api_key_env="NO_SUCH_KEY_VAR"
    )
    assert "NO_SUCH_KEY_VAR is not set" in cli_error(capsys, args)
    # Malformed endpoints file.
    (tmp_path / "e.toml").write_text("[models.small\n")
    assert "not valid TOML" in cli_error(capsys, args)
    # Bad input line.
    write_endpoints(tmp_path / "e.toml", "http://127.0.0.1:9/v1")
    (tmp_path / "in.jsonl").write_text('{"question": "ok"}\n{"context": "x"}\n')
    err = cli_error(capsys, args)
    assert "in.jsonl:2" in err and "'question'" in err


def test_read_queries_errors(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"question": "a", "id": 1}\n\n{"question": "b", "id": 1}\n')
    with pytest.raises(DataError, match=r"in\.jsonl:3, column 'id'.*duplicate"):
        read_queries(path)
    path.write_text("{not json\n")
    with pytest.raises(DataError, match=r"in\.jsonl:1: not valid JSON"):
        read_queries(path)
    path.write_text('{"question": "a", "context": 3}\n')
    with pytest.raises(DataError, match="context"):
        read_queries(path)
    path.write_text('{"question": "a", "answer": "x", "split": "val"}\n')
    (query,) = read_queries(path)
    assert query.gold == "x" and query.split == "val" and query.id == "1"
    with pytest.raises(EndpointError):
        load_endpoints(tmp_path / "nope.toml")
