"""What one server process holds, and the prediction path.

The :class:`Runtime` owns the router (which loaded version answers), a micro-batcher per
version and method, the predict thread, the metrics, the payload log and the watcher (of a
model alias, or of a deployment: see :mod:`~loopml.serving.deployment_watcher`).
:meth:`Runtime.predict` answers ``POST /invocations``, ``/predict`` and ``/predict_proba``:
read the body (413 over the limit), parse it (400), pick a version (primary or canary),
check the body against its signature (422), join a micro-batch, answer with the version
that predicted, then count and log it, and mirror it to the shadow if there is one.

A canary or a primary on trial (see :class:`~loopml.serving.router.Routes`) that fails on
a valid request (a 5xx) does not fail the caller: the safe version answers instead, and the
failure counts toward the deployment's rollback rule, which a task evaluates every
``rollback_check_s``; on a breach all traffic goes to the safe version at once and an
``auto-rollback`` event pins the deployment there (see :mod:`~loopml.serving.guard`).

Nothing here is shared between worker processes: each loads the model, polls the registry
and writes its own payload segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from loopml.client.base import ClientBase
from loopml.config import Settings
from loopml.deployments.payload import RequestMeta, SegmentSink, warm_writing
from loopml.errors import InvalidArgument, LoopmlError, ModelFailed, NotReady, Unauthorized
from loopml.registry.refs import ModelRef
from loopml.serving.batching import MicroBatcher
from loopml.serving.guard import RollbackGuard
from loopml.serving.http import (
    ClientGone,
    Receive,
    Send,
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
from loopml.serving.payload_log import PayloadLog
from loopml.serving.router import Router, Routes
from loopml.serving.shadow import ShadowAnswer, ShadowMirror
from loopml.serving.validation import Checked
from loopml.serving.watcher import AliasWatcher

if TYPE_CHECKING:
    from loopml.deployments.records import Deployment
    from loopml.serving.deployment_watcher import DeploymentWatcher

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
        self.deployment = options.deployment
        self.endpoint = options.endpoint
        #: the model name (a deployment's primary model, read when the server starts)
        self.model_name = "" if self.deployment is not None else options.ref.name
        self.router = Router()
        self.metrics = Registry()
        self.payload: PayloadLog | None = None
        self.token = options.token.encode() if options.token else None
        self.started_at = time.monotonic()
        self.ready_after_s: float | None = None
        self._stores = ClientBase(settings)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="loopml-predict")
        # a shadow's batches run apart: a slow shadow never holds a thread the callers need
        self._shadow_executor = ThreadPoolExecutor(max_workers=1,
                                                   thread_name_prefix="loopml-shadow")
        self.shadow = ShadowMirror(on_result=self._shadow_answered,
                                   executor=self._shadow_executor,
                                   max_pending=options.shadow_max_pending,
                                   on_batch=self._on_shadow_batch)
        self._guard: RollbackGuard | None = None
        self._guarded: ServedVersion | None = None  # the version on trial the guard watches
        self._watcher: AliasWatcher | DeploymentWatcher
        if self.deployment is None:
            self._watcher = AliasWatcher(options.ref, lookup=self._lookup,
                                         load=partial(self._load, options.ref.name),
                                         on_ready=self._swap,
                                         on_failure=partial(self._load_failed,
                                                            options.ref.name),
                                         interval_s=options.poll_interval_s)
        else:
            from loopml.serving.deployment_watcher import DeploymentWatcher

            self._watcher = DeploymentWatcher(
                self.deployment, read=self._read_deployment, resolve=self._resolve,
                load=self._load, current=lambda: self.router.routes, install=self._install,
                on_failure=self._load_failed, interval_s=options.poll_interval_s)
        self._tasks: list[asyncio.Task[None]] = []
        self._active = 0  # prediction requests being handled
        self._answer_meta: dict[RequestMeta, RequestMeta] = {}

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if self.deployment is not None:  # NotFound here stops the server from starting
            deployment = await asyncio.to_thread(self._read_deployment)
            self.model_name = deployment.policy.primary.name
        if self.options.log_sample > 0:
            sink = SegmentSink(blobs=self._stores.blobs, meta=lambda: self._stores.meta,
                               endpoint=self.endpoint, model=self.model_name,
                               row_group_rows=self.options.log_row_group_rows)
            warm_writing()  # before gc.freeze (see _started): later imports stay in sight
            self.payload = PayloadLog(sink, sample=self.options.log_sample,
                                      max_queue_rows=self.options.log_queue_rows,
                                      segment_rows=self.options.log_segment_rows,
                                      flush_interval_s=self.options.log_flush_s)
        self.metrics.gauge("loopml_payload_log_rows", "Payload log rows by outcome.",
                           ("outcome",), self._payload_counts)
        self.metrics.gauge("loopml_shadow_requests_total",
                           "Requests mirrored to a shadow version, by outcome (ok, error, "
                           "dropped).", ("model", "version", "outcome"),
                           lambda: self.shadow.counts, kind="counter")
        self._tasks = [asyncio.create_task(self._watcher.run())]
        if self.deployment is not None:
            self._tasks.append(asyncio.create_task(self._guard_loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.shadow.close()
        if self.payload is not None:
            await asyncio.to_thread(self.payload.close)
        self._executor.shutdown(wait=True)
        self._shadow_executor.shutdown(wait=False, cancel_futures=True)
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
        return self._resolve(self.options.ref)

    def _resolve(self, ref: ModelRef) -> tuple[int, str]:
        from loopml.deployments.lookup import current_version

        return current_version(self.settings, lambda: self._stores.meta, ref)

    def _read_deployment(self) -> Deployment:
        from loopml.deployments.records import get_deployment

        assert self.deployment is not None
        with self._stores.meta.read() as conn:
            return get_deployment(conn, self.deployment)

    def _load(self, name: str, version: int, tree: str) -> ServedVersion:
        from loopml.registry.materialize import materialize

        path = materialize(self._stores.blobs, tree, self.settings.home / "cache" / "models")
        return load_version(path, name=name, version=version, tree=tree,
                            trusted=self.options.trusted,
                            allow_non_finite=self.options.allow_non_finite)

    def _prepare(self, served: ServedVersion) -> None:
        """Give ``served`` its micro-batchers (once). A shadow needs none: the
        :class:`ShadowMirror` batches for it on a thread of its own."""
        if served.batchers:
            return
        for method in METHODS:
            key = (served.name, served.label, method)
            served.batchers[method] = MicroBatcher(
                partial(served.run, method), executor=self._executor,
                max_batch_size=self.options.max_batch_size,
                max_wait_s=self.options.max_wait_ms / 1000,
                batchable=served.validator.batchable, on_batch=partial(self._on_batch, key),
                alone=self._alone)

    def _swap(self, served: ServedVersion) -> None:
        self._prepare(served)
        previous = self.router.swap(served)
        self._started(served, previous)

    def _started(self, served: ServedVersion, previous: ServedVersion | None) -> None:
        self.metrics.swaps.inc((served.name, served.label))
        if self.ready_after_s is None:
            self.ready_after_s = time.monotonic() - self.started_at
            if self.options.gc_freeze:
                # what is alive now (the libraries, the model) leaves the collector's sight:
                # a full collection then scans what requests create, instead of stalling
                # every few seconds under load for ~150 ms over scikit-learn's objects
                gc.freeze()
        logger.info("serving %s/%s (%s, loaded and warmed in %.0f ms)%s", served.name,
                    served.version, served.flavor.name, served.warm_ms,
                    f", replacing version {previous.version}" if previous else "")

    def _install(self, routes: Routes) -> None:
        """Make ``routes`` (of the deployment) the ones that answer."""
        for served in (routes.primary, routes.canary, routes.fallback):
            if served is not None:
                self._prepare(served)
        previous = self.router.install(routes)
        if previous is None or previous.primary is not routes.primary:
            self._started(routes.primary, previous.primary if previous else None)
        candidate = routes.candidate
        if candidate is not self._guarded:
            watcher = self._watcher
            deployment = getattr(watcher, "deployment", None)
            rule = deployment.policy.rollback if deployment is not None else None
            self._guarded = candidate
            self._guard = RollbackGuard(rule) if candidate is not None and rule else None

    def _alone(self) -> bool:
        return self._active <= 1

    def _load_failed(self, name: str, version: int, exc: BaseException) -> None:
        self.metrics.load_failures.inc((name, str(version)))

    # -- automatic rollback -----------------------------------------------------------
    async def _guard_loop(self) -> None:
        alerts_checked = 0.0
        while True:
            await asyncio.sleep(self.options.rollback_check_s)
            guard, routes = self._guard, self.router.routes
            if guard is None or routes is None or routes.candidate is not self._guarded:
                continue
            reason = guard.breach()
            if reason is None and guard.rule.on_alerts and \
                    time.monotonic() - alerts_checked >= self.options.alert_check_s:
                alerts_checked = time.monotonic()
                reason = await asyncio.to_thread(self._alert_breach, guard, routes)
            if reason is not None:
                await self._auto_rollback(routes, reason)

    def _alert_breach(self, guard: RollbackGuard, routes: Routes) -> str | None:
        """Why a monitoring alert raised since the trial began rolls the candidate back."""
        from loopml.monitoring.records import list_alerts

        candidate = routes.candidate
        assert candidate is not None
        with self._stores.meta.read() as conn:
            alerts = list_alerts(conn, endpoint=self.endpoint, after=guard.alert_cursor,
                                 limit=1000)
        if guard.alert_cursor is None:  # the trial's first look: only later alerts count
            guard.alert_cursor = alerts[-1].id if alerts else 0
            return None
        if alerts:
            guard.alert_cursor = alerts[-1].id
        for alert in alerts:
            if alert.kind in guard.rule.on_alerts and alert.version in (None,
                                                                        candidate.version):
                return f"monitoring alert #{alert.id} ({alert.kind}): {alert.message}"
        return None

    async def _auto_rollback(self, routes: Routes, reason: str) -> None:
        candidate = routes.candidate
        assert candidate is not None
        safe = routes.safe_for(candidate)
        assert safe is not None
        self._install(Routes(primary=safe, shadow=routes.shadow, revision=routes.revision))
        self.metrics.rollbacks.inc((candidate.name, candidate.label))
        why = f"{candidate.name}/{candidate.version}: {reason}"
        logger.warning("automatic rollback of %s to %s/%s: %s", self.endpoint, safe.name,
                       safe.version, why)
        try:
            await asyncio.to_thread(self._record_rollback, safe.version, why, routes.revision)
        except Exception:  # the switch is done; the record is retried by no one: say so
            logger.exception("recording the automatic rollback of %s failed", self.endpoint)

    def _record_rollback(self, version: int, reason: str, revision: int | None) -> None:
        from loopml.deployments.records import apply_rollback

        assert self.deployment is not None
        actor = f"loopml-serve@{socket.gethostname()}:{os.getpid()}"
        with self._stores.meta.write() as conn:
            apply_rollback(conn, self.deployment, version, kind="auto-rollback", actor=actor,
                           reason=reason, revision=revision)

    def _on_batch(self, key: tuple[str, str, str], requests: int, rows: int) -> None:
        self.metrics.batch_requests.observe(key, requests)
        self.metrics.batch_rows.observe(key, rows)

    def _on_shadow_batch(self, served: ServedVersion, method: str, requests: int,
                         rows: int) -> None:
        self._on_batch((served.name, served.label, method), requests, rows)

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
        routes = self.router.routes
        served = None if routes is None else routes.primary  # names the early errors
        raw: bytes | None = None
        body: Any = None
        checked: Checked | None = None
        rows = 0
        error: LoopmlError | None = None
        try:
            self.check_token(auth)
            raw = await read_body(receive, length, self.options.max_body_bytes)
            body = parse_json(raw)
            served = self.router.pick(scope, body)
            if served is None:
                raise NotReady(f"{self.endpoint} is not loaded yet "
                               f"({self.last_error or 'loading'}); retry when GET /ready "
                               "answers 200")
            served, checked, predictions = await self._answer(routes, served, body, method)
            rows = checked.rows
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
        role = "canary" if routes is not None and served is routes.canary else "primary"
        self._account(scope["path"], method, served, status, elapsed, rid, rows,
                      raw if status != 401 else None, answer, error, role)
        if status == 200 and routes is not None and routes.shadow is not None:
            shadow = routes.shadow
            assert served is not None and checked is not None
            self.shadow.submit(shadow, body, rid, method,
                               checked if ShadowMirror.reusable(served, shadow) else None)

    async def _predict_with(self, served: ServedVersion, body: Any,
                            method: str) -> tuple[Checked, Any]:
        if method == "predict_proba" and not served.has_proba:
            raise InvalidArgument(f"{served.name}/{served.version} ({served.flavor.name}) "
                                  "has no predict_proba; POST to /predict instead")
        item = served.validator.check(body)
        return item, await served.batchers[method].submit(item, item.rows)

    async def _answer(self, routes: Routes | None, served: ServedVersion, body: Any,
                      method: str) -> tuple[ServedVersion, Checked, Any]:
        """(the version that answered, its checked input, predictions): a canary or a
        version on trial that fails (5xx, or its model raising on an input that passed
        validation) hands the request to the safe version, and the guard counts it."""
        safe = None if routes is None else routes.safe_for(served)
        if safe is None:
            return (served, *await self._predict_with(served, body, method))
        guard = self._guard if served is self._guarded else None
        started = time.perf_counter()
        try:
            checked, predictions = await self._predict_with(served, body, method)
        except Exception as exc:
            if isinstance(exc, LoopmlError) and exc.http_status < 500 \
                    and not isinstance(exc, ModelFailed):
                raise  # the caller's input: the safe version would refuse it too
            if guard is not None:
                guard.observe(True, time.perf_counter() - started)
            self.metrics.fallbacks.inc((served.name, served.label))
            return (safe, *await self._predict_with(safe, body, method))
        if guard is not None:
            guard.observe(False, time.perf_counter() - started)
        return served, checked, predictions

    def _account(self, path: str, method: str, served: ServedVersion | None, status: int,
                 elapsed: float, rid: str, rows: int, raw: bytes | None, answer: bytes,
                 error: LoopmlError | None, role: str) -> None:
        metrics = self.metrics
        version = served.label if served is not None else ""
        key = (path, served.name if served is not None else self.model_name, version)
        metrics.requests.inc((*key, str(status)))
        if status >= 400:
            metrics.errors.inc((*key, str(status)))
        metrics.latency.observe(key, elapsed)
        log = self.payload
        if log is not None and status != 401 and log.sampled():
            # the answer as text: orjson's bytes keep a buffer of kilobytes each, which a
            # queue of rows would hold on to (the request's bytes are of their own size)
            meta = (self.endpoint, key[1], served.version if served is not None else None,
                    method, status, error.message if error is not None else None, role)
            if error is None:  # one long-lived tuple per kind of answer: rows that hold it
                meta = self._answer_meta.setdefault(meta, meta)  # leave the collector's sight
            log.request(rid, meta, elapsed * 1000, rows, raw, answer.decode())

    def _shadow_answered(self, served: ServedVersion, method: str,
                         results: list[ShadowAnswer]) -> None:
        """The payload rows of a batch of a shadow's answers (called on its thread)."""
        log = self.payload
        if log is None:
            return
        name, version, endpoint = served.name, served.version, self.endpoint
        log.requests((endpoint, name, version, method, 200, None, "shadow"), [
            (rid, elapsed * 1000, rows, encode_json({"predictions": predictions,
                                                     "model": name, "version": version,
                                                     "request_id": rid}).decode())
            for rid, status, elapsed, rows, predictions, error in results if error is None])
        for rid, status, elapsed, rows, _, error in results:
            if error is not None:
                log.request(rid, (endpoint, name, version, method, status, error, "shadow"),
                            elapsed * 1000, rows, None, None)

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
        label = encode_json(body["label"]).decode()
        if not self.payload.feedback(rid, self.endpoint, label):
            raise NotReady("the payload log queue is full; retry the feedback later")
        return rid
