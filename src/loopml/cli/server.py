"""``loopml server``: the REST API (``/api/v1``), the MLflow-compatible API and the web UI
over the configured stores, for a team."""

from __future__ import annotations

import functools
from typing import Any

import click

__all__ = ["server"]


def _log_config() -> dict[str, Any]:
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["loopml"] = {"handlers": ["default"], "level": "INFO",
                                   "propagate": False}
    return config


def uvicorn_config(options: Any, *, workers: int = 1, access_log: bool = False) -> Any:
    """The ``uvicorn.Config`` of a loopml server: an application *factory* (each worker
    process builds its own app, with its own connections, from the environment's settings)."""
    import uvicorn

    from loopml.server.app import create_app

    return uvicorn.Config(functools.partial(create_app, options=options), factory=True,
                          host=options.host, port=options.port, workers=workers,
                          lifespan="on", ws="none", proxy_headers=False, access_log=access_log,
                          log_config=_log_config(), timeout_graceful_shutdown=30)


def _check_stores() -> str:
    """Open the metadata store once before serving (migrating an embedded one), so a wrong
    database URL fails here in one line rather than in every worker."""
    from loopml.client import Client

    client = Client()
    try:
        client.meta  # noqa: B018 - opening checks the connection and the schema
        return client.settings.database_url
    finally:
        client.close()


@click.command("server")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (auth is on by default unless it is loopback).")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port (they keep no state of their own).")
@click.option("--auth/--no-auth", default=None,
              help="Require tokens (default: only when --host is not a loopback address).")
@click.option("--access-log", is_flag=True, help="Log every request.")
def server(host: str, port: int, workers: int, auth: bool | None, access_log: bool) -> None:
    """Serve the REST API (/api/v1, OpenAPI at /api/v1/openapi.json) over the configured
    stores (LOOPML_DATABASE_URL, LOOPML_BLOB_URL); clients use it with
    LOOPML_TRACKING_URI=http://HOST:PORT."""
    import uvicorn

    from loopml.server.app import ServerOptions
    from loopml.store.engine import redact_url

    options = ServerOptions(host=host, port=port, auth=auth)
    database = _check_stores()
    click.echo(f"loopml server on http://{host}:{port} ({workers} worker(s), database "
               f"{redact_url(database)}, auth {'on' if options.auth_required else 'off'})",
               err=True)
    config = uvicorn_config(options, workers=workers, access_log=access_log)
    if workers == 1:
        uvicorn.Server(config).run()
        return
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[config.bind_socket()]).run()
