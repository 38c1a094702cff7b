"""The server side of the payload log: rows queued without blocking, written by a thread.

A request handler calls :meth:`PayloadLog.request` (one small tuple appended under a lock
held for a fraction of a microsecond); a background thread wakes every ``flush_interval_s`` (or
when a segment's worth of rows, or half the queue's bound, is queued) and hands the rows to
a :class:`SegmentSink`, which writes them as a Parquet segment with bounded row groups to
the blob store and indexes it in the metadata store (both in :mod:`loopml.deployments.payload`).
When ``max_queue_rows`` rows wait, new rows are dropped and counted rather than stalling
requests. :meth:`PayloadLog.close` (on SIGTERM, through the server's shutdown) writes every
row accepted before it; a segment that fails to write is retried at the next flush.

A queued request is a tuple of seven (:data:`~loopml.deployments.payload.QueuedRequest`):
the columns every row of a server shares (endpoint, model, version, route, status, error,
role) travel as one tuple, the request body as the bytes the server read, the answer as
text (orjson's bytes would keep a buffer of kilobytes each alive in the queue). Every
``chunk_rows`` rows the request that queued the last of them turns them into an Arrow table
(:func:`~loopml.deployments.payload.request_table`: about 0.6 µs a row, a millisecond or
so for that one request), on the event loop rather than on the writer's thread: Python work
on a second thread makes every system call of the loop hand the interpreter lock over and
wait for it back, which costs the loop more than the work itself. The writer thread then
mostly runs Parquet's C++ code, which does not hold the lock.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from loopml.deployments.payload import QueuedRequest, RequestMeta, Row, request_table

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["PayloadLog"]

logger = logging.getLogger("loopml.serving")


class PayloadLog:
    """A bounded queue of payload rows and the thread that writes them."""

    def __init__(self, sink: Callable[[str, Any], None], *, sample: float = 1.0,
                 max_queue_rows: int = 100_000, segment_rows: int = 50_000,
                 flush_interval_s: float = 10.0, chunk_rows: int = 2_000) -> None:
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
        #: queued requests become a table every ``chunk_rows``, in the thread that queued
        #: the last of them; the writer thread only writes tables
        self._chunk_rows = max(1, min(chunk_rows, self._flush_rows))
        self._tables: list[pa.Table] = []
        self._converted = 0
        self._converting = 0  # conversions under way (their rows are in neither list)
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
            full = len(self._requests) >= self._chunk_rows
        if full:
            self._convert()
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
            full = len(self._requests) >= self._chunk_rows
        if full:
            self._convert()
        return len(taken)

    def _convert(self) -> None:
        """Turn the queued requests into an Arrow table, here (see the module's notes)."""
        with self._lock:
            rows, self._requests = self._requests, []
            self._converting += bool(rows)
        if not rows:
            return
        try:
            table = request_table(rows)
        except Exception:  # rows that would not convert: their segment could not be written
            with self._lock:
                self._converting -= 1
                self._queued -= len(rows)
                self.failures += 1
            logger.exception("%d payload log rows could not be converted", len(rows))
            return
        with self._lock:
            self._converting -= 1
            self._tables.append(table)
            self._converted += table.num_rows
            full = self._converted >= self._flush_rows
        if full:
            self._wake.set()

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
            deadline = time.monotonic() + 5.0
            while closing and self._converting and time.monotonic() < deadline:
                time.sleep(0.005)  # the last pass takes what conversions under way make
            with self._lock:
                requests, self._requests = self._requests, []
                tables, self._tables, self._converted = self._tables, [], 0
                feedback, self._feedback = self._feedback, []
            retry["requests"].extend(tables)
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
