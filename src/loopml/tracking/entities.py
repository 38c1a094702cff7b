"""Values of experiment tracking: experiments, runs, metric points, artifacts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

__all__ = ["ArtifactInfo", "Experiment", "Metric", "Run", "RunStatus", "millis_to_datetime"]


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


def millis_to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    name: str
    description: str
    created_at: int
    lifecycle: str = "active"


@dataclass(frozen=True, slots=True)
class Metric:
    """One point of a metric's history. ``timestamp`` is in milliseconds since the epoch."""

    key: str
    value: float
    step: int = 0
    timestamp: int = 0

    @property
    def is_nan(self) -> bool:
        return math.isnan(self.value)


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    path: str
    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class Run:
    """A run as stored: its info, params, tags and the latest value of each metric."""

    id: str
    experiment_id: str
    name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    parent_run_id: str | None = None
    user: str = ""
    lifecycle: str = "active"
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        """Wall time in seconds; None while the run has not ended."""
        return None if self.end_time is None else (self.end_time - self.start_time) / 1000

    @property
    def started(self) -> datetime:
        return datetime.fromtimestamp(self.start_time / 1000, tz=UTC)

    @property
    def ended(self) -> datetime | None:
        return millis_to_datetime(self.end_time)
