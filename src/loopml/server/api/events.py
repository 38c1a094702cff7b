"""``/api/v1`` events endpoint: the timeline of automation, deployments and monitoring
alerts (what ``loopml events`` and ``client.list_events`` read).

======  ==================  =============================================================
GET     /api/v1/events      ``?since=MS&kind=&model=&deployment=&limit=200&source=...``
                            (``source`` repeated: automation, deployments, monitoring;
                            all three when absent); ``{events: [...]}``, oldest first
======  ==================  =============================================================
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.server.api.common import API, call, client, json_response, query_int

__all__ = ["routes"]


async def list_events(request: Request) -> Response:
    """The newest ``limit`` events at or after ``since``, oldest first."""
    from loopml.automation.events import SOURCES

    query = request.query_params
    since = query_int(request, "since", -1)
    include = (tuple(s for s in query.getlist("source") if s) if "source" in query
               else SOURCES)
    found = await call(client(request).list_events, since=None if since < 0 else since,
                       kind=query.get("kind") or None, model=query.get("model") or None,
                       deployment=query.get("deployment") or None,
                       limit=query_int(request, "limit", 200, minimum=1), include=include)
    return json_response({"events": [e.to_dict() for e in found]})


def routes() -> list[BaseRoute]:
    return [Route(f"{API}/events", list_events, methods=["GET"])]
