"""The model registry: ``/api/2.0/mlflow/registered-models/*`` and ``model-versions/*``.

A registered model is loopml's; a version is created from the MLflow model the client
uploaded (a logged model ``models:/m-…``, ``runs:/RUN/PATH`` or an ``mlflow-artifacts:``
URI of a run's artifacts: loopml never fetches other URIs) by importing it as a loopml
package (see :mod:`.packages`), so that it carries the run's metrics, params and lineage
like any loopml version. Aliases are loopml's: every move is recorded in the audit log with
who made it (the token's name). MLflow's stages are not kept: a version is in stage "None",
or "Archived" once archived in loopml.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.errors import InvalidArgument, NotFound
from loopml.registry import records
from loopml.registry.entities import ModelVersion
from loopml.registry.packages import register_tree
from loopml.registry.refs import ModelRef, check_model_name
from loopml.server.roles import requires

from . import logged_models
from .artifacts import parse_location
from .messages import (
    Message,
    answer,
    call,
    decode_page_token,
    page,
    read_message,
)
from .packages import import_mlflow_model
from .translate import (
    model_version_json,
    name_matcher,
    registered_model_json,
    version_artifact_uri,
)

if TYPE_CHECKING:
    from loopml.client import Client

__all__ = ["routes"]

_PREFIX = "/api/2.0/mlflow"
_VERSION_TERM = re.compile(r"^\s*(name|run_id)\s*=\s*'((?:[^']|'')*)'\s*$", re.IGNORECASE)


def _client(request: Request) -> Client:
    return request.app.state.client  # type: ignore[no-any-return]


def _actor(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    name = getattr(principal, "name", "") if principal is not None else ""
    if name:
        return str(name)
    from loopml.tracking.context import current_user

    return current_user()


def _is_admin(request: Request) -> bool:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return not request.app.state.options.auth_required
    return getattr(principal, "role", None) == "admin"


def _version_number(message: Message) -> int:
    text = message.text("version", required=True)
    if not text.isdigit() or int(text) < 1:
        raise InvalidArgument(f"{message.endpoint}: version must be a whole number from 1, got "
                              f"{text!r}")
    return int(text)


# -- registered models --------------------------------------------------------------------


def _model_body(client: Client, name: str) -> dict[str, Any]:
    with client.meta.read() as conn:
        model = records.get_model(conn, name)
        versions = records.list_versions(conn, name)
    active = [v for v in versions if v.status == "active"]
    return registered_model_json(model, active[-1:])


def _create_model(client: Client, name: str, description: str,
                  tags: dict[str, str]) -> dict[str, Any]:
    with client.meta.write() as conn:
        records.create_model(conn, name, description=description, tags=tags)
    return _model_body(client, name)


async def create_model(request: Request) -> Response:
    message = await read_message(request, "registered-models/create")
    body = await call(_create_model, _client(request), message.text("name", required=True),
                      message.text("description"), message.pairs("tags", limit=100))
    return answer({"registered_model": body})


async def get_model(request: Request) -> Response:
    message = await read_message(request, "registered-models/get")
    body = await call(_model_body, _client(request), message.text("name", required=True))
    return answer({"registered_model": body})


def _search_models(client: Client, message: Message) -> dict[str, Any]:
    matches = name_matcher(message.text("filter"), "registered-models/search")
    limit = message.integer("max_results", default=100, minimum=1) or 100
    offset = decode_page_token(message.text("page_token"), "registered-models/search")
    names = [m.name for m in client.list_registered_models() if matches(m.name)]
    return page(names, "registered_models", lambda name: _model_body(client, name),
                offset=offset, limit=limit)


@requires("viewer")
async def search_models(request: Request) -> Response:
    message = await read_message(request, "registered-models/search")
    return answer(await call(_search_models, _client(request), message))


def _latest(client: Client, name: str, stages: list[str]) -> list[ModelVersion]:
    wanted = {s.lower() for s in stages} or {"none", "archived"}
    latest: dict[str, ModelVersion] = {}
    for version in client.list_model_versions(name):
        latest["archived" if version.status == "archived" else "none"] = version
    return [latest[s] for s in ("none", "archived") if s in latest and s in wanted]


@requires("viewer")
async def latest_versions(request: Request) -> Response:
    message = await read_message(request, "registered-models/get-latest-versions")
    found = await call(_latest, _client(request), message.text("name", required=True),
                       message.strings("stages"))
    return answer({"model_versions": [model_version_json(v) for v in found]})


# -- aliases ------------------------------------------------------------------------------


async def set_alias(request: Request) -> Response:
    message = await read_message(request, "registered-models/alias")
    name, alias = message.text("name", required=True), message.text("alias", required=True)
    version, actor = _version_number(message), _actor(request)
    client = _client(request)

    def move() -> None:
        with client.meta.write() as conn:
            records.set_alias(conn, name, alias, version, actor=actor,
                              reason="set with the mlflow client")
    await call(move)
    return answer()


async def get_alias(request: Request) -> Response:
    message = await read_message(request, "registered-models/alias")
    ref = f"{message.text('name', required=True)}@{message.text('alias', required=True)}"
    version = await call(_client(request).get_model_version, ref)
    return answer({"model_version": model_version_json(version)})


async def delete_alias(request: Request) -> Response:
    message = await read_message(request, "registered-models/alias")
    name, alias = message.text("name", required=True), message.text("alias", required=True)
    actor = _actor(request)
    client = _client(request)

    def remove() -> None:
        with client.meta.write() as conn:
            records.delete_alias(conn, name, alias, actor=actor,
                                 reason="deleted with the mlflow client")
    await call(remove)
    return answer()


# -- model versions -----------------------------------------------------------------------


def _source(client: Client, source: str, model_id: str) -> tuple[str, str, str]:
    """(run id, artifact path, logged model id) of the model files a version is made from."""
    if not model_id and source.startswith("models:/"):
        rest = source.removeprefix("models:/")
        if "/" in rest or "@" in rest:
            raise InvalidArgument(f"model-versions/create: source {source!r} names a "
                                  "registered version; register from the logged model "
                                  "(models:/m-...) or the run (runs:/RUN/PATH) instead")
        model_id = rest
    if model_id:
        model = logged_models.find(client, model_id)
        return model.run_id, model.artifact_dir, model.id
    if source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        return run_id, path.strip("/"), ""
    parts = urlsplit(source)
    if parts.scheme == "mlflow-artifacts":
        location = parse_location(parts.path)
        if location.is_run:
            return location.run_id, location.path, ""
    raise InvalidArgument(
        f"model-versions/create: cannot register from {source!r}: give a logged model "
        "(models:/m-...), runs:/RUN_ID/PATH or an mlflow-artifacts:/ URI of a run's "
        "artifacts; loopml registers files it stores and never fetches other URIs")


def _create_version(client: Client, message: Message, *, allow_pickle: bool
                    ) -> dict[str, Any]:
    name = check_model_name(message.text("name", required=True))
    source = message.text("source")
    with client.meta.read() as conn:
        records.get_model(conn, name)  # 404 first, as MLflow answers
    run_id, path, model_id = _source(client, source, message.text("model_id"))
    given_run = message.text("run_id")
    if given_run and given_run != run_id:
        raise InvalidArgument(f"model-versions/create: run_id {given_run} is not the run "
                              f"{run_id} that holds the model files of {source!r}")
    tags = message.pairs("tags", limit=100)
    tree, manifest = import_mlflow_model(
        client, run_id=run_id, path=path, allow_pickle=allow_pickle,
        metadata={"mlflow": {"model_id": model_id, "source": source, "tags": tags}})
    version = register_tree(client.meta, name=name, tree=tree, manifest=manifest,
                            run_id=run_id, description=message.text("description"))
    body = model_version_json(version)
    body.update(model_id=model_id, tags=[{"key": k, "value": v} for k, v in tags.items()])
    return body


async def create_version(request: Request) -> Response:
    message = await read_message(request, "model-versions/create")
    body = await call(_create_version, _client(request), message,
                      allow_pickle=_is_admin(request))
    return answer({"model_version": body})


def _get_version(client: Client, name: str, version: int) -> ModelVersion:
    with client.meta.read() as conn:
        return records.resolve(conn, ModelRef(check_model_name(name), version=version))


async def get_version(request: Request) -> Response:
    message = await read_message(request, "model-versions/get")
    found = await call(_get_version, _client(request), message.text("name", required=True),
                       _version_number(message))
    return answer({"model_version": model_version_json(found)})


async def download_uri(request: Request) -> Response:
    message = await read_message(request, "model-versions/get-download-uri")
    found = await call(_get_version, _client(request), message.text("name", required=True),
                       _version_number(message))
    return answer({"artifact_uri": version_artifact_uri(found.model, found.version)})


def _versions_or_none(client: Client, name: str) -> list[ModelVersion]:
    try:
        return client.list_model_versions(name)
    except NotFound:
        return []


def _search_versions(client: Client, message: Message) -> dict[str, Any]:
    text = message.text("filter")
    wanted: dict[str, str] = {}
    for term in re.split(r"\s+AND\s+", text, flags=re.IGNORECASE) if text.strip() else []:
        found = _VERSION_TERM.match(term)
        if found is None:
            raise InvalidArgument(f"model-versions/search: unsupported filter {text!r}; loopml "
                                  "supports name = '...' and run_id = '...' joined with AND")
        wanted[found.group(1).lower()] = found.group(2).replace("''", "'")
    limit = message.integer("max_results", default=10_000, minimum=1) or 1
    offset = decode_page_token(message.text("page_token"), "model-versions/search")
    names = ([wanted["name"]] if "name" in wanted
             else [m.name for m in client.list_registered_models()])
    versions = [v for n in names for v in reversed(_versions_or_none(client, n))
                if wanted.get("run_id", v.run_id) == v.run_id]
    return page(versions, "model_versions", model_version_json, offset=offset, limit=limit)


@requires("viewer")
async def search_versions(request: Request) -> Response:
    message = await read_message(request, "model-versions/search")
    return answer(await call(_search_versions, _client(request), message))


def routes() -> list[BaseRoute]:
    models, versions = f"{_PREFIX}/registered-models", f"{_PREFIX}/model-versions"
    return [
        Route(f"{models}/create", create_model, methods=["POST"]),
        Route(f"{models}/get", get_model, methods=["GET"]),
        Route(f"{models}/search", search_models, methods=["GET", "POST"]),
        Route(f"{models}/get-latest-versions", latest_versions, methods=["GET", "POST"]),
        Route(f"{models}/alias", set_alias, methods=["POST"]),
        Route(f"{models}/alias", get_alias, methods=["GET"]),
        Route(f"{models}/alias", delete_alias, methods=["DELETE"]),
        Route(f"{versions}/create", create_version, methods=["POST"]),
        Route(f"{versions}/get", get_version, methods=["GET"]),
        Route(f"{versions}/get-download-uri", download_uri, methods=["GET"]),
        Route(f"{versions}/search", search_versions, methods=["GET", "POST"]),
    ]
