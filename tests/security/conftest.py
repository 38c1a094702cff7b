"""A real ``loopml server`` for the security tests: uvicorn on a free port in a thread, over a
temporary store, with auth on and a token of each role.

Requests go through :mod:`http.client`, which sends the path exactly as written (``%2e%2e``,
``%00``, ``\\``, ``//``): no client-side normalisation hides what an attacker would send.
:meth:`Server.unchanged` snapshots every row of every table and every stored file (blobs, and
the temporary files the server made) and checks that a block of refused requests left them
as they were.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from servers import Answer, ServerThread
from servers import request as http_request

import loopml
from loopml.server.app import ServerOptions, create_app
from loopml.server.roles import ROLES
from loopml.server.tokens import create_token

pytest.importorskip("uvicorn")

#: What a refused request may never show.
_LEAKS = (b"Traceback", b'File "', b"sqlalchemy", b"psycopg", b"sqlite3")


def refused(answer: Answer, *statuses: int) -> dict[str, Any]:
    """The JSON error body of a refused request (4xx, ``statuses`` if given), checked: an
    ``error_code``, a message, and nothing of the server's insides."""
    assert 400 <= answer.status < 500, (answer.status, answer.body[:500])
    if statuses:
        assert answer.status in statuses, (answer.status, answer.body[:500])
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
    body = answer.json()
    assert isinstance(body, dict) and body["error_code"] and body["message"], body
    for leak in _LEAKS:
        assert leak not in answer.body, answer.body
    return body


class Server:
    """The whole app (every route table and middleware of the project) served by uvicorn."""

    def __init__(self, home: Path, *, options: ServerOptions, database_url: str | None = None,
                 scratch: Path) -> None:
        extra: dict[str, Any] = {"database_url": database_url} if database_url else {}
        settings = loopml.load_settings(home=home, progress=False, **extra)
        self.client = loopml.Client(settings)
        self.home = home
        self.scratch = scratch
        self.app = create_app(client=self.client, options=options)
        self.server = ServerThread.for_app(self.app, log_level="critical", startup_s=60)
        self.port = self.server.port
        self.tokens: dict[str, str] = {
            role: create_token(self.client.meta, f"{role}-token", role=role).secret
            for role in ROLES}
        self._tables: dict[str, sa.Table] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: Any = None, *, role: str | None = "admin",
                headers: dict[str, str] | None = None, timeout: float = 60) -> Answer:
        """``method path`` with the token of ``role`` (None: no token); a dict or list body is
        sent as JSON, bytes as they are, an iterator of bytes chunked."""
        sent = {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}
        if isinstance(body, dict | list):
            body = orjson.dumps(body)
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        return http_request(self.port, method, path, body=body, headers=sent,
                            timeout=timeout, encode_chunked="Transfer-Encoding" in sent)

    def json(self, method: str, path: str, body: Any = None, *, role: str = "admin",
             expect: int = 200) -> Any:
        """The JSON answer of a request that must succeed with ``expect``."""
        answer = self.request(method, path, body, role=role)
        assert answer.status == expect, (method, path, answer.status, answer.body[:500])
        return answer.json() if answer.body else None

    def run(self, experiment: str = "sec") -> tuple[str, str]:
        """(experiment id, run id) of a new run."""
        made = self.json("POST", "/api/v1/runs", {"experiment": experiment}, role="editor",
                         expect=201)
        return made["experiment_id"], made["id"]

    def log_package(self, run_id: str, path: str, *, flavor: str = "sklearn",
                    flavor_data: dict[str, Any] | None = None,
                    files: dict[str, bytes] | None = None, role: str = "editor") -> None:
        """Upload a model package (a manifest and ``files``) to the run's artifacts at
        ``path``, as the remote client's ``log_model`` does: nothing is loaded or run."""
        import yaml

        data = flavor_data or {"file": "model.skops", "serializer": "skops",
                               "untrusted_types": []}
        manifest = {"format_version": 1, "flavor": flavor, "flavor_data": data,
                    "requirements": [], "python_version": "3.11.7", "loopml_version": "0.1.0",
                    "created_at": "2026-01-01T00:00:00.000000+00:00", "metadata": {}}
        uploads = {"loopml-model.yaml": yaml.safe_dump(manifest).encode(),
                   **(files if files is not None else {str(data["file"]): b"PK\x03\x04model"})}
        for name, content in uploads.items():
            self.json("PUT", f"/api/v1/runs/{run_id}/artifacts/{path}/{name}", content,
                      role=role, expect=201)

    def snapshot(self) -> dict[str, Any]:
        """Every row of every table (but tokens' last use) and every stored or scratch file."""
        state: dict[str, Any] = {}
        with self.client.meta.read() as conn:
            if self._tables is None:  # the schema does not change while the server runs
                reflected = sa.MetaData()
                reflected.reflect(conn)
                self._tables = dict(reflected.tables)
            for name, table in sorted(self._tables.items()):
                columns = [c for c in table.columns
                           if (name, c.name) != ("api_tokens", "last_used_at")]
                state[name] = sorted(repr(tuple(row))
                                     for row in conn.execute(sa.select(*columns)))
        state["files"] = sorted(
            (str(p.relative_to(self.home)), p.stat().st_size) for p in self.home.rglob("*")
            if p.is_file() and "blobs" in p.relative_to(self.home).parts)
        state["scratch"] = sorted(str(p.relative_to(self.scratch))
                                  for p in self.scratch.rglob("*"))
        return state

    @contextlib.contextmanager
    def unchanged(self) -> Iterator[None]:
        """Check that what runs inside the block changes no row and no file."""
        before = self.snapshot()
        yield
        after = self.snapshot()
        for key in sorted(before.keys() | after.keys()):
            assert after.get(key) == before.get(key), f"{key} changed"

    def stop(self) -> None:
        self.server.stop()
        self.client.close()


@contextlib.contextmanager
def _serving(home: Path, *, options: ServerOptions, database_url: str | None = None
             ) -> Iterator[Server]:
    """A server whose temporary files go to a directory of its own (checked by snapshots)."""
    scratch = home.parent / f"{home.name}-tmp"
    scratch.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("LOOPML_"):
                patch.delenv(key)
        patch.setattr(tempfile, "tempdir", str(scratch))
        served = Server(home, options=options, database_url=database_url, scratch=scratch)
        try:
            yield served
        finally:
            served.stop()


#: The limit on one upload of the shared server (small, so tests can pass it cheaply).
MAX_UPLOAD = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per test module (auth on, ``max_upload_bytes`` = :data:`MAX_UPLOAD`)."""
    home = tmp_path_factory.mktemp("security") / "home"
    with _serving(home, options=ServerOptions(auth=True, max_upload_bytes=MAX_UPLOAD)) as served:
        yield served


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """A factory of servers of the test's own (``database_url=``, ``options=``)."""
    with contextlib.ExitStack() as stack:
        count = iter(range(100))

        def start(*, database_url: str | None = None,
                  options: ServerOptions | None = None) -> Server:
            home = tmp_path / f"server-{next(count)}" / "home"
            return stack.enter_context(_serving(
                home, options=options or ServerOptions(auth=True, max_upload_bytes=MAX_UPLOAD),
                database_url=database_url))

        yield start
