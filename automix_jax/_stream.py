"""Routing and evaluating inputs larger than memory, one fixed-size chunk at a time.

A reader turns a file into `Chunk`s of exactly `chunk_size` rows: JSON Lines and CSV
are parsed line by line, NumPy `.npy` / `.npz` files are read through memory maps of
one chunk's rows at a time, and Parquet (when `pyarrow` is installed) batch by batch.
JSON Lines, CSV and Parquet rows are checked by the same code as the in-memory
loaders (`automix_jax.from_records`), so an error names the file, line, column,
value and fix in the same words.

The last chunk is padded to `chunk_size` with masked rows, so every chunk has the
same shape and one compiled function routes them all (`trace_count` counts the
traces). Chunks are routed one after another and only the running sums are kept,
so memory does not grow with the input.

Sums lose nothing to the number of rows: each chunk's per-row values are added
exactly on the host and kept as an exact float expansion across chunks
(`ExactSum`), rounded once when read; counts are int64. A float32 running sum, by
contrast, stops growing once the total reaches 2^24 times a row's value (some tens
of millions of rows), and a float64 one drifts by about one rounding per chunk.

Shape legend:
    c  rows per chunk (`chunk_size`, the padded size of every chunk)
    M  models in the cascade, cheapest first
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, TextIO

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Bool, Float, Int, PRNGKeyArray

from ._data import Columns, _csv_records, _jsonl_records, detect_models, from_records
from ._errors import DataError, PolicyError
from ._metrics import Baseline, Lift, Summary, ibc_lift
from ._observations import Observations
from ._policies import Params, Policy
from ._routing import _outcome
from ._shard import QUERY_AXIS

DEFAULT_CHUNK_SIZE = 65536


class Chunk(NamedTuple):
    """`chunk_size` rows of an input, the last ones padding when `count < c`.

    The arrays of successive chunks from one reader share memory: use a chunk
    before asking for the next one.

    Attributes:
        scores: `[c, M]` float32 quality of each answer (NaN where a row has none).
        confidences: `[c, M]` float32 verifier confidences.
        costs: `[c, M]` float32 cost of running each model.
        verifier_costs: `[M]` float32 cost of one verification per model.
        escalate: `[c]` bool, the fixed-answer override.
        ids: `[count]` the real rows' identifiers (strings).
        count: how many of the c rows are real (the first `count`).
        start: the index of the first row in the whole input.
    """

    scores: Float[np.ndarray, "chunk models"]
    confidences: Float[np.ndarray, "chunk models"]
    costs: Float[np.ndarray, "chunk models"]
    verifier_costs: Float[np.ndarray, " models"]
    escalate: Bool[np.ndarray, " chunk"]
    ids: np.ndarray
    count: int
    start: int

    @property
    def valid(self) -> Bool[np.ndarray, " chunk"]:
        """`[c]` True for the real rows."""
        return np.arange(self.confidences.shape[0]) < self.count


class _Buffers:
    """The fixed `[c, ...]` arrays a reader fills again for every chunk."""

    def __init__(self, size: int, m: int):
        self.size = size
        self.scores = np.zeros((size, m), np.float32)
        self.confidences = np.ones((size, m), np.float32)
        self.costs = np.zeros((size, m), np.float32)
        self.escalate = np.zeros((size,), bool)

    def fill(self, scores, confidences, costs, verifier_costs, escalate, ids, start):
        count = len(ids)
        # Padding rows: confidence 1 (no policy escalates it), score and cost 0.
        for buf, value, pad in (
            (self.scores, scores, 0.0),
            (self.confidences, confidences, 1.0),
            (self.costs, costs, 0.0),
            (self.escalate, escalate, False),
        ):
            buf[:count] = value
            buf[count:] = pad
        verifier = np.asarray(verifier_costs, np.float32)
        return Chunk(
            self.scores,
            self.confidences,
            self.costs,
            verifier,
            self.escalate,
            np.asarray(ids, dtype=object),
            count,
            start,
        )


def _check_chunk_size(chunk_size: int) -> int:
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise DataError(
            f"`chunk_size` must be a whole number >= 1, got {chunk_size!r}",
            fix="pass a chunk size such as 65536",
        )
    return int(chunk_size)


def read_chunks(
    path: str | os.PathLike,
    models: Sequence[str] | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    costs: Sequence[float] | None = None,
    verifier_cost: float | Sequence[float] = 1.0,
    columns: Columns | None = None,
    escalate_answers: Iterable[str] = (),
    require_labels: bool = True,
) -> Iterator[Chunk]:
    """Reads `path` in chunks of `chunk_size` rows, never the whole file at once.

    Formats, by extension:

    * `.jsonl` / `.json` / `.ndjson`, `.csv`: AutoMix-style rows (see
      `automix_jax.load`), parsed line by line and checked by `from_records`.
    * `.npz` (written by `numpy.savez`, not compressed): arrays `confidences`
      `[n, M]`, and optionally `scores` `[n, M]`, `costs` `[n, M]`, `escalate`
      `[n]` and `ids` `[n]`; each chunk's rows are read through a memory map.
    * `.npy`: a `[n, M]` array of confidences (rows to route; no scores).
    * `.parquet`: AutoMix-style columns, batch by batch (needs `pyarrow`).

    Args:
        path: the input file.
        models: model names, cheapest first (read off the columns of a JSON Lines
            or CSV file when None; required for NumPy files).
        chunk_size: c, the rows per chunk.
        costs, verifier_cost, columns: as in `automix_jax.from_records`.
        escalate_answers: first-model answers that always escalate.
        require_labels: whether rows must carry scores and a split (False to
            route rows that have neither).

    Yields:
        `Chunk`s in input order; the last one is padded.

    Raises:
        DataError: a row, a setting or the file cannot be used.
    """
    path = os.fspath(path)
    chunk_size = _check_chunk_size(chunk_size)
    if not os.path.exists(path):
        raise DataError("the file does not exist", file=path, fix="check the path")
    columns = columns or Columns()
    if path.endswith((".npz", ".npy")):
        if models is None:
            raise DataError(
                "a NumPy file does not name its models",
                file=path,
                fix="name them with --models small,large",
            )
        yield from _numpy_chunks(
            path, tuple(models), chunk_size, costs, verifier_cost, require_labels
        )
        return
    if path.endswith(".csv"):
        records = _csv_records(path)
    elif path.endswith((".jsonl", ".json", ".ndjson")):
        records = _jsonl_records(path)
    elif path.endswith(".parquet"):
        records = _parquet_records(path, chunk_size)
    else:
        raise DataError(
            "unknown file type",
            file=path,
            fix="give a .jsonl, .csv, .npz, .npy or .parquet file",
        )
    if models is None:
        if path.endswith(".parquet"):
            raise DataError(
                "the models of a Parquet file are not detected",
                file=path,
                fix="name them with --models small,large",
            )
        models = detect_models(path, columns)
    wanted = frozenset(escalate_answers)
    buffers = _Buffers(chunk_size, len(models))
    start = 0
    while True:
        batch = list(itertools.islice(records, chunk_size))
        if not batch:
            return
        data = from_records(
            batch,
            models,
            costs=costs,
            verifier_cost=verifier_cost,
            columns=columns,
            source=path,
            require_labels=require_labels,
        )
        obs = data.observations
        escalate = np.fromiter(
            (answer in wanted for answer in data.answers[:, 0]), bool, len(data)
        )
        yield buffers.fill(
            np.asarray(obs.scores),
            np.asarray(obs.confidences),
            np.asarray(obs.costs),
            np.asarray(obs.verifier_costs),
            escalate,
            data.ids,
            start,
        )
        start += len(data)


def _parquet_records(path: str, batch_size: int):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            "reading Parquet needs pyarrow, which is not installed",
            file=path,
            fix="pip install pyarrow, or convert the file to JSON Lines",
        ) from None
    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            number += 1
            yield number, row


class _Member(NamedTuple):
    """Where one array's data lies in a `.npy` file or an uncompressed `.npz`."""

    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool


