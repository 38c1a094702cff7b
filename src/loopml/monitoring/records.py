"""Monitoring in the metadata store: checked windows, their time series, alerts and reference
profiles (plain functions over a connection, in the caller's transaction).

A :class:`~loopml.monitoring.results.MonitorReport` is stored as one ``monitor_reports`` row
and the :func:`result_points` it breaks into, one ``monitor_results`` row each::

    with meta.write() as conn:
        stored = record_report(conn, endpoint="churn-api", report=report, report_blob=digest)
    with meta.read() as conn:
        series = query_results(conn, "churn-api", kind="drift", column="age")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from loopml.errors import InvalidArgument
from loopml.monitoring.results import MonitorReport
from loopml.monitoring.tables import (
    model_references,
    monitor_alerts,
    monitor_reports,
    monitor_results,
)
from loopml.tracking.records import now_ms

__all__ = ["CHECK_KINDS", "Alert", "MonitorResult", "ReferenceRecord", "ResultPoint",
           "StoredReport", "get_reference", "get_report", "insert_alert", "list_alerts",
           "list_reports", "mark_delivered", "put_reference", "query_results",
           "record_report", "result_points"]

#: What a result or an alert is about. ``window`` holds the row counts of a window.
CHECK_KINDS = ("drift", "prediction_drift", "target_drift", "quality", "performance", "window")
_DRIFT_KIND = {"feature": "drift", "prediction": "prediction_drift", "target": "target_drift"}


def _number(value: Any) -> float | None:
    """A float the databases store alike: NaN and infinities (SQLite has no NaN) are None."""
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _inserted_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


@dataclass(frozen=True, slots=True)
class ResultPoint:
    """One statistic of one check of a window, with its threshold and verdict when judged."""

    kind: str
    column: str
    statistic: str
    value: float | None
    threshold: float | None = None
    passed: bool | None = None


@dataclass(frozen=True, slots=True)
class MonitorResult:
    """A stored :class:`ResultPoint`: which endpoint and window it belongs to."""

    report_id: int
    endpoint: str
    window_start: int
    window_end: int
    kind: str
    column: str
    statistic: str
    value: float | None
    threshold: float | None
    passed: bool | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class StoredReport:
    """One checked window: ``report`` (the JSON), ``profile`` (the window's) and
    ``reference`` (the reference profile) are blob digests."""

    id: int
    endpoint: str
    model: str
    version: int | None
    window_start: int
    window_end: int
    rows: int
    failed: tuple[str, ...]
    drift_score: float | None
    report: str
    profile: str | None
    reference: str | None
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": list(self.failed)}


@dataclass(frozen=True, slots=True)
class Alert:
    """A failed check, recorded once, and where it was sent (``delivered``: sink → ``ok``
    or ``error: …``)."""

    id: int
    endpoint: str
    report_id: int | None
    model: str
    version: int | None
    kind: str
    column: str
    statistic: str
    message: str
    value: float | None
    threshold: float | None
    window_start: int
    window_end: int
    created_at: int
    delivered: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delivered": dict(self.delivered)}


@dataclass(frozen=True, slots=True)
class ReferenceRecord:
    """The reference profile of a model version: ``profile`` is its blob digest, ``roles``
    names the prediction and target columns, ``importance`` the features' weights."""

    version_id: str
    profile: str
    roles: dict[str, str]
    importance: dict[str, float] | None
    source: str
    created_at: int
    created_by: str


# -- the time series ---------------------------------------------------------------------
def result_points(report: MonitorReport) -> list[ResultPoint]:
    """The rows of the time series a report breaks into (none for an empty window but the
    row count)."""
    points = [ResultPoint("window", "", "rows", float(report.rows))]
    drift = report.drift
    if drift is not None:
        points.append(ResultPoint("drift", "", "score", _number(drift.score),
                                  drift.threshold, not drift.drifted))
        for check in drift.columns:
            kind = _DRIFT_KIND.get(check.role, "drift")
            points.append(ResultPoint(kind, check.column, check.effect,
                                      _number(check.effect_value), check.threshold,
                                      not check.drifted))
            if check.p_value is not None:
                points.append(ResultPoint(kind, check.column, "p_value",
                                          _number(check.p_value)))
            points.extend(ResultPoint(kind, check.column, name, _number(value))
                          for name, value in sorted(check.statistics.items())
                          if name != check.effect)
    quality = report.quality
    if quality is not None:
        points.append(ResultPoint("quality", "", "issues", float(len(quality.issues)), 0.0,
                                  not quality.failed))
        points.extend(ResultPoint("quality", issue.column, issue.kind, float(issue.count),
                                  None, False if issue.severity == "error" else None)
                      for issue in quality.issues)
    performance = report.performance
    if performance is not None:
        points.append(ResultPoint("performance", "", "labelled", float(performance.labelled)))
        points.extend(ResultPoint("performance", "", name, _number(value),
                                  _number(performance.baseline.get(name)),
                                  name not in performance.degraded)
                      for name, value in sorted(performance.metrics.items()))
    return points


def record_report(conn: sa.Connection, *, endpoint: str, report: MonitorReport,
                  report_blob: str, profile_blob: str | None = None,
                  reference_blob: str | None = None,
                  points: Sequence[ResultPoint] | None = None) -> StoredReport:
    """Store a checked window and its time series (``points``: default
    :func:`result_points` of ``report``)."""
    if report.window is None:
        raise InvalidArgument("only a report of a time window can be stored; "
                              f"{report.current!r} has none")
    start, end = report.window
    model, _, number = (report.model_version or "").partition("/")
    version = int(number) if number.isdigit() else None
    values = {"endpoint": endpoint, "model": model, "version": version, "window_start": start,
              "window_end": end, "rows": report.rows, "failed": ",".join(report.failed_checks),
              "drift_score": None if report.drift is None else _number(report.drift.score),
              "report": report_blob, "profile": profile_blob, "reference": reference_blob,
              "created_at": now_ms()}
    report_id = _inserted_id(conn.execute(monitor_reports.insert().values(**values)))
    rows = [{"report_id": report_id, "endpoint": endpoint, "window_start": start,
             "window_end": end, "kind": p.kind, "column_name": p.column,
             "statistic": p.statistic, "value": _number(p.value),
             "threshold": _number(p.threshold), "passed": p.passed}
            for p in (result_points(report) if points is None else points)]
    if rows:
        conn.execute(monitor_results.insert(), rows)
    return _stored({**values, "id": report_id})


def _stored(row: Any) -> StoredReport:
    data = dict(row)
    return StoredReport(id=data["id"], endpoint=data["endpoint"], model=data["model"],
                        version=data["version"], window_start=data["window_start"],
                        window_end=data["window_end"], rows=data["rows"],
                        failed=tuple(f for f in data["failed"].split(",") if f),
                        drift_score=data["drift_score"], report=data["report"],
                        profile=data["profile"], reference=data["reference"],
                        created_at=data["created_at"])


def _check_kind(kind: str | None) -> str | None:
    if kind is not None and kind not in CHECK_KINDS:
        raise InvalidArgument(f"unknown check {kind!r}; use one of {', '.join(CHECK_KINDS)}")
    return kind


def query_results(conn: sa.Connection, endpoint: str, *, kind: str | None = None,
                  column: str | None = None, statistic: str | None = None,
                  since: int | None = None, until: int | None = None,
                  limit: int = 1000) -> list[MonitorResult]:
    """The stored time series of ``endpoint``, oldest window first: the newest ``limit``
    points of windows ending in [since, until] (ms since the epoch)."""
    table = monitor_results
    query = sa.select(table).where(table.c.endpoint == endpoint)
    if _check_kind(kind) is not None:
        query = query.where(table.c.kind == kind)
    if column is not None:
        query = query.where(table.c.column_name == column)
    if statistic is not None:
        query = query.where(table.c.statistic == statistic)
    if since is not None:
        query = query.where(table.c.window_end >= since)
    if until is not None:
        query = query.where(table.c.window_end <= until)
    rows = conn.execute(query.order_by(table.c.window_end.desc(), table.c.id.desc())
                        .limit(limit)).all()
    return [MonitorResult(report_id=r.report_id, endpoint=r.endpoint,
                          window_start=r.window_start, window_end=r.window_end, kind=r.kind,
                          column=r.column_name, statistic=r.statistic, value=r.value,
                          threshold=r.threshold,
                          passed=None if r.passed is None else bool(r.passed))
            for r in reversed(rows)]


def list_reports(conn: sa.Connection, endpoint: str, *, limit: int = 20) -> list[StoredReport]:
    """The newest ``limit`` checked windows of ``endpoint``, oldest first."""
    rows = conn.execute(sa.select(monitor_reports).where(monitor_reports.c.endpoint == endpoint)
                        .order_by(monitor_reports.c.window_end.desc(),
                                  monitor_reports.c.id.desc()).limit(limit)).all()
    return [_stored(r._mapping) for r in reversed(rows)]


def get_report(conn: sa.Connection, report_id: int) -> StoredReport | None:
    row = conn.execute(sa.select(monitor_reports)
                       .where(monitor_reports.c.id == report_id)).first()
    return None if row is None else _stored(row._mapping)


# -- alerts --------------------------------------------------------------------------------
def _alert(row: Any) -> Alert:
    return Alert(id=row.id, endpoint=row.endpoint, report_id=row.report_id, model=row.model,
                 version=row.version, kind=row.kind, column=row.column_name,
                 statistic=row.statistic, message=row.message, value=row.value,
                 threshold=row.threshold, window_start=row.window_start,
                 window_end=row.window_end, created_at=row.created_at,
                 delivered=orjson.loads(row.delivered))


def insert_alert(conn: sa.Connection, *, endpoint: str, kind: str, message: str,
                 window: tuple[int, int], report_id: int | None = None, model: str = "",
                 version: int | None = None, column: str = "", statistic: str = "",
                 value: float | None = None, threshold: float | None = None) -> Alert:
    """Record a failed check (not yet sent anywhere)."""
    if _check_kind(kind) == "window":
        raise InvalidArgument("'window' holds row counts; an alert is about a check")
    values = {"endpoint": endpoint, "report_id": report_id, "model": model,
              "version": version, "kind": kind, "column_name": column,
              "statistic": statistic, "message": message, "value": _number(value),
              "threshold": _number(threshold), "window_start": window[0],
              "window_end": window[1], "created_at": now_ms(), "delivered": "{}"}
    alert_id = _inserted_id(conn.execute(monitor_alerts.insert().values(**values)))
    return _alert(conn.execute(sa.select(monitor_alerts)
                               .where(monitor_alerts.c.id == alert_id)).one())


def mark_delivered(conn: sa.Connection, alert_ids: Sequence[int],
                   delivered: dict[str, str]) -> None:
    """Record where alerts were sent and how that went."""
    if alert_ids:
        conn.execute(monitor_alerts.update().where(monitor_alerts.c.id.in_(list(alert_ids)))
                     .values(delivered=orjson.dumps(delivered).decode()))


def list_alerts(conn: sa.Connection, *, endpoint: str | None = None,
                since: int | None = None, after: int | None = None,
                kind: str | None = None, limit: int = 100) -> list[Alert]:
    """Alerts, oldest first: of ``endpoint`` (all when None), created at or after ``since``
    (ms since the epoch), with an id above ``after`` (a poller's cursor: pass the last id
    seen), of one ``kind``; the newest ``limit`` of them."""
    table = monitor_alerts
    query = sa.select(table)
    if endpoint is not None:
        query = query.where(table.c.endpoint == endpoint)
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if after is not None:
        query = query.where(table.c.id > after)
    if _check_kind(kind) is not None:
        query = query.where(table.c.kind == kind)
    rows = conn.execute(query.order_by(table.c.id.desc()).limit(limit)).all()
    return [_alert(r) for r in reversed(rows)]


# -- reference profiles --------------------------------------------------------------------
def put_reference(conn: sa.Connection, version_id: str, *, profile: str,
                  roles: dict[str, str], importance: dict[str, float] | None, source: str,
                  created_by: str = "") -> ReferenceRecord:
    """Give a model version its reference profile (replacing the one it had)."""
    values = {"profile": profile, "roles": orjson.dumps(roles).decode(),
              "importance": None if importance is None else orjson.dumps(importance).decode(),
              "source": source, "created_at": now_ms(), "created_by": created_by}
    table = model_references
    done = conn.execute(table.update().where(table.c.version_id == version_id)
                        .values(**values)).rowcount
    if not done:
        conn.execute(table.insert().values(version_id=version_id, **values))
    found = get_reference(conn, version_id)
    assert found is not None
    return found


def get_reference(conn: sa.Connection, version_id: str) -> ReferenceRecord | None:
    row = conn.execute(sa.select(model_references)
                       .where(model_references.c.version_id == version_id)).first()
    if row is None:
        return None
    return ReferenceRecord(version_id=row.version_id, profile=row.profile,
                           roles=orjson.loads(row.roles),
                           importance=None if row.importance is None
                           else orjson.loads(row.importance),
                           source=row.source, created_at=row.created_at,
                           created_by=row.created_by)
