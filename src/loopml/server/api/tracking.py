"""``/api/v1`` tracking endpoints: experiments, runs, params, tags, metrics, artifacts, search.

======  ==========================================  ==========================================
GET     /api/v1/experiments                         every experiment
POST    /api/v1/experiments                         create one ``{name, description}``
GET     /api/v1/experiments/{experiment}            one, by name or id
POST    /api/v1/runs                                start a run ``{experiment, name, tags,
                                                    parent_run_id, user}`` (201)
GET     /api/v1/runs/{run_id}                       one run (``?prefix=true``: a unique prefix)
PATCH   /api/v1/runs/{run_id}                       end it ``{status}``
DELETE  /api/v1/runs/{run_id}                       mark it deleted
POST    /api/v1/runs/{run_id}/params                ``{params: {key: value}}``
POST    /api/v1/runs/{run_id}/tags                  ``{tags: {key: value}}``
POST    /api/v1/runs/{run_id}/batch                 ``{metrics: [[key, value, step, ts]],
                                                    params, tags}`` in one transaction
POST    /api/v1/metrics/batch                       ``{points: [[run_id, key, value, step,
                                                    ts]]}``: buffered points of any runs
GET     /api/v1/runs/{run_id}/metrics/{key}         the metric's history
GET     /api/v1/runs/{run_id}/artifacts             files at or below ``?path=``
PUT     /api/v1/runs/{run_id}/artifacts/{path}      upload one file (the body, streamed)
GET     /api/v1/runs/{run_id}/artifacts/{path}      download one file (streamed)
POST    /api/v1/runs/search                         ``{experiments, filter, order_by,
                                                    max_results, offset, include_deleted}``
======  ==========================================  ==========================================

An artifact path is refused (400) if it would leave the run's artifacts (``..``, absolute),
holds a backslash or a NUL, or is longer than the store keeps (a segment over 255 bytes, the
whole over 1024 characters); an upload over the server's ``max_upload_bytes`` is refused
with 413 and stores nothing. A search filter is at most :data:`MAX_FILTER_LENGTH` characters
and may nest only as deep as the parser goes (400 beyond): its values always reach the
database as bound parameters, never as SQL text.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.errors import InvalidArgument, NotFound, RequestTooLarge
from loopml.server.api import wire
from loopml.server.api.common import (
    API,
    INT64_MAX,
    INT64_MIN,
    body_object,
    call,
    client,
    get_bool,
    get_int,
    get_str,
    get_str_list,
    get_str_map,
    json_response,
    query_bool,
    upload_limit,
)
from loopml.server.api.streams import blob_response
from loopml.server.roles import requires
from loopml.tracking.validation import artifact_path, check_key, param_value, run_status

__all__ = ["MAX_ARTIFACT_PATH", "MAX_FILTER_LENGTH", "MAX_ORDER_BY", "routes"]

#: The longest artifact path the store keeps (its column's width).
MAX_ARTIFACT_PATH = 1024
#: The longest name of one directory or file (the file systems' limit, in UTF-8 bytes).
_MAX_SEGMENT_BYTES = 255
#: The longest search filter accepted, and the most ``order_by`` items.
MAX_FILTER_LENGTH = 20_000
MAX_ORDER_BY = 20

# -- experiments ---------------------------------------------------------------------------
async def list_experiments(request: Request) -> Response:
    """Every experiment."""
    found = await call(client(request).list_experiments)
    return json_response({"experiments": [wire.experiment_out(e) for e in found]})


async def create_experiment(request: Request) -> Response:
    """Create an experiment: ``{"name": ..., "description": ...}``."""
    body = await body_object(request)
    name, description = get_str(body, "name"), get_str(body, "description", "")
    if not name.strip():
        raise InvalidArgument("field 'name' must not be empty")
    made = await call(client(request).create_experiment, name, description=description)
    return json_response(wire.experiment_out(made), status=201)


async def get_experiment(request: Request) -> Response:
    """One experiment, by name or id."""
    found = await call(client(request).get_experiment, request.path_params["experiment"])
    return json_response(wire.experiment_out(found))


# -- runs ----------------------------------------------------------------------------------
def _start_run(request: Request, experiment: str, name: str | None, tags: dict[str, str],
               parent_run_id: str | None, user: str) -> Any:
    from loopml.tracking import records
    from loopml.tracking.names import random_run_name
    from loopml.tracking.writes import write_tags

    with client(request).meta.write() as conn:  # experiment (if new), run, tags: one commit
        exp = (records.find_experiment(conn, experiment)
               or records.create_experiment(conn, experiment))
        if parent_run_id is not None:
            records.experiment_id_of_run(conn, parent_run_id)
        run = records.create_run(conn, experiment_id=exp.id, name=name or random_run_name(),
                                 parent_run_id=parent_run_id, user=user)
        write_tags(conn, run.id, tags)
    return run


async def start_run(request: Request) -> Response:
    """Start a run in ``experiment`` (created if new): ``{experiment, name, tags,
    parent_run_id, user}``."""
    from loopml.server.api.common import actor

    body = await body_object(request)
    experiment = get_str(body, "experiment", client(request).settings.default_experiment)
    tags = {check_key(k, kind="tag"): str(v) for k, v in get_str_map(body, "tags").items()}
    run = await call(_start_run, request, experiment, get_str(body, "name", None), tags,
                     get_str(body, "parent_run_id", None),
                     get_str(body, "user", "") or actor(request))
    return json_response(wire.run_out(run), status=201)


def _resolve(request: Request, run_id: str) -> str:
    from loopml.tracking.records import resolve_run_id

    with client(request).meta.read() as conn:
        return resolve_run_id(conn, run_id)


async def get_run(request: Request) -> Response:
    """One run with its params, tags and latest metrics (``?prefix=true``: ``run_id`` may be
    a unique prefix of 4 or more characters)."""
    run_id = request.path_params["run_id"]
    if query_bool(request, "prefix"):
        run_id = await call(_resolve, request, run_id)
    run = await call(client(request).get_run, run_id)
    return json_response(wire.run_out(run))


async def update_run(request: Request) -> Response:
    """End a run: ``{"status": "FINISHED" | "FAILED" | "KILLED" | "RUNNING"}``."""
    body = await body_object(request)
    status = run_status(get_str(body, "status"))
    run_id = request.path_params["run_id"]
    await call(client(request).end_run, run_id, status)
    run = await call(client(request).get_run, run_id)
    return json_response(wire.run_out(run))


async def delete_run(request: Request) -> Response:
    """Mark a run deleted (kept, hidden from search)."""
    await call(client(request).delete_run, request.path_params["run_id"])
    return json_response({})


# -- logging -------------------------------------------------------------------------------
async def log_params(request: Request) -> Response:
    """Record params ``{"params": {key: value}}``; changing a logged value is a 409."""
    body = await body_object(request)
    await call(client(request).log_params, request.path_params["run_id"],
               get_str_map(body, "params"))
    return json_response({})


async def set_tags(request: Request) -> Response:
    """Set tags ``{"tags": {key: value}}``."""
    body = await body_object(request)
    await call(client(request).set_tags, request.path_params["run_id"],
               get_str_map(body, "tags"))
    return json_response({})


Point = tuple[str, str, float, int, int | None]


def _parse_points(raw: Any, *, run_id: str | None = None) -> list[Point]:
    """Checked ``(run_id, key, value, step, timestamp)`` of a JSON list of points: each
    ``[run_id, key, value, step, timestamp]``, or without ``run_id`` when one is given."""
    width = 4 if run_id is not None else 5
    shape = "[key, value, step, timestamp]" if width == 4 else \
        "[run_id, key, value, step, timestamp]"
    if not isinstance(raw, list):
        raise InvalidArgument(f"metric points must be a list of {shape} lists")
    if len(raw) > wire.MAX_POINTS:
        raise InvalidArgument(f"{len(raw):,} metric points in one request; send at most "
                              f"{wire.MAX_POINTS:,} at a time")
    checked: set[str] = set()
    found: list[Point] = []
    for point in raw:
        if type(point) is not list or len(point) != width:
            raise InvalidArgument(f"metric point {point!r} must be a list {shape}")
        owner, key, value, step, timestamp = point if width == 5 else [run_id, *point]
        if type(owner) is not str:
            raise InvalidArgument(f"run id {owner!r} of a metric point must be a string")
        if type(key) is not str or key not in checked:
            checked.add(check_key(key, kind="metric"))
        if type(value) is not float:
            value = wire.number_in(value, what=f"value of metric {key!r}")
        if type(step) is not int or not INT64_MIN <= step <= INT64_MAX:
            raise InvalidArgument(f"step of metric {key!r} must be a whole number of at most "
                                  f"64 bits, got {step!r}")
        if timestamp is not None and (type(timestamp) is not int
                                      or not INT64_MIN <= timestamp <= INT64_MAX):
            raise InvalidArgument(f"timestamp of metric {key!r} must be milliseconds since "
                                  f"the epoch (a whole number), got {timestamp!r}")
        found.append((owner, key, value, step, timestamp))
    return found


def _write_points(request: Request, raw: Any, run_id: str | None = None,
                  params: dict[str, Any] | None = None,
                  tags: dict[str, Any] | None = None) -> int:
    """Check and write metric points (and params and tags of ``run_id``) in one
    transaction: all or nothing."""
    from loopml.tracking import records
    from loopml.tracking.writes import MetricPoint, write_metric_points, write_params, write_tags

    points = _parse_points(raw, run_id=run_id)
    param_values = {check_key(k, kind="param"): param_value(k, v)
                    for k, v in (params or {}).items()}
    tag_values = {check_key(k, kind="tag"): str(v) for k, v in (tags or {}).items()}
    now = records.now_ms()
    with client(request).meta.write() as conn:
        experiments: dict[str, str] = {}
        if run_id is not None:
            experiments[run_id] = records.experiment_id_of_run(conn, run_id)
            write_params(conn, run_id, param_values)
            write_tags(conn, run_id, tag_values)
        rows = []
        for owner, key, value, step, timestamp in points:
            if owner not in experiments:
                experiments[owner] = records.experiment_id_of_run(conn, owner)
            rows.append(MetricPoint(owner, experiments[owner], key, value, step,
                                    timestamp or now))
        write_metric_points(conn, rows)
    return len(points)


async def log_batch(request: Request) -> Response:
    """Metric points, params and tags of one run in one transaction: ``{"metrics": [[key,
    value, step, timestamp]], "params": {...}, "tags": {...}}``."""
    body = await body_object(request)
    await call(_write_points, request, body.get("metrics") or [],
               request.path_params["run_id"], get_str_map(body, "params"),
               get_str_map(body, "tags"))
    return json_response({})


async def log_metric_points(request: Request) -> Response:
    """Buffered metric points of any runs: ``{"points": [[run_id, key, value, step,
    timestamp]]}``, written in one transaction (all or nothing)."""
    body = await body_object(request)
    written = await call(_write_points, request, body.get("points") or [])
    return json_response({"written": written})


async def metric_history(request: Request) -> Response:
    """Every point of one metric of a run, by step then time."""
    found = await call(client(request).get_metric_history, request.path_params["run_id"],
                       request.path_params["key"])
    return json_response({"history": [wire.metric_out(m) for m in found]})


# -- artifacts -----------------------------------------------------------------------------
async def list_artifacts(request: Request) -> Response:
    """The run's artifact files at or below ``?path=`` (all of them without it)."""
    found = await call(client(request).list_artifacts, request.path_params["run_id"],
                       _checked_path(request.query_params.get("path", "")))
    return json_response({"artifacts": [wire.artifact_out(a) for a in found]})