def _npy_header(handle, path: str, name: str) -> tuple[tuple, bool, np.dtype]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    else:  # pragma: no cover - numpy writes no other version
        raise DataError(f"unknown .npy format version {version}", file=path)
    if dtype.hasobject:
        raise DataError(
            f"the array {name!r} holds Python objects, which cannot be memory-mapped",
            file=path,
            fix="save strings as a fixed-width str array (numpy converts lists of "
            "str to one)",
        )
    return shape, fortran, dtype


def _numpy_members(path: str) -> dict[str, _Member]:
    """Locates every array of a `.npy` or uncompressed `.npz` without reading it."""
    if path.endswith(".npy"):
        with open(path, "rb") as handle:
            shape, fortran, dtype = _npy_header(handle, path, "confidences")
            return {"confidences": _Member(handle.tell(), shape, dtype, fortran)}
    members = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                raise DataError(
                    f"the array {name!r} is compressed and cannot be memory-mapped",
                    file=path,
                    fix="save with numpy.savez, not numpy.savez_compressed",
                )
            # A zip member's data follows its 30-byte local header, the file
            # name and an extra field whose lengths are at bytes 26..29.
            handle.seek(info.header_offset)
            header = handle.read(30)
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            handle.seek(info.header_offset + 30 + name_len + extra_len)
            shape, fortran, dtype = _npy_header(handle, path, name)
            members[name] = _Member(handle.tell(), shape, dtype, fortran)
    return members


