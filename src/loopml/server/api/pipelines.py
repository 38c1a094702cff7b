"""``/api/v1`` pipeline run endpoints (what ``loopml pipelines list|show`` read).

======  ====================================  ===================================================
GET     /api/v1/pipeline-runs                 recent runs, newest first (``?pipeline=&limit=50``)
GET     /api/v1/pipeline-runs/{run_id}        one run with its steps (a unique prefix of 4+
                                              characters names it too)
======  ====================================  ===================================================
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.server.api.common import API, call, client, json_response, query_int

__all__ = ["routes"]


async def list_pipeline_runs(request: Request) -> Response:
    """Recent pipeline runs (without their steps), newest first."""
    found = await call(client(request).list_pipeline_runs,
                       pipeline=request.query_params.get("pipeline") or None,
                       limit=query_int(request, "limit", 50, minimum=1))
    return json_response({"runs": [r.to_json() for r in found]})


async def get_pipeline_run(request: Request) -> Response:
    """One pipeline run and its steps in DAG order."""
    found = await call(client(request).get_pipeline_run, request.path_params["run_id"])
    return json_response(found.to_json())


def routes() -> list[BaseRoute]:
    return [
        Route(f"{API}/pipeline-runs", list_pipeline_runs, methods=["GET"]),
        Route(f"{API}/pipeline-runs/{{run_id}}", get_pipeline_run, methods=["GET"]),
    ]
