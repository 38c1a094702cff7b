"""The retrain driver: one :class:`Retrain` per firing, in a thread of its own.

::

    run_started ─► the pipeline run (on the trigger's or the agent's executor)
        ├► run_succeeded ─► the version it registered becomes a pending candidate
        └► run_failed ─► retried per the trigger's max_retries (resuming the failed run)

It records everything through its :class:`~loopml.automation.agent.Agent` (events, the
retrain's row, the lease holder) and stops waiting between attempts when the agent stops.
With the retrain's outcome it records, for the agent's code-change triggers, the contents
of the code they watch as they were when the retrain fired (``code``): what the version
it registered was built from.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.automation import records
from loopml.automation.triggers import Trigger
from loopml.errors import InvalidArgument, LoopmlError, StepFailed
from loopml.tracking.records import now_ms

if TYPE_CHECKING:
    from loopml.automation.agent import Agent
    from loopml.automation.records import AutomationRun
    from loopml.pipelines.entities import PipelineRun

__all__ = ["Retrain"]

#: How often a retrain's driver looks for the pipeline run it started (to record it).
_POLL_S = 0.1


def _seconds_between(start: int, end: int | None) -> float | None:
    return None if end is None else round((end - start) / 1000, 3)


@dataclass
class _Outcome:
    run_id: str | None
    result: PipelineRun | None = None
    error: str | None = None


class Retrain:
    """Drives one retrain in a thread of its own: runs the pipeline, records it, retries a
    failure."""

    def __init__(self, agent: Agent, run: AutomationRun, trigger: Trigger, *,
                 resume_from: str | None = None, attempt: int = 1,
                 code: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.agent = agent
        self.row = run
        self.trigger = trigger
        self.resume_from = resume_from
        self.attempt = attempt
        #: code-change trigger → {"model": ..., "files": {path: content hash}} at the firing
        self.code = dict(code or {})
        self.thread = threading.Thread(target=self._run, name=f"retrain-{trigger.name}",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def _event(self, kind: str, **fields: Any) -> None:
        self.agent.event(kind, trigger=self.trigger, **fields)

    def _run(self) -> None:
        try:
            self._drive()
        except Exception as exc:  # a bug or a lost database: say so, never die silently
            message = f"{type(exc).__name__}: {exc}"
            self.agent.log(f"{self.trigger.name}: the retrain's driver failed: {message}")
            try:
                with self.agent.meta.write() as conn:
                    if records.finish_run(conn, self.row, holder=self.agent.holder,
                                          succeeded=False, run_id=None, error=message):
                        self.agent.event("run_failed", conn=conn, trigger=self.trigger,
                                         reason=f"the retrain's driver failed: {message}",
                                         data={"retrain": self.row.id})
            except Exception:  # the database itself is gone: the next agent recovers it
                pass
        finally:
            self.agent.wake()

    def _drive(self) -> None:
        attempt, resume_from = self.attempt, self.resume_from
        while True:
            outcome = self._attempt(attempt, resume_from)
            if outcome.result is not None:
                self.conclude(outcome.result)
                return
            last = attempt >= self.row.max_attempts
            delay = self.trigger.retry_delay
            then = "giving up" if last else f"retrying in {delay:g} s"
            reason = (f"attempt {attempt} of {self.row.max_attempts} failed: {outcome.error}; "
                      f"{then}")
            if last:
                with self.agent.meta.write() as conn:
                    if records.finish_run(conn, self.row, holder=self.agent.holder,
                                          succeeded=False, run_id=outcome.run_id,
                                          error=outcome.error):
                        self.agent.event("run_failed", conn=conn, trigger=self.trigger,
                                         run_id=outcome.run_id, reason=reason,
                                         data={"attempt": attempt, "retrain": self.row.id})
                self.agent.log(f"{self.trigger.name}: {reason}")
                return
            self._event("run_failed", run_id=outcome.run_id, reason=reason,
                        data={"attempt": attempt, "retrain": self.row.id, "retry": True})
            self.agent.log(f"{self.trigger.name}: {reason}")
            if self.agent.wait_stopping(delay):
                return  # stopping: the retrain stays running for the next agent to resume
            attempt += 1
            resume_from = outcome.run_id

    def _pipeline(self) -> Any:
        from loopml.pipelines.flow import Pipeline
        from loopml.pipelines.loading import load_object

        target = self.trigger.pipeline
        if isinstance(target, Pipeline):
            return target
        file = target.rpartition(":")[0]
        if file.endswith(".py"):  # import the file afresh: its code may have changed
            path = os.path.abspath(file)
            for name, module in list(sys.modules.items()):
                if getattr(module, "__file__", None) == path:
                    del sys.modules[name]
        found = load_object(target)
        if not isinstance(found, Pipeline):
            raise InvalidArgument(f"{target} is a {type(found).__name__}, not a "
                                  "@loopml.pipeline; point the trigger at a pipeline")
        return found

    def _attempt(self, attempt: int, resume_from: str | None) -> _Outcome:
        from loopml.pipelines.flow import resume, run_pipeline

        started = now_ms()
        try:
            pipe = self._pipeline()
            client, executor = self.agent.client, self.trigger.executor or self.agent.executor
            with cf.ThreadPoolExecutor(1, thread_name_prefix="pipeline") as pool:
                if resume_from is not None:
                    future = pool.submit(resume, resume_from, client=client, executor=executor,
                                         pipeline=pipe, progress=False)
                else:
                    future = pool.submit(run_pipeline, pipe, dict(self.trigger.params),
                                         executor=executor, client=client, progress=False)
                run_id = self._watch(future, pipe.source, started, attempt)
                result = future.result()
        except StepFailed as exc:
            return _Outcome(run_id=exc.run_id or None, error=str(exc))
        except Exception as exc:
            message = str(exc) if isinstance(exc, LoopmlError) else \
                f"{type(exc).__name__}: {exc}"
            return _Outcome(run_id=None, error=message)
        if run_id is None:
            self._record_start(result.run_id, attempt, at=result.created_at)
        return _Outcome(run_id=result.run_id, result=result)

    def _watch(self, future: cf.Future[Any], source: str, since: int,
               attempt: int) -> str | None:
        """Wait for the pipeline run, recording ``run_started`` as soon as its row exists."""
        found: str | None = None
        while True:
            try:
                future.exception(timeout=_POLL_S)
                break
            except cf.TimeoutError:
                pass
            if found is None:
                found = self._find_run(source, since)
                if found is not None:
                    self._record_start(found, attempt)
        if found is None and future.exception() is not None:
            error = future.exception()
            found = getattr(error, "run_id", None) or None
            if found is not None:
                self._record_start(found, attempt)
        return found

    def _find_run(self, source: str, since: int) -> str | None:
        import sqlalchemy as sa

        from loopml.pipelines.tables import pipeline_runs as table

        with self.agent.meta.read() as conn:
            row = conn.execute(sa.select(table.c.run_id).where(
                table.c.source == source, table.c.host == socket.gethostname(),
                table.c.pid == os.getpid(), table.c.created_at >= since - 1)
                .order_by(table.c.created_at.desc()).limit(1)).first()
        return None if row is None else str(row.run_id)

    def _record_start(self, run_id: str, attempt: int, *, at: int | None = None) -> None:
        with self.agent.meta.write() as conn:
            records.set_run_attempt(conn, self.row, holder=self.agent.holder, attempt=attempt,
                                    run_id=run_id)
            how = f"resumed as attempt {attempt}" if attempt > 1 else "started"
            executor = self.trigger.executor or self.agent.executor or \
                self.agent.client.settings.executor
            reason = (f"pipeline run {run_id} of {Path(self.trigger.pipeline_ref).name} {how} "
                      f"on the {executor} executor")
            self.agent.event("run_started", conn=conn, trigger=self.trigger, run_id=run_id,
                             at=at, reason=reason, data={"attempt": attempt,
                                                         "retrain": self.row.id,
                                                         "executor": executor})

    def conclude(self, result: PipelineRun) -> None:
        """Record a pipeline run that finished: the version it registered becomes a pending
        candidate for the rollout policy."""
        from loopml.registry import records as registry

        with self.agent.meta.read() as conn:
            versions = registry.versions_of_runs(conn, [result.run_id])
        model = self.trigger.model
        built = [v for v in versions if model is None or v.model == model]
        version = built[-1] if built else None
        seconds = _seconds_between(result.created_at, result.ended_at)
        if version is not None:
            what = f"registered {version.model} v{version.version}"
        else:
            skipped = [s.reason for s in result.steps if s.step == "register" and s.reason]
            what = f"registered no version of {model or 'any model'}" + (
                f" ({skipped[0]})" if skipped else "")
        reason = f"pipeline run {result.run_id} finished in {seconds} s and {what}"
        with self.agent.meta.write() as conn:
            if records.finish_run(conn, self.row, holder=self.agent.holder, succeeded=True,
                                  run_id=result.run_id,
                                  model=None if version is None else version.model,
                                  version=None if version is None else version.version):
                for name, seen in self.code.items():
                    if version is not None and seen.get("model") == version.model:
                        records.record_built_code(conn, name, version=version.version,
                                                  files=seen["files"])
                self.agent.event(
                    "run_succeeded", conn=conn, trigger=self.trigger, run_id=result.run_id,
                    model=version.model if version else (model or ""),
                    version=None if version is None else version.version, reason=reason,
                    data={"seconds": seconds, "retrain": self.row.id,
                          "metrics": version.metrics if version else {},
                          "steps": {s.node: s.status.value for s in result.steps}})
        self.agent.log(f"{self.trigger.name}: {reason}")

