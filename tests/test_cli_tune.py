"""`automix-jax tune`: JSON shape, budget reporting and errors."""

import json

from automix_jax import cli


def test_tune_soft_json_with_budget(capsys):
    code = cli.main(
        [
            "tune",
            "--budget",
            "20",
            "--seeds",
            "2",
            "--train-size",
            "60",
            "--steps",
            "10",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    result = out["results"][0]
    assert result["policy"] == "soft-threshold"
    for key in ("ibc_lift", "cost", "performance"):
        assert set(result[key]) == {"mean", "std", "min", "max"}
        assert set(result["train"][key]) == {"mean", "std", "min", "max"}
    assert out["budget"] == 20.0 and result["budget_met"] == [True, True]
    # The feasibility step keeps every seed's train cost within the budget.
    assert result["train"]["cost"]["max"] <= 20.0 * 1.01
    assert len(result["params"]) == 2


def test_tune_bad_data_prints_one_line(capsys):
    code = cli.main(["tune", "--data", "no-such-file.jsonl"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("automix-jax tune: error:") and err.count("\n") == 1
