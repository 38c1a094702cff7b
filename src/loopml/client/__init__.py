"""Clients: one interface over the embedded store (and, later, a remote server).

Names are imported on first access: ``loopml.client.base`` (settings and blob stores) can be
used without loading the metadata layer (SQLAlchemy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

__all__ = ["ActiveRun", "Client", "default_client", "set_default_client"]

_EXPORTS = {"ActiveRun": "loopml.client.active_run", "Client": "loopml.client.embedded",
            "default_client": "loopml.client.fluent",
            "set_default_client": "loopml.client.fluent"}

if TYPE_CHECKING:
    from loopml.client.active_run import ActiveRun
    from loopml.client.embedded import Client
    from loopml.client.fluent import default_client, set_default_client


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())

