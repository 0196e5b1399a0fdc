"""Unit tests of the live pieces that need no server: config, prompts, scoring,
journal and policy parsing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from automix_jax._errors import AutomixError, EndpointError, PolicyError
from automix_jax._live import (
    Journal,
    JournalEntry,
    PromptTemplates,
    load_endpoints,
    load_live_policy,
    load_prompts,
    parse_verdict,
    score_answer,
    token_f1,
)
from automix_jax._live._prompts import extract_answer, fill, fit_context

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "endpoints.toml"

GOOD = """
[retry]
max_retries = 1
[models.small]
base_url = "http://127.0.0.1:9/v1"
model = "s"
[models.large]
base_url = "http://127.0.0.1:9/v1"
model = "l"
api_key_env = "LARGE_KEY"
price = { per_call = 0.5 }
"""


def write(tmp_path: Path, text: str, name: str = "e.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_example_file_loads():
    config = load_endpoints(EXAMPLE)
    assert config.names == ("small", "large")
    assert config.endpoints[1].api_key_env == "LARGE_API_KEY"


def test_order_and_defaults(tmp_path):
    config = load_endpoints(write(tmp_path, GOOD))
    assert config.names == ("small", "large")
    assert config.retry.max_retries == 1
    assert config.endpoints[0].limits.concurrency == 4
    assert config.endpoints[1].price.cost(1000, 1000) == pytest.approx(0.5)
    reordered = 'cascade = ["large", "small"]\n' + GOOD
    assert load_endpoints(write(tmp_path, reordered)).names == ("large", "small")


@pytest.mark.parametrize(
    "text, match",
    [
        ("[models.a\nbase_url = 1", "not valid TOML"),
        ("[retry]\nmax_retries = 1\n", "no models declared"),
        ("[models.a]\nmodel = 'x'\n", r"models\.a\.base_url'.*missing"),
        ("[models.a]\nbase_url = 'ftp://x'\nmodel = 'x'\n", "http:// or https://"),
        (
            "[models.a]\nbase_url = 'http://x'\nmodel = 'x'\nmodle = 1\n",
            r"models\.a\.modle'.*unknown key",
        ),
        (
            "[models.a]\nbase_url = 'http://x'\nmodel = 'x'\n"
            "limits = { concurrency = 0 }\n",
            "concurrency.*>= 1",
        ),
        (
            "[models.a]\nbase_url = 'http://x'\nmodel = 'x'\n"
            "api_key_env = 'sk-abc123-not-a-name'\n",
            "NAME of an environment variable",
        ),
        (
            "cascade = ['a', 'b']\n[models.a]\nbase_url = 'http://x'\nmodel = 'x'\n",
            "each declared model once",
        ),
    ],
)
def test_malformed_files_fail_in_one_line(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(EndpointError, match=match) as info:
        load_endpoints(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_missing_file(tmp_path):
    with pytest.raises(EndpointError, match="cannot read"):
        load_endpoints(tmp_path / "absent.toml")


def test_missing_key_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("LARGE_KEY", raising=False)
    config = load_endpoints(write(tmp_path, GOOD))
    with pytest.raises(EndpointError, match="LARGE_KEY is not set"):
        config.api_keys()
    monkeypatch.setenv("LARGE_KEY", "sk-secret")
    assert config.api_keys() == {"small": None, "large": "sk-secret"}
    assert "sk-secret" not in repr(config)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The sum is 9.\nVerdict: correct", True),
        ("Evaluation: wrong.\nVerdict: incorrect", False),
        ("**Verdict:** Correct", True),
        ("Verdict: not correct", False),
        ("Verdict: incorrect. Wait, Verdict: correct", True),
        ("I cannot tell.", None),
        ("", None),
    ],
)
def test_parse_verdict(text, expected):
    assert parse_verdict(text) is expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("18", "18"),
        (" 18.\n\nBecause 9+9.", "18"),
        ("Answer: Paris", "Paris"),
        ("The answer is: 'blue'.", "blue"),
        ("", ""),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_fill_touches_only_placeholders():
    out = fill(
        "{question} costs $2 {x} {answer}", {"question": "Q {answer}", "answer": "A"}
    )
    assert out == "Q {answer} costs $2 {x} A"


def test_fit_context_keeps_window():
    context = "word " * 4000
    cut = fit_context(
        context, fixed_tokens=100, window=1000, reserve=64, chars_per_token=4
    )
    assert cut.endswith("[...]") and len(cut) <= (1000 - 64 - 100 - 50) * 4
    assert fit_context("short", 100, 1000, 64, 4) == "short"
    assert fit_context(context, 2000, 1000, 64, 4) == ""


def test_templates_check_placeholders_and_load(tmp_path):
    with pytest.raises(ValueError, match=r"\{answer\}"):
        PromptTemplates(verify_user="{question} only")
    path = write(tmp_path, 'answer_user = "Q: {question}\\nA:"\n', "p.toml")
    templates = load_prompts(path)
    assert templates.answer_messages("why?", "")[-1]["content"] == "Q: why?\nA:"
    with pytest.raises(EndpointError, match="unknown key"):
        load_prompts(write(tmp_path, 'answr_user = "x"\n', "q.toml"))
    default = PromptTemplates().verify_messages("Q?", "", "42")[-1]["content"]
    assert default.endswith("Question: Q?\nProposed answer: 42\nEvaluation:")


@pytest.mark.parametrize(
    "prediction, gold, method, expected",
    [
        ("18", 18, "auto", 1.0),
        ("$1,250.00 in all", "1250", "auto", 1.0),
        ("17", 18, "auto", 0.0),
        ("no number", 18, "numeric", 0.0),
        ("The Eiffel Tower", "eiffel tower", "exact", 1.0),
        ("Eiffel", "the Eiffel Tower", "f1", pytest.approx(2 / 3)),
        ("Eiffel", "the Eiffel Tower", "auto", pytest.approx(2 / 3)),
    ],
)
def test_score_answer(prediction, gold, method, expected):
    assert score_answer(prediction, gold, method) == expected


def test_token_f1_edges():
    assert token_f1("", "") == 1.0
    assert token_f1("a", "x") == 0.0


def test_journal_reloads_and_cuts_torn_tail(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.append("k1", JournalEntry(("a", "b"), 3, 4, 0.5), {"model": "m"})
        journal.append("k2", JournalEntry(("c",), 1, 1, 0.1), {"model": "m"})
    with open(path, "a") as handle:
        handle.write('{"key": "k3", "texts": ["tor')
    journal = Journal(path)
    assert len(journal) == 2 and "k3" not in journal
    assert journal.get("k1") == JournalEntry(("a", "b"), 3, 4, 0.5)
    assert path.read_text().endswith("\n")
    journal.append("k3", JournalEntry(("d",), 1, 1, 0.1), {})
    journal.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["key"] for line in lines] == ["k1", "k2", "k3"]


def test_journal_rejects_foreign_file(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"question": "not a journal"}\n')
    with pytest.raises(EndpointError, match=r"j\.jsonl:1: not a journal record"):
        Journal(path)


def test_live_policies():
    small = load_live_policy("always-small")
    assert not small(0, (0.0,), "x") and not small.verify
    large = load_live_policy("always-large")
    assert large.start == -1
    threshold = load_live_policy("threshold:0.5")
    assert threshold(0, (0.5,), "x") and not threshold(0, (0.75,), "x")
    assert threshold(0, (math.nan,), "x")
    assert load_live_policy("collect").collect
    for bad in ("threshold:1.5", "threshold:x", "sometimes"):
        with pytest.raises(PolicyError):
            load_live_policy(bad)


def test_tuned_file_without_loader_is_clear(tmp_path, monkeypatch):
    import automix_jax

    monkeypatch.delattr(automix_jax, "load_tuned", raising=False)
    path = write(tmp_path, "{}", "tuned.json")
    with pytest.raises(AutomixError, match="load_tuned"):
        load_live_policy(str(path))


def test_tuned_file_uses_load_tuned(tmp_path, monkeypatch):
    import automix_jax

    class Tuned:
        def escalate(self, step, confidences, answer):
            return confidences[-1] < 0.25

    seen = []
    monkeypatch.setattr(
        automix_jax, "load_tuned", lambda p: seen.append(p) or Tuned(), raising=False
    )
    path = write(tmp_path, "{}", "tuned.json")
    policy = load_live_policy(str(path))
    assert seen == [path] and policy.verify and not policy.collect
    assert policy(0, (0.0,), "x") and not policy(0, (0.5,), "x")


def test_a_tuned_policy_for_another_cascade_length_is_refused(capsys):
    from automix_jax._cli_run import _check_cascade
    from automix_jax._errors import PolicyError
    from automix_jax._live import LivePolicy

    tuned = LivePolicy("tuned:t.json", lambda *a: False, models=("a", "b", "c"))
    with pytest.raises(PolicyError, match=r"tuned for 3 models \(a -> b -> c\)"):
        _check_cascade(tuned, ("x", "y"), "t.json")
    _check_cascade(
        LivePolicy("tuned", lambda *a: False, models=("a", "b")), ("x", "y"), "t.json"
    )
    assert "tuned for a -> b; routing x -> y" in capsys.readouterr().err
