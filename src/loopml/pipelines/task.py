"""One attempt of one step, as an executor runs it: :func:`execute_step`.

The task is self-contained so any executor can run it: the settings to open the stores, the
step, its arguments (values when it runs in the driver's process, stored output references
otherwise) and its child run. The worker loads the inputs, runs the function with the
step's run active and its output captured, stores the result through its materializer and
returns references (plus the value itself in-process, so the next step need not load it).
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.config import Settings
from loopml.pipelines.materializers import OutputRef, load_output, save_output
from loopml.tracking.entities import Run

if TYPE_CHECKING:
    from loopml.client.embedded import Client
    from loopml.pipelines.steps import Step

__all__ = ["Skip", "StepResult", "StepTask", "Stored", "execute_step", "skip"]

LOG_ARTIFACT = "logs/step.log"


class Skip(Exception):
    """Raised inside a step to skip it (and what depends on it) with a reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def skip(reason: str) -> None:
    """Skip the running step (and the steps that need its output), showing ``reason``."""
    raise Skip(reason)


@dataclass(frozen=True)
class Stored:
    """An input the worker loads from the blob store."""

    ref: OutputRef


@dataclass
class StepTask:
    settings: Settings
    pipeline_run_id: str
    run: Run
    node: str
    step: Step[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    sample: int | None = None
    #: The driver's client when the task runs in the driver's process (never pickled).
    client: Client | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["client"] = None
        return state


@dataclass
class StepResult:
    outputs: tuple[OutputRef, ...] = ()
    value: Any = None
    has_value: bool = False
    logs: str | None = None
    device: str | None = None
    error: str | None = None
    traceback: str | None = None
    skipped: str | None = None
    seconds: float = 0.0


_clients: dict[Settings, Client] = {}
_clients_lock = threading.Lock()


def worker_client(settings: Settings) -> Client:
    """One client per settings per worker process (stores opened once, reused by tasks)."""
    from loopml.client.embedded import Client

    with _clients_lock:
        client = _clients.get(settings)
        if client is None:
            client = _clients[settings] = Client(settings)
        return client


def _resolve(value: Any, client: Client, cache: Path) -> Any:
    if isinstance(value, Stored):
        return load_output(value.ref, client.blobs, cache)
    if isinstance(value, list):
        return [_resolve(v, client, cache) for v in value]
    if isinstance(value, tuple):
        return tuple(_resolve(v, client, cache) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, client, cache) for k, v in value.items()}
    return value


def _device(task: StepTask) -> str:
    from loopml._lazy import loaded_module

    torch = loaded_module("torch")
    if torch is None and task.step.options.resources.gpu > 0:
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None and torch.cuda.is_available():
        index = torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return "cpu"


def execute_step(task: StepTask) -> StepResult:
    """Run one attempt of the step; failures come back in the result, not as exceptions."""
    from loopml.client.active_run import ActiveRun
    from loopml.client.fluent import run_in_context
    from loopml.pipelines.context import StepContext, step_context
    from loopml.pipelines.logs import capture_logs

    client = task.client if task.client is not None else worker_client(task.settings)
    cache = task.settings.home / "cache" / "outputs"
    result = StepResult()
    started = time.perf_counter()
    context = StepContext(client, task.run.id, task.node, task.pipeline_run_id, task.sample)
    with capture_logs() as captured:
        try:
            args = _resolve(task.args, client, cache)
            kwargs = _resolve(task.kwargs, client, cache)
            with step_context(context), run_in_context(ActiveRun(client, task.run)):
                value = task.step.fn(*args, **kwargs)
            result.outputs = (save_output(value, client.blobs, step=task.step.name),)
            if task.client is not None:
                result.value, result.has_value = value, True
        except Skip as exc:
            result.skipped = exc.reason
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            result.traceback = traceback.format_exc()
            captured.write(result.traceback)
        result.device = _device(task)
    result.seconds = time.perf_counter() - started
    client.flush()  # the step's metrics are durable before the driver records the step
    text = captured.getvalue()
    if text:
        result.logs = client.log_text(task.run.id, text, LOG_ARTIFACT).digest
    return result

