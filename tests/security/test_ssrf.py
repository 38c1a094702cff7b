"""Server-side requests to user-supplied URLs: none. Every field of every API that could hold
a URL (a model version's source, an experiment's artifact location, a dataset input's
source, a tree digest, a sign-in redirect) is sent a URL of a canary HTTP server on
loopback; the canary must see no request. The server and UI packages import no HTTP or
socket client at all, so no later endpoint fetches one without this test being changed."""

from __future__ import annotations

import ast
import http.server
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import pytest
from servers import free_port

import loopml

from .conftest import Server


class _Canary(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]]

    def _record(self) -> None:
        self.hits.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_PUT = do_POST = do_HEAD = _record

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def canary() -> Iterator[tuple[str, list[str]]]:
    """(base URL, the requests it received) of an HTTP server on loopback."""
    port = free_port()
    hits: list[str] = []
    handler = type("Canary", (_Canary,), {"hits": hits})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", hits
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


def _requests(server: Server, url: str) -> list[tuple[str, str, Any]]:
    experiment, run_id = server.run()
    host = url.removeprefix("http://")
    mlflow = "/api/2.0/mlflow"
    server.json("POST", f"{mlflow}/registered-models/create", {"name": "ssrf"})
    sources = [f"{url}/model", f"s3://{host}/bucket/model", f"file://{host}/etc",
               f"mlflow-artifacts://{host}/{experiment}/{run_id}/artifacts/model",
               f"http://{host}@169.254.169.254/latest", f"models:/{url}", f"runs:/{url}"]
    found: list[tuple[str, str, Any]] = []
    for source in sources:
        found += [
            ("POST", "/api/v1/models/ssrf/versions", {"source": source}),
            ("POST", f"{mlflow}/model-versions/create", {"name": "ssrf", "source": source}),
            ("POST", f"{mlflow}/model-versions/create", {"name": "ssrf", "source": source,
                                                         "run_id": run_id}),
        ]
    return [
        *found,
        ("POST", f"{mlflow}/experiments/create", {"name": "ssrf-exp",
                                                  "artifact_location": f"{url}/artifacts"}),
        ("POST", f"{mlflow}/experiments/create", {"name": "ssrf-s3",
                                                  "artifact_location": f"s3://{host}/b"}),
        ("POST", f"{mlflow}/runs/log-inputs", {"run_id": run_id, "datasets": [{"dataset": {
            "name": "d", "digest": "1", "source_type": "http",
            "source": f'{{"url": "{url}/data.csv"}}'}}]}),
        ("POST", f"{mlflow}/logged-models", {"experiment_id": experiment,
                                             "source_run_id": run_id, "name": "m",
                                             "tags": [{"key": "uri", "value": url}]}),
        ("POST", "/api/v1/datasets/ssrf/versions", {"kind": "tree", "tree": f"{url}/tree"}),
        ("POST", "/api/v1/datasets/ssrf/versions", {"kind": "table", "tree": "0" * 64,
                                                    "profile": f"{url}/p", "rows": 1,
                                                    "new_rows": 1, "schema": []}),
        ("POST", "/api/v1/blobs/missing", {"digests": [f"{url}/blob"]}),
        ("POST", "/api/v1/uploads", {"digest": f"{url}/x", "size": 1, "part_size": 1 << 20}),
        ("GET", f"/api/v1/dataset-diff?old={quote(url)}&new={quote(url)}", None),
        ("POST", f"/api/v1/runs/{run_id}/params", {"params": {"data_url": f"{url}/d.csv"}}),
        ("POST", f"/api/v1/runs/{run_id}/tags", {"tags": {"source": url}}),
        ("GET", f"/ui/signin?next={quote(url)}", None),
        ("POST", "/ui/signin", f"token={server.tokens['viewer']}&next={quote(url)}".encode()),
    ]


def test_no_request_makes_the_server_fetch_a_url(server: Server,
                                                 canary: tuple[str, list[str]]) -> None:
    url, hits = canary
    for method, path, body in _requests(server, url):
        headers = ({"Content-Type": "application/x-www-form-urlencoded"}
                   if isinstance(body, bytes) else None)
        answer = server.request(method, path, body, role="editor", headers=headers)
        assert answer.status < 500, (method, path, answer.status, answer.body[:300])
        if answer.status in (301, 302, 303, 307, 308):
            assert not answer.headers["Location"].startswith(("http", "//")), path
    server.client.flush()
    assert hits == []  # the canary saw nothing, though it answers when asked:
    with urllib.request.urlopen(f"{url}/alive", timeout=10) as answer:
        assert answer.status == 200
    assert hits == ["GET /alive"]
    # the URLs were kept as plain text where they are data: a param, a tag
    run_params = [r.params.get("data_url") for r in server.client.search_runs()]
    assert f"{url}/d.csv" in run_params
    assert "ssrf" not in {m.name for m in server.client.list_registered_models()
                          if server.client.list_model_versions(m.name)}


#: Modules that open network connections; none belongs in the server or the UI.
_CLIENTS = ("urllib.request", "http.client", "requests", "httpx", "urllib3", "aiohttp",
            "socket", "smtplib", "ftplib", "fsspec", "boto3", "botocore", "websockets",
            "loopml.monitoring.alerts", "loopml.blobs.sigv4")


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_the_server_and_ui_import_no_network_client() -> None:
    root = Path(loopml.__file__).parent
    checked, found = 0, []
    for package in ("server", "ui"):
        for path in sorted((root / package).rglob("*.py")):
            checked += 1
            found += [f"{path.relative_to(root)}: {name}" for name in _imports(path)
                      if name in _CLIENTS or name.startswith(tuple(c + "." for c in _CLIENTS))]
    assert checked >= 30
    assert found == []
