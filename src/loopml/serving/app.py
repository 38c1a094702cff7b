"""The ASGI application of a model server.

=========================  ======  ===================================================
route                      method  answers
=========================  ======  ===================================================
/invocations, /predict     POST    ``{"predictions", "model", "version", "request_id"}``
/predict_proba             POST    the same with class probabilities (where the model has them)
/feedback                  POST    202: ``{"request_id", "label"}`` stored for monitoring
/health                    GET     200 while the process runs
/ready                     GET     200 once a model version is loaded and warmed, else 503
/metrics                   GET     Prometheus text
/openapi.json, /docs       GET     the OpenAPI document, and a page that shows it
=========================  ======  ===================================================

With a token, every route but /health, /ready and the docs needs ``Authorization: Bearer``
(and the docs leave out the input example, rows of training data).
The prediction routes run on raw ASGI (see :mod:`loopml.serving.http`); the rest on
Starlette, whose lifespan starts and stops the :class:`~loopml.serving.runtime.Runtime`.
:class:`ServingApp` holds only its options until its first call, so it can be pickled
into worker processes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from loopml.config import Settings
from loopml.errors import LoopmlError
from loopml.serving.http import (
    ClientGone,
    Receive,
    Send,
    encode_error,
    parse_json,
    read_body,
    request_id,
)
from loopml.serving.options import ServeOptions

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from loopml.serving.runtime import Runtime

__all__ = ["PREDICT_ROUTES", "ServingApp"]

#: path → the model method it calls
PREDICT_ROUTES = {"/invocations": "predict", "/predict": "predict",
                  "/predict_proba": "predict_proba"}


class ServingApp:
    """The ASGI app serving ``options.model`` from the stores of ``settings``."""

    def __init__(self, options: ServeOptions, settings: Settings) -> None:
        self.options = options
        self.settings = settings
        self._runtime: Runtime | None = None
        self._starlette: Starlette | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options, "settings": self.settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["options"], state["settings"])  # type: ignore[misc]

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._build()
        assert self._runtime is not None
        return self._runtime

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if self._starlette is None:
            self._build()
        if scope["type"] == "http" and scope["method"] == "POST":
            method = PREDICT_ROUTES.get(scope["path"])
            if method is not None:
                await self.runtime.predict(scope, receive, send, method)
                return
        assert self._starlette is not None
        await self._starlette(scope, receive, send)

    def _build(self) -> None:
        from loopml.serving.runtime import Runtime

        self._runtime = Runtime(self.options, self.settings)
        self._starlette = _starlette_app(self._runtime)


def _starlette_app(runtime: Runtime) -> Starlette:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from loopml.serving.openapi import docs_page, openapi_document

    def error(exc: LoopmlError, request: Request) -> Response:
        given = request.headers.get("x-request-id")
        rid = request_id(given.encode() if given else None, lambda: uuid.uuid4().hex)
        headers = {"www-authenticate": 'Bearer realm="loopml"'} if exc.http_status == 401 else None
        return Response(encode_error(exc, rid), status_code=exc.http_status,
                        media_type="application/json", headers=headers)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        served = runtime.router.primary
        if served is None:
            return JSONResponse({"status": "loading", "model": runtime.endpoint,
                                 "error": runtime.last_error}, status_code=503)
        return JSONResponse({"status": "ready", "model": served.name,
                             "version": served.version, "flavor": served.flavor.name,
                             "warm_ms": round(served.warm_ms, 1),
                             "ready_after_s": runtime.ready_after_s})

    async def metrics(request: Request) -> Response:
        try:
            runtime.check_token(request.headers.get("authorization", "").encode())
        except LoopmlError as exc:
            return error(exc, request)
        return PlainTextResponse(runtime.metrics.render(),
                                 media_type="text/plain; version=0.0.4")

    async def feedback(request: Request) -> Response:
        try:
            runtime.check_token(request.headers.get("authorization", "").encode())
            length = request.headers.get("content-length")
            raw = await read_body(request.receive, length.encode() if length else None,
                                  runtime.options.max_body_bytes)
            rid = runtime.feedback(parse_json(raw))
        except LoopmlError as exc:
            return error(exc, request)
        except ClientGone:
            return Response(status_code=400)
        return JSONResponse({"request_id": rid, "status": "accepted"}, status_code=202)

    def document() -> dict[str, Any]:
        served = runtime.router.primary
        signature = served.manifest.signature if served is not None else None
        # the example holds rows of the training data: not shown when the server has a token
        example = served.example if served is not None and runtime.token is None else None
        return openapi_document(model=runtime.endpoint,
                                signature=signature.to_dict() if signature else None,
                                example=example,
                                auth=runtime.token is not None,
                                proba=served is None or served.has_proba)

    async def openapi(request: Request) -> Response:
        return Response(orjson.dumps(document()), media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(docs_page(document()))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        message = ("no such route; see /docs" if status == 404
                   else f"{request.method} is not allowed on {request.url.path}")
        return JSONResponse({"error_code": "RESOURCE_DOES_NOT_EXIST" if status == 404
                             else "INVALID_PARAMETER_VALUE", "message": message},
                            status_code=status)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    async def post_only(request: Request) -> Response:  # POSTs never get here
        return JSONResponse({}, status_code=405)

    routes = [Route(path, post_only, methods=["POST"]) for path in PREDICT_ROUTES]
    routes += [Route("/health", health), Route("/ping", health), Route("/ready", ready),
               Route("/metrics", metrics), Route("/feedback", feedback, methods=["POST"]),
               Route("/openapi.json", openapi), Route("/docs", docs)]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: not_found})
