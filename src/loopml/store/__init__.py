"""Metadata store: SQLAlchemy tables, Alembic migrations, SQLite and PostgreSQL engines.

Names are imported on first access, so modules that only need ``loopml.store.revision``
do not load SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["MetadataStore", "metadata"]

_EXPORTS = {"MetadataStore": "loopml.store.metadata_store", "metadata": "loopml.store.schema"}

if TYPE_CHECKING:
    from loopml.store.metadata_store import MetadataStore
    from loopml.store.schema import metadata


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loopml.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
