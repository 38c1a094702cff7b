"""``GET /api/v1/openapi.json``: an OpenAPI 3.1 description of ``/api/v1``, built from the
application's own route table, so it lists exactly the endpoints the server answers.

Each operation takes its summary and description from the endpoint's docstring, its path
parameters from the route's path (``{version:int}`` is an integer), the role it needs from
:func:`loopml.server.roles.required_role` (as ``x-loopml-role``), and the error body every
endpoint answers with (``{"error_code", "message"}``).
"""

from __future__ import annotations

import inspect
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.server.api.common import API, json_response
from loopml.server.roles import required_role

__all__ = ["openapi_document", "routes"]

_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?}")
_STREAMED_UPLOADS = {("PUT", "artifacts"), ("PUT", "blobs"), ("PUT", "parts")}
_ERROR = {"$ref": "#/components/responses/Error"}


def _loopml_version() -> str:
    try:
        return version("loopml")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def _docs(endpoint: Any) -> tuple[str, str]:
    text = inspect.getdoc(endpoint) or ""
    summary, _, rest = text.partition("\n")
    return summary.strip(), rest.strip()


def _operation(route: Route, method: str, path: str) -> dict[str, Any]:
    summary, description = _docs(route.endpoint)
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "integer" if kind == "int" else "string"}}
                  for name, kind in _PARAM.findall(route.path)]
    role = required_role(route.endpoint, method)
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}_{getattr(route.endpoint, '__name__', 'endpoint')}",
        "summary": summary or route.name, "tags": [path.removeprefix(API).split("/")[1]],
        "parameters": parameters, "x-loopml-role": role,
        "responses": {"2XX": {"description": "success", "content": {
            "application/json": {"schema": {"type": "object"}}}},
            "default": _ERROR}}
    if description:
        operation["description"] = description
    if method in ("POST", "PUT", "PATCH"):
        streamed = (method, path.rstrip("/").split("/")[-2]) in _STREAMED_UPLOADS
        media = "application/octet-stream" if streamed else "application/json"
        schema = {"type": "string", "format": "binary"} if streamed else {"type": "object"}
        operation["requestBody"] = {"required": streamed,
                                    "content": {media: {"schema": schema}}}
    return operation


def openapi_document(app_routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of every ``/api/v1`` route among ``app_routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app_routes:
        if not isinstance(route, Route) or not route.path.startswith(API + "/"):
            continue
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = _operation(route, method, path)
    return {
        "openapi": "3.1.0",
        "info": {"title": "loopml", "version": _loopml_version(),
                 "description": "The loopml server's REST API, version 1."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error_code", "message"],
                                  "properties": {"error_code": {"type": "string"},
                                                 "message": {"type": "string"}}}},
            "responses": {"Error": {"description": "an error", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}},
        "security": [{"bearer": []}],
    }


async def openapi(request: Request) -> Response:
    """This API's OpenAPI 3.1 description."""
    return json_response(openapi_document(request.app.routes))


def routes() -> list[BaseRoute]:
    return [Route(f"{API}/openapi.json", openapi, methods=["GET"])]
