"""Writes of tracking data: params (immutable), tags, metric points and their latest values."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from loopml.errors import Conflict
from loopml.store.dialect import insert_on_conflict
from loopml.tracking.tables import latest_metrics, metrics, params, tags

__all__ = ["MetricPoint", "write_metric_points", "write_params", "write_tags"]


class MetricPoint(NamedTuple):
    """A metric point on its way to the database (``timestamp`` in ms)."""

    run_id: str
    experiment_id: str
    key: str
    value: float
    step: int
    timestamp: int


def write_params(conn: sa.Connection, run_id: str, values: Mapping[str, str]) -> None:
    """Record params; one already logged with another value is a :class:`Conflict`."""
    if not values:
        return
    conn.execute(_statement(conn, "params", _params_insert),
                 [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()])
    stored = dict(conn.execute(
        sa.select(params.c.key, params.c.value)
        .where(params.c.run_id == run_id, params.c.key.in_(list(values)))).all())
    changed = {k: (stored[k], v) for k, v in values.items() if stored.get(k) != v}
    if changed:
        key, (old, new) = next(iter(changed.items()))
        raise Conflict(f"param {key!r} of run {run_id} is already {old!r} and cannot change to "
                       f"{new!r}: params are fixed once logged; log the new value under another "
                       "name, or start a new run")


def write_tags(conn: sa.Connection, run_id: str, values: Mapping[str, str]) -> None:
    """Set tags (a tag can be overwritten, unlike a param)."""
    if not values:
        return
    conn.execute(_statement(conn, "tags", _tags_upsert),
                 [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()])


def write_metric_points(conn: sa.Connection, points: Sequence[MetricPoint]) -> None:
    """Append points to the history and move each (run, key)'s latest value forward."""
    if not points:
        return
    conn.execute(_INSERT_METRIC, [_history_row(p) for p in points])
    conn.execute(_statement(conn, "latest", _latest_upsert),
                 [_latest_row(p) for p in _latest_per_key(points)])


# Statements are built once per dialect: building an upsert (``excluded``, ``set_``) costs
# far more than executing it, and SQLAlchemy caches the compiled form of a reused statement.
_INSERT_METRIC = metrics.insert()
_statements: dict[tuple[str, str], Any] = {}


def _statement(conn: sa.Connection, name: str, build: Callable[[sa.Connection], Any]) -> Any:
    key = (conn.dialect.name, name)
    stmt = _statements.get(key)
    if stmt is None:
        stmt = _statements[key] = build(conn)
    return stmt


def _params_insert(conn: sa.Connection) -> Any:
    return insert_on_conflict(conn, params).on_conflict_do_nothing()


def _tags_upsert(conn: sa.Connection) -> Any:
    stmt = insert_on_conflict(conn, tags)
    return stmt.on_conflict_do_update(index_elements=["run_id", "key"],
                                      set_={"value": stmt.excluded.value})


def _latest_upsert(conn: sa.Connection) -> Any:
    stmt = insert_on_conflict(conn, latest_metrics)
    current = latest_metrics.c
    newer = sa.or_(stmt.excluded.step > current.step,
                   sa.and_(stmt.excluded.step == current.step,
                           stmt.excluded.timestamp >= current.timestamp))
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={c: getattr(stmt.excluded, c) for c in ("step", "timestamp", "value", "is_nan")},
        where=newer)


def _history_row(point: MetricPoint) -> dict[str, object]:
    nan = math.isnan(point.value)
    return {"run_id": point.run_id, "key": point.key, "step": point.step,
            "timestamp": point.timestamp, "value": None if nan else point.value, "is_nan": nan}


def _latest_row(point: MetricPoint) -> dict[str, object]:
    row = _history_row(point)
    row["experiment_id"] = point.experiment_id
    return row


def _latest_per_key(points: Iterable[MetricPoint]) -> list[MetricPoint]:
    latest: dict[tuple[str, str], MetricPoint] = {}
    for point in points:
        key = (point.run_id, point.key)
        seen = latest.get(key)
        if seen is None or (point.step, point.timestamp) >= (seen.step, seen.timestamp):
            latest[key] = point
    return list(latest.values())
