"""The versioned REST API: ``/api/v1/...`` over the domain, with an OpenAPI description at
``/api/v1/openapi.json``.

Each submodule of :data:`SUBMODULES` has ``routes() -> list[BaseRoute]`` with full paths
(``/api/v1/runs/{run_id}``); :func:`routes` joins them in that order (the order routes are
matched in). The JSON shapes shared with the remote client are in :mod:`.wire` (which needs
neither starlette nor SQLAlchemy, so importing this package costs nothing until
:func:`routes` runs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

__all__ = ["SUBMODULES", "routes"]

#: Modules of ``loopml.server.api`` whose ``routes()`` make up ``/api/v1``, in matching order.
SUBMODULES: tuple[str, ...] = (
    "tracking",
    "registry",
    "models",
    "blobs",
    "datasets",
    "deployments",
    "events",
    "pipelines",
    "monitoring",
    "openapi",
)


def routes() -> list[BaseRoute]:
    """Every route of ``/api/v1`` (the table named in :data:`loopml.server.app.ROUTE_TABLES`)."""
    found: list[BaseRoute] = []
    for name in SUBMODULES:
        found.extend(importlib.import_module(f"{__name__}.{name}").routes())
    return found
