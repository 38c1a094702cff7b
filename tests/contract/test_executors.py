"""One contract, every executor: inline threads, the local process pool and a Ray cluster.

Task functions are made inside ``_tasks()`` so that cloudpickle sends them by value: a Ray
worker cannot import this test module (a process-pool worker could: it gets ``sys.path``).
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from loopml.errors import BackendUnavailable, InvalidArgument, LoopmlError, MissingDependency
from loopml.pipelines.executors.base import Executor, Resources, open_executor


def _tasks() -> SimpleNamespace:
    def add(a: int, b: int = 0) -> int:
        return a + b

    def fail(message: str) -> None:
        raise ValueError(message)

    def fail_with_missing_dependency() -> None:
        # keyword-only __init__: pickles, but cannot be rebuilt from its args
        raise MissingDependency("plotting", package="matplotlib", extra="plots")

    def fail_unpicklably(message: str) -> None:
        class Unpicklable(Exception):
            def __init__(self, text: str) -> None:
                super().__init__(text)
                self.lock = threading.Lock()

        raise Unpicklable(message)

    def meet(folder: str, me: str, other: str) -> bool:
        """True only if the other task runs at the same time (each waits for the other)."""
        Path(folder, me).touch()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if Path(folder, other).exists():
                return True
            time.sleep(0.01)
        return False

    def pid_after_meeting(folder: str, me: str, other: str) -> int:
        assert meet(folder, me, other)
        return os.getpid()

    def touch_later(path: str, started: str | None = None, delay: float = 0.2) -> str:
        if started:
            Path(started).touch()
        time.sleep(delay)
        Path(path).touch()
        return path

    def exit_abruptly() -> None:
        os._exit(3)

    return SimpleNamespace(add=add, fail=fail, meet=meet, touch_later=touch_later,
                           fail_with_missing_dependency=fail_with_missing_dependency,
                           fail_unpicklably=fail_unpicklably, exit_abruptly=exit_abruptly,
                           pid_after_meeting=pid_after_meeting,
                           pid=os.getpid, sleep=time.sleep)


T = _tasks()


@pytest.fixture(scope="module")
def ray_executor(ray_address: str) -> Iterator[Executor]:
    """One Ray Client connection for this module's tests (a connection costs seconds),
    closed after them: a client channel left open would report its shutdown from a
    background thread inside whatever test runs next."""
    from loopml.pipelines.executors import ray as ray_module

    executor = open_executor(ray_address)
    yield executor
    executor.close()
    ray_module._disconnect_at_exit()


@pytest.fixture(params=["inline", "processes:2", pytest.param("ray", marks=pytest.mark.slow)])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    if request.param == "ray":
        yield request.getfixturevalue("ray_executor")
        return
    executor = open_executor(request.param)
    yield executor
    executor.close()


@pytest.fixture
def remote(executor: Executor) -> Executor:
    """The executors whose tasks run in another process."""
    if executor.in_process:
        pytest.skip("runs tasks in this process")
    return executor


def _until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def _on_ray(executor: Executor) -> bool:
    return executor.spec.startswith("ray")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _both_worker_pids(executor: Executor, folder: Path) -> set[int]:
    """The pids of two workers, made to run at the same time."""
    folder.mkdir(exist_ok=True)
    first = executor.submit(T.pid_after_meeting, str(folder), "a", "b")
    second = executor.submit(T.pid_after_meeting, str(folder), "b", "a")
    return {first.result(timeout=60), second.result(timeout=60)}


def test_result_comes_back(executor: Executor) -> None:
    assert executor.submit(T.add, 2, b=3).result(timeout=60) == 5
    assert executor.max_parallel >= 1
    assert executor.spec


def test_exception_keeps_type_and_message(executor: Executor) -> None:
    with pytest.raises(ValueError, match="bad value 42"):
        executor.submit(T.fail, "bad value 42").result(timeout=60)


def test_exception_that_cannot_travel_is_named(executor: Executor) -> None:
    with pytest.raises(LoopmlError, match="needs the package 'matplotlib'"):
        executor.submit(T.fail_with_missing_dependency).result(timeout=60)
    with pytest.raises(Exception) as raised:  # the type differs per executor: checked below
        executor.submit(T.fail_unpicklably, "holds a lock").result(timeout=60)
    text = f"{type(raised.value).__name__}: {raised.value}"
    assert "Unpicklable" in text and "holds a lock" in text
    assert executor.in_process or isinstance(raised.value, LoopmlError)


def test_tasks_run_side_by_side(executor: Executor, tmp_path: Path) -> None:
    first = executor.submit(T.meet, str(tmp_path), "a", "b")
    second = executor.submit(T.meet, str(tmp_path), "b", "a")
    assert first.result(timeout=60) and second.result(timeout=60)


def test_closures_and_lambdas_travel_by_value(executor: Executor) -> None:
    offset = 10

    def shifted(value: int) -> int:
        return value + offset

    assert executor.submit(shifted, 5).result(timeout=60) == 15
    assert executor.submit(lambda value: value * offset, 3).result(timeout=60) == 30


@pytest.mark.parametrize("registered", [True, False])
def test_function_from_a_file_loaded_with_importlib(executor: Executor, tmp_path: Path,
                                                    registered: bool) -> None:
    path = tmp_path / "user_steps.py"
    path.write_text("def triple(value):\n    return 3 * value\n")
    name = f"loopml_test_steps_{tmp_path.name}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if registered:
        sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        assert executor.submit(module.triple, 7).result(timeout=60) == 21
    finally:
        sys.modules.pop(name, None)


def test_cancel_a_task_that_has_not_started(executor: Executor, tmp_path: Path) -> None:
    blockers = [executor.submit(T.sleep, 1.0) for _ in range(executor.max_parallel)]
    marker = tmp_path / "ran"
    waiting = executor.submit(T.touch_later, str(marker))
    assert executor.cancel(waiting)
    with pytest.raises(cf.CancelledError):
        waiting.result(timeout=60)
    if not _on_ray(executor):  # Ray's futures start out running: they raise, not "cancelled"
        assert waiting.cancelled()
    cf.wait(blockers, timeout=60)
    time.sleep(0.3)
    assert not marker.exists()


def test_cancel_a_running_task(remote: Executor, tmp_path: Path) -> None:
    started, marker = tmp_path / "started", tmp_path / "finished"
    running = remote.submit(T.touch_later, str(marker), str(started), 30)
    _until(started.exists)
    assert remote.cancel(running)
    with pytest.raises(cf.CancelledError):
        running.result(timeout=30)
    assert not marker.exists()
    assert remote.submit(T.add, 1, 1).result(timeout=60) == 2


def test_resources_with_a_fraction_of_a_gpu(executor: Executor) -> None:
    gpu = 0 if _on_ray(executor) else 0.5  # the test cluster has no GPU
    resources = Resources.parse({"cpu": 0.5, "gpu": gpu})
    assert executor.submit(T.add, 1, 2, resources=resources).result(timeout=60) == 3


def test_arguments_that_cannot_be_pickled(remote: Executor) -> None:
    future = remote.submit(T.add, threading.Lock(), 1)
    with pytest.raises(InvalidArgument, match="picklable"):
        future.result(timeout=60)


def test_a_crashed_worker_fails_its_task_and_is_replaced(remote: Executor) -> None:
    with pytest.raises(BackendUnavailable, match="died"):
        remote.submit(T.exit_abruptly).result(timeout=60)
    assert remote.submit(T.add, 40, 2).result(timeout=60) == 42


def test_process_pool_survives_a_worker_killed_while_idle(tmp_path: Path) -> None:
    executor = open_executor("processes:2")
    pids = _both_worker_pids(executor, tmp_path)
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:  # reaped by the pool, which starts a replacement
        _until(lambda pid=pid: not _alive(pid))
    results = [executor.submit(T.add, n, 1) for n in range(4)]
    assert [future.result(timeout=60) for future in results] == [1, 2, 3, 4]
    assert executor.max_parallel == 2


def test_process_pool_is_warm_and_shared(tmp_path: Path) -> None:
    first = open_executor("processes:2")
    pids = _both_worker_pids(first, tmp_path / "first")
    first.close()
    second = open_executor("processes:2")
    assert _both_worker_pids(second, tmp_path / "second") == pids
    assert os.getpid() not in pids


def test_process_pool_runs_functions_of_an_unguarded_script(tmp_path: Path) -> None:
    """Workers never re-run the script: no ``if __name__ == "__main__"`` guard needed."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        from loopml.pipelines.executors.base import open_executor

        def square(value):
            return value * value

        executor = open_executor("processes:2")
        print(sorted(f.result() for f in [executor.submit(square, n) for n in range(4)]))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 1, 4, 9]"


