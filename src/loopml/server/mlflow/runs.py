"""``/api/2.0/mlflow/runs/*`` and ``metrics/get-history``: runs and what they log.

MLflow's calls map to loopml's tracking operations one to one: a param is fixed once logged
(a different value is 409 ``INVALID_STATE``), a metric point keeps its step and timestamp,
``runs/search`` takes MLflow's filter and order-by syntax (see :mod:`.translate`) with
offset page tokens. Two MLflow tags mean something to loopml: ``mlflow.runName`` is the
run's name (setting it renames the run) and ``mlflow.parentRunId`` its parent run.

Dataset inputs (``runs/log-inputs``, sent by autologging) are kept as the run's record, shown
back in ``runs/get``; loopml's own dataset lineage links loopml dataset versions only.

A metric point logged with a ``model_id`` is a point of the run *and* of that logged model,
as in MLflow; the copies ``log_model`` sends of points the run already has are not written
to the run's history twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.errors import InvalidArgument, NotFound
from loopml.server.roles import requires
from loopml.tracking import records
from loopml.tracking.entities import Metric, RunStatus
from loopml.tracking.names import random_run_name
from loopml.tracking.search import search_run_ids
from loopml.tracking.tables import latest_metrics, metrics, runs, tags
from loopml.tracking.validation import check_key
from loopml.tracking.writes import write_tags

from . import logged_models
from .experiments import experiment_by_id, experiment_ids
from .messages import (
    Message,
    answer,
    call,
    decode_page_token,
    encode_page_token,
    page,
    read_message,
)
from .translate import (
    HIDDEN_TAG_PREFIX,
    metric_json,
    mlflow_filter,
    mlflow_order_by,
    run_info_json,
    run_json,
)

if TYPE_CHECKING:
    from loopml.client import Client

__all__ = ["routes", "run_bodies"]

_PREFIX = "/api/2.0/mlflow"
RUN_NAME_TAG = "mlflow.runName"
PARENT_TAG = "mlflow.parentRunId"
#: MLflow's limits on one ``log-batch``.
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100
MAX_INPUTS = 1000
#: What the run's dataset inputs recorded by ``runs/log-inputs`` are kept in.
INPUTS_TAG = f"{HIDDEN_TAG_PREFIX}inputs"
_DATASET_FIELDS = frozenset({"name", "digest", "source_type", "source", "schema", "profile"})
#: MLflow's default and largest page of ``runs/search``.
DEFAULT_RESULTS, MAX_RESULTS = 1000, 50_000


def _client(request: Request) -> Client:
    return request.app.state.client  # type: ignore[no-any-return]


def _user(request: Request, given: str) -> str:
    """Who runs: the token's name when the request carries one, else what the client says."""
    principal = getattr(request.state, "principal", None)
    if principal is not None and getattr(principal, "token_id", None):
        return str(principal.name)
    return given[:256]


# -- reading ------------------------------------------------------------------------------


def _points(conn: sa.Connection, run_ids: Sequence[str]) -> dict[str, dict[str, tuple[int, int]]]:
    """(step, timestamp) of each run's latest value of each metric."""
    found: dict[str, dict[str, tuple[int, int]]] = {run_id: {} for run_id in run_ids}
    lm = latest_metrics.c
    for run_id, key, step, timestamp in conn.execute(
            sa.select(lm.run_id, lm.key, lm.step, lm.timestamp)
            .where(lm.run_id.in_(list(run_ids)))).all():
        found[run_id][key] = (step, timestamp)
    return found


