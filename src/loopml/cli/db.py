"""``loopml db``: schema revision and migrations of the metadata store."""

from __future__ import annotations

import click

__all__ = ["db"]


@click.group()
def db() -> None:
    """Schema of the metadata store."""


@db.command("current")
def db_current() -> None:
    """Show the database's schema revision and this loopml's."""
    from loopml.config import load_settings
    from loopml.store.engine import make_engine, redact_url
    from loopml.store.metadata_store import translate_driver_errors
    from loopml.store.migrate import SCHEMA_HEAD, current_revision

    settings = load_settings()
    with translate_driver_errors(settings.database_url):
        revision = current_revision(make_engine(settings.database_url))
    click.echo(f"database {redact_url(settings.database_url)}: revision {revision or 'none'}; "
               f"this loopml: {SCHEMA_HEAD}")


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the metadata store to this loopml's schema (safe to run twice)."""
    from loopml.config import load_settings
    from loopml.store.engine import make_engine, redact_url
    from loopml.store.metadata_store import translate_driver_errors
    from loopml.store.migrate import SCHEMA_HEAD, current_revision, upgrade

    settings = load_settings()
    engine = make_engine(settings.database_url)
    with translate_driver_errors(settings.database_url):
        before = current_revision(engine)
        upgrade(engine)
    click.echo(f"database {redact_url(settings.database_url)}: {before or 'empty'} -> "
               f"{SCHEMA_HEAD}")
