"""MLflow 3's logged models (``/api/2.0/mlflow/logged-models``), kept in their run.

A logged model is what ``mlflow.<flavor>.log_model`` creates before it uploads the model's
files. loopml keeps a model's files as its run's artifacts, so a logged model lives in its
source run, without a table of its own:

* its files are the run's artifacts under the model's name (``model/MLmodel``, … as
  MLflow 2 laid them out; ``NAME-xxxxxxxx`` when a run logs two models with one name); its
  ``artifact_uri`` points there, so the client uploads them through the artifact proxy;
* what MLflow records about it (name, status, tags, params, metrics, the step it was logged
  at) is one JSON run tag, ``loopml.mlflow.logged_model.<model id>``, hidden from MLflow's
  view of the run. The id is MLflow's form, ``m-`` and 32 hex digits; the tags index finds
  the run of an id.

A logged model needs a run: one created outside ``mlflow.start_run()`` is refused (400).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.errors import InvalidArgument, NotFound
from loopml.server.roles import requires
from loopml.tracking import records
from loopml.tracking.artifacts import list_artifacts
from loopml.tracking.entities import Metric
from loopml.tracking.tables import tags
from loopml.tracking.validation import check_key
from loopml.tracking.writes import write_tags

from .experiments import experiment_ids
from .messages import (
    Message,
    answer,
    call,
    decode_page_token,
    json_number,
    page,
    read_message,
)
from .translate import HIDDEN_TAG_PREFIX, run_artifact_uri

if TYPE_CHECKING:
    from loopml.client import Client

__all__ = ["TAG_PREFIX", "LoggedModel", "add_metrics", "find", "logged_models_of_run",
           "mark_output", "routes"]

TAG_PREFIX = f"{HIDDEN_TAG_PREFIX}logged_model."
STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
_ID = re.compile(r"^m-[0-9a-f]{32}$")
_BAD_NAME_CHARS = set("/\\:%\"'\x00")
_MAX_METRICS = 10_000
_PREFIX = "/api/2.0/mlflow/logged-models"


@dataclass(frozen=True, kw_only=True)
class LoggedModel:
    """A logged model as its run's tag records it."""

    id: str
    run_id: str
    experiment_id: str
    name: str
    artifact_dir: str
    status: str = "LOGGED_MODEL_PENDING"
    model_type: str = ""
    created_at: int = 0
    updated_at: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: tuple[Metric, ...] = ()
    output_step: int | None = None

    def record(self) -> str:
        data = dataclasses.asdict(self)
        for key in ("id", "run_id"):
            data.pop(key)
        data["metrics"] = [[m.key, json_number(m.value), m.step, m.timestamp]
                           for m in self.metrics]
        return orjson.dumps(data).decode()

    @classmethod
    def from_record(cls, model_id: str, run_id: str, text: str) -> LoggedModel:
        data = orjson.loads(text)
        data["metrics"] = tuple(Metric(k, float(v), s, t)  # float("NaN"), float("Infinity")
                                for k, v, s, t in data.get("metrics", ()))
        return cls(id=model_id, run_id=run_id, **data)

    def to_json(self) -> dict[str, Any]:
        info = {"model_id": self.id, "experiment_id": self.experiment_id, "name": self.name,
                "creation_timestamp_ms": self.created_at,
                "last_updated_timestamp_ms": self.updated_at,
                "artifact_uri": run_artifact_uri(self.experiment_id, self.run_id,
                                                 self.artifact_dir),
                "status": self.status, "model_type": self.model_type,
                "source_run_id": self.run_id,
                "tags": [{"key": k, "value": v} for k, v in self.tags.items()]}
        metrics = [{"key": m.key, "value": json_number(m.value), "step": m.step,
                    "timestamp": m.timestamp, "model_id": self.id, "run_id": self.run_id}
                   for m in self.metrics]
        return {"info": info, "data": {
            "params": [{"key": k, "value": v} for k, v in self.params.items()],
            "metrics": metrics}}


def logged_models_of_run(run_tags: Mapping[str, str], run_id: str) -> list[LoggedModel]:
    return [LoggedModel.from_record(key[len(TAG_PREFIX):], run_id, value)
            for key, value in run_tags.items() if key.startswith(TAG_PREFIX)]


def _check_id(model_id: str) -> str:
    if not _ID.match(model_id):
        raise NotFound(f"no logged model with id {model_id!r}; logged model ids read "
                       "m- and 32 hex digits")
    return model_id


