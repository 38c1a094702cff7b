"""Statements whose SQL differs by dialect, written once for SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["insert_on_conflict"]


def insert_on_conflict(conn: sa.Connection, table: sa.Table) -> Any:
    """``INSERT`` that supports ``on_conflict_do_nothing/do_update`` on the connection's dialect.

    The dialect modules are imported here, on first use: importing the PostgreSQL one loads
    every PostgreSQL driver module (and asyncio), which a command on SQLite never needs."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)
