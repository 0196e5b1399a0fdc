"""Typed policy specs: validation, TOML errors with file and key path, compiling."""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest

import automix_jax as ax
from automix_jax import _specs


def _write(tmp_path, text: str, name: str = "policy.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        # An unknown key, with the closest known one suggested.
        ('family = "threshold"\nbnis = 8\n', r"bnis: unknown key 'bnis'.*'bins'"),
        # A value of the wrong type.
        (
            'family = "threshold"\nbins = "eight"\n',
            r"bins: expected an integer, got a string",
        ),
        (
            'family = "threshold"\nbins = 8.0\n',
            r"bins: expected an integer, got a number",
        ),
        (
            'family = "soft"\nsteps = true\n',
            r"steps: expected an integer, got a boolean",
        ),
        # A value out of range.
        (
            'family = "threshold"\nthreshold = 1.5\n',
            r"threshold: must be in \[0, 1\], got 1.5",
        ),
        ('family = "pomdp"\nlevels = 1\n', r"levels: must be at least 2, got 1"),
        ('family = "soft"\noptimizer = "rmsprop"\n', r"optimizer: must be one of adam"),
        (
            'family = "soft"\ntemperature_start = 0.01\ntemperature_end = 0.1\n',
            r"temperature_end: must not exceed temperature_start",
        ),
        (
            'family = "pomdp"\nlam = 1.0\nbudget = 5.0\n',
            r"budget: give `lam` or `budget`",
        ),
        # An unknown family.
        (
            'family = "thresold"\n',
            r"family: unknown family 'thresold' \(did you mean 'threshold'",
        ),
        ("bins = 8\n", r"family: missing key 'family'"),
    ],
)
def test_each_kind_of_error_names_file_key_and_reason(tmp_path, text, pattern):
    path = _write(tmp_path, text)
    with pytest.raises(ax.SpecError, match=re.escape(path) + ": " + pattern):
        ax.load_spec_file(path)


def test_nested_key_paths(tmp_path):
    text = (
        '[[policies]]\nfamily = "threshold"\n\n'
        '[[policies]]\nfamily = "override"\nanswers = ["unanswerable"]\n'
        '[policies.policy]\nfamily = "best-of"\n'
        '[[policies.policy.members]]\nfamily = "threshold"\n'
        '[[policies.policy.members]]\nfamily = "double-threshold"\nbins = 0\n'
    )
    path = _write(tmp_path, text)
    with pytest.raises(
        ax.SpecError,
        match=re.escape(path)
        + r": policies\[1\]\.policy\.members\[1\]\.bins: must be at least 1, got 0",
    ):
        ax.load_spec_file(path)


def test_data_table_and_toml_syntax_errors(tmp_path):
    path = _write(tmp_path, 'family = "chain"\n[data]\nmodel = ["a", "b"]\n')
    with pytest.raises(ax.SpecError, match=r"data\.model: unknown key 'model'"):
        ax.load_spec_file(path)
    path = _write(tmp_path, 'family = "chain"\n[data]\ncosts = [1, -2]\n')
    with pytest.raises(ax.SpecError, match=r"data\.costs: must be at least 0"):
        ax.load_spec_file(path)
    path = _write(tmp_path, 'family = "threshold"\nbins = \n')
    with pytest.raises(ax.SpecError, match=re.escape(path) + ": not valid TOML"):
        ax.load_spec_file(path)
    with pytest.raises(ax.SpecError, match="no such policy file"):
        ax.load_spec_file(tmp_path / "missing.toml")


def test_direct_construction_is_validated():
    with pytest.raises(ax.SpecError, match=r"threshold: must be in \[0, 1\]"):
        ax.ThresholdSpec(threshold=-0.1)
    with pytest.raises(ax.SpecError, match=r"edges: must be three increasing"):
        ax.TripleThresholdSpec(edges=(0.5, 0.2, 0.9))
    with pytest.raises(ax.SpecError, match=r"members: needs at least two"):
        ax.BestOfSpec(members=(ax.ThresholdSpec(),))
    with pytest.raises(ax.SpecError, match=r"hidden: must be at least 1, got 0"):
        ax.LearnedSpec(hidden=[16, 0])


def test_round_trip_through_dict():
    spec = ax.OverrideSpec(
        answers=["unanswerable"],
        policy=ax.BestOfSpec(
            name="b", members=[ax.ThresholdSpec(bins=4), ax.ChainSpec(thresholds=[0.5])]
        ),
    )
    assert ax.spec_from_dict(spec.to_dict()) == spec
    assert hash(spec) == hash(ax.spec_from_dict(spec.to_dict()))


def test_unavailable_family_says_so(monkeypatch):
    monkeypatch.delitem(ax.POLICIES, "learned", raising=False)
    monkeypatch.setattr(_specs, "_BUILDERS", {})
    monkeypatch.setattr(_specs, "_LAZY_MODULES", {})
    with pytest.raises(
        ax.SpecError, match="family 'learned' is not available in this build"
    ):
        ax.LearnedSpec().compile()


def test_registered_family_compiles(monkeypatch):
    monkeypatch.setattr(_specs, "_BUILDERS", {})
    seen = []

    def builder(spec):
        seen.append(spec)
        return ax.Threshold()

    ax.register_spec_family("soft", builder)
    compiled = ax.SoftSpec(name="s", budget=20.0).compile()
    assert seen == [ax.SoftSpec(name="s", budget=20.0)]
    assert compiled.policy.name == "s"


@pytest.mark.parametrize("jit", [True, False])
def test_compiled_spec_routes_like_the_library_policy(jit):
    rng = np.random.default_rng(0)
    obs = ax.Observations(
        rng.integers(0, 2, (64, 3)).astype(float),
        np.round(rng.random((64, 3)) * 8) / 8,
        [1.0, 10.0, 50.0],
    )
    cases = [
        (ax.ThresholdSpec(threshold=0.5), ax.Threshold(), 0.5),
        (
            ax.DoubleThresholdSpec(low=0.25, high=0.75),
            ax.DoubleThreshold(),
            [0.25, 0.75],
        ),
        (ax.ChainSpec(thresholds=[0.25, 0.625]), ax.ChainedThreshold(), [0.25, 0.625]),
        (ax.AlwaysSpec(model=-1), ax.AlwaysModel(-1), 0.0),
    ]
    for spec, library, params in cases:
        policy = spec.compile().policy
        grid = policy.grid(8, 3)
        assert grid.shape[0] == 1
        np.testing.assert_array_equal(grid[0], np.asarray(params, np.float32))
        route = ax.route if jit else ax.route.__wrapped__
        mine = route(policy, jnp.asarray(grid[0]), obs)
        theirs = route(library, jnp.asarray(params, jnp.float32), obs)
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_tuned_grid_follows_spec_bins():
    policy = ax.ThresholdSpec(bins=4).compile().policy
    np.testing.assert_array_equal(policy.grid(8, 2), [0, 0.25, 0.5, 0.75, 1])
    assert len(ax.ThresholdSpec().compile().policy.grid(8, 2)) == 9


def test_duplicate_names_are_refused():
    with pytest.raises(ax.SpecError, match="two policies are named 'threshold'"):
        ax.compile_all([ax.ThresholdSpec(), ax.ThresholdSpec(bins=4)])
