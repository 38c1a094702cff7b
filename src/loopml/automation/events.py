"""The audit timeline of automation: :func:`record_event` and :func:`list_events`.

Every decision the loop takes is one :class:`Event` with its reason in words and the
numbers behind it::

    record_event(meta, "trigger_fired", trigger="new-data", pipeline="train.py:churn",
                 model="churn", reason="1,200 new rows in churn@4 since churn@2 (>= 1,000)",
                 data={"new_rows": 1200, "threshold": 1000})
    for event in list_events(meta, since=now_ms() - 3_600_000, model="churn"):
        print(event.at, event.kind, event.reason)

``list_events`` merges, read-only and in time order, the changes of deployments (their own
audit log: ``deploy_created``, ``deploy_updated``, ``deploy_rollback``,
``deploy_auto-rollback``) and monitoring alerts (``alert_drift``, ``alert_quality``, …) into
the timeline, so one listing tells the whole story; ``source`` says where a row came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from loopml.automation.tables import automation_events
from loopml.errors import InvalidArgument
from loopml.tracking.records import now_ms

if TYPE_CHECKING:
    from loopml.store import MetadataStore

__all__ = ["EVENT_KINDS", "Event", "list_events", "record_event"]

#: The kinds the loop records (others may be added by policies: any lowercase word fits).
EVENT_KINDS = (
    "trigger_fired", "trigger_error", "run_started", "run_succeeded", "run_failed",
    "candidate", "candidate_failed", "gate_passed", "gate_failed", "rollout_started",
    "promoted", "rejected", "rolled_back", "agent_started", "agent_stopped",
)
_KIND = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")
#: Sources merged into the timeline by ``list_events``.
SOURCES = ("automation", "deployments", "monitoring")


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the timeline. ``at`` is ms since the epoch (UTC); ``data`` holds the
    numbers behind ``reason``; ``source`` is ``automation``, ``deployments`` or
    ``monitoring`` (the latter two are merged in from their own logs)."""

    id: int
    at: int
    kind: str
    trigger: str = ""
    pipeline: str = ""
    model: str = ""
    version: int | None = None
    deployment: str = ""
    run_id: str | None = None
    actor: str = ""
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    source: str = "automation"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise InvalidArgument(f"invalid event kind {kind!r}: use a lowercase word of at most "
                              f"32 letters, digits or '_', e.g. {', '.join(EVENT_KINDS[:4])}")
    return kind


@contextmanager
def _connection(target: Any, *, write: bool) -> Iterator[sa.Connection]:
    """``target`` is a connection (used as is: the caller's transaction) or a store."""
    if isinstance(target, sa.Connection):
        yield target
    else:
        with target.write() if write else target.read() as conn:
            yield conn


def record_event(target: sa.Connection | MetadataStore, kind: str, *, trigger: str = "",
                 pipeline: str = "", model: str = "", version: int | None = None,
                 deployment: str = "", run_id: str | None = None, actor: str = "",
                 reason: str = "", data: Mapping[str, Any] | None = None,
                 at: int | None = None) -> Event:
    """Append an event to the timeline (in ``target``'s transaction when it is a
    connection, in one of its own when it is a :class:`~loopml.store.MetadataStore`)."""
    _check_kind(kind)
    values = {"at": now_ms() if at is None else int(at), "kind": kind, "trigger": trigger,
              "pipeline": pipeline, "model": model, "version": version,
              "deployment": deployment, "run_id": run_id, "actor": actor, "reason": reason,
              "data": _dumps(data)}
    with _connection(target, write=True) as conn:
        result = conn.execute(automation_events.insert().values(**values))
        key = result.inserted_primary_key
        assert key is not None
        return _event({**values, "id": int(key[0])})