def _checked_path(raw: str) -> str:
    """An artifact path of a request, normalised; 400 for an escape, a backslash, a NUL or
    a name too long to store."""
    if "\\" in raw or "\x00" in raw:
        raise InvalidArgument(f"artifact path {raw!r} holds a backslash or a NUL character; "
                              "use '/' between names and plain characters")
    path = artifact_path(raw)
    if len(path) > MAX_ARTIFACT_PATH:
        raise InvalidArgument(f"artifact path {path[:60]!r}... is {len(path):,} characters "
                              f"long; the limit is {MAX_ARTIFACT_PATH:,}")
    for name in path.split("/"):
        if len(name.encode()) > _MAX_SEGMENT_BYTES:
            raise InvalidArgument(f"artifact path {path[:60]!r}...: the name {name[:40]!r}... "
                                  f"is longer than {_MAX_SEGMENT_BYTES} bytes; use shorter "
                                  "names")
    return path


def _file_path(raw: str) -> tuple[str, str]:
    """(directory, file name) of an artifact file path; 400 for an escape or no name."""
    path = _checked_path(raw)
    directory, _, name = path.rpartition("/")
    if not name or name in (".", "..") or raw.endswith("/"):
        raise InvalidArgument(f"artifact path {raw!r} needs a file name")
    return directory, name


