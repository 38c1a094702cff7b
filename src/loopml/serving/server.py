"""Running a model server: uvicorn in this process, or ``workers`` processes on one socket."""

from __future__ import annotations

import copy
from typing import Any

from loopml.config import Settings
from loopml.serving.app import ServingApp
from loopml.serving.options import ServeOptions

__all__ = ["serve", "uvicorn_config"]


def _log_config() -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["loopml"] = {"handlers": ["default"], "level": "INFO",
                                   "propagate": False}
    return config


def uvicorn_config(options: ServeOptions, settings: Settings) -> Any:
    """The ``uvicorn.Config`` of a server of ``options`` (for ``uvicorn.Server`` or, with
    several workers, uvicorn's ``Multiprocess`` supervisor)."""
    import uvicorn

    return uvicorn.Config(
        ServingApp(options, settings), host=options.host, port=options.port,
        workers=options.workers, lifespan="on", ws="none", proxy_headers=False,
        access_log=False, log_config=_log_config(), timeout_graceful_shutdown=30)


def serve(options: ServeOptions, settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM; the shutdown answers what is in flight and writes the
    payload log before the process exits."""
    import uvicorn

    config = uvicorn_config(options, settings)
    if options.workers == 1:
        uvicorn.Server(config).run()
        return
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[config.bind_socket()]).run()
