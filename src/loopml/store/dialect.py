"""Statements whose SQL differs by dialect, written once for SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["insert_on_conflict"]


def insert_on_conflict(conn: sa.Connection, table: sa.Table) -> Any:
    """``INSERT`` that supports ``on_conflict_do_nothing/do_update`` on the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
