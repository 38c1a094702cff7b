"""The entry point of a serving bundle (copied into it as ``serve.py``).

::

    python serve.py --port 8080            # serves the package in ./model next to this file

``POST /invocations`` (or ``/predict``) with one of::

    {"dataframe_records": [{"age": 31, "plan": "pro"}, ...]}
    {"dataframe_split": {"columns": ["age", "plan"], "data": [[31, "pro"], ...]}}
    {"instances": [[0.1, 0.2], ...]}          # rows: arrays, or dicts
    {"inputs": [[0.1, 0.2], ...]}             # an array, or {"column": [values, ...]}

answers ``{"predictions": [...]}``; ``GET /health`` answers ``{"status": "ok", ...}``. A bad
request is a 4xx with ``{"error_code": ..., "message": ...}``. Served with starlette and uvicorn
when both are installed, otherwise with the standard library's threading HTTP server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from loopml.errors import InvalidArgument, LoopmlError
from loopml.models.formats import FORMATS, parse_payload, to_jsonable
from loopml.models.package import LoadedModel, load_model

__all__ = ["FORMATS", "PredictionService", "main", "parse_payload", "to_jsonable"]

PREDICT_PATHS = ("/invocations", "/predict")
HEALTH_PATHS = ("/health", "/ping")


class PredictionService:
    """A loaded model answering request bodies with (status, JSON bytes)."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def health(self) -> tuple[int, bytes]:
        return 200, orjson.dumps({"status": "ok", "flavor": self.model.flavor})

    def predict(self, raw: bytes) -> tuple[int, bytes]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self._error(InvalidArgument(f"the request body is not valid JSON: {exc}"))
        try:
            predictions = self.model.predict(parse_payload(body))
        except LoopmlError as exc:
            return self._error(exc)
        except Exception as exc:  # the model failed on this input
            return 500, orjson.dumps({"error_code": "INTERNAL_ERROR",
                                      "message": f"{type(exc).__name__}: {exc}"})
        return 200, orjson.dumps({"predictions": to_jsonable(predictions)},
                                 option=orjson.OPT_SERIALIZE_NUMPY)

    @staticmethod
    def _error(exc: LoopmlError) -> tuple[int, bytes]:
        return exc.http_status, orjson.dumps({"error_code": exc.error_code,
                                              "message": exc.message})


def _handler(service: PredictionService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path in HEALTH_PATHS:
                self._send(*service.health())
            else:
                self._send(404, orjson.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST",
                                              "message": f"no route {self.path}"}))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path in PREDICT_PATHS:
                self._send(*service.predict(raw))
            else:
                self._send(404, orjson.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST",
                                              "message": f"no route {self.path}; POST to "
                                              f"{' or '.join(PREDICT_PATHS)}"}))

        def log_message(self, format: str, *args: Any) -> None:
            return  # one line per request is noise in a container log

    return Handler


def _serve_stdlib(service: PredictionService, host: str, port: int) -> None:
    server = ThreadingHTTPServer((host, port), _handler(service))
    print(f"serving {service.model.path} on http://{host}:{port} (stdlib)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _serve_starlette(service: PredictionService, host: str, port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def predict(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        status, body = await run_in_threadpool(service.predict, await request.body())
        return Response(body, status_code=status, media_type="application/json")

    async def health(request: Request) -> Response:
        status, body = service.health()
        return Response(body, status_code=status, media_type="application/json")

    routes = [*(Route(p, predict, methods=["POST"]) for p in PREDICT_PATHS),
              *(Route(p, health, methods=["GET"]) for p in HEALTH_PATHS)]
    print(f"serving {service.model.path} on http://{host}:{port} (starlette)", flush=True)
    uvicorn.run(Starlette(routes=routes), host=host, port=port, log_level="warning")


def _starlette_available() -> bool:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the model package of this bundle.")
    parser.add_argument("--model-dir", type=Path, default=Path(__file__).resolve().parent / "model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backend", choices=("auto", "stdlib", "starlette"), default="auto")
    parser.add_argument("--trusted", action="store_true",
                        help="allow a package that runs code when loaded (pickle)")
    args = parser.parse_args(argv)
    try:
        service = PredictionService(load_model(args.model_dir, trusted=args.trusted))
    except LoopmlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    backend = args.backend
    if backend == "auto":
        backend = "starlette" if _starlette_available() else "stdlib"
    if backend == "starlette":
        _serve_starlette(service, args.host, args.port)
    else:
        _serve_stdlib(service, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
