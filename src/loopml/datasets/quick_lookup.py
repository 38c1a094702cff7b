"""The latest version of a dataset read straight from the embedded SQLite file.

``loopml data status`` runs often and must answer in a fraction of a second; importing
SQLAlchemy alone costs more than half of that budget. For the embedded store at this code's
schema revision, this reads the one row it needs with the standard library. Any other case
(PostgreSQL, another revision, a missing file or dataset) returns None, and the caller takes
the normal path, which also produces the proper error messages. A test checks that both
paths agree.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from loopml.config import Settings
from loopml.store.revision import SCHEMA_HEAD

__all__ = ["latest_version_quickly", "version_quickly"]

_QUERY = """
SELECT v.version, v.tree FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id
WHERE d.name = ? AND (? IS NULL OR v.version = ?) ORDER BY v.version DESC LIMIT 1
"""


def latest_version_quickly(settings: Settings, name: str) -> tuple[int, str] | None:
    """(version, tree digest) of the newest version of ``name``, or None to use the client."""
    return _lookup(settings, name, None)


def version_quickly(settings: Settings, ref: str) -> tuple[str, int, str] | None:
    """(name, version, tree) for ``NAME``, ``NAME@latest`` or ``NAME@N``; None otherwise
    (tags, other stores, errors: the client's path handles and words those)."""
    name, _, selector = ref.partition("@")
    if selector in ("", "latest"):
        number = None
    elif selector.isdigit():
        number = int(selector)
    else:
        return None
    found = _lookup(settings, name, number)
    return None if found is None else (name, *found)


def _lookup(settings: Settings, name: str, number: int | None) -> tuple[int, str] | None:
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
            row = conn.execute(_QUERY, (name, number, number)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else (int(row[0]), str(row[1]))
