"""Mirroring requests to a shadow version, which answers nobody.

After the caller has its answer, :meth:`ShadowMirror.submit` appends the request to a queue
on the event loop: that is all a request pays then. The queue leaves as one job when it
holds ``batch_rows`` rows or half of ``max_pending`` requests, or ``max_wait_s`` after its
first request, whichever comes first; at most one job is in flight, and requests that
arrive meanwhile form the next. The loop checks each request against the shadow's
signature (unless the primary's check is known to be the same: then the primary's checked
input is reused) and cuts the job into model calls of up to ``batch_rows`` rows; the
shadow's own thread makes the model calls, and nothing else; back on the loop, each
request's answer or failure goes to ``on_result`` (the payload log: role ``shadow``, the
caller's request id, and a latency that includes the wait for the job).

Why so little on the thread: Python work on a second thread makes every system call of the
event loop hand the interpreter lock over and wait to get it back, which cost the callers
about twice the work itself (measured: 15 µs of the loop's CPU per mirrored request while
the thread spent 7 µs). The model call mostly runs in numpy's C code.

The shadow never delays a caller by more than a job's checks and answers on the loop (a
millisecond or two for 256 requests): a slow shadow model holds its own thread only, and
at most ``max_pending`` mirrored requests wait or are in flight; beyond that they are
dropped and counted (``loopml_shadow_requests_total{outcome="dropped"}``), never queued
without bound. Batching is what keeps a shadow cheap: one model call per job instead of
one per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any

from loopml.errors import LoopmlError, ModelFailed
from loopml.serving.model import ServedVersion
from loopml.serving.validation import Checked

__all__ = ["ShadowAnswer", "ShadowMirror", "ShadowResult"]

logger = logging.getLogger("loopml.serving")

#: one answer of a shadow: request id, status, seconds since it was mirrored, rows,
#: predictions (None on failure), error (None on success)
ShadowAnswer = tuple[str, int, float, int, Any, str | None]
#: (version, method, the answers of one model call); called on the event loop
ShadowResult = Callable[[ServedVersion, str, list[ShadowAnswer]], None]
#: (version, requests, rows) of each model call; called on the event loop
ShadowBatch = Callable[[ServedVersion, str, int, int], None]

#: one mirrored request: version, method, parsed body, the primary's checked input when the
#: shadow's check is the same (else None), request id, when it was mirrored
_Entry = tuple[ServedVersion, str, Any, Checked | None, str, float]
#: the requests of one model call, each with its checked input
_Group = list[tuple[_Entry, Checked]]


class ShadowMirror:
    """Bounded, fire-and-forget, batched predictions of a shadow version."""

    def __init__(self, *, on_result: ShadowResult, executor: Executor,
                 max_pending: int = 1000, batch_rows: int = 256, max_wait_s: float = 0.02,
                 on_batch: ShadowBatch | None = None) -> None:
        self._on_result = on_result
        self._executor = executor
        self._max_pending = max_pending
        self._batch_rows = batch_rows
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._queue: list[_Entry] = []
        self._in_flight: asyncio.Future[list[list[Any]]] | None = None
        self._in_flight_count = 0
        self._timer: asyncio.TimerHandle | None = None
        #: a job leaves as soon as this many requests wait (and the shadow is idle)
        self._dispatch_at = min(batch_rows, max(1, max_pending // 2))
        self._counts: dict[tuple[str, ...], float] = {}

    @property
    def pending(self) -> int:
        """Mirrored requests queued or in flight."""
        return len(self._queue) + self._in_flight_count

    @property
    def counts(self) -> dict[tuple[str, ...], float]:
        """Mirrored requests by (model, version, outcome): ok, error, dropped."""
        return dict(self._counts)

    def _count(self, version: ServedVersion, outcome: str, amount: int = 1) -> None:
        key = (version.name, version.label, outcome)
        self._counts[key] = self._counts.get(key, 0) + amount  # on the loop only

    @staticmethod
    def reusable(primary: ServedVersion, shadow: ServedVersion) -> bool:
        """Whether the primary's checked input is the shadow's too (the same signature
        check, compiled from the same inputs and options)."""
        key = primary.validator.key
        return bool(key) and key == shadow.validator.key

    def submit(self, version: ServedVersion, body: Any, rid: str, method: str,
               checked: Checked | None = None) -> bool:
        """Mirror one request to ``version`` (on the event loop); False (counted as dropped)
        when ``max_pending`` requests are queued or in flight already."""
        queue = self._queue
        if len(queue) + self._in_flight_count >= self._max_pending:
            self._count(version, "dropped")
            return False
        queue.append((version, method, body, checked, rid, time.perf_counter()))
        if self._in_flight is None:
            if len(queue) >= self._dispatch_at:
                self._dispatch()
            elif self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._max_wait_s, self._dispatch)
        return True

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._in_flight is not None or not self._queue:
            return
        entries, self._queue = self._queue, []
        groups, refused = self._group(entries)
        for entry, refusal in refused:
            self._report(entry[0], entry[1], [self._answer(entry, refusal.http_status, 0,
                                                           None, refusal.message)])
        if not groups:
            return
        self._in_flight_count = sum(len(group) for group in groups)
        loop = asyncio.get_running_loop()
        self._in_flight = loop.run_in_executor(self._executor, self._predict, groups)
        self._in_flight.add_done_callback(partial(self._finished, groups))

    def _group(self, entries: list[_Entry]) -> tuple[list[_Group], list[tuple[_Entry,
                                                                            LoopmlError]]]:
        """``entries`` checked and cut into model calls of up to ``batch_rows`` rows."""
        groups: list[_Group] = []
        refused: list[tuple[_Entry, LoopmlError]] = []
        group: _Group = []
        rows = 0
        for entry in entries:
            version, method = entry[0], entry[1]
            try:
                checked = entry[3] if entry[3] is not None else self._check(entry)
            except LoopmlError as exc:
                refused.append((entry, exc))
                continue
            if group and (group[0][0][0] is not version or group[0][0][1] != method
                          or rows + checked.rows > self._batch_rows
                          or not version.validator.batchable):
                groups.append(group)
                group, rows = [], 0
            group.append((entry, checked))
            rows += checked.rows
        if group:
            groups.append(group)
        return groups, refused

    def _finished(self, groups: list[_Group], done: asyncio.Future[list[list[Any]]]) -> None:
        self._in_flight = None
        self._in_flight_count = 0
        if done.cancelled():
            outcomes: list[list[Any]] = [[None] * len(group) for group in groups]
        elif done.exception() is not None:
            outcomes = [[done.exception()] * len(group) for group in groups]
        else:
            outcomes = done.result()
        for group, results in zip(groups, outcomes, strict=True):
            self._answered(group, results)
        if self._queue:
            if len(self._queue) >= self._dispatch_at:
                self._dispatch()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._max_wait_s,
                                                                    self._dispatch)

    @staticmethod
    def _check(entry: _Entry) -> Checked:
        version, method, body = entry[0], entry[1], entry[2]
        if method == "predict_proba" and not version.has_proba:
            raise LoopmlError(f"{version.name}/{version.version} has no predict_proba")
        return version.validator.check(body)

    # -- in the shadow's thread: the model calls, nothing else ---------------------------
    @staticmethod
    def _predict(groups: list[_Group]) -> list[list[Any]]:
        """Each group's results (or the exception its model call raised)."""
        outcomes: list[list[Any]] = []
        for group in groups:
            version, method = group[0][0][0], group[0][0][1]
            try:
                outcomes.append(version.run(method, [checked for _, checked in group]))
            except Exception as exc:  # a failure of ours: every request of it reports it
                outcomes.append([exc] * len(group))
        return outcomes

    # -- back on the loop ---------------------------------------------------------------
    def _answered(self, group: _Group, results: list[Any]) -> None:
        version, method = group[0][0][0], group[0][0][1]
        now = time.perf_counter()
        answers: list[ShadowAnswer] = []
        for (entry, checked), result in zip(group, results, strict=True):
            if result is None:  # cancelled (the server is stopping)
                answers.append((entry[4], 503, now - entry[5], checked.rows, None,
                                "the server stopped before the shadow answered"))
            elif not isinstance(result, BaseException):
                answers.append((entry[4], 200, now - entry[5], checked.rows, result, None))
            elif isinstance(result, ModelFailed):
                answers.append((entry[4], result.http_status, now - entry[5], checked.rows,
                                None, result.message))
            else:
                answers.append((entry[4], 500, now - entry[5], checked.rows, None,
                                f"the shadow failed ({type(result).__name__})"))
        self._report(version, method, answers)
        if self._on_batch is not None:
            self._on_batch(version, method, len(group), sum(c.rows for _, c in group))

    @staticmethod
    def _answer(entry: _Entry, status: int, rows: int, predictions: Any,
                error: str | None) -> ShadowAnswer:
        return entry[4], status, time.perf_counter() - entry[5], rows, predictions, error

    def _report(self, version: ServedVersion, method: str,
                answers: list[ShadowAnswer]) -> None:
        failed = sum(1 for answer in answers if answer[1] >= 400)
        if failed:
            self._count(version, "error", failed)
        if len(answers) > failed:
            self._count(version, "ok", len(answers) - failed)
        try:
            self._on_result(version, method, answers)
        except Exception:
            logger.exception("logging %d answers of shadow %s/%s failed", len(answers),
                             version.name, version.version)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued, and wait a while for the shadow to answer it."""
        deadline = time.monotonic() + timeout_s
        while (self._queue or self._in_flight is not None) and time.monotonic() < deadline:
            if self._in_flight is None:
                self._dispatch()
            if self._in_flight is not None:
                await asyncio.wait({self._in_flight}, timeout=deadline - time.monotonic())
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
