"""``/api/v1/tokens``: admins list, create and revoke tokens over HTTP; ``/api/v1/whoami``.

::

    GET    /api/v1/tokens                → {"tokens": [token, ...]}          (newest first)
    POST   /api/v1/tokens  {"name": "ci", "role": "editor", "expires": "90d"}
                                         → 201 {"token": token, "secret": "lml_…"}
    DELETE /api/v1/tokens/{id}           → {"token": token}                  (revoked)
    GET    /api/v1/whoami                → {"token_id": …, "name": …, "role": …}

A ``token`` is :meth:`~loopml.server.tokens.TokenInfo.to_dict` (never its secret or hash);
``secret`` is shown in the answer to POST only. Every tokens endpoint needs ``admin``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.errors import InvalidArgument
from loopml.server.errors import read_json
from loopml.server.roles import requires
from loopml.server.tokens import (
    Principal,
    TokenVerifier,
    create_token,
    list_tokens,
    revoke_token,
)

__all__ = ["routes"]

_FIELDS = frozenset({"name", "role", "expires"})


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _principal(request: Request) -> Principal | None:
    found = getattr(request.state, "principal", None)
    return found if isinstance(found, Principal) else None


def _actor(request: Request) -> str:
    """Who to record: the token's name and id, or nothing when auth is off."""
    principal = _principal(request)
    if principal is None or principal.token_id is None:
        return ""
    return f"{principal.name} ({principal.token_id})"


@requires("admin")
async def list_endpoint(request: Request) -> Response:
    meta = request.app.state.client.meta
    found = await run_in_threadpool(list_tokens, meta)
    return _json({"tokens": [token.to_dict() for token in found]})


@requires("admin")
async def create_endpoint(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body, Mapping):
        raise InvalidArgument("send a JSON object such as {\"name\": \"ci\", \"role\": "
                              "\"editor\", \"expires\": \"90d\"}")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidArgument(f"unknown field(s) {', '.join(map(repr, unknown))}; a token "
                              f"takes {', '.join(sorted(_FIELDS))}")
    if "name" not in body or "role" not in body:
        raise InvalidArgument("a token needs a 'name' and a 'role' (viewer, editor or admin)")
    meta = request.app.state.client.meta
    made = await run_in_threadpool(lambda: create_token(
        meta, body["name"], role=body["role"], expires=body.get("expires"),
        created_by=_actor(request)))
    return _json({"token": made.info.to_dict(), "secret": made.secret}, status=201)


@requires("admin")
async def revoke_endpoint(request: Request) -> Response:
    token_id = str(request.path_params["token_id"])
    meta = request.app.state.client.meta
    revoked = await run_in_threadpool(lambda: revoke_token(meta, token_id,
                                                           revoked_by=_actor(request)))
    verifier = getattr(request.state, "token_verifier", None)
    if isinstance(verifier, TokenVerifier):
        verifier.forget(token_id)
    return _json({"token": revoked.to_dict()})


@requires("viewer")
async def whoami_endpoint(request: Request) -> Response:
    principal = _principal(request)
    if principal is None:
        return _json({"token_id": None, "name": "", "role": None})
    return _json(asdict(principal))


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/tokens", list_endpoint, methods=["GET"]),
        Route("/api/v1/tokens", create_endpoint, methods=["POST"]),
        Route("/api/v1/tokens/{token_id}", revoke_endpoint, methods=["DELETE"]),
        Route("/api/v1/whoami", whoami_endpoint, methods=["GET"]),
    ]
