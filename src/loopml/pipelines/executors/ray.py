"""``ray-local`` / ``ray://host:port``: tasks on a Ray cluster (``pip install 'loopml[ray]'``).

``ray-local`` starts a Ray instance owned by this program (``ray.init(address="local")``, no
dashboard, Ray's own logs at WARNING; Ray counts the CPUs, honouring container limits);
``ray://host:port`` connects as a Ray Client to a cluster started with
``ray start --head --ray-client-server-port=10001``. If this program already called
``ray.init`` itself, the executor uses that connection and never shuts it down. Executors of
the same spec share one connection, which stays open for the next runs and is closed at
exit (or when an executor for another cluster is opened while none uses it).

Every task goes through one remote trampoline, ``invoke((fn, args, kwargs))``, made once per
connection with ``max_retries=0`` (a crashed step is reported, not silently re-run; the
pipeline runner decides about retries). ``Resources`` become ``.options(num_cpus=, num_gpus=,
resources=)``, cached per distinct request, so a submit does not re-export a function. The
trampoline is a closure, so Ray ships it by value: workers need Ray and the user's code, not
loopml. Failures come back as the task's own exception (unwrapped from ``RayTaskError``); a
dead worker or node is :class:`~loopml.errors.BackendUnavailable`; a cancelled task raises
``concurrent.futures.CancelledError``. (Ray's futures start out running, so ``cancel`` asks
Ray to stop the task and the future then raises; ``future.cancelled()`` stays False.)
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import logging
import pickle
import queue
import socket
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import cloudpickle

from loopml.errors import BackendUnavailable, InvalidArgument, LoopmlError, MissingDependency
from loopml.pipelines.executors.base import Executor, Resources
from loopml.pipelines.executors.processes import RemoteTraceback, module_to_ship

try:
    import ray
    import ray.cloudpickle
    import ray.exceptions
    import ray.util.client
except ImportError:  # pragma: no cover - exercised by a test that hides the package
    ray = None  # type: ignore[assignment]

__all__ = ["RayExecutor"]

T = TypeVar("T")
LOCAL = "ray-local"
PROBE_TIMEOUT_S = 3.0
START_HINT = ("start one with `ray start --head --ray-client-server-port=10001` and use "
              "ray://HOST:10001, or use the ray-local executor")


_Callback = Callable[["cf.Future[Any]"], None]
_Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def _make_trampoline() -> Callable[[_Call], Any]:
    def invoke(call: _Call) -> Any:  # one argument: Ray serialises each argument separately
        fn, args, kwargs = call
        return fn(*args, **kwargs)

    return invoke


@dataclass(eq=False)
class _Connection:
    """The Ray connection loopml opened, shared by the executors of one spec."""

    spec: str
    users: int = 0
    trampoline: Any = None
    variants: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    cpus: int = 1
    #: Ray Client only: a Ray Client ref knows its id (and so can take a callback) only after
    #: a round trip to the server (~5 ms); this thread waits for that, not ``submit``.
    waiting: queue.SimpleQueue[tuple[Any, _Callback] | None] | None = None

    def watch(self, ref: Any, callback: _Callback) -> None:
        """Call ``callback`` with a future of ``ref``'s outcome once it has one."""
        if self.waiting is None:
            ref.future().add_done_callback(callback)
        else:
            self.waiting.put((ref, callback))

    def start_watcher(self) -> None:
        self.waiting = queue.SimpleQueue()
        threading.Thread(target=self._watch_client_refs, args=(self.waiting,), daemon=True,
                         name="loopml-ray-client-refs").start()

    @staticmethod
    def _watch_client_refs(waiting: queue.SimpleQueue[tuple[Any, _Callback] | None]) -> None:
        while (item := waiting.get()) is not None:
            ref, callback = item
            try:
                ref.future().add_done_callback(callback)
            except BaseException as exc:  # the server refused the task (e.g. cannot unpickle)
                failed: cf.Future[Any] = cf.Future()
                failed.set_exception(exc)
                callback(failed)

    def stop_watcher(self) -> None:
        if self.waiting is not None:
            self.waiting.put(None)


_lock = threading.Lock()
_connection: _Connection | None = None
_borrowed: _Connection | None = None  # the user's own ray.init