def _read_rows(path: str, member: _Member, start: int, stop: int) -> np.ndarray:
    """Rows `[start, stop)` of a memory-mapped array, copied out of the map.

    A fresh map of just these rows is made and dropped for every chunk, so the
    pages of rows already routed do not stay resident.
    """
    if member.fortran and len(member.shape) > 1:
        raise DataError(
            "a Fortran-ordered array cannot be read by rows",
            file=path,
            fix="save np.ascontiguousarray(array)",
        )
    row_bytes = member.dtype.itemsize * math.prod(member.shape[1:])
    view = np.memmap(
        path,
        dtype=member.dtype,
        mode="r",
        offset=member.offset + start * row_bytes,
        shape=(stop - start, *member.shape[1:]),
    )
    rows = np.array(view)
    del view
    return rows


def _numpy_chunks(path, models, chunk_size, costs, verifier_cost, require_labels):
    members = _numpy_members(path)
    m = len(models)
    if "confidences" not in members:
        raise DataError(
            "the archive has no array 'confidences'",
            file=path,
            fix="save the [rows, models] confidences as confidences=...",
        )
    n = members["confidences"].shape[0]
    for name, member in members.items():
        want = {"escalate": (n,), "ids": (n,)}.get(name, (n, m))
        if name in ("confidences", "scores", "costs", "escalate", "ids") and (
            tuple(member.shape) != want
        ):
            raise DataError(
                f"the array {name!r} has shape {tuple(member.shape)}, expected {want}",
                file=path,
                fix=f"give one value per row{'' if len(want) == 1 else ' and model'}"
                f" ({m} models: {', '.join(models)})",
            )
    if require_labels and "scores" not in members:
        raise DataError(
            "the archive has no array 'scores'",
            file=path,
            fix="save the [rows, models] scores as scores=..., or route without "
            "evaluating",
        )
    if "costs" not in members:
        if costs is None and m != 2:
            raise DataError(
                f"{m} models need {m} costs",
                file=path,
                fix="pass --costs with one number per model, cheapest first",
            )
        model_costs = np.asarray((1.0, 50.0) if costs is None else costs, np.float32)
        if model_costs.shape != (m,):
            raise DataError(
                f"{model_costs.size} costs for {m} models",
                file=path,
                fix="pass one cost per model, cheapest first",
            )
    verifier = np.broadcast_to(np.asarray(verifier_cost, np.float32), (m,))
    buffers = _Buffers(chunk_size, m)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        conf = _read_rows(path, members["confidences"], start, stop)
        _check_range(conf, path, "confidences", start, models, 0.0, 1.0)
        if "scores" in members:
            scores = _read_rows(path, members["scores"], start, stop)
            _check_range(scores, path, "scores", start, models, -math.inf, math.inf)
        else:
            scores = np.nan
        if "costs" in members:
            row_costs = _read_rows(path, members["costs"], start, stop)
            _check_range(row_costs, path, "costs", start, models, 0.0, math.inf)
        else:
            row_costs = model_costs
        if "escalate" in members:
            escalate = _read_rows(path, members["escalate"], start, stop)
        else:
            escalate = False
        if "ids" in members:
            ids = _read_rows(path, members["ids"], start, stop).astype(str)
        else:
            ids = np.arange(start, stop).astype(str)
        yield buffers.fill(scores, conf, row_costs, verifier, escalate, ids, start)


