"""The embedded SQLite file read (and written) straight with ``sqlite3``, without SQLAlchemy.

Commands that run often and must answer in a fraction of a second (``loopml data status``,
``data get``, ``data add`` of a directory that changed a little, a cold
``loopml.load_model``) touch a row or two; importing SQLAlchemy and opening its engine alone
costs 0.2-0.3 s. For the embedded store at this code's schema revision they use the
standard library. Anything else (PostgreSQL, another revision, a missing file or row) gives
None, and the caller takes the normal path, which also words the errors. Tests check that
both paths agree.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loopml.config import Settings
from loopml.errors import BackendUnavailable
from loopml.store.revision import SCHEMA_HEAD

__all__ = ["embedded_path", "quick_write", "read_row"]

#: As the SQLAlchemy engine sets them (``loopml.store.engine``).
_BUSY_TIMEOUT_S = 60
_WRITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                  "PRAGMA foreign_keys=ON", f"PRAGMA busy_timeout={_BUSY_TIMEOUT_S * 1000}")


def embedded_path(settings: Settings) -> Path | None:
    """The SQLite file of an embedded store that exists, or None (also with a tracking
    server configured: then the server's store is the one to read)."""
    if settings.is_remote:
        return None
    prefix = "sqlite:///"
    url = settings.database_url
    if not url.startswith(prefix) or "?" in url:
        return None
    path = Path(url.removeprefix(prefix))
    return path if path.is_file() else None


def _at_head(conn: sqlite3.Connection) -> bool:
    revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return revision is not None and revision[0] == SCHEMA_HEAD


def read_row(settings: Settings, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The first row of a read-only query on the embedded store, or None (see above)."""
    rows = read_rows(settings, sql, params)
    return None if not rows else rows[0]


def read_rows(settings: Settings, sql: str,
              params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
    """Every row of a read-only query on the embedded store, or None (see above)."""
    path = embedded_path(settings)
    if path is None:
        return None
    try:
        with sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                             timeout=_BUSY_TIMEOUT_S) as conn:
            if not _at_head(conn):
                return None
            return [tuple(row) for row in conn.execute(sql, params).fetchall()]
    except sqlite3.Error:
        return None


@contextlib.contextmanager
def quick_write(settings: Settings) -> Iterator[sqlite3.Connection | None]:
    """One write transaction (``BEGIN IMMEDIATE``, as the engine's writes) on the embedded
    store at this code's revision, committed when the block ends and rolled back on an
    exception; None when there is no such store (then the block should take the normal path).
    """
    path = embedded_path(settings)
    conn = None
    try:
        if path is not None:
            conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
            for pragma in _WRITE_PRAGMAS:
                conn.execute(pragma)
            conn.execute("BEGIN IMMEDIATE")
            if not _at_head(conn):
                conn.close()
                conn = None
    except sqlite3.Error:
        if conn is not None:
            conn.close()
        conn = None
    if conn is None:
        yield None
        return
    try:
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        raise BackendUnavailable(
            f"the metadata store {settings.database_url} failed: {exc}; check that the "
            "database is reachable and LOOPML_DATABASE_URL is right") from None
    finally:
        conn.close()
