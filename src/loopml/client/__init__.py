"""Clients: one interface over the embedded store (and, later, a remote server)."""

from loopml.client.active_run import ActiveRun
from loopml.client.embedded import Client
from loopml.client.fluent import default_client, set_default_client

__all__ = ["ActiveRun", "Client", "default_client", "set_default_client"]
