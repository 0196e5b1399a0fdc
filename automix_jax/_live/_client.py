"""An asyncio client for OpenAI-compatible chat completions, with a journal.

`ChatClient` sends `POST {base_url}/chat/completions` through one
`httpx.AsyncClient`, keeping each endpoint within its concurrency and
requests-per-minute limits, retrying 429, 5xx, connection errors, timeouts and
malformed bodies with exponential backoff and jitter (honouring `Retry-After`), and
writing each paid response to the `Journal` before returning it. A request whose key
is already journaled is answered from the journal without touching the network.

Logging: one info line per HTTP attempt on `logging.getLogger("automix_jax")`
(endpoint, model, status, attempt, seconds, tokens). API keys only ever travel in the
`Authorization` header; every message and log line is scrubbed of them as well.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import httpx

from .._errors import EndpointError
from ._endpoints import Endpoint, EndpointsConfig
from ._journal import Journal, JournalEntry, prompt_hash, request_key

__all__ = ["ChatClient", "ChatError", "ChatResponse", "ClientStats"]

logger = logging.getLogger("automix_jax")

# Characters per token, for estimates when a server returns no `usage` and for
# fitting a context into a window before any request is made.
CHARS_PER_TOKEN = 4.0


class ChatError(EndpointError):
    """A request failed for good (retries spent, or an error not worth retrying).

    Attributes:
        reason: one line saying what went wrong, free of keys.
        attempts: how many attempts were made.
    """

    def __init__(self, reason: str, attempts: int):
        self.reason = reason
        self.attempts = attempts
        super().__init__(reason)


@attrs.frozen
class ChatResponse:
    """The choices of one (possibly journaled) request.

    Attributes:
        texts: content of each choice, in order.
        input_tokens: prompt tokens billed.
        output_tokens: completion tokens billed.
        cost: the request's price.
        from_journal: answered from the journal, so paid in an earlier run.
    """

    texts: tuple[str, ...]
    input_tokens: int
    output_tokens: int
    cost: float
    from_journal: bool


@attrs.define
class ClientStats:
    """Counters of one run (mutable, owned by the client)."""

    attempts: int = 0
    retries: int = 0
    paid: int = 0
    reused: int = 0
    spent: float = 0.0


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


@attrs.define
class _Lane:
    """Per-endpoint admission: a semaphore and a start-time spacing for the rate."""

    semaphore: asyncio.Semaphore
    interval: float
    next_start: float = 0.0

    async def wait_turn(self) -> None:
        if self.interval <= 0:
            return
        now = time.monotonic()
        start = max(now, self.next_start)
        self.next_start = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def _display_url(url: str) -> str:
    """The URL without any user:password part, for logs and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _estimate_tokens(text: str) -> int:
    return max(1, round(len(text) / CHARS_PER_TOKEN))


