"""``processes`` / ``processes:N``: a warm pool of N local worker processes.

Workers are started once and reused: a pool lives in a process-wide cache keyed by N, so
every ``open_executor("processes:2")`` in one program shares the same two warm workers, and
the pool is stopped when the interpreter exits. Each worker runs one task at a time; the
function and its arguments go over a socket by value (cloudpickle, so functions from a
script's ``__main__``, closures and lambdas work) and the result or exception comes back
the same way. Before each task the worker takes the caller's working directory and
``sys.path``, so relative paths and imports resolve as they would inline.

How workers start — a fresh interpreter (``python -c``), not ``fork``:

- ``fork`` without ``exec`` copies a driver that has threads (the metric flusher, this
  pool's own dispatch threads, OpenMP pools of numpy/torch): a lock held by another thread
  at fork time stays held forever in the child, CUDA cannot be used in a forked child, and
  Python 3.12+ warns about it (an error under warnings-as-errors). ``subprocess`` forks and
  immediately ``exec``\\s, which is safe from any thread.
- multiprocessing's ``spawn`` and ``forkserver`` re-run the user's script as ``__mp_main__``
  in the workers (a script without an ``if __name__ == "__main__"`` guard would start its
  pipeline again, or fail with the bootstrapping error). Functions travel by value here, so
  workers never need the script, and a plain interpreter avoids that trap (loky does the same).

Measured on 2 cores (Python 3.11): starting 2 workers and getting a first reply takes ~17 ms
with fork, ~120 ms with forkserver (cold), ~170 ms with spawn and ~120 ms with this launcher
(two interpreters start side by side). That is paid once per program, and for one worker
after a crash. Afterwards the start method does not matter: a submit→result round trip of a
no-op costs ~0.14 ms, as much as a ``ThreadPoolExecutor`` hop (0.15 ms) and less than
``ProcessPoolExecutor`` (0.25 ms forkserver, 0.6 ms fork): ``submit`` writes to an idle
worker's socket itself, and one reader thread per worker settles the future.

A worker that dies (``os._exit``, a segfault, the OOM killer) fails its task with
:class:`~loopml.errors.BackendUnavailable` and is replaced; ``cancel`` on a running task
kills its worker (then replaces it) and the future raises ``CancelledError``. Workers keep
the environment variables they started with: settings travel with the task, as loopml
passes them down rather than reading the environment (copying ``os.environ`` costs 30 µs).
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import cloudpickle

from loopml.errors import BackendUnavailable, InvalidArgument, LoopmlError
from loopml.pipelines.executors.base import Executor, Resources

__all__ = ["ProcessExecutor", "RemoteTraceback", "module_to_ship"]

T = TypeVar("T")

_OK, _ERROR = 0, 1
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])  # the folder holding `loopml`


class RemoteTraceback(Exception):
    """The traceback of a task's exception in its worker, attached as its ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _task_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


_ship_decisions: dict[str, ModuleType | None] = {}


def module_to_ship(fn: Callable[..., Any]) -> ModuleType | None:
    """The module of ``fn`` when it must travel by value: one loaded from a file with importlib
    and put in ``sys.modules`` under a name no import finder knows (cloudpickle would otherwise
    send the function by reference and the worker could not import it). Decided once a name."""
    name = getattr(fn, "__module__", None)
    if not isinstance(name, str) or name == "__main__" or name not in sys.modules:
        return None  # not in sys.modules: cloudpickle sends it by value already
    if name not in _ship_decisions:
        _ship_decisions[name] = _unimportable(sys.modules[name])
    return _ship_decisions[name]


def _unimportable(module: ModuleType) -> ModuleType | None:
    if not str(getattr(module, "__file__", "") or "").endswith(".py"):
        return None
    top = module.__name__.partition(".")[0]
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        try:
            if find_spec is not None and find_spec(top, None) is not None:
                return None
        except (ImportError, ValueError):  # a finder that cannot answer for this name
            continue
    return module


# ----------------------------------------------------------------------------- the worker


