"""The JSON shapes of ``/api/v1``: entities to plain dicts and back.

Shared by the server's endpoints and the remote client (this module needs neither
starlette nor SQLAlchemy). JSON has no NaN or infinity, and metric values may be either:
a non-finite number travels as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``
(:func:`number_out` / :func:`number_in`); every other number is a JSON number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from loopml.errors import InvalidArgument
from loopml.registry.entities import AliasEvent, ModelVersion, RegisteredModel
from loopml.tracking.entities import ArtifactInfo, Experiment, Metric, Run, RunStatus

__all__ = ["MAX_POINTS", "POINTS_PER_REQUEST", "USER_HEADER", "alias_event_in", "alias_event_out",
           "artifact_in", "artifact_out",
           "experiment_in", "experiment_out", "metric_in", "metric_out", "model_in",
           "model_out", "number_in", "number_out", "numbers_in", "numbers_out", "run_in",
           "run_out", "version_in", "version_out"]

#: The request header naming the client's user (URL-quoted), recorded as who acted when the
#: server runs without auth (with auth, the token's name is recorded).
USER_HEADER = "X-Loopml-User"

#: Metric points the remote client sends in one request (the server takes up to
#: :data:`MAX_POINTS`).
POINTS_PER_REQUEST = 20_000
#: The most metric points one request may carry.
MAX_POINTS = 100_000

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def number_out(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def number_in(value: Any, *, what: str = "metric value") -> float:
    """A number sent by :func:`number_out` (or a plain JSON number); InvalidArgument if not."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if value is None:
        return math.nan
    raise InvalidArgument(f"{what} {value!r} is not a number; send a JSON number or one of "
                          "'NaN', 'Infinity', '-Infinity'")


def numbers_out(values: Mapping[str, float]) -> dict[str, float | str]:
    return {k: number_out(v) for k, v in values.items()}


def numbers_in(values: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): number_in(v) for k, v in values.items()}


def experiment_out(e: Experiment) -> dict[str, Any]:
    return {"id": e.id, "name": e.name, "description": e.description,
            "created_at": e.created_at, "lifecycle": e.lifecycle}


def experiment_in(d: Mapping[str, Any]) -> Experiment:
    return Experiment(id=d["id"], name=d["name"], description=d["description"],
                      created_at=d["created_at"], lifecycle=d.get("lifecycle", "active"))


def run_out(r: Run) -> dict[str, Any]:
    return {"id": r.id, "experiment_id": r.experiment_id, "name": r.name,
            "status": r.status.value, "start_time": r.start_time, "end_time": r.end_time,
            "parent_run_id": r.parent_run_id, "user": r.user, "lifecycle": r.lifecycle,
            "params": r.params, "metrics": numbers_out(r.metrics), "tags": r.tags}


def run_in(d: Mapping[str, Any]) -> Run:
    return Run(id=d["id"], experiment_id=d["experiment_id"], name=d["name"],
               status=RunStatus(d["status"]), start_time=d["start_time"],
               end_time=d["end_time"], parent_run_id=d.get("parent_run_id"),
               user=d.get("user", ""), lifecycle=d.get("lifecycle", "active"),
               params=dict(d.get("params", {})), metrics=numbers_in(d.get("metrics", {})),
               tags=dict(d.get("tags", {})))


def metric_out(m: Metric) -> dict[str, Any]:
    return {"key": m.key, "value": number_out(m.value), "step": m.step,
            "timestamp": m.timestamp}


def metric_in(d: Mapping[str, Any]) -> Metric:
    return Metric(key=d["key"], value=number_in(d["value"]), step=int(d.get("step", 0)),
                  timestamp=int(d.get("timestamp", 0)))


def artifact_out(a: ArtifactInfo) -> dict[str, Any]:
    return {"path": a.path, "size": a.size, "digest": a.digest}


def artifact_in(d: Mapping[str, Any]) -> ArtifactInfo:
    return ArtifactInfo(path=d["path"], size=d["size"], digest=d["digest"])


def model_out(m: RegisteredModel) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "description": m.description, "tags": m.tags,
            "created_at": m.created_at, "aliases": m.aliases,
            "latest_version": m.latest_version}


def model_in(d: Mapping[str, Any]) -> RegisteredModel:
    return RegisteredModel(id=d["id"], name=d["name"], description=d["description"],
                           tags=dict(d["tags"]), created_at=d["created_at"],
                           aliases={k: int(v) for k, v in d.get("aliases", {}).items()},
                           latest_version=d.get("latest_version"))


def version_out(v: ModelVersion) -> dict[str, Any]:
    return {"id": v.id, "model": v.model, "version": v.version, "tree": v.tree,
            "flavor": v.flavor, "run_id": v.run_id, "source_version_id": v.source_version_id,
            "status": v.status, "description": v.description, "signature": v.signature,
            "metrics": numbers_out(v.metrics), "params": v.params, "datasets": v.datasets,
            "created_at": v.created_at, "created_by": v.created_by,
            "aliases": list(v.aliases)}


def version_in(d: Mapping[str, Any]) -> ModelVersion:
    return ModelVersion(id=d["id"], model=d["model"], version=d["version"], tree=d["tree"],
                        flavor=d["flavor"], run_id=d.get("run_id"),
                        source_version_id=d.get("source_version_id"), status=d["status"],
                        description=d["description"], signature=d.get("signature"),
                        metrics=numbers_in(d.get("metrics", {})),
                        params=dict(d.get("params", {})), datasets=list(d.get("datasets", [])),
                        created_at=d["created_at"], created_by=d.get("created_by", ""),
                        aliases=tuple(d.get("aliases", ())))


def alias_event_out(e: AliasEvent) -> dict[str, Any]:
    return {"model": e.model, "alias": e.alias, "from_version": e.from_version,
            "to_version": e.to_version, "actor": e.actor, "reason": e.reason,
            "created_at": e.created_at}


def alias_event_in(d: Mapping[str, Any]) -> AliasEvent:
    return AliasEvent(model=d["model"], alias=d["alias"], from_version=d.get("from_version"),
                      to_version=d.get("to_version"), actor=d.get("actor", ""),
                      reason=d.get("reason", ""), created_at=d["created_at"])
