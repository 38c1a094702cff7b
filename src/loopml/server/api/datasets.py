"""``/api/v1`` dataset endpoints: the dataset registry over HTTP.

======  ===============================================  ===================================
GET     /api/v1/datasets                                 every dataset with its latest version
GET     /api/v1/datasets/{name}                          one dataset with its latest version
GET     /api/v1/datasets/{name}/versions                 its versions, oldest first
POST    /api/v1/datasets/{name}/versions                 record a version whose objects were
                                                         uploaded (``{kind, tree,
                                                         parent_version, message, run_id,
                                                         rows, new_rows, schema, profile,
                                                         validation}``): 201, or 200 with
                                                         ``unchanged`` when identical
GET     /api/v1/datasets/{name}/versions/{selector}      one version (``3``, ``latest``, a tag)
PUT     /api/v1/datasets/{name}/tags/{tag}               point a tag: ``{version: selector}``
PUT     /api/v1/datasets/{name}/contract                 ``{contract: {...} | null}``
GET     /api/v1/datasets/{name}/versions/{selector}/lineage   runs that read or wrote it
POST    /api/v1/datasets/{name}/versions/{selector}/lineage   ``{run_id, role}``
GET     /api/v1/dataset-diff?old=REF&new=REF             files, rows, columns, statistics
======  ===============================================  ===================================

The content of versions travels through the blob endpoints (:mod:`loopml.server.api.blobs`);
these endpoints carry only metadata. Dataset names, tags and selectors are checked by the
registry's own rules (400 for anything else, such as ``..``); a version is recorded only
after its tree is checked whole on the server (:mod:`loopml.server.api.dataset_commit`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.datasets.refs import check_dataset_name, check_tag
from loopml.errors import InvalidArgument
from loopml.server.api import dataset_wire as wire
from loopml.server.api.common import (
    API,
    actor,
    body_object,
    call,
    client,
    get_str,
    json_response,
)

__all__ = ["routes"]


def _name(request: Request) -> str:
    return check_dataset_name(request.path_params["name"])


def _ref(request: Request) -> str:
    selector = request.path_params["selector"]
    if "@" in selector:
        raise InvalidArgument(f"version selector {selector!r} must be a number, 'latest' or "
                              "a tag")
    return f"{_name(request)}@{selector}"


async def list_datasets(request: Request) -> Response:
    """Every dataset with its latest version."""
    found = await call(client(request).list_datasets)
    return json_response({"datasets": [
        {"dataset": wire.dataset_out(d),
         "latest": None if v is None else wire.dataset_version_out(v)} for d, v in found]})


def _dataset_and_latest(request: Request, name: str) -> dict[str, object]:
    from loopml.datasets import records

    with client(request).meta.read() as conn:
        dataset = records.get_dataset(conn, name)
        latest = records.latest_version(conn, dataset)
    return {"dataset": wire.dataset_out(dataset),
            "latest": None if latest is None else wire.dataset_version_out(latest)}


async def get_dataset(request: Request) -> Response:
    """One dataset with its latest version (404 if there is none)."""
    return json_response(await call(_dataset_and_latest, request, _name(request)))


async def list_dataset_versions(request: Request) -> Response:
    """The dataset's versions, oldest first."""
    found = await call(client(request).list_dataset_versions, _name(request))
    return json_response({"versions": [wire.dataset_version_out(v) for v in found]})


async def record_dataset_version(request: Request) -> Response:
    """Record the next version of a dataset whose objects were uploaded (checked whole here)."""
    from loopml.server.api.dataset_commit import commit_version

    name = _name(request)
    body = await body_object(request)
    version = await call(commit_version, client(request), name, body, user=actor(request))
    return json_response(wire.dataset_version_out(version),
                         status=200 if version.unchanged else 201)


async def get_dataset_version(request: Request) -> Response:
    """One version: a number, ``latest`` or a tag."""
    version = await call(client(request).get_dataset_version, _ref(request))
    return json_response(wire.dataset_version_out(version))


async def tag_dataset_version(request: Request) -> Response:
    """Point a tag at a version ``{version: selector}``."""
    name = _name(request)
    tag = check_tag(request.path_params["tag"])
    body = await body_object(request)
    selector = get_str(body, "version")
    if "@" in selector:
        raise InvalidArgument(f"field 'version' must be a number, 'latest' or a tag, got "
                              f"{selector!r}")
    version = await call(client(request).tag_dataset, f"{name}@{selector}", tag)
    return json_response(wire.dataset_version_out(version))


async def set_dataset_contract(request: Request) -> Response:
    """Attach a data contract ``{contract: {...}}`` (null removes it)."""
    from loopml.datasets.contract import Contract

    name = _name(request)
    body = await body_object(request)
    if "contract" not in body:
        raise InvalidArgument("field 'contract' is required (an object, or null to remove "
                              "the contract)")
    raw = body["contract"]
    contract = None if raw is None else Contract.from_dict(raw)
    await call(client(request).set_dataset_contract, name, contract)
    return json_response({"contract": None if contract is None else contract.to_dict()})


async def dataset_lineage(request: Request) -> Response:
    """The runs that read or wrote a version, with their role."""
    from loopml.server.api.wire import run_out

    found = await call(client(request).dataset_lineage, _ref(request))
    return json_response({"lineage": [{"run": run_out(run), "role": role}
                                      for run, role in found]})


async def record_dataset_use(request: Request) -> Response:
    """Record that a run read (``input``) or wrote (``output``) a version."""
    body = await body_object(request)
    run_id = get_str(body, "run_id")
    role = get_str(body, "role", "input")
    version = await call(client(request).use_dataset, run_id, _ref(request), role=role)
    return json_response(wire.dataset_version_out(version))


async def diff_datasets(request: Request) -> Response:
    """What changed between two versions: files, rows, columns, statistics."""
    old, new = request.query_params.get("old"), request.query_params.get("new")
    if not old or not new:
        raise InvalidArgument("query parameters 'old' and 'new' (dataset references such as "
                              "'churn@1') are required")
    found = await call(client(request).diff_datasets, old, new)
    return json_response(wire.diff_out(found))


def routes() -> list[BaseRoute]:
    dataset = f"{API}/datasets/{{name}}"
    version = f"{dataset}/versions/{{selector}}"
    return [
        Route(f"{API}/datasets", list_datasets, methods=["GET"]),
        Route(f"{API}/dataset-diff", diff_datasets, methods=["GET"]),
        Route(dataset, get_dataset, methods=["GET"]),
        Route(f"{dataset}/versions", list_dataset_versions, methods=["GET"]),
        Route(f"{dataset}/versions", record_dataset_version, methods=["POST"]),
        Route(version, get_dataset_version, methods=["GET"]),
        Route(f"{version}/lineage", dataset_lineage, methods=["GET"]),
        Route(f"{version}/lineage", record_dataset_use, methods=["POST"]),
        Route(f"{dataset}/tags/{{tag}}", tag_dataset_version, methods=["PUT"]),
        Route(f"{dataset}/contract", set_dataset_contract, methods=["PUT"]),
    ]