def _read(conn: sa.Connection, model_id: str, *, lock: bool = False) -> LoggedModel:
    query = sa.select(tags.c.run_id, tags.c.value).where(
        tags.c.key == TAG_PREFIX + _check_id(model_id))
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"no logged model with id {model_id!r}")
    return LoggedModel.from_record(model_id, row.run_id, row.value)


def find(client: Client, model_id: str) -> LoggedModel:
    with client.meta.read() as conn:
        return _read(conn, model_id)


def update(client: Client, model_id: str,
           change: Callable[[LoggedModel], LoggedModel]) -> LoggedModel:
    """Apply ``change`` to the logged model in one transaction (its tag row locked)."""
    with client.meta.write() as conn:
        model = change(_read(conn, model_id, lock=True))
        model = dataclasses.replace(model, updated_at=records.now_ms())
        write_tags(conn, model.run_id, {TAG_PREFIX + model.id: model.record()})
        return model


def _check_name(name: str) -> str:
    if not name or len(name) > 200 or _BAD_NAME_CHARS & set(name) or name in (".", ".."):
        raise InvalidArgument(f"logged-models: invalid model name {name!r}: use 1-200 "
                              "characters without / \\ : % or quotes")
    return name


def _artifact_dir(conn: sa.Connection, run_id: str, name: str, model_id: str,
                  run_tags: Mapping[str, str]) -> str:
    """The run's artifact directory for the model: its name unless taken."""
    taken = {m.artifact_dir for m in logged_models_of_run(run_tags, run_id)}
    if name not in taken and not list_artifacts(conn, run_id, name):
        return name
    return f"{name}-{model_id[2:10]}"


def create(client: Client, *, run_id: str, experiment_id: str, name: str, model_type: str,
           params: dict[str, str], tags: dict[str, str]) -> LoggedModel:
    model_id = f"m-{uuid.uuid4().hex}"
    with client.meta.write() as conn:
        run = records.get_run(conn, run_id)
        if experiment_id and experiment_id not in ("0", run.experiment_id):
            raise InvalidArgument(f"logged-models: run {run_id} belongs to experiment "
                                  f"{run.experiment_id}, not {experiment_id}")
        now = records.now_ms()
        model = LoggedModel(id=model_id, run_id=run_id, experiment_id=run.experiment_id,
                            name=name, model_type=model_type, created_at=now,
                            updated_at=now, tags=tags, params=params,
                            artifact_dir=_artifact_dir(conn, run_id, name, model_id, run.tags))
        write_tags(conn, run_id, {TAG_PREFIX + model_id: model.record()})
    return model


def add_metrics(client: Client, metrics: Iterable[tuple[str, Metric]]) -> None:
    """Record metric points logged with a ``model_id`` as that model's metrics."""
    by_model: dict[str, list[Metric]] = {}
    for model_id, metric in metrics:
        by_model.setdefault(model_id, []).append(metric)
    for model_id, points in by_model.items():
        def append(model: LoggedModel, points: list[Metric] = points) -> LoggedModel:
            kept = (*model.metrics, *points)[-_MAX_METRICS:]
            return dataclasses.replace(model, metrics=kept)
        update(client, model_id, append)


def mark_output(client: Client, run_id: str, model_id: str, step: int) -> None:
    """``runs/outputs``: the run produced the model at ``step``."""
    model = find(client, model_id)
    if model.run_id != run_id:
        raise InvalidArgument(f"runs/outputs: logged model {model_id} belongs to run "
                              f"{model.run_id}, not {run_id}; loopml keeps a model in the run "
                              "that logged it")
    update(client, model_id, lambda m: dataclasses.replace(m, output_step=step))


# -- endpoints ----------------------------------------------------------------------------


def _client(request: Request) -> Client:
    return request.app.state.client  # type: ignore[no-any-return]


def _checked_tags(message: Message) -> dict[str, str]:
    values = message.pairs("tags", limit=1000)
    for key in values:
        check_key(key, kind="tag")
    return values