def run_bodies(client: Client, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """MLflow's JSON of the runs (in order; missing ones skipped)."""
    with client.meta.read() as conn:
        loaded = records.load_runs(conn, run_ids)
        points = _points(conn, [run.id for run in loaded])
    bodies = []
    for run in loaded:
        outputs = [(m.id, m.output_step) for m in logged_models.logged_models_of_run(
            run.tags, run.id) if m.output_step is not None]
        inputs = orjson.loads(run.tags[INPUTS_TAG]) if INPUTS_TAG in run.tags else None
        bodies.append(run_json(run, points=points[run.id], outputs=outputs, inputs=inputs))
    return bodies


def _run_body(client: Client, run_id: str) -> dict[str, Any]:
    found = run_bodies(client, [run_id])
    if not found:
        raise NotFound(f"no run with id {run_id!r}")
    return found[0]


# -- writing ------------------------------------------------------------------------------


def _checked_tags(values: dict[str, str]) -> dict[str, str]:
    for key in values:
        check_key(key, kind="tag")
        if key.startswith(HIDDEN_TAG_PREFIX):
            raise InvalidArgument(f"tag {key!r}: tags starting with {HIDDEN_TAG_PREFIX!r} are "
                                  "kept by loopml's MLflow API itself; choose another name")
    return values


def _check_name(name: str) -> str:
    if not name or len(name) > 256:
        raise InvalidArgument(f"invalid run name {name[:80]!r}: use 1-256 characters")
    return name


def _rename(conn: sa.Connection, run_id: str, name: str) -> None:
    _check_name(name)
    if conn.execute(runs.update().where(runs.c.id == run_id).values(name=name)).rowcount == 0:
        raise NotFound(f"no run with id {run_id!r}")
    write_tags(conn, run_id, {RUN_NAME_TAG: name})


def _create(client: Client, *, experiment_id: str, name: str, user: str,
            start_time: int | None, run_tags: dict[str, str]) -> dict[str, Any]:
    experiment = experiment_by_id(client, experiment_id)
    parent = run_tags.get(PARENT_TAG) or None
    with client.meta.write() as conn:
        if parent is not None:
            records.experiment_id_of_run(conn, parent)
        run = records.create_run(conn, experiment_id=experiment.id, name=name,
                                 parent_run_id=parent, user=user, start_time=start_time)
        write_tags(conn, run.id, {**run_tags, RUN_NAME_TAG: name})
    return _run_body(client, run.id)


def _update(client: Client, run_id: str, status: RunStatus | None, end_time: int | None,
            name: str) -> dict[str, Any]:
    with client.meta.write() as conn:
        if status is not None:
            if status is RunStatus.RUNNING:
                end_time = None
            elif end_time is None:
                end_time = records.now_ms()
            records.set_run_status(conn, run_id, status, end_time)
        elif end_time is not None:
            updated = conn.execute(runs.update().where(runs.c.id == run_id)
                                   .values(end_time=end_time))
            if updated.rowcount == 0:
                raise NotFound(f"no run with id {run_id!r}")
        if name:
            _rename(conn, run_id, name)
        run = records.get_run(conn, run_id)
    return {"run_info": run_info_json(run)}


def _metric(message: Message, item: dict[str, Any], now: int) -> tuple[Metric, str]:
    key = item.get("key")
    if not isinstance(key, str):
        raise InvalidArgument(f"{message.endpoint}: each metric needs a string 'key', got "
                              f"{key!r}")
    if "value" not in item:
        raise InvalidArgument(f"{message.endpoint}: metric {key!r} has no value")
    sub = Message(item, endpoint=message.endpoint)
    value = sub.as_number(f"metric {key!r} value", item["value"])
    step = sub.integer("step", default=0) or 0
    timestamp = sub.integer("timestamp", default=None) or now
    model_id = sub.text("model_id")
    return Metric(check_key(key, kind="metric"), value, step, timestamp), model_id


def _new_points(conn: sa.Connection, run_id: str, points: list[Metric]) -> list[Metric]:
    """The points the run's history does not hold yet (same key, step and time)."""
    if not points:
        return []
    m = metrics.c
    held = {(r.key, r.step, r.timestamp) for r in conn.execute(
        sa.select(m.key, m.step, m.timestamp).where(
            m.run_id == run_id, m.key.in_({p.key for p in points}),
            m.step.in_({p.step for p in points}))).all()}
    return [p for p in points if (p.key, p.step, p.timestamp) not in held]


def _log(client: Client, run_id: str, *, points: list[tuple[Metric, str]],
         params: dict[str, str], run_tags: dict[str, str]) -> None:
    plain = [metric for metric, model_id in points if not model_id]
    for_models = [(model_id, metric) for metric, model_id in points if model_id]
    for model_id in {model_id for model_id, _ in for_models}:
        logged_models.find(client, model_id)  # 404 before anything is written
    if for_models:
        with client.meta.read() as conn:
            plain += _new_points(conn, run_id, [metric for _, metric in for_models])
    name = run_tags.pop(RUN_NAME_TAG, "")
    if name:
        _check_name(name)  # before anything is written
    client.log_batch(run_id, metrics=plain, params=params, tags=run_tags)
    if name:
        with client.meta.write() as conn:
            _rename(conn, run_id, name)
    if for_models:
        logged_models.add_metrics(client, for_models)


def _delete_tag(client: Client, run_id: str, key: str) -> None:
    with client.meta.write() as conn:
        records.experiment_id_of_run(conn, run_id)
        deleted = conn.execute(tags.delete().where(tags.c.run_id == run_id, tags.c.key == key))
        if deleted.rowcount == 0:
            raise NotFound(f"run {run_id} has no tag {key!r}")


def _dataset_input(message: Message, item: dict[str, Any]) -> dict[str, Any]:
    """One ``DatasetInput`` as sent, keeping only its known string fields."""
    dataset = item.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str):
        raise InvalidArgument(f"{message.endpoint}: each dataset input needs a 'dataset' "
                              "object with a string 'name'")
    kept = {k: v for k, v in dataset.items() if k in _DATASET_FIELDS and isinstance(v, str)}
    tags = Message(item, endpoint=message.endpoint).pairs("tags", limit=100)
    return {"dataset": kept, "tags": [{"key": k, "value": v} for k, v in tags.items()]}


