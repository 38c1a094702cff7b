"""The default executor: tasks run in this interpreter, each on a daemon thread.

No engine and no serialisation: step values pass between steps as Python objects.
Independent tasks run side by side (up to ``inline:N`` at once, 4 by default); daemon
threads let the program exit even when a timed-out step is still running.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
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
        self._slots = threading.BoundedSemaphore(parallel)
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

        def work() -> None:
            with self._slots:
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    result = context.run(fn, *args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)

        threading.Thread(target=work, name=f"loopml-inline-{getattr(fn, '__name__', 'task')}",
                         daemon=True).start()
        return future

    def close(self) -> None:
        self._closed = True
