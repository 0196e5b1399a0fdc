"""Reading POMDPs written in Cassandra's `.pomdp` format.

The format is the one of Anthony Cassandra's pomdp-solve (also read by SARSOP/APPL
and POMDPs.jl): a preamble (`discount:`, `values:`, `states:`, `actions:`,
`observations:`, optionally `start:`), then `T:`, `O:` and `R:` statements that set
entries, rows or whole matrices, with `*` for "every", `uniform` and `identity`
shorthands, and states, actions and observations named or numbered from 0. A later
statement overrides an earlier one. Rewards `R: a : s : s2 : o` are reduced to the
expected reward of `a` in `s`, `sum_{s2, o} T[a, s, s2] O[a, s2, o] R(a, s, s2, o)`.

Every problem with the file raises `PomdpFormatError` naming the file, the line and
the reason.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ._errors import PomdpFormatError
from ._pomdp import Pomdp

__all__ = ["PomdpFile", "parse_pomdp", "read_pomdp"]

# Rows of T and O, and the start belief, may miss 1 by this much (files print six
# decimals); they are renormalised exactly afterwards.
_SUM_TOLERANCE = 1e-4

_KEYWORDS = frozenset(
    {"discount", "values", "states", "actions", "observations", "start", "T", "O", "R"}
)
_TOKEN = re.compile(r":|[^\s:]+")


class PomdpFile(NamedTuple):
    """A parsed `.pomdp` file.

    Attributes:
        pomdp: the arrays (float64 on the host, converted by `jnp.asarray`).
        states: `[S]` state names (numbers as strings when the file gave a count).
        actions: `[A]` action names.
        observations: `[O]` observation names.
        start_given: whether the file had a `start:` statement (the start belief is
            uniform otherwise).
        values: `"reward"` or `"cost"` (costs are negated into rewards).
    """

    pomdp: Pomdp
    states: tuple[str, ...]
    actions: tuple[str, ...]
    observations: tuple[str, ...]
    start_given: bool
    values: str


class _Token(NamedTuple):
    text: str
    line: int


class _Parser:
    def __init__(self, text: str, source: str):
        self.source = source
        self.tokens: list[_Token] = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0]
            self.tokens.extend(_Token(t, number) for t in _TOKEN.findall(line))
        self.last_line = max(1, len(text.splitlines()))
        self.position = 0
        self.discount: float | None = None
        self.values = "reward"
        self.names: dict[str, tuple[str, ...]] = {}
        self.lookup: dict[str, dict[str, int]] = {}
        self.start: np.ndarray | None = None
        self.transition: np.ndarray | None = None
        self.observation: np.ndarray | None = None
        self.transition_line: np.ndarray | None = None
        self.observation_line: np.ndarray | None = None
        # (actions, states, next states, observations or None for all, values).
        self.rewards: list[tuple[np.ndarray, ...]] = []

    # -- errors and tokens -------------------------------------------------

    def error(self, line: int, reason: str) -> PomdpFormatError:
        error = PomdpFormatError(f"{self.source}:{line}: {reason}")
        error.file, error.line, error.reason = self.source, line, reason
        return error

    def peek(self, offset: int = 0) -> _Token | None:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise self.error(self.last_line, "unexpected end of file")
        self.position += 1
        return token

    def expect_colon(self, keyword: _Token) -> None:
        token = self.peek()
        if token is None or token.text != ":":
            raise self.error(keyword.line, f"expected ':' after '{keyword.text}'")
        self.position += 1

    def at_statement(self) -> bool:
        """Whether the next tokens start a statement (a keyword and its colon)."""
        token, after = self.peek(), self.peek(1)
        if token is None:
            return True
        if token.text not in _KEYWORDS:
            return False
        if token.text == "start" and after is not None:
            return after.text in (":", "include", "exclude")
        return after is not None and after.text == ":"

    def data(self) -> list[_Token]:
        """Tokens up to the next statement."""
        found = []
        while not self.at_statement():
            token = self.take()
            if token.text == ":":
                got = found[-1].text if found else ":"
                raise self.error(
                    token.line,
                    f"expected a statement (discount:, values:, states:, actions:, "
                    f"observations:, start:, T:, O: or R:), got '{got}'",
                )
            found.append(token)
        return found

    def number(self, token: _Token) -> float:
        try:
            return float(token.text)
        except ValueError:
            raise self.error(
                token.line, f"expected a number, got '{token.text}'"
            ) from None

    def numbers(self, tokens: list[_Token], count: int, what: str, line: int):
        if len(tokens) != count:
            raise self.error(
                line,
                f"wrong number of entries for {what}: expected {count}, "
                f"found {len(tokens)}",
            )
        return np.array([self.number(t) for t in tokens], dtype=np.float64)

    # -- names ---------------------------------------------------------------

    def size(self, kind: str, line: int) -> int:
        if kind not in self.names:
            raise self.error(line, f"missing header '{kind}:' before this statement")
        return len(self.names[kind])

    def indices(self, kind: str, token: _Token) -> np.ndarray:
        """`*`, a name or a number, as an array of indices."""
        count = self.size(kind, token.line)
        if token.text == "*":
            return np.arange(count)
        index = self.lookup[kind].get(token.text)
        if index is not None:
            return np.array([index])
        if token.text.isdigit():
            index = int(token.text)
            if index < count:
                return np.array([index])
            raise self.error(
                token.line,
                f"{kind[:-1]} index {index} out of range (there are {count})",
            )
        raise self.error(token.line, f"unknown {kind[:-1]} '{token.text}'")

    def probabilities(self, values: np.ndarray, line: int) -> np.ndarray:
        bad = (values < 0) | (values > 1)
        if bad.any():
            raise self.error(line, f"probability {values[bad][0]:g} outside [0, 1]")
        return values

    # -- statements ------------------------------------------------------------

    def parse(self) -> PomdpFile:
        while self.peek() is not None:
            keyword = self.take()
            if not self.at_statement_after(keyword):
                raise self.error(
                    keyword.line,
                    f"expected a statement (discount:, values:, states:, actions:, "
                    f"observations:, start:, T:, O: or R:), got '{keyword.text}'",
                )
            getattr(self, f"statement_{keyword.text}")(keyword)
        return self.finish()

    def at_statement_after(self, keyword: _Token) -> bool:
        self.position -= 1
        ok = self.at_statement() and keyword.text in _KEYWORDS
        self.position += 1
        return ok

    def statement_discount(self, keyword: _Token) -> None:
        self.expect_colon(keyword)
        tokens = self.data()
        (discount,) = self.numbers(tokens, 1, "discount", keyword.line)
        if not 0.0 < discount <= 1.0:
            raise self.error(keyword.line, f"discount {discount:g} not in (0, 1]")
        self.discount = float(discount)

    def statement_values(self, keyword: _Token) -> None:
        self.expect_colon(keyword)
        tokens = self.data()
        if len(tokens) != 1 or tokens[0].text not in ("reward", "cost"):
            got = " ".join(t.text for t in tokens)
            raise self.error(
                keyword.line, f"values must be 'reward' or 'cost', got '{got}'"
            )
        self.values = tokens[0].text

    def names_statement(self, keyword: _Token, kind: str) -> None:
        self.expect_colon(keyword)
        if kind in self.names:
            raise self.error(keyword.line, f"'{kind}:' given twice")
        if self.transition is not None or self.start is not None:
            raise self.error(
                keyword.line, f"'{kind}:' must come before start:, T:, O: and R:"
            )
        # Names are listed on the keyword's line.
        tokens = []
        while self.peek() is not None and self.peek().line == keyword.line:
            tokens.append(self.take())
        if not tokens:
            raise self.error(keyword.line, f"'{kind}:' needs a count or names")
        if len(tokens) == 1 and tokens[0].text.isdigit():
            count = int(tokens[0].text)
            if count < 1:
                raise self.error(keyword.line, f"'{kind}:' count must be positive")
            self.names[kind] = tuple(str(i) for i in range(count))
        else:
            names = tuple(t.text for t in tokens)
            if len(set(names)) != len(names):
                raise self.error(keyword.line, f"duplicate name in '{kind}:'")
            self.names[kind] = names
        self.lookup[kind] = {name: i for i, name in enumerate(self.names[kind])}

    def statement_states(self, keyword: _Token) -> None:
        self.names_statement(keyword, "states")

    def statement_actions(self, keyword: _Token) -> None:
        self.names_statement(keyword, "actions")

    def statement_observations(self, keyword: _Token) -> None:
        self.names_statement(keyword, "observations")

    def statement_start(self, keyword: _Token) -> None:
        num_states = self.size("states", keyword.line)
        mode = self.take()
        if mode.text in ("include", "exclude"):
            self.expect_colon(mode)
            chosen = np.zeros(num_states, bool)
            tokens = self.data()
            if not tokens:
                raise self.error(keyword.line, f"'start {mode.text}:' needs states")
            for token in tokens:
                chosen[self.indices("states", token)] = True
            if mode.text == "exclude":
                chosen = ~chosen
            if not chosen.any():
                raise self.error(keyword.line, "start excludes every state")
            self.start = chosen / chosen.sum()
            return
        self.position -= 1
        self.expect_colon(keyword)
        tokens = self.data()
        if len(tokens) == 1 and tokens[0].text == "uniform":
            self.start = np.full(num_states, 1.0 / num_states)
        elif len(tokens) == 1 and (
            tokens[0].text in self.names["states"]
            or (num_states > 1 and tokens[0].text.isdigit())
        ):
            self.start = np.zeros(num_states)
            self.start[self.indices("states", tokens[0])] = 1.0
        else:
            start = self.probabilities(
                self.numbers(tokens, num_states, "start", keyword.line), keyword.line
            )
            if abs(start.sum() - 1.0) > _SUM_TOLERANCE:
                raise self.error(
                    keyword.line, f"start distribution sums to {start.sum():.6g}, not 1"
                )
            self.start = start / start.sum()

    def header(self, keyword: _Token, kinds: tuple[str, ...]) -> list[np.ndarray]:
        """`a : s : ...` after `T:`, `O:` or `R:`: index arrays for each part given."""
        self.expect_colon(keyword)
        for kind in ("states", "actions", "observations"):
            self.size(kind, keyword.line)
        if self.transition is None:
            self.allocate()
        parts = [self.indices(kinds[0], self.take())]
        for kind in kinds[1:]:
            token = self.peek()
            if token is None or token.text != ":":
                break
            self.position += 1
            parts.append(self.indices(kind, self.take()))
        return parts

    def allocate(self) -> None:
        num_states = len(self.names["states"])
        num_actions = len(self.names["actions"])
        num_observations = len(self.names["observations"])
        self.transition = np.zeros((num_actions, num_states, num_states))
        self.observation = np.zeros((num_actions, num_states, num_observations))
        self.transition_line = np.zeros((num_actions, num_states), np.int64)
        self.observation_line = np.zeros((num_actions, num_states), np.int64)

    def block(
        self,
        keyword: _Token,
        tokens: list[_Token],
        shape: tuple[int, ...],
        what: str,
        allow_identity: bool,
    ) -> np.ndarray:
        """Entries of a row or matrix: numbers, `uniform` or `identity`."""
        if len(tokens) == 1 and tokens[0].text == "uniform":
            return np.full(shape, 1.0 / shape[-1])
        if len(tokens) == 1 and tokens[0].text == "identity":
            if not allow_identity or len(shape) != 2 or shape[0] != shape[1]:
                raise self.error(keyword.line, f"'identity' is not allowed for {what}")
            return np.eye(shape[0])
        count = int(np.prod(shape))
        return self.numbers(tokens, count, what, keyword.line).reshape(shape)

    def statement_T(self, keyword: _Token) -> None:  # noqa: N802
        parts = self.header(keyword, ("actions", "states", "states"))
        tokens = self.data()
        num_states = len(self.names["states"])
        if len(parts) == 3:
            entry = self.numbers(tokens, 1, "a T: entry", keyword.line)
            values = np.broadcast_to(entry, (1, 1, 1))
        elif len(parts) == 2:
            row = self.block(
                keyword, tokens, (num_states,), "a T: row", allow_identity=False
            )
            values = row[None, None, :]
        else:
            matrix = self.block(
                keyword,
                tokens,
                (num_states, num_states),
                "a T: matrix",
                allow_identity=True,
            )
            values = matrix[None]
        values = self.probabilities(np.asarray(values), keyword.line)
        while len(parts) < 3:
            parts.append(np.arange(num_states))
        actions, states, next_states = parts
        self.transition[np.ix_(actions, states, next_states)] = values
        self.transition_line[np.ix_(actions, states)] = keyword.line

    def statement_O(self, keyword: _Token) -> None:  # noqa: N802
        parts = self.header(keyword, ("actions", "states", "observations"))
        tokens = self.data()
        num_states = len(self.names["states"])
        num_observations = len(self.names["observations"])
        if len(parts) == 3:
            entry = self.numbers(tokens, 1, "an O: entry", keyword.line)
            values = np.broadcast_to(entry, (1, 1, 1))
        elif len(parts) == 2:
            row = self.block(
                keyword, tokens, (num_observations,), "an O: row", allow_identity=False
            )
            values = row[None, None, :]
        else:
            matrix = self.block(
                keyword,
                tokens,
                (num_states, num_observations),
                "an O: matrix",
                allow_identity=True,
            )
            values = matrix[None]
        values = self.probabilities(np.asarray(values), keyword.line)
        for size in (num_states, num_observations)[len(parts) - 1 :]:
            parts.append(np.arange(size))
        actions, states, observations = parts
        self.observation[np.ix_(actions, states, observations)] = values
        self.observation_line[np.ix_(actions, states)] = keyword.line

    def statement_R(self, keyword: _Token) -> None:  # noqa: N802
        parts = self.header(keyword, ("actions", "states", "states", "observations"))
        tokens = self.data()
        num_states = len(self.names["states"])
        num_observations = len(self.names["observations"])
        # Values are stored as [1, next states or 1, observations or 1].
        if len(parts) == 4:
            entry = self.numbers(tokens, 1, "an R: entry", keyword.line)
            values = entry.reshape(1, 1, 1)
        elif len(parts) == 3:
            row = self.numbers(tokens, num_observations, "an R: row", keyword.line)
            values = row.reshape(1, 1, num_observations)
        elif len(parts) == 2:
            matrix = self.numbers(
                tokens, num_states * num_observations, "an R: matrix", keyword.line
            )
            values = matrix.reshape(1, num_states, num_observations)
        else:
            raise self.error(
                keyword.line, "an R: statement needs at least 'R: action : state'"
            )
        for size in (num_states, num_observations)[len(parts) - 2 :]:
            parts.append(np.arange(size))
        self.rewards.append((*parts, values))

    # -- the end ---------------------------------------------------------------

    def finish(self) -> PomdpFile:
        for kind in ("states", "actions", "observations"):
            if kind not in self.names:
                raise self.error(self.last_line, f"missing header '{kind}:'")
        if self.discount is None:
            raise self.error(self.last_line, "missing header 'discount:'")
        if self.transition is None:
            self.allocate()
        transition = self.checked_rows(self.transition, self.transition_line, "T")
        observation = self.checked_rows(self.observation, self.observation_line, "O")
        reward = self.expected_reward(transition, observation)
        if self.values == "cost":
            reward = -reward
        num_states = transition.shape[1]
        start_given = self.start is not None
        start = self.start if start_given else np.full(num_states, 1.0 / num_states)
        pomdp = Pomdp(
            transition=jnp.asarray(transition),
            observation=jnp.asarray(observation),
            reward=jnp.asarray(reward),
            start=jnp.asarray(start),
            discount=self.discount,
        )
        return PomdpFile(
            pomdp,
            self.names["states"],
            self.names["actions"],
            self.names["observations"],
            start_given,
            self.values,
        )

    def checked_rows(self, matrix: np.ndarray, lines: np.ndarray, name: str):
        sums = matrix.sum(axis=-1)
        bad = np.abs(sums - 1.0) > _SUM_TOLERANCE
        if bad.any():
            a, s = (int(i[0]) for i in np.nonzero(bad))
            action = self.names["actions"][a]
            state = self.names["states"][s]
            line = int(lines[a, s])
            where = "" if line else " (no statement sets it)"
            raise self.error(
                line or self.last_line,
                f"{name}: row for action '{action}', state '{state}' sums to "
                f"{sums[a, s]:.6g}, not 1{where}",
            )
        return matrix / sums[..., None]

    def expected_reward(self, transition: np.ndarray, observation: np.ndarray):
        """R[a, s] = sum_{s2, o} T[a, s, s2] O[a, s2, o] R(a, s, s2, o)."""
        num_actions, num_states, _ = transition.shape
        num_observations = observation.shape[2]
        reward = np.zeros((num_actions, num_states))
        for a in range(num_actions):
            mine = [r for r in self.rewards if a in r[0]]
            by_observation = any(
                len(r[3]) != num_observations or r[4].shape[-1] > 1 for r in mine
            )
            if not by_observation:
                # No statement depends on the observation: a [S, S2] table
                # suffices (a [S, S2, O] one is 180 MB for TagAvoid).
                table = np.zeros((num_states, num_states))
                for _, states, next_states, _, values in mine:
                    table[np.ix_(states, next_states)] = values[..., 0]
                reward[a] = np.sum(transition[a] * table, axis=1)
                continue
            table = np.zeros((num_states, num_states, num_observations))
            for _, states, next_states, observations, values in mine:
                table[np.ix_(states, next_states, observations)] = values
            reward[a] = np.einsum("st,to,sto->s", transition[a], observation[a], table)
        return reward


def parse_pomdp(text: str, *, source: str = "<string>") -> PomdpFile:
    """Parses the text of a `.pomdp` file (Cassandra's format).

    Args:
        text: the file's contents.
        source: the name used in error messages.

    Returns:
        A `PomdpFile`: the `Pomdp` and the names of states, actions and
        observations.

    Raises:
        PomdpFormatError: with the file, line and reason, for any malformed
            statement, unknown name, wrong number of entries, row of T or O not
            summing to 1, or missing header.
    """
    return _Parser(text, source).parse()


def read_pomdp(path: str | os.PathLike[str]) -> PomdpFile:
    """Reads a `.pomdp` file (Cassandra's format; see `parse_pomdp`).

    Example:
        >>> tiger = read_pomdp("Tiger.pomdp").pomdp
        >>> tiger.reward.shape
        (3, 2)

    Args:
        path: the file.

    Returns:
        A `PomdpFile`.

    Raises:
        PomdpFormatError: the file cannot be read or is malformed (file, line,
            reason).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise PomdpFormatError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise PomdpFormatError(f"{path}: not a text file (UTF-8)") from None
    return parse_pomdp(text, source=str(path))
