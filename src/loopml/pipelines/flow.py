"""``@loopml.pipeline``: a function whose step calls define a DAG; running and resuming it.

.. code-block:: python

    @loopml.pipeline
    def churn(data=loopml.Dataset("churn@latest"), lr: float = 0.1):
        df = prepare(data)
        model = train(df, lr=lr)
        metrics = evaluate(model, df)
        loopml.register(model, name="churn", metrics=metrics,
                        when="metrics['auc'] >= champion['auc']")

    run = churn.run(lr=0.05, executor="processes:4")

A run is a tracked run (experiment = the pipeline's name unless given) whose steps are
child runs; :func:`resume` re-runs a failed or killed run from where it stopped.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import Conflict, InvalidArgument
from loopml.pipelines import records
from loopml.pipelines.datasets import Dataset
from loopml.pipelines.entities import PipelineRun, StepStatus
from loopml.pipelines.executors.base import Executor, open_executor
from loopml.pipelines.runner import Reporter, Runner, driver_identity, print_progress
from loopml.pipelines.trace import Graph, tracing, walk
from loopml.tracking.entities import Run, RunStatus

if TYPE_CHECKING:
    from loopml.client.embedded import Client
    from loopml.pipelines.materializers import OutputRef

__all__ = ["Pipeline", "pipeline", "resume"]


class Pipeline:
    """A function made a pipeline by :func:`pipeline`. Call ``.run(**params)``."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None,
                 source: str | None = None) -> None:
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", "pipeline"))
        self.signature = inspect.signature(fn)
        self.source = source or _source_of(fn)

    def __repr__(self) -> str:
        return f"<Pipeline {self.name}>"

    def __call__(self, **params: Any) -> PipelineRun:
        return self.run(params)

    # -- parameters and tracing ----------------------------------------------------------
    def bind_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Parameters with defaults applied; text values (from the CLI or YAML) converted to
        the type of the default or annotation. A LoopmlError names what is wrong."""
        given = dict(params or {})
        known = list(self.signature.parameters)
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise InvalidArgument(f"pipeline {self.name!r} has no parameter "
                                  f"{', '.join(map(repr, unknown))}; its parameters: "
                                  f"{', '.join(known) or 'none'}")
        bound: dict[str, Any] = {}
        for name, parameter in self.signature.parameters.items():
            if name in given:
                bound[name] = _convert(self.name, parameter, given[name])
            elif parameter.default is not inspect.Parameter.empty:
                bound[name] = parameter.default
            else:
                raise InvalidArgument(f"pipeline {self.name!r} needs the parameter {name!r}; "
                                      f"pass it (CLI: --param {name}=VALUE)")
        return bound

    def trace(self, params: Mapping[str, Any] | None = None) -> Graph:
        """The DAG the pipeline defines for ``params`` (nothing runs)."""
        bound = self.bind_params(params)
        with tracing() as tracer:
            self.fn(**bound)
        graph = tracer.graph
        if not graph.nodes:
            raise InvalidArgument(f"pipeline {self.name!r} defines no steps; call @step "
                                  "functions inside it")
        graph.check()
        return graph

    # -- running -------------------------------------------------------------------------
    def run(self, params: Mapping[str, Any] | None = None, /, *,
            executor: str | Executor | None = None, sample: int | None = None,
            cache: bool = True, experiment: str | None = None, client: Client | None = None,
            progress: bool | Reporter | None = None, **keyword_params: Any) -> PipelineRun:
        """Run the pipeline and return its record; a failed step raises
        :class:`~loopml.errors.StepFailed` (resume with :func:`resume`).

        ``executor``: inline (default), processes[:N], ray-local or ray://host:port.
        ``sample=N`` reads N rows of each input table and never registers or deploys.
        ``cache=False`` executes every step (their results still fill the cache).
        """
        return run_pipeline(self, {**dict(params or {}), **keyword_params},
                            executor=executor, sample=sample, use_cache=cache,
                            experiment=experiment, client=client, progress=progress)


def pipeline(fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Make a function a pipeline: ``@pipeline`` or ``@pipeline(name="churn")``."""

    def decorate(function: Callable[..., Any]) -> Pipeline:
        return Pipeline(function, name=name)

    return decorate(fn) if fn is not None else decorate


