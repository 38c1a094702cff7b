"""Clients: one interface over the embedded store or a remote ``loopml server``.

Names are imported on first access: ``loopml.client.base`` (settings and blob stores) can be
used without loading the metadata layer (SQLAlchemy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

__all__ = ["ActiveRun", "Client", "RemoteClient", "default_client", "new_client",
           "set_default_client"]

_EXPORTS = {"ActiveRun": "loopml.client.active_run", "Client": "loopml.client.embedded",
            "RemoteClient": "loopml.client.remote", "new_client": "loopml.client.fluent",
            "default_client": "loopml.client.fluent",
            "set_default_client": "loopml.client.fluent"}

if TYPE_CHECKING:
    from loopml.client.active_run import ActiveRun
    from loopml.client.embedded import Client
    from loopml.client.fluent import default_client, new_client, set_default_client
    from loopml.client.remote import RemoteClient


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())

