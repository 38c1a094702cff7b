"""Reading and writing pipeline runs and steps (functions over a connection, like the other
domain ``records`` modules). Each function is one part of the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from loopml.errors import InvalidArgument, NotFound
from loopml.pipelines.entities import PipelineRun, StepRecord, StepStatus
from loopml.pipelines.materializers import OutputRef
from loopml.pipelines.tables import pipeline_runs, pipeline_steps
from loopml.tracking.entities import Run, RunStatus
from loopml.tracking.records import create_run, now_ms, set_run_status
from loopml.tracking.tables import params as params_table
from loopml.tracking.tables import tags as tags_table

__all__ = ["find_cached", "finish_pipeline_run", "finish_step", "get_pipeline_run",
           "insert_pipeline_run", "list_pipeline_runs", "record_steps", "start_step"]


def _outputs_json(outputs: Sequence[OutputRef]) -> str:
    return json.dumps([o.to_json() for o in outputs], separators=(",", ":"))


def _outputs(text: str | None) -> tuple[OutputRef, ...]:
    return tuple(OutputRef.from_json(o) for o in json.loads(text)) if text else ()


def insert_pipeline_run(conn: sa.Connection, *, run_id: str, pipeline: str, source: str,
                        params: Mapping[str, Any], graph: Mapping[str, Any], executor: str,
                        sample: int | None, resumed_from: str | None, host: str,
                        pid: int) -> None:
    conn.execute(pipeline_runs.insert().values(
        run_id=run_id, pipeline=pipeline, source=source,
        params=json.dumps(params, default=str), graph=json.dumps(graph), executor=executor,
        sample=sample, status=RunStatus.RUNNING.value, resumed_from=resumed_from, host=host,
        pid=pid, created_at=now_ms()))


def finish_pipeline_run(conn: sa.Connection, run_id: str, status: RunStatus) -> None:
    ended = now_ms()
    conn.execute(pipeline_runs.update().where(pipeline_runs.c.run_id == run_id)
                 .values(status=status.value, ended_at=ended))
    set_run_status(conn, run_id, status, ended)


def start_step(conn: sa.Connection, *, pipeline_run_id: str, experiment_id: str, node: str,
               step: str, cache_key: str | None, params: Mapping[str, str], user: str,
               run_name: str) -> Run:
    """Create the step's child run (params, step tags) and its row as RUNNING."""
    child = create_run(conn, experiment_id=experiment_id, name=run_name,
                       parent_run_id=pipeline_run_id, user=user)
    if params:  # a new run: no earlier value to conflict with
        conn.execute(_INSERT_PARAM, [{"run_id": child.id, "key": k, "value": v}
                                     for k, v in params.items()])
    conn.execute(_INSERT_TAG, [
        {"run_id": child.id, "key": k, "value": v}
        for k, v in (("loopml.pipeline.run_id", pipeline_run_id),
                     ("loopml.pipeline.step", step), ("loopml.pipeline.node", node))])
    conn.execute(_INSERT_STEP, {
        "run_id": pipeline_run_id, "node": node, "step": step, "child_run_id": child.id,
        "status": StepStatus.RUNNING.value, "cache_key": cache_key, "attempts": 1,
        "started_at": child.start_time})
    return child


_INSERT_PARAM = params_table.insert()
_INSERT_TAG = tags_table.insert()
_INSERT_STEP = pipeline_steps.insert()
_FINISH_STEP = (pipeline_steps.update()
                .where(pipeline_steps.c.run_id == sa.bindparam("pipeline_run_id"),
                       pipeline_steps.c.node == sa.bindparam("node_id"))
                .values({c: sa.bindparam(c) for c in (
                    "status", "outputs", "attempts", "ended_at", "error", "reason", "logs",
                    "device")}))


def finish_step(conn: sa.Connection, *, pipeline_run_id: str, node: str, status: StepStatus,
                child_run_id: str, outputs: Sequence[OutputRef] = (), attempts: int = 1,
                error: str | None = None, reason: str | None = None,
                logs: str | None = None, device: str | None = None) -> None:
    ended = now_ms()
    conn.execute(_FINISH_STEP, {
        "pipeline_run_id": pipeline_run_id, "node_id": node, "status": status.value,
        "outputs": _outputs_json(outputs) if outputs else None, "attempts": attempts,
        "ended_at": ended, "error": error, "reason": reason, "logs": logs, "device": device})
    set_run_status(conn, child_run_id,
                   RunStatus.FAILED if status is StepStatus.FAILED else RunStatus.FINISHED,
                   ended)


