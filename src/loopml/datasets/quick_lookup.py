"""Dataset versions looked up without SQLAlchemy on the embedded store (see
:mod:`loopml.store.quick_read`): for ``data status``, ``data get``, ``data push`` and
``data pull`` (``data add`` has :mod:`loopml.datasets.quick_add`)."""

from __future__ import annotations

from loopml.config import Settings
from loopml.store.quick_read import read_row

__all__ = ["latest_version_quickly", "version_quickly"]

_QUERY = """
SELECT v.version, v.tree FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id
WHERE d.name = ? AND (? IS NULL OR v.version = ?) ORDER BY v.version DESC LIMIT 1
"""


def latest_version_quickly(settings: Settings, name: str) -> tuple[int, str] | None:
    """(version, tree digest) of the newest version of ``name``, or None to use the client."""
    row = read_row(settings, _QUERY, (name, None, None))
    return None if row is None else (int(row[0]), str(row[1]))


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
    row = read_row(settings, _QUERY, (name, number, number))
    return None if row is None else (name, int(row[0]), str(row[1]))