async def create_endpoint(request: Request) -> Response:
    message = await read_message(request, "logged-models")
    run_id = message.text("source_run_id")
    if not run_id:
        raise InvalidArgument("logged-models: source_run_id is required: loopml keeps a "
                              "model's files in the run that logged it; log the model inside "
                              "mlflow.start_run()")
    name = _check_name(message.text("name") or "model")
    params = message.pairs("params", limit=10_000)
    model = await call(create, _client(request), run_id=run_id,
                       experiment_id=message.text("experiment_id"), name=name,
                       model_type=message.text("model_type"), params=params,
                       tags=_checked_tags(message))
    return answer({"model": model.to_json()})


async def get_endpoint(request: Request) -> Response:
    model = await call(find, _client(request), request.path_params["model_id"])
    return answer({"model": model.to_json()})


async def finalize_endpoint(request: Request) -> Response:
    message = await read_message(request, "logged-models/finalize")
    status = message.text("status", required=True)
    if status not in STATUSES[1:]:
        raise InvalidArgument(f"logged-models: status {status!r} is not a final status; use "
                              f"{' or '.join(STATUSES[1:])}")
    model = await call(update, _client(request), request.path_params["model_id"],
                       lambda m: dataclasses.replace(m, status=status))
    return answer({"model": model.to_json()})


async def set_tags_endpoint(request: Request) -> Response:
    message = await read_message(request, "logged-models/tags")
    values = _checked_tags(message)
    model = await call(update, _client(request), request.path_params["model_id"],
                       lambda m: dataclasses.replace(m, tags={**m.tags, **values}))
    return answer({"model": model.to_json()})


async def delete_tag_endpoint(request: Request) -> Response:
    key = request.path_params["key"]

    def drop(model: LoggedModel) -> LoggedModel:
        if key not in model.tags:
            raise NotFound(f"logged model {model.id} has no tag {key!r}")
        return dataclasses.replace(model, tags={k: v for k, v in model.tags.items()
                                                if k != key})
    await call(update, _client(request), request.path_params["model_id"], drop)
    return answer()


_SEARCH_TERM = re.compile(r"^\s*(source_run_id|name)\s*=\s*'([^']*)'\s*$", re.IGNORECASE)


def _search(client: Client, ids: list[str], wanted: dict[str, str]) -> list[LoggedModel]:
    query = sa.select(tags.c.run_id, tags.c.key, tags.c.value).where(
        tags.c.key.startswith(TAG_PREFIX, autoescape=True))
    if "source_run_id" in wanted:
        query = query.where(tags.c.run_id == wanted["source_run_id"])
    with client.meta.read() as conn:
        rows = conn.execute(query.order_by(tags.c.key)).all()
    found = [LoggedModel.from_record(r.key[len(TAG_PREFIX):], r.run_id, r.value) for r in rows]
    return sorted((m for m in found if m.experiment_id in ids
                   and wanted.get("name", m.name) == m.name),
                  key=lambda m: m.created_at, reverse=True)


@requires("viewer")
async def search_endpoint(request: Request) -> Response:
    message = await read_message(request, "logged-models/search")
    wanted: dict[str, str] = {}
    text = message.text("filter")
    for term in re.split(r"\s+AND\s+", text, flags=re.IGNORECASE) if text.strip() else []:
        term_match = _SEARCH_TERM.match(term)
        if term_match is None:
            raise InvalidArgument(f"logged-models/search: unsupported filter {text!r}; loopml "
                                  "supports source_run_id = '...' and name = '...' joined "
                                  "with AND")
        wanted[term_match.group(1).lower()] = term_match.group(2)
    client = _client(request)
    ids = await call(experiment_ids, client, message.strings("experiment_ids"))
    limit = message.integer("max_results", default=100, minimum=1) or 100
    offset = decode_page_token(message.text("page_token"), "logged-models/search")
    found = await call(_search, client, ids, wanted)
    return answer(page(found, "models", lambda model: model.to_json(), offset=offset,
                       limit=limit))


def routes() -> list[BaseRoute]:
    return [
        Route(_PREFIX, create_endpoint, methods=["POST"]),
        Route(f"{_PREFIX}/search", search_endpoint, methods=["POST"]),
        Route(f"{_PREFIX}/{{model_id}}", get_endpoint, methods=["GET"]),
        Route(f"{_PREFIX}/{{model_id}}", finalize_endpoint, methods=["PATCH"]),
        Route(f"{_PREFIX}/{{model_id}}/tags", set_tags_endpoint, methods=["PATCH"]),
        Route(f"{_PREFIX}/{{model_id}}/tags/{{key:path}}", delete_tag_endpoint,
              methods=["DELETE"]),
    ]
