"""Trigger state and the retrains the agent started, in the metadata store (plain functions
over a connection, in the caller's transaction).

Firing is one transaction (:func:`claim_firing`): it checks that the trigger's state is the
one the evaluation read (compare-and-set on ``last_fired_at``) and that no retrain of the
pipeline is running, then records the firing and the running retrain. Two agents, or an
agent and its own restarted self, therefore cannot fire the same trigger twice.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from loopml.automation.tables import automation_runs, trigger_state
from loopml.automation.triggers import BUILT_CODE, source_hashes
from loopml.errors import InvalidArgument, NotFound
from loopml.store.dialect import insert_on_conflict
from loopml.tracking.records import now_ms

if TYPE_CHECKING:
    from loopml.datasets.entities import DatasetVersion
    from loopml.monitoring.records import Alert, MonitorResult
    from loopml.registry.entities import ModelVersion
    from loopml.store import MetadataStore

__all__ = ["AutomationRun", "StoreContext", "TriggerState", "candidate_failures",
           "claim_firing", "finish_run", "get_run", "get_state", "list_runs", "list_states",
           "load_state", "merge_baseline", "record_built_code", "request_fire",
           "return_candidate", "running_run", "set_error", "set_run_attempt",
           "take_candidate", "take_over_run", "update_state", "waiting_candidates"]

RUN_STATUSES = ("running", "succeeded", "failed")
#: A candidate handed this many times and failed each time (``retry-1``, ``retry-2``, ...)
#: waits to be handed again.
_RETRY = "retry-"
#: How many model versions a code-change trigger remembers the code of.
_BUILT_KEPT = 10


@dataclass(frozen=True, slots=True)
class TriggerState:
    """What a trigger remembers between evaluations (see :mod:`loopml.automation.tables`)."""

    name: str
    created_at: int
    last_fired_at: int | None = None
    last_alert_id: int | None = None
    baseline: dict[str, Any] = field(default_factory=dict)
    fire_requested_at: int | None = None
    fire_requested_by: str = ""
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "created_at": self.created_at,
                "last_fired_at": self.last_fired_at, "last_alert_id": self.last_alert_id,
                "baseline": dict(self.baseline), "fire_requested_at": self.fire_requested_at,
                "fire_requested_by": self.fire_requested_by, "last_error": self.last_error}


@dataclass(frozen=True, slots=True)
class AutomationRun:
    """One retrain started by a firing, across its attempts."""

    id: str
    trigger: str
    pipeline: str
    status: str
    attempt: int
    max_attempts: int
    run_id: str | None
    holder: str
    host: str
    pid: int | None
    model: str
    version: int | None
    candidate: str
    error: str | None
    started_at: int
    ended_at: int | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


def _state(row: Any) -> TriggerState:
    return TriggerState(name=row.name, created_at=row.created_at,
                        last_fired_at=row.last_fired_at, last_alert_id=row.last_alert_id,
                        baseline=orjson.loads(row.baseline or "{}"),
                        fire_requested_at=row.fire_requested_at,
                        fire_requested_by=row.fire_requested_by or "",
                        last_error=row.last_error)


def get_state(conn: sa.Connection, name: str) -> TriggerState | None:
    row = conn.execute(sa.select(trigger_state).where(trigger_state.c.name == name)).first()
    return None if row is None else _state(row)


def load_state(conn: sa.Connection, name: str, *, now: int | None = None) -> TriggerState:
    """The state of ``name``, created (empty, ``created_at`` = now) on first use."""
    stamp = now_ms() if now is None else now
    stmt = insert_on_conflict(conn, trigger_state).on_conflict_do_nothing(
        index_elements=["name"])
    conn.execute(stmt, {"name": name, "created_at": stamp, "baseline": "{}",
                        "fire_requested_by": "", "updated_at": stamp})
    state = get_state(conn, name)
    assert state is not None
    return state


def list_states(conn: sa.Connection) -> dict[str, TriggerState]:
    rows = conn.execute(sa.select(trigger_state).order_by(trigger_state.c.name))
    return {row.name: _state(row) for row in rows}


def update_state(conn: sa.Connection, name: str, *, last_alert_id: int | None = None,
                 baseline: Mapping[str, Any] | None = None) -> None:
    """Remember what an evaluation saw without firing (a consumed alert, a baseline)."""
    values: dict[str, Any] = {"updated_at": now_ms()}
    if last_alert_id is not None:
        values["last_alert_id"] = last_alert_id
    if baseline is not None:
        values["baseline"] = orjson.dumps(dict(baseline)).decode()
    conn.execute(trigger_state.update().where(trigger_state.c.name == name).values(**values))


def merge_baseline(conn: sa.Connection, name: str, values: Mapping[str, Any]) -> None:
    """Merge ``values`` into the trigger's baseline as it is now (in this transaction), so
    that what another writer added meanwhile (a retrain's code record) is kept."""
    state = load_state(conn, name)
    update_state(conn, name, baseline={**state.baseline, **values})


def record_built_code(conn: sa.Connection, name: str, *, version: int,
                      files: Mapping[str, str]) -> None:
    """Remember, for code-change trigger ``name``, the content hashes of the code it
    watches as they were when ``version`` of its model was built (the newest versions'
    only)."""
    state = load_state(conn, name)
    built = {k: v for k, v in dict(state.baseline.get(BUILT_CODE) or {}).items()
             if str(k).isdigit()}
    built[str(version)] = {"files": dict(files)}
    kept = sorted(built, key=int)[-_BUILT_KEPT:]
    update_state(conn, name, baseline={**state.baseline, BUILT_CODE: {k: built[k]
                                                                     for k in kept}})


def set_error(conn: sa.Connection, name: str, error: str | None) -> bool:
    """Record the trigger's evaluation error; True when it differs from the last one."""
    row = conn.execute(sa.select(trigger_state.c.last_error)
                       .where(trigger_state.c.name == name)).first()
    if row is None or row.last_error == error:
        return False
    conn.execute(trigger_state.update().where(trigger_state.c.name == name)
                 .values(last_error=error, updated_at=now_ms()))
    return True


def request_fire(conn: sa.Connection, name: str, *, by: str) -> TriggerState:
    """Ask the agent to fire ``name`` on its next evaluation (``loopml trigger fire``)."""
    stamp = now_ms()
    load_state(conn, name, now=stamp)
    conn.execute(trigger_state.update().where(trigger_state.c.name == name)
                 .values(fire_requested_at=stamp, fire_requested_by=by, updated_at=stamp))
    state = get_state(conn, name)
    assert state is not None
    return state


def _run(row: Any) -> AutomationRun:
    return AutomationRun(id=row.id, trigger=row.trigger, pipeline=row.pipeline,
                         status=row.status, attempt=row.attempt, max_attempts=row.max_attempts,
                         run_id=row.run_id, holder=row.holder, host=row.host, pid=row.pid,
                         model=row.model, version=row.version, candidate=row.candidate,
                         error=row.error, started_at=row.started_at, ended_at=row.ended_at)


def running_run(conn: sa.Connection, pipeline: str) -> AutomationRun | None:
    """The retrain of ``pipeline`` running now, if any."""
    row = conn.execute(sa.select(automation_runs).where(
        automation_runs.c.pipeline == pipeline, automation_runs.c.status == "running")
        .order_by(automation_runs.c.started_at).limit(1)).first()
    return None if row is None else _run(row)


def claim_firing(conn: sa.Connection, state: TriggerState, *, pipeline: str, holder: str,
                 max_attempts: int, model: str = "", now: int | None = None,
                 manual: bool = False, last_alert_id: int | None = None,
                 baseline: Mapping[str, Any] | None = None) -> AutomationRun | None:
    """Record that the trigger of ``state`` fires and its retrain runs now; None (nothing
    written) when the state changed since it was read (another agent fired it) or a retrain
    of ``pipeline`` is running. ``manual`` consumes the pending request to fire by hand."""
    stamp = now_ms() if now is None else now
    if running_run(conn, pipeline) is not None:
        return None
    table = trigger_state
    values: dict[str, Any] = {"last_fired_at": stamp, "updated_at": stamp}
    if manual:
        values.update(fire_requested_at=None, fire_requested_by="")
    if last_alert_id is not None:
        values["last_alert_id"] = last_alert_id
    if baseline is not None:
        values["baseline"] = orjson.dumps(dict(baseline)).decode()
    fired = table.c.last_fired_at
    same = fired.is_(None) if state.last_fired_at is None else fired == state.last_fired_at
    updated = conn.execute(table.update().where(table.c.name == state.name, same)
                           .values(**values))
    if updated.rowcount != 1:
        return None
    row = {"id": uuid.uuid4().hex, "trigger": state.name, "pipeline": pipeline,
           "status": "running", "attempt": 1, "max_attempts": max_attempts, "run_id": None,
           "holder": holder, "host": socket.gethostname(), "pid": os.getpid(),
           "model": model, "version": None, "candidate": "", "error": None,
           "started_at": stamp, "ended_at": None}
    conn.execute(automation_runs.insert().values(**row))
    return get_run(conn, str(row["id"]))


def get_run(conn: sa.Connection, run_id: str) -> AutomationRun:
    row = conn.execute(sa.select(automation_runs).where(automation_runs.c.id == run_id)).one()
    return _run(row)


def list_runs(conn: sa.Connection, *, status: str | None = None, candidate: str | None = None,
              limit: int = 100) -> list[AutomationRun]:
    """Retrains, newest first; only of ``status`` / ``candidate`` state when given."""
    if status is not None and status not in RUN_STATUSES:
        raise InvalidArgument(f"unknown retrain status {status!r}; use one of "
                              f"{', '.join(RUN_STATUSES)}")
    query = sa.select(automation_runs)
    if status is not None:
        query = query.where(automation_runs.c.status == status)
    if candidate is not None:
        query = query.where(automation_runs.c.candidate == candidate)
    rows = conn.execute(query.order_by(automation_runs.c.started_at.desc()).limit(limit))
    return [_run(row) for row in rows]


def _owned(run: AutomationRun, holder: str) -> Any:
    return sa.and_(automation_runs.c.id == run.id, automation_runs.c.holder == holder,
                   automation_runs.c.status == "running")


def set_run_attempt(conn: sa.Connection, run: AutomationRun, *, holder: str, attempt: int,
                    run_id: str | None) -> bool:
    """Record the pipeline run of the current attempt; False when ``holder`` no longer
    drives this retrain (another agent took it over)."""
    result = conn.execute(automation_runs.update().where(_owned(run, holder))
                          .values(attempt=attempt, run_id=run_id))
    return result.rowcount == 1


def finish_run(conn: sa.Connection, run: AutomationRun, *, holder: str, succeeded: bool,
               run_id: str | None, model: str | None = None, version: int | None = None,
               error: str | None = None) -> bool:
    """Record the retrain's outcome (and a registered version of ``model`` as a pending
    candidate); False when ``holder`` no longer drives it, in which case nothing is written."""
    values = {"status": "succeeded" if succeeded else "failed", "run_id": run_id,
              "version": version, "candidate": "pending" if version is not None else "",
              "error": error, "ended_at": now_ms()}
    if model is not None:
        values["model"] = model
    result = conn.execute(automation_runs.update().where(_owned(run, holder)).values(**values))
    return result.rowcount == 1


def take_over_run(conn: sa.Connection, run: AutomationRun, *, holder: str) -> bool:
    """Make ``holder`` the driver of a running retrain whose driver is gone (compare-and-set
    on the previous holder); False when someone else changed it first."""
    result = conn.execute(automation_runs.update().where(_owned(run, run.holder))
                          .values(holder=holder, host=socket.gethostname(),
                                  pid=os.getpid()))
    return result.rowcount == 1


def waiting_candidates(conn: sa.Connection, *, limit: int = 100) -> list[AutomationRun]:
    """Retrains whose registered version waits to be handed to the rollout policy (for the
    first time, or again after a failure), newest first."""
    candidate = automation_runs.c.candidate
    rows = conn.execute(sa.select(automation_runs).where(
        automation_runs.c.status == "succeeded",
        sa.or_(candidate == "pending", candidate.startswith(_RETRY)))
        .order_by(automation_runs.c.started_at.desc()).limit(limit))
    return [_run(row) for row in rows]


def candidate_failures(run: AutomationRun) -> int:
    """How many times handing the retrain's candidate failed so far."""
    if run.candidate.startswith(_RETRY) and run.candidate[len(_RETRY):].isdigit():
        return int(run.candidate[len(_RETRY):])
    return 0


def take_candidate(conn: sa.Connection, run: AutomationRun) -> bool:
    """Mark the retrain's candidate (waiting as ``run`` read it) as handed to the rollout
    policy; False when someone handed it already (exactly one caller gets True)."""
    if run.candidate != "pending" and not run.candidate.startswith(_RETRY):
        return False
    result = conn.execute(automation_runs.update().where(
        automation_runs.c.id == run.id, automation_runs.c.candidate == run.candidate)
        .values(candidate="handed"))
    return result.rowcount == 1


def return_candidate(conn: sa.Connection, run: AutomationRun, *, failures: int,
                     give_up: bool) -> None:
    """Handing the candidate failed for the ``failures``-th time: it waits to be handed
    again (``retry-N``), or, with ``give_up``, is marked ``failed``."""
    conn.execute(automation_runs.update().where(
        automation_runs.c.id == run.id, automation_runs.c.candidate == "handed")
        .values(candidate="failed" if give_up else f"{_RETRY}{failures}"))


# -- what triggers read ----------------------------------------------------------------------
class StoreContext:
    """The :class:`~loopml.automation.triggers.TriggerContext` of the agent: facts from the
    metadata store, what to remember collected in ``updates``."""

    def __init__(self, meta: MetadataStore, state: TriggerState, now: int) -> None:
        self.meta = meta
        self._state = state
        self._now = now
        self.updates: dict[str, Any] = {}

    @property
    def now(self) -> int:
        return self._now

    @property
    def state(self) -> TriggerState:
        return self._state

    def remember(self, **values: Any) -> None:
        self.updates.update(values)

    def model_version(self, model: str, alias: str | None) -> ModelVersion | None:
        from loopml.registry import records as registry
        from loopml.registry.refs import ModelRef

        with self.meta.read() as conn:
            try:
                return registry.resolve(conn, ModelRef(model, alias=alias))
            except NotFound:
                return None

    def dataset_versions(self, name: str) -> Sequence[DatasetVersion]:
        from loopml.datasets import records as datasets

        with self.meta.read() as conn:
            return datasets.list_versions(conn, name)

    def alerts(self, deployment: str, *, after: int | None) -> Sequence[Alert]:
        from loopml.monitoring import records as monitoring

        with self.meta.read() as conn:
            return monitoring.list_alerts(conn, endpoint=deployment, after=after, limit=500)

    def performance(self, deployment: str, metric: str, *,
                    since: int | None) -> Sequence[MonitorResult]:
        from loopml.monitoring import records as monitoring

        with self.meta.read() as conn:
            return monitoring.query_results(conn, deployment, kind="performance",
                                            statistic=metric, since=since)

    def run_tags(self, run_id: str) -> Mapping[str, str]:
        from loopml.tracking import records as tracking

        with self.meta.read() as conn:
            try:
                return tracking.get_run(conn, run_id).tags
            except NotFound:
                return {}

    def code_hashes(self, paths: Sequence[str]) -> Mapping[str, str]:
        return source_hashes(paths)
