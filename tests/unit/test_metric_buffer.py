from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from loopml.errors import BackendUnavailable
from loopml.tracking.buffer import MetricBuffer
from loopml.tracking.writes import MetricPoint


def _point(i: int) -> MetricPoint:
    return MetricPoint("run", "exp", "loss", float(i), i, i)


def test_flush_writes_everything_in_order() -> None:
    written: list[MetricPoint] = []
    buffer = MetricBuffer(written.extend, max_points=1000, interval=60)
    for i in range(2500):
        buffer.add(_point(i))
    buffer.flush()
    assert [p.step for p in written] == list(range(2500))
    buffer.close()


def test_background_thread_flushes_on_interval() -> None:
    written: list[MetricPoint] = []
    done = threading.Event()

    def write(points: Sequence[MetricPoint]) -> None:
        written.extend(points)
        done.set()

    buffer = MetricBuffer(write, max_points=10_000, interval=0.05)
    buffer.add(_point(1))
    assert done.wait(5), "the background thread did not flush"
    assert written == [_point(1)]
    buffer.close()


def test_failed_write_keeps_points_and_raises_on_flush() -> None:
    written: list[MetricPoint] = []
    fail = True

    def write(points: Sequence[MetricPoint]) -> None:
        if fail:
            raise BackendUnavailable("database down")
        written.extend(points)

    buffer = MetricBuffer(write, max_points=2, interval=0.01)
    buffer.add(_point(1))
    buffer.add(_point(2))
    time.sleep(0.1)  # the background flush fails and keeps the points
    with pytest.raises(BackendUnavailable):
        buffer.flush()
    assert buffer.pending() == 2
    fail = False
    buffer.flush()
    assert written == [_point(1), _point(2)]
    buffer.close()