def _log_inputs(client: Client, run_id: str, datasets: list[dict[str, Any]],
                models: list[str]) -> None:
    """Add dataset and model inputs to the run's record of them (duplicates skipped)."""
    def identity(entry: dict[str, Any]) -> str:
        return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode()

    with client.meta.write() as conn:
        records.experiment_id_of_run(conn, run_id)
        row = conn.execute(sa.select(tags.c.value).where(
            tags.c.run_id == run_id, tags.c.key == INPUTS_TAG).with_for_update()).first()
        held: dict[str, list[Any]] = orjson.loads(row.value) if row is not None else {}
        known = {identity(entry) for entry in held.get("dataset_inputs", [])}
        fresh = [d for d in datasets if identity(d) not in known]
        held["dataset_inputs"] = [*held.get("dataset_inputs", []), *fresh]
        seen = {entry["model_id"] for entry in held.get("model_inputs", [])}
        held["model_inputs"] = [*held.get("model_inputs", []),
                                *({"model_id": m} for m in dict.fromkeys(models) if m not in seen)]
        write_tags(conn, run_id, {INPUTS_TAG: orjson.dumps(held).decode()})


def _search(client: Client, ids: list[str], message: Message) -> dict[str, Any]:
    expr = mlflow_filter(message.text("filter"))
    order = mlflow_order_by(message.strings("order_by"))
    limit = message.integer("max_results", default=DEFAULT_RESULTS, minimum=1) or 1
    if limit > MAX_RESULTS:
        raise InvalidArgument(f"runs/search: max_results is {limit}; at most {MAX_RESULTS} "
                              "runs are returned at once: page with page_token")
    offset = decode_page_token(message.text("page_token"), "runs/search")
    view = message.text("run_view_type", default="ACTIVE_ONLY").upper()
    if view not in ("ACTIVE_ONLY", "ALL", "1", "3"):
        raise InvalidArgument(f"runs/search: run_view_type {view!r} is not supported; use "
                              "ACTIVE_ONLY or ALL")
    with client.meta.read() as conn:
        found = search_run_ids(conn, experiment_ids=ids, filter=expr, order_by=order,
                               max_results=limit + 1, offset=offset,
                               include_deleted=view in ("ALL", "3"))
    body: dict[str, Any] = {"runs": run_bodies(client, found[:limit])}
    if len(found) > limit:
        body["next_page_token"] = encode_page_token(offset + limit)
    return body


# -- endpoints ----------------------------------------------------------------------------


async def create(request: Request) -> Response:
    message = await read_message(request, "runs/create")
    run_tags = _checked_tags(message.pairs("tags", limit=MAX_TAGS))
    name = _check_name(message.text("run_name") or run_tags.get(RUN_NAME_TAG)
                       or random_run_name())
    body = await call(_create, _client(request),
                      experiment_id=message.text("experiment_id", default="0"), name=name,
                      user=_user(request, message.text("user_id")),
                      start_time=message.integer("start_time", minimum=0),
                      run_tags=run_tags)
    return answer({"run": body})


async def get(request: Request) -> Response:
    message = await read_message(request, "runs/get")
    return answer({"run": await call(_run_body, _client(request), message.run_id())})


async def update(request: Request) -> Response:
    message = await read_message(request, "runs/update")
    status_text = message.text("status")
    try:
        status = RunStatus(status_text) if status_text else None
    except ValueError:
        raise InvalidArgument(f"runs/update: status {status_text!r} is not supported; use "
                              f"{', '.join(s.value for s in RunStatus)}") from None
    body = await call(_update, _client(request), message.run_id(), status,
                      message.integer("end_time", minimum=0), message.text("run_name"))
    return answer(body)