def _check_run(request: Request, run_id: str) -> None:
    from loopml.tracking.records import experiment_id_of_run

    with client(request).meta.read() as conn:
        experiment_id_of_run(conn, run_id)


def _store_artifact(request: Request, run_id: str, file: Path, directory: str) -> Any:
    from loopml.tracking.artifacts import log_artifact

    server = client(request)
    return log_artifact(server.meta, server.blobs, run_id, file, directory)[0]


def _too_large(size: int, limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"the artifact is {size:,} bytes or more; this server accepts at "
                           f"most {limit:,} bytes a file (its max_upload_bytes); nothing was "
                           "stored")


async def upload_artifact(request: Request) -> Response:
    """Store the request body as the artifact file ``path`` of the run (streamed to a
    temporary file, then stored by content; the listing changes only once it is stored)."""
    run_id = request.path_params["run_id"]
    directory, name = _file_path(request.path_params["path"])
    limit = upload_limit(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    await call(_check_run, request, run_id)  # before reading a possibly large body
    with tempfile.TemporaryDirectory(prefix="loopml-upload-") as tmp:
        file = Path(tmp) / name
        size = 0
        with file.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(size, limit)
                out.write(chunk)
        info = await call(_store_artifact, request, run_id, file, directory)
    return json_response(wire.artifact_out(info), status=201)


async def download_artifact(request: Request) -> Response:
    """The bytes of one artifact file (streamed; ``X-Loopml-Digest`` is its BLAKE3)."""
    run_id = request.path_params["run_id"]
    directory, name = _file_path(request.path_params["path"])
    path = f"{directory}/{name}" if directory else name
    found = await call(client(request).list_artifacts, run_id, path)
    match = [a for a in found if a.path == path]
    if not match:
        if found:
            raise InvalidArgument(f"artifact path {path!r} of run {run_id} is a directory; "
                                  "list its files with GET .../artifacts?path=" + path)
        raise NotFound(f"run {run_id} has no artifact at {path!r}; list them with GET "
                       f"{API}/runs/{run_id}/artifacts")
    return await call(blob_response, client(request).blobs, match[0].digest, match[0].size,
                      filename=name)


# -- search --------------------------------------------------------------------------------
@requires("viewer")
async def search_runs(request: Request) -> Response:
    """Runs matching ``{"experiments": [names or ids] (all if empty), "filter": "...",
    "order_by": ["metrics.auc desc"], "max_results": 1000, "offset": 0,
    "include_deleted": false}``; ``next_offset`` is set when a full page came back."""
    body = await body_object(request)
    max_results = get_int(body, "max_results", 1000, minimum=1)
    offset = get_int(body, "offset", 0, minimum=0)
    if max_results > 50_000:
        raise InvalidArgument(f"field 'max_results' must be at most 50000, got {max_results}; "
                              "page with 'offset'")
    experiments = get_str_list(body, "experiments")
    text, order_by = get_str(body, "filter", None), get_str_list(body, "order_by")
    if text is not None and len(text) > MAX_FILTER_LENGTH:
        raise InvalidArgument(f"the filter is {len(text):,} characters long; at most "
                              f"{MAX_FILTER_LENGTH:,} are accepted")
    if len(order_by) > MAX_ORDER_BY:
        raise InvalidArgument(f"order_by has {len(order_by)} items; at most {MAX_ORDER_BY} "
                              "are accepted")
    found = await call(client(request).search_runs, experiments or None, filter=text,
                       order_by=order_by, max_results=max_results, offset=offset,
                       include_deleted=get_bool(body, "include_deleted"))
    assert isinstance(found, list)
    return json_response({"runs": [wire.run_out(r) for r in found],
                          "next_offset": offset + len(found)
                          if len(found) == max_results else None})


def routes() -> list[BaseRoute]:
    run = f"{API}/runs/{{run_id}}"
    return [
        Route(f"{API}/experiments", list_experiments, methods=["GET"]),
        Route(f"{API}/experiments", create_experiment, methods=["POST"]),
        Route(f"{API}/experiments/{{experiment:path}}", get_experiment, methods=["GET"]),
        Route(f"{API}/runs", start_run, methods=["POST"]),
        Route(f"{API}/runs/search", search_runs, methods=["POST"]),
        Route(f"{API}/metrics/batch", log_metric_points, methods=["POST"]),
        Route(run, get_run, methods=["GET"]),
        Route(run, update_run, methods=["PATCH"]),
        Route(run, delete_run, methods=["DELETE"]),
        Route(f"{run}/params", log_params, methods=["POST"]),
        Route(f"{run}/tags", set_tags, methods=["POST"]),
        Route(f"{run}/batch", log_batch, methods=["POST"]),
        Route(f"{run}/metrics/{{key:path}}", metric_history, methods=["GET"]),
        Route(f"{run}/artifacts", list_artifacts, methods=["GET"]),
        Route(f"{run}/artifacts/{{path:path}}", upload_artifact, methods=["PUT"]),
        Route(f"{run}/artifacts/{{path:path}}", download_artifact, methods=["GET"]),
    ]
