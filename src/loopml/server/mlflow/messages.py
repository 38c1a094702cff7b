"""MLflow's wire format: request fields, JSON answers and page tokens.

The ``mlflow`` client sends the fields of a GET request in the query string (a repeated
field as the same name several times) and those of any other request as a JSON object; int64
fields may arrive as numbers or as strings of digits (protobuf's JSON mapping), doubles as
numbers or as ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"``. :class:`Message` reads both with
the same getters, each raising :class:`~loopml.errors.InvalidArgument` (400
``INVALID_PARAMETER_VALUE``) that names the field, the value and what is expected.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import InvalidArgument
from loopml.server.errors import read_json

__all__ = ["Message", "answer", "call", "decode_page_token", "encode_page_token",
           "json_number", "page", "read_message"]

T = TypeVar("T")
_SPECIAL_NUMBERS = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf,
                    "inf": math.inf, "-inf": -math.inf}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Message:
    """The fields of one request, by their MLflow names."""

    def __init__(self, fields: Mapping[str, Any], *, endpoint: str) -> None:
        self.fields = fields
        self.endpoint = endpoint

    def _wrong(self, name: str, value: Any, expected: str) -> InvalidArgument:
        return InvalidArgument(f"{self.endpoint}: field {name!r} must be {expected}, got "
                               f"{_shown(value)}")

    def _missing(self, name: str) -> InvalidArgument:
        return InvalidArgument(f"{self.endpoint}: the field {name!r} is required and was not "
                               "given")

    def text(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self.fields.get(name)
        if value is None or value == "":
            if required:
                raise self._missing(name)
            return default
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str):
            raise self._wrong(name, value, "a string")
        if "\x00" in value:
            raise self._wrong(name, value, "a string without NUL characters")
        return value

    def integer(self, name: str, *, default: int | None = None,
                minimum: int | None = None) -> int | None:
        value = self.fields.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise self._wrong(name, value, "a whole number (int64)") from None
        if not isinstance(value, int) or isinstance(value, bool) or not -2**63 <= value < 2**63:
            raise self._wrong(name, value, "a whole number (int64)")
        if minimum is not None and value < minimum:
            raise self._wrong(name, value, f"at least {minimum}")
        return value

    def number(self, name: str) -> float:
        value = self.fields.get(name)
        if value is None:
            raise self._missing(name)
        return self.as_number(name, value)

    def as_number(self, name: str, value: Any) -> float:
        if isinstance(value, str):
            special = _SPECIAL_NUMBERS.get(value.strip().lower())
            if special is not None:
                return special
            try:
                return float(value)
            except ValueError:
                pass
        elif isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise self._wrong(name, value, "a number (or \"NaN\", \"Infinity\", \"-Infinity\")")

    def strings(self, name: str) -> list[str]:
        value = self.fields.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._wrong(name, value, "a list of strings")
        return value

    def items(self, name: str, *, limit: int) -> list[dict[str, Any]]:
        """A repeated message field (tags, params, metrics): a list of JSON objects."""
        value = self.fields.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self._wrong(name, value, "a list of objects")
        if len(value) > limit:
            raise InvalidArgument(f"{self.endpoint}: {len(value)} {name} in one request; at "
                                  f"most {limit} are allowed: send them in several batches")
        return value

    def pairs(self, name: str, *, limit: int = 1000) -> dict[str, str]:
        """A repeated ``{key, value}`` field as a dict (later keys win, as in MLflow)."""
        result: dict[str, str] = {}
        for item in self.items(name, limit=limit):
            key, value = item.get("key"), item.get("value", "")
            if not isinstance(key, str) or not key:
                raise self._wrong(f"{name}[].key", key, "a non-empty string")
            if value is None:
                value = ""
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise self._wrong(f"{name}[].value", value, "a string")
            result[key] = str(value)
        return result

    def run_id(self) -> str:
        """``run_id``, or ``run_uuid`` as older clients send it."""
        run_id = self.text("run_id") or self.text("run_uuid")
        if not run_id:
            raise self._missing("run_id")
        return run_id


async def read_message(request: Request, endpoint: str) -> Message:
    """The request's fields: the query string of a GET, else the JSON body (an object)."""
    if request.method in ("GET", "HEAD"):
        fields: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            seen = fields.get(key)
            if seen is None:
                fields[key] = value
            else:
                fields[key] = [*seen, value] if isinstance(seen, list) else [seen, value]
        return Message(fields, endpoint=endpoint)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidArgument(f"{endpoint}: the request body must be a JSON object, got "
                              f"{type(body).__name__}")
    # A query string adds fields a JSON body lacks (clients put allow_deleted there).
    for key, value in request.query_params.items():
        body.setdefault(key, value)
    return Message(body, endpoint=endpoint)


async def call(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` in a worker thread: database and blob calls block."""
    return await run_in_threadpool(func, *args, **kwargs)


def answer(data: Mapping[str, Any] | None = None) -> Response:
    """A JSON answer with status 200 (``{}`` for the calls that return nothing)."""
    return Response(orjson.dumps(data or {}), media_type="application/json")


def json_number(value: float) -> float | str:
    """A double as protobuf's JSON writes it: NaN and infinities are strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"offset": offset})).decode()


def page(items: Sequence[T], key: str, render: Callable[[T], Any], *, offset: int,
         limit: int | None) -> dict[str, Any]:
    """``{key: [render(item), ...]}`` for ``limit`` items from ``offset`` (all of them for
    None), with a ``next_page_token`` when more remain."""
    end = len(items) if limit is None else offset + limit
    body: dict[str, Any] = {key: [render(item) for item in items[offset:end]]}
    if end < len(items):
        body["next_page_token"] = encode_page_token(end)
    return body


def decode_page_token(token: str, endpoint: str) -> int:
    """The offset a page token returned earlier stands for (0 for no token)."""
    if not token:
        return 0
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        offset = data["offset"]
        if isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0:
            return offset
    except (binascii.Error, orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        pass
    raise InvalidArgument(f"{endpoint}: invalid page_token {_shown(token)}; pass the "
                          "next_page_token of the previous answer unchanged")
