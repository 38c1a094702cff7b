"""``/api/v1`` model registry endpoints: registered models, versions and aliases.

======  ================================================  ====================================
GET     /api/v1/models                                    every registered model
GET     /api/v1/models/{name}                             one, with its aliases
GET     /api/v1/models/{name}/versions                    its versions
POST    /api/v1/models/{name}/versions                    register ``{source: "runs:/ID/PATH",
                                                          description}`` (201)
GET     /api/v1/models/{name}/versions/{version}          one version
PATCH   /api/v1/models/{name}/versions/{version}          ``{status: "active" | "archived"}``
DELETE  /api/v1/models/{name}/versions/{version}          delete it (not while aliased)
GET     /api/v1/models/{name}/latest                      the latest active version
GET     /api/v1/models/{name}/aliases/{alias}             the version the alias points to
PUT     /api/v1/models/{name}/aliases/{alias}             move it ``{version, reason}``
DELETE  /api/v1/models/{name}/aliases/{alias}             remove it (``?reason=``)
POST    /api/v1/models/{name}/aliases/{alias}/rollback    back to its previous version
GET     /api/v1/models/{name}/history                     the alias audit log (``?alias=``)
======  ================================================  ====================================

Every alias move records who made it: the token's name when auth is on.

A package that runs code when it is loaded needs the admin role to be registered (403 for
anyone else): one holding a pickle file (by its name), or whose manifest says its model is
a pickle (scikit-learn's ``pickle`` serializer) or a TorchScript / torch.export archive
(unpickled by torch). The decision and the registration read the same listing of the run's
artifacts, so files uploaded meanwhile cannot slip in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.errors import InvalidArgument, NotFound, PermissionDenied
from loopml.registry.refs import ModelRef, check_alias, check_model_name
from loopml.server.api import wire
from loopml.server.api.common import (
    API,
    INT64_MAX,
    actor,
    body_object,
    call,
    client,
    get_int,
    get_str,
    json_response,
)
from loopml.tracking.validation import artifact_path

if TYPE_CHECKING:
    from loopml.blobs.entry import FileEntry
    from loopml.models.manifest import ModelManifest
    from loopml.registry.entities import ModelVersion

__all__ = ["PICKLE_SUFFIXES", "code_at_load", "routes"]

#: Files that run code when loaded: registering a package holding one needs the admin role.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".dill")
#: The largest manifest read when registering (a real one is a few KB).
_MAX_MANIFEST_BYTES = 1 << 20


def _name(request: Request) -> str:
    return check_model_name(request.path_params["name"])


def _alias(request: Request) -> str:
    return check_alias(request.path_params["alias"])


def _version(request: Request) -> int:
    value: int = request.path_params["version"]
    if not 1 <= value <= INT64_MAX:
        raise InvalidArgument(f"model versions are whole numbers from 1, got {value}")
    return value


async def list_models(request: Request) -> Response:
    """Every registered model."""
    found = await call(client(request).list_registered_models)
    return json_response({"models": [wire.model_out(m) for m in found]})


async def get_model(request: Request) -> Response:
    """One registered model with its aliases and latest version number."""
    found = await call(client(request).get_registered_model, _name(request))
    return json_response(wire.model_out(found))


async def list_versions(request: Request) -> Response:
    """Every version of a model, oldest first."""
    found = await call(client(request).list_model_versions, _name(request))
    return json_response({"versions": [wire.version_out(v) for v in found]})


def code_at_load(manifest: ModelManifest | None, names: Any) -> str | None:
    """Why loading the package (``manifest`` and its file ``names``) runs code it carries,
    or None when it does not."""
    pickles = sorted(n for n in names if str(n).lower().endswith(PICKLE_SUFFIXES))
    if pickles:
        return f"it holds {pickles[0]!r}, a pickle"
    if manifest is None:
        return None
    data = manifest.flavor_data
    if manifest.flavor == "sklearn" and data.get("serializer") == "pickle":
        return f"its model {data.get('file')!r} is a pickle (serializer 'pickle')"
    if manifest.flavor == "pytorch" and data.get("format") in ("torchscript", "exported"):
        return f"its model {data.get('file')!r} is a {data.get('format')} archive, which " \
            "torch unpickles"
    return None


def _register(request: Request, name: str, run_id: str, path: str, description: str,
              *, admin: bool) -> ModelVersion:
    """Register the package the run logged at ``path``: checked and stored from one
    listing of its files."""
    from loopml.blobs.entry import FileEntry
    from loopml.blobs.tree import tree_from_entries
    from loopml.models.manifest import MANIFEST_NAME, parse_manifest
    from loopml.registry.packages import register_tree
    from loopml.tracking.artifacts import list_artifacts

    server = client(request)
    with server.meta.read() as conn:
        files = list_artifacts(conn, run_id, path)
    entries: dict[str, FileEntry] = {f.path[len(path) + 1:]: FileEntry(f.digest, f.size)
                                     for f in files if f.path != path}
    source = f"runs:/{run_id}/{path}"

    def check(manifest: ModelManifest | None) -> None:
        reason = code_at_load(manifest, entries)
        if reason is not None and not admin:
            raise PermissionDenied(f"the package at {source} runs code when loaded ({reason}); "
                                   "only an admin token may register it (or save the model "
                                   "with a safe serializer such as skops)")

    check(None)  # a pickle file is refused whatever the rest of the package is
    found = entries.get(MANIFEST_NAME)
    if found is None:
        raise NotFound(f"no model at {source}: it has no {MANIFEST_NAME}; log the model with "
                       "loopml.log_model")
    if found.size > _MAX_MANIFEST_BYTES:
        raise InvalidArgument(f"the {MANIFEST_NAME} of {source} is {found.size:,} bytes; a "
                              f"manifest is at most {_MAX_MANIFEST_BYTES:,}")
    manifest = parse_manifest(server.blobs.get_bytes(found.digest),
                              source=f"{source}/{MANIFEST_NAME}")
    check(manifest)
    tree = tree_from_entries(server.blobs, entries)
    return register_tree(server.meta, name=name, tree=tree, manifest=manifest, run_id=run_id,
                         description=description)


async def register_version(request: Request) -> Response:
    """A new version from a package a run logged: ``{"source": "runs:/RUN_ID/PATH",
    "description": "..."}``. A package that runs code when loaded needs an admin token."""
    name = _name(request)
    body = await body_object(request)
    source = get_str(body, "source")
    if not source.startswith("runs:/"):
        raise InvalidArgument(f"source {source!r} is not runs:/RUN_ID/PATH; the server only "
                              "registers packages logged to a run (upload it with log_model)")
    run_id, _, path = source.removeprefix("runs:/").partition("/")
    if not run_id:
        raise InvalidArgument(f"source {source!r} names no run; use runs:/RUN_ID/PATH")
    principal = getattr(request.state, "principal", None)
    version = await call(_register, request, name, run_id, artifact_path(path) or "model",
                         get_str(body, "description", ""),
                         admin=getattr(principal, "role", "admin") == "admin")
    return json_response(wire.version_out(version), status=201)


async def _resolve(request: Request, ref: ModelRef) -> Response:
    found = await call(client(request).get_model_version, str(ref))
    return json_response(wire.version_out(found))


async def get_version(request: Request) -> Response:
    """One version by number."""
    return await _resolve(request, ModelRef(_name(request), version=_version(request)))


async def latest_version(request: Request) -> Response:
    """The latest active version."""
    return await _resolve(request, ModelRef(_name(request)))


async def alias_version(request: Request) -> Response:
    """The version an alias points to."""
    return await _resolve(request, ModelRef(_name(request), alias=_alias(request)))


async def update_version(request: Request) -> Response:
    """Archive or reactivate a version: ``{"status": "active" | "archived"}``."""
    ref = f"{_name(request)}/{_version(request)}"
    body = await body_object(request)
    found = await call(client(request).set_model_version_status, ref, get_str(body, "status"))
    return json_response(wire.version_out(found))


async def delete_version(request: Request) -> Response:
    """Delete a version (refused while an alias points to it)."""
    await call(client(request).delete_model_version, f"{_name(request)}/{_version(request)}")
    return json_response({})


def _event(request: Request, event: Any) -> Response:
    return json_response(wire.alias_event_out(event))


async def set_alias(request: Request) -> Response:
    """Point an alias at a version: ``{"version": 3, "reason": "..."}``."""
    body = await body_object(request)
    event = await call(client(request).set_model_alias, _name(request), _alias(request),
                       get_int(body, "version", minimum=1), reason=get_str(body, "reason", ""),
                       actor=actor(request, get_str(body, "actor", None)))
    return _event(request, event)


async def delete_alias(request: Request) -> Response:
    """Remove an alias (``?reason=`` is recorded)."""
    query = request.query_params
    event = await call(client(request).delete_model_alias, _name(request), _alias(request),
                       reason=query.get("reason", ""), actor=actor(request, query.get("actor")))
    return _event(request, event)


async def rollback_alias(request: Request) -> Response:
    """Move an alias back to the version it pointed to before: ``{"reason": "..."}``."""
    body = await body_object(request)
    event = await call(client(request).rollback_model_alias, _name(request), _alias(request),
                       reason=get_str(body, "reason", ""),
                       actor=actor(request, get_str(body, "actor", None)))
    return _event(request, event)


async def alias_history(request: Request) -> Response:
    """Every move of the model's aliases, oldest first (``?alias=`` for one)."""
    alias = request.query_params.get("alias") or None
    found = await call(client(request).model_alias_history, _name(request),
                       None if alias is None else check_alias(alias))
    return json_response({"events": [wire.alias_event_out(e) for e in found]})


def routes() -> list[BaseRoute]:
    model = f"{API}/models/{{name}}"
    version = f"{model}/versions/{{version:int}}"
    alias = f"{model}/aliases/{{alias}}"
    return [
        Route(f"{API}/models", list_models, methods=["GET"]),
        Route(model, get_model, methods=["GET"]),
        Route(f"{model}/versions", list_versions, methods=["GET"]),
        Route(f"{model}/versions", register_version, methods=["POST"]),
        Route(version, get_version, methods=["GET"]),
        Route(version, update_version, methods=["PATCH"]),
        Route(version, delete_version, methods=["DELETE"]),
        Route(f"{model}/latest", latest_version, methods=["GET"]),
        Route(alias, alias_version, methods=["GET"]),
        Route(alias, set_alias, methods=["PUT"]),
        Route(alias, delete_alias, methods=["DELETE"]),
        Route(f"{alias}/rollback", rollback_alias, methods=["POST"]),
        Route(f"{model}/history", alias_history, methods=["GET"]),
    ]
