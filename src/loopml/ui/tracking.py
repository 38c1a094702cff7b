"""Pages of experiment tracking: experiments, the runs table, a run, runs compared.

``/ui/runs`` takes the query parameters ``experiment`` (name or id; all when absent),
``filter`` (the search syntax of ``loopml runs list --filter``), ``order_by``
(``metrics.auc DESC``), ``col`` (repeated: the columns shown) and ``max``. A filter that does
not parse is shown above the table with its message (status 400), never as a traceback.
``/ui/compare?run=ID&run=ID`` overlays the runs' metric curves and draws their params and a
metric as parallel coordinates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import InvalidArgument, NotFound
from loopml.tracking.entities import Run
from loopml.ui import charts
from loopml.ui.render import client_of, int_param, page, render

__all__ = ["compare_page", "experiments_page", "run_page", "runs_page"]

MAX_RUNS, DEFAULT_RUNS, DEFAULT_COLUMNS, MAX_COMPARED, MAX_CHARTS = 1000, 200, 12, 20, 24
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_\-./:]+$")
_SYSTEM_TAGS = ("loopml.", "mlflow.")
#: Sortable columns of a run's own: header label → order_by attribute.
ATTRIBUTE_COLUMNS = {"name": "name", "status": "status", "started": "start_time",
                     "user": "user"}


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the runs table: ``key`` as in a filter (``metrics.auc``)."""

    key: str
    kind: str  # params, metrics or tags
    name: str

    def value(self, run: Run) -> Any:
        return getattr(run, self.kind).get(self.name)


def order_key(key: str) -> str:
    """``metrics.auc`` or ``metrics.`val loss``` (backticks when the name needs them)."""
    kind, _, name = key.partition(".")
    return key if _PLAIN_KEY.match(name) else f"{kind}.`{name}`"


def _columns(runs: Sequence[Run]) -> list[Column]:
    found: dict[str, Column] = {}
    for kind in ("metrics", "params", "tags"):
        names = sorted({k for r in runs for k in getattr(r, kind)})
        for name in names:
            if kind == "tags" and name.startswith(_SYSTEM_TAGS):
                continue
            found[f"{kind}.{name}"] = Column(f"{kind}.{name}", kind, name)
    return list(found.values())


@page
def experiments_page(request: Request) -> Response:
    experiments = client_of(request).list_experiments()
    return render(request, "experiments.html", section="runs", experiments=experiments)


def _query(request: Request, **changes: Any) -> str:
    """This page's URL with ``changes`` to its query (``None`` removes a key)."""
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    for key, value in changes.items():
        if value is None:
            continue
        pairs.extend((key, v) for v in (value if isinstance(value, list) else [value]))
    return f"{request.url.path}?{urlencode(pairs)}"


def _sort_link(request: Request, key: str, current: str) -> tuple[str, str]:
    """(URL, arrow) of a column header: descending first, then ascending."""
    words = current.split()
    descending = len(words) == 2 and words[1].upper() == "DESC"
    active = bool(words) and words[0] == key
    if active and descending:
        return _query(request, order_by=f"{key} ASC"), "▼"
    return _query(request, order_by=f"{key} DESC"), "▲" if active else ""


@page
def runs_page(request: Request) -> Response:
    client = client_of(request)
    params = request.query_params
    experiment = params.get("experiment") or None
    text = params.get("filter", "").strip()
    order = params.get("order_by", "").strip()
    limit = int_param(request, "max", DEFAULT_RUNS, 1, MAX_RUNS)
    experiments = client.list_experiments()
    current = client.get_experiment(experiment) if experiment else None
    error, status, runs = "", 200, list[Run]()
    try:
        runs = cast("list[Run]", client.search_runs(
            current.id if current else None, filter=text or None,
            order_by=[order] if order else None, max_results=limit))
    except InvalidArgument as exc:  # the filter or the sort key: shown with the form
        error, status = str(exc), 400
    available = _columns(runs)
    chosen = params.getlist("col")
    if chosen:
        shown = [c for c in available if c.key in chosen]
    else:
        shown = [c for c in available if c.kind != "tags"][:DEFAULT_COLUMNS]
    headers = {c.key: _sort_link(request, order_key(c.key), order) for c in shown}
    attributes = {label: _sort_link(request, attr, order)
                  for label, attr in ATTRIBUTE_COLUMNS.items()}
    names = {e.id: e.name for e in experiments}
    return render(request, "runs.html", status=status, section="runs", runs=runs,
                  experiments=experiments, current=current, filter=text, order_by=order,
                  limit=limit, available=available, shown=shown, chosen={c.key for c in shown},
                  headers=headers, attributes=attributes, error=error,
                  experiment_names=names)


