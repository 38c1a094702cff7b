"""``/api/v1`` at the HTTP level, through a real uvicorn server in a thread: the OpenAPI
document matches the route table, and bad input (path traversal, malformed or oversized JSON,
bad metric points, sources on the server's disk, pickles from a non-admin) gets a clear 4xx
JSON error and changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from servers import ServerThread, call_json
from starlette.routing import Route

import loopml
from loopml.client import Client
from loopml.server.app import ServerOptions, create_app
from loopml.server.errors import MAX_JSON_BYTES

pytest.importorskip("uvicorn")


class Api:
    """A served app and a raw HTTP pool to it."""

    def __init__(self, client: Client, options: ServerOptions) -> None:
        self.app = create_app(client=client, options=options)
        self.server = ServerThread.for_app(self.app)
        self.url = self.server.url
        self.pool = urllib3.PoolManager(retries=False)
        self.token = ""

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token or self.token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        status, decoded, _ = call_json(self.pool, method, self.url + path, body, raw=raw,
                                       headers=headers)
        return status, decoded

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Client]:
    client = Client(loopml.load_settings(home=tmp_path / "server", progress=False))
    yield client
    client.close()


@pytest.fixture
def api(store: Client) -> Iterator[Api]:
    served = Api(store, ServerOptions(auth=False))
    yield served
    served.close()


def _run(api: Api) -> str:
    status, run = api.call("POST", "/api/v1/runs", {"experiment": "e", "name": "r"})
    assert status == 201
    return str(run["id"])


def test_openapi_lists_every_api_route_with_its_role(api: Api) -> None:
    status, doc = api.call("GET", "/api/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    served = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    expected = {(re.sub(r"{(\w+):\w+}", r"{\1}", r.path), m.lower())
                for r in api.app.routes if isinstance(r, Route)
                and r.path.startswith("/api/v1/") for m in (r.methods or ()) if m != "HEAD"}
    assert served == expected
    for needed in [("/api/v1/runs/search", "post"), ("/api/v1/runs/{run_id}/batch", "post"),
                   ("/api/v1/models/{name}/aliases/{alias}", "put"),
                   ("/api/v1/runs/{run_id}/artifacts/{path}", "put"),
                   ("/api/v1/models/{name}/versions/{version}/files/{path}", "get")]:
        assert needed in served
    search = doc["paths"]["/api/v1/runs/search"]["post"]
    assert search["x-loopml-role"] == "viewer" and search["summary"].startswith("Runs")
    alias = doc["paths"]["/api/v1/models/{name}/aliases/{alias}"]["put"]
    assert alias["x-loopml-role"] == "editor"
    version = doc["paths"]["/api/v1/models/{name}/versions/{version}"]["get"]
    assert {p["name"]: p["schema"]["type"] for p in version["parameters"]} == {
        "name": "string", "version": "integer"}
    upload = doc["paths"]["/api/v1/runs/{run_id}/artifacts/{path}"]["put"]
    assert "application/octet-stream" in upload["requestBody"]["content"]


@pytest.mark.parametrize("path", ["..%2F..%2Fescape.txt", "a/%2e%2e/%2e%2e/escape.txt",
                                  "%2Fetc%2Fpasswd", "dir/"])
def test_artifact_paths_that_escape_are_refused(api: Api, store: Client, path: str) -> None:
    run_id = _run(api)
    status, body = api.call("PUT", f"/api/v1/runs/{run_id}/artifacts/{path}", raw=b"x")
    assert status == 400, body
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "artifact path" in body["message"]
    assert store.list_artifacts(run_id) == []
    status, body = api.call("GET", f"/api/v1/runs/{run_id}/artifacts/{path}")
    assert status == 400


def test_malformed_and_oversized_json_are_refused(api: Api, store: Client) -> None:
    status, body = api.call("POST", "/api/v1/experiments", raw=b"{not json")
    assert status == 400 and "not valid JSON" in body["message"]
    status, body = api.call("POST", "/api/v1/experiments", [1, 2])
    assert status == 400 and "JSON object" in body["message"]
    status, body = api.call("POST", "/api/v1/experiments", {"name": 3})
    assert status == 400 and "field 'name' must be a string" in body["message"]
    status, body = api.call("POST", "/api/v1/experiments",
                            raw=b'{"name": "' + b"x" * (MAX_JSON_BYTES + 1) + b'"}')
    assert status == 413 and "larger than" in body["message"]
    status, body = api.call("POST", "/api/v1/runs/search", {"max_results": "all"})
    assert status == 400 and "max_results" in body["message"]
    status, body = api.call("GET", "/api/v1/nothing/here")
    assert status == 404 and body["error_code"] == "ENDPOINT_NOT_FOUND"
    assert store.list_experiments() == []


def test_metric_batches_are_all_or_nothing(api: Api, store: Client) -> None:
    run_id = _run(api)
    for points, message in [
            ([[run_id, "m", 1.0, 0, 1], ["nope", "m", 1.0, 0, 1]], "no run with id 'nope'"),
            ([[run_id, "m", 1.0, 0, 1], [run_id, "bad\nkey", 1.0, 0, 1]], "invalid metric"),
            ([[run_id, "m", "high", 0, 1]], "not a number"),
            ([[run_id, "m", 1.0, 0.5, 1]], "step"),
            ([[run_id, "m", 1.0]], "must be a list [run_id, key")]:
        status, body = api.call("POST", "/api/v1/metrics/batch", {"points": points})
        assert status in (400, 404) and message in body["message"], body
    assert store.get_run(run_id).metrics == {}
    status, body = api.call("POST", "/api/v1/metrics/batch", {"points": [
        [run_id, "m", "NaN", 0, 1], [run_id, "m", "Infinity", 1, 2]]})
    assert status == 200 and body == {"written": 2}
    assert store.get_run(run_id).metrics == {"m": float("inf")}


def test_search_filter_injection_is_only_a_value(api: Api, store: Client) -> None:
    run_id = _run(api)
    store.log_params(run_id, {"model": "rf"})
    status, body = api.call("POST", "/api/v1/runs/search", {
        "filter": "params.model = 'rf'' OR 1=1 --'"})
    assert status in (200, 400)
    if status == 200:
        assert body["runs"] == []
    status, body = api.call("POST", "/api/v1/runs/search", {
        "filter": "params.model = 'rf'; DROP TABLE runs"})
    assert status == 400
    assert [r.id for r in store.search_runs()] == [run_id]


def test_register_refuses_sources_on_the_servers_disk(api: Api, store: Client,
                                                      tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    for source in [str(tmp_path / "pkg"), "file:///etc", "s3://bucket/model", "runs:/"]:
        status, body = api.call("POST", "/api/v1/models/stolen/versions", {"source": source})
        assert status == 400, body
    status, body = api.call("PUT", "/api/v1/models/m/aliases/prod", {"version": 0})
    assert status == 400 and "at least 1" in body["message"]
    assert store.list_registered_models() == []


def test_pickle_packages_need_an_admin_token(store: Client, tmp_path: Path) -> None:
    from loopml.server.tokens import create_token

    editor = create_token(store.meta, "ed", role="editor").secret
    admin = create_token(store.meta, "boss", role="admin").secret
    api = Api(store, ServerOptions(auth=True))
    try:
        with store.start_run("e") as run:
            (tmp_path / "model").mkdir()
            (tmp_path / "model" / "model.pkl").write_bytes(b"\x80\x04N.")
            store.log_artifact(run.id, tmp_path / "model")
        source = {"source": f"runs:/{run.id}/model"}
        status, body = api.call("POST", "/api/v1/models/pk/versions", source, token=editor)
        assert status == 403 and "pickle" in body["message"]
        status, body = api.call("POST", "/api/v1/models/pk/versions", source, token=admin)
        assert status == 404 and "loopml-model.yaml" in body["message"]  # not a package
        assert store.list_registered_models() == []
        status, body = api.call("PUT", "/api/v1/models/pk/aliases/prod", {"version": 1},
                                token=editor)
        assert status == 404  # the editor may try: the model does not exist
    finally:
        api.close()
