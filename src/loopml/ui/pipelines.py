"""Pages of pipelines: the runs of pipelines, and one run with its DAG (coloured by step
status), each step's status, duration, attempts, cache hit and captured logs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from loopml.cli.output import format_duration
from loopml.errors import LoopmlError
from loopml.pipelines.entities import PipelineRun, StepRecord
from loopml.ui import charts
from loopml.ui.graphs import Box, Drawn, layout
from loopml.ui.render import client_of, page, render

__all__ = ["dag", "pipeline_run_page", "pipelines_page"]

MAX_RUNS = 200
#: The end of a step's log shown on the page (the whole log is its run's artifact).
LOG_TAIL_BYTES = 64 * 1024


@page
def pipelines_page(request: Request) -> Response:
    from loopml.pipelines import records

    name = request.query_params.get("pipeline") or None
    with client_of(request).meta.read() as conn:
        runs = records.list_pipeline_runs(conn, pipeline=name, limit=MAX_RUNS)
    return render(request, "pipelines.html", section="pipelines", runs=runs, pipeline=name)


def _detail(record: StepRecord | None) -> str:
    if record is None:
        return "not run"
    seconds = None if record.duration_ms is None else record.duration_ms / 1000
    if record.status.value == "cached":
        return "cache hit"
    return f"{record.status.value} · {format_duration(seconds)}"


def dag(run: PipelineRun) -> Drawn:
    """The run's DAG: one box per node, coloured by its step's status."""
    records = {s.node: s for s in run.steps}
    boxes: list[Box] = []
    edges: list[tuple[str, str]] = []
    for node in run.graph.get("nodes", []):
        record = records.get(node["id"])
        kind = record.status.value if record is not None else "notrun"
        boxes.append(Box(node["id"], node["id"], _detail(record), kind, f"#step-{node['id']}"))
        edges.extend((dep, node["id"]) for dep in node.get("deps", []))
    for record in run.steps:  # steps the graph does not name (older runs): shown unlinked
        if record.node not in {b.id for b in boxes}:
            boxes.append(Box(record.node, record.node, _detail(record), record.status.value))
    return layout(boxes, edges)


def _durations(run: PipelineRun) -> dict[str, Any] | None:
    """Bars of the steps' durations (ms when all took under a second); None when no step
    took measurable time."""
    timed = [(s, s.duration_ms) for s in run.steps if s.duration_ms is not None]
    if not any(ms for _, ms in timed):
        return None
    seconds = max(ms for _, ms in timed) >= 1000
    colors = [charts.PALETTE[1] if s.status.value == "cached" else
              charts.PALETTE[3] if s.status.value == "failed" else charts.PALETTE[0]
              for s, _ in timed]
    unit = "s" if seconds else "ms"
    return charts.bars([s.node for s, _ in timed],
                       [ms / 1000 if seconds else ms for _, ms in timed],
                       title=f"step durations ({unit})", x_title=unit, horizontal=True,
                       colors=colors)


def _logs(client: Any, run: PipelineRun) -> dict[str, str]:
    """The end of each step's captured output (its ``logs`` is the log artifact's blob)."""
    found = {}
    for step in run.steps:
        if not step.logs:
            continue
        try:
            data = client.blobs.get_bytes(step.logs)
        except (LoopmlError, OSError) as exc:
            found[step.node] = f"(the log blob {step.logs[:12]} cannot be read: {exc})"
            continue
        text = data[-LOG_TAIL_BYTES:].decode("utf-8", "replace")
        found[step.node] = ("…\n" if len(data) > LOG_TAIL_BYTES else "") + text
    return found


@page
def pipeline_run_page(request: Request) -> Response:
    from loopml.pipelines import records

    client = client_of(request)
    with client.meta.read() as conn:
        run = records.get_pipeline_run(conn, request.path_params["run_id"])
    counts: dict[str, int] = {}
    for step in run.steps:
        counts[step.status.value] = counts.get(step.status.value, 0) + 1
    seconds = None if run.ended_at is None else (run.ended_at - run.created_at) / 1000
    return render(request, "pipeline_run.html", section="pipelines", run=run,
                  drawn=dag(run), counts=counts, seconds=seconds, durations=_durations(run),
                  logs=_logs(client, run),
                  not_run=[n["id"] for n in run.graph.get("nodes", [])
                           if n["id"] not in {s.node for s in run.steps}])
