"""The HTTP plumbing of the prediction path, on raw ASGI messages.

Starlette's ``Request``/``Response`` objects cost tens of microseconds a request, a tenth of
the whole budget; the prediction routes read the body and answer with these few functions
instead (the other routes use Starlette). Errors a client causes map to a status and a JSON
body ``{"error_code", "message", "request_id"[, "field", "row"]}`` that never quotes what
the client sent; the errors are classes of the one tree in :mod:`loopml.errors`
(:class:`~loopml.errors.RequestTooLarge`, :class:`~loopml.errors.Unauthorized`, …).
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from loopml.errors import InvalidArgument, InvalidInput, LoopmlError, RequestTooLarge

__all__ = ["ClientGone", "authorized", "encode_error", "encode_json", "parse_json",
           "read_body", "request_id", "send_json"]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_JSON = (b"content-type", b"application/json")


class ClientGone(Exception):
    """The client disconnected before its request was read (internal: nobody is left to
    answer, so it is no LoopmlError)."""


def request_id(given: bytes | None, new: Callable[[], str]) -> str:
    """The client's ``X-Request-ID`` when it is a sane token, else a new one."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given.decode()
    return new()


def authorized(header: bytes | None, token: bytes) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>``."""
    if header is None or header[:7].lower() != b"bearer ":
        return False
    return hmac.compare_digest(header[7:].strip(), token)


async def read_body(receive: Receive, length: bytes | None, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to be over ``limit`` bytes."""
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestTooLarge(f"the request body is {int(length)} bytes, over the limit of "
                              f"{limit}; send fewer rows per request (or start the server "
                              "with a larger --max-body-bytes)")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"the request body is over the limit of {limit} bytes; send "
                                  "fewer rows per request (or start the server with a larger "
                                  "--max-body-bytes)")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """The parsed body: orjson, or the standard library for what only it reads (``NaN``,
    ``Infinity``, numbers too large for a double, which validation then refuses)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})"
    except (ValueError, RecursionError):
        where = ""
    raise InvalidArgument(f"the request body is not valid JSON{where}; send a JSON object "
                          "such as {\"dataframe_records\": [{\"column\": value, ...}]}")


def _default(value: Any) -> Any:
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return value.to_dict(orient="records")
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(value: Any) -> bytes:
    """JSON bytes of ``value``; numpy arrays and pandas tables included."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_error(exc: LoopmlError, rid: str) -> bytes:
    body: dict[str, Any] = {"error_code": exc.error_code, "message": exc.message,
                            "request_id": rid}
    if isinstance(exc, InvalidInput):
        body["field"] = exc.field
        body["row"] = exc.row
    return orjson.dumps(body)


async def send_json(send: Send, status: int, body: bytes, rid: str,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode()),
               (b"x-request-id", rid.encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
