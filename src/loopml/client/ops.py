"""The operations timeline on the client: automation events, pipeline runs, monitoring
results and alerts (mixed into :class:`~loopml.client.Client`).

These read what the orchestration layers wrote, through the client's metadata store; the
remote client (:class:`~loopml.client.remote_ops.RemoteOpsMethods`) has the same methods
over ``/api/v1``::

    client.list_events(since=..., kind="promoted", limit=50)
    client.list_pipeline_runs(pipeline="train", limit=10)
    client.get_pipeline_run("3f2a")                    # a unique prefix of 4+ characters
    client.list_monitor_results("churn-api", kind="drift")
    client.list_alerts("churn-api", kind="drift")
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from loopml.client.base import ClientBase

if TYPE_CHECKING:
    from loopml.automation.events import Event
    from loopml.monitoring.records import Alert, MonitorResult
    from loopml.pipelines.entities import PipelineRun

__all__ = ["EVENT_SOURCES", "OpsMethods"]

#: The logs :meth:`OpsMethods.list_events` merges (``automation.events.SOURCES``).
EVENT_SOURCES = ("automation", "deployments", "monitoring")


class OpsMethods(ClientBase):
    """Read the timeline of automation, deployments and monitoring."""

    def list_events(self, *, since: int | None = None, kind: str | None = None,
                    model: str | None = None, deployment: str | None = None,
                    limit: int = 200,
                    include: tuple[str, ...] = EVENT_SOURCES) -> list[Event]:
        """The newest ``limit`` events at or after ``since`` (ms since the epoch), oldest
        first; only of ``kind`` / ``model`` / ``deployment`` when given; ``include`` names
        the logs merged (``automation``, ``deployments``, ``monitoring``)."""
        from loopml.automation.events import list_events

        return list_events(self.meta, since=since, kind=kind, model=model,
                           deployment=deployment, limit=limit, include=tuple(include))

    def list_pipeline_runs(self, *, pipeline: str | None = None,
                           limit: int = 50) -> list[PipelineRun]:
        """Recent pipeline runs (of ``pipeline`` when given), newest first, without steps."""
        from loopml.errors import InvalidArgument
        from loopml.pipelines import records

        if limit < 1:
            raise InvalidArgument(f"limit must be at least 1, got {limit}")
        with self.meta.read() as conn:
            return records.list_pipeline_runs(conn, pipeline=pipeline, limit=limit)

    def get_pipeline_run(self, id_or_prefix: str) -> PipelineRun:
        """One pipeline run with its steps in DAG order (a unique prefix of 4+ characters
        names it too)."""
        from loopml.pipelines import records

        with self.meta.read() as conn:
            return records.get_pipeline_run(conn, id_or_prefix)

    def list_monitor_results(self, deployment: str, *, kind: str | None = None,
                             column: str | None = None, statistic: str | None = None,
                             since: int | datetime | None = None,
                             until: int | datetime | None = None,
                             limit: int = 1000) -> list[MonitorResult]:
        """The stored monitoring time series of ``deployment``, oldest window first (see
        :func:`loopml.monitoring.run.list_results`)."""
        from loopml.monitoring.run import list_results

        return list_results(deployment, kind=kind, column=column, statistic=statistic,
                            since=since, until=until, limit=limit, client=self)

    def list_alerts(self, deployment: str | None = None, *,
                    since: int | datetime | None = None, after: int | None = None,
                    kind: str | None = None, limit: int = 100) -> list[Alert]:
        """Alerts of failed checks of ``deployment`` (every one when None), oldest first
        (see :func:`loopml.monitoring.alerts.list_alerts`)."""
        from loopml.monitoring.alerts import list_alerts

        return list_alerts(deployment, since, after=after, kind=kind, limit=limit,
                           client=self)