@page
def run_page(request: Request) -> Response:
    from loopml.registry import records as registry

    client = client_of(request)
    run = client.get_run(request.path_params["run_id"])
    experiment = client.get_experiment(run.experiment_id)
    series = {}
    for key in sorted(run.metrics)[:MAX_CHARTS]:
        history = client.get_metric_history(run.id, key)
        series[key] = charts.lines({key: ([m.step for m in history],
                                          [m.value for m in history])},
                                   title=key, y_title=key)
    artifacts = client.list_artifacts(run.id)
    children = client.search_runs(None, filter=f"attributes.parent_run_id = '{run.id}'",
                                  order_by=["start_time"], max_results=200)
    with client.meta.read() as conn:
        models = registry.versions_of_runs(conn, [run.id])
    return render(request, "run.html", section="runs", run=run, experiment=experiment,
                  charts=series, artifacts=artifacts, children=children, models=models,
                  pipeline=_pipeline_of(request, run.id))


def _pipeline_of(request: Request, run_id: str) -> Any:
    from loopml.pipelines import records as pipelines

    try:
        with client_of(request).meta.read() as conn:
            return pipelines.get_pipeline_run(conn, run_id)
    except NotFound:
        return None


def _differing(runs: Sequence[Run], kind: str) -> list[str]:
    names = sorted({k for r in runs for k in getattr(r, kind)})
    return [n for n in names if len({str(getattr(r, kind).get(n)) for r in runs}) > 1]


@page
def compare_page(request: Request) -> Response:
    client = client_of(request)
    ids = list(dict.fromkeys(i for i in request.query_params.getlist("run") if i))
    if len(ids) > MAX_COMPARED:
        raise InvalidArgument(f"compare at most {MAX_COMPARED} runs at once; got {len(ids)}")
    if not ids:
        raise InvalidArgument("choose the runs to compare: tick them in the runs table, or "
                              "give run=ID twice or more in the address")
    runs = [client.get_run(i) for i in ids]
    labels = _labels(runs)
    metric_keys = sorted({k for r in runs for k in r.metrics})
    curves = {}
    for key in metric_keys[:MAX_CHARTS]:
        series = {}
        for run in runs:
            if key in run.metrics:
                history = client.get_metric_history(run.id, key)
                series[labels[run.id]] = ([m.step for m in history], [m.value for m in history])
        curves[key] = charts.lines(series, title=key, y_title=key)
    color = request.query_params.get("metric") or (metric_keys[0] if metric_keys else "")
    if color and color not in metric_keys:
        raise InvalidArgument(f"no metric {color!r} in these runs; metrics: "
                              f"{', '.join(metric_keys) or 'none'}")
    params = _differing(runs, "params") or sorted({k for r in runs for k in r.params})
    parallel = None
    if params and color:
        rows = [{**{f"params.{k}": r.params.get(k) for k in params[:10]},
                 f"metrics.{color}": r.metrics.get(color)} for r in runs]
        dimensions = [f"params.{k}" for k in params[:10]] + [f"metrics.{color}"]
        parallel = charts.parallel_coordinates(rows, dimensions, color=f"metrics.{color}",
                                               title=f"params vs {color}")
    return render(request, "compare.html", section="runs", runs=runs, labels=labels,
                  curves=curves, parallel=parallel, metric=color, metric_keys=metric_keys,
                  param_keys=sorted({k for r in runs for k in r.params}),
                  differing=set(_differing(runs, "params")) | set(_differing(runs, "metrics")))


def _labels(runs: Sequence[Run]) -> dict[str, str]:
    """A legend name per run: its name, with the id's start when names repeat."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.name] = counts.get(run.name, 0) + 1
    return {r.id: r.name if counts[r.name] == 1 else f"{r.name} ({r.id[:8]})" for r in runs}
