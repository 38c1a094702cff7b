"""Which version a model reference points to now: cheap enough to ask every second.

On the embedded store at this code's revision the answer is one SQLite read without
SQLAlchemy (:func:`loopml.registry.quick_lookup.version_quickly`); elsewhere it takes the
registry's path, which also words the errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from loopml.config import Settings
from loopml.registry.quick_lookup import version_quickly
from loopml.registry.refs import ModelRef

if TYPE_CHECKING:
    from loopml.store import MetadataStore

__all__ = ["current_version"]


def current_version(settings: Settings, meta: Callable[[], MetadataStore],
                    ref: ModelRef) -> tuple[int, str]:
    """(version number, package tree) that ``ref`` names now; ``meta`` opens the metadata
    store when the quick read cannot answer. :class:`~loopml.errors.NotFound` when it names
    nothing."""
    found = version_quickly(settings, ref)
    if found is not None:
        return found
    from loopml.registry import records

    with meta().read() as conn:
        version = records.resolve(conn, ref)
    return version.version, version.tree