def _check_range(values, path, name, start, models, low, high) -> None:
    """Refuses non-finite values or values outside [low, high], naming the first."""
    values = np.asarray(values, np.float64)
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    if not bad.any():
        return
    row, col = np.argwhere(bad)[0]
    what = "not finite" if not np.isfinite(values[row, col]) else "out of range"
    raise DataError(
        f"row {start + row} (0-based): the {name[:-1]} is {what}"
        + ("" if math.isinf(high) and math.isinf(low) else f" [{low:g}, {high:g}]"),
        file=path,
        column=f"{name}[:, {col}] ({models[col]})",
        value=float(values[row, col]),
        fix="fix or drop the row",
    )


class ExactSum:
    """A running float64 sum of arrays' rows that loses nothing to rounding.

    Each `add` sums the new rows as a pair of floats, `hi = fsum(rows)` (correctly
    rounded) and `lo = fsum(rows - hi)` (what `hi` could not hold), so a chunk
    loses at most half an ulp of `lo`, about 1e-32 of its sum. The pairs are kept
    as Shewchuk's non-overlapping partials (the same exact expansion `math.fsum`
    keeps inside), a handful of floats per column whatever the number of chunks,
    and `value` rounds them once. The total is thus the correctly rounded float64
    of the exact sum for any realistic number of rows, in bounded memory.

    Args:
        shape: the shape of one row (`()` for a scalar per row).

    Example:
        >>> acc = ExactSum()
        >>> acc.add(np.array([1e16, 1.0]))
        >>> acc.add(np.array([-1e16]))
        >>> float(acc.value)
        1.0
    """

    def __init__(self, shape: tuple[int, ...] = ()):
        self.shape = tuple(shape)
        self._partials: list[list[float]] = [[] for _ in range(math.prod(shape))]

    def add(self, rows: np.ndarray) -> None:
        """Adds `[r, *shape]` rows (any float dtype; converted to float64 exactly)."""
        rows = np.asarray(rows, np.float64).reshape(-1, math.prod(self.shape))
        for column, partials in zip(rows.T.tolist(), self._partials):
            hi = math.fsum(column)
            lo = math.fsum(itertools.chain(column, (-hi,)))
            _grow(partials, hi)
            _grow(partials, lo)

    @property
    def value(self) -> np.ndarray:
        """The sum so far (float64, shape `shape`)."""
        totals = [math.fsum(p) for p in self._partials]
        return np.asarray(totals, np.float64).reshape(self.shape)


def _grow(partials: list[float], x: float) -> None:
    """Adds `x` to Shewchuk's exact expansion `partials` (increasing magnitude).

    Each step splits `x + y` into its rounded value and the exact rounding error
    (Knuth's two-sum, ordered by magnitude), keeping every nonzero error.
    """
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


_TRACES = [0]


def trace_count() -> int:
    """How many times the chunk router has been traced in this process."""
    return _TRACES[0]


@functools.partial(jax.jit, static_argnames="policy")
def _route_chunk(
    policy: Policy,
    params,
    scores,
    confidences,
    costs,
    verifier_costs,
    escalate,
    key,
    index,
):
    # Runs once per trace, not per call: how tests see that padding keeps one
    # compiled function for every chunk.
    _TRACES[0] += 1
    obs = Observations(scores, confidences, costs, verifier_costs, escalate)
    noise = None
    if policy.needs_noise:
        # One draw per row and model, from a key folded with the chunk's index,
        # so the draws do not depend on the device count.
        noise = jax.random.uniform(jax.random.fold_in(key, index), confidences.shape)
    return _outcome(policy, params, obs, None, noise)


class ChunkOutcome(NamedTuple):
    """The routing of one chunk's real rows (NumPy arrays of `count` rows).

    Attributes:
        chunk: the chunk routed.
        stop: `[count]` int32 index of the model whose answer stands.
        cost: `[count]` float32 cost of the query.
        performance: `[count]` float32 score of the answer that stands (NaN
            where the row has no score).
    """

    chunk: Chunk
    stop: Int[np.ndarray, " count"]
    cost: Float[np.ndarray, " count"]
    performance: Float[np.ndarray, " count"]


def _pad_to(array: np.ndarray, size: int, fill) -> np.ndarray:
    if array.shape[0] == size:
        return array
    out = np.full((size, *array.shape[1:]), fill, array.dtype)
    out[: array.shape[0]] = array
    return out


