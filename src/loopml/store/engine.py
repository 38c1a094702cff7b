"""Engines for the metadata store: SQLite (WAL, busy timeout, ``BEGIN IMMEDIATE`` for
writes so concurrent writers queue instead of failing) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from loopml.errors import InvalidArgument, MissingDependency

__all__ = ["WRITE_OPTION", "make_engine", "redact_url"]

#: Execution option that marks a connection's transaction as a write (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "loopml_write"
SQLITE_BUSY_TIMEOUT_S = 60


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def make_engine(url: str) -> sa.Engine:
    """An engine for ``sqlite:///PATH`` or ``postgresql://…`` with loopml's connection settings."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith(("postgresql", "postgres")):
        return _postgres_engine(url)
    raise InvalidArgument(
        f"database URL {redact_url(url)!r} has an unsupported scheme; "
        "use sqlite:///PATH or postgresql://USER@HOST:PORT/DB")


def _sqlite_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    database = parsed.database or ""
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args={"isolation_level": None, "timeout": SQLITE_BUSY_TIMEOUT_S,
                      "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgres_engine(url: str) -> sa.Engine:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise MissingDependency("a PostgreSQL metadata store", package="psycopg[binary]",
                                extra="postgres") from None
    parsed = sa.make_url(url).set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
