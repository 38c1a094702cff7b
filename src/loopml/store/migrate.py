"""Schema versions: read the database's revision cheaply on open; run Alembic only to upgrade.

A fresh database is created at the head revision; an embedded (SQLite) database behind the
code is upgraded automatically; a shared database behind the code asks for
``loopml db upgrade``; a database ahead of the code asks for a newer loopml. Migrations run
under a lock (a file lock for SQLite, an advisory lock for PostgreSQL) so that processes
opening a fresh store at once do not race.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from loopml.errors import Conflict
from loopml.store.revision import SCHEMA_HEAD

__all__ = ["SCHEMA_HEAD", "current_revision", "ensure_schema", "upgrade"]

_PG_LOCK_KEY = 0x6C6F6F706D6C  # "loopml"
_MIGRATIONS = Path(__file__).with_name("migrations")


def current_revision(engine: sa.Engine) -> str | None:
    """The revision recorded in the database, or None when it has no loopml schema."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(engine: sa.Engine, *, auto_upgrade: bool) -> None:
    """Make the database usable by this code, or raise a clear error saying why not."""
    revision = current_revision(engine)
    if revision == SCHEMA_HEAD:
        return
    if revision is None:
        upgrade(engine)
        return
    url = engine.url.render_as_string(hide_password=True)
    if revision not in _known_revisions():
        raise Conflict(f"the database {url} has schema revision {revision}, unknown to this "
                       f"loopml (newest known: {SCHEMA_HEAD}); it was written by a newer "
                       "loopml: upgrade loopml (pip install -U loopml)")
    if not auto_upgrade:
        raise Conflict(f"the database {url} has schema revision {revision}, older than this "
                       f"loopml's {SCHEMA_HEAD}; run 'loopml db upgrade' to migrate it")
    upgrade(engine)


def _known_revisions() -> set[str]:
    return {script.revision for script in _script_directory().walk_revisions()}


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` (default: the newest), under a lock."""
    from alembic import command

    config = _alembic_config()
    with _migration_lock(engine), engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def _script_directory() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[None]:
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
            conn.commit()
