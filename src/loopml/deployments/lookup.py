"""Which version a model reference points to now: cheap enough to ask every second.

On the embedded store at this code's revision the answer is one SQLite read without
SQLAlchemy (see :mod:`loopml.store.quick_read`); elsewhere it takes the registry's path,
which also words the errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from loopml.config import Settings
from loopml.registry.refs import ModelRef
from loopml.store.quick_read import read_row

if TYPE_CHECKING:
    from loopml.store import MetadataStore

__all__ = ["current_version"]

_SELECT = ("SELECT v.version, v.tree FROM model_versions v JOIN registered_models m "
           "ON m.id = v.model_id ")
_BY_ALIAS = (_SELECT + "JOIN model_aliases a ON a.model_id = m.id AND a.version = v.version "
             "WHERE m.name = ? AND a.alias = ?")
_BY_NUMBER = _SELECT + "WHERE m.name = ? AND v.version = ?"
_LATEST = (_SELECT + "WHERE m.name = ? AND v.status = 'active' "
           "ORDER BY v.version DESC LIMIT 1")


def current_version(settings: Settings, meta: Callable[[], MetadataStore],
                    ref: ModelRef) -> tuple[int, str]:
    """(version number, package tree) that ``ref`` names now; ``meta`` opens the metadata
    store when the quick read cannot answer. :class:`~loopml.errors.NotFound` when it names
    nothing."""
    if ref.alias is not None:
        row = read_row(settings, _BY_ALIAS, (ref.name, ref.alias))
    elif ref.version is not None:
        row = read_row(settings, _BY_NUMBER, (ref.name, ref.version))
    else:
        row = read_row(settings, _LATEST, (ref.name,))
    if row is not None:
        return int(row[0]), str(row[1])
    from loopml.registry import records

    with meta().read() as conn:
        found = records.resolve(conn, ref)
    return found.version, found.tree
