"""Running a traced DAG: :class:`Runner`.

The driver walks the nodes in order. A node whose upstream nodes are all settled is
skipped (an upstream node was skipped, a gate is false, or it publishes in a sample run),
reused (a resumed run's earlier output, or a cache hit) or submitted to the executor;
the driver then waits for whichever attempt ends first, up to the earliest step deadline.
A failed attempt is retried after its backoff delay; a step that fails for good stops
new submissions, lets running steps finish, and fails the run with a message that names
the step, the exception, its logs and how to resume.

Every state change is one short transaction: a step's child run and row are written when
it starts and updated when it ends, so a run killed with ``kill -9`` can be resumed from
what it recorded.
"""

from __future__ import annotations

import concurrent.futures as cf
import heapq
import itertools
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.errors import LoopmlError, StepFailed
from loopml.pipelines import records
from loopml.pipelines.cache import cache_key
from loopml.pipelines.datasets import Dataset
from loopml.pipelines.entities import PipelineRun, StepStatus
from loopml.pipelines.executors.base import Executor
from loopml.pipelines.materializers import OutputRef, load_output
from loopml.pipelines.task import LOG_ARTIFACT, StepResult, StepTask, Stored, execute_step
from loopml.pipelines.trace import Graph, Node, StepOutput
from loopml.tracking.entities import Run, RunStatus

if TYPE_CHECKING:
    from loopml.client.embedded import Client

__all__ = ["Reporter", "Runner"]

Reporter = Callable[[str, StepStatus, str], None]


def print_progress(node: str, status: StepStatus, detail: str) -> None:
    """The default reporter: one line per settled step on stderr."""
    marks = {StepStatus.COMPLETED: "done", StepStatus.CACHED: "cached",
             StepStatus.SKIPPED: "skipped", StepStatus.FAILED: "FAILED",
             StepStatus.RUNNING: "running"}
    sys.stderr.write(f"  {marks.get(status, status.value):>7}  {node}"
                     f"{'  ' + detail if detail else ''}\n")


@dataclass
class _Attempt:
    node: Node
    run: Run
    key: str
    number: int
    deadline: float | None


