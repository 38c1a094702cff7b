"""One row read straight from the embedded SQLite file, without loading SQLAlchemy.

Commands that run often and must answer in a fraction of a second (``loopml data status``,
``loopml data get``, a cold ``loopml.load_model``) need one row; importing SQLAlchemy alone
costs 0.1-0.2 s. For the embedded store at this code's schema revision they read that row
with the standard library. Anything else (PostgreSQL, another revision, a missing file or
row) gives None, and the caller takes the normal path, which also words the errors. Tests
check that both paths agree.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from loopml.config import Settings
from loopml.store.revision import SCHEMA_HEAD

__all__ = ["read_row"]


def read_row(settings: Settings, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The first row of a read-only query on the embedded store, or None (see above)."""
    prefix = "sqlite:///"
    url = settings.database_url
    if not url.startswith(prefix) or "?" in url:
        return None
    path = Path(url.removeprefix(prefix))
    if not path.is_file():
        return None
    try:
        with sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                             timeout=30) as conn:
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            if revision is None or revision[0] != SCHEMA_HEAD:
                return None
            row = conn.execute(sql, params).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else tuple(row)
