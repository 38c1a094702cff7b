"""What every ``loopml`` command group shares: the ``--json`` flag and the client."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["json_option", "open_client"]

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def open_client() -> Any:
    """The client for this command, built from the environment (imported when first needed):
    the remote client when ``LOOPML_TRACKING_URI`` names a loopml server."""
    from loopml.client.fluent import new_client

    return new_client()
