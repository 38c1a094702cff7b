"""The payload log: Parquet segments in the blob store, indexed in ``payload_segments``.

A model server writes what it answered as segments of two kinds, each a Parquet file with
bounded row groups (so a reader streams it):

``requests``  request_id, at (UTC), endpoint, model, version, route, status, latency_ms,
              rows, request (the body as sent), response (the body as answered), error,
              role (``primary``, ``canary`` or ``shadow``: a shadow's row has the request id
              of the primary's, no request body, and the shadow's answer)
``feedback``  request_id, at (UTC), endpoint, label (JSON text)

Monitoring joins the two on ``request_id``. Only the index lives in the metadata store; the
rows are blobs, written once::

    segments = list_segments(conn, endpoint="churn@production", kind="requests")
    table = read_segments(blobs, segments)          # a pyarrow.Table
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopml.deployments.tables import payload_segments
from loopml.errors import InvalidArgument
from loopml.tracking.records import now_ms

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.blobs import BlobStore

__all__ = ["KINDS", "PayloadSegment", "feedback_schema", "list_segments", "read_segments",
           "record_segment", "request_schema"]

KINDS = ("requests", "feedback")


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
