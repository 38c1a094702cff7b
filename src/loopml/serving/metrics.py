"""Prometheus metrics of a model server, in the text exposition format (version 0.0.4).

Counters and histograms keyed by label values, updated on the event loop (one thread, no
locks) for a few hundred nanoseconds a request, and rendered on ``GET /metrics``::

    loopml_requests_total{route="/predict",model="churn",version="3",status="200"} 1042
    loopml_request_duration_seconds_bucket{route="/predict",model="churn",version="3",
                                           le="0.005"} 1001
    loopml_batch_size_bucket{model="churn",version="3",method="predict",le="8"} 311

Gauges that other threads own (the payload log's queue) are read through callbacks when
rendered. Each worker process (``--workers N``) counts its own requests and carries a
``worker`` label, as Prometheus' multi-process setups do.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable, Sequence

__all__ = ["Counter", "Histogram", "Registry"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    """A monotonically increasing count per label values."""

    kind = "counter"

    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name, self.doc, self.labels = name, doc, tuple(labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1) -> None:
        self.values[key] = self.values.get(key, 0) + amount

    def samples(self, worker: str) -> list[str]:
        names = (*self.labels, "worker")
        return [f"{self.name}{_labels(names, (*key, worker))} {_number(value)}"
                for key, value in sorted(self.values.items())]


class Gauge(Counter):
    """A value that goes up and down, set directly or read from a callback when rendered."""

    kind = "gauge"

    def __init__(self, name: str, doc: str, labels: Sequence[str],
                 read: Callable[[], dict[tuple[str, ...], float]] | None = None) -> None:
        super().__init__(name, doc, labels)
        self._read = read

    def set(self, key: tuple[str, ...], value: float) -> None:
        self.values[key] = value

    def samples(self, worker: str) -> list[str]:
        if self._read is not None:
            self.values = dict(self._read())
        return super().samples(worker)


class Histogram:
    """Observations counted into fixed buckets per label values."""

    kind = "histogram"

    def __init__(self, name: str, doc: str, labels: Sequence[str],
                 buckets: Sequence[float]) -> None:
        self.name, self.doc, self.labels = name, doc, tuple(labels)
        self.bounds = tuple(float(b) for b in buckets)
        self.series: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum

    def observe(self, key: tuple[str, ...], value: float) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = [0.0] * (len(self.bounds) + 2)
        series[bisect.bisect_left(self.bounds, value)] += 1
        series[-1] += value

    def count(self, key: tuple[str, ...] | None = None) -> dict[float, float]:
        """Cumulative counts per upper bound (all label values together when ``key`` is
        None): for tests and the readiness page."""
        totals = [0.0] * (len(self.bounds) + 1)
        for k, series in self.series.items():
            if key is None or k == key:
                for i, n in enumerate(series[:-1]):
                    totals[i] += n
        out, running = {}, 0.0
        for bound, n in zip((*self.bounds, math.inf), totals, strict=True):
            running += n
            out[bound] = running
        return out

    def samples(self, worker: str) -> list[str]:
        names = (*self.labels, "worker")
        lines = []
        for key, series in sorted(self.series.items()):
            values = (*key, worker)
            running = 0.0
            for bound, n in zip((*self.bounds, math.inf), series[:-1], strict=True):
                running += n
                le = 'le="' + _number(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(names, values, le)} "
                             f"{_number(running)}")
            lines.append(f"{self.name}_sum{_labels(names, values)} {_number(series[-1])}")
            lines.append(f"{self.name}_count{_labels(names, values)} {_number(running)}")
        return lines


class Registry:
    """The metrics of one server process."""

    def __init__(self) -> None:
        self.metrics: list[Counter | Histogram] = []
        self.worker = str(os.getpid())
        route = ("route", "model", "version")
        self.requests = self.counter("loopml_requests_total",
                                     "Requests answered, by route, model version and status.",
                                     (*route, "status"))
        self.errors = self.counter("loopml_request_errors_total",
                                   "Requests answered with a 4xx or 5xx status.",
                                   (*route, "status"))
        self.latency = self.histogram("loopml_request_duration_seconds",
                                      "Time from request to response, in seconds.", route,
                                      LATENCY_BUCKETS)
        self.batch_requests = self.histogram("loopml_batch_size",
                                             "Requests predicted together in one batch.",
                                             ("model", "version", "method"), BATCH_BUCKETS)
        self.batch_rows = self.histogram("loopml_batch_rows",
                                         "Rows predicted together in one batch.",
                                         ("model", "version", "method"), BATCH_BUCKETS)
        self.swaps = self.counter("loopml_model_swaps_total",
                                  "Model versions switched to (the first load counts).",
                                  ("model", "version"))
        self.load_failures = self.counter("loopml_model_load_failures_total",
                                          "Versions that could not be loaded or warmed.",
                                          ("model", "version"))
        self.fallbacks = self.counter(
            "loopml_fallbacks_total", "Requests a canary or a version on trial failed, "
            "answered by the safe version instead.", ("model", "version"))
        self.rollbacks = self.counter(
            "loopml_auto_rollbacks_total", "Automatic rollbacks away from a version.",
            ("model", "version"))

    def counter(self, name: str, doc: str, labels: Sequence[str]) -> Counter:
        metric = Counter(name, doc, labels)
        self.metrics.append(metric)
        return metric

    def gauge(self, name: str, doc: str, labels: Sequence[str],
              read: Callable[[], dict[tuple[str, ...], float]] | None = None, *,
              kind: str = "gauge") -> Gauge:
        """A gauge (or, with ``kind="counter"``, a counter another object keeps, read
        through ``read`` when rendered)."""
        metric = Gauge(name, doc, labels, read)
        metric.kind = kind
        self.metrics.append(metric)
        return metric

    def histogram(self, name: str, doc: str, labels: Sequence[str],
                  buckets: Sequence[float]) -> Histogram:
        metric = Histogram(name, doc, labels, buckets)
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        lines = []
        for metric in self.metrics:
            lines.append(f"# HELP {metric.name} {metric.doc}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples(self.worker))
        return "\n".join(lines) + "\n"