def _probe(spec: str) -> None:
    """Fail fast when nothing listens at a ray:// address (Ray Client retries for ~30 s)."""
    host, _, port = spec.removeprefix("ray://").rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise InvalidArgument(f"executor {spec!r}: expected ray://HOST:PORT, e.g. "
                              "ray://127.0.0.1:10001")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise BackendUnavailable(f"no Ray cluster answers at {spec} ({exc}); {START_HINT}") from exc


def _start(spec: str) -> None:
    try:
        if spec == LOCAL:
            ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
            return
        for attempt in (1, 2):
            try:
                with warnings.catch_warnings():  # its "connection timed out" hint: ours says more
                    warnings.filterwarnings("ignore", "Ray Client connection timed out")
                    ray.init(address=spec, logging_level=logging.WARNING)
                return
            except ConnectionAbortedError:
                # The cluster answered, but the server it starts for each client died at start
                # (a gRPC fork race in Ray's proxy, about 1 connection in 15): try once more.
                if attempt == 2:
                    raise
    except (ConnectionError, RuntimeError, OSError) as exc:
        auth = ("; if the cluster uses token authentication, set RAY_AUTH_MODE=token here and "
                "give the token (RAY_AUTH_TOKEN or ~/.ray/auth_token)" if spec != LOCAL else "")
        raise BackendUnavailable(f"cannot connect to the Ray cluster at {spec}: {exc}; "
                                 f"{START_HINT}{auth}") from exc


def _acquire(spec: str) -> _Connection:
    global _connection, _borrowed
    with _lock:
        if (_connection is not None and ray.is_initialized() and _connection.spec != spec
                and _connection.users <= 0):
            _disconnect()  # idle connection to another cluster: switch
        if _connection is not None and ray.is_initialized():
            if _connection.spec != spec:
                raise InvalidArgument(
                    f"this program is connected to Ray at {_connection.spec}; close its "
                    f"executors before opening {spec} (Ray allows one connection per program)")
        elif ray.is_initialized():
            if _borrowed is None:
                _borrowed = _connection_for(spec)
            return _borrowed
        else:
            _start(spec)
            _connection, _borrowed = _connection_for(spec), None
        _connection.users += 1
        return _connection


def _connection_for(spec: str) -> _Connection:
    trampoline = ray.remote(max_retries=0)(_make_trampoline())
    cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
    connection = _Connection(spec, trampoline=trampoline, cpus=max(cpus, 1))
    if ray.util.client.ray.is_connected():  # type: ignore[no-untyped-call]
        connection.start_watcher()
    return connection


def _release(connection: _Connection) -> None:
    """One executor less on the connection. The connection itself stays open (connecting
    costs seconds; pipeline runs come one after another) and is closed at exit."""
    with _lock:
        if connection is _connection:
            connection.users -= 1


def _disconnect() -> None:
    global _connection
    if _connection is not None:
        connection, _connection = _connection, None
        connection.stop_watcher()
        ray.shutdown()


@atexit.register
def _disconnect_at_exit() -> None:
    with _lock:
        _disconnect()