class Runner:
    """Runs one pipeline run to its end; create one per run."""

    def __init__(self, client: Client, graph: Graph, *, run: Run, executor: Executor,
                 datasets: Mapping[str, Dataset], sample: int | None = None,
                 use_cache: bool = True, reuse: Mapping[str, tuple[OutputRef, ...]] | None = None,
                 resumed_from: str | None = None, reporter: Reporter | None = None) -> None:
        self.client = client
        self.graph = graph
        self.run = run
        self.executor = executor
        self.datasets = dict(datasets)
        self.sample = sample
        self.use_cache = use_cache
        self.reuse = dict(reuse or {})
        self.resumed_from = resumed_from
        self.report = reporter or (lambda node, status, detail: None)
        self.status: dict[str, StepStatus] = {n: StepStatus.PENDING for n in graph.nodes}
        self.outputs: dict[str, OutputRef] = {}
        self.values: dict[str, Any] = {}
        self.failure: str | None = None
        self._in_flight: dict[cf.Future[StepResult], _Attempt] = {}
        # (due, tie-breaker, node, next attempt number, cache key), soonest first
        self._retries: list[tuple[float, int, str, int, str]] = []
        self._retry_order = itertools.count()
        self._runs: dict[str, Run] = {}
        self._deferred: list[dict[str, Any]] = []

    def _write_deferred(self, conn: Any) -> None:
        records.record_steps(conn, self.run.id, self._deferred)
        self._deferred.clear()

    # -- the loop ------------------------------------------------------------------------
    def execute(self) -> None:
        """Run every node that can run; record the outcome. Raises nothing for step errors
        (they are in ``self.failure``); KeyboardInterrupt cancels running steps."""
        pending = list(self.graph.nodes.values())
        while True:
            pending = self._start_ready(pending)
            if not self._in_flight and not self._retries:
                break
            self._wait_some()

    def _start_ready(self, pending: list[Node]) -> list[Node]:
        progressed = True
        while progressed and pending:
            progressed = False
            waiting: list[Node] = []
            for node in pending:
                if any(self.status[u] in (StepStatus.PENDING, StepStatus.RUNNING)
                       for u in node.upstream):
                    waiting.append(node)
                elif self.failure is not None:
                    waiting.append(node)  # a failed run starts nothing new
                else:
                    self._settle_or_submit(node)
                    progressed = True
            pending = waiting
            if self.failure is not None:
                break
        return pending

    def _settle_or_submit(self, node: Node) -> None:
        reason = self._skip_reason(node)
        if reason is not None:
            self._record_skip(node, reason)
            return
        key = cache_key(node, self.outputs, self.datasets)
        reused = self.reuse.get(node.id)
        if reused:
            self._record_cached(node, key, reused, self.resumed_from, "reused from the run "
                                f"being resumed ({self.resumed_from})")
            return
        if self.use_cache and node.step.options.cache:
            with self.client.meta.read() as conn:
                hit = records.find_cached(conn, key)
            if hit is not None and hit[0]:
                self._record_cached(node, key, hit[0], hit[1], f"cache hit (run {hit[1]})")
                return
        self._submit(node, key, attempt=1, child=None)

    def _skip_reason(self, node: Node) -> str | None:
        for upstream in node.deps:
            if self.status[upstream] is StepStatus.SKIPPED:
                return f"needs the output of {upstream}, which was skipped"
        for gate in node.gates:
            if self.status[gate.condition] is StepStatus.SKIPPED:
                return f"its condition {gate.condition} was skipped"
            if not self._value(gate.condition):
                return gate.reason
        if self.sample is not None and node.step.options.publishes:
            return f"sample run (--sample {self.sample}): nothing is registered or deployed"
        return None

    def _value(self, node_id: str) -> Any:
        if node_id not in self.values:
            self.values[node_id] = load_output(self.outputs[node_id], self.client.blobs,
                                               self._cache_dir)
        return self.values[node_id]

    @property
    def _cache_dir(self) -> Any:
        return self.client.settings.home / "cache" / "outputs"

    # -- submitting ----------------------------------------------------------------------
    def _argument(self, value: Any, in_process: bool) -> Any:
        if isinstance(value, StepOutput):
            if in_process and value.node in self.values:
                return self.values[value.node]
            if in_process:
                return self._value(value.node)
            return Stored(self.outputs[value.node])
        if isinstance(value, Dataset):
            return self.datasets.get(value.ref, value)
        if isinstance(value, list):
            return [self._argument(v, in_process) for v in value]
        if isinstance(value, tuple):
            return tuple(self._argument(v, in_process) for v in value)
        if isinstance(value, dict):
            return {k: self._argument(v, in_process) for k, v in value.items()}
        return value

    def _submit(self, node: Node, key: str, *, attempt: int, child: Run | None) -> None:
        if child is None:
            child = self._start_child(node, key)
        in_process = self.executor.in_process
        task = StepTask(
            settings=self.client.settings, pipeline_run_id=self.run.id, run=child,
            node=node.id, step=node.step,
            args=tuple(self._argument(a, in_process) for a in node.args),
            kwargs={k: self._argument(v, in_process) for k, v in node.kwargs.items()},
            sample=self.sample, client=self.client if in_process else None)
        try:
            future = self.executor.submit(execute_step, task,
                                          resources=node.step.options.resources)
        except LoopmlError as exc:
            future = cf.Future()
            future.set_exception(exc)
        timeout = node.step.options.timeout
        self.status[node.id] = StepStatus.RUNNING
        self._in_flight[future] = _Attempt(node, child, key, attempt,
                                           None if timeout is None else time.monotonic() + timeout)

    def _start_child(self, node: Node, key: str) -> Run:
        from loopml.identity import current_user

        params = {name: _param_text(value) for name, value in node.params().items()}
        with self.client.meta.write() as conn:
            self._write_deferred(conn)
            child = records.start_step(
                conn, pipeline_run_id=self.run.id, experiment_id=self.run.experiment_id,
                node=node.id, step=node.step.name, cache_key=key, params=params,
                user=current_user(), run_name=f"{self.run.name}.{node.id}")
        self._runs[node.id] = child
        return child

    # -- waiting -------------------------------------------------------------------------
    def _wait_some(self) -> None:
        now = time.monotonic()
        horizons = [a.deadline for a in self._in_flight.values() if a.deadline is not None]
        if self._retries:
            horizons.append(self._retries[0][0])
        timeout = max(0.0, min(horizons) - now) if horizons else None
        try:
            done, _ = cf.wait(list(self._in_flight), timeout=timeout,
                              return_when=cf.FIRST_COMPLETED)
        except KeyboardInterrupt:
            self._cancel_all("interrupted (Ctrl-C)")
            raise
        for future in done:
            attempt = self._in_flight.pop(future)
            self._finish(attempt, _result_of(future))
        now = time.monotonic()
        for future, attempt in list(self._in_flight.items()):
            if attempt.deadline is not None and now >= attempt.deadline and not future.done():
                self.executor.cancel(future)
                del self._in_flight[future]
                seconds = attempt.node.step.options.timeout
                self._finish(attempt, StepResult(error=f"TimeoutError: the attempt ran longer "
                                                 f"than the step's timeout ({seconds:g} s)"))
        while self._retries and self._retries[0][0] <= now and self.failure is None:
            _, _, node_id, number, key = heapq.heappop(self._retries)
            self._submit(self.graph.nodes[node_id], key, attempt=number,
                         child=self._runs[node_id])
        if self.failure is not None:
            self._retries.clear()

    def _finish(self, attempt: _Attempt, result: StepResult) -> None:
        node, options = attempt.node, attempt.node.step.options
        if result.error is not None and attempt.number <= options.retries \
                and self.failure is None:
            delay = options.retry_delay * 2 ** (attempt.number - 1)
            self.report(node.id, StepStatus.RUNNING,
                        f"attempt {attempt.number} failed ({result.error}); retrying in "
                        f"{delay:g} s")
            heapq.heappush(self._retries, (time.monotonic() + delay, next(self._retry_order),
                                           node.id, attempt.number + 1, attempt.key))
            return
        if result.error is not None:
            status = StepStatus.FAILED
        elif result.skipped is not None:
            status = StepStatus.SKIPPED
        else:
            status = StepStatus.COMPLETED
        with self.client.meta.write() as conn:
            self._write_deferred(conn)
            records.finish_step(conn, pipeline_run_id=self.run.id, node=node.id, status=status,
                                child_run_id=attempt.run.id, outputs=result.outputs,
                                attempts=attempt.number, error=result.error,
                                reason=result.skipped, logs=result.logs, device=result.device)
        self.status[node.id] = status
        if status is StepStatus.COMPLETED:
            self.outputs[node.id] = result.outputs[0]
            if result.has_value:
                self.values[node.id] = result.value
            self.report(node.id, status, f"{result.seconds:.2f} s")
        elif status is StepStatus.SKIPPED:
            self.report(node.id, status, result.skipped or "")
        else:
            self.report(node.id, status, result.error or "")
            self.failure = self._failure_message(node, attempt, result)

    def _failure_message(self, node: Node, attempt: _Attempt, result: StepResult) -> str:
        tries = f" after {attempt.number} attempts" if attempt.number > 1 else ""
        logs = (f"its logs: 'loopml runs show {attempt.run.id}' (artifact {LOG_ARTIFACT})"
                if result.logs else f"its run: 'loopml runs show {attempt.run.id}'")
        return (f"step {node.id!r} failed{tries}: {result.error}; {logs}; fix it and resume "
                f"with 'loopml pipelines resume {self.run.id}'")

    def _cancel_all(self, reason: str) -> None:
        for future, attempt in list(self._in_flight.items()):
            self.executor.cancel(future)
            with self.client.meta.write() as conn:
                records.finish_step(conn, pipeline_run_id=self.run.id, node=attempt.node.id,
                                    status=StepStatus.FAILED, child_run_id=attempt.run.id,
                                    attempts=attempt.number, error=reason)
        self._in_flight.clear()

    # -- recording steps that do not execute ----------------------------------------------
    # Steps that do not execute are recorded with the next write (a step starting or ending,
    # or the run's end): a fully cached run then costs one write transaction in all.
    def _record_skip(self, node: Node, reason: str) -> None:
        self._deferred.append({"node": node.id, "step": node.step.name,
                               "status": StepStatus.SKIPPED, "reason": reason})
        self.status[node.id] = StepStatus.SKIPPED
        self.report(node.id, StepStatus.SKIPPED, reason)

    def _record_cached(self, node: Node, key: str, outputs: tuple[OutputRef, ...],
                       source_run: str | None, detail: str) -> None:
        self._deferred.append({"node": node.id, "step": node.step.name,
                               "status": StepStatus.CACHED, "cache_key": key,
                               "outputs": outputs, "cached_from": source_run})
        self.status[node.id] = StepStatus.CACHED
        self.outputs[node.id] = outputs[0]
        self.report(node.id, StepStatus.CACHED, detail)

    # -- the result --------------------------------------------------------------------
    def finish(self) -> PipelineRun:
        status = RunStatus.FINISHED if self.failure is None else RunStatus.FAILED
        with self.client.meta.write() as conn:
            self._write_deferred(conn)
            records.finish_pipeline_run(conn, self.run.id, status)
            result = records.get_pipeline_run(conn, self.run.id)
        if self.failure is not None:
            raise StepFailed(self.failure, run_id=self.run.id)
        return result


def _result_of(future: cf.Future[StepResult]) -> StepResult:
    try:
        return future.result()
    except cf.CancelledError:
        return StepResult(error="CancelledError: the task was cancelled")
    except BaseException as exc:
        return StepResult(error=f"{type(exc).__name__}: {exc}")


def _param_text(value: Any) -> str:
    import json

    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def driver_identity() -> tuple[str, int]:
    """(host, pid) of this process, recorded on the run to tell a dead driver from a live one."""
    return socket.gethostname(), os.getpid()
