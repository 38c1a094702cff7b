"""The server side of the payload log: rows queued without blocking, written by a thread.

A request handler calls :meth:`PayloadLog.request` (one small tuple appended under a lock
held for a fraction of a microsecond); a background thread wakes every ``flush_interval_s`` (or
when a segment's worth of rows, or half the queue's bound, is queued) and hands the rows to
a :class:`SegmentSink`, which writes them as a Parquet segment with bounded row groups to
the blob store and indexes it in the metadata store (see :mod:`loopml.deployments.payload`).
When ``max_queue_rows`` rows wait, new rows are dropped and counted rather than stalling
requests. :meth:`PayloadLog.close` (on SIGTERM, through the server's shutdown) writes every
row accepted before it; a segment that fails to write is retried at the next flush.

A queued request is a tuple of seven (:data:`QueuedRequest`): the columns every row of a
server shares (endpoint, model, version, route, status, error, role) travel as one tuple,
the request body as the bytes the server read, the answer as text (orjson's bytes would
keep a buffer of kilobytes each alive in the queue). The writer turns a flush into Arrow
columns at once (:func:`request_table`: the shared columns as repeated scalars when all
rows agree, the bodies without decoding them in Python), and writes no dictionaries or
statistics on ids and bodies: this keeps the log within a few microseconds of CPU per
request, writer included.
"""

from __future__ import annotations

import io
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from loopml.deployments.payload import feedback_schema, request_schema

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.blobs import BlobStore
    from loopml.store import MetadataStore

__all__ = ["PayloadLog", "QueuedRequest", "RequestMeta", "SegmentSink", "request_table",
           "rows_to_queued"]

logger = logging.getLogger("loopml.serving")

Row = tuple[Any, ...]
#: what rows of one server mostly share: endpoint, model, version, route, status, error,
#: role (in the order of :func:`~loopml.deployments.payload.request_schema`)
RequestMeta = tuple[str, str, int | None, str, int, str | None, str]
_META_COLUMNS = ("endpoint", "model", "version", "route", "status", "error", "role")


#: one queued request: request id, at (ms since the epoch), latency (ms), rows, meta,
#: request body, response body (text, UTF-8 bytes, or None)
QueuedRequest = tuple[str, float, float, int, RequestMeta, str | bytes | None,
                      str | bytes | None]


def request_table(rows: Sequence[QueuedRequest]) -> pa.Table:
    """``rows`` as an Arrow table of the ``requests`` schema."""
    import numpy as np
    import pyarrow as pa

    schema = request_schema()
    count = len(rows)
    # a column at a time: zip(*rows) would make an iterator per row
    ids, at_ms, latency_ms, counts, meta, requests, responses = (
        list(map(itemgetter(index), rows)) for index in range(7))
    if count and meta.count(meta[0]) == count:  # one server, one version: the usual
        shared = {name: pa.repeat(pa.scalar(value, schema.field(name).type), count)
                  for name, value in zip(_META_COLUMNS, meta[0], strict=True)}
    else:
        shared = {name: pa.array(list(map(itemgetter(index), meta)), schema.field(name).type)
                  for index, name in enumerate(_META_COLUMNS)}
    arrays = {
        "request_id": pa.array(ids, pa.string()),
        "at": pa.array(np.array(at_ms, dtype=np.float64).astype(np.int64))
        .cast(schema.field("at").type),
        "latency_ms": pa.array(latency_ms, pa.float32()),
        "rows": pa.array(counts, pa.int32()),
        "request": _text(requests), "response": _text(responses), **shared}
    return pa.Table.from_arrays([arrays[field.name] for field in schema], schema=schema)


def rows_to_queued(rows: Iterable[Row]) -> list[QueuedRequest]:
    """Rows in the order of the segment's columns (``request_schema``) as queued rows."""
    return [(rid, at, latency, count, (endpoint, model, version, route, status, error, role),
             request, response)
            for (rid, at, endpoint, model, version, route, status, latency, count, request,
                 response, error, role) in rows]


def _text(values: Sequence[str | bytes | None]) -> pa.Array:
    """A string array of ``values``; bytes that are not UTF-8 become replacement
    characters (a client may send anything)."""
    import pyarrow as pa

    try:
        return pa.array(values, pa.string())
    except pa.ArrowInvalid:
        return pa.array([v.decode(errors="replace") if isinstance(v, bytes) else v
                         for v in values], pa.string())


def _feedback_columns(rows: Sequence[Row]) -> list[list[Any]]:
    columns: list[list[Any]] = [list(column) for column in zip(*rows, strict=True)] \
        if rows else [[] for _ in feedback_schema()]
    columns[-1] = [label.decode() if isinstance(label, bytes) else label
                   for label in columns[-1]]
    return columns


