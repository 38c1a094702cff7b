"""Traffic policies: which model versions a deployment serves, and how requests are split.

A policy is a frozen value stored as JSON on the deployment's row::

    TrafficPolicy(model="churn@production",                     # the primary
                  canary=Canary(model="churn@staging", percent=10, sticky="header:X-Loopml-Key"),
                  shadow="churn/7",                             # sees a copy of each request
                  rollback=RollbackRule(max_error_rate=0.05, window_s=30))

``canary.percent`` of the requests go to the canary. A request that carries the sticky key
(a header, ``header:NAME``, or a top-level field of the JSON body, ``field:NAME``) is
assigned by a stable hash of the key, so one key always meets the same version; requests
without it are split by a counter. ``pinned`` is set by a rollback: the primary then serves
that version of its model (whatever its alias says) until the policy is changed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import orjson

from loopml.errors import InvalidArgument
from loopml.registry.refs import ModelRef, parse_model_ref

__all__ = ["ALERT_KINDS", "DEFAULT_STICKY", "Canary", "RollbackRule", "TrafficPolicy",
           "parse_canary", "parse_sticky"]

#: The kinds of monitoring alerts a rollback rule may act on.
ALERT_KINDS = ("drift", "prediction_drift", "target_drift", "quality", "performance")

DEFAULT_STICKY = "header:X-Loopml-Key"


def parse_sticky(text: str) -> tuple[str, str]:
    """``("header", name)`` or ``("field", name)`` from ``header:NAME`` / ``field:NAME``."""
    kind, _, name = text.partition(":")
    if kind not in {"header", "field"} or not name.strip():
        raise InvalidArgument(f"invalid sticky key {text!r}: use header:NAME (a request "
                              "header, e.g. header:X-Loopml-Key) or field:NAME (a top-level "
                              "field of the JSON body, e.g. field:user_id)")
    return kind, name.strip().lower() if kind == "header" else name.strip()


@dataclass(frozen=True, kw_only=True)
class Canary:
    """``percent`` (0-100, exclusive) of the traffic to ``model``, sticky by ``sticky``."""

    model: str
    percent: float
    sticky: str = DEFAULT_STICKY

    def __post_init__(self) -> None:
        parse_model_ref(self.model)
        parse_sticky(self.sticky)
        if not isinstance(self.percent, int | float) or not 0 < self.percent < 100:
            raise InvalidArgument(f"the canary's percent must be between 0 and 100 "
                                  f"(exclusive), got {self.percent!r}; e.g. churn@staging=10%")


@dataclass(frozen=True, kw_only=True)
class RollbackRule:
    """Roll back on its own when, over the last ``window_s`` seconds (and at least
    ``min_requests`` requests) of the newest version, the share of requests the model failed
    is over ``max_error_rate`` or the 99th percentile latency is over ``max_p99_ms``; or when
    monitoring raises an alert of one of the kinds ``on_alerts`` (``drift``,
    ``prediction_drift``, ``target_drift``, ``quality``, ``performance``: a check of a window
    of the payload log past its threshold) about the newest version while it is on trial."""

    max_error_rate: float | None = None
    max_p99_ms: float | None = None
    window_s: float = 30.0
    min_requests: int = 20
    on_alerts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_alerts", tuple(self.on_alerts))
        unknown = sorted(set(self.on_alerts) - set(ALERT_KINDS))
        if unknown:
            raise InvalidArgument(f"on_alerts has unknown alert kinds {', '.join(unknown)}; "
                                  f"use some of {', '.join(ALERT_KINDS)}")
        if self.max_error_rate is None and self.max_p99_ms is None and not self.on_alerts:
            raise InvalidArgument("a rollback rule needs max_error_rate (e.g. 0.05), "
                                  "max_p99_ms (e.g. 250) or on_alerts (e.g. drift), or several")
        if self.max_error_rate is not None and not 0 <= self.max_error_rate < 1:
            raise InvalidArgument(f"max_error_rate is a share between 0 and 1 (exclusive), "
                                  f"got {self.max_error_rate}")
        if self.max_p99_ms is not None and not self.max_p99_ms > 0:
            raise InvalidArgument(f"max_p99_ms must be > 0, got {self.max_p99_ms}")
        if not (self.window_s > 0 and math.isfinite(self.window_s)) or self.min_requests < 1:
            raise InvalidArgument(f"window_s must be > 0 and min_requests >= 1; got "
                                  f"{self.window_s}, {self.min_requests}")


@dataclass(frozen=True, kw_only=True)
class TrafficPolicy:
    """What a deployment serves (see the module's docstring)."""

    model: str
    canary: Canary | None = None
    shadow: str | None = None
    rollback: RollbackRule | None = None
    pinned: int | None = None

    def __post_init__(self) -> None:
        parse_model_ref(self.model)
        if self.shadow is not None:
            parse_model_ref(self.shadow)
        if self.pinned is not None and self.pinned < 1:
            raise InvalidArgument(f"pinned is a version number from 1, got {self.pinned}")

    @property
    def primary(self) -> ModelRef:
        """The reference the primary serves now (the pinned version after a rollback)."""
        ref = parse_model_ref(self.model)
        return ref if self.pinned is None else ModelRef(ref.name, version=self.pinned)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict()).decode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrafficPolicy:
        canary, rule = data.get("canary"), data.get("rollback")
        return cls(model=data["model"], shadow=data.get("shadow"), pinned=data.get("pinned"),
                   canary=Canary(**canary) if canary else None,
                   rollback=RollbackRule(**rule) if rule else None)

    @classmethod
    def from_json(cls, text: str) -> TrafficPolicy:
        return cls.from_dict(orjson.loads(text))

    def describe(self) -> str:
        """One line: ``churn@production (pinned to 3) + 10% churn@staging, shadow churn/7``."""
        text = self.model + (f" (pinned to {self.pinned})" if self.pinned else "")
        if self.canary is not None:
            text += f" + {self.canary.percent:g}% {self.canary.model}"
        if self.shadow is not None:
            text += f", shadow {self.shadow}"
        return text


def parse_canary(text: str, *, sticky: str = DEFAULT_STICKY) -> Canary:
    """``churn@staging=10%`` (or ``=10``) as a :class:`Canary`."""
    ref, sep, share = text.rpartition("=")
    number = share.strip().removesuffix("%")
    try:
        percent = float(number)
    except ValueError:
        percent = math.nan
    if not sep or not ref or not math.isfinite(percent):
        raise InvalidArgument(f"invalid canary {text!r}: use MODEL=PERCENT, e.g. "
                              "churn@staging=10%")
    return Canary(model=ref, percent=percent, sticky=sticky)
