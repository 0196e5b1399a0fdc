"""Every file in policies/ loads, compiles and evaluates on the shared real runs."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import automix_jax as ax

POLICIES_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "policies")
FILES = sorted(glob.glob(os.path.join(POLICIES_DIR, "*.toml")))
PROTOCOL = dict(seeds=2, train_size=100)


def _available(spec) -> str | None:
    """None when the spec compiles, else why its family is missing."""
    try:
        spec.compile()
    except ax.SpecError as error:
        if "is not available in this build" in str(error):
            return str(error)
        raise
    return None


def _dataset(shared_dir, loaded):
    """The shared file whose models the policy file names (else GSM8K)."""
    folder = os.path.join(shared_dir, "data", "automix-format")
    if loaded.models is None:
        return ax.load(os.path.join(folder, "gsm8k.jsonl"), ["llama13b", "gpt4"])
    for name in ("gsm8k", "date"):
        path = os.path.join(folder, f"{name}.jsonl")
        if set(loaded.models) <= set(ax.detect_models(path)):
            return ax.load(path, list(loaded.models), costs=list(loaded.costs))
    pytest.fail(f"no shared dataset has the models {loaded.models}")


@pytest.fixture(scope="module")
def reports(shared_dir):
    """One protocol run per dataset over every available policy of every file."""
    groups: dict[str, tuple] = {}
    for path in FILES:
        loaded = ax.load_spec_file(path)
        data = _dataset(shared_dir, loaded)
        specs = [s for s in loaded.specs if _available(s) is None]
        key = data.source + str(data.models)
        groups.setdefault(key, (data, []))[1].extend(specs)
    out = {}
    for data, specs in groups.values():
        report = ax.evaluate_specs(data, specs, **PROTOCOL)
        for result in report.to_json()["results"]:
            out[result["policy"]] = (report, result)
    return out


def test_the_folder_has_the_promised_policies():
    names = {os.path.basename(p) for p in FILES}
    assert {
        "automix-threshold.toml",
        "automix-paper.toml",
        "cascade-3.toml",
        "pomdp.toml",
        "soft-budget.toml",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_policy_file_loads_compiles_and_evaluates(path, reports):
    loaded = ax.load_spec_file(path)
    assert loaded.specs
    missing = [why for s in loaded.specs if (why := _available(s)) is not None]
    if missing:
        pytest.skip(f"{os.path.basename(path)}: {missing[0]}")
    for spec in loaded.specs:
        # The spec survives a trip through its own dict form.
        assert ax.spec_from_dict(spec.to_dict()) == spec
        report, result = reports[spec.label()]
        costs = report.baseline_cost
        for field in ("cost", "performance"):
            stats = result[field]
            assert np.isfinite([stats["mean"], stats["min"], stats["max"]]).all()
            assert stats["min"] <= stats["mean"] <= stats["max"]
        assert 0.0 <= result["performance"]["min"] <= result["performance"]["max"] <= 1
        assert costs[0] <= result["cost"]["min"]
        # A cascade can pay every model and every verification, no more.
        ceiling = sum(costs) + sum(report.verifier_cost[:-1])
        assert result["cost"]["max"] <= ceiling + 1e-4
        assert len(result["params"]) == PROTOCOL["seeds"]