class ChatClient:
    """Chat completions against the endpoints of a cascade, through a journal.

    Use it as an async context manager:

        async with ChatClient(config, journal) as client:
            response = await client.complete(endpoint, messages, temperature=0.0,
                                              max_tokens=64)

    Args:
        config: the endpoints and the retry policy.
        journal: where paid responses go before they are used.
        keys: API key per endpoint name (`None` for none); read from the
            environment with `config.api_keys()` when not given.
        rng: random source of the backoff jitter.
        on_paid: called with the cost of each newly paid response.
    """

    def __init__(
        self,
        config: EndpointsConfig,
        journal: Journal,
        *,
        keys: Mapping[str, str | None] | None = None,
        rng: random.Random | None = None,
        on_paid: Callable[[float], None] | None = None,
    ):
        self.config = config
        self.journal = journal
        self._keys = dict(config.api_keys() if keys is None else keys)
        self._secrets = tuple(k for k in self._keys.values() if k)
        self._rng = rng or random.Random()
        self._on_paid = on_paid
        self._lanes: dict[str, _Lane] = {}
        self._inflight: dict[str, asyncio.Future[ChatResponse]] = {}
        self._http: httpx.AsyncClient | None = None
        self.stats = ClientStats()

    async def __aenter__(self) -> ChatClient:
        total = sum(e.limits.concurrency for e in self.config.endpoints)
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=total, max_keepalive_connections=total),
            trust_env=False,
        )
        for endpoint in self.config.endpoints:
            rpm = endpoint.limits.requests_per_minute
            self._lanes[endpoint.name] = _Lane(
                semaphore=asyncio.Semaphore(endpoint.limits.concurrency),
                interval=60.0 / rpm if rpm else 0.0,
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def redact(self, text: str) -> str:
        """`text` with every API key replaced by `***`."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _headers(self, endpoint: Endpoint) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = self._keys.get(endpoint.name)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def preflight(self) -> None:
        """Check that every endpoint answers at all, before anything is paid for.

        Sends one free `GET {base_url}/models` per endpoint. Any HTTP answer but
        401/403 counts as reachable (some servers have no `/models`).

        Raises:
            EndpointError: an endpoint cannot be connected to, times out, or
                refuses the key.
        """
        assert self._http is not None, "use ChatClient as `async with`"
        for endpoint in self.config.endpoints:
            url = endpoint.base_url.rstrip("/") + "/models"
            shown = _display_url(endpoint.base_url)
            try:
                response = await self._http.get(
                    url,
                    headers=self._headers(endpoint),
                    timeout=min(endpoint.limits.timeout, 10.0),
                )
            except httpx.TransportError as error:
                raise EndpointError(
                    self.redact(
                        f"endpoint {endpoint.name!r} at {shown} is unreachable "
                        f"({type(error).__name__}: {error or 'no detail'}); check "
                        "base_url and that the server is running"
                    )
                ) from None
            if response.status_code in (401, 403):
                source = endpoint.api_key_env or "no key"
                raise EndpointError(
                    f"endpoint {endpoint.name!r} at {shown} refused the API key "
                    f"(HTTP {response.status_code}, key from {source}); check "
                    "the key"
                )
            logger.info(
                "preflight %s %s: HTTP %d", endpoint.name, shown, response.status_code
            )

    async def complete(
        self,
        endpoint: Endpoint,
        messages: Sequence[Mapping[str, str]],
        *,
        temperature: float,
        max_tokens: int,
        n: int = 1,
        stop: Sequence[str] | None = None,
        replicate: int = 0,
    ) -> ChatResponse:
        """One chat-completions request, from the journal when already paid.

        Args:
            endpoint: where to send it.
            messages: the chat messages.
            temperature: sampling temperature.
            max_tokens: completion limit.
            n: choices asked for (a server may return fewer).
            stop: stop sequences, if any.
            replicate: number of this request among identical ones.

        Returns:
            The response.

        Raises:
            ChatError: the request failed after the configured retries, or with
                an error that retrying cannot fix (an HTTP 4xx other than 429).
        """
        params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        if n != 1:
            params["n"] = n
        if stop:
            params["stop"] = list(stop)
        digest = prompt_hash(messages)
        key = request_key(
            endpoint.name, endpoint.base_url, endpoint.model, digest, params, replicate
        )
        entry = self.journal.get(key)
        if entry is not None:
            self.stats.reused += 1
            return ChatResponse(
                entry.texts, entry.input_tokens, entry.output_tokens, entry.cost, True
            )
        # Two queries asking the very same thing at once share one paid request.
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ChatResponse] = (
            asyncio.get_running_loop().create_future()
        )
        self._inflight[key] = future
        try:
            entry = await self._send(endpoint, messages, params)
            meta = {
                "endpoint": endpoint.name,
                "model": endpoint.model,
                "prompt_hash": digest,
                "params": params,
                "replicate": replicate,
            }
            self.journal.append(key, entry, meta)
            self.stats.paid += 1
            self.stats.spent += entry.cost
            if self._on_paid is not None:
                self._on_paid(entry.cost)
            response = ChatResponse(
                entry.texts, entry.input_tokens, entry.output_tokens, entry.cost, False
            )
            future.set_result(response)
            return response
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            # Mark the exception as retrieved when nobody else awaits it.
            future.exception()
            raise
        finally:
            del self._inflight[key]

    async def _send(
        self,
        endpoint: Endpoint,
        messages: Sequence[Mapping[str, str]],
        params: Mapping[str, Any],
    ) -> JournalEntry:
        assert self._http is not None, "use ChatClient as `async with`"
        lane = self._lanes[endpoint.name]
        body = {"model": endpoint.model, "messages": list(messages), **params}
        retry = self.config.retry
        attempts = retry.max_retries + 1
        shown = _display_url(endpoint.chat_url)
        for attempt in range(attempts):
            try:
                async with lane.semaphore:
                    await lane.wait_turn()
                    return await self._attempt(
                        endpoint, body, messages, shown, attempt + 1, attempts
                    )
            except _Retryable as failure:
                if attempt + 1 == attempts:
                    raise ChatError(
                        self.redact(
                            f"{endpoint.name}: {failure.reason} after {attempts} "
                            f"attempt{'s' if attempts > 1 else ''}"
                        ),
                        attempts,
                    ) from None
                self.stats.retries += 1
                backoff = min(retry.backoff_max, retry.backoff_base * 2**attempt)
                wait = backoff * self._rng.uniform(0.5, 1.0)
                if failure.retry_after is not None:
                    wait = min(retry.backoff_max, failure.retry_after)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        endpoint: Endpoint,
        body: Mapping[str, Any],
        messages: Sequence[Mapping[str, str]],
        shown: str,
        attempt: int,
        attempts: int,
    ) -> JournalEntry:
        assert self._http is not None
        self.stats.attempts += 1
        started = time.monotonic()

        def log(status: str, extra: str = "") -> None:
            logger.info(
                "POST %s endpoint=%s model=%s status=%s attempt=%d/%d %.2fs%s",
                shown,
                endpoint.name,
                endpoint.model,
                status,
                attempt,
                attempts,
                time.monotonic() - started,
                self.redact(extra),
            )

        try:
            response = await self._http.post(
                endpoint.chat_url,
                json=body,
                headers=self._headers(endpoint),
                timeout=endpoint.limits.timeout,
            )
        except httpx.TimeoutException as error:
            log("timeout")
            raise _Retryable(
                f"timed out after {endpoint.limits.timeout:g}s ({type(error).__name__})"
            ) from None
        except httpx.TransportError as error:
            log("connection-error", f" {type(error).__name__}")
            raise _Retryable(
                f"connection error ({type(error).__name__}: {error or 'no detail'})"
            ) from None
        status = response.status_code
        if status == 429 or status >= 500:
            log(str(status))
            kind = "rate limited" if status == 429 else "server error"
            raise _Retryable(
                f"HTTP {status} ({kind})",
                _parse_retry_after(response.headers.get("Retry-After")),
            )
        if status != 200:
            log(str(status))
            snippet = " ".join(response.text.split())[:200]
            raise ChatError(
                self.redact(
                    f"{endpoint.name}: HTTP {status} from {shown} (not retried): "
                    f"{snippet or 'empty body'}"
                ),
                attempt,
            )
        try:
            entry = self._parse(endpoint, response.content, messages)
        except _Retryable as failure:
            log("200-malformed", f" {failure.reason}")
            raise
        log(
            "200",
            f" in={entry.input_tokens} out={entry.output_tokens} "
            f"choices={len(entry.texts)}",
        )
        return entry

    def _parse(
        self,
        endpoint: Endpoint,
        content: bytes,
        messages: Sequence[Mapping[str, str]],
    ) -> JournalEntry:
        try:
            data = json.loads(content)
            choices = data["choices"]
            texts = tuple(str(c["message"].get("content") or "") for c in choices)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise _Retryable("malformed response (not a chat completion)") from None
        if not texts:
            raise _Retryable("malformed response (no choices)")
        usage = data.get("usage") if isinstance(data, dict) else None
        try:
            input_tokens = int(usage["prompt_tokens"])
            output_tokens = int(usage["completion_tokens"])
            estimated = False
        except (TypeError, KeyError, ValueError):
            # No usage block: bill by a characters-per-token estimate, and say so.
            input_tokens = _estimate_tokens("".join(m["content"] for m in messages))
            output_tokens = sum(_estimate_tokens(t) for t in texts)
            estimated = True
        cost = endpoint.price.cost(input_tokens, output_tokens)
        return JournalEntry(texts, input_tokens, output_tokens, cost, estimated)
