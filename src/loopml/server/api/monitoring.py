"""``/api/v1`` monitoring endpoints: stored results and alerts (what ``loopml monitor
show|alerts``, ``client.list_monitor_results`` and ``client.list_alerts`` read).

======  ==========================  =============================================================
GET     /api/v1/monitoring/results  ``?deployment=NAME&kind=&column=&statistic=&since=MS&until=MS
                                    &limit=1000``: ``{results: [...]}``, oldest window first
GET     /api/v1/alerts              ``?deployment=&since=MS&after=ID&kind=&limit=100``:
                                    ``{alerts: [...]}``, oldest first
======  ==========================  =============================================================
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.errors import InvalidArgument
from loopml.server.api.common import API, call, client, json_response, query_int

__all__ = ["routes"]


def _optional_int(request: Request, name: str) -> int | None:
    value = query_int(request, name, -1)
    return None if value < 0 else value


async def list_results(request: Request) -> Response:
    """The stored monitoring time series of one deployment."""
    query = request.query_params
    deployment = query.get("deployment")
    if not deployment:
        raise InvalidArgument("query parameter 'deployment' is required: the deployment (or "
                              "monitored endpoint) whose results to read")
    found = await call(client(request).list_monitor_results, deployment,
                       kind=query.get("kind") or None, column=query.get("column"),
                       statistic=query.get("statistic") or None,
                       since=_optional_int(request, "since"),
                       until=_optional_int(request, "until"),
                       limit=query_int(request, "limit", 1000, minimum=1))
    return json_response({"results": [r.to_dict() for r in found]})


async def list_alerts(request: Request) -> Response:
    """Alerts of failed checks (of one deployment, or of all), oldest first."""
    query = request.query_params
    found = await call(client(request).list_alerts, query.get("deployment") or None,
                       since=_optional_int(request, "since"),
                       after=_optional_int(request, "after"), kind=query.get("kind") or None,
                       limit=query_int(request, "limit", 100, minimum=1))
    return json_response({"alerts": [a.to_dict() for a in found]})


def routes() -> list[BaseRoute]:
    return [
        Route(f"{API}/monitoring/results", list_results, methods=["GET"]),
        Route(f"{API}/alerts", list_alerts, methods=["GET"]),
    ]
