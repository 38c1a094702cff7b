"""The table of API tokens (created by migration 0012).

``api_tokens`` holds one row per token: its public ``id`` (the part of the token that finds
its row), the SHA-256 ``hash`` of the whole token (the secret itself is never stored), the
``role`` it grants, who made it and when, when it stops working (``expires_at``; NULL: never),
when it was last used (``last_used_at``, written at most once a minute) and whether it was
revoked (``revoked_at``/``revoked_by``). Rows are never deleted, so the list keeps a record
of every token that ever existed.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import Millis, metadata

__all__ = ["api_tokens"]

api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    # viewer | editor | admin
    sa.Column("role", sa.String(16), nullable=False),
    # hex SHA-256 of the whole token
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("expires_at", Millis, nullable=True),
    sa.Column("last_used_at", Millis, nullable=True),
    sa.Column("revoked_at", Millis, nullable=True),
    sa.Column("revoked_by", sa.String(256), nullable=False, server_default=""),
)
