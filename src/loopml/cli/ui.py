"""``loopml ui``: the server's application with its web UI, for one person on this machine."""

from __future__ import annotations

import click

__all__ = ["ui"]


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (auth is on unless it is a loopback address).")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
def ui(host: str, port: int) -> None:
    """Serve the web UI (and the REST API) over the configured stores.

    On 127.0.0.1 no sign-in is needed; on any other address every page needs a token
    (create one with 'loopml tokens create NAME --role viewer').
    """
    from loopml.errors import MissingDependency

    try:
        import jinja2  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise MissingDependency("loopml ui", package=exc.name or "jinja2", extra="ui") \
            from None
    from loopml.cli.server import uvicorn_config
    from loopml.client import Client
    from loopml.server.app import ServerOptions

    client = Client()
    try:  # a wrong database URL fails here, in one line, not at the first page
        client.meta  # noqa: B018
    finally:
        client.close()
    options = ServerOptions(host=host, port=port)
    shown = f"[{host}]" if ":" in host else host
    auth = "on: sign in with a token" if options.auth_required else "off: loopback only"
    click.echo(f"loopml UI on http://{shown}:{port}/ui/ (auth {auth}); Ctrl+C stops it",
               err=True)
    uvicorn.Server(uvicorn_config(options)).run()
