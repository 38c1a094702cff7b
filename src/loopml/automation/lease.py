"""Leader election among agents sharing one database: :class:`Lease`.

A lease is a row ``agent_lease(name, holder, expires_at)``. An agent takes or renews it with
one conditional ``UPDATE`` — a compare-and-set that succeeds only when it holds the lease
already or the lease has expired — so at most one agent holds it at any moment, on SQLite
(writes are serialised) as on PostgreSQL (a concurrent update re-checks the condition on the
row it waited for). Expiry is measured by the database's clock, so agents on hosts whose
clocks disagree still agree on who leads.

The holder renews every third of the time to live (:class:`LeaseKeeper` does it in the
background) and treats the lease as lost a safety margin *before* it could expire, measured
on its own monotonic clock from the moment it sent the renewal: an agent whose renewals stop
getting through stops acting before anyone else may start.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopml.automation.tables import agent_lease
from loopml.errors import InvalidArgument
from loopml.store.dialect import insert_on_conflict

if TYPE_CHECKING:
    from loopml.store import MetadataStore

__all__ = ["Lease", "LeaseInfo", "LeaseKeeper", "agent_identity", "read_lease"]

logger = logging.getLogger(__name__)


def agent_identity() -> str:
    """A holder name unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _db_now_ms(conn: sa.Connection) -> Any:
    """The database's clock in ms since the epoch, as an SQL expression."""
    if conn.dialect.name == "postgresql":
        return sa.literal_column(
            "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)")
    return sa.literal_column("CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)")


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Who holds a lease and until when (ms since the epoch, the database's clock)."""

    name: str
    holder: str
    expires_at: int
    acquired_at: int
    renewed_at: int


def read_lease(conn: sa.Connection, name: str) -> LeaseInfo | None:
    row = conn.execute(sa.select(agent_lease).where(agent_lease.c.name == name)).first()
    if row is None:
        return None
    return LeaseInfo(name=row.name, holder=row.holder, expires_at=row.expires_at,
                     acquired_at=row.acquired_at, renewed_at=row.renewed_at)


class Lease:
    """The lease ``name`` as seen by ``holder``; :meth:`acquire` takes or renews it."""

    def __init__(self, meta: MetadataStore, *, name: str = "agent", holder: str | None = None,
                 ttl: float = 15.0) -> None:
        if ttl <= 0:
            raise InvalidArgument(f"lease ttl must be > 0 seconds, got {ttl}")
        self.meta = meta
        self.name = name
        self.holder = holder or agent_identity()
        self.ttl = float(ttl)
        #: The lease is treated as lost this long before it could expire.
        self.margin = min(2.0, self.ttl / 5)
        self._valid_until = 0.0
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        """True while this holder may act: its last renewal is recent enough."""
        return time.monotonic() < self._valid_until

    def acquire(self) -> bool:
        """Take the lease if it is free or expired, or renew it if held; True when held."""
        with self._lock:
            sent = time.monotonic()
            try:
                won = self._compare_and_set()
            except Exception:  # an unreachable database: act as if the lease were lost
                won = False
            self._valid_until = sent + self.ttl - self.margin if won else 0.0
            return won

    def _compare_and_set(self) -> bool:
        ttl_ms = int(self.ttl * 1000)
        with self.meta.write() as conn:
            now = _db_now_ms(conn)
            table = agent_lease
            stmt = (table.update()
                    .where(table.c.name == self.name,
                           sa.or_(table.c.holder == self.holder, table.c.expires_at <= now))
                    .values(holder=self.holder, expires_at=now + ttl_ms, renewed_at=now,
                            acquired_at=sa.case((table.c.holder == self.holder,
                                                 table.c.acquired_at), else_=now)))
            if conn.execute(stmt).rowcount == 1:
                return True
            if read_lease(conn, self.name) is not None:
                return False
            conn.execute(
                insert_on_conflict(conn, table).on_conflict_do_nothing(index_elements=["name"])
                .values(name=self.name, holder=self.holder, expires_at=now + ttl_ms,
                        acquired_at=now, renewed_at=now))
            # (a driver may not count the rows of INSERT … ON CONFLICT: read who won)
            info = read_lease(conn, self.name)
            return info is not None and info.holder == self.holder

    def release(self) -> None:
        """Give the lease up now (if held), so another agent takes over without waiting."""
        with self._lock:
            self._valid_until = 0.0
            try:
                with self.meta.write() as conn:
                    conn.execute(agent_lease.update().where(
                        agent_lease.c.name == self.name, agent_lease.c.holder == self.holder)
                        .values(expires_at=0))
            except Exception:  # it expires on its own
                pass

    def info(self) -> LeaseInfo | None:
        with self.meta.read() as conn:
            return read_lease(conn, self.name)


class LeaseKeeper:
    """Renews (or tries to take) a lease every third of its time to live in a daemon thread;
    ``on_change(held)`` is called when leadership is won or lost."""

    def __init__(self, lease: Lease, *, on_change: Any = None) -> None:
        self.lease = lease
        self.on_change = on_change
        self.interval = lease.ttl / 3
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_held = False

    def start(self) -> None:
        self.tick()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{self.lease.name}",
                                        daemon=True)
        self._thread.start()

    def tick(self) -> bool:
        held = self.lease.acquire()
        if held != self._was_held:
            self._was_held = held
            if self.on_change is not None:
                try:
                    self.on_change(held)
                except Exception:  # a listener's failure must not stop the renewals
                    logger.exception("lease %s: on_change failed", self.lease.name)
        return held

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def stop(self, *, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if release:
            self.lease.release()
