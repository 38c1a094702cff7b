"""The default executor: tasks run in this interpreter, each on a daemon thread.

No engine and no serialisation: step values pass between steps as Python objects.
Independent tasks run side by side on up to ``inline:N`` threads (4 by default), started on
demand and reused; they are daemon threads, so the program can exit even while a
timed-out step is still running.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from loopml.errors import InvalidArgument
from loopml.pipelines.executors.base import Executor, Resources

__all__ = ["InlineExecutor"]

T = TypeVar("T")
DEFAULT_PARALLEL = 4


class InlineExecutor(Executor):
    def __init__(self, parallel: int = DEFAULT_PARALLEL) -> None:
        if parallel < 1:
            raise InvalidArgument(f"inline executor needs at least 1 thread, got {parallel}")
        self._parallel = parallel
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for work
        self._closed = False

    @classmethod
    def from_spec(cls, spec: str, *, settings: Any = None) -> InlineExecutor:
        _, _, count = spec.partition(":")
        if not count:
            return cls()
        if not count.isdigit():
            raise InvalidArgument(f"executor {spec!r}: expected inline or inline:N (N threads)")
        return cls(int(count))

    @property
    def max_parallel(self) -> int:
        return self._parallel

    @property
    def in_process(self) -> bool:
        return True

    def submit(self, fn: Callable[..., T], /, *args: Any, resources: Resources | None = None,
               **kwargs: Any) -> cf.Future[T]:
        if self._closed:
            raise InvalidArgument("this executor is closed; open a new one")
        future: cf.Future[T] = cf.Future()
        context = contextvars.copy_context()
        with self._lock:
            self._queue.put((future, context, fn, args, kwargs))
            if self._idle <= 0 and len(self._threads) < self._parallel:
                thread = threading.Thread(target=self._work, name="loopml-inline",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, context, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    result = context.run(fn, *args, **kwargs)
                except BaseException as exc:  # the future carries it
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        """Let the threads end once the queued work is done (a timed-out task's thread
        keeps running until its function returns; it is a daemon, so it never blocks exit)."""
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
