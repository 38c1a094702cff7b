"""``/api/v1`` model package endpoints: the files of a registered version (for a remote
``load_model``) and its model card.

======  ========================================================  =============================
GET     /api/v1/models/{name}/versions/{version}/files            the package's files
GET     /api/v1/models/{name}/versions/{version}/files/{path}     one file (streamed)
GET     /api/v1/models/{name}/versions/{version}/card             ``{card}`` (``?output=html``)
======  ========================================================  =============================
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.errors import InvalidArgument, NotFound
from loopml.registry.refs import check_model_name
from loopml.server.api.common import API, INT64_MAX, call, client, json_response
from loopml.server.api.streams import entry_response

__all__ = ["routes"]


def _ref(request: Request) -> str:
    version: int = request.path_params["version"]
    if not 1 <= version <= INT64_MAX:
        raise InvalidArgument(f"model versions are whole numbers from 1, got {version}")
    return f"{check_model_name(request.path_params['name'])}/{version}"


def _files(request: Request, prefix: str = "") -> tuple[str, list[tuple[str, Any]]]:
    from loopml.blobs.tree import iter_files

    server = client(request)
    version = server.get_model_version(_ref(request))
    return version.tree, list(iter_files(server.blobs, version.tree, prefix))


async def list_files(request: Request) -> Response:
    """Every file of the version's package: ``{"tree", "files": [{path, size, digest}]}``."""
    tree, found = await call(_files, request)
    return json_response({"tree": tree, "files": [
        {"path": path, "size": entry.size, "digest": entry.digest} for path, entry in found]})


def _file_response(request: Request, path: str) -> Response:
    from loopml.blobs.entry import check_tree_path

    try:
        wanted = check_tree_path(path)
    except (InvalidArgument, ValueError):
        raise InvalidArgument(f"package path {path!r} is not a relative path inside the "
                              "package; use a path listed by .../files") from None
    _, found = _files(request, wanted)
    entry = dict(found).get(wanted)
    if entry is None:
        raise NotFound(f"model version {_ref(request)} has no file {wanted!r}; list its files "
                       "with GET .../files")
    return entry_response(client(request).blobs, entry, filename=wanted.rpartition("/")[2])


async def get_file(request: Request) -> Response:
    """One file of the package, streamed (``X-Loopml-Digest`` is its BLAKE3)."""
    return await call(_file_response, request, request.path_params["path"])


async def model_card(request: Request) -> Response:
    """The version's model card: ``{"card": "..."}`` in markdown (``?output=html``)."""
    output = request.query_params.get("output", "markdown")
    if output not in ("markdown", "html"):
        raise InvalidArgument(f"output must be 'markdown' or 'html', got {output!r}")
    card = await call(client(request).model_card, _ref(request), output=output)
    return json_response({"card": card, "output": output})


def routes() -> list[BaseRoute]:
    version = f"{API}/models/{{name}}/versions/{{version:int}}"
    return [
        Route(f"{version}/files", list_files, methods=["GET"]),
        Route(f"{version}/files/{{path:path}}", get_file, methods=["GET"]),
        Route(f"{version}/card", model_card, methods=["GET"]),
    ]