def record_steps(conn: sa.Connection, pipeline_run_id: str,
                 steps: Sequence[Mapping[str, Any]]) -> None:
    """Steps that did not execute: reused (``status`` cached, with ``cache_key``, ``outputs``
    and ``cached_from``) or skipped (with the ``reason``). Each mapping also has ``node``,
    ``step`` and ``status``."""
    if not steps:
        return
    stamp = now_ms()
    conn.execute(_INSERT_STEP, [{
        "run_id": pipeline_run_id, "node": s["node"], "step": s["step"],
        "status": StepStatus(s["status"]).value, "cache_key": s.get("cache_key"),
        "outputs": _outputs_json(s["outputs"]) if s.get("outputs") else None,
        "cached_from": s.get("cached_from"), "reason": s.get("reason"),
        "child_run_id": None, "attempts": 0, "started_at": stamp, "ended_at": stamp}
        for s in steps])


def find_cached(conn: sa.Connection, cache_key: str) -> tuple[tuple[OutputRef, ...], str] | None:
    """The outputs of the latest completed step with this key, and the run that made them."""
    row = conn.execute(_FIND_CACHED, {"key": cache_key}).first()
    return None if row is None else (_outputs(row[0]), str(row[1]))


_FIND_CACHED = (sa.select(pipeline_steps.c.outputs, pipeline_steps.c.run_id)
                .where(pipeline_steps.c.cache_key == sa.bindparam("key"),
                       pipeline_steps.c.status == StepStatus.COMPLETED.value)
                .order_by(pipeline_steps.c.ended_at.desc()).limit(1))


def _step(row: Any) -> StepRecord:
    return StepRecord(node=row.node, step=row.step, status=StepStatus(row.status),
                      child_run_id=row.child_run_id, cache_key=row.cache_key,
                      outputs=_outputs(row.outputs), cached_from=row.cached_from,
                      attempts=row.attempts, started_at=row.started_at,
                      ended_at=row.ended_at, error=row.error, reason=row.reason,
                      logs=row.logs, device=row.device)


def _run(row: Any, steps: tuple[StepRecord, ...] = ()) -> PipelineRun:
    return PipelineRun(run_id=row.run_id, pipeline=row.pipeline, status=row.status,
                       source=row.source, params=json.loads(row.params),
                       graph=json.loads(row.graph), executor=row.executor, sample=row.sample,
                       resumed_from=row.resumed_from, host=row.host, pid=row.pid,
                       created_at=row.created_at, ended_at=row.ended_at, steps=steps)


def _resolve(conn: sa.Connection, id_or_prefix: str) -> Any:
    column = pipeline_runs.c.run_id
    rows = conn.execute(sa.select(pipeline_runs).where(
        column.startswith(id_or_prefix, autoescape=True)).limit(2)).all()
    exact = [r for r in rows if r.run_id == id_or_prefix]
    if exact:
        return exact[0]
    if len(rows) == 1 and len(id_or_prefix) >= 4:
        return rows[0]
    if len(rows) > 1:
        raise InvalidArgument(f"run id prefix {id_or_prefix!r} matches several pipeline runs; "
                              "give more characters")
    raise NotFound(f"no pipeline run {id_or_prefix!r}; list them with 'loopml pipelines list'")


def get_pipeline_run(conn: sa.Connection, id_or_prefix: str) -> PipelineRun:
    row = _resolve(conn, id_or_prefix)
    graph_order = {n["id"]: i for i, n in enumerate(json.loads(row.graph).get("nodes", []))}
    steps = conn.execute(sa.select(pipeline_steps)
                         .where(pipeline_steps.c.run_id == row.run_id)).all()
    ordered = sorted((_step(s) for s in steps), key=lambda s: graph_order.get(s.node, 1 << 30))
    return _run(row, tuple(ordered))


def list_pipeline_runs(conn: sa.Connection, *, pipeline: str | None = None,
                       limit: int = 50) -> list[PipelineRun]:
    query = sa.select(pipeline_runs).order_by(pipeline_runs.c.created_at.desc()).limit(limit)
    if pipeline is not None:
        query = query.where(pipeline_runs.c.pipeline == pipeline)
    return [_run(row) for row in conn.execute(query).all()]
