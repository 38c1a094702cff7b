"""What the ``/api/v1`` endpoints share: JSON in and out, typed fields of a body, the
domain call off the event loop, and who is acting.

Every endpoint reads its input with :func:`body_object` and the field getters, which raise
:class:`~loopml.errors.InvalidArgument` (400) naming the field, the value and what is
expected; the domain call runs in a worker thread (:func:`call`) so a slow database never
stalls the server's other requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import InvalidArgument
from loopml.server.api.wire import USER_HEADER
from loopml.server.errors import read_json

if TYPE_CHECKING:
    from loopml.client import Client

__all__ = ["API", "INT64_MAX", "INT64_MIN", "actor", "body_object", "call", "client", "get_bool",
           "get_int", "get_str", "get_str_list", "get_str_map", "json_response", "query_bool",
           "query_int", "upload_limit"]

#: The prefix of every endpoint of this API version.
API = "/api/v1"

T = TypeVar("T")
_MISSING: Any = object()
#: Whole numbers the databases store (64-bit signed).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def client(request: Request) -> Client:
    return request.app.state.client  # type: ignore[no-any-return]


async def call(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` in a worker thread (database and blob store calls block)."""
    return await run_in_threadpool(func, *args, **kwargs)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def actor(request: Request, claimed: str | None = None) -> str:
    """Who is acting: the token's name (with auth), else ``claimed`` or the user the client
    names in its header, else the server's own user."""
    principal = getattr(request.state, "principal", None)
    name = (getattr(principal, "name", "") or claimed
            or unquote(request.headers.get(USER_HEADER, "")))
    if name:
        return str(name)[:200]
    from loopml.tracking.context import current_user

    return current_user()


async def body_object(request: Request) -> dict[str, Any]:
    """The JSON body, which must be an object (``{}`` when empty)."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidArgument(f"the request body must be a JSON object, got "
                              f"{type(body).__name__}; send {{\"field\": value, ...}}")
    return body


def _wrong(name: str, value: Any, expected: str) -> InvalidArgument:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return InvalidArgument(f"field {name!r} must be {expected}, got {shown}")


def get_str(body: dict[str, Any], name: str, default: Any = _MISSING) -> Any:
    """``body[name]`` as a string (``default`` when absent or null; required without one)."""
    value = body.get(name)
    if value is None:
        if default is _MISSING:
            raise InvalidArgument(f"field {name!r} is required")
        return default
    if not isinstance(value, str):
        raise _wrong(name, value, "a string")
    return value


def get_int(body: dict[str, Any], name: str, default: Any = _MISSING, *,
            minimum: int | None = None) -> Any:
    value = body.get(name)
    if value is None:
        if default is _MISSING:
            raise InvalidArgument(f"field {name!r} is required")
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong(name, value, "a whole number")
    if not INT64_MIN <= value <= INT64_MAX:
        raise _wrong(name, value, "a whole number of at most 64 bits")
    if minimum is not None and value < minimum:
        raise _wrong(name, value, f"at least {minimum}")
    return value


def get_bool(body: dict[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _wrong(name, value, "true or false")
    return value


def get_str_map(body: dict[str, Any], name: str) -> dict[str, Any]:
    """``body[name]`` as an object of string keys (``{}`` when absent); values are kept."""
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong(name, value, "an object of names to values")
    return value


def get_str_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong(name, value, "a list of strings")
    return value


def query_int(request: Request, name: str, default: int, *, minimum: int = 0) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument(f"query parameter {name!r} must be a whole number, got "
                              f"{raw!r}") from None
    if value < minimum or value > INT64_MAX:
        raise InvalidArgument(f"query parameter {name!r} must be a whole number from "
                              f"{minimum} to {INT64_MAX}, got {value}")
    return value


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise InvalidArgument(f"query parameter {name!r} must be true or false, got {raw!r}")


def upload_limit(request: Request) -> int:
    """The most bytes one uploaded file may have (the server's ``max_upload_bytes``)."""
    return int(request.app.state.options.max_upload_bytes)
