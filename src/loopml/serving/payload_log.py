"""The server side of the payload log: rows queued without blocking, written by a thread.

A request handler calls :meth:`PayloadLog.add` (a list append under a lock held for
microseconds); a background thread wakes every ``flush_interval_s`` (or when a segment's
worth of rows, or half the queue's bound, is queued) and hands the rows to a
:class:`SegmentSink`, which writes them as
a Parquet segment with bounded row groups to the blob store and indexes it in the metadata
store (see :mod:`loopml.deployments.payload`). When ``max_queue_rows`` rows wait, new rows
are dropped and counted rather than stalling requests. :meth:`PayloadLog.close` (on
SIGTERM, through the server's shutdown) writes every row accepted before it; a segment that
fails to write is retried at the next flush.
"""

from __future__ import annotations

import io
import logging
import os
import random
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopml.deployments.payload import KINDS, feedback_schema, request_schema

if TYPE_CHECKING:
    from loopml.blobs import BlobStore
    from loopml.store import MetadataStore

__all__ = ["PayloadLog", "SegmentSink"]

logger = logging.getLogger("loopml.serving")

Row = tuple[Any, ...]


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

    def __call__(self, kind: str, rows: list[Row]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from loopml.deployments.payload import record_segment

        schema = request_schema() if kind == "requests" else feedback_schema()
        columns = list(zip(*rows, strict=True))
        arrays = []
        for field, values in zip(schema, columns, strict=True):
            try:  # text columns take str, or bytes of UTF-8
                arrays.append(pa.array(values, type=field.type))
            except pa.ArrowInvalid:
                if not pa.types.is_string(field.type):
                    raise
                arrays.append(pa.array([v.decode(errors="replace") if isinstance(v, bytes)
                                        else v for v in values], type=field.type))
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_arrays(arrays, schema=schema), buffer,
                       row_group_size=self._row_group_rows, compression="zstd")
        digest = self._blobs.put_bytes(buffer.getvalue())
        times = columns[1]
        with self._meta().write() as conn:
            record_segment(conn, endpoint=self._endpoint, model=self._model, kind=kind,
                           blob=digest, rows=len(rows), first_at=min(times),
                           last_at=max(times), host=self._host, pid=os.getpid())


class PayloadLog:
    """A bounded queue of payload rows and the thread that writes them."""

    def __init__(self, sink: Callable[[str, list[Row]], None], *, sample: float = 1.0,
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
        self._pending: dict[str, list[Row]] = {kind: [] for kind in KINDS}
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

    def add(self, kind: str, row: Row) -> bool:
        """Queue ``row``; False (and counted as dropped) when the queue is full or closed."""
        with self._lock:
            if self._queued >= self._max_queue_rows or self._closing:
                self.dropped += 1
                return False
            self._pending[kind].append(row)
            self._queued += 1
            full = len(self._pending[kind]) >= self._flush_rows
        if full:
            self._wake.set()
        return True

    def extend(self, kind: str, rows: list[Row]) -> int:
        """Queue ``rows`` (one lock for all); how many were queued, the rest dropped and
        counted because the queue is full or closed."""
        with self._lock:
            room = 0 if self._closing else max(0, self._max_queue_rows - self._queued)
            taken = rows if len(rows) <= room else rows[:room]
            self.dropped += len(rows) - len(taken)
            self._pending[kind].extend(taken)
            self._queued += len(taken)
            full = len(self._pending[kind]) >= self._flush_rows
        if full:
            self._wake.set()
        return len(taken)

    def close(self, timeout: float | None = 60.0) -> None:
        """Write every queued row, then stop the thread."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        retry: dict[str, list[Row]] = {kind: [] for kind in KINDS}
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            closing = self._closing
            with self._lock:
                taken, self._pending = self._pending, {kind: [] for kind in KINDS}
            for kind in KINDS:
                retry[kind] = self._write(kind, retry[kind] + taken[kind])
            if closing:
                lost = sum(len(rows) for rows in retry.values())
                if lost:
                    logger.error("the payload log could not write %d rows at shutdown", lost)
                return

    def _write(self, kind: str, rows: list[Row]) -> list[Row]:
        """Write ``rows`` in segments; the rows that could not be written."""
        for start in range(0, len(rows), self._segment_rows):
            chunk = rows[start:start + self._segment_rows]
            try:
                self._sink(kind, chunk)
            except Exception:
                self.failures += 1
                logger.exception("writing a payload log segment of %d rows failed; retrying "
                                 "at the next flush", len(chunk))
                return rows[start:]
            self.written += len(chunk)
            self.segments += 1
            with self._lock:
                self._queued -= len(chunk)
        return []
