"""The one SQLAlchemy ``MetaData`` every domain package defines its tables on.

Domain packages own their tables (``loopml.tracking.tables``, …); Alembic migrations in
``loopml.store.migrations`` create them, and a test checks that the migrated database
matches these definitions exactly.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["BigId", "Millis", "metadata"]

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

#: Milliseconds since the Unix epoch, UTC.
Millis = sa.BigInteger
#: An auto-incrementing key that is SQLite's rowid there (fast appends) and BIGINT elsewhere.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
