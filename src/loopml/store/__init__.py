"""Metadata store: SQLAlchemy tables, Alembic migrations, SQLite and PostgreSQL engines."""

from loopml.store.metadata_store import MetadataStore
from loopml.store.schema import metadata

__all__ = ["MetadataStore", "metadata"]
