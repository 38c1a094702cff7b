"""``loopml run FILE.py:PIPELINE`` and ``loopml pipelines list|show|resume``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import format_time, print_json, print_table
from loopml.errors import InvalidArgument

__all__ = ["pipelines", "run"]


def _params(pairs: tuple[str, ...], params_file: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if params_file is not None:
        import yaml

        path = Path(params_file)
        try:
            loaded = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise InvalidArgument(f"cannot read {path} ({exc.strerror}); check the path") \
                from None
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"{path} is not valid YAML ({exc}); fix it") from None
        if not isinstance(loaded, dict):
            raise InvalidArgument(f"{path} must map parameter names to values, e.g. 'lr: 0.05'")
        values.update(loaded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidArgument(f"--param {pair!r} must read NAME=VALUE, e.g. --param lr=0.05")
        values[name.strip()] = value
    return values


def _steps_table(run: Any) -> None:
    rows = []
    for step in run.steps:
        detail = step.error or step.reason or (
            f"from {step.cached_from[:8]}" if step.cached_from else "")
        duration = f"{step.duration_ms / 1000:.2f}s" if step.duration_ms is not None else "-"
        outputs = ", ".join(f"{o.materializer}:{o.digest[:10]}" for o in step.outputs)
        rows.append((step.node, step.status.value, duration, step.attempts or "-",
                     outputs or "-", detail or "-"))
    recorded = {s.node for s in run.steps}
    for node in run.graph.get("nodes", []):
        if node["id"] not in recorded:
            rows.append((node["id"], "not run", "-", "-", "-", "-"))
    print_table(("step", "status", "duration", "attempts", "outputs", "detail"), rows,
                title=f"pipeline {run.pipeline} run {run.run_id} [{run.status}]")


def _show(run: Any, as_json: bool) -> None:
    if as_json:
        print_json(run.to_json())
    else:
        _steps_table(run)


@click.command("run")
@click.argument("target")
@click.option("--param", "pairs", multiple=True, metavar="NAME=VALUE",
              help="A pipeline parameter (repeatable).")
@click.option("--params-file", type=click.Path(dir_okay=False), default=None,
              help="YAML file of parameters (--param wins).")
@click.option("--executor", default=None,
              help="inline (default), processes[:N], ray-local or ray://host:port.")
@click.option("--sample", type=click.IntRange(min=1), default=None,
              help="Run on N sampled rows of each input table; never registers or deploys.")
@click.option("--no-cache", is_flag=True, help="Execute every step, ignoring cached results.")
@click.option("--experiment", default=None, help="Experiment of the run (default: the "
              "pipeline's name).")
@json_option
def run(target: str, pairs: tuple[str, ...], params_file: str | None, executor: str | None,
        sample: int | None, no_cache: bool, experiment: str | None, as_json: bool) -> None:
    """Run the pipeline TARGET (FILE.py:NAME or MODULE:NAME)."""
    from loopml.errors import StepFailed
    from loopml.pipelines.flow import Pipeline
    from loopml.pipelines.loading import load_object

    found = load_object(target)
    if not isinstance(found, Pipeline):
        raise InvalidArgument(f"{target} is a {type(found).__name__}, not a @loopml.pipeline")
    client = open_client()
    try:
        result = found.run(_params(pairs, params_file), executor=executor, sample=sample,
                           cache=not no_cache, experiment=experiment, client=client,
                           progress=client.settings.progress and not as_json)
    except StepFailed as exc:
        if as_json and exc.run_id:
            _show(_get(client, exc.run_id), as_json=True)
        raise
    if as_json:
        _show(result, as_json=True)
    else:
        _summary(result)


def _summary(run: Any) -> None:
    """One line after the per-step progress lines (the full table: ``pipelines show``)."""
    counts: dict[str, int] = {}
    for step in run.steps:
        counts[step.status.value] = counts.get(step.status.value, 0) + 1
    seconds = ((run.ended_at or run.created_at) - run.created_at) / 1000
    parts = ", ".join(f"{n} {status}" for status, n in counts.items())
    click.echo(f"pipeline {run.pipeline} run {run.run_id} {run.status} in {seconds:.2f} s "
               f"({parts}); details: loopml pipelines show {run.run_id}")


def _get(client: Any, run_id: str) -> Any:
    return client.get_pipeline_run(run_id)


@click.group()
def pipelines() -> None:
    """Pipeline runs: list, show the DAG of one, resume a failed one."""


@pipelines.command("list")
@click.option("--pipeline", "name", default=None, help="Only runs of this pipeline.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
def list_runs(name: str | None, limit: int, as_json: bool) -> None:
    """Recent pipeline runs, newest first."""
    found = open_client().list_pipeline_runs(pipeline=name, limit=limit)
    if as_json:
        print_json([r.to_json() for r in found])
        return
    print_table(("run", "pipeline", "status", "started", "duration", "executor", "sample",
                 "resumed from"),
                [(r.run_id, r.pipeline, r.status, format_time(r.created_at),
                  f"{(r.ended_at - r.created_at) / 1000:.2f}s" if r.ended_at else "-",
                  r.executor, r.sample, r.resumed_from) for r in found])


@pipelines.command("show")
@click.argument("run_id")
@json_option
def show(run_id: str, as_json: bool) -> None:
    """The DAG of a run: each step's status, duration, cache hit and outputs."""
    _show(_get(open_client(), run_id), as_json)


@pipelines.command("resume")
@click.argument("run_id")
@click.option("--executor", default=None, help="Executor for the re-run (default: the run's).")
@json_option
def resume_run(run_id: str, executor: str | None, as_json: bool) -> None:
    """Re-run a failed or killed run from the failed step, reusing what succeeded."""
    from loopml.pipelines.flow import resume

    client = open_client()
    result = resume(run_id, client=client, executor=executor,
                    progress=client.settings.progress and not as_json)
    if as_json:
        _show(result, as_json=True)
    else:
        _summary(result)
