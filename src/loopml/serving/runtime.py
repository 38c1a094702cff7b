"""What one server process holds, and the prediction path.

The :class:`Runtime` owns the router (which loaded version answers), a micro-batcher per
version and method, the predict thread, the metrics, the payload log and the alias watcher.
:meth:`Runtime.predict` answers ``POST /invocations``, ``/predict`` and ``/predict_proba``:
read the body (413 over the limit), parse it (400), check it against the signature (422),
join a micro-batch, answer with the version that predicted, then count and log it.

Nothing here is shared between worker processes: each loads the model, polls the registry
and writes its own payload segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from loopml.client.base import ClientBase
from loopml.config import Settings
from loopml.errors import InvalidArgument, LoopmlError
from loopml.serving.batching import MicroBatcher
from loopml.serving.http import (
    ClientGone,
    NotReady,
    Receive,
    Send,
    Unauthorized,
    authorized,
    encode_error,
    encode_json,
    parse_json,
    read_body,
    request_id,
    send_json,
)
from loopml.serving.metrics import Registry
from loopml.serving.model import METHODS, ServedVersion, load_version
from loopml.serving.options import ServeOptions
from loopml.serving.payload_log import PayloadLog, SegmentSink
from loopml.serving.router import Router
from loopml.serving.watcher import AliasWatcher

__all__ = ["Runtime"]

logger = logging.getLogger("loopml.serving")
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="loopml"')]


def _new_id() -> str:
    return uuid.uuid4().hex


class Runtime:
    """The state of one server process; start and stop it with the app's lifespan."""

    def __init__(self, options: ServeOptions, settings: Settings) -> None:
        self.options = options
        self.settings = settings
        self.ref = options.ref
        self.endpoint = options.endpoint
        self.router = Router()
        self.metrics = Registry()
        self.payload: PayloadLog | None = None
        self.token = options.token.encode() if options.token else None
        self.started_at = time.monotonic()
        self.ready_after_s: float | None = None
        self._stores = ClientBase(settings)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="loopml-predict")
        self._watcher = AliasWatcher(self.ref, lookup=self._lookup, load=self._load,
                                     on_ready=self._swap, on_failure=self._load_failed,
                                     interval_s=options.poll_interval_s)
        self._task: asyncio.Task[None] | None = None
        self._active = 0  # prediction requests being handled

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if self.options.log_sample > 0:
            sink = SegmentSink(blobs=self._stores.blobs, meta=lambda: self._stores.meta,
                               endpoint=self.endpoint, model=self.ref.name,
                               row_group_rows=self.options.log_row_group_rows)
            self.payload = PayloadLog(sink, sample=self.options.log_sample,
                                      max_queue_rows=self.options.log_queue_rows,
                                      segment_rows=self.options.log_segment_rows,
                                      flush_interval_s=self.options.log_flush_s)
        self.metrics.gauge("loopml_payload_log_rows", "Payload log rows by outcome.",
                           ("outcome",), self._payload_counts)
        self._task = asyncio.create_task(self._watcher.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.payload is not None:
            await asyncio.to_thread(self.payload.close)
        self._executor.shutdown(wait=True)
        self._stores.close_stores()

    @property
    def last_error(self) -> str | None:
        return self._watcher.last_error

    def _payload_counts(self) -> dict[tuple[str, ...], float]:
        log = self.payload
        if log is None:
            return {}
        return {("queued",): log.queued, ("written",): log.written,
                ("dropped",): log.dropped}

    # -- versions ---------------------------------------------------------------------
    def _lookup(self) -> tuple[int, str]:
        from loopml.deployments.lookup import current_version

        return current_version(self.settings, lambda: self._stores.meta, self.ref)

    def _load(self, version: int, tree: str) -> ServedVersion:
        from loopml.registry.materialize import materialize

        path = materialize(self._stores.blobs, tree, self.settings.home / "cache" / "models")
        return load_version(path, name=self.ref.name, version=version, tree=tree,
                            trusted=self.options.trusted,
                            allow_non_finite=self.options.allow_non_finite)

    def _swap(self, served: ServedVersion) -> None:
        for method in METHODS:
            key = (served.name, served.label, method)
            served.batchers[method] = MicroBatcher(
                partial(served.run, method), executor=self._executor,
                max_batch_size=self.options.max_batch_size,
                max_wait_s=self.options.max_wait_ms / 1000,
                batchable=served.validator.batchable, on_batch=partial(self._on_batch, key),
                alone=self._alone)
        previous = self.router.swap(served)
        self.metrics.swaps.inc((served.name, served.label))
        if self.ready_after_s is None:
            self.ready_after_s = time.monotonic() - self.started_at
        logger.info("serving %s/%s (%s, loaded and warmed in %.0f ms)%s", served.name,
                    served.version, served.flavor.name, served.warm_ms,
                    f", replacing version {previous.version}" if previous else "")

    def _alone(self) -> bool:
        return self._active <= 1

    def _load_failed(self, version: int, exc: BaseException) -> None:
        self.metrics.load_failures.inc((self.ref.name, str(version)))

    def _on_batch(self, key: tuple[str, str, str], requests: int, rows: int) -> None:
        self.metrics.batch_requests.observe(key, requests)
        self.metrics.batch_rows.observe(key, rows)

    def check_token(self, header: bytes | None) -> None:
        if self.token is not None and not authorized(header, self.token):
            raise Unauthorized("this server needs a bearer token: send the header "
                               "'Authorization: Bearer <token>' with the server's token")

    # -- the prediction path ----------------------------------------------------------
    async def predict(self, scope: Mapping[str, Any], receive: Receive, send: Send,
                      method: str) -> None:
        self._active += 1
        try:
            await self._predict(scope, receive, send, method)
        finally:
            self._active -= 1

    async def _predict(self, scope: Mapping[str, Any], receive: Receive, send: Send,
                       method: str) -> None:
        started = time.perf_counter()
        length = auth = given_id = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"authorization":
                auth = value
            elif name == b"x-request-id":
                given_id = value
        rid = request_id(given_id, _new_id)
        served = self.router.pick(scope)
        raw: bytes | None = None
        rows = 0
        error: LoopmlError | None = None
        try:
            self.check_token(auth)
            raw = await read_body(receive, length, self.options.max_body_bytes)
            body = parse_json(raw)
            if served is None:
                raise NotReady(f"{self.endpoint} is not loaded yet "
                               f"({self.last_error or 'loading'}); retry when GET /ready "
                               "answers 200")
            if method == "predict_proba" and not served.has_proba:
                raise InvalidArgument(f"{served.name}/{served.version} ({served.flavor.name}) "
                                      "has no predict_proba; POST to /predict instead")
            item = served.validator.check(body)
            rows = item.rows
            predictions = await served.batchers[method].submit(item, item.rows)
            answer = encode_json({"predictions": predictions, "model": served.name,
                                  "version": served.version, "request_id": rid})
            status = 200
        except LoopmlError as exc:
            error, status, answer = exc, exc.http_status, encode_error(exc, rid)
        except ClientGone:
            return
        except Exception as exc:  # a bug of ours or the model's: never the client's problem
            logger.exception("request %s failed", rid)
            error = LoopmlError(f"the server failed ({type(exc).__name__}); the server log "
                                f"has the details of request {rid}")
            status, answer = 500, encode_error(error, rid)
        await send_json(send, status, answer, rid, _CHALLENGE if status == 401 else None)
        elapsed = time.perf_counter() - started
        self._account(scope["path"], method, served, status, elapsed, rid, rows,
                      raw if status != 401 else None, answer, error)

    def _account(self, path: str, method: str, served: ServedVersion | None, status: int,
                 elapsed: float, rid: str, rows: int, raw: bytes | None, answer: bytes,
                 error: LoopmlError | None) -> None:
        metrics = self.metrics
        version = served.label if served is not None else ""
        key = (path, self.ref.name, version)
        metrics.requests.inc((*key, str(status)))
        if status >= 400:
            metrics.errors.inc((*key, str(status)))
        metrics.latency.observe(key, elapsed)
        log = self.payload
        if log is not None and status != 401 and log.sampled():
            log.add("requests", (rid, int(time.time() * 1000), self.endpoint, self.ref.name,
                                 served.version if served is not None else None, method,
                                 status, elapsed * 1000, rows, raw, answer,
                                 error.message if error is not None else None))

    def feedback(self, body: Any) -> str:
        """Queue the label of an answered request; its request id."""
        if not isinstance(body, MutableMapping) or set(body) != {"request_id", "label"}:
            raise InvalidArgument("feedback must be a JSON object {\"request_id\": \"...\", "
                                  "\"label\": ...} with exactly these two keys")
        rid = body["request_id"]
        if not isinstance(rid, str) or not 0 < len(rid) <= 128:
            raise InvalidArgument("request_id must be the request id of an answer (a string "
                                  "of 1-128 characters, the 'request_id' the server returned)")
        if self.payload is None:
            raise InvalidArgument("this server runs without a payload log (log_sample=0), so "
                                  "it cannot store feedback")
        label = encode_json(body["label"])
        if not self.payload.add("feedback", (rid, int(time.time() * 1000), self.endpoint,
                                             label)):
            raise NotReady("the payload log queue is full; retry the feedback later")
        return rid
