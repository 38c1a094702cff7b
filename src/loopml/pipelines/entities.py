"""What is stored about pipeline runs and steps, as read back from the metadata store."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from loopml.pipelines.materializers import OutputRef

__all__ = ["PipelineRun", "StepRecord", "StepStatus"]


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def succeeded(self) -> bool:
        """Completed or reused: its outputs exist."""
        return self in (StepStatus.COMPLETED, StepStatus.CACHED)


@dataclass(frozen=True)
class StepRecord:
    node: str
    step: str
    status: StepStatus
    child_run_id: str | None = None
    cache_key: str | None = None
    outputs: tuple[OutputRef, ...] = ()
    cached_from: str | None = None
    attempts: int = 0
    started_at: int | None = None
    ended_at: int | None = None
    error: str | None = None
    reason: str | None = None
    logs: str | None = None
    device: str | None = None

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "step": self.step, "status": self.status.value,
                "child_run_id": self.child_run_id, "cache_key": self.cache_key,
                "outputs": [o.to_json() for o in self.outputs],
                "cached_from": self.cached_from, "attempts": self.attempts,
                "started_at": self.started_at, "ended_at": self.ended_at,
                "duration_ms": self.duration_ms, "error": self.error, "reason": self.reason,
                "logs": self.logs, "device": self.device}


@dataclass(frozen=True)
class PipelineRun:
    """A pipeline run (also a tracked run, ``run_id``) and its steps in DAG order."""

    run_id: str
    pipeline: str
    status: str
    source: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)
    executor: str = "inline"
    sample: int | None = None
    resumed_from: str | None = None
    host: str = ""
    pid: int | None = None
    created_at: int = 0
    ended_at: int | None = None
    steps: tuple[StepRecord, ...] = ()

    def step(self, node: str) -> StepRecord:
        for record in self.steps:
            if record.node == node:
                return record
        raise KeyError(node)

    @property
    def succeeded(self) -> bool:
        return self.status == "FINISHED"

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "pipeline": self.pipeline, "status": self.status,
                "source": self.source, "params": self.params, "executor": self.executor,
                "sample": self.sample, "resumed_from": self.resumed_from, "host": self.host,
                "pid": self.pid, "created_at": self.created_at, "ended_at": self.ended_at,
                "graph": self.graph, "steps": [s.to_json() for s in self.steps]}
