"""Deployments, events, pipeline runs and monitoring of the remote client, over ``/api/v1``
(mixed into :class:`~loopml.client.remote.RemoteClient`).

The same methods as the embedded client (:attr:`Client.deployments
<loopml.client.Client.deployments>` and :class:`~loopml.client.ops.OpsMethods`), returning
the same values and raising the same errors; the server records who acted (the token's
name with auth on, else the user this client names).
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopml.client.http import quote_path
from loopml.client.ops import EVENT_SOURCES, OpsMethods
from loopml.durations import epoch_ms

if TYPE_CHECKING:
    from loopml.automation.events import Event
    from loopml.client.http import HttpSession
    from loopml.deployments.policy import Canary, RollbackRule
    from loopml.deployments.records import Deployment, DeploymentEvent
    from loopml.monitoring.records import Alert, MonitorResult
    from loopml.pipelines.entities import PipelineRun

__all__ = ["RemoteDeployments", "RemoteOpsMethods"]

API = "/api/v1"
_STICKY = "header:X-Loopml-Key"  # loopml.deployments.policy.DEFAULT_STICKY


def _q(segment: str) -> str:
    return quote_path(str(segment)).replace("/", "%2F")


# -- values from their JSON ---------------------------------------------------------------
def deployment_in(data: dict[str, Any]) -> Deployment:
    from loopml.deployments.policy import TrafficPolicy
    from loopml.deployments.records import Deployment

    return Deployment(id=data["id"], name=data["name"],
                      policy=TrafficPolicy.from_dict(data["policy"]),
                      revision=data["revision"], created_at=data["created_at"],
                      updated_at=data["updated_at"])


def deployment_event_in(data: dict[str, Any]) -> DeploymentEvent:
    from loopml.deployments.policy import TrafficPolicy
    from loopml.deployments.records import DeploymentEvent

    return DeploymentEvent(**{**data, "policy": TrafficPolicy.from_dict(data["policy"])})


def pipeline_run_in(data: dict[str, Any]) -> PipelineRun:
    from loopml.pipelines.entities import PipelineRun, StepRecord, StepStatus
    from loopml.pipelines.materializers import OutputRef

    steps = tuple(StepRecord(**{
        **{k: v for k, v in step.items() if k != "duration_ms"},
        "status": StepStatus(step["status"]),
        "outputs": tuple(OutputRef.from_json(o) for o in step["outputs"])})
        for step in data.get("steps", []))
    return PipelineRun(**{**data, "steps": steps})


class RemoteDeployments:
    """:class:`~loopml.deployments.api.Deployments` over HTTP: the same methods."""

    def __init__(self, http: HttpSession) -> None:
        self.http = http

    def _policy(self, model: str, canary: str | Canary | None, shadow: str | None,
                sticky: str, rollback: RollbackRule | None, reason: str) -> dict[str, Any]:
        import dataclasses

        return {"model": model, "shadow": shadow, "sticky": sticky, "reason": reason,
                "canary": canary if canary is None or isinstance(canary, str)
                else dataclasses.asdict(canary),
                "rollback": None if rollback is None else dataclasses.asdict(rollback)}

    def create(self, name: str, *, model: str, canary: str | Canary | None = None,
               shadow: str | None = None, sticky: str = _STICKY,
               rollback: RollbackRule | None = None, reason: str = "") -> Deployment:
        body = {"name": name, **self._policy(model, canary, shadow, sticky, rollback, reason)}
        return deployment_in(self.http.request("POST", f"{API}/deployments", json=body))

    def update(self, name: str, *, model: str, canary: str | Canary | None = None,
               shadow: str | None = None, sticky: str = _STICKY,
               rollback: RollbackRule | None = None, reason: str = "") -> DeploymentEvent:
        """Replace the policy of ``name`` (lifting a rollback's pin)."""
        body = self._policy(model, canary, shadow, sticky, rollback, reason)
        return deployment_event_in(self.http.request(
            "PUT", f"{API}/deployments/{_q(name)}", json=body, idempotent=False))

    def get(self, name: str) -> Deployment:
        return deployment_in(self.http.request("GET", f"{API}/deployments/{_q(name)}"))

    def list(self) -> builtins.list[Deployment]:
        found = self.http.request("GET", f"{API}/deployments")["deployments"]
        return [deployment_in(d) for d in found]

    def history(self, name: str) -> builtins.list[DeploymentEvent]:
        found = self.http.request("GET", f"{API}/deployments/{_q(name)}/history")["events"]
        return [deployment_event_in(e) for e in found]

    def rollback(self, name: str, *, reason: str = "") -> DeploymentEvent:
        """Route all traffic of ``name`` back to its last safe version and pin it there."""
        return deployment_event_in(self.http.request(
            "POST", f"{API}/deployments/{_q(name)}/rollback", json={"reason": reason}))


class RemoteOpsMethods(OpsMethods):
    """Deployments and the operations timeline, spoken to a server through ``self.http``."""

    http: HttpSession

    @property
    def deployments(self) -> RemoteDeployments:
        """Deployments on the server: ``create``, ``update``, ``rollback``, ``get``,
        ``list``, ``history``."""
        return RemoteDeployments(self.http)

    def list_events(self, *, since: int | None = None, kind: str | None = None,
                    model: str | None = None, deployment: str | None = None,
                    limit: int = 200,
                    include: tuple[str, ...] = EVENT_SOURCES) -> list[Event]:
        from loopml.automation.events import Event

        found = self.http.request("GET", f"{API}/events", params={
            "since": epoch_ms(since, what="since"), "kind": kind, "model": model,
            "deployment": deployment, "limit": limit, "source": list(include) or [""]})
        return [Event(**e) for e in found["events"]]

    def list_pipeline_runs(self, *, pipeline: str | None = None,
                           limit: int = 50) -> list[PipelineRun]:
        found = self.http.request("GET", f"{API}/pipeline-runs",
                                  params={"pipeline": pipeline, "limit": limit})
        return [pipeline_run_in(r) for r in found["runs"]]

    def get_pipeline_run(self, id_or_prefix: str) -> PipelineRun:
        return pipeline_run_in(self.http.request(
            "GET", f"{API}/pipeline-runs/{_q(id_or_prefix)}"))

    def list_monitor_results(self, deployment: str, *, kind: str | None = None,
                             column: str | None = None, statistic: str | None = None,
                             since: int | datetime | None = None,
                             until: int | datetime | None = None,
                             limit: int = 1000) -> list[MonitorResult]:
        from loopml.monitoring.records import MonitorResult

        found = self.http.request("GET", f"{API}/monitoring/results", params={
                "deployment": deployment, "kind": kind, "column": column, "statistic": statistic,
                "since": epoch_ms(since, what="since"), "until": epoch_ms(until, what="until"),
                "limit": limit})
        return [MonitorResult(**r) for r in found["results"]]

    def list_alerts(self, deployment: str | None = None, *,
                    since: int | datetime | None = None, after: int | None = None,
                    kind: str | None = None, limit: int = 100) -> list[Alert]:
        from loopml.monitoring.records import Alert

        found = self.http.request("GET", f"{API}/alerts", params={
            "deployment": deployment, "since": epoch_ms(since, what="since"), "after": after,
            "kind": kind, "limit": limit})
        return [Alert(**a) for a in found["alerts"]]