def _source_of(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", "") or ""
    qualname = getattr(fn, "__qualname__", getattr(fn, "__name__", ""))
    if module == "__main__":
        path = getattr(sys.modules.get("__main__"), "__file__", None)
        return f"{os.path.abspath(path)}:{qualname}" if path else f"__main__:{qualname}"
    if module.startswith("loopml_pipeline_"):  # loaded from a file by load_object
        path = getattr(sys.modules.get(module), "__file__", None)
        if path:
            return f"{path}:{qualname}"
    return f"{module}:{qualname}"


def _convert(pipeline_name: str, parameter: inspect.Parameter, value: Any) -> Any:
    default = parameter.default
    annotation = parameter.annotation
    target: Any = annotation if isinstance(annotation, type) else (
        type(default) if default is not inspect.Parameter.empty and default is not None
        else None)
    if isinstance(value, Dataset) or target is None:
        return value
    if target is Dataset or isinstance(default, Dataset):
        return Dataset(str(value)) if isinstance(value, str) else value
    if not isinstance(value, str) or target is str:
        return value
    try:
        if target is bool:
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
        if target in (int, float):
            return target(value)
        if target in (list, dict):
            return json.loads(value)
    except (ValueError, json.JSONDecodeError):
        raise InvalidArgument(f"parameter {parameter.name!r} of pipeline {pipeline_name!r} "
                              f"must be a {target.__name__}, got {value!r}") from None
    return value


# -- running ----------------------------------------------------------------------------

def _datasets_of(graph: Graph, params: Mapping[str, Any]) -> list[Dataset]:
    found: dict[str, Dataset] = {}
    for node in graph.nodes.values():
        for dataset in walk((node.args, node.kwargs), (Dataset,)):
            found.setdefault(dataset.ref, dataset)
    for value in params.values():
        if isinstance(value, Dataset):
            found.setdefault(value.ref, value)
    return list(found.values())


def _reporter(progress: bool | Reporter | None, client: Client) -> Reporter | None:
    if callable(progress):
        return progress
    if progress is None:
        progress = client.settings.progress and sys.stderr.isatty()
    return print_progress if progress else None


def run_pipeline(pipe: Pipeline, params: Mapping[str, Any], *,
                 executor: str | Executor | None = None, sample: int | None = None,
                 use_cache: bool = True, experiment: str | None = None,
                 client: Client | None = None, progress: bool | Reporter | None = None,
                 reuse: Mapping[str, tuple[OutputRef, ...]] | None = None,
                 resumed_from: str | None = None) -> PipelineRun:
    """Trace, resolve inputs, record the run, execute its steps, record the outcome."""
    from loopml.client.fluent import default_client

    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)
                               or sample < 1):
        raise InvalidArgument(f"sample must be a positive number of rows, got {sample!r}")
    client = client or default_client()
    bound = pipe.bind_params(params)
    graph = pipe.trace(bound)
    datasets = {d.ref: d.resolve(client, sample=sample) for d in _datasets_of(graph, bound)}
    engine = open_executor(executor, settings=client.settings)
    try:
        run = _start_run(client, pipe, bound, graph, datasets, engine.spec or "inline",
                         sample=sample, experiment=experiment, resumed_from=resumed_from)
        runner = Runner(client, graph, run=run, executor=engine, datasets=datasets,
                        sample=sample, use_cache=use_cache, reuse=reuse,
                        resumed_from=resumed_from, reporter=_reporter(progress, client))
        try:
            runner.execute()
        except BaseException:
            with client.meta.write() as conn:
                records.finish_pipeline_run(conn, run.id, RunStatus.KILLED)
            raise
        return runner.finish()
    finally:
        if not isinstance(executor, Executor):
            engine.close()


