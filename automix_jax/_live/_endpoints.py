"""Endpoint configuration for live routing, read from a TOML file.

A file declares the cascade, cheapest model first, as one table per model under
`[models]`; the table key is the model's NAME in every output column
(`NAME_pred_ans`, `p_ver_NAME`, ...). Tables keep the order they are written in,
unless a top-level `cascade = ["small", "large"]` gives the order explicitly:

    [retry]                      # optional, these are the defaults
    max_retries = 4              # retries after the first attempt
    backoff_base = 0.5           # seconds; doubled each retry, with jitter
    backoff_max = 30.0           # cap on one wait, Retry-After included

    [models.small]
    base_url = "http://127.0.0.1:8080/v1"
    model = "qwen2.5-1.5b-instruct"
    api_key_env = "SMALL_API_KEY"      # optional: name of the variable, never the key
    price = { input_per_1k = 0.0001, output_per_1k = 0.0002, per_call = 0.0 }
    limits = { concurrency = 4, requests_per_minute = 600, timeout = 60.0 }
    supports_n = true                  # one request with n=k for the k verifications
    context_window = 4096              # tokens; long contexts are cut to fit
    answer_max_tokens = 64
    verify_max_tokens = 160

Everything is checked on load; a mistake is an `EndpointError` naming the file, the
key and the fix. Keys are read from the environment when the run starts (a missing
variable fails there, in one line) and are kept out of every repr, log and file.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._errors import EndpointError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    import tomli as tomllib

__all__ = [
    "Endpoint",
    "EndpointsConfig",
    "Limits",
    "Price",
    "RetryPolicy",
    "load_endpoints",
    "parse_endpoints",
]


def _non_negative(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"`{attribute.name}` must be a number >= 0, got {value!r}")


def _positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"`{attribute.name}` must be a number > 0, got {value!r}")


def _positive_int(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{attribute.name}` must be an integer >= 1, got {value!r}")


def _optional_positive(
    instance: Any, attribute: attrs.Attribute, value: float | None
) -> None:
    if value is not None:
        _positive(instance, attribute, value)


@attrs.frozen
class Price:
    """What one call costs, in any currency unit you like (the output sums it).

    Attributes:
        input_per_1k: price of 1000 prompt tokens.
        output_per_1k: price of 1000 completion tokens.
        per_call: fixed price of one request, added to the token prices.
    """

    input_per_1k: float = attrs.field(default=0.0, validator=_non_negative)
    output_per_1k: float = attrs.field(default=0.0, validator=_non_negative)
    per_call: float = attrs.field(default=0.0, validator=_non_negative)

    def cost(self, input_tokens: int, output_tokens: int, calls: int = 1) -> float:
        """Cost of `calls` requests that used these many tokens in all."""
        return (
            input_tokens / 1000.0 * self.input_per_1k
            + output_tokens / 1000.0 * self.output_per_1k
            + calls * self.per_call
        )


@attrs.frozen
class Limits:
    """How hard one endpoint may be driven.

    Attributes:
        concurrency: requests in flight at once.
        requests_per_minute: start at most this many requests a minute (retries
            count); `None` for no limit.
        timeout: seconds allowed for one request (connect, each read, write).
    """

    concurrency: int = attrs.field(default=4, validator=_positive_int)
    requests_per_minute: float | None = attrs.field(
        default=None, validator=_optional_positive
    )
    timeout: float = attrs.field(default=60.0, validator=_positive)


@attrs.frozen
class RetryPolicy:
    """When and how long to wait before trying a request again.

    A request is retried on HTTP 429, on any 5xx, on connection errors and
    timeouts, and on a 200 whose body is not a chat completion. The wait before
    retry `r` (0-based) is `min(backoff_max, backoff_base * 2**r)` times a random
    factor in [0.5, 1] (jitter, so that clients that failed together do not retry
    together), or the server's `Retry-After` when it sends one (capped at
    `backoff_max`).

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        backoff_base: seconds of the first wait.
        backoff_max: longest single wait, in seconds.
    """

    max_retries: int = attrs.field(default=4)
    backoff_base: float = attrs.field(default=0.5, validator=_non_negative)
    backoff_max: float = attrs.field(default=30.0, validator=_non_negative)

    @max_retries.validator
    def _check_retries(self, attribute: attrs.Attribute, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`max_retries` must be an integer >= 0, got {value!r}")


@attrs.frozen
class Endpoint:
    """One model behind an OpenAI-compatible chat-completions server.

    Attributes:
        name: the model's name in output columns (its table key in the file).
        base_url: URL up to and including the API version, e.g.
            `http://127.0.0.1:8000/v1`; requests go to `base_url/chat/completions`.
        model: the `model` field sent in each request.
        api_key_env: name of the environment variable holding the API key, or
            `None` for servers that need no key.
        price: cost of a call.
        limits: concurrency, rate and timeout.
        supports_n: whether the server returns `n` choices for one request; when
            `False` the k verification samples are k requests.
        context_window: the model's context size in tokens; the question's context
            is shortened so that the prompt and the answer fit.
        answer_max_tokens: completion limit of the answer (a short answer).
        verify_max_tokens: completion limit of each verification sample.
    """

    name: str
    base_url: str = attrs.field()
    model: str = attrs.field()
    api_key_env: str | None = None
    price: Price = attrs.field(factory=Price)
    limits: Limits = attrs.field(factory=Limits)
    supports_n: bool = True
    context_window: int = attrs.field(default=4096, validator=_positive_int)
    answer_max_tokens: int = attrs.field(default=64, validator=_positive_int)
    verify_max_tokens: int = attrs.field(default=160, validator=_positive_int)

    @base_url.validator
    def _check_url(self, attribute: attrs.Attribute, value: str) -> None:
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise ValueError(
                f"`base_url` must start with http:// or https://, got {value!r}"
            )

    @model.validator
    def _check_model(self, attribute: attrs.Attribute, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError(f"`model` must be a non-empty string, got {value!r}")

    @property
    def chat_url(self) -> str:
        """The chat-completions URL of this endpoint."""
        return self.base_url.rstrip("/") + "/chat/completions"

    def api_key(self) -> str | None:
        """The key from the environment (`None` when the endpoint needs none).

        Raises:
            EndpointError: the variable named by `api_key_env` is unset or empty.
        """
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise EndpointError(
                f"endpoint {self.name!r}: environment variable "
                f"{self.api_key_env} is not set; export it with the API key "
                "(or remove `api_key_env` if the server needs no key)"
            )
        return key


@attrs.frozen
class EndpointsConfig:
    """The cascade of endpoints, cheapest first, and how to retry requests.

    Attributes:
        endpoints: the models in cascade order.
        retry: the retry policy shared by all endpoints.
        source: the file it was read from, for messages.
    """

    endpoints: tuple[Endpoint, ...]
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    source: str = "<endpoints>"

    @property
    def names(self) -> tuple[str, ...]:
        """Model names in cascade order."""
        return tuple(e.name for e in self.endpoints)

    def api_keys(self) -> dict[str, str | None]:
        """Read every endpoint's key from the environment, failing on the first gap.

        Raises:
            EndpointError: a declared key variable is unset.
        """
        return {e.name: e.api_key() for e in self.endpoints}


_MODEL_KEYS = {
    "base_url",
    "model",
    "api_key_env",
    "price",
    "limits",
    "supports_n",
    "context_window",
    "answer_max_tokens",
    "verify_max_tokens",
}
_PRICE_KEYS = {"input_per_1k", "output_per_1k", "per_call"}
_LIMIT_KEYS = {"concurrency", "requests_per_minute", "timeout"}
_RETRY_KEYS = {"max_retries", "backoff_base", "backoff_max"}
_TOP_KEYS = {"models", "retry", "cascade"}


def _fail(source: str, key: str, reason: str, fix: str) -> EndpointError:
    return EndpointError(f"{source}: key {key!r}: {reason}; {fix}")


def _check_keys(source: str, where: str, table: Any, allowed: set[str]) -> None:
    if not isinstance(table, Mapping):
        raise _fail(source, where, "must be a table", "write it as [" + where + "]")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _fail(
            source,
            f"{where}.{unknown[0]}" if where else unknown[0],
            "unknown key",
            "allowed keys are " + ", ".join(sorted(allowed)),
        )


def _build(source: str, where: str, cls: type, table: Mapping[str, Any]) -> Any:
    try:
        return cls(**table)
    except (ValueError, TypeError) as error:
        raise _fail(source, where, str(error), "fix the value") from None


def parse_endpoints(
    data: Mapping[str, Any], source: str = "<endpoints>"
) -> EndpointsConfig:
    """Build and check an `EndpointsConfig` from a parsed TOML document.

    Args:
        data: the document, as `tomllib.loads` returns it.
        source: the file name used in messages.

    Returns:
        The checked configuration.

    Raises:
        EndpointError: an unknown or missing key, or a bad value.
    """
    _check_keys(source, "", data, _TOP_KEYS)
    models = data.get("models")
    if not isinstance(models, Mapping) or not models:
        raise _fail(
            source,
            "models",
            "no models declared",
            "add one [models.NAME] table per model, cheapest first",
        )
    endpoints: dict[str, Endpoint] = {}
    for name, table in models.items():
        where = f"models.{name}"
        if not name.replace("_", "").replace("-", "").isalnum():
            raise _fail(
                source,
                where,
                "model names may use letters, digits, - and _ only",
                "rename the table",
            )
        _check_keys(source, where, table, _MODEL_KEYS)
        for required in ("base_url", "model"):
            if required not in table:
                raise _fail(
                    source, f"{where}.{required}", "missing", f"set {required} = ..."
                )
        fields = dict(table)
        _check_keys(source, f"{where}.price", fields.get("price", {}), _PRICE_KEYS)
        _check_keys(source, f"{where}.limits", fields.get("limits", {}), _LIMIT_KEYS)
        fields["price"] = _build(
            source, f"{where}.price", Price, fields.get("price", {})
        )
        fields["limits"] = _build(
            source, f"{where}.limits", Limits, fields.get("limits", {})
        )
        env = fields.get("api_key_env")
        if env is not None and (not isinstance(env, str) or not env.isidentifier()):
            raise _fail(
                source,
                f"{where}.api_key_env",
                "must be the NAME of an environment variable, not a key",
                'write e.g. api_key_env = "OPENAI_API_KEY" and export that variable',
            )
        if not isinstance(fields.get("supports_n", True), bool):
            raise _fail(
                source, f"{where}.supports_n", "must be true or false", "fix it"
            )
        endpoints[name] = _build(source, where, Endpoint, {"name": name, **fields})
    order = data.get("cascade", list(endpoints))
    if (
        not isinstance(order, list)
        or sorted(order) != sorted(endpoints)
        or len(set(order)) != len(order)
    ):
        raise _fail(
            source,
            "cascade",
            f"must list each declared model once, got {order!r}",
            "list exactly: " + ", ".join(endpoints),
        )
    retry_table = data.get("retry", {})
    _check_keys(source, "retry", retry_table, _RETRY_KEYS)
    retry = _build(source, "retry", RetryPolicy, retry_table)
    return EndpointsConfig(
        endpoints=tuple(endpoints[n] for n in order), retry=retry, source=source
    )


def load_endpoints(path: str | os.PathLike[str]) -> EndpointsConfig:
    """Read and check an endpoints TOML file.

    Args:
        path: the file.

    Returns:
        The configuration, cascade cheapest first.

    Raises:
        EndpointError: the file is missing, is not TOML, or declares something
            wrong; the message names the file and the key.

    Example:
        >>> config = load_endpoints("examples/endpoints.toml")  # doctest: +SKIP
        >>> config.names  # doctest: +SKIP
        ('small', 'large')
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise EndpointError(
            f"{source}: cannot read the endpoints file ({error.strerror}); "
            "pass an existing file to --endpoints"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise EndpointError(
            f"{source}: not valid TOML ({error}); fix the syntax"
        ) from None
    return parse_endpoints(data, source)
