"""Durations as people write them: ``500ms``, ``30s``, ``10m``, ``1.5h``, ``2d``, ``1w``, a
number of seconds, or a :class:`datetime.timedelta`; and moments given to an API as
milliseconds since the epoch or an aware :class:`datetime.datetime` (:func:`epoch_ms`).

One parser for every option that takes a duration (a step's timeout, a monitoring window, an
agent's interval, a trigger's minimum interval), so they all read the same way.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import overload

from loopml.errors import InvalidArgument

__all__ = ["epoch_ms", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
                 None: 1.0}


def parse_duration(value: object, *, what: str = "duration", allow_zero: bool = False) -> float:
    """Seconds from a duration; InvalidArgument naming ``what`` for anything else, and for
    zero unless ``allow_zero``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match is None:
            raise InvalidArgument(f"{what}: {value!r} is not a duration; write a number of "
                                  "seconds or a number with a unit: 500ms, 30s, 10m, 2h, 1d, "
                                  "1w")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0 or (seconds == 0 and not allow_zero) or seconds != seconds:
        raise InvalidArgument(f"{what} must be {'at least zero' if allow_zero else 'positive'}"
                              f", got {value!r}")
    return seconds


@overload
def epoch_ms(value: int | datetime, *, what: str) -> int: ...
@overload
def epoch_ms(value: None, *, what: str) -> None: ...
@overload
def epoch_ms(value: int | datetime | None, *, what: str) -> int | None: ...
def epoch_ms(value: int | datetime | None, *, what: str) -> int | None:
    """Milliseconds since the epoch from milliseconds or an aware datetime (None stays None);
    InvalidArgument naming ``what`` for a naive datetime or anything else."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidArgument(f"{what}={value!r} has no time zone; give an aware datetime "
                                  "(times are UTC) or milliseconds since the epoch")
        return int(value.timestamp() * 1000)
    raise InvalidArgument(f"{what} must be milliseconds since the epoch or a datetime, got "
                          f"{type(value).__name__}")
