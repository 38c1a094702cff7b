"""The tables of resumable blob uploads (created by migration 0013).

``blob_uploads`` holds one row per upload session: the ``digest`` and ``size`` of the blob
being sent, the ``part_size`` it is cut into, who started it, when, and when it expires.
``blob_upload_parts`` holds one row per part received (its ``size``). The parts' bytes are
staged in the blob store itself, under ``uploads/<session id>/<part number>`` (see
:mod:`loopml.server.uploads`), so every server process behind one database and one blob
store sees the same sessions.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import Millis, metadata

__all__ = ["blob_upload_parts", "blob_uploads"]

blob_uploads = sa.Table(
    "blob_uploads", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("part_size", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("expires_at", Millis, nullable=False),
    sa.Index(None, "expires_at"),
)

blob_upload_parts = sa.Table(
    "blob_upload_parts", metadata,
    sa.Column("upload_id", sa.String(32), sa.ForeignKey("blob_uploads.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("received_at", Millis, nullable=False),
)
