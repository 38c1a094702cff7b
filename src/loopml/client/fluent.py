"""The module-level API: ``loopml.start_run(...)`` and shortcuts that act on the active run.

A process-wide stack holds the active runs (a nested run sits on top of its parent), so
threads of a training job log to the same run, as MLflow users expect. A pipeline step
runs with its own child run active in its context (:func:`run_in_context`), which takes
precedence over the stack there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopml.client.active_run import ActiveRun
from loopml.client.embedded import Client
from loopml.config import Settings, load_settings
from loopml.errors import Conflict
from loopml.tracking.entities import ArtifactInfo, Experiment, Metric, Run, RunStatus

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["active_run", "create_experiment", "default_client", "end_run", "get_experiment",
           "get_metric_history", "get_run", "list_experiments", "log_artifact", "log_dict",
           "log_metric", "log_metrics", "log_param", "log_params", "log_text",
           "new_client", "run_in_context", "search_runs", "set_default_client", "set_tag",
           "set_tags", "start_run"]

_lock = threading.Lock()
_client: Client | None = None
_stack: list[ActiveRun] = []
_context_run: ContextVar[ActiveRun | None] = ContextVar("loopml_context_run", default=None)


def new_client(settings: Settings | None = None) -> Client:
    """A client of ``settings`` (default: from the environment): a
    :class:`~loopml.client.remote.RemoteClient` when ``tracking_uri`` names a loopml server
    (``LOOPML_TRACKING_URI=http://host:5000``), else the embedded :class:`Client`."""
    settings = settings or load_settings()
    if settings.is_remote:
        from loopml.client.remote import RemoteClient

        return RemoteClient(settings)
    return Client(settings)


def default_client() -> Client:
    """The client the module-level API uses, built from the environment on first use
    (see :func:`new_client`)."""
    global _client
    with _lock:
        if _client is None:
            _client = new_client()
        return _client


def set_default_client(client: Client | None) -> None:
    """Use ``client`` for the module-level API (None: build a new one from settings next time)."""
    global _client
    with _lock:
        _client = client


def active_run() -> ActiveRun | None:
    """The innermost run started with :func:`start_run` and not yet ended (inside a
    pipeline step: the step's run)."""
    run = _context_run.get()
    if run is not None:
        return run
    return _stack[-1] if _stack else None


@contextmanager
def run_in_context(run: ActiveRun) -> Iterator[ActiveRun]:
    """Make ``run`` the active run of the current context (thread/task) while inside."""
    token = _context_run.set(run)
    try:
        yield run
    finally:
        _context_run.reset(token)


def _require_active() -> ActiveRun:
    run = active_run()
    if run is None:
        raise Conflict("no active run: start one with 'with loopml.start_run(...) as run:'")
    return run


def start_run(experiment: str | None = None, *, name: str | None = None,
              tags: Mapping[str, Any] | None = None, nested: bool = False,
              parent_run_id: str | None = None) -> ActiveRun:
    """Start a run and make it the active one. Use it as ``with loopml.start_run(...) as run:``.

    With another run active, pass ``nested=True`` to start a child run of it.
    """
    parent = active_run()
    if parent is not None and not nested and parent_run_id is None:
        raise Conflict(f"run {parent.name} ({parent.id}) is still active; end it first, or "
                       "pass nested=True to start a child run")
    if nested and parent is not None and parent_run_id is None:
        parent_run_id = parent.id
        experiment = experiment or parent.experiment_id
    run = default_client().start_run(experiment, name=name, tags=tags,
                                     parent_run_id=parent_run_id)
    run.on_end = _pop
    _stack.append(run)
    return run


def _pop(run: ActiveRun) -> None:
    if run in _stack:
        _stack.remove(run)


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> None:
    """End the active run (no-op when none is active)."""
    run = active_run()
    if run is not None:
        run.end(status)


def log_param(key: str, value: Any) -> None:
    _require_active().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    _require_active().log_params(params)


def log_metric(key: str, value: Any, step: int = 0, timestamp: int | None = None) -> None:
    _require_active().log_metric(key, value, step=step, timestamp=timestamp)


def log_metrics(metrics: Mapping[str, Any], step: int = 0) -> None:
    _require_active().log_metrics(metrics, step=step)


def set_tag(key: str, value: Any) -> None:
    _require_active().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    _require_active().set_tags(tags)


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> list[ArtifactInfo]:
    return _require_active().log_artifact(local_path, artifact_path)


def log_text(text: str, artifact_file: str) -> ArtifactInfo:
    return _require_active().log_text(text, artifact_file)


def log_dict(data: Any, artifact_file: str) -> ArtifactInfo:
    return _require_active().log_dict(data, artifact_file)


def get_run(run_id: str) -> Run:
    return default_client().get_run(run_id)


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    return default_client().get_metric_history(run_id, key)


def create_experiment(name: str, *, description: str = "") -> Experiment:
    return default_client().create_experiment(name, description=description)


def get_experiment(name_or_id: str) -> Experiment:
    return default_client().get_experiment(name_or_id)


def list_experiments() -> list[Experiment]:
    return default_client().list_experiments()


def search_runs(experiment: str | Sequence[str] | None = None, *, filter: str | None = None,
                order_by: Sequence[str] | None = None, max_results: int = 1000,
                offset: int = 0, output_format: Literal["list", "pandas"] = "list",
                ) -> list[Run] | pd.DataFrame:
    """See :meth:`loopml.client.Client.search_runs`."""
    return default_client().search_runs(experiment, filter=filter, order_by=order_by,
                                        max_results=max_results, offset=offset,
                                        output_format=output_format)
