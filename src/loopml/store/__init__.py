"""Metadata store: SQLAlchemy tables, Alembic migrations, SQLite and PostgreSQL engines.

Names are imported on first access, so modules that only need ``loopml.store.revision``
do not load SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

__all__ = ["MetadataStore", "metadata"]

_EXPORTS = {"MetadataStore": "loopml.store.metadata_store", "metadata": "loopml.store.schema"}

if TYPE_CHECKING:
    from loopml.store.metadata_store import MetadataStore
    from loopml.store.schema import metadata


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())

