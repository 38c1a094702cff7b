"""Which loaded model version answers a request.

Today one version answers everything: the one the served alias points to, switched
atomically when the alias moves (the old version finishes the batches it holds). A traffic
policy (a canary share, sticky assignment by a request key, a shadow that sees a copy of
each request) plugs in by overriding :meth:`Router.pick` and :meth:`Router.shadows`; every
response names the version :meth:`pick` chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopml.serving.model import ServedVersion

__all__ = ["Router"]


class Router:
    """Holds the loaded versions of one endpoint and picks one per request."""

    def __init__(self) -> None:
        self._primary: ServedVersion | None = None

    @property
    def primary(self) -> ServedVersion | None:
        """The version that answers (None until the first one is loaded and warmed)."""
        return self._primary

    def versions(self) -> list[ServedVersion]:
        return [] if self._primary is None else [self._primary]

    def pick(self, scope: Mapping[str, Any]) -> ServedVersion | None:
        """The version that answers the request of ``scope`` (its ASGI scope)."""
        return self._primary

    def shadows(self, scope: Mapping[str, Any]) -> list[ServedVersion]:
        """Versions that also get the request, answering nobody (none yet)."""
        return []

    def swap(self, version: ServedVersion) -> ServedVersion | None:
        """Make ``version`` the one that answers; the one it replaces."""
        previous, self._primary = self._primary, version
        return previous
