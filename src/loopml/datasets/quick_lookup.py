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

__all__ = ["latest_version_quickly"]

_QUERY = """
SELECT v.version, v.tree FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id
WHERE d.name = ? ORDER BY v.version DESC LIMIT 1
"""


def latest_version_quickly(settings: Settings, name: str) -> tuple[int, str] | None:
    """(version, tree digest) of the newest version of ``name``, or None to use the client."""
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
            row = conn.execute(_QUERY, (name,)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else (int(row[0]), str(row[1]))
