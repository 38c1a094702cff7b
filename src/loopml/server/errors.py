"""Errors as JSON: every answer that is not a success has the body
``{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}`` (MLflow's shape, so the
``mlflow`` client and loopml's remote client read the same thing) and the status of the
:class:`~loopml.errors.LoopmlError` class; the remote client rebuilds that class from
``error_code``. Anything unexpected is a 500 with a generic message: a traceback never
reaches the caller (it goes to the server's log).

Two guards keep bad input away from the databases, whose drivers would fail on it:
a NUL character (which PostgreSQL cannot store, and file names cannot hold) is refused with
400 wherever a request carries text: in its path and query string (:func:`middleware`) and
in its JSON body (:func:`read_json`). A value the database still refuses (a driver
``DataError``: a number out of its range, a string too long for its column) is a 400 too,
after the transaction was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from loopml import errors
from loopml.errors import InvalidArgument, LoopmlError, RequestTooLarge

if TYPE_CHECKING:
    from starlette.middleware import Middleware
    from starlette.types import ASGIApp, Receive, Scope, Send

    from loopml.server.app import ServerOptions

__all__ = ["ERROR_CLASSES", "MAX_JSON_BYTES", "NulGuard", "error_class", "error_response",
           "exception_handlers", "middleware", "read_json"]

logger = logging.getLogger("loopml.server")

#: The largest JSON body an API endpoint reads (uploads of files stream and are not JSON).
MAX_JSON_BYTES = 16 * 1024 * 1024

#: error_code → class, for the remote client (the most specific class wins a shared code).
ERROR_CLASSES: dict[str, type[LoopmlError]] = {}
for _name in reversed(errors.__all__):
    _cls = getattr(errors, _name)
    ERROR_CLASSES.setdefault(_cls.error_code, _cls)
for _cls in (errors.NotFound, errors.AlreadyExists, errors.InvalidArgument, errors.Conflict,
             errors.PermissionDenied, errors.BackendUnavailable, errors.LoopmlError):
    ERROR_CLASSES[_cls.error_code] = _cls

_HTTP_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
               404: "ENDPOINT_NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "REQUEST_TOO_LARGE"}


def error_class(error_code: str) -> type[LoopmlError]:
    """The class a remote client raises for ``error_code`` (LoopmlError when unknown)."""
    return ERROR_CLASSES.get(error_code, LoopmlError)


def error_response(status: int, error_code: str, message: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    body = orjson.dumps({"error_code": error_code, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _loopml_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoopmlError)
    return error_response(exc.http_status, exc.error_code, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "BAD_REQUEST" if exc.status_code < 500
                           else "INTERNAL_ERROR")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error answering %s %s", request.method, request.url.path)
    return error_response(500, "INTERNAL_ERROR", "the server failed to answer this request; "
                          "its log has the details")


async def _refused_value(request: Request, exc: Exception) -> Response:
    """A value the database refused (its transaction was rolled back): the caller's input."""
    reason = str(getattr(exc, "orig", None) or "").strip().splitlines()
    shown = reason[0][:200] if reason else type(exc).__name__
    logger.info("the database refused a value of %s %s: %s", request.method,
                request.url.path, shown)
    return error_response(400, InvalidArgument.error_code,
                          f"the database refused a value of this request ({shown}); nothing "
                          "was changed: send shorter text, or numbers within 64 bits")


def exception_handlers() -> dict[Any, Any]:
    """For ``Starlette(exception_handlers=...)``."""
    from sqlalchemy.exc import DataError

    return {LoopmlError: _loopml_error, HTTPException: _http_error, DataError: _refused_value,
            Exception: _unexpected}


_NUL_ESCAPE = b"\\u0000"


def _has_nul(value: Any) -> bool:
    """Whether a decoded JSON value holds a NUL character in a string or a key."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


async def read_json(request: Request, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The request's JSON body; InvalidArgument (400) when it is malformed or too large."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _TooLarge(max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge(max_bytes)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the request body is not valid JSON ({exc}); send a JSON "
                              "object") from None
    # JSON can only carry a NUL as the escape \u0000: look for it in the bytes first (fast),
    # then in the decoded strings (exact: an escaped backslash may precede "u0000").
    if _NUL_ESCAPE in body and _has_nul(value):
        raise InvalidArgument("the request body holds a NUL character (\\u0000) in a string; "
                              "text may not contain NUL characters: remove them")
    return value


def _nul_in(scope: Scope) -> str | None:
    """Which part of the request's URL holds a NUL character, if any."""
    if "\x00" in scope.get("path", ""):
        return "path"
    if b"%00" in scope.get("query_string", b""):
        return "query string"
    return None


class NulGuard:
    """Refuses (400) an HTTP request whose path or query string holds a NUL character
    (``%00``) before any endpoint sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        where = _nul_in(scope) if scope["type"] == "http" else None
        if where is None:
            await self.app(scope, receive, send)
            return
        answer = error_response(400, InvalidArgument.error_code,
                                f"the request's {where} holds a NUL character (%00); names, "
                                "paths and values may not contain NUL characters: remove it")
        await answer(scope, receive, send)


def middleware(options: ServerOptions) -> Middleware:
    """The factory named in :data:`loopml.server.app.MIDDLEWARES`."""
    from starlette.middleware import Middleware

    return Middleware(NulGuard)


class _TooLarge(RequestTooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit:,} bytes; send less at "
                         "once (files are uploaded as streams, not in JSON)")
