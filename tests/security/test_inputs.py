"""Malformed input: bodies that are not JSON (or not the JSON expected) sent to every write
endpoint of the app, NUL characters and numbers beyond 64 bits (which the databases cannot
store), and SQL injection attempts in search filters and orderings (loopml's and MLflow's
search, in keys and in values). Each gets a 4xx JSON error, or for a search a correct
result; no 5xx, and every table is intact. The databases: SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from starlette.routing import BaseRoute, Mount, Route

from loopml.server.auth import is_public

from .conftest import Answer, Server, refused

# -- every write endpoint ---------------------------------------------------------------------

#: Bodies no JSON endpoint accepts.
GARBAGE = [b"{nope", b"[1, 2]", b'"text"', b"\xff\xfe\x00", b'{"a": 1e999}',
           b'{"name": "a\\u0000b", "key": "a\\u0000b"}', b'{"a": ' + b"[" * 2000 + b"]" * 2000
           + b"}"]
#: Endpoints that store the request body as bytes (any bytes are a valid file).
_BYTE_UPLOADS = re.compile(r"/artifacts/\{path(:path)?\}$|/blobs/\{digest\}$|/parts/\{number\}$")
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")


def _write_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _write_routes(list(route.routes or []), prefix + route.path)
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method in ("POST", "PUT", "PATCH"):
                    yield method, prefix + route.path, route.endpoint


def _seed(server: Server) -> dict[str, str]:
    """Real values for the path parameters, so that bodies are read, not 404s first."""
    experiment, run_id = server.run("fuzz")
    server.log_package(run_id, "model")
    server.json("POST", "/api/v1/models/fuzz/versions", {"source": f"runs:/{run_id}/model"},
                role="editor", expect=201)
    server.json("PUT", "/api/v1/models/fuzz/aliases/prod", {"version": 1}, role="editor")
    return {"run_id": run_id, "experiment": "fuzz", "name": "fuzz", "version": "1",
            "alias": "prod", "key": "m", "tag": "t", "selector": "1", "endpoint": "ep",
            "item": "1", "token_id": "x1", "upload_id": "x1", "digest": "0" * 64,
            "number": "1", "path": f"{experiment}/{run_id}/artifacts/a.txt"}


def test_malformed_bodies_to_every_write_endpoint_are_refused(server: Server) -> None:
    values = _seed(server)
    checked = 0
    with server.unchanged():
        for method, template, endpoint in _write_routes(server.app.routes):
            if is_public(endpoint) or _BYTE_UPLOADS.search(template):
                continue
            path = _PARAM.sub(lambda m: quote(values.get(m.group(1), "x1"), safe="/"),
                              template)
            for body in GARBAGE:
                answer = server.request(method, path, body,
                                        headers={"Content-Type": "application/json"})
                _check_refused(answer, method, path, body)
            checked += 1
    assert checked >= 40  # /api/v1, the token API, MLflow's API and the UI's forms


def _check_refused(answer: Answer, method: str, path: str, body: bytes) -> None:
    where = (method, path, body[:40], answer.status, answer.body[:300])
    assert 400 <= answer.status < 500, where
    assert b"Traceback" not in answer.body, where
    if not path.startswith("/ui/"):  # UI forms answer with their page
        refused(answer)


@pytest.fixture
def any_db_server(serve: Callable[..., Server], database_url: str) -> Server:
    """A server over SQLite, then over PostgreSQL."""
    return serve(database_url=database_url)


def test_nul_characters_and_huge_numbers_are_refused(any_db_server: Server) -> None:
    server = any_db_server
    experiment, run_id = server.run()
    json = {"Content-Type": "application/json"}
    big = str(2**63 + 5).encode()
    cases: list[tuple[str, str, Any]] = [
        ("POST", "/api/v1/experiments", b'{"name": "a\\u0000b"}'),
        ("POST", "/api/v1/runs", b'{"experiment": "sec", "name": "r\\u0000"}'),
        ("POST", f"/api/v1/runs/{run_id}/params", b'{"params": {"x": "a\\u0000"}}'),
        ("POST", f"/api/v1/runs/{run_id}/tags", b'{"tags": {"x": "\\u0000"}}'),
        ("POST", f"/api/v1/runs/{run_id}/batch", b'{"params": {"y": "\\u0000"}}'),
        ("POST", f"/api/v1/runs/{run_id}/batch", b'{"metrics": [["m", 1.0, ' + big + b", 1]]}"),
        ("POST", f"/api/v1/runs/{run_id}/batch", b'{"metrics": [["m", 1.0, 1, ' + big + b"]]}"),
        ("POST", "/api/v1/metrics/batch",
         b'{"points": [["' + run_id.encode() + b'", "m", 1.0, -' + big + b", 1]]}"),
        ("POST", "/api/v1/runs/search", b'{"filter": "params.x = \'\\u0000\'"}'),
        ("POST", "/api/v1/runs/search", b'{"offset": ' + big + b"}"),
        ("GET", "/api/v1/experiments/a%00", None),
        ("GET", "/api/v1/runs/a%00", None),
        ("GET", f"/api/v1/runs/{run_id}/metrics/m%00", None),
        ("GET", f"/api/v1/runs/{run_id}/artifacts?path=a%00", None),
        ("GET", "/api/v1/models/m/history?alias=a%00", None),
        ("GET", "/api/v1/models/m/versions/" + big.decode(), None),
        ("POST", "/api/2.0/mlflow/experiments/create", b'{"name": "a\\u0000"}'),
        ("POST", "/api/2.0/mlflow/runs/log-parameter",
         b'{"run_id": "' + run_id.encode() + b'", "key": "k", "value": "\\u0000"}'),
        ("POST", "/api/2.0/mlflow/runs/log-metric",
         b'{"run_id": "' + run_id.encode() + b'", "key": "m", "value": 1, "step": ' + big + b"}"),
        ("POST", "/api/2.0/mlflow/runs/search", b'{"experiment_ids": ["' + experiment.encode()
         + b'"], "filter": "params.x = \'\\u0000\'"}'),
        ("GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}%00", None),
        ("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=a%00", None),
    ]
    with server.unchanged():
        for method, path, body in cases:
            answer = server.request(method, path, body, headers=json if body else None)
            assert 400 <= answer.status < 500, (method, path, body, answer.body[:300])
            refused(answer)


# -- SQL injection ----------------------------------------------------------------------------

#: (filter, expected): "error" for a 400, else the names of the runs that match.
FILTERS: list[tuple[str, str | set[str]]] = [
    ("params.x = '1' OR 1=1 --", "error"),
    ("params.x = '1'' OR 1=1 --'", {"quoted"}),  # a value holding a quote, bound as a value
    ("'; DROP TABLE runs; --", "error"),
    ("params.x = ''; DROP TABLE runs; --'", "error"),
    ("params.x = '1'; DELETE FROM params", "error"),
    ("params.x = 1; DELETE FROM runs", "error"),
    ("params.`x' OR 1=1 --` = '1'", set()),  # a key holding a quote: no such param
    ('params."x"" OR 1=1; DROP TABLE runs; --" = \'1\'', set()),
    ("params.`x` = '1' UNION SELECT id FROM api_tokens", "error"),
    ("metrics.auc > 0 UNION SELECT * FROM api_tokens", "error"),
    ("params.x LIKE '%' OR '1'='1'", "error"),
    ("tags.t = 'a' OR 1=1", "error"),
    ("attributes.status = 'RUNNING' OR 1=1--", "error"),
    ("params.x = '1' /*", "error"),
    ("params.x = '1' AND (SELECT 1)", "error"),
    ("metrics.`auc; DROP TABLE metrics` > 0", set()),
    ("params.x LIKE '%''; DROP TABLE runs; --%'", set()),
    ("params.x = '1'", {"plain"}),
    ("(" * 5000 + "params.x = '1'" + ")" * 5000, "error"),
    ("NOT " * 5000 + "params.x = '1'", "error"),
]
ORDER_BY: list[tuple[str, str]] = [
    ("metrics.auc; DROP TABLE runs", "error"),
    ("metrics.auc DESC, (SELECT 1)", "error"),
    ("start_time desc --", "error"),
    ("params.`x; DROP TABLE runs` DESC", "ok"),
    ("metrics.auc DESC", "ok"),
]


def _seed_runs(server: Server) -> str:
    server.json("POST", "/api/v1/experiments", {"name": "inject"}, role="editor", expect=201)
    for name, value in (("plain", "1"), ("quoted", "1' OR 1=1 --"), ("other", "2")):
        run = server.json("POST", "/api/v1/runs", {"experiment": "inject", "name": name},
                          role="editor", expect=201)
        server.json("POST", f"/api/v1/runs/{run['id']}/batch",
                    {"params": {"x": value}, "metrics": [["auc", 0.5, 0, 1]]}, role="editor")
    return str(run["experiment_id"])


def _names(runs: list[dict[str, Any]], mlflow: bool) -> set[str]:
    return {r["info"]["run_name"] if mlflow else r["name"] for r in runs}


def test_sql_injection_in_search_filters_is_an_error_or_a_correct_result(
        any_db_server: Server) -> None:
    server = any_db_server
    experiment = _seed_runs(server)
    with server.unchanged():
        for mlflow in (False, True):
            path = "/api/2.0/mlflow/runs/search" if mlflow else "/api/v1/runs/search"
            scope = {"experiment_ids": [experiment]} if mlflow else {"experiments": ["inject"]}
            for text, expected in FILTERS:
                answer = server.request("POST", path, {**scope, "filter": text}, role="viewer")
                if expected == "error":
                    refused(answer, 400)
                else:
                    assert answer.status == 200, (text, answer.body[:300])
                    assert _names(answer.json()["runs"], mlflow) == expected, text
            for item, outcome in ORDER_BY:
                answer = server.request("POST", path, {**scope, "order_by": [item]},
                                        role="viewer")
                if outcome == "error":
                    refused(answer, 400)
                else:
                    assert answer.status == 200, (item, answer.body[:300])
                    assert len(answer.json()["runs"]) == 3
        for name in ("'; DROP TABLE runs; --", "inject' OR '1'='1"):
            refused(server.request("POST", "/api/v1/runs/search", {"experiments": [name]},
                                   role="viewer"), 404)
    assert {r.name for r in server.client.search_runs("inject")} == {"plain", "quoted", "other"}


def test_sql_injection_in_mlflow_name_searches_is_refused(any_db_server: Server) -> None:
    server = any_db_server
    server.json("POST", "/api/2.0/mlflow/registered-models/create", {"name": "churn"})
    api = "/api/2.0/mlflow"
    with server.unchanged():
        for endpoint in ("experiments/search", "registered-models/search",
                         "model-versions/search", "logged-models/search"):
            for text in ("name = 'x' OR 1=1", "name = 'x'; DROP TABLE runs; --",
                         "name LIKE '%' OR '1'='1' --", "name = 'churn' UNION SELECT 1"):
                body: dict[str, Any] = {"filter": text}
                if endpoint == "logged-models/search":
                    body["experiment_ids"] = ["0"]
                refused(server.request("POST", f"{api}/{endpoint}", body, role="viewer"), 400)
        quoted = server.request("POST", f"{api}/registered-models/search",
                                {"filter": "name = 'churn'' OR ''1''=''1'"}, role="viewer")
        assert quoted.status == 200 and quoted.json().get("registered_models", []) == []
        found = server.json("POST", f"{api}/registered-models/search",
                            {"filter": "name LIKE 'chu%'"}, role="viewer")
        assert [m["name"] for m in found["registered_models"]] == ["churn"]


def test_filters_of_the_ui_pages_are_checked_like_the_api(server: Server) -> None:
    with server.unchanged():
        for text, expected in FILTERS[:8]:
            answer = server.request("GET", f"/ui/runs?filter={quote(text)}", role="viewer",
                                    headers={"Accept": "text/html"})
            assert answer.status == (400 if expected == "error" else 200), (text, answer.status)
            assert b"Traceback" not in answer.body and b"sqlalchemy" not in answer.body
