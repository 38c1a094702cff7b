"""``/api/2.0/mlflow/experiments/*``: get by name (404 makes the client create it), create,
get, search.

MLflow's experiment ids are loopml's (see :mod:`.translate`); ``"0"`` is the default
experiment, created on first use as MLflow's server creates it at start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.errors import InvalidArgument, NotFound
from loopml.server.roles import requires
from loopml.tracking import records
from loopml.tracking.entities import Experiment
from loopml.tracking.tables import experiments

from .messages import answer, call, decode_page_token, page, read_message
from .translate import DEFAULT_EXPERIMENT_ID, experiment_json, name_matcher

if TYPE_CHECKING:
    from loopml.client import Client

__all__ = ["experiment_by_id", "experiment_ids", "routes"]

_PREFIX = "/api/2.0/mlflow/experiments"


def _client(request: Request) -> Client:
    return request.app.state.client  # type: ignore[no-any-return]


def _experiment(row: Any) -> Experiment:
    return Experiment(id=row.id, name=row.name, description=row.description,
                      created_at=row.created_at, lifecycle=row.lifecycle)


def _find(conn: sa.Connection, column: sa.Column[str], value: str) -> Experiment | None:
    row = conn.execute(sa.select(experiments).where(column == value)).first()
    return None if row is None else _experiment(row)


def experiment_by_id(client: Client, experiment_id: str, *, create_default: bool = True
                     ) -> Experiment:
    """The experiment with this MLflow id (``"0"``: the default one, created if missing)."""
    with client.meta.read() as conn:
        if experiment_id == DEFAULT_EXPERIMENT_ID:
            found = _find(conn, experiments.c.name, client.settings.default_experiment)
        else:
            found = _find(conn, experiments.c.id, experiment_id)
    if found is not None:
        return found
    if experiment_id != DEFAULT_EXPERIMENT_ID or not create_default:
        raise NotFound(f"no experiment with id {experiment_id!r}; look experiments up by name "
                       "with experiments/get-by-name")
    with client.meta.write() as conn:
        found = _find(conn, experiments.c.name, client.settings.default_experiment)
        return found or records.create_experiment(conn, client.settings.default_experiment)


def experiment_ids(client: Client, ids: list[str]) -> list[str]:
    """loopml ids for MLflow experiment ids: ``"0"`` becomes the default experiment's id
    (dropped when it does not exist yet); other ids are kept (unknown ones match nothing)."""
    result = []
    for experiment_id in ids:
        if experiment_id != DEFAULT_EXPERIMENT_ID:
            result.append(experiment_id)
            continue
        with client.meta.read() as conn:
            found = _find(conn, experiments.c.name, client.settings.default_experiment)
        if found is not None:
            result.append(found.id)
    return result


def _by_name(client: Client, name: str) -> Experiment:
    with client.meta.read() as conn:
        found = _find(conn, experiments.c.name, name)
    if found is None:
        raise NotFound(f"no experiment named {name!r}")
    return found


async def get_by_name(request: Request) -> Response:
    message = await read_message(request, "experiments/get-by-name")
    name = message.text("experiment_name", required=True)
    experiment = await call(_by_name, _client(request), name)
    return answer({"experiment": experiment_json(experiment)})


async def get(request: Request) -> Response:
    message = await read_message(request, "experiments/get")
    experiment_id = message.text("experiment_id", required=True)
    experiment = await call(experiment_by_id, _client(request), experiment_id)
    return answer({"experiment": experiment_json(experiment)})


async def create(request: Request) -> Response:
    message = await read_message(request, "experiments/create")
    name = message.text("name", required=True)
    if message.text("artifact_location"):
        raise InvalidArgument("experiments/create: artifact_location is not supported: loopml "
                              "keeps every artifact in its blob store; leave it out")
    tags = message.pairs("tags", limit=100)
    unknown = sorted(set(tags) - {"mlflow.note.content"})
    if unknown:
        raise InvalidArgument(f"experiments/create: experiment tags are not supported by "
                              f"loopml (got {', '.join(unknown)}); only mlflow.note.content, "
                              "the description, is kept")
    client = _client(request)
    experiment = await call(client.create_experiment, name,
                            description=tags.get("mlflow.note.content", ""))
    return answer({"experiment_id": experiment.id})


@requires("viewer")
async def search(request: Request) -> Response:
    message = await read_message(request, "experiments/search")
    matches = name_matcher(message.text("filter"), "experiments/search")
    view = message.text("view_type", default="ACTIVE_ONLY").upper()
    if view not in ("ACTIVE_ONLY", "ALL", "1", "3"):
        raise InvalidArgument(f"experiments/search: view_type {view!r} is not supported; use "
                              "ACTIVE_ONLY or ALL")
    limit = message.integer("max_results", default=1000, minimum=1) or 1000
    offset = decode_page_token(message.text("page_token"), "experiments/search")
    client = _client(request)
    found = [e for e in await call(client.list_experiments) if matches(e.name)]
    return answer(page(found, "experiments", experiment_json, offset=offset, limit=limit))


def routes() -> list[BaseRoute]:
    return [
        Route(f"{_PREFIX}/get-by-name", get_by_name, methods=["GET"]),
        Route(f"{_PREFIX}/get", get, methods=["GET"]),
        Route(f"{_PREFIX}/create", create, methods=["POST"]),
        Route(f"{_PREFIX}/search", search, methods=["GET", "POST"]),
    ]
