"""Cassandra's .pomdp format: the shipped benchmark files and malformed input."""

import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from automix_jax._errors import PomdpFormatError
from automix_jax._pomdp import solve
from automix_jax._pomdp_file import parse_pomdp, read_pomdp

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "pomdp-files"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="benchmark files absent")

TIGER = """
discount: 0.95
values: reward
states: tiger-left tiger-right
actions: listen open-left open-right
observations: obs-left obs-right
T: listen
identity
T: open-left
uniform
T: open-right
uniform
O: listen
0.85 0.15
0.15 0.85
O: open-left
uniform
O: open-right
uniform
R: listen : * : * : * -1
R: open-left : tiger-left : * : * -100
R: open-left : tiger-right : * : * 10
R: open-right : tiger-left : * : * 10
R: open-right : tiger-right : * : * -100
"""


def test_tiger_text_parses_to_hand_arrays():
    parsed = parse_pomdp(TIGER)
    p = parsed.pomdp
    np.testing.assert_allclose(p.transition[0], np.eye(2))
    np.testing.assert_allclose(p.transition[1], np.full((2, 2), 0.5))
    np.testing.assert_allclose(p.observation[0], [[0.85, 0.15], [0.15, 0.85]])
    np.testing.assert_allclose(p.reward, [[-1, -1], [-100, 10], [10, -100]])
    np.testing.assert_allclose(p.start, [0.5, 0.5])
    assert p.discount == 0.95 and not parsed.start_given
    assert parsed.actions == ("listen", "open-left", "open-right")


@needs_data
def test_tiger_file_solves_to_published_value():
    pomdp = read_pomdp(DATA / "Tiger.pomdp").pomdp
    result = solve(pomdp, num_beliefs=32, tolerance=1e-6, max_iterations=3000)
    assert abs(result.value - 19.3714) < 1e-2


@needs_data
@pytest.mark.parametrize(
    "name, shape", [("Hallway", (5, 60, 21)), ("TagAvoid", (5, 870, 30))]
)
def test_benchmark_files_parse(name, shape):
    parsed = read_pomdp(DATA / f"{name}.pomdp")
    p = parsed.pomdp
    actions, states, observations = shape
    assert p.transition.shape == (actions, states, states)
    assert p.observation.shape == (actions, states, observations)
    np.testing.assert_allclose(p.transition.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p.observation.sum(-1), 1.0, atol=1e-5)
    assert float(p.start.sum()) == pytest.approx(1.0, abs=1e-5)
    assert parsed.start_given


def test_entry_forms_wildcards_costs_and_observation_rewards():
    text = """
    discount: 0.5
    values: cost
    states: 2
    actions: 1
    observations: a b
    start: 1
    T: * : * : * 0.5
    O: 0 : 0
    1 0
    O: 0 : 1 : a 0.25
    O: 0 : 1 : b 0.75
    R: 0 : 0 : * : * 1
    R: 0 : 1 : 1
    4 8
    """
    parsed = parse_pomdp(text)
    p = parsed.pomdp
    np.testing.assert_allclose(p.start, [0.0, 1.0])
    np.testing.assert_allclose(p.observation[0, 1], [0.25, 0.75])
    # State 1: half the time to s2=1 where the cost is 0.25*4 + 0.75*8 = 7; the
    # other half to s2=0, never set, cost 0. Costs are negated into rewards.
    np.testing.assert_allclose(p.reward, [[-1.0, -3.5]])


def test_start_include_and_exclude():
    head = "discount: 0.9\nstates: a b c\nactions: 1\nobservations: 1\n"
    tail = "T: 0 identity\nO: 0 uniform\n"
    inc = parse_pomdp(head + "start include: a c\n" + tail).pomdp.start
    exc = parse_pomdp(head + "start exclude: a\n" + tail).pomdp.start
    np.testing.assert_allclose(inc, [0.5, 0.0, 0.5])
    np.testing.assert_allclose(exc, [0.0, 0.5, 0.5])
    assert jnp.issubdtype(inc.dtype, jnp.floating)


HEAD = "discount: 0.9\nstates: s0 s1\nactions: go\nobservations: o0 o1\n"
GOOD_TO = "T: go identity\nO: go uniform\n"


@pytest.mark.parametrize(
    "text, line, reason",
    [
        (HEAD + "T: go : s0 : nowhere 1.0\n" + GOOD_TO, 5, "unknown state 'nowhere'"),
        (HEAD + "T: go : s0\n0.5 0.4\nO: go uniform\n", 5, "sums to 0.9"),
        (HEAD + "T: go : s0\n0.5 0.25 0.25\n" + GOOD_TO, 5, "expected 2, found 3"),
        (HEAD + GOOD_TO + "R: jump : * : * : * 1\n", 7, "unknown action 'jump'"),
        (HEAD + "O: go\n1 0 0 1 0\n", 5, "wrong number of entries"),
        (HEAD + "T: go : s0 : s1 1.5\n" + GOOD_TO, 5, "outside [0, 1]"),
        (HEAD + "T: go : 7 : s1 1\n", 5, "index 7 out of range"),
        ("states: 2\nactions: 1\nT: 0 identity\n", 3, "missing header"),
        (
            HEAD.replace("discount: 0.9\n", "") + GOOD_TO,
            5,
            "missing header 'discount:'",
        ),
        (HEAD + "start: 0.5 0.6\n", 5, "sums to 1.1"),
        (HEAD + "X: go identity\n", 5, "expected a statement"),
        (HEAD + "T: go : s0 : s1 abc\n", 5, "expected a number, got 'abc'"),
    ],
)
def test_malformed_files_name_line_and_reason(tmp_path, text, line, reason):
    path = tmp_path / "bad.pomdp"
    path.write_text(text)
    with pytest.raises(PomdpFormatError) as caught:
        read_pomdp(path)
    message = str(caught.value)
    assert f"bad.pomdp:{line}:" in message
    assert reason in message


def test_unreadable_file(tmp_path):
    with pytest.raises(PomdpFormatError, match="cannot read"):
        read_pomdp(tmp_path / "missing.pomdp")
