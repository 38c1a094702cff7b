"""Which loaded model version answers a request.

The router holds one :class:`Routes` value and replaces it whole (one assignment, so a
request sees the old routes or the new ones, never a mix); the versions it drops finish the
batches they hold. ``loopml serve NAME@ALIAS`` has a primary only, swapped when the alias
moves. A deployment (``loopml deploy serve``) adds a traffic policy:

* a **canary** takes ``percent`` of the requests. A request that carries the sticky key (a
  header, or a top-level field of the JSON body) is assigned by a stable hash of the key, so
  one key always meets the same version; requests without it are split by a counter, which
  gives the exact share over any run of requests;
* a **shadow** sees a copy of every request and answers nobody (:meth:`Router.shadows`);
* a **fallback** is the version the primary replaced while the new one is on trial under a
  rollback rule. :meth:`Routes.safe_for` names the version that answers when a canary or a
  primary on trial fails, and that a rollback routes all traffic to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loopml.serving.model import ServedVersion

__all__ = ["Router", "Routes", "sticky_bucket"]

_BUCKETS = 10_000


def sticky_bucket(key: bytes) -> int:
    """A stable bucket in [0, 10000) for a sticky key (the same on every server)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % _BUCKETS


@dataclass(frozen=True, slots=True)
class Routes:
    """The versions of one endpoint and how requests are split between them."""

    primary: ServedVersion
    canary: ServedVersion | None = None
    percent: float = 0.0
    #: ("header", lower-cased name) or ("field", name): the key that keeps a caller on one side
    sticky: tuple[str, str] | None = None
    shadow: ServedVersion | None = None
    fallback: ServedVersion | None = None
    #: the deployment revision these routes were built from (None: not from a deployment)
    revision: int | None = None

    @property
    def candidate(self) -> ServedVersion | None:
        """The version on trial: the canary, or a primary that replaced ``fallback``."""
        if self.canary is not None:
            return self.canary
        return self.primary if self.fallback is not None else None

    def safe_for(self, served: ServedVersion) -> ServedVersion | None:
        """The version that answers in place of ``served`` when it fails (None: none)."""
        if self.canary is not None and served is self.canary:
            return self.primary
        if self.fallback is not None and served is self.primary:
            return self.fallback
        return None

    def versions(self) -> list[ServedVersion]:
        found: list[ServedVersion] = []
        for version in (self.primary, self.canary, self.shadow, self.fallback):
            if version is not None and all(version is not v for v in found):
                found.append(version)
        return found


class Router:
    """Holds the routes of one endpoint and picks a version per request."""

    def __init__(self) -> None:
        self._routes: Routes | None = None
        self._counter = 0
        self._given = 0

    @property
    def routes(self) -> Routes | None:
        return self._routes

    @property
    def primary(self) -> ServedVersion | None:
        """The version that answers (None until the first one is loaded and warmed)."""
        return None if self._routes is None else self._routes.primary

    def versions(self) -> list[ServedVersion]:
        return [] if self._routes is None else self._routes.versions()

    def pick(self, scope: Mapping[str, Any], body: Any = None) -> ServedVersion | None:
        """The version that answers the request of ``scope`` (its ASGI scope) and ``body``
        (its parsed JSON)."""
        routes = self._routes
        if routes is None or routes.canary is None:
            return None if routes is None else routes.primary
        key = _sticky_key(routes.sticky, scope, body)
        threshold = round(routes.percent * _BUCKETS / 100)
        if key is not None:
            chosen = sticky_bucket(key) < threshold
        else:  # the exact share: the n-th request goes to the canary when n·p crosses a unit
            self._counter += 1
            share = self._counter * threshold // _BUCKETS
            chosen, self._given = share > self._given, share
        return routes.canary if chosen else routes.primary

    def shadows(self, scope: Mapping[str, Any]) -> list[ServedVersion]:
        """Versions that also get the request, answering nobody."""
        routes = self._routes
        return [] if routes is None or routes.shadow is None else [routes.shadow]

    def install(self, routes: Routes) -> Routes | None:
        """Make ``routes`` the ones that answer; the ones they replace."""
        previous, self._routes = self._routes, routes
        return previous

    def swap(self, version: ServedVersion) -> ServedVersion | None:
        """Make ``version`` the primary (nothing else); the primary it replaces."""
        previous = self.install(Routes(primary=version))
        return None if previous is None else previous.primary


def _sticky_key(sticky: tuple[str, str] | None, scope: Mapping[str, Any],
                body: Any) -> bytes | None:
    if sticky is None:
        return None
    kind, name = sticky
    if kind == "header":
        wanted = name.encode()
        for header, value in scope["headers"]:
            if header == wanted:
                return bytes(value)
        return None
    if isinstance(body, Mapping):
        value = body.get(name)
        if value is not None and not isinstance(value, dict | list):
            return str(value).encode()
    return None