def _dumps(data: Mapping[str, Any] | None) -> str:
    try:
        return orjson.dumps(dict(data or {}), default=str,
                            option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as exc:
        raise InvalidArgument(f"event data must be JSON-like (numbers, text, lists, maps): "
                              f"{exc}") from None


def _event(row: Mapping[Any, Any]) -> Event:
    return Event(id=int(row["id"]), at=int(row["at"]), kind=row["kind"],
                 trigger=row["trigger"] or "", pipeline=row["pipeline"] or "",
                 model=row["model"] or "", version=row["version"],
                 deployment=row["deployment"] or "", run_id=row["run_id"],
                 actor=row["actor"] or "", reason=row["reason"] or "",
                 data=orjson.loads(row["data"] or "{}"))


def list_events(source: sa.Connection | MetadataStore, *, since: int | None = None,
                kind: str | None = None, model: str | None = None,
                deployment: str | None = None, limit: int = 200,
                include: tuple[str, ...] = SOURCES) -> list[Event]:
    """The newest ``limit`` events at or after ``since`` (ms), oldest first; only of
    ``kind`` / ``model`` / ``deployment`` when given. ``include`` chooses which logs are
    merged: ``automation`` (this module's), ``deployments`` and ``monitoring``."""
    unknown = sorted(set(include) - set(SOURCES))
    if unknown:
        raise InvalidArgument(f"unknown event source(s) {', '.join(unknown)}; use "
                              f"{', '.join(SOURCES)}")
    if limit < 1:
        raise InvalidArgument(f"limit must be at least 1, got {limit}")
    found: list[Event] = []
    with _connection(source, write=False) as conn:
        if "automation" in include:
            found += _automation(conn, since, kind, model, deployment, limit)
        if "deployments" in include:
            found += _deployments(conn, since, kind, model, deployment, limit)
        if "monitoring" in include:
            found += _alerts(conn, since, kind, model, deployment, limit)
    found.sort(key=lambda e: (e.at, SOURCES.index(e.source), e.id))
    return found[-limit:]


def _automation(conn: sa.Connection, since: int | None, kind: str | None, model: str | None,
                deployment: str | None, limit: int) -> list[Event]:
    table = automation_events
    query = sa.select(table)
    if since is not None:
        query = query.where(table.c.at >= since)
    if kind is not None:
        query = query.where(table.c.kind == kind)
    if model is not None:
        query = query.where(table.c.model == model)
    if deployment is not None:
        query = query.where(table.c.deployment == deployment)
    rows = conn.execute(query.order_by(table.c.at.desc(), table.c.id.desc()).limit(limit))
    return [_event(row._mapping) for row in rows]


def _deployments(conn: sa.Connection, since: int | None, kind: str | None, model: str | None,
                 deployment: str | None, limit: int) -> list[Event]:
    from loopml.deployments.tables import deployment_events, deployments

    table = deployment_events
    query = (sa.select(table, deployments.c.name.label("deployment_name"))
             .select_from(table.join(deployments, deployments.c.id == table.c.deployment_id)))
    if kind is not None:
        if not kind.startswith("deploy_"):
            return []
        query = query.where(table.c.kind == kind.removeprefix("deploy_"))
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if model is not None:
        query = query.where(table.c.model == model)
    if deployment is not None:
        query = query.where(deployments.c.name == deployment)
    rows = conn.execute(query.order_by(table.c.created_at.desc(), table.c.id.desc())
                        .limit(limit))
    return [Event(id=int(r.id), at=int(r.created_at), kind=f"deploy_{r.kind}", model=r.model,
                  version=r.to_version, deployment=r.deployment_name, actor=r.actor,
                  reason=r.reason or _moved(r.from_version, r.to_version),
                  data={"from_version": r.from_version, "to_version": r.to_version},
                  source="deployments")
            for r in rows]


def _moved(old: int | None, new: int | None) -> str:
    return f"version {old} -> {new}" if old is not None else f"version {new}"


def _alerts(conn: sa.Connection, since: int | None, kind: str | None, model: str | None,
            deployment: str | None, limit: int) -> list[Event]:
    try:
        from loopml.monitoring.tables import monitor_alerts
    except ImportError:  # pragma: no cover - monitoring is part of loopml
        return []
    table = monitor_alerts
    query = sa.select(table)
    if kind is not None:
        if not kind.startswith("alert_"):
            return []
        query = query.where(table.c.kind == kind.removeprefix("alert_"))
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if model is not None:
        query = query.where(table.c.model == model)
    if deployment is not None:
        query = query.where(table.c.endpoint == deployment)
    rows = conn.execute(query.order_by(table.c.created_at.desc(), table.c.id.desc())
                        .limit(limit))
    return [Event(id=int(r.id), at=int(r.created_at), kind=f"alert_{r.kind}", model=r.model,
                  version=r.version, deployment=r.endpoint, reason=r.message,
                  data={"column": r.column_name, "statistic": r.statistic, "value": r.value,
                        "threshold": r.threshold},
                  source="monitoring")
            for r in rows]
