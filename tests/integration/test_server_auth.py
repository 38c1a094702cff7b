"""Auth through a real ``loopml server`` (uvicorn in a thread): every route of the app, as
the route tables define it at test time, refuses requests without a token (401) and with a
token whose role is too low (403) and changes nothing; viewer reads, editor writes, admin
manages tokens; revoked and expired tokens stop working; the web UI signs in with a cookie;
auth is on by default only off loopback."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from servers import Answer, ServerThread
from servers import request as http_request
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

import loopml
from loopml.server import app as app_module
from loopml.server.app import ServerOptions, create_app
from loopml.server.auth import SESSION_COOKIE, is_public, middleware
from loopml.server.roles import ROLES, allows, required_role
from loopml.server.tokens import CACHE_TTL_S, create_token, revoke_token

PROBE_TABLE = "test_server_auth:probe_routes"
_WRITES: list[dict[str, Any]] = []


async def probe_read(request: Request) -> Response:
    principal = request.state.principal
    return JSONResponse({"name": principal.name, "role": principal.role})


async def probe_write(request: Request) -> Response:
    principal = request.state.principal
    _WRITES.append({"name": principal.name, "role": principal.role})
    return JSONResponse({"written": True, "by": principal.name}, status_code=201)


def probe_routes() -> list[BaseRoute]:
    """An endpoint with the default roles: viewer for GET, editor for POST."""
    return [Route("/probe", probe_read, methods=["GET"]),
            Route("/probe", probe_write, methods=["POST"])]


class Server:
    """The whole app (every route table, every middleware) served by uvicorn in a thread."""

    def __init__(self, client: loopml.Client, options: ServerOptions) -> None:
        tables = tuple(dict.fromkeys((*app_module.ROUTE_TABLES, PROBE_TABLE)))
        self.app = create_app(client=client, options=options, route_tables=tables)
        self.server = ServerThread.for_app(self.app)
        self.port = self.server.port

    def request(self, method: str, path: str, *, token: str | None = None,
                body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if body is not None:
            sent.setdefault("Content-Type", "application/json")
        return http_request(self.port, method, path, body=body, headers=sent)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    running: list[Server] = []
    clients: list[loopml.Client] = []

    def start(*, auth: bool | None = True, host: str = "127.0.0.1",
              database_url: str | None = None) -> Server:
        settings = loopml.load_settings(home=tmp_path / "home", progress=False,
                                        **({"database_url": database_url}
                                           if database_url else {}))
        clients.append(loopml.Client(settings))
        running.append(Server(clients[-1], ServerOptions(host=host, auth=auth)))
        return running[-1]

    yield start
    for server in running:
        server.stop()
    for client in clients:
        client.close()
    _WRITES.clear()


def _tokens(server: Server) -> dict[str, str]:
    meta = server.app.state.client.meta
    return {role: create_token(meta, f"{role}-token", role=role).secret for role in ROLES}


# ------------------------------------------------------------------ every route of the app

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-z]+))?}")
_SAMPLES = {"int": "1", "float": "1.5", "path": "a/b.txt",
            "uuid": "00000000-0000-0000-0000-000000000000"}
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _concrete(path: str) -> str:
    return _PARAM.sub(lambda m: _SAMPLES.get(m.group(2) or "", "x1"), path)


def _endpoints(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(method, concrete path, endpoint) for every route, inside mounts too."""
    for route in routes:
        if isinstance(route, WebSocketRoute):
            continue
        if isinstance(route, Mount):
            if route.routes:
                yield from _endpoints(list(route.routes), prefix + route.path)
            else:
                for method in ("GET", "POST"):
                    yield method, _concrete(prefix + route.path + "/x1"), route.app
            continue
        assert isinstance(route, Route), route
        for method in sorted(route.methods or _ALL_METHODS):
            if method != "HEAD":
                yield method, _concrete(prefix + route.path), route.endpoint


def _snapshot(server: Server) -> dict[str, Any]:
    """Every row of every table (but tokens' last use) and every stored blob."""
    meta = server.app.state.client.meta
    state: dict[str, Any] = {}
    with meta.read() as conn:
        for name in sorted(sa.inspect(conn).get_table_names()):
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            columns = [c for c in table.columns if (name, c.name) != ("api_tokens",
                                                                       "last_used_at")]
            state[name] = sorted(repr(tuple(row)) for row in conn.execute(sa.select(*columns)))
    home = Path(server.app.state.client.settings.home)
    state["files"] = sorted(str(p.relative_to(home)) for p in home.rglob("*")
                            if p.is_file() and "blobs" in p.parts)
    return state


