"""Buffered metric logging: a call appends to memory; a background thread writes batches.

``log_metric`` in a training loop costs a list append. Points reach the database every
``interval`` seconds, as soon as ``max_points`` are waiting, and on :meth:`flush` (end of
run, exit). A failed write keeps the points and raises from the next :meth:`flush`, so an
end of run never pretends that lost points were saved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from loopml.tracking.writes import MetricPoint

__all__ = ["MetricBuffer"]


class MetricBuffer:
    def __init__(self, write: Callable[[Sequence[MetricPoint]], None], *,
                 max_points: int, interval: float) -> None:
        self._write = write
        self._max_points = max_points
        self._interval = interval
        self._points: list[MetricPoint] = []
        self._lock = threading.Lock()  # guards _points
        self._write_lock = threading.Lock()  # one write at a time, in order
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def add(self, point: MetricPoint) -> None:
        with self._lock:
            self._points.append(point)
            waiting = len(self._points)
        if self._thread is None:
            self._start()
        if waiting >= self._max_points:
            self._wake.set()

    def pending(self) -> int:
        return len(self._points)

    def flush(self) -> None:
        """Write every waiting point now; raise the error of a failed earlier write."""
        self._drain()
        error, self._error = self._error, None
        if error is not None:
            self._drain()  # retry what the failed write kept; raises if it fails again
            if self._points:
                raise error

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self.flush()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopped:
                return
            self._thread = threading.Thread(target=self._run, name="loopml-metrics",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._drain()
            except BaseException as exc:  # kept for the next flush(): never lost silently
                self._error = exc

    def _drain(self) -> None:
        with self._write_lock:
            with self._lock:
                batch, self._points = self._points, []
            if not batch:
                return
            try:
                self._write(batch)
            except BaseException:
                with self._lock:
                    self._points[:0] = batch
                raise