def _serve(fd: int) -> None:
    """The worker loop: run tasks sent over the socket ``fd`` until the driver hangs up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    conn = Connection(fd)
    while True:
        try:
            frame = conn.recv_bytes()
        except (EOFError, OSError):
            return
        size = int.from_bytes(frame[:4], "little")
        cwd, path = pickle.loads(frame[4:4 + size])
        payload = memoryview(frame)[4 + size:]
        if path is not None:
            sys.path[:] = path
        if cwd != os.getcwd():
            with contextlib.suppress(OSError):  # gone since: run where the worker is
                os.chdir(cwd)
        conn.send_bytes(_run(payload))


def _run(payload: memoryview) -> bytes:
    fn: Any = None
    try:
        fn, args, kwargs = cloudpickle.loads(payload)
        result = fn(*args, **kwargs)
    except BaseException as exc:
        return _error_reply(exc)
    try:
        return bytes([_OK]) + bytes(cloudpickle.dumps(result))
    except Exception as exc:
        return _error_reply(InvalidArgument(
            f"the result of {_task_name(fn)} cannot be pickled ({type(exc).__name__}: {exc}); "
            "return plain data (numbers, strings, arrays, dataclasses) or save it as an "
            "artifact"))


def _error_reply(exc: BaseException) -> bytes:
    text = "".join(traceback.format_exception(exc))
    try:
        pickled: bytes | None = cloudpickle.dumps(exc)
    except Exception:
        pickled = None
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return bytes([_ERROR]) + pickle.dumps((pickled, kind, str(exc), text))


def _decode(reply: bytes, name: str) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, exception)`` from a worker's reply."""
    if reply[0] == _OK:
        try:
            return True, cloudpickle.loads(reply[1:])
        except Exception as problem:
            return False, LoopmlError(
                f"the result of task {name} cannot be loaded in this process "
                f"({type(problem).__name__}: {problem}); install here what the result needs")
    pickled, kind, message, text = pickle.loads(reply[1:])
    error: Any = None
    if pickled is not None:
        try:
            error = cloudpickle.loads(pickled)
        except Exception:
            error = None
    if not isinstance(error, BaseException):
        error = LoopmlError(f"task {name} raised {kind}: {message} (the exception itself could "
                            "not be sent back from the worker process)")
    error.__cause__ = RemoteTraceback(f"\n\"\"\"\n{text}\"\"\"")
    return False, error


# ----------------------------------------------------------------------------- the driver
#
# Each worker has a reader thread in the driver, blocked on the worker's socket. ``submit``
# sends a task straight to an idle worker from the caller's thread; the reader receives the
# reply, hands that worker the next queued task, then settles the future. One thread hop per
# task (reader → caller) instead of two. Futures are settled outside the lock, so a done
# callback may submit again.

_Outcome = tuple["cf.Future[Any]", bool, Any]  # future, ok, result or exception


@dataclass(eq=False)
class _Task:
    future: cf.Future[Any]
    payload: bytes
    name: str
    cwd: str
    path: tuple[str, ...]


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    path_sent: tuple[str, ...] | None = None

    @classmethod
    def start(cls) -> _Worker:
        ours, theirs = socket.socketpair()
        code = (f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
                "from loopml.pipelines.executors.processes import _serve; "
                f"_serve({theirs.fileno()})")
        try:
            process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(theirs.fileno(),),
                                       stdin=subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            raise BackendUnavailable(f"cannot start a worker process ({sys.executable}): {exc}; "
                                     "use the inline executor instead") from exc
        finally:
            theirs.close()
        return cls(process, Connection(ours.detach()))

    def send(self, task: _Task) -> None:
        header = pickle.dumps((task.cwd, None if self.path_sent == task.path else task.path))
        self.conn.send_bytes(len(header).to_bytes(4, "little") + header + task.payload)
        self.path_sent = task.path

    def reap(self) -> int:
        code = self.process.wait()
        self.conn.close()
        return code


@dataclass(eq=False)
class _Slot:
    """One worker process and the task it runs (None when idle)."""

    worker: _Worker | None = None
    task: _Task | None = None
    cancelled: bool = False
    reader: threading.Thread | None = field(default=None, repr=False)