def _start_run(client: Client, pipe: Pipeline, params: Mapping[str, Any], graph: Graph,
               datasets: Mapping[str, Dataset], executor: str, *, sample: int | None,
               experiment: str | None, resumed_from: str | None) -> Run:
    """The pipeline's tracked run and its pipeline row, in one transaction."""
    from loopml.datasets.records import record_lineage
    from loopml.tracking import records as tracking
    from loopml.tracking.context import code_version_tags, current_user, environment_tags
    from loopml.tracking.names import random_run_name
    from loopml.tracking.writes import write_params, write_tags

    shown = {k: (datasets[v.ref].version.ref if isinstance(v, Dataset)  # type: ignore[union-attr]
                 else v) for k, v in params.items()}
    source_file = pipe.source.rpartition(":")[0]
    code_dir = Path(source_file).parent if source_file.endswith(".py") else None
    tags = {**code_version_tags(code_dir), **environment_tags(), "loopml.pipeline": pipe.name}
    if sample is not None:
        tags["loopml.pipeline.sample"] = str(sample)
    if resumed_from is not None:
        tags["loopml.pipeline.resumed_from"] = resumed_from
    host, pid = driver_identity()
    with client.meta.write() as conn:
        name = experiment or pipe.name
        exp = tracking.find_experiment(conn, name) or tracking.create_experiment(conn, name)
        run = tracking.create_run(conn, experiment_id=exp.id,
                                  name=f"{pipe.name}-{random_run_name()}",
                                  parent_run_id=None, user=current_user())
        write_tags(conn, run.id, tags)
        write_params(conn, run.id, {k: v if isinstance(v, str) else json.dumps(v, default=str)
                                    for k, v in shown.items()})
        for dataset in datasets.values():
            assert dataset.version is not None
            record_lineage(conn, run.id, dataset.version, "input")
        records.insert_pipeline_run(conn, run_id=run.id, pipeline=pipe.name,
                                    source=pipe.source, params=shown, graph=graph.to_json(),
                                    executor=executor, sample=sample,
                                    resumed_from=resumed_from, host=host, pid=pid)
    return run


# -- resuming ---------------------------------------------------------------------------

def _driver_alive(run: PipelineRun) -> bool:
    host, _ = driver_identity()
    if run.host != host or run.pid is None:
        return False
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return run.pid != os.getpid()


def resume(run_id: str, *, client: Client | None = None,
           executor: str | Executor | None = None, pipeline: Pipeline | None = None,
           progress: bool | Reporter | None = None) -> PipelineRun:
    """Re-run a failed (or killed) pipeline run as a new run: the steps that succeeded are
    reused whatever their cache setting, the others run again with the same parameters and
    dataset versions. ``pipeline`` defaults to the one at the run's recorded source."""
    from loopml.client.fluent import default_client
    from loopml.pipelines.loading import load_object

    client = client or default_client()
    with client.meta.read() as conn:
        old = records.get_pipeline_run(conn, run_id)
    if old.status == RunStatus.FINISHED.value:
        raise Conflict(f"pipeline run {old.run_id} finished; there is nothing to resume "
                       "(run the pipeline again to start a new run)")
    if old.status == RunStatus.RUNNING.value:
        if _driver_alive(old):
            raise Conflict(f"pipeline run {old.run_id} is still running (process {old.pid} "
                           f"on {old.host}); wait for it or stop it first")
        _mark_dead(client, old)
    if pipeline is None:
        found = load_object(old.source)
        if not isinstance(found, Pipeline):
            raise InvalidArgument(f"{old.source} is not a @loopml.pipeline (it is a "
                                  f"{type(found).__name__}); pass the pipeline explicitly")
        pipeline = found
    reuse = {s.node: s.outputs for s in old.steps if s.status.succeeded and s.outputs}
    return run_pipeline(pipeline, old.params, executor=executor or old.executor,
                        sample=old.sample, client=client, progress=progress, reuse=reuse,
                        resumed_from=old.run_id)


def _mark_dead(client: Client, run: PipelineRun) -> None:
    """A run whose driver died (kill -9): it and its running steps become KILLED/FAILED."""
    with client.meta.write() as conn:
        for step in run.steps:
            if step.status is StepStatus.RUNNING and step.child_run_id is not None:
                records.finish_step(conn, pipeline_run_id=run.run_id, node=step.node,
                                    status=StepStatus.FAILED, child_run_id=step.child_run_id,
                                    attempts=step.attempts,
                                    error="the driver process died while the step ran")
        records.finish_pipeline_run(conn, run.run_id, RunStatus.KILLED)
