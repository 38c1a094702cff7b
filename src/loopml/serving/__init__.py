"""The model server: ``loopml serve NAME@ALIAS`` (see :mod:`loopml.serving.app` for routes).

::

    from loopml.serving import ServeOptions, ServingApp, serve

    serve(ServeOptions(model="churn@production", port=8000), loopml.load_settings())

Request bodies are checked against the model's signature without pandas
(:mod:`~loopml.serving.validation`), concurrent requests are micro-batched
(:mod:`~loopml.serving.batching`), the served alias is followed and swapped without a failed
request (:mod:`~loopml.serving.watcher`, :mod:`~loopml.serving.router`), and what was asked and
answered goes to the payload log (:mod:`~loopml.serving.payload_log`). Names are imported on
first access: starlette and uvicorn load only when a server is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

__all__ = ["ServeOptions", "ServingApp", "serve"]

_EXPORTS = {"ServeOptions": "loopml.serving.options", "ServingApp": "loopml.serving.app",
            "serve": "loopml.serving.server"}

if TYPE_CHECKING:
    from loopml.serving.app import ServingApp
    from loopml.serving.options import ServeOptions
    from loopml.serving.server import serve

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
