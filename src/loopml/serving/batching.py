"""Adaptive micro-batching: concurrent requests to one model are predicted together.

One :class:`MicroBatcher` per (model version, method) lives on the event loop. A request's
checked input joins a queue; a batch (up to ``max_batch_size`` rows) goes to a worker
thread, so the loop keeps reading requests while the model works, and at most one batch per
batcher is in flight. Requests that arrive meanwhile form the next batch, which leaves as
soon as the previous one returns. When the model is idle, the first request of a batch
waits at most ``max_wait_s`` for company, but only while traffic is concurrent (the last
batch held several requests, or requests queued behind it): a lone client is not delayed.

A batch of one request that is alone (``alone()``: no other request is being handled) for
a model whose batches take under ``inline_max_s`` is predicted on the loop: handing it to a
thread and back costs more CPU than such a prediction (about 75 µs and two wake-ups), and
nobody waits for the loop meanwhile.

The work function answers one result per item, in order; a result that is an exception
fails that request only.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

__all__ = ["MicroBatcher"]

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """Collects items of ``size`` rows into batches for ``work`` (run in ``executor``)."""

    def __init__(self, work: Callable[[list[T]], Sequence[Any]], *, executor: Executor,
                 max_batch_size: int, max_wait_s: float, batchable: bool = True,
                 on_batch: Callable[[int, int], None] | None = None,
                 alone: Callable[[], bool] | None = None, inline_max_s: float = 0.001) -> None:
        self._work = work
        self._executor = executor
        self._max_rows = max_batch_size
        self._max_wait_s = max_wait_s
        self._batchable = batchable
        self._on_batch = on_batch
        self._queue: deque[tuple[T, int, asyncio.Future[Any]]] = deque()
        self._queued_rows = 0
        self._busy = False
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._concurrent = False
        self._alone = alone
        self._inline_max_s = inline_max_s
        self._cost_s = math.inf  # how long a batch takes (a moving average)

    async def submit(self, item: T, rows: int) -> Any:
        """The result of ``item`` once its batch has been predicted."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((item, rows, future))
        self._queued_rows += rows
        if not self._busy:
            if self._queued_rows >= self._max_rows or not self._batchable:
                self._dispatch(loop)
            elif self._timer is None:
                if self._concurrent and self._max_wait_s > 0 and not self._is_alone():
                    self._timer = loop.call_later(self._max_wait_s, self._dispatch, loop)
                else:
                    self._timer = loop.call_soon(self._dispatch, loop)
        return await future

    def _take(self) -> list[tuple[T, int, asyncio.Future[Any]]]:
        batch = [self._queue.popleft()]
        rows = batch[0][1]
        while self._queue and self._batchable and rows + self._queue[0][1] <= self._max_rows:
            entry = self._queue.popleft()
            rows += entry[1]
            batch.append(entry)
        self._queued_rows -= rows
        return batch

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self._queue:
            return
        batch = [entry for entry in self._take() if not entry[2].cancelled()]
        if not batch:
            self._dispatch(loop)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch), sum(entry[1] for entry in batch))
        if (len(batch) == 1 and not self._queue and self._cost_s < self._inline_max_s
                and self._is_alone()):
            self._concurrent = False
            try:
                results = self._timed([batch[0][0]])
            except Exception as exc:  # the work function's own failure, not an item's
                results = [exc]
            self._resolve(batch, results)
            return
        self._busy = True
        done = loop.run_in_executor(self._executor, self._timed, [entry[0] for entry in batch])
        done.add_done_callback(lambda finished: self._finish(loop, batch, finished))

    def _is_alone(self) -> bool:
        return self._alone is not None and self._alone()

    def _timed(self, items: list[T]) -> Sequence[Any]:
        started = time.perf_counter()
        try:
            return self._work(items)
        finally:
            elapsed = time.perf_counter() - started
            self._cost_s = elapsed if math.isinf(self._cost_s) else (
                0.8 * self._cost_s + 0.2 * elapsed)

    def _finish(self, loop: asyncio.AbstractEventLoop,
                batch: list[tuple[T, int, asyncio.Future[Any]]],
                finished: asyncio.Future[Sequence[Any]]) -> None:
        self._busy = False
        self._concurrent = len(batch) > 1 or bool(self._queue)
        error = finished.exception()
        self._resolve(batch, [error] * len(batch) if error else finished.result())
        if self._queue:
            self._dispatch(loop)

    @staticmethod
    def _resolve(batch: list[tuple[T, int, asyncio.Future[Any]]],
                 results: Sequence[Any]) -> None:
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():  # the client went away
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
