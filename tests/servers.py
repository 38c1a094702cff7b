"""Real servers for tests: an ASGI app under uvicorn on a free loopback port, in a daemon thread
of the test process, and the small callers the tests use to talk to it.

``ServerThread.for_app(app)`` (or ``ServerThread(config)`` for a ready ``uvicorn.Config``, as
``loopml.serving.server.uvicorn_config`` builds) starts the server and waits until uvicorn says
it has started; ``stop()`` (or leaving the ``with`` block) asks it to exit and joins the thread.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """uvicorn serving ``config`` in a daemon thread; started (and, with ``wait``, up) on
    construction."""

    def __init__(self, config: Any, *, wait: bool = True, startup_s: float = 30.0,
                 join_s: float = 30.0, name: str | None = None) -> None:
        import uvicorn

        self.port = int(config.port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.join_s = join_s
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)
        self.thread.start()
        if wait:
            deadline = time.monotonic() + startup_s
            while not self.server.started:
                assert self.thread.is_alive() and time.monotonic() < deadline, \
                    "the server did not start"
                time.sleep(0.01)

    @classmethod
    def for_app(cls, app: Any, *, port: int | None = None, log_level: str = "warning",
                startup_s: float = 30.0, **options: Any) -> ServerThread:
        """``app`` on 127.0.0.1 (``port``, or a free one); ``options`` go to ``uvicorn.Config``."""
        import uvicorn

        options.setdefault("ws", "none")
        config = uvicorn.Config(app, host="127.0.0.1", port=port or free_port(),
                                log_level=log_level, **options)
        return cls(config, startup_s=startup_s)

    def failed(self) -> str | None:
        """Why the server is gone, or None while its thread runs."""
        return None if self.thread.is_alive() else "the server thread ended"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(self.join_s)

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


@dataclass
class Answer:
    """One response read whole by :func:`request`."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def request(port: int, method: str, path: str, *, body: Any = None,
            headers: dict[str, str] | None = None, timeout: float = 30,
            encode_chunked: bool = False) -> Answer:
    """``method path`` on 127.0.0.1:``port`` over a fresh :mod:`http.client` connection, which
    sends the path exactly as written (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {},
                     encode_chunked=encode_chunked)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def call_json(pool: Any, method: str, url: str, body: Any = None, *, raw: bytes | None = None,
              headers: dict[str, str] | None = None, **options: Any) -> tuple[int, Any, Any]:
    """(status, decoded JSON or the raw bytes when not JSON, headers) of a request through a
    ``urllib3.PoolManager``; ``body`` is sent as JSON, ``raw`` as it is."""
    data = raw if raw is not None else (None if body is None else orjson.dumps(body))
    answer = pool.request(method, url, body=data, headers=headers or {}, **options)
    try:
        decoded = orjson.loads(answer.data) if answer.data else None
    except orjson.JSONDecodeError:
        decoded = answer.data
    return answer.status, decoded, answer.headers


class Counting:
    """ASGI wrapper that records each request (method, path) and the body bytes received."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []
        self.body_bytes = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.requests.append((scope["method"], scope["path"]))

        async def counted() -> Any:
            message = await receive()
            self.body_bytes += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)

    def reset(self) -> None:
        self.requests, self.body_bytes = [], 0

    def uploads(self) -> list[str]:
        return [path for method, path in self.requests
                if method == "PUT" and path.startswith(("/api/v1/blobs/", "/api/v1/uploads/"))]

    def downloads(self) -> list[str]:
        return [path for method, path in self.requests
                if method == "GET" and path.startswith("/api/v1/blobs/")]
