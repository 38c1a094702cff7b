"""A run being logged to: a context manager that ends the run with the right status."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loopml.tracking.entities import ArtifactInfo, Metric, Run, RunStatus
from loopml.tracking.validation import check_key, metric_value
from loopml.tracking.writes import MetricPoint

if TYPE_CHECKING:
    from loopml.client.embedded import Client

__all__ = ["ActiveRun"]


class ActiveRun:
    """Returned by ``start_run``. An exception inside ``with`` marks the run FAILED
    (KILLED for Ctrl-C) and keeps everything logged before it."""

    def __init__(self, client: Client, run: Run) -> None:
        self._client = client
        self._record = run
        self._checked_keys: set[str] = set()
        self.ended = False
        #: Called once after the run has ended (the module-level API pops its stack here).
        self.on_end: Callable[[ActiveRun], None] | None = None

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def experiment_id(self) -> str:
        return self._record.experiment_id

    @property
    def parent_run_id(self) -> str | None:
        return self._record.parent_run_id

    def __repr__(self) -> str:
        return f"<ActiveRun {self.name} id={self.id}>"

    # -- logging -----------------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        self._client.log_params(self.id, {key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._client.log_params(self.id, params)

    def log_metric(self, key: str, value: Any, step: int = 0,
                   timestamp: int | None = None) -> None:
        """Buffered: costs a few microseconds; durable at the latest when the run ends."""
        if key not in self._checked_keys:
            check_key(key, kind="metric")
            self._checked_keys.add(key)
        number = value if type(value) is float else metric_value(key, value)
        self._client._metric_buffer.add(MetricPoint(
            self.id, self.experiment_id, key, number, int(step),
            int(time.time() * 1000) if timestamp is None else timestamp))

    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0,
                    timestamp: int | None = None) -> None:
        stamp = int(time.time() * 1000) if timestamp is None else timestamp
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, timestamp=stamp)

    def log_batch(self, *, metrics: list[Metric] | None = None,
                  params: Mapping[str, Any] | None = None,
                  tags: Mapping[str, Any] | None = None) -> None:
        self._client.log_batch(self.id, metrics=metrics, params=params, tags=tags)

    def set_tag(self, key: str, value: Any) -> None:
        self._client.set_tags(self.id, {key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._client.set_tags(self.id, tags)

    def log_artifact(self, local_path: str | Path,
                     artifact_path: str | None = None) -> list[ArtifactInfo]:
        return self._client.log_artifact(self.id, local_path, artifact_path)

    def log_text(self, text: str, artifact_file: str) -> ArtifactInfo:
        return self._client.log_text(self.id, text, artifact_file)

    def log_dict(self, data: Any, artifact_file: str) -> ArtifactInfo:
        return self._client.log_dict(self.id, data, artifact_file)

    def use_dataset(self, ref: str) -> None:
        """Record that this run reads the dataset version ``ref`` (lineage)."""
        self._client.use_dataset(self.id, ref)

    def to_record(self) -> Run:
        """The run as stored now (flushes buffered metrics first)."""
        return self._client.get_run(self.id)

    # -- ending ------------------------------------------------------------------
    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        if not self.ended:
            self.ended = True
            try:
                self._client.end_run(self.id, status)
            finally:
                if self.on_end is not None:
                    self.on_end(self)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        self.end(status)
