"""The remote client's HTTP session: one keep-alive connection pool to a ``loopml server``.

::

    session = HttpSession("http://host:5000", token="…")
    run = session.request("GET", "/api/v1/runs/abc")             # decoded JSON
    session.request("POST", "/api/v1/runs/abc/batch", json={...})
    session.upload("PUT", "/api/v1/runs/abc/artifacts/model.pkl", open(path, "rb"))
    session.download("/api/v1/runs/abc/artifacts/model.pkl", Path("out/model.pkl"))
    with session.stream("GET", "/api/v1/blobs/…") as chunks:   # iterator of bytes
        ...

What every call does:

- **JSON** bodies are encoded and decoded with orjson (``application/json``); a response
  without a body gives None.
- **Auth**: a non-empty ``token`` (setting ``tracking_token``, env ``LOOPML_TRACKING_TOKEN``)
  is sent as ``Authorization: Bearer <token>`` on every request.
- **Errors**: an answer with status >= 400 carries ``{"error_code", "message"}``; the call
  raises the same :class:`~loopml.errors.LoopmlError` class the server raised (``NotFound``,
  ``InvalidArgument``, ``Conflict``, …) with the server's message. A server that cannot be
  reached raises :class:`~loopml.errors.BackendUnavailable` naming the URL.
- **Retries**: a connection that cannot be opened is retried for every method (nothing was
  sent). Idempotent calls (GET, HEAD, PUT, DELETE, OPTIONS, or ``idempotent=True``) are also
  retried after a broken connection or a 502/503/504, with exponential back-off.
- **Streaming**: :meth:`upload` sends a file object or an iterator of byte chunks without
  reading it whole (a chunked body when the size is unknown); :meth:`download` writes the
  body to a temporary file beside ``dest`` and renames it into place, so an interrupted
  download never leaves a partial file; :meth:`stream` yields the body's chunks.

The session is thread-safe (urllib3's pool): the metric buffer's thread and the caller's
thread share it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode, urlsplit

import orjson
import urllib3
from blake3 import blake3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from loopml.errors import BackendUnavailable, CorruptData, InvalidArgument, LoopmlError

__all__ = ["CHUNK_SIZE", "HttpSession", "quote_path"]

#: Bytes read or written at a time when streaming a body.
CHUNK_SIZE = 1024 * 1024

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_STATUSES = frozenset({502, 503, 504})


def quote_path(path: str) -> str:
    """``path`` quoted for use inside a URL path (``/`` kept, everything else escaped)."""
    return quote(path, safe="/")


def _error_class(code: str) -> type[LoopmlError]:
    try:  # the server's own table (needs starlette, which a client machine may lack)
        from loopml.server.errors import error_class
    except ImportError:
        from loopml.errors import error_class_for_code as error_class
    return error_class(code)


def _raise_for(status: int, body: bytes, url: str) -> None:
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    message = data.get("message") or (
        f"the server answered {status} to {url} with no loopml error body"
        + (f": {body[:200].decode(errors='replace')!r}" if body else ""))
    cls = _error_class(str(data.get("error_code", "")))
    error = cls.__new__(cls)  # subclasses with extra __init__ arguments are rebuilt too
    LoopmlError.__init__(error, str(message))
    if cls is LoopmlError or not data:
        error.http_status = status
    raise error


class HttpSession:
    """A keep-alive session to ``base_url`` (``http(s)://host:port[/prefix]``)."""

    def __init__(self, base_url: str, *, token: str = "", timeout: float = 60.0,
                 retries: int = 3, pool_size: int = 16,
                 headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgument(f"tracking URI {base_url!r} is not an http(s) URL; set "
                                  "LOOPML_TRACKING_URI to e.g. http://127.0.0.1:5000")
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json", "User-Agent": "loopml-client",
                         **(headers or {})}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        # Connect errors are retried for every call (nothing was sent); broken connections
        # and 502/503/504 only for idempotent ones (allowed_methods=None: any verb).
        self._retry_again = Retry(total=retries, connect=retries, read=retries, other=0,
                                  redirect=0, status=retries, status_forcelist=_RETRY_STATUSES,
                                  allowed_methods=None, backoff_factor=0.1, backoff_max=2.0,
                                  raise_on_status=False)
        self._retry_connect = Retry(total=retries, connect=retries, read=0, other=0,
                                    redirect=0, status=0, backoff_factor=0.1, backoff_max=2.0,
                                    raise_on_status=False)
        self._timeout = urllib3.Timeout(connect=min(10.0, timeout), read=timeout)
        self._pool = urllib3.PoolManager(maxsize=pool_size, block=False,
                                         timeout=self._timeout, retries=False)

    def close(self) -> None:
        self._pool.clear()

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The absolute URL of ``path`` (already quoted) with query ``params`` (None dropped)."""
        url = self.base_url + path
        if params:
            query = {k: _param(v) for k, v in params.items() if v is not None}
            if query:
                url += "?" + urlencode(query, doseq=True)
        return url

    def _retry(self, method: str, idempotent: bool | None) -> Retry:
        again = method in _IDEMPOTENT if idempotent is None else idempotent
        return self._retry_again if again else self._retry_connect

    def _send(self, method: str, url: str, *, body: Any = None, headers: Mapping[str, str],
              idempotent: bool | None, preload: bool = True,
              chunked: bool = False) -> urllib3.BaseHTTPResponse:
        try:
            return self._pool.request(method, url, body=body, headers=headers,
                                      retries=self._retry(method, idempotent),
                                      preload_content=preload, chunked=chunked,
                                      timeout=self._timeout)
        except Urllib3Error as exc:
            raise BackendUnavailable(
                f"cannot reach the loopml server at {self.base_url} ({type(exc).__name__}: "
                f"{_reason(exc)}); check that 'loopml server' runs there, or unset "
                "LOOPML_TRACKING_URI to use the local store") from None

    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None,
                idempotent: bool | None = None) -> Any:
        """Send ``json`` (if not None) to ``path``; the decoded JSON answer (None if empty)."""
        headers = dict(self._headers)
        body = None
        if json is not None:
            body = orjson.dumps(json, option=orjson.OPT_SERIALIZE_NUMPY)
            headers["Content-Type"] = "application/json"
        url = self.url(path, params)
        response = self._send(method, url, body=body, headers=headers, idempotent=idempotent)
        data = response.data
        if response.status >= 400:
            _raise_for(response.status, data, url)
        return orjson.loads(data) if data else None

    def upload(self, method: str, path: str, source: IO[bytes] | Iterable[bytes] | Path, *,
               params: Mapping[str, Any] | None = None, size: int | None = None,
               content_type: str = "application/octet-stream",
               headers: Mapping[str, str] | None = None) -> Any:
        """Stream ``source`` as the body of ``method path``; the decoded JSON answer.

        A :class:`~pathlib.Path` is opened and sent with its size; a file object is sent as
        it is read (with ``size`` as Content-Length if given, else chunked); an iterator of
        bytes is sent chunked. Uploads are retried only after a failed connect."""
        sent = {**self._headers, "Content-Type": content_type, **(headers or {})}
        url = self.url(path, params)
        with contextlib.ExitStack() as stack:
            body: Any = source
            if isinstance(source, Path):
                body = stack.enter_context(source.open("rb"))
                size = source.stat().st_size
            elif hasattr(source, "read"):
                body = _chunks(source)  # type: ignore[arg-type]
            if size is not None:
                sent["Content-Length"] = str(size)
            response = self._send(method, url, body=body, headers=sent, idempotent=False,
                                  chunked=size is None)
        data = response.data
        if response.status >= 400:
            _raise_for(response.status, data, url)
        return orjson.loads(data) if data else None

    @contextlib.contextmanager
    def stream(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
               json: Any = None,
               headers: Mapping[str, str] | None = None) -> Iterator[Iterator[bytes]]:
        """``with session.stream("GET", path) as chunks:``: the body as an iterator of bytes
        (raises the server's error class before yielding when the status is >= 400).
        ``headers`` are sent too (e.g. ``Range``)."""
        sent = {**self._headers, **(headers or {})}
        body = None
        if json is not None:
            body = orjson.dumps(json)
            sent["Content-Type"] = "application/json"
        url = self.url(path, params)
        response = self._send(method, url, body=body, headers=sent, idempotent=None,
                              preload=False)
        try:
            if response.status >= 400:
                _raise_for(response.status, response.read(), url)
            yield _response_chunks(response, url)
        finally:
            response.release_conn()

    def download(self, path: str, dest: Path, *, params: Mapping[str, Any] | None = None,
                 digest: str | None = None) -> int:
        """Write the body of ``GET path`` to ``dest`` (atomically); the number of bytes.

        With ``digest`` (BLAKE3 hex), the bytes are checked against it before ``dest``
        appears (:class:`~loopml.errors.CorruptData` if they differ)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        size = 0
        hasher = blake3() if digest is not None else None
        try:
            with os.fdopen(fd, "wb") as out, self.stream("GET", path, params=params) as chunks:
                for chunk in chunks:
                    out.write(chunk)
                    size += len(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
            if hasher is not None and hasher.hexdigest() != digest:
                raise CorruptData(f"the download of {self.url(path)} does not hash to "
                                  f"{digest}; try again (the server's copy may be damaged)")
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return size


def _response_chunks(response: urllib3.BaseHTTPResponse, url: str) -> Iterator[bytes]:
    try:
        yield from response.stream(CHUNK_SIZE)
    except Urllib3Error as exc:
        raise BackendUnavailable(f"the download of {url} broke off ({_reason(exc)}); "
                                 "try again") from None


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    while chunk := source.read(CHUNK_SIZE):
        yield chunk


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value)


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc)
