"""An append-only journal of paid responses, so that a run can resume for free.

Every chat-completions response the run pays for is written to a JSON Lines file,
flushed and `fsync`ed, *before* the runner uses it. A record is keyed by the
endpoint (name, base URL), the served model, the hash of the prompt messages, the
sampling parameters and a replicate number (two identical requests at temperature 1
are two different paid samples). When the run starts again, every key already in
the journal is answered from it without a request, so a run killed at any moment,
`kill -9` included, resumes where it stopped and pays for nothing twice.

The only response that can be lost is one the process received but had not yet
finished writing when it was killed; a torn last line is cut off on open. The
journal never holds an API key or a request header.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from .._errors import EndpointError

__all__ = ["Journal", "JournalEntry", "prompt_hash", "request_key"]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def prompt_hash(messages: Sequence[Mapping[str, str]]) -> str:
    """SHA-256 (hex) of the chat messages, in a canonical JSON form."""
    return hashlib.sha256(_canonical(list(messages)).encode("utf-8")).hexdigest()


def request_key(
    endpoint: str,
    base_url: str,
    model: str,
    messages_hash: str,
    params: Mapping[str, Any],
    replicate: int = 0,
) -> str:
    """The journal key of one paid request (a SHA-256 hex digest).

    Args:
        endpoint: the endpoint's name in the endpoints file.
        base_url: its base URL.
        model: the `model` sent.
        messages_hash: `prompt_hash` of the messages.
        params: the sampling parameters (temperature, max_tokens, n, stop, ...).
        replicate: which of several identical requests this is.
    """
    material = _canonical(
        {
            "endpoint": endpoint,
            "base_url": base_url,
            "model": model,
            "prompt": messages_hash,
            "params": dict(params),
            "replicate": replicate,
        }
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


@attrs.frozen
class JournalEntry:
    """One paid response.

    Attributes:
        texts: the message content of each returned choice.
        input_tokens: prompt tokens billed (from `usage`, or estimated).
        output_tokens: completion tokens billed.
        cost: what the request cost, by the endpoint's price.
        estimated: whether the token counts are estimates (no `usage` returned).
    """

    texts: tuple[str, ...]
    input_tokens: int
    output_tokens: int
    cost: float
    estimated: bool = False


class Journal:
    """A JSON Lines journal of paid responses, read on open and appended to.

    Args:
        path: the journal file; created when missing.

    Raises:
        EndpointError: the file cannot be opened, or a line other than a torn
            last one is not a journal record.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._entries: dict[str, JournalEntry] = {}
        self._file: IO[str] | None = None
        self._load()
        self.reused = 0
        self.written = 0

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        # A kill while writing can leave a torn last line: cut it off so that the
        # next record starts on a line of its own.
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
            data = data[:end]
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                entry = JournalEntry(
                    texts=tuple(record["texts"]),
                    input_tokens=int(record["input_tokens"]),
                    output_tokens=int(record["output_tokens"]),
                    cost=float(record["cost"]),
                    estimated=bool(record.get("estimated", False)),
                )
                self._entries[record["key"]] = entry
            except (ValueError, KeyError, TypeError):
                raise EndpointError(
                    f"{self.path}:{number}: not a journal record; the journal was "
                    "edited or is another file: move it away to start afresh"
                ) from None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> JournalEntry | None:
        """The journaled response for `key`, or `None`."""
        entry = self._entries.get(key)
        if entry is not None:
            self.reused += 1
        return entry

    def append(self, key: str, entry: JournalEntry, meta: Mapping[str, Any]) -> None:
        """Write one paid response durably (write, flush, fsync), then index it.

        Args:
            key: `request_key` of the request.
            entry: the response.
            meta: what to record beside it for a reader (endpoint, model, prompt
                hash, parameters); never a header or a key.
        """
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        record = {
            "key": key,
            **meta,
            "texts": list(entry.texts),
            "input_tokens": entry.input_tokens,
            "output_tokens": entry.output_tokens,
            "cost": entry.cost,
            "estimated": entry.estimated,
        }
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._entries[key] = entry
        self.written += 1

    def close(self) -> None:
        """Close the file (entries stay readable)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
