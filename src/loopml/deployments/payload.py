"""The payload log: Parquet segments in the blob store, indexed in ``payload_segments``.

A model server writes what it answered as segments of two kinds, each a Parquet file with
bounded row groups (so a reader streams it):

``requests``  request_id, at (UTC), endpoint, model, version, route, status, latency_ms,
              rows, request (the body as sent), response (the body as answered), error,
              role (``primary``, ``canary`` or ``shadow``: a shadow's row has the request id
              of the primary's, no request body, and the shadow's answer)
``feedback``  request_id, at (UTC), endpoint, label (JSON text)

Monitoring joins the two on ``request_id``. Only the index lives in the metadata store; the
rows are blobs, written once by a :class:`SegmentSink` (from an Arrow table, or from tuples
in the order of the columns; a server's payload log hands it tables built by
:func:`request_table`)::

    sink = SegmentSink(blobs=blobs, meta=lambda: store, endpoint="churn@production",
                       model="churn")
    sink("requests", request_table(queued))

    segments = list_segments(conn, endpoint="churn@production", kind="requests")
    table = read_segments(blobs, segments)          # a pyarrow.Table
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopml.deployments.tables import payload_segments
from loopml.errors import InvalidArgument
from loopml.tracking.records import now_ms

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.blobs import BlobStore
    from loopml.store import MetadataStore

__all__ = [
    "KINDS",
    "PayloadSegment",
    "QueuedRequest",
    "RequestMeta",
    "Row",
    "SegmentSink",
    "feedback_schema",
    "list_segments",
    "read_segments",
    "record_segment",
    "request_schema",
    "request_table",
    "rows_to_queued",
    "warm_writing",
]

KINDS = ("requests", "feedback")
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class PayloadSegment:
    """One Parquet file of the payload log."""

    id: int
    endpoint: str
    model: str
    kind: str
    blob: str
    rows: int
    first_at: int
    last_at: int
    created_at: int
    host: str
    pid: int | None


def request_schema() -> pa.Schema:
    """The columns of a ``requests`` segment."""
    import pyarrow as pa

    return pa.schema([
        ("request_id", pa.string()), ("at", pa.timestamp("ms", tz="UTC")),
        ("endpoint", pa.string()), ("model", pa.string()), ("version", pa.int32()),
        ("route", pa.string()), ("status", pa.int16()), ("latency_ms", pa.float32()),
        ("rows", pa.int32()), ("request", pa.string()), ("response", pa.string()),
        ("error", pa.string()), ("role", pa.string()),
    ])


def feedback_schema() -> pa.Schema:
    """The columns of a ``feedback`` segment (``label`` is JSON text)."""
    import pyarrow as pa

    return pa.schema([("request_id", pa.string()), ("at", pa.timestamp("ms", tz="UTC")),
                      ("endpoint", pa.string()), ("label", pa.string())])


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidArgument(f"unknown payload segment kind {kind!r}; use one of "
                              f"{', '.join(KINDS)}")
    return kind


def record_segment(conn: sa.Connection, *, endpoint: str, model: str, kind: str, blob: str,
                   rows: int, first_at: int, last_at: int, host: str = "",
                   pid: int | None = None) -> None:
    """Index one written segment (in the caller's transaction)."""
    conn.execute(payload_segments.insert().values(
        endpoint=endpoint, model=model, kind=_check_kind(kind), blob=blob, rows=rows,
        first_at=first_at, last_at=last_at, created_at=now_ms(), host=host, pid=pid))


def list_segments(conn: sa.Connection, *, endpoint: str | None = None,
                  model: str | None = None, kind: str = "requests",
                  since: int | None = None, until: int | None = None) -> list[PayloadSegment]:
    """Segments of ``kind`` overlapping [since, until] (ms since the epoch), oldest first."""
    table = payload_segments
    query = sa.select(table).where(table.c.kind == _check_kind(kind))
    if endpoint is not None:
        query = query.where(table.c.endpoint == endpoint)
    if model is not None:
        query = query.where(table.c.model == model)
    if since is not None:
        query = query.where(table.c.last_at >= since)
    if until is not None:
        query = query.where(table.c.first_at <= until)
    rows = conn.execute(query.order_by(table.c.first_at, table.c.id)).all()
    return [PayloadSegment(**row._mapping) for row in rows]


def read_segments(blobs: BlobStore, segments: Sequence[PayloadSegment], *,
                  kind: str = "requests") -> Any:
    """The rows of ``segments`` (all of one kind) as one ``pyarrow.Table``; with no segments,
    an empty table with the columns of ``kind``."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    kinds = {s.kind for s in segments}
    if len(kinds) > 1:
        raise InvalidArgument(f"segments of several kinds ({', '.join(sorted(kinds))}) do "
                              "not make one table; list one kind at a time")
    if not segments:
        schema = request_schema() if _check_kind(kind) == "requests" else feedback_schema()
        return schema.empty_table()
    return pa.concat_tables(pq.read_table(io.BytesIO(blobs.get_bytes(s.blob)))
                            for s in segments)


# -- writing segments ------------------------------------------------------------------------

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


def warm_writing() -> None:
    """Import and run once what building and writing segments needs (for a process that
    wants that done before it freezes what is alive: see the model server's gc.freeze)."""
    import pyarrow.compute
    import pyarrow.parquet  # noqa: F401

    request_table([("", 0.0, 0.0, 0, ("", "", 0, "", 0, None, ""), b"", "")])


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