class _Pool:
    def __init__(self, size: int) -> None:
        self.size = size
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.waiting: deque[_Task] = deque()
        self.closed = False
        self.slots = [_Slot() for _ in range(size)]
        for slot in self.slots:
            self._start_worker(slot)

    def _start_worker(self, slot: _Slot) -> None:
        worker = slot.worker = _Worker.start()
        slot.reader = threading.Thread(target=self._read, args=(slot, worker), daemon=True,
                                       name=f"loopml-processes-{worker.process.pid}")
        slot.reader.start()

    def submit(self, task: _Task) -> None:
        with self.lock:
            if self.closed:
                raise BackendUnavailable("the process pool is shut down (the program is exiting)")
            self.waiting.append(task)
            idle = next((slot for slot in self.slots if slot.task is None), None)
            failed = self._next(idle) if idle is not None else []
        _settle(failed)

    def _next(self, slot: _Slot) -> list[_Outcome]:
        """Send the next waiting task to the idle ``slot`` (lock held); what failed to send."""
        failed: list[_Outcome] = []
        while self.waiting and slot.task is None and not self.closed:
            task = self.waiting.popleft()
            if not task.future.set_running_or_notify_cancel():
                continue
            try:
                self._send(slot, task)
            except (OSError, BackendUnavailable) as exc:
                failed.append((task.future, False, exc if isinstance(exc, LoopmlError) else
                               BackendUnavailable(f"cannot send task {task.name} to a worker "
                                                  f"process: {exc}")))
        return failed

    def _send(self, slot: _Slot, task: _Task) -> None:
        for attempt in (1, 2):
            if slot.worker is None or slot.worker.process.poll() is not None:
                if slot.worker is not None:
                    slot.worker.reap()  # it died while idle; its reader will see it replaced
                self._start_worker(slot)
            assert slot.worker is not None
            try:
                slot.worker.send(task)
            except OSError:
                if attempt == 2:
                    raise
                slot.worker.process.kill()  # half-dead: replace it and send again
                continue
            slot.task, slot.cancelled = task, False
            return

    def _read(self, slot: _Slot, worker: _Worker) -> None:
        """The reader of one worker: settle each reply; on its death, replace it and stop."""
        while True:
            try:
                reply: bytes | None = worker.conn.recv_bytes()
            except (EOFError, OSError):
                reply = None
            with self.lock:
                if slot.worker is not worker:  # already replaced by _send
                    return
                task, cancelled, slot.task = slot.task, slot.cancelled, None
                if reply is not None and not cancelled:
                    outcomes = self._next(slot)
                else:
                    code = worker.reap()
                    slot.worker = None
                    outcomes = []
                    if not self.closed:
                        try:
                            self._start_worker(slot)
                            outcomes = self._next(slot)
                        except BackendUnavailable:
                            pass  # the next submit tries again and reports why
            if task is not None:
                if reply is not None and not cancelled:
                    outcomes.append((task.future, *_decode(reply, task.name)))
                elif cancelled:
                    outcomes.append((task.future, False, cf.CancelledError(
                        f"task {task.name} was cancelled while running; its worker process "
                        "was stopped")))
                else:
                    outcomes.append((task.future, False, BackendUnavailable(
                        f"the worker process running task {task.name} died "
                        f"({_describe_exit(code)}); a new worker took its place, so later tasks "
                        "run. Look in the task for os._exit, a crash in native code, or memory "
                        "use past the limit (the OOM killer)")))
            _settle(outcomes)
            if reply is None or cancelled:
                return

    def cancel(self, future: cf.Future[Any]) -> bool:
        if future.cancel():
            return True
        with self.lock:
            for slot in self.slots:
                if slot.task is not None and slot.task.future is future and slot.worker:
                    slot.cancelled = True
                    slot.worker.process.kill()
                    return True
        return False

    def close(self) -> None:
        """Stop every worker (running tasks fail, waiting ones are cancelled)."""
        with self.lock:
            self.closed = True
            waiting, self.waiting = list(self.waiting), deque()
            readers = [slot.reader for slot in self.slots if slot.reader is not None]
            for slot in self.slots:
                if slot.worker is not None:
                    slot.worker.process.terminate()
        for task in waiting:
            task.future.cancel()
        for reader in readers:
            reader.join(timeout=2)


def _settle(outcomes: list[_Outcome]) -> None:
    for future, ok, value in outcomes:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


_pools: dict[int, _Pool] = {}
_pools_lock = threading.Lock()


def _shared_pool(size: int) -> _Pool:
    """The warm pool of ``size`` workers for this process (a forked child builds its own)."""
    with _pools_lock:
        pool = _pools.get(size)
        if pool is None or pool.pid != os.getpid() or pool.closed:
            pool = _pools[size] = _Pool(size)
        return pool


@atexit.register
def _close_pools() -> None:
    with _pools_lock:
        pools = [pool for pool in _pools.values() if pool.pid == os.getpid()]
        _pools.clear()
    for pool in pools:
        pool.close()


def _usable_cpus() -> int:
    """CPUs this process may run on (a container's cpuset, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


class ProcessExecutor(Executor):
    """Runs tasks on a shared, warm pool of ``workers`` local processes."""

    def __init__(self, workers: int | None = None) -> None:
        size = workers if workers is not None else _usable_cpus()
        if size < 1:
            raise InvalidArgument(f"the processes executor needs at least 1 worker, got {size}")
        self._pool = _shared_pool(size)
        self._closed = False

    @classmethod
    def from_spec(cls, spec: str, *, settings: Any = None) -> ProcessExecutor:
        _, _, count = spec.partition(":")
        if not count:
            return cls()
        if not count.strip().isdigit() or int(count) < 1:
            raise InvalidArgument(
                f"executor {spec!r}: expected processes or processes:N with N a whole number "
                f"of worker processes ≥ 1, e.g. processes:{_usable_cpus()}")
        return cls(int(count))

    @property
    def max_parallel(self) -> int:
        return self._pool.size

    def submit(self, fn: Callable[..., T], /, *args: Any, resources: Resources | None = None,
               **kwargs: Any) -> cf.Future[T]:
        if self._closed:
            raise InvalidArgument("this executor is closed; open a new one")
        Resources.parse(resources)  # validated; CPU and GPU counts are not enforced locally
        future: cf.Future[T] = cf.Future()
        name = _task_name(fn)
        module = module_to_ship(fn)
        if module is not None:
            cloudpickle.register_pickle_by_value(module)
        try:
            payload = cloudpickle.dumps((fn, args, kwargs))
        except Exception as exc:
            future.set_exception(InvalidArgument(
                f"cannot send task {name} to a worker process: {type(exc).__name__}: {exc}; "
                "its function and arguments must be picklable (open connections, locks and "
                "generators are not) — create them inside the task, or use the inline executor"))
            return future
        self._pool.submit(_Task(future, payload, name, os.getcwd(), tuple(sys.path)))
        return future

    def cancel(self, future: cf.Future[Any]) -> bool:
        return self._pool.cancel(future)

    def close(self) -> None:
        """Stop accepting tasks; the warm workers stay for the next executor of this size."""
        self._closed = True
