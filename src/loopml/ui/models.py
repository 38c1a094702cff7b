"""Pages of the model registry: models, and one model's versions with their metrics, aliases,
the audit history of alias moves, the deployments that serve it and its lineage graph
(dataset version → run → model version → deployment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import LoopmlError
from loopml.registry.entities import ModelVersion
from loopml.registry.refs import ModelRef, parse_model_ref
from loopml.ui import charts
from loopml.ui.graphs import Box, Drawn, layout
from loopml.ui.render import client_of, page, render

__all__ = ["Serving", "lineage", "model_page", "models_page", "served_by"]

MAX_LINEAGE_VERSIONS = 15


@dataclass(frozen=True, slots=True)
class Serving:
    """A deployment serving a version of the model: as ``role`` (primary, canary, shadow),
    with ``percent`` of the traffic."""

    deployment: str
    role: str
    version: int
    percent: float
    policy: str


@page
def models_page(request: Request) -> Response:
    found = client_of(request).list_registered_models()
    return render(request, "models.html", section="models", models=found)


def _version_of(ref: ModelRef, versions: Sequence[ModelVersion]) -> int | None:
    if ref.version is not None:
        return ref.version
    if ref.alias is not None:
        return next((v.version for v in versions if ref.alias in v.aliases), None)
    active = [v.version for v in versions if v.status == "active"]
    return max(active) if active else None


def served_by(deployments: Sequence[Any], name: str,
              versions: Sequence[ModelVersion]) -> list[Serving]:
    """Which deployments serve which versions of model ``name`` now."""
    found = []
    for deployment in deployments:
        policy = deployment.policy
        canary = policy.canary
        share = 100.0 - (canary.percent if canary is not None else 0.0)
        refs = [("primary", policy.primary, share)]
        if canary is not None:
            refs.append(("canary", parse_model_ref(canary.model), canary.percent))
        if policy.shadow is not None:
            refs.append(("shadow", parse_model_ref(policy.shadow), 0.0))
        for role, ref, percent in refs:
            number = _version_of(ref, versions) if ref.name == name else None
            if number is not None:
                found.append(Serving(deployment.name, role, number, percent,
                                     policy.describe()))
    return found


def lineage(client: Any, name: str, versions: Sequence[ModelVersion],
            serving: Sequence[Serving]) -> Drawn:
    """The graph of the newest versions: the dataset versions their runs read, the runs,
    the versions (and conversions), the deployments serving them."""
    boxes: dict[str, Box] = {}
    edges: list[tuple[str, str]] = []
    shown = sorted(versions, key=lambda v: v.version)[-MAX_LINEAGE_VERSIONS:]
    for version in shown:
        for ref in version.datasets:
            dataset, _, number = ref.partition("@")
            boxes.setdefault(f"d:{ref}", Box(f"d:{ref}", ref, "dataset version", "dataset",
                                             f"/ui/datasets/{dataset}/{number}"))
        run_node = None
        if version.run_id:
            run_node = f"r:{version.run_id}"
            if run_node not in boxes:
                boxes[run_node] = Box(run_node, _run_name(client, version.run_id), "run",
                                      "run", f"/ui/runs/{version.run_id}")
            edges.extend((f"d:{ref}", run_node) for ref in version.datasets)
        node = f"m:{version.version}"
        detail = ", ".join(version.aliases) or version.status
        boxes[node] = Box(node, version.ref, detail, "model", f"#v{version.version}")
        if run_node:
            edges.append((run_node, node))
        elif not version.source_version_id:
            edges.extend((f"d:{ref}", node) for ref in version.datasets)
    ids = {v.id: v.version for v in shown}
    for version in shown:
        if version.source_version_id in ids:
            edges.append((f"m:{ids[version.source_version_id]}", f"m:{version.version}"))
    for served in serving:
        node = f"s:{served.deployment}"
        boxes.setdefault(node, Box(node, served.deployment, "deployment", "deployment",
                                   f"/ui/deployments/{served.deployment}"))
        edges.append((f"m:{served.version}", node))
    return layout(list(boxes.values()), edges)


def _run_name(client: Any, run_id: str) -> str:
    try:
        return str(client.get_run(run_id).name)
    except LoopmlError:
        return run_id[:12]


@page
def model_page(request: Request) -> Response:
    from loopml.deployments.api import Deployments

    client = client_of(request)
    name = request.path_params["name"]
    model = client.get_registered_model(name)
    versions = client.list_model_versions(name)
    history = client.model_alias_history(name)
    serving = served_by(Deployments(client.meta).list(), name, versions)
    metric_keys = sorted({k for v in versions for k in v.metrics})
    figure = None
    if metric_keys and len(versions) > 1:
        ordered = sorted(versions, key=lambda v: v.version)
        figure = charts.lines({k: ([v.version for v in ordered],
                                   [v.metrics.get(k) for v in ordered]) for k in metric_keys[:8]},
                              title="metrics by version", x_title="version", whole_x=True)
    return render(request, "model.html", section="models", model=model,
                  versions=sorted(versions, key=lambda v: -v.version), history=history,
                  serving=serving, metric_keys=metric_keys, figure=figure,
                  drawn=lineage(client, name, versions, serving))
