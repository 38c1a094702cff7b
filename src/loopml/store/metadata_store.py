"""The metadata store: one engine, read and write transactions, driver errors translated."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from loopml.errors import BackendUnavailable
from loopml.store.engine import WRITE_OPTION, make_engine, redact_url
from loopml.store.migrate import ensure_schema

__all__ = ["MetadataStore", "translate_driver_errors"]


class MetadataStore:
    """SQL metadata behind ``url`` (SQLite or PostgreSQL), at the code's schema revision.

    ``auto_upgrade`` defaults to True for SQLite (the embedded store upgrades itself) and
    False for shared databases, where ``loopml db upgrade`` is an explicit step.
    """

    def __init__(self, url: str, *, auto_upgrade: bool | None = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        if auto_upgrade is None:
            auto_upgrade = self.dialect == "sqlite"
        with self._translated():
            ensure_schema(self.engine, auto_upgrade=auto_upgrade)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A connection for queries; its transaction is rolled back at the end."""
        with self._translated(), self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One transaction: committed when the block ends, rolled back on an exception."""
        with self._translated(), self.engine.connect() as conn:
            conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()

    def _translated(self) -> contextlib.AbstractContextManager[None]:
        return translate_driver_errors(self.url)


@contextlib.contextmanager
def translate_driver_errors(url: str) -> Iterator[None]:
    """Turn a database driver's connection/operational error into :class:`BackendUnavailable`."""
    try:
        yield
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise BackendUnavailable(
            f"the metadata store {redact_url(url)} failed: {detail}; check that the "
            "database is reachable and LOOPML_DATABASE_URL is right") from None