def stream_outcomes(
    policy: Policy,
    params: Params,
    chunks: Iterable[Chunk],
    *,
    mesh: Mesh | None = None,
    key: PRNGKeyArray | None = None,
) -> Iterator[ChunkOutcome]:
    """Routes chunks one after another with one compiled function.

    Each chunk is split over the mesh's query axis (padded further to a multiple
    of the device count if needed), so every device routes its share.

    Args:
        policy: the family (static).
        params: one candidate's parameters.
        chunks: from `read_chunks` (or any `Chunk`s of one size).
        mesh: from `automix_jax.query_mesh` (default: one device, no sharding).
        key: consumed by random policies, folded with each chunk's index; their
            draws differ from the in-memory router's.

    Yields:
        A `ChunkOutcome` per chunk, in order.
    """
    params = jnp.asarray(params)
    key = jax.random.key(0) if key is None else key
    rows = replicated = None
    if mesh is not None:
        rows = NamedSharding(mesh, PartitionSpec(QUERY_AXIS))
        replicated = NamedSharding(mesh, PartitionSpec())
    for index, chunk in enumerate(chunks):
        size = chunk.confidences.shape[0]
        if mesh is not None:
            size = -(-size // mesh.size) * mesh.size
        arrays = [
            _pad_to(chunk.scores, size, 0.0),
            _pad_to(chunk.confidences, size, 1.0),
            _pad_to(chunk.costs, size, 0.0),
            chunk.verifier_costs,
            _pad_to(chunk.escalate, size, False),
        ]
        if mesh is not None:
            arrays = [
                jax.device_put(a, replicated if i == 3 else rows)
                for i, a in enumerate(arrays)
            ]
        stop, cost, perf = _route_chunk(policy, params, *arrays, key, index)
        # np.asarray waits for the result, so the reader may refill its buffers.
        n = chunk.count
        yield ChunkOutcome(
            chunk, np.asarray(stop)[:n], np.asarray(cost)[:n], np.asarray(perf)[:n]
        )


class StreamSummary(NamedTuple):
    """What streaming a whole input measured (float64 means, exact sums).

    Attributes:
        num_rows: n, the rows routed.
        summary: `Summary` of float64 means over the rows (performance is NaN
            when the rows have no scores).
        stops: `[M]` int64 how many rows each model answered.
        baseline: `Baseline` of float64 per-model means (each model alone).
        lift: the IBC `Lift` against the small-to-large baseline (None when the
            rows have no scores).
    """

    num_rows: int
    summary: Summary
    stops: Int[np.ndarray, " models"]
    baseline: Baseline
    lift: Lift | None


class _Totals:
    """Exact running sums over every chunk routed so far."""

    def __init__(self):
        self.rows = 0
        self.stops = None
        self.cost = ExactSum()
        self.performance = ExactSum()
        self.model_cost = self.model_score = None

    def add(self, out: ChunkOutcome) -> None:
        chunk, n = out.chunk, out.chunk.count
        m = chunk.confidences.shape[1]
        if self.stops is None:
            self.stops = np.zeros((m,), np.int64)
            self.model_cost, self.model_score = ExactSum((m,)), ExactSum((m,))
        self.rows += n
        # Counts are integers: exact at any size.
        self.stops += np.bincount(out.stop, minlength=m).astype(np.int64)
        self.cost.add(out.cost)
        self.performance.add(out.performance)
        self.model_cost.add(chunk.costs[:n])
        self.model_score.add(chunk.scores[:n])

    def result(self, small: int, large: int) -> StreamSummary:
        if self.rows == 0:
            raise DataError("there are no rows", fix="give at least one row")
        n = self.rows
        summary = Summary(self.cost.value / n, self.performance.value / n)
        base = Baseline(self.model_cost.value / n, self.model_score.value / n)
        lift = None
        if np.isfinite(summary.performance) and np.isfinite(base.performance).all():
            lift = ibc_lift(
                Summary(*(jnp.asarray(x, jnp.float32) for x in summary)),
                Baseline(*(jnp.asarray(x, jnp.float32) for x in base)),
                small=small,
                large=large,
                num_rows=n,
            )
        return StreamSummary(n, summary, self.stops, base, lift)


def evaluate_stream(
    policy: Policy,
    params: Params,
    chunks: Iterable[Chunk],
    *,
    mesh: Mesh | None = None,
    key: PRNGKeyArray | None = None,
    small: int = 0,
    large: int = -1,
    on_chunk: Callable[[ChunkOutcome], Any] | None = None,
) -> StreamSummary:
    """Routes every chunk and accumulates exact means, counts and the IBC lift.

    Args:
        policy, params, chunks, mesh, key: as in `stream_outcomes`.
        small, large: the models the IBC slopes are measured between.
        on_chunk: called with each `ChunkOutcome` (say, to write decisions).

    Returns:
        A `StreamSummary`.

    Example:
        >>> chunks = read_chunks("logs.jsonl", ["small", "large"])  # doctest: +SKIP
        >>> evaluate_stream(Threshold(), 0.5, chunks).summary.cost  # doctest: +SKIP
    """
    totals = _Totals()
    for out in stream_outcomes(policy, params, chunks, mesh=mesh, key=key):
        totals.add(out)
        if on_chunk is not None:
            on_chunk(out)
    return totals.result(small, large)


def _float_text(value: np.floating) -> str:
    # The shortest text that reads back as the same float32 (0.1, not
    # 0.10000000149011612).
    return str(np.float32(value))


def write_decisions(out: ChunkOutcome, models: Sequence[str], handle: TextIO) -> None:
    """Writes one JSON line per real row: `{"id", "model", "stop", "cost"}`."""
    names = [json.dumps(name) for name in models]
    # Few distinct costs per chunk (one per stopping model with per-model costs):
    # format each once.
    distinct, inverse = np.unique(out.cost, return_inverse=True)
    costs = [_float_text(c) for c in distinct]
    ids = out.chunk.ids
    handle.write(
        "".join(
            f'{{"id": {json.dumps(str(i))}, "model": {names[s]}, "stop": {s}, '
            f'"cost": {costs[c]}}}\n'
            for i, s, c in zip(ids.tolist(), out.stop.tolist(), inverse.tolist())
        )
    )


def route_file(
    policy: Policy,
    params: Params,
    path: str | os.PathLike,
    out: str | os.PathLike | TextIO,
    models: Sequence[str],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    mesh: Mesh | None = None,
    key: PRNGKeyArray | None = None,
    on_progress: Callable[[int], Any] | None = None,
    **read_kwargs,
) -> StreamSummary:
    """Routes every row of `path` and writes one decision line per row, in order.

    Rows need no scores or split (`require_labels=False` unless given); the
    summary's performance is NaN when they have none. A file path for `out` is
    written to `out + ".tmp"` and renamed at the end, so a failed run leaves no
    partial output behind.

    Args:
        policy, params: what routes.
        path: the input (any format `read_chunks` reads).
        out: the output JSON Lines file, or an open text stream.
        models: model names, cheapest first.
        chunk_size: c, rows per chunk.
        mesh, key: as in `stream_outcomes`.
        on_progress: called with the number of rows done after each chunk.
        **read_kwargs: `costs`, `verifier_cost`, `columns`, `escalate_answers`,
            `require_labels`, as in `read_chunks`.

    Returns:
        A `StreamSummary` of the rows routed.
    """
    if policy.name == "oracle":
        raise PolicyError(
            "the oracle reads the scores of every model and cannot route new rows; "
            "choose a policy that reads only the verifier confidences"
        )
    read_kwargs.setdefault("require_labels", False)
    chunks = read_chunks(path, models, chunk_size=chunk_size, **read_kwargs)
    if not isinstance(out, (str, os.PathLike)):
        return _route_into(policy, params, chunks, out, models, mesh, key, on_progress)
    out = os.fspath(out)
    temp = out + ".tmp"
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            result = _route_into(
                policy, params, chunks, handle, models, mesh, key, on_progress
            )
        os.replace(temp, out)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return result


def _route_into(policy, params, chunks, handle, models, mesh, key, on_progress):
    done = [0]

    def write(out: ChunkOutcome) -> None:
        write_decisions(out, models, handle)
        done[0] += out.chunk.count
        if on_progress is not None:
            on_progress(done[0])

    return evaluate_stream(policy, params, chunks, mesh=mesh, key=key, on_chunk=write)


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Chunk",
    "ChunkOutcome",
    "ExactSum",
    "StreamSummary",
    "evaluate_stream",
    "read_chunks",
    "route_file",
    "stream_outcomes",
    "trace_count",
    "write_decisions",
]
