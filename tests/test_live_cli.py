"""`automix-jax run` end to end: kill and resume, Ctrl-C, progress, evaluate."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _fake_openai import FakeOpenAI, wait_for, write_endpoints

from automix_jax import cli

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [f"How many legs do {i} spiders have?" for i in range(10)]


def scripted() -> FakeOpenAI:
    answers, verdicts = {}, {}
    for i, q in enumerate(QUESTIONS):
        answers[("small-m", q)] = str(8 * i if i % 3 else 8 * i + 2)
        answers[("large-m", q)] = str(8 * i)
        verdicts[("small-m", q)] = [True, True, i % 3 != 0, None]
        verdicts[("large-m", q)] = [True, True, True, i % 2 == 0]
    return FakeOpenAI(answers, verdicts)


def prepare(tmp_path: Path, server: FakeOpenAI) -> Path:
    write_endpoints(tmp_path / "e.toml", server.base_url)
    with open(tmp_path / "in.jsonl", "w") as handle:
        for i, q in enumerate(QUESTIONS):
            row = {"id": f"s{i}", "question": q, "output": 8 * i}
            row["split"] = "train" if i % 2 == 0 else "val"
            handle.write(json.dumps(row) + "\n")
    return tmp_path


def argv(tmp_path: Path, out: str, policy: str = "threshold:0.7") -> list[str]:
    return [
        "run",
        "--endpoints",
        str(tmp_path / "e.toml"),
        "--input",
        str(tmp_path / "in.jsonl"),
        "--policy",
        policy,
        "--out",
        str(tmp_path / out),
        "--k",
        "4",
        "--max-in-flight",
        "2",
    ]


def spawn(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "automix_jax", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def journal_lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_sigkill_then_resume_pays_nothing_twice(tmp_path, capsys):
    with scripted() as server:
        prepare(tmp_path, server)
        # The uninterrupted reference run.
        assert cli.main(argv(tmp_path, "ref.jsonl")) == 0
        reference_paid = dict(server.paid)
        server.reset_counts()
        # Serve 7 responses, then hold every request (unanswered) and kill -9.
        server.hold_after = 7
        journal = tmp_path / "out.jsonl.journal.jsonl"
        proc = spawn(argv(tmp_path, "out.jsonl"))
        try:
            assert wait_for(
                lambda: (
                    server.held >= 1 and journal_lines(journal) == server.paid_total
                ),
                20,
            ), proc.stderr.read() if proc.poll() is not None else "timed out"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        assert journal_lines(journal) == server.paid_total >= 7
        server_paid_at_kill = server.paid_total
        server.release()
        # Resume (in this process: the same code path, without a second start-up).
        capsys.readouterr()
        assert cli.main(argv(tmp_path, "out.jsonl")) == 0
    assert f"{server_paid_at_kill} reused from the journal" in capsys.readouterr().out
    assert (tmp_path / "out.jsonl").read_text() == (tmp_path / "ref.jsonl").read_text()
    # No paid request was repeated, and the same requests were paid in all.
    assert set(server.paid.values()) == {1}
    assert dict(server.paid) == reference_paid


def test_ctrl_c_stops_cleanly_and_resumes(tmp_path):
    with scripted() as server:
        prepare(tmp_path, server)
        server.hold_after = 4
        journal = tmp_path / "out.jsonl.journal.jsonl"
        proc = spawn(argv(tmp_path, "out.jsonl"))
        assert wait_for(lambda: server.held >= 1 and journal_lines(journal) == 4, 20)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 130
        assert stderr.strip().splitlines()[-1].startswith("automix-jax run: stopped")
        assert "Traceback" not in stderr
        server.release()
        assert cli.main(argv(tmp_path, "out.jsonl")) == 0
        assert set(server.paid.values()) == {1}
    rows = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(r)["id"] for r in rows] == [f"s{i}" for i in range(10)]


def test_progress_bar_and_summary(tmp_path, capsys):
    with scripted() as server:
        prepare(tmp_path, server)
        assert cli.main([*argv(tmp_path, "out.jsonl"), "--progress"]) == 0
    captured = capsys.readouterr()
    assert "10/10 done" in captured.err and "escalated" in captured.err
    assert "spent" in captured.err
    assert captured.out.startswith("10 of 10 answered, 0 failed")
    assert "mean score of the standing answers" in captured.out
    # Without --progress and without a terminal there is no bar.
    with scripted() as server:
        prepare(tmp_path, server)
        assert cli.main(argv(tmp_path, "again.jsonl")) == 0
    assert "done," not in capsys.readouterr().err


def test_live_output_loads_in_evaluate_and_tunes(tmp_path):
    import automix_jax

    with scripted() as server:
        prepare(tmp_path, server)
        assert cli.main(argv(tmp_path, "collect.jsonl", policy="collect")) == 0
    out = tmp_path / "collect.jsonl"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for row in rows:
        for name in ("small", "large"):
            assert isinstance(row[f"{name}_f1"], float)
            assert 0.0 <= row[f"p_ver_{name}"] <= 1.0
            assert row[f"{name}_cost"] > 0
    load = getattr(automix_jax, "load_jsonl", None)
    evaluate = getattr(automix_jax, "evaluate", None)
    if load is None or evaluate is None:
        pytest.skip("automix_jax.load_jsonl / automix_jax.evaluate are not there yet")
    data = load(out, models=["small", "large"])
    # The AutoMix protocol: tune the threshold on train, evaluate on val.
    report = evaluate(data, policies=("threshold",), seeds=2, train_size=5)
    assert report is not None
    if importlib.util.find_spec("automix_jax._cli_evaluate") is not None:
        args = ["evaluate", "--data", str(out), "--models", "small,large"]
        args += ["--cost-column", "{model}_cost", "--policy", "threshold"]
        assert cli.main([*args, "--seeds", "2", "--train-size", "5"]) == 0
    fit = getattr(automix_jax, "fit", None)
    if fit is None or getattr(automix_jax, "load_tuned", None) is None:
        pytest.skip("automix_jax.fit / automix_jax.load_tuned are not there yet")
    # Route live with the policy tuned on the live output.
    fit(data, "threshold").save(tmp_path / "tuned.json")
    with scripted() as server:
        prepare(tmp_path, server)
        routed = argv(tmp_path, "tuned.jsonl", policy=str(tmp_path / "tuned.json"))
        assert cli.main(routed) == 0
    rows = [json.loads(x) for x in (tmp_path / "tuned.jsonl").read_text().splitlines()]
    assert all(row["stop_model"] in ("small", "large") for row in rows)
