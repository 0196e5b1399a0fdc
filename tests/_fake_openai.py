"""A scripted OpenAI-compatible chat-completions server on loopback, for tests.

`FakeOpenAI` runs a `ThreadingHTTPServer` on 127.0.0.1 in a background thread. It
answers `POST /v1/chat/completions` (with `n` and `usage`) and `GET /v1/models`.
Answers come from a table keyed by (model, question); a verification request (one
whose prompt contains "Proposed answer:") gets verdict texts from another table.
Faults can be queued: HTTP 429 with Retry-After, HTTP 500, a stall past the client's
timeout, a malformed body, a dropped connection. It counts requests received and
responses delivered ("paid") per (model, prompt hash, n, temperature).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

RequestKey = tuple[str, str, int, float]


def messages_hash(messages: list[dict[str, str]]) -> str:
    text = json.dumps(messages, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@attrs.define
class Fault:
    """A failure to inject into matching requests.

    Attributes:
        kind: "429", "500", "stall", "malformed", "drop" or "usage-missing".
        match: substring of the last user message that selects requests ("" for
            any request).
        times: how many matching requests it hits (-1: all of them).
        retry_after: Retry-After header of a 429, in seconds (None: no header).
        stall: seconds a stalled request is held before the connection is closed.
    """

    kind: str
    match: str = ""
    times: int = 1
    retry_after: float | None = None
    stall: float = 5.0


def _question(prompt: str) -> str:
    found = re.findall(r"Question: (.*?)\n", prompt)
    return found[-1].strip() if found else ""


def _verdict_text(verdict: bool | None) -> str:
    if verdict is None:
        return "Evaluation: hard to say from the context."
    word = "correct" if verdict else "incorrect"
    return f"Evaluation: checked against the context.\nVerdict: {word}"


class FakeOpenAI:
    """The server. Use as a context manager; `base_url` ends in `/v1`.

    Args:
        answers: answer text per (model, question).
        verdicts: verdicts per (model, question) for verification samples; a
            request for n samples gets the first n (cycled); `None` writes a
            sample with no verdict. Missing entries answer "correct".
        api_key: when set, requests must carry `Bearer api_key`; others get a 401
            whose body echoes the Authorization header they sent.
        usage: whether responses carry a `usage` block.
        max_n: most choices returned for one request (a server that caps n).
        delay: seconds each chat request takes.
    """

    def __init__(
        self,
        answers: dict[tuple[str, str], str] | None = None,
        verdicts: dict[tuple[str, str], list[bool | None]] | None = None,
        *,
        api_key: str | None = None,
        usage: bool = True,
        max_n: int = 64,
        delay: float = 0.0,
    ):
        self.answers = dict(answers or {})
        self.verdicts = dict(verdicts or {})
        self.api_key = api_key
        self.usage = usage
        self.max_n = max_n
        self.delay = delay
        self.faults: list[Fault] = []
        self.received: Counter[RequestKey] = Counter()
        self.paid: Counter[RequestKey] = Counter()
        self.arrivals: list[tuple[float, str]] = []
        self.auth_seen: list[str] = []
        self.inflight: Counter[str] = Counter()
        self.max_inflight: Counter[str] = Counter()
        self.hold_after: int | None = None
        self.held = 0
        self._release = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def paid_total(self) -> int:
        with self._lock:
            return sum(self.paid.values())

    def release(self) -> None:
        """Let held requests go (they are dropped unanswered) and stop holding."""
        self.hold_after = None
        self._release.set()

    def reset_counts(self) -> None:
        with self._lock:
            self.received.clear()
            self.paid.clear()
            self.arrivals.clear()

    def __enter__(self) -> FakeOpenAI:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._release.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def _take_fault(self, prompt: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times != 0 and fault.match in prompt:
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def _choices(self, model: str, prompt: str, n: int) -> list[str]:
        question = _question(prompt)
        if "Proposed answer:" in prompt:
            pattern = self.verdicts.get((model, question), [True])
            return [_verdict_text(pattern[i % len(pattern)]) for i in range(n)]
        return [self.answers.get((model, question), "I do not know")] * n

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def _authorised(self) -> bool:
                auth = self.headers.get("Authorization", "")
                fake.auth_seen.append(auth)
                if fake.api_key is None or auth == f"Bearer {fake.api_key}":
                    return True
                body = {"error": {"message": f"bad credentials: {auth}"}}
                self._send(401, json.dumps(body).encode(), {})
                return False

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorised():
                    return
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, b'{"object": "list", "data": []}', {})
                else:
                    self._send(404, b'{"error": "not found"}', {})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if not self._authorised():
                    return
                if not self.path.endswith("/chat/completions"):
                    self._send(404, b'{"error": "not found"}', {})
                    return
                body = json.loads(raw)
                model = body["model"]
                messages = body["messages"]
                prompt = messages[-1]["content"]
                n = int(body.get("n", 1))
                key = (
                    model,
                    messages_hash(messages),
                    n,
                    float(body.get("temperature", 1.0)),
                )
                with fake._lock:
                    fake.received[key] += 1
                    fake.arrivals.append((time.monotonic(), _question(prompt)))
                    fake.inflight[model] += 1
                    fake.max_inflight[model] = max(
                        fake.max_inflight[model], fake.inflight[model]
                    )
                try:
                    self._serve(body, model, messages, prompt, n, key)
                finally:
                    with fake._lock:
                        fake.inflight[model] -= 1

            def _serve(
                self,
                body: dict[str, Any],
                model: str,
                messages: list[dict[str, str]],
                prompt: str,
                n: int,
                key: RequestKey,
            ) -> None:
                if fake.hold_after is not None and fake.paid_total >= fake.hold_after:
                    with fake._lock:
                        fake.held += 1
                    fake._release.wait(30)
                    self.close_connection = True
                    return
                fault = fake._take_fault(prompt)
                if fault is not None:
                    if fault.kind == "429":
                        headers = {}
                        if fault.retry_after is not None:
                            headers["Retry-After"] = f"{fault.retry_after:g}"
                        self._send(429, b'{"error": "slow down"}', headers)
                        return
                    if fault.kind == "500":
                        self._send(500, b'{"error": "internal"}', {})
                        return
                    if fault.kind == "malformed":
                        self._send(200, b'{"choices": [{"message": ', {})
                        return
                    if fault.kind in ("stall", "drop"):
                        if fault.kind == "stall":
                            fake._closing.wait(fault.stall)
                        self.close_connection = True
                        return
                if fake.delay:
                    time.sleep(fake.delay)
                texts = fake._choices(model, prompt, min(n, fake.max_n))
                answer: dict[str, Any] = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": i,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                        for i, text in enumerate(texts)
                    ],
                }
                if fake.usage and not (fault and fault.kind == "usage-missing"):
                    prompt_chars = sum(len(m["content"]) for m in messages)
                    answer["usage"] = {
                        "prompt_tokens": prompt_chars // 4,
                        "completion_tokens": sum(len(t) // 4 + 1 for t in texts),
                        "total_tokens": 0,
                    }
                self._send(200, json.dumps(answer).encode(), {})
                with fake._lock:
                    fake.paid[key] += 1

        return Handler


def write_endpoints(
    path: Any,
    base_url: str,
    *,
    models: tuple[str, ...] = ("small", "large"),
    api_key_env: str | None = None,
    retry: str = "max_retries = 2\nbackoff_base = 0.01\nbackoff_max = 0.5",
    timeout: float = 2.0,
    concurrency: int = 4,
    rpm: float | None = None,
    supports_n: bool = True,
    extra: str = "",
) -> None:
    """Write an endpoints TOML file for `models` all served by one fake server."""
    prices = {"small": (0.1, 0.2), "large": (5.0, 10.0)}
    text = f"[retry]\n{retry}\n\n"
    for name in models:
        pin, pout = prices.get(name, (1.0, 1.0))
        text += (
            f"[models.{name}]\nbase_url = {base_url!r}\nmodel = '{name}-m'\n"
            f"supports_n = {'true' if supports_n else 'false'}\n"
            f"price = {{ input_per_1k = {pin}, output_per_1k = {pout} }}\n"
            f"limits = {{ concurrency = {concurrency}, timeout = {timeout}"
            + (f", requests_per_minute = {rpm}" if rpm else "")
            + " }\n"
        )
        if api_key_env:
            text += f"api_key_env = '{api_key_env}'\n"
        text += extra + "\n"
    with open(path, "w") as handle:
        handle.write(text)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
