"""Exceptions raised by automix-jax.

Every error the library raises on purpose derives from `AutomixError`, so a caller
(the CLI among them) can catch one class and print one line:

    AutomixError
    ├── DataError        bad input rows: file, line, column, value and the fix
    ├── PolicyError      a policy or its parameters cannot be used as asked
    ├── SpecError        a declarative policy spec is wrong: file, key path, reason
    ├── PomdpFormatError a `.pomdp` file is malformed: file, line, reason
    ├── EndpointError    a live endpoint is misconfigured or unreachable
    └── DegenerateError  the maths has no answer here (say, no candidate in budget)
"""

from __future__ import annotations


class AutomixError(Exception):
    """Base class of every error automix-jax raises on purpose."""


class DataError(AutomixError, ValueError):
    """Input data that cannot be used.

    The message names where the problem is (file, line, column, value) and what to
    do about it.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
        value: object = None,
        fix: str | None = None,
    ):
        self.reason = reason
        self.file = file
        self.line = line
        self.column = column
        self.value = value
        self.fix = fix
        where = []
        if file is not None:
            where.append(str(file) + (f":{line}" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        if value is not None:
            where.append(f"value {value!r}")
        message = (", ".join(where) + ": " if where else "") + reason
        if fix:
            message += f"; {fix}"
        super().__init__(message)


class PolicyError(AutomixError, ValueError):
    """A policy, or the parameters given to it, cannot be used as asked."""


class SpecError(AutomixError, ValueError):
    """A declarative policy spec is wrong (file, key path and reason)."""


class PomdpFormatError(AutomixError, ValueError):
    """A `.pomdp` file is malformed (file, line and reason)."""


class EndpointError(AutomixError, RuntimeError):
    """A live endpoint is misconfigured, unreachable or refuses the request."""


class DegenerateError(AutomixError, ValueError):
    """The requested quantity has no answer on these inputs (see the message)."""