def test_tasks_see_the_working_directory_of_the_caller(tmp_path: Path) -> None:
    executor = open_executor("processes:1")
    assert Path(executor.submit(os.getcwd).result(timeout=60)) == Path.cwd() == tmp_path


@pytest.mark.parametrize(("spec", "error", "words"), [
    ("processes:x", InvalidArgument, "processes:N"),
    ("processes:0", InvalidArgument, "processes:N"),
    ("dask://scheduler:8786", InvalidArgument, "ray://host:port"),
    ("ray-remote", InvalidArgument, "known: inline"),
    ("ray://no-port", InvalidArgument, "ray://HOST:PORT"),
])
def test_bad_specs_say_what_is_allowed(spec: str, error: type[Exception], words: str) -> None:
    if spec.startswith("ray://"):
        pytest.importorskip("ray")
    with pytest.raises(error, match=words):
        open_executor(spec)


def test_an_unreachable_ray_cluster_fails_fast() -> None:
    pytest.importorskip("ray")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}") as raised:
            open_executor(f"ray://127.0.0.1:{port}")
    assert time.monotonic() - started < 5
    assert "ray start --head --ray-client-server-port=10001" in str(raised.value)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import loopml.pipelines.executors as package
    import loopml.pipelines.executors.ray as real  # put back, whole, after the test

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    monkeypatch.delitem(sys.modules, real.__name__)
    monkeypatch.setattr(package, "ray", real)
    with pytest.raises(MissingDependency, match=r"pip install 'loopml\[ray\]'"):
        open_executor("ray-local")
