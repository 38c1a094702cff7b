"""Checks on names and values a user logs; each failure says what is allowed."""

from __future__ import annotations

import posixpath
import re
from numbers import Real
from typing import Any

from loopml.errors import InvalidArgument
from loopml.tracking.entities import RunStatus

__all__ = ["MAX_KEY_LENGTH", "MAX_PARAM_LENGTH", "artifact_path", "check_key",
           "metric_value", "param_value", "run_status"]

MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 6000
_KEY = re.compile(r"^[\w\-. /:]+$")


def check_key(key: Any, *, kind: str) -> str:
    """A param/metric/tag name: 1–250 of letters, digits, ``_ - . / :`` and spaces."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or not _KEY.match(key):
        raise InvalidArgument(
            f"invalid {kind} name {key!r}: use 1-{MAX_KEY_LENGTH} characters among letters, "
            "digits, '_', '-', '.', '/', ':' and spaces")
    if key.startswith("/") or ".." in key.split("/"):
        raise InvalidArgument(f"invalid {kind} name {key!r}: it may not start with '/' or "
                              "contain a '..' segment")
    return key


def param_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PARAM_LENGTH:
        raise InvalidArgument(f"param {key!r} is {len(text)} characters long; the limit is "
                              f"{MAX_PARAM_LENGTH}: log long values as an artifact instead")
    return text


def metric_value(key: str, value: Any) -> float:
    """A metric value as float; NaN and ±inf are kept (stored and shown as such)."""
    if isinstance(value, Real):
        return float(value)
    if not isinstance(value, str | bytes):
        try:
            return float(value)  # numpy scalars, 0-d arrays, Decimal
        except (TypeError, ValueError):
            pass
    raise InvalidArgument(f"metric {key!r} got {value!r} ({type(value).__name__}); "
                          "a metric value must be a number")


def artifact_path(path: str) -> str:
    """A relative POSIX path inside a run's artifacts, normalised; no escape with '..'."""
    if path in ("", "."):
        return ""
    normal = posixpath.normpath(path.replace("\\", "/"))
    if normal.startswith("/") or normal == ".." or normal.startswith("../"):
        raise InvalidArgument(f"artifact path {path!r} escapes the run's artifact directory; "
                              "use a relative path without '..'")
    return normal


def run_status(status: RunStatus | str) -> RunStatus:
    """``status`` as a :class:`RunStatus` (``"FINISHED"``, ``"FAILED"``, ...)."""
    try:
        return RunStatus(status)
    except ValueError:
        raise InvalidArgument(f"unknown run status {status!r}; use one of "
                              f"{', '.join(s.value for s in RunStatus)}") from None
