"""Experiments and runs in the metadata store: create, read, update, delete."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from loopml.errors import AlreadyExists, InvalidArgument, NotFound
from loopml.tracking.entities import Experiment, Metric, Run, RunStatus
from loopml.tracking.tables import experiments, latest_metrics, metrics, params, runs, tags

__all__ = ["create_experiment", "create_run", "delete_run", "experiment_id_of_run",
           "find_experiment", "get_experiment", "get_run", "list_experiments",
           "load_runs", "metric_history", "now_ms", "resolve_run_id", "set_run_status"]


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return uuid.uuid4().hex


def _experiment(row: sa.Row[tuple[str, str, str, int, str]]) -> Experiment:
    return Experiment(id=row.id, name=row.name, description=row.description,
                      created_at=row.created_at, lifecycle=row.lifecycle)


def create_experiment(conn: sa.Connection, name: str, *, description: str = "") -> Experiment:
    name = name.strip() if isinstance(name, str) else name
    if not isinstance(name, str) or not name or len(name) > 256:
        raise InvalidArgument(f"invalid experiment name {name!r}: use 1-256 characters")
    experiment = Experiment(id=new_id(), name=name, description=description,
                            created_at=now_ms())
    try:
        with conn.begin_nested():
            conn.execute(experiments.insert().values(
                id=experiment.id, name=name, description=description,
                created_at=experiment.created_at, lifecycle="active"))
    except sa_exc.IntegrityError:
        raise AlreadyExists(f"experiment {name!r} exists already; use it, or choose another "
                            "name") from None
    return experiment


def find_experiment(conn: sa.Connection, name_or_id: str) -> Experiment | None:
    """The experiment with this name, else with this id, else None."""
    for column in (experiments.c.name, experiments.c.id):
        row = conn.execute(sa.select(experiments).where(column == name_or_id)).first()
        if row is not None:
            return _experiment(row)
    return None


def get_experiment(conn: sa.Connection, name_or_id: str) -> Experiment:
    experiment = find_experiment(conn, name_or_id)
    if experiment is None:
        names = conn.execute(sa.select(experiments.c.name).order_by(experiments.c.name)
                             .limit(20)).scalars().all()
        known = ", ".join(names) if names else "none yet"
        raise NotFound(f"no experiment named or with id {name_or_id!r}; existing experiments: "
                       f"{known}")
    return experiment


def list_experiments(conn: sa.Connection) -> list[Experiment]:
    rows = conn.execute(sa.select(experiments).where(experiments.c.lifecycle == "active")
                        .order_by(experiments.c.created_at)).all()
    return [_experiment(row) for row in rows]


def create_run(conn: sa.Connection, *, experiment_id: str, name: str,
               parent_run_id: str | None, user: str, start_time: int | None = None) -> Run:
    run = Run(id=new_id(), experiment_id=experiment_id, name=name, status=RunStatus.RUNNING,
              start_time=start_time or now_ms(), end_time=None, parent_run_id=parent_run_id,
              user=user)
    conn.execute(_INSERT_RUN, {
        "id": run.id, "experiment_id": experiment_id, "name": name,
        "status": run.status.value, "start_time": run.start_time, "end_time": None,
        "parent_run_id": parent_run_id, "user": user, "lifecycle": "active"})
    return run


# Built once: a statement without inline values is compiled once and cached by SQLAlchemy.
_INSERT_RUN = runs.insert()
_SET_STATUS = (runs.update().where(runs.c.id == sa.bindparam("run_id"))
               .values(status=sa.bindparam("status"), end_time=sa.bindparam("end_time")))


def set_run_status(conn: sa.Connection, run_id: str, status: RunStatus,
                   end_time: int | None) -> None:
    result = conn.execute(_SET_STATUS, {"run_id": run_id, "status": status.value,
                                        "end_time": end_time})
    if result.rowcount == 0:
        raise _run_not_found(run_id)


def delete_run(conn: sa.Connection, run_id: str) -> None:
    """Mark a run deleted (kept in the database, hidden from search)."""
    result = conn.execute(runs.update().where(runs.c.id == run_id).values(lifecycle="deleted"))
    if result.rowcount == 0:
        raise _run_not_found(run_id)


def experiment_id_of_run(conn: sa.Connection, run_id: str) -> str:
    experiment_id = conn.execute(sa.select(runs.c.experiment_id)
                                 .where(runs.c.id == run_id)).scalar()
    if experiment_id is None:
        raise _run_not_found(run_id)
    return str(experiment_id)


def _run_not_found(run_id: str) -> NotFound:
    return NotFound(f"no run with id {run_id!r}; list runs with 'loopml runs list'")


def get_run(conn: sa.Connection, run_id: str) -> Run:
    found = load_runs(conn, [run_id])
    if not found:
        raise _run_not_found(run_id)
    return found[0]


def _load_statements() -> tuple[sa.Select[Any], sa.CompoundSelect[Any]]:
    """The two queries of :func:`load_runs`, built once: building a statement costs more
    than running it. ``ids`` is an expanding parameter (one ``IN`` list per call)."""
    ids: sa.BindParameter[list[str]] = sa.bindparam("ids", expanding=True)
    lm = latest_metrics.c
    no_number = sa.cast(sa.null(), sa.Float(precision=53))
    no_text = sa.cast(sa.null(), sa.Text)
    # One statement for the three tables: one round trip, one compiled query.
    values = sa.union_all(
        sa.select(sa.literal("p"), params.c.run_id, params.c.key, params.c.value,
                  no_number.label("number"), sa.false().label("is_nan"))
        .where(params.c.run_id.in_(ids)),
        sa.select(sa.literal("t"), tags.c.run_id, tags.c.key, tags.c.value, no_number,
                  sa.false()).where(tags.c.run_id.in_(ids)),
        sa.select(sa.literal("m"), lm.run_id, lm.key, no_text, lm.value, lm.is_nan)
        .where(lm.run_id.in_(ids)))
    return sa.select(runs).where(runs.c.id.in_(ids)), values


_RUNS_BY_ID, _VALUES_BY_RUN = _load_statements()


def load_runs(conn: sa.Connection, run_ids: Sequence[str]) -> list[Run]:
    """Runs with params, tags and latest metrics, in the order of ``run_ids`` (missing skipped)."""
    if not run_ids:
        return []
    ids = {"ids": list(run_ids)}
    # .all() fetches in one call; iterating a result fetches row by row, twice as slow.
    by_id = {row.id: row for row in conn.execute(_RUNS_BY_ID, ids).all()}
    run_params: dict[str, dict[str, str]] = {i: {} for i in by_id}
    run_tags: dict[str, dict[str, str]] = {i: {} for i in by_id}
    run_metrics: dict[str, dict[str, float]] = {i: {} for i in by_id}
    targets: dict[str, dict[str, Any]] = {"p": run_params, "t": run_tags}
    for kind, run_id, key, text, number, is_nan in conn.execute(_VALUES_BY_RUN, ids).all():
        if kind == "m":
            run_metrics[run_id][key] = math.nan if is_nan else number
        else:
            targets[kind][run_id][key] = text
    return [Run(id=row.id, experiment_id=row.experiment_id, name=row.name,
                status=RunStatus(row.status), start_time=row.start_time,
                end_time=row.end_time, parent_run_id=row.parent_run_id, user=row.user,
                lifecycle=row.lifecycle, params=run_params[row.id],
                metrics=run_metrics[row.id], tags=run_tags[row.id])
            for row in (by_id.get(i) for i in ids["ids"]) if row is not None]


def metric_history(conn: sa.Connection, run_id: str, key: str) -> list[Metric]:
    """Every logged point of one metric of one run, by step then time."""
    m = metrics.c
    rows = conn.execute(sa.select(m.key, m.value, m.step, m.timestamp, m.is_nan)
                        .where(m.run_id == run_id, m.key == key)
                        .order_by(m.step, m.timestamp, m.id)).all()
    if not rows:
        experiment_id_of_run(conn, run_id)  # NotFound for an unknown run
    return [Metric(key=r.key, value=math.nan if r.is_nan else r.value, step=r.step,
                   timestamp=r.timestamp) for r in rows]


def resolve_run_id(conn: sa.Connection, id_or_prefix: str) -> str:
    """A full run id from an id or a unique prefix of at least 4 characters (as git does)."""
    if conn.execute(sa.select(runs.c.id).where(runs.c.id == id_or_prefix)).first():
        return id_or_prefix
    if len(id_or_prefix) >= 4 and all(c in "0123456789abcdef" for c in id_or_prefix):
        found = conn.execute(sa.select(runs.c.id).where(
            runs.c.id.startswith(id_or_prefix, autoescape=True)).limit(2)).scalars().all()
        if len(found) == 1:
            return str(found[0])
        if len(found) > 1:
            raise InvalidArgument(f"run id prefix {id_or_prefix!r} matches several runs; "
                                  "give more characters")
    raise _run_not_found(id_or_prefix)