async def delete(request: Request) -> Response:
    message = await read_message(request, "runs/delete")
    await call(_client(request).delete_run, message.run_id())
    return answer()


async def log_parameter(request: Request) -> Response:
    message = await read_message(request, "runs/log-parameter")
    key = message.text("key", required=True)
    value = message.text("value")
    await call(_client(request).log_params, message.run_id(), {key: value})
    return answer()


async def log_metric(request: Request) -> Response:
    message = await read_message(request, "runs/log-metric")
    point = _metric(message, dict(message.fields), records.now_ms())
    await call(_log, _client(request), message.run_id(), points=[point], params={},
               run_tags={})
    return answer()


async def log_batch(request: Request) -> Response:
    message = await read_message(request, "runs/log-batch")
    now = records.now_ms()
    points = [_metric(message, item, now)
              for item in message.items("metrics", limit=MAX_METRICS)]
    params = message.pairs("params", limit=MAX_PARAMS)
    run_tags = _checked_tags(message.pairs("tags", limit=MAX_TAGS))
    await call(_log, _client(request), message.run_id(), points=points, params=params,
               run_tags=run_tags)
    return answer()


async def set_tag(request: Request) -> Response:
    message = await read_message(request, "runs/set-tag")
    run_tags = _checked_tags({message.text("key", required=True): message.text("value")})
    await call(_log, _client(request), message.run_id(), points=[], params={},
               run_tags=run_tags)
    return answer()


async def delete_tag(request: Request) -> Response:
    message = await read_message(request, "runs/delete-tag")
    key = _checked_tags({message.text("key", required=True): ""})
    await call(_delete_tag, _client(request), message.run_id(), next(iter(key)))
    return answer()


async def outputs(request: Request) -> Response:
    message = await read_message(request, "runs/outputs")
    run_id = message.run_id()
    client = _client(request)
    for item in message.items("models", limit=100):
        sub = Message(item, endpoint="runs/outputs")
        await call(logged_models.mark_output, client, run_id,
                   sub.text("model_id", required=True), sub.integer("step", default=0) or 0)
    return answer()


async def log_inputs(request: Request) -> Response:
    message = await read_message(request, "runs/log-inputs")
    datasets = [_dataset_input(message, item)
                for item in message.items("datasets", limit=MAX_INPUTS)]
    models = [Message(item, endpoint=message.endpoint).text("model_id", required=True)
              for item in message.items("models", limit=MAX_INPUTS)]
    await call(_log_inputs, _client(request), message.run_id(), datasets, models)
    return answer()


@requires("viewer")
async def search(request: Request) -> Response:
    message = await read_message(request, "runs/search")
    client = _client(request)
    ids = await call(experiment_ids, client, message.strings("experiment_ids"))
    return answer(await call(_search, client, ids, message))


def _history(client: Client, run_id: str, key: str) -> list[Metric]:
    return client.get_metric_history(run_id, key)


async def metric_history(request: Request) -> Response:
    message = await read_message(request, "metrics/get-history")
    key = message.text("metric_key", required=True)
    points = await call(_history, _client(request), message.run_id(), key)
    limit = message.integer("max_results", minimum=1)
    offset = decode_page_token(message.text("page_token"), "metrics/get-history")
    return answer(page(points, "metrics", metric_json, offset=offset, limit=limit))


def routes() -> list[BaseRoute]:
    post = ["POST"]
    return [
        Route(f"{_PREFIX}/runs/create", create, methods=post),
        Route(f"{_PREFIX}/runs/get", get, methods=["GET"]),
        Route(f"{_PREFIX}/runs/update", update, methods=post),
        Route(f"{_PREFIX}/runs/delete", delete, methods=post),
        Route(f"{_PREFIX}/runs/log-parameter", log_parameter, methods=post),
        Route(f"{_PREFIX}/runs/log-metric", log_metric, methods=post),
        Route(f"{_PREFIX}/runs/log-batch", log_batch, methods=post),
        Route(f"{_PREFIX}/runs/set-tag", set_tag, methods=post),
        Route(f"{_PREFIX}/runs/delete-tag", delete_tag, methods=post),
        Route(f"{_PREFIX}/runs/outputs", outputs, methods=post),
        Route(f"{_PREFIX}/runs/log-inputs", log_inputs, methods=post),
        Route(f"{_PREFIX}/runs/search", search, methods=["GET", "POST"]),
        Route(f"{_PREFIX}/metrics/get-history", metric_history, methods=["GET"]),
    ]