def test_every_route_refuses_requests_without_a_good_token(serve: Callable[..., Server]) \
        -> None:
    server = serve()
    tokens = _tokens(server)
    revoked = create_token(server.app.state.client.meta, "gone", role="admin").secret
    revoke_token(server.app.state.client.meta, revoked.split("_")[1])
    before = _snapshot(server)
    checked, public = 0, []
    for method, path, endpoint in _endpoints(server.app.routes):
        body = b"{}" if method != "GET" else None
        if is_public(endpoint):
            public.append((method, path))
            if method != "GET" and path not in ("/ui/signin", "/ui/signout"):
                answer = server.request(method, path, body=body)  # e.g. static files: 405
                assert answer.status >= 400, (method, path, answer.status)
            continue
        for token in (None, "lml_nonsense", tokens["admin"][:-1] + "?", revoked):
            answer = server.request(method, path, token=token, body=body)
            assert answer.status == 401, (method, path, token, answer.body)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            assert answer.json()["error_code"] == "UNAUTHENTICATED"
        checked += 1
    assert checked >= 5  # the tokens API and the probe at least
    assert {("GET", "/ui/signin"), ("POST", "/ui/signin"), ("POST", "/ui/signout")} \
        <= set(public)
    assert _snapshot(server) == before
    assert _WRITES == []


def test_every_route_refuses_tokens_with_too_low_a_role(serve: Callable[..., Server]) -> None:
    server = serve()
    tokens = _tokens(server)
    before = _snapshot(server)
    refused = 0
    for method, path, endpoint in _endpoints(server.app.routes):
        if is_public(endpoint):
            continue
        needed = required_role(endpoint, method)
        for role in ROLES:
            if allows(role, needed):
                continue
            answer = server.request(method, path, token=tokens[role],
                                    body=b"{}" if method != "GET" else None)
            assert answer.status == 403, (method, path, role, answer.body)
            message = answer.json()["message"]
            assert f"has the role {role}" in message and f"needs {needed}" in message
            refused += 1
    assert refused >= 4
    assert _snapshot(server) == before
    assert _WRITES == []


def test_viewer_reads_editor_writes_admin_manages_tokens(serve: Callable[..., Server]) -> None:
    server = serve()
    tokens = _tokens(server)
    for role in ROLES:
        answer = server.request("GET", "/probe", token=tokens[role])
        assert (answer.status, answer.json()) == (200, {"name": f"{role}-token", "role": role})
        assert server.request("GET", "/api/v1/whoami", token=tokens[role]).json()["role"] \
            == role
    assert server.request("POST", "/probe", token=tokens["viewer"], body=b"{}").status == 403
    for role in ("editor", "admin"):
        answer = server.request("POST", "/probe", token=tokens[role], body=b"{}")
        assert (answer.status, answer.json()["by"]) == (201, f"{role}-token")
    for role in ("viewer", "editor"):
        assert server.request("GET", "/api/v1/tokens", token=tokens[role]).status == 403
        assert server.request("POST", "/api/v1/tokens", token=tokens[role],
                              body=b'{"name": "x", "role": "admin"}').status == 403

    listed = server.request("GET", "/api/v1/tokens", token=tokens["admin"])
    assert listed.status == 200
    assert {t["name"] for t in listed.json()["tokens"]} == {f"{r}-token" for r in ROLES}
    assert not any(secret.encode() in listed.body for secret in tokens.values())
    made = server.request("POST", "/api/v1/tokens", token=tokens["admin"],
                          body=b'{"name": "ci", "role": "editor", "expires": "30d"}')
    assert made.status == 201
    secret, info = made.json()["secret"], made.json()["token"]
    assert info["created_by"].startswith("admin-token") and info["expires_at"] is not None
    assert server.request("POST", "/probe", token=secret, body=b"{}").status == 201
    revoked = server.request("DELETE", f"/api/v1/tokens/{info['id']}", token=tokens["admin"])
    assert revoked.status == 200 and revoked.json()["token"]["status"] == "revoked"
    # revoked through this server: refused at once here, cache or not
    assert server.request("POST", "/probe", token=secret, body=b"{}").status == 401
    for bad in (b'{"name": "x", "role": "root"}', b'{"name": "x"}', b"[1]", b"{nope",
                b'{"name": "x", "role": "viewer", "expires": "later"}',
                b'{"name": "x", "role": "viewer", "owner": "me"}'):
        answer = server.request("POST", "/api/v1/tokens", token=tokens["admin"], body=bad)
        assert answer.status == 400 and answer.json()["message"], bad
    assert server.request("DELETE", "/api/v1/tokens/nope", token=tokens["admin"]).status == 404
    assert len(server.request("GET", "/api/v1/tokens", token=tokens["admin"])
               .json()["tokens"]) == 4


def test_a_revocation_reaches_every_server_within_the_cache_ttl(
        serve: Callable[..., Server], database_url: str) -> None:
    first = serve(database_url=database_url)
    second = serve(database_url=database_url)  # another process over the same database
    token = create_token(first.app.state.client.meta, "ci", role="editor")
    for server in (first, second):
        assert server.request("GET", "/probe", token=token.secret).status == 200
    revoked = first.request("DELETE", f"/api/v1/tokens/{token.info.id}",
                            token=_tokens(first)["admin"])
    assert revoked.status == 200
    assert first.request("GET", "/probe", token=token.secret).status == 401
    started = time.monotonic()
    while second.request("GET", "/probe", token=token.secret).status == 200:
        assert time.monotonic() - started < CACHE_TTL_S + 1.0, "revocation not seen in time"
        time.sleep(0.1)
    answer = second.request("GET", "/probe", token=token.secret)
    assert answer.status == 401 and "revoked" in answer.json()["message"]


