"""Auth: every request carries a token whose role covers what its endpoint needs.

A request names its token in ``Authorization: Bearer <token>`` (clients, scripts, the
``mlflow`` client with ``MLFLOW_TRACKING_TOKEN``; HTTP Basic with the token as password is
read too, for clients configured with a user name and password), or, from the web UI, in the
HttpOnly session cookie :data:`SESSION_COOKIE` set by ``POST /ui/signin``
(:mod:`loopml.server.signin`). The middleware finds the endpoint the request is routed to,
asks :func:`loopml.server.roles.required_role` what it needs and answers:

- 401 with ``WWW-Authenticate: Bearer`` when the token is missing, malformed, unknown, revoked
  or expired (a browser asking for a UI page is sent to the sign-in page instead);
- 403 when the token's role is below the endpoint's, or when a cookie-signed request that
  writes comes from another site;
- otherwise the request goes on with ``request.state.principal``
  (:class:`~loopml.server.tokens.Principal`: token id, name, role) for endpoints that record
  who did what.

Endpoints marked with :func:`public` (health, the sign-in page) need no token. Auth is off
when :attr:`~loopml.server.app.ServerOptions.auth_required` is False (the embedded default on
a loopback address): every request then acts as an unnamed admin.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount

from loopml.errors import LoopmlError
from loopml.server.errors import error_response
from loopml.server.roles import allows, required_role
from loopml.server.tokens import CACHE_TTL_S, InvalidToken, Principal, TokenVerifier

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from loopml.server.app import ServerOptions

__all__ = ["LOCAL_PRINCIPAL", "SESSION_COOKIE", "AuthMiddleware", "is_public", "middleware",
           "public", "resolve_endpoint", "routes"]

#: The web UI's session cookie: the token itself, HttpOnly, SameSite=Strict.
SESSION_COOKIE = "loopml_session"
#: Who a request acts as when auth is off.
LOCAL_PRINCIPAL = Principal(token_id=None, name="", role="admin")

_PUBLIC = "__loopml_public__"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_SIGNIN = "/ui/signin"

T = TypeVar("T")


def public(endpoint: T) -> T:
    """Mark an endpoint (or a mounted app, such as static files) as needing no token."""
    setattr(endpoint, _PUBLIC, True)
    return endpoint


def is_public(endpoint: object) -> bool:
    return bool(getattr(endpoint, _PUBLIC, False))


def middleware(options: ServerOptions) -> Middleware:
    """The factory named in :data:`loopml.server.app.MIDDLEWARES`."""
    return Middleware(AuthMiddleware, required=options.auth_required)


def routes() -> list[BaseRoute]:
    """The token API (``/api/v1/tokens``, ``/api/v1/whoami``) and the sign-in pages."""
    from loopml.server import signin, token_api

    return [*token_api.routes(), *signin.routes()]


def resolve_endpoint(candidates: Sequence[BaseRoute], scope: Scope) -> object | None:
    """The endpoint the router will call for ``scope`` (the first full match, else the first
    partial one, as Starlette's router does), looking inside mounted routers."""
    partial: object | None = None
    for route in candidates:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        endpoint = child.get("endpoint")
        if isinstance(route, Mount) and route.routes and not is_public(endpoint):
            inner = resolve_endpoint(route.routes, {**scope, **child})
            endpoint = inner if inner is not None else endpoint
        if match is Match.FULL:
            return endpoint
        if partial is None:
            partial = endpoint
    return partial


def _handler(endpoint: object, method: str) -> object:
    """A class endpoint's handler for ``method`` when that is what carries the role."""
    if isinstance(endpoint, type):
        handler = getattr(endpoint, method.lower(), None)
        if handler is not None and getattr(handler, "__loopml_role__", None) is not None:
            return handler
    return endpoint


def credential(headers: Headers) -> tuple[str | None, bool]:
    """The token a request carries and whether it came from the session cookie."""
    header = headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return value, False
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return "", False
            return decoded.partition(":")[2], False
        return "", False
    cookies = headers.get("cookie")
    if cookies:
        for part in cookies.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and value:
                return value, True
    return None, False


def cross_site(headers: Headers) -> bool:
    """Whether a browser sent this request from another site (Sec-Fetch-Site, else Origin)."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc != headers.get("host", "")


class AuthMiddleware:
    """Checks each HTTP request's token against its endpoint's role (see the module doc)."""

    def __init__(self, app: ASGIApp, *, required: bool, ttl: float = CACHE_TTL_S) -> None:
        self.app = app
        self.required = required
        self.ttl = ttl
        self._verifier: TokenVerifier | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.required:
            state["principal"] = LOCAL_PRINCIPAL
            await self.app(scope, receive, send)
            return
        server = scope["app"]
        state["token_verifier"] = verifier = self._verifier_for(server)
        method = scope.get("method", "GET")
        endpoint = resolve_endpoint(server.routes, scope)
        if is_public(endpoint):
            state["principal"] = None
            await self.app(scope, receive, send)
            return
        denied = await self._check(scope, verifier, _handler(endpoint, method), method)
        if denied is not None and scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if denied is not None:
            await denied(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _verifier_for(self, server: Any) -> TokenVerifier:
        if self._verifier is None:
            client = server.state.client
            self._verifier = TokenVerifier(lambda: client.meta, ttl=self.ttl)
        return self._verifier

    async def _check(self, scope: Scope, verifier: TokenVerifier, endpoint: object,
                     method: str) -> Response | None:
        """None when the request may go on (``principal`` set), else the answer."""
        headers = Headers(scope=scope)
        token, from_cookie = credential(headers)
        if token is None:
            return _unauthenticated(scope, headers, "this server needs a token: send "
                                    "'Authorization: Bearer <token>' (set "
                                    "LOOPML_TRACKING_TOKEN for loopml's client); an admin "
                                    "creates one with 'loopml tokens create NAME --role ROLE'")
        try:
            principal = verifier.verify_cached(token)
            if principal is None:
                principal = await run_in_threadpool(verifier.verify, token)
        except InvalidToken as exc:
            return _unauthenticated(scope, headers, exc.message, invalid=True,
                                    from_cookie=from_cookie)
        except LoopmlError as exc:
            return error_response(exc.http_status, exc.error_code, exc.message)
        if from_cookie and method.upper() not in _READS and cross_site(headers):
            return error_response(403, "PERMISSION_DENIED", "a request from another site may "
                                  "not use the web UI's session to change anything; send it "
                                  "from the loopml UI, or with an Authorization header")
        needed = required_role(endpoint, method)
        if not allows(principal.role, needed):
            path = scope.get("path", "")
            return error_response(403, "PERMISSION_DENIED",
                                  f"the token {principal.token_id} ({principal.name!r}) has "
                                  f"the role {principal.role}; {method} {path} needs "
                                  f"{needed}; ask an admin for a token with that role")
        scope["state"]["principal"] = principal
        return None


def _wants_page(scope: Scope, headers: Headers) -> bool:
    path: str = scope.get("path", "")
    return (scope.get("method") in ("GET", "HEAD") and (path == "/ui" or path.startswith("/ui/"))
            and "text/html" in headers.get("accept", ""))


def _unauthenticated(scope: Scope, headers: Headers, message: str, *, invalid: bool = False,
                     from_cookie: bool = False) -> Response:
    response: Response
    if _wants_page(scope, headers):
        target = scope.get("path", "/ui/")
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            target += "?" + query
        response = RedirectResponse(f"{_SIGNIN}?next={quote(target, safe='')}", status_code=303)
    else:
        challenge = 'Bearer realm="loopml"' + (', error="invalid_token"' if invalid else "")
        response = error_response(401, "UNAUTHENTICATED", message,
                                  headers={"WWW-Authenticate": challenge})
    if from_cookie:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
