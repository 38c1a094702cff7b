"""Pages of deployments: what each serves, and for one deployment its traffic split, request
rate, latency and errors over time (from the payload log), drift, data quality and model
performance over time (from the stored monitoring results), its alerts and its audit history.

Only the newest :data:`MAX_SEGMENTS` segments of the payload log are read, and only their
time, status, latency and role columns (never the request bodies).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import LoopmlError
from loopml.ui import charts
from loopml.ui.render import client_of, page, render

if TYPE_CHECKING:
    from loopml.client import Client
    from loopml.deployments.records import Deployment
    from loopml.monitoring.records import MonitorResult

__all__ = ["deployment_page", "deployments_page", "request_series", "traffic"]

MAX_SEGMENTS, BUCKETS, MAX_COLUMNS = 20, 60, 8
_COLUMNS = ["at", "status", "latency_ms", "role"]


@page
def deployments_page(request: Request) -> Response:
    from loopml.deployments.api import Deployments

    found = Deployments(client_of(request).meta).list()
    return render(request, "deployments.html", section="deployments", deployments=found)


def traffic(client: Client, deployment: Deployment) -> list[tuple[str, str, float]]:
    """(role, model version, percent of requests) of the deployment's policy now."""
    policy = deployment.policy
    canary = policy.canary
    rows = [("primary", _resolved(client, str(policy.primary)),
             100.0 - (canary.percent if canary else 0.0))]
    if canary is not None:
        rows.append(("canary", _resolved(client, canary.model), canary.percent))
    if policy.shadow is not None:
        rows.append(("shadow", _resolved(client, policy.shadow), 0.0))
    return rows


def _resolved(client: Client, ref: str) -> str:
    try:
        return client.get_model_version(ref).ref
    except LoopmlError as exc:
        return f"{ref} (unresolved: {exc})"


def _requests(client: Client, name: str) -> Any:
    """The newest rows of the payload log's requests (few columns), as a pyarrow table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from loopml.deployments.payload import list_segments, request_schema

    with client.meta.read() as conn:
        segments = list_segments(conn, endpoint=name)[-MAX_SEGMENTS:]
    tables = [pq.read_table(io.BytesIO(client.blobs.get_bytes(s.blob)), columns=_COLUMNS)
              for s in segments]
    if not tables:
        schema = request_schema()
        return pa.schema([schema.field(c) for c in _COLUMNS]).empty_table()
    return pa.concat_tables(tables)


def request_series(table: Any) -> dict[str, Any] | None:
    """Charts of request rate, error share and latency percentiles per time bucket."""
    import numpy as np

    if table.num_rows == 0:
        return None
    at = table.column("at").cast("int64").to_numpy(zero_copy_only=False)
    latency = table.column("latency_ms").to_numpy(zero_copy_only=False).astype(float)
    status = table.column("status").to_numpy(zero_copy_only=False)
    role = table.column("role").to_pylist()
    served = np.array([r != "shadow" for r in role])
    start, end = int(at.min()), int(at.max()) + 1
    width = max(1000, -(-(end - start) // BUCKETS))  # at least a second per bucket
    bucket = (at - start) // width
    xs, rate, errors, p50, p99 = [], [], [], [], []
    for index in np.unique(bucket[served]):
        mask = served & (bucket == index)
        xs.append(charts.iso(start + int(index) * width))
        rate.append(float(mask.sum()) / (width / 1000))
        errors.append(float((status[mask] >= 400).mean()))
        p50.append(float(np.percentile(latency[mask], 50)))
        p99.append(float(np.percentile(latency[mask], 99)))
    return {
        "rate": charts.lines({"requests/s": (xs, rate)}, title="request rate",
                             x_title="time", y_title="requests per second", time_axis=True,
                             from_zero=True),
        "latency": charts.lines({"p50": (xs, p50), "p99": (xs, p99)}, title="latency",
                                x_title="time", y_title="ms", time_axis=True, from_zero=True),
        "errors": charts.lines({"error share": (xs, errors)}, title="share of failed requests",
                               x_title="time", time_axis=True, from_zero=True),
        "rows": int(served.sum()), "shadow": int((~served).sum()),
    }


def _series(results: Sequence[MonitorResult], *, by: str) -> dict[str, charts.Series]:
    out: dict[str, tuple[list[str], list[float | None]]] = {}
    for r in results:
        key = (r.column or r.statistic) if by == "column" else r.statistic
        xs, ys = out.setdefault(key, ([], []))
        xs.append(charts.iso(r.window_end))
        ys.append(r.value)
    return dict(out)


def monitoring(client: Client, name: str) -> dict[str, Any]:
    """Charts of the stored monitoring results of ``name`` over time."""
    from loopml.monitoring import records

    with client.meta.read() as conn:
        score = records.query_results(conn, name, kind="drift", column="", statistic="score")
        drift = [r for r in records.query_results(conn, name, kind="drift", limit=5000)
                 if r.column and r.threshold is not None]
        performance = [r for r in records.query_results(conn, name, kind="performance")
                       if r.statistic != "labelled"]
        quality = records.query_results(conn, name, kind="quality", column="",
                                        statistic="issues")
        rows = records.query_results(conn, name, kind="window", statistic="rows")
        alerts = records.list_alerts(conn, endpoint=name, limit=100)
    figures: dict[str, Any] = {}
    if score:
        threshold = next((r.threshold for r in score if r.threshold is not None), None)
        figures["drift"] = charts.lines(
            _series(score, by="statistic"), title="drift score", x_title="window end",
            time_axis=True, thresholds=None if threshold is None else {"threshold": threshold})
    if drift:
        columns = _series(drift, by="column")
        worst = sorted(columns, key=lambda c: -max((v or 0.0) for v in columns[c][1]))
        figures["columns"] = charts.lines({c: columns[c] for c in worst[:MAX_COLUMNS]},
                                          title="drift by column (effect size)",
                                          x_title="window end", time_axis=True)
    if performance:
        figures["performance"] = charts.lines(_series(performance, by="statistic"),
                                              title="model performance on labelled rows",
                                              x_title="window end", time_axis=True)
    if quality:
        figures["quality"] = charts.lines(_series(quality, by="statistic"),
                                          title="data quality issues", x_title="window end",
                                          time_axis=True)
    if rows:
        figures["rows"] = charts.lines(_series(rows, by="statistic"), title="rows per window",
                                       x_title="window end", time_axis=True)
    return {"figures": figures, "alerts": list(reversed(alerts))}


@page
def deployment_page(request: Request) -> Response:
    from loopml.deployments.api import Deployments

    client = client_of(request)
    deploys = Deployments(client.meta)
    deployment = deploys.get(request.path_params["name"])
    split = traffic(client, deployment)
    shares = [(f"{role} {ref}", percent) for role, ref, percent in split if role != "shadow"]
    split_chart = charts.bars([label for label, _ in shares], [p for _, p in shares],
                              title="traffic split (% of requests)", horizontal=True,
                              colors=charts.PALETTE[:len(shares)])
    return render(request, "deployment.html", section="deployments", deployment=deployment,
                  split=split, split_chart=split_chart,
                  requests=request_series(_requests(client, deployment.name)),
                  history=list(reversed(deploys.history(deployment.name))),
                  **monitoring(client, deployment.name))