class SegmentSink:
    """Writes rows of one kind as a Parquet segment blob and indexes it."""

    def __init__(self, *, blobs: BlobStore, meta: Callable[[], MetadataStore], endpoint: str,
                 model: str, row_group_rows: int = 5_000) -> None:
        self._blobs = blobs
        self._meta = meta
        self._endpoint = endpoint
        self._model = model
        self._row_group_rows = row_group_rows
        self._host = socket.gethostname()[:256]

    def __call__(self, kind: str, rows: pa.Table | Sequence[Row]) -> None:
        """Write ``rows``: an Arrow table of the kind's schema, or tuples in its order."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from loopml.deployments.payload import record_segment

        if isinstance(rows, pa.Table):
            table = rows
        elif kind == "requests":
            table = request_table(rows_to_queued(rows))
        else:
            table = pa.Table.from_arrays(
                [pa.array(values, field.type) for field, values in
                 zip(feedback_schema(), _feedback_columns(rows), strict=True)],
                schema=feedback_schema())
        buffer = io.BytesIO()
        # dictionaries and statistics only where they pay: not on ids and bodies
        pq.write_table(table, buffer, row_group_size=self._row_group_rows,
                       compression="zstd",
                       use_dictionary=[name for name in table.schema.names
                                       if name not in ("request_id", "request", "response",
                                                       "label", "at", "latency_ms")],
                       write_statistics=["at"])
        digest = self._blobs.put_bytes(buffer.getvalue())
        times = pc.min_max(table.column("at").cast(pa.int64())).as_py()
        with self._meta().write() as conn:
            record_segment(conn, endpoint=self._endpoint, model=self._model, kind=kind,
                           blob=digest, rows=table.num_rows, first_at=times["min"],
                           last_at=times["max"], host=self._host, pid=os.getpid())


class PayloadLog:
    """A bounded queue of payload rows and the thread that writes them."""

    def __init__(self, sink: Callable[[str, Any], None], *, sample: float = 1.0,
                 max_queue_rows: int = 100_000, segment_rows: int = 50_000,
                 flush_interval_s: float = 10.0) -> None:
        self._sink = sink
        self.sample = sample
        self._max_queue_rows = max_queue_rows
        self._segment_rows = segment_rows
        # a segment's worth of rows, or half the queue: writing starts before the queue is
        # full, so a steady stream is written rather than dropped
        self._flush_rows = max(1, min(segment_rows, max_queue_rows // 2))
        self._interval = flush_interval_s
        self._lock = threading.Lock()
        self._requests: list[QueuedRequest] = []
        self._feedback: list[Row] = []
        self._queued = 0
        self.dropped = 0
        self.written = 0
        self.segments = 0
        self.failures = 0
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="loopml-payload-log",
                                        daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._queued

    def sampled(self) -> bool:
        """Whether this request is one of the sampled ones."""
        return self.sample >= 1.0 or random.random() < self.sample

    def request(self, rid: str, meta: RequestMeta, latency_ms: float, rows: int,
                request: str | bytes | None, response: str | bytes | None) -> bool:
        """Queue the row of one answered request, stamped now; False (and counted as
        dropped) when the queue is full or closed."""
        at_ms = time.time() * 1000
        with self._lock:
            if self._queued >= self._max_queue_rows or self._closing:
                self.dropped += 1
                return False
            self._requests.append((rid, at_ms, latency_ms, rows, meta, request, response))
            self._queued += 1
            full = len(self._requests) >= self._flush_rows
        if full:
            self._wake.set()
        return True

    def requests(self, meta: RequestMeta,
                 rows: Sequence[tuple[str, float, int, str | bytes | None]]) -> int:
        """Queue the rows ``(request id, latency ms, rows, response)`` of requests answered
        alike (one lock for all, stamped now); how many were queued, the rest dropped and
        counted because the queue is full or closed."""
        at_ms = time.time() * 1000
        with self._lock:
            room = 0 if self._closing else max(0, self._max_queue_rows - self._queued)
            taken = rows if len(rows) <= room else rows[:room]
            self.dropped += len(rows) - len(taken)
            self._requests.extend([(rid, at_ms, latency_ms, count, meta, None, response)
                                   for rid, latency_ms, count, response in taken])
            self._queued += len(taken)
            full = len(self._requests) >= self._flush_rows
        if full:
            self._wake.set()
        return len(taken)

    def feedback(self, rid: str, endpoint: str, label: str) -> bool:
        """Queue the label of an answered request, stamped now; False (and counted as
        dropped) when the queue is full or closed."""
        with self._lock:
            if self._queued >= self._max_queue_rows or self._closing:
                self.dropped += 1
                return False
            self._feedback.append((rid, int(time.time() * 1000), endpoint, label))
            self._queued += 1
        return True

    def close(self, timeout: float | None = 60.0) -> None:
        """Write every queued row, then stop the thread."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        retry: dict[str, list[Any]] = {"requests": [], "feedback": []}
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            closing = self._closing
            with self._lock:
                requests, self._requests = self._requests, []
                feedback, self._feedback = self._feedback, []
            if requests:
                retry["requests"].append(request_table(requests))
            retry["requests"] = self._write("requests", retry["requests"])
            retry["feedback"] = self._write("feedback", [*retry["feedback"], *feedback])
            if closing:
                lost = sum(len(rows) for rows in retry["feedback"]) + sum(
                    table.num_rows for table in retry["requests"])
                if lost:
                    logger.error("the payload log could not write %d rows at shutdown", lost)
                return

    def _write(self, kind: str, pending: list[Any]) -> list[Any]:
        """Write ``pending`` (tables of requests, or feedback rows) in segments; what could
        not be written."""
        if kind == "requests":
            import pyarrow as pa

            rows: Any = pa.concat_tables(pending) if len(pending) > 1 else (
                pending[0] if pending else None)
            count = 0 if rows is None else rows.num_rows
        else:
            rows, count = pending, len(pending)
        for start in range(0, count, self._segment_rows):
            chunk = rows[start:start + self._segment_rows]
            size = min(self._segment_rows, count - start)
            try:
                self._sink(kind, chunk)
            except Exception:
                self.failures += 1
                logger.exception("writing a payload log segment of %d rows failed; retrying "
                                 "at the next flush", size)
                rest = rows[start:]
                return [rest] if kind == "requests" else list(rest)
            self.written += size
            self.segments += 1
            with self._lock:
                self._queued -= size
        return []
