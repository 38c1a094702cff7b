"""Tables of deployments (created by migration 0007).

``payload_segments`` indexes the payload log: each row names one Parquet file in the blob
store (its content address) written by a model server, with the endpoint it served, what it
holds (``requests`` or ``feedback``), how many rows and the time span of those rows. Readers
(monitoring, ``loopml serve`` tests) find a window's segments here and stream their row groups.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import BigId, Millis, metadata

__all__ = ["payload_segments"]

payload_segments = sa.Table(
    "payload_segments", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # What was served: NAME@ALIAS (or NAME/N) today, a deployment name later.
    sa.Column("endpoint", sa.String(256), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    # The Parquet file: a blob's content address.
    sa.Column("blob", sa.String(64), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("first_at", Millis, nullable=False),
    sa.Column("last_at", Millis, nullable=False),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("host", sa.String(256), nullable=False, server_default=""),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Index(None, "endpoint", "kind", "last_at"),
    sa.Index(None, "model", "kind", "last_at"),
)