def test_an_expired_token_is_refused(serve: Callable[..., Server]) -> None:
    server = serve()
    token = create_token(server.app.state.client.meta, "temp", role="viewer", expires="1s")
    assert server.request("GET", "/probe", token=token.secret).status == 200
    assert token.info.expires_at is not None
    time.sleep(max(0.0, token.info.expires_at / 1000 - time.time()) + 0.05)
    answer = server.request("GET", "/probe", token=token.secret)  # cached or not
    assert answer.status == 401 and "expired at" in answer.json()["message"]
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def test_basic_auth_with_the_token_as_password(serve: Callable[..., Server]) -> None:
    server = serve()
    secret = _tokens(server)["viewer"]
    basic = base64.b64encode(f"anyone:{secret}".encode()).decode()
    answer = server.request("GET", "/probe", headers={"Authorization": f"Basic {basic}"})
    assert answer.status == 200 and answer.json()["role"] == "viewer"
    wrong = base64.b64encode(b"anyone:lml_wrong").decode()
    assert server.request("GET", "/probe",
                          headers={"Authorization": f"Basic {wrong}"}).status == 401
    assert server.request("GET", "/probe",
                          headers={"Authorization": "Basic %%%"}).status == 401


def test_the_ui_signs_in_with_a_session_cookie(serve: Callable[..., Server]) -> None:
    server = serve()
    tokens = _tokens(server)
    page = server.request("GET", "/ui/signin?next=/ui/runs")
    assert page.status == 200 and b'name="token"' in page.body and b"/ui/runs" in page.body
    # a browser asking for a UI page without a session is sent to the sign-in page
    away = server.request("GET", "/ui/runs?sort=name", headers={"Accept": "text/html"})
    assert away.status == 303
    assert away.headers["Location"] == "/ui/signin?next=%2Fui%2Fruns%3Fsort%3Dname"

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    bad = server.request("POST", "/ui/signin", headers=form,
                         body=urlencode({"token": "lml_wrong", "next": "/ui/runs"}).encode())
    assert bad.status == 401 and b"malformed" in bad.body and "Set-Cookie" not in bad.headers
    signed = server.request("POST", "/ui/signin", headers=form, body=urlencode(
        {"token": tokens["editor"], "next": "/ui/runs"}).encode())
    assert signed.status == 303 and signed.headers["Location"] == "/ui/runs"
    cookie = signed.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age="):
        assert attribute.lower() in cookie.lower(), cookie
    session = {"Cookie": cookie.split(";")[0]}
    assert server.request("GET", "/probe", headers=session).json()["role"] == "editor"
    assert server.request("POST", "/probe", headers={**session, "Origin":
                                                     f"http://127.0.0.1:{server.port}"},
                          body=b"{}").status == 201
    # another site's page cannot use the session to write (SameSite aside)
    for foreign in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        assert server.request("POST", "/probe", headers={**session, **foreign},
                              body=b"{}").status == 403
    # never redirected to another site after signing in
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        answer = server.request("POST", "/ui/signin", headers=form, body=urlencode(
            {"token": tokens["viewer"], "next": target}).encode())
        assert answer.headers["Location"] == "/ui/", target
    out = server.request("POST", "/ui/signout", headers=session)
    assert out.status == 303 and out.headers["Location"] == "/ui/signin"
    assert SESSION_COOKIE in out.headers["Set-Cookie"]
    assert "max-age=0" in out.headers["Set-Cookie"].lower()
    assert len(_WRITES) == 1


def test_auth_is_on_by_default_only_off_loopback(serve: Callable[..., Server]) -> None:
    for host in ("0.0.0.0", "10.1.2.3", "::", "server.example"):
        assert ServerOptions(host=host).auth_required
    for host in ("127.0.0.1", "::1", "localhost"):
        assert not ServerOptions(host=host).auth_required
    assert ServerOptions(host="0.0.0.0", auth=True).auth_required
    assert ServerOptions(host="127.0.0.1", auth=True).auth_required
    assert middleware(ServerOptions(host="0.0.0.0")).kwargs["required"] is True
    assert middleware(ServerOptions(host="127.0.0.1")).kwargs["required"] is False

    public = serve(auth=None, host="0.0.0.0")  # options only: it listens on loopback
    assert public.request("POST", "/probe", body=b"{}").status == 401
    local = serve(auth=None, host="127.0.0.1")
    answer = local.request("POST", "/probe", body=b"{}")
    assert answer.status == 201 and answer.json()["by"] == ""
    assert local.request("GET", "/api/v1/whoami").json() == {"token_id": None, "name": "",
                                                              "role": "admin"}
