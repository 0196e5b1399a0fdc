"""`automix-jax evaluate` end to end."""

import json

from automix_jax.cli import main


def test_evaluate_json_on_the_bundled_data(capsys):
    assert (
        main(
            [
                "evaluate",
                "--seeds",
                "2",
                "--json",
                "--policy",
                "threshold",
                "--policy",
                "best-of",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["models"] == ["llama13b", "gpt4"]
    assert out["costs"] == [1.0, 50.0]
    assert [r["policy"] for r in out["results"]] == ["threshold", "best-of"]
    assert out["results"][0]["ibc_lift"]["mean"] > 0


def test_evaluate_table_three_models(capsys):
    assert (
        main(
            [
                "evaluate",
                "--demo",
                "date",
                "--models",
                "llama13b,gpt35,gpt4",
                "--costs",
                "1,10,50",
                "--seeds",
                "2",
                "--policy",
                "chained-threshold",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "chained-threshold" in out and "gpt35 (cost 10" in out


def test_errors_are_one_line_and_non_zero(capsys, tmp_path):
    assert main(["evaluate", "--data", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert main(["evaluate", "--policy", "nope", "--seeds", "2"]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err