class RayExecutor(Executor):
    """Runs tasks on Ray: ``ray-local`` or ``ray://host:port``."""

    def __init__(self, spec: str = LOCAL) -> None:
        if ray is None:
            raise MissingDependency("the Ray executor", package="ray", extra="ray")
        if spec != LOCAL:
            _probe(spec)
        self._connection = _acquire(spec)
        self._refs: dict[cf.Future[Any], Any] = {}
        self._closed = False

    @classmethod
    def from_spec(cls, spec: str, *, settings: Any = None) -> RayExecutor:
        return cls(spec)

    @property
    def max_parallel(self) -> int:
        return self._connection.cpus

    def _remote(self, resources: Resources) -> Any:
        key = (resources.cpu, resources.gpu, tuple(sorted(resources.custom.items())))
        variant = self._connection.variants.get(key)
        if variant is None:
            variant = self._connection.trampoline.options(
                num_cpus=resources.cpu, num_gpus=resources.gpu,
                resources=dict(resources.custom) or None)
            self._connection.variants[key] = variant
        return variant

    def submit(self, fn: Callable[..., T], /, *args: Any, resources: Resources | None = None,
               **kwargs: Any) -> cf.Future[T]:
        if self._closed:
            raise InvalidArgument("this executor is closed; open a new one")
        remote = self._remote(Resources.parse(resources))
        name = getattr(fn, "__qualname__", None) or repr(fn)
        _share_by_value_modules(fn)
        future: cf.Future[T] = cf.Future()
        future.set_running_or_notify_cancel()
        try:
            ref = remote.remote((fn, args, kwargs))
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            # a function or arguments Ray cannot pickle
            future.set_exception(InvalidArgument(
                f"cannot send task {name} to Ray: {type(exc).__name__}: {exc}; its function and "
                "arguments must be picklable (create connections and locks inside the task)"))
            return future
        except ConnectionError as exc:
            future.set_exception(BackendUnavailable(
                f"lost the Ray cluster at {self._connection.spec} ({exc}); {START_HINT}"))
            return future
        self._refs[future] = ref
        self._connection.watch(ref, partial(self._settle, future, name))
        return future

    def _settle(self, future: cf.Future[Any], name: str, done: cf.Future[Any]) -> None:
        self._refs.pop(future, None)
        try:
            error = done.exception()
            outcome = done.result() if error is None else _translate(error, name)
        except BaseException as exc:  # never leave the future unsettled
            future.set_exception(LoopmlError(
                f"task {name}: cannot read its outcome from Ray ({type(exc).__name__}: {exc})"))
            return
        if error is None:
            future.set_result(outcome)
        else:
            future.set_exception(outcome)

    def cancel(self, future: cf.Future[Any]) -> bool:
        ref = self._refs.get(future)
        if ref is None or future.done():
            return False
        try:
            ray.cancel(ref, force=True)
        except Exception:  # finished meanwhile, or the connection is gone
            return False
        return True

    def close(self) -> None:
        """Disconnect if this was the last executor on a connection loopml opened."""
        if not self._closed:
            self._closed = True
            _release(self._connection)


_by_value: set[str] = set()


def _share_by_value_modules(fn: Callable[..., Any]) -> None:
    """Ray pickles with its own copy of cloudpickle: tell it about the modules to send by value
    (files loaded by ``loopml.pipelines.loading``, registered with cloudpickle, and ``fn``'s)."""
    registered: set[str] = getattr(getattr(cloudpickle, "cloudpickle", None),
                                   "_PICKLE_BY_VALUE_MODULES", set())
    module = module_to_ship(fn)
    names = [*registered, module.__name__] if module is not None else registered
    for name in names:
        if name not in _by_value and name in sys.modules:
            ray.cloudpickle.register_pickle_by_value(  # type: ignore[no-untyped-call]
                sys.modules[name])
            _by_value.add(name)


def _translate(error: BaseException, name: str) -> BaseException:
    """Ray's wrapper exceptions → the task's own exception or a loopml error."""
    errors = ray.exceptions
    if isinstance(error, errors.TaskCancelledError):
        return cf.CancelledError(f"task {name} was cancelled")
    if isinstance(error, errors.RayTaskError):
        cause = error.__dict__.get("cause")  # not getattr: the dual class delegates to it
        if isinstance(cause, errors.TaskCancelledError):
            return cf.CancelledError(f"task {name} was cancelled")
        if isinstance(cause, BaseException) and not isinstance(cause, errors.RayError):
            cause.__cause__ = RemoteTraceback(f"\n\"\"\"\n{error}\n\"\"\"")
            return cause
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()] or [
            repr(cause)]
        summary = lines[0] if len(lines) == 1 else f"{lines[0]} — raised {lines[-1]}"
        return LoopmlError(f"task {name} failed on Ray: {summary}")
    if isinstance(error, ConnectionError):
        return BackendUnavailable(f"task {name}: the connection to Ray was lost ({error}); "
                                  f"{START_HINT}")
    if isinstance(error, errors.RayError):
        return BackendUnavailable(
            f"task {name} was lost by Ray ({type(error).__name__}: {error}); the worker or node "
            "running it died (os._exit, a crash in native code, or memory past the limit)")
    return error
