"""The server's application: route tables around one embedded client.

::

    app = create_app(settings)            # or create_app(client=Client(...)) in tests
    uvicorn.run(app, host="127.0.0.1", port=5000)

Each entry of :data:`ROUTE_TABLES` names a function ``routes() -> list[BaseRoute]`` in a module
of the delivery layer (the REST API, the MLflow-compatible API, the UI); its module is imported
when the app is built. Endpoints reach the domain through ``request.app.state.client`` (the
embedded :class:`~loopml.client.Client` over the configured stores: PostgreSQL + S3 for a
team) and keep nothing in the process between requests, so several server processes behind
one database and blob store behave as one. Which role an endpoint needs is declared with
:func:`loopml.server.roles.requires`; the middlewares of :data:`MIDDLEWARES` (auth) read it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from loopml.server.errors import exception_handlers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from loopml.client import Client
    from loopml.config import Settings

__all__ = ["MIDDLEWARES", "ROUTE_TABLES", "ServerOptions", "create_app"]

#: ``module:function`` of each route table, in matching order.
ROUTE_TABLES: tuple[str, ...] = (
    "loopml.server.api:routes",
    "loopml.server.auth:routes",
    "loopml.server.mlflow:routes",
    "loopml.ui:routes",
)

#: ``module:function`` of each middleware factory ``(options) -> Middleware | None``,
#: outermost first.
MIDDLEWARES: tuple[str, ...] = (
    "loopml.server.auth:middleware",
    "loopml.server.errors:middleware",
)


@dataclass(frozen=True, kw_only=True)
class ServerOptions:
    """How the server answers. ``auth`` None: on unless bound to a loopback address."""

    host: str = "127.0.0.1"
    port: int = 5000
    auth: bool | None = None
    #: The largest blob one upload (a PUT, or a multipart upload in all) may carry (413 over).
    max_upload_bytes: int = 64 << 30
    #: Seconds a multipart upload session lives without receiving a part.
    upload_ttl_s: float = 24 * 3600.0

    @property
    def auth_required(self) -> bool:
        if self.auth is not None:
            return self.auth
        return self.host not in ("127.0.0.1", "::1", "localhost")


def _load(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def create_app(settings: Settings | None = None, *, client: Client | None = None,
               options: ServerOptions | None = None,
               route_tables: Sequence[str] = ROUTE_TABLES,
               middlewares: Sequence[str] = MIDDLEWARES) -> Starlette:
    """The server's ASGI application over ``client`` (default: a client of ``settings``)."""
    from loopml.client import Client

    own = client is None
    server_client = client if client is not None else Client(settings)
    opts = options or ServerOptions()
    routes: list[BaseRoute] = []
    for spec in route_tables:
        routes.extend(_load(spec)())
    stack: list[Middleware] = []
    for spec in middlewares:
        made = _load(spec)(opts)
        if made is not None:
            stack.append(made)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            server_client.flush()
            if own:
                server_client.close()

    app = Starlette(routes=routes, middleware=stack, lifespan=lifespan,
                    exception_handlers=exception_handlers())
    app.state.client = server_client
    app.state.options = opts
    return app
