"""``loopml experiments`` and ``loopml runs``: list, show and compare tracked runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import format_duration, format_time, format_value, print_json, print_table

__all__ = ["experiments", "runs"]

SYSTEM_TAG_PREFIX = "loopml."
def _run_dict(run: Any) -> dict[str, Any]:
    return {"run_id": run.id, "experiment_id": run.experiment_id, "name": run.name,
            "status": run.status.value, "start_time": format_time(run.start_time),
            "end_time": format_time(run.end_time), "duration_s": run.duration_s,
            "parent_run_id": run.parent_run_id, "user": run.user, "params": run.params,
            "metrics": run.metrics, "tags": run.tags}


@click.group()
def experiments() -> None:
    """Experiments: named groups of runs."""


@experiments.command("list")
@json_option
def experiments_list(as_json: bool) -> None:
    """List experiments."""
    client = open_client()
    found = client.list_experiments()
    if as_json:
        print_json([{"id": e.id, "name": e.name, "description": e.description,
                     "created_at": format_time(e.created_at)} for e in found])
        return
    print_table(["name", "id", "created (UTC)", "description"],
                [[e.name, e.id, format_time(e.created_at), e.description] for e in found],
                title=f"{len(found)} experiment(s)")


@click.group()
def runs() -> None:
    """Runs: params, metrics, tags and artifacts of each execution."""


def _search(experiment: str | None, filter_text: str | None, order_by: Sequence[str],
            max_results: int) -> list[Any]:
    return list(open_client().search_runs(experiment, filter=filter_text,
                                      order_by=list(order_by), max_results=max_results))


search_options = [
    click.option("--experiment", "-e", help="Experiment name or id (default: all)."),
    click.option("--filter", "-f", "filter_text",
                 help="e.g. \"metrics.auc > 0.9 and params.model in ('rf', 'gb')\""),
    click.option("--order-by", "-o", multiple=True, help="e.g. 'metrics.auc desc' (repeatable)."),
    click.option("--max", "max_results", default=50, show_default=True, type=int,
                 help="Most runs to show."),
]


def _with_search_options(func: Any) -> Any:
    for option in reversed(search_options):
        func = option(func)
    return func


def _metric_keys(found: Sequence[Any], limit: int) -> list[str]:
    keys: list[str] = []
    for run in found:
        keys.extend(k for k in run.metrics if k not in keys)
    return keys[:limit]


@runs.command("list")
@_with_search_options
@json_option
def runs_list(experiment: str | None, filter_text: str | None, order_by: tuple[str, ...],
              max_results: int, as_json: bool) -> None:
    """List runs, newest first, with their metrics."""
    found = _search(experiment, filter_text, order_by, max_results)
    if as_json:
        print_json([_run_dict(r) for r in found])
        return
    keys = _metric_keys(found, 6)
    print_table(["name", "run id", "status", "started (UTC)", "duration", *keys],
                [[r.name, r.id[:8], r.status.value, format_time(r.start_time),
                  format_duration(r.duration_s), *(r.metrics.get(k) for k in keys)]
                 for r in found], title=f"{len(found)} run(s)")


@runs.command("show")
@click.argument("run_id")
@click.option("--all-tags", is_flag=True, help="Include loopml.* system tags.")
@json_option
def runs_show(run_id: str, all_tags: bool, as_json: bool) -> None:
    """Show one run (RUN_ID may be a unique prefix)."""
    client = open_client()
    run_id = client.resolve_run_id(run_id)
    run = client.get_run(run_id)
    files = client.list_artifacts(run_id)
    if as_json:
        print_json({**_run_dict(run), "artifacts": [
            {"path": a.path, "size": a.size, "digest": a.digest} for a in files]})
        return
    info = [["name", run.name], ["id", run.id], ["experiment", run.experiment_id],
            ["status", run.status.value], ["started (UTC)", format_time(run.start_time)],
            ["duration", format_duration(run.duration_s)], ["parent", run.parent_run_id],
            ["user", run.user]]
    print_table(["field", "value"], info, title=f"run {run.name}")
    if run.params:
        print_table(["param", "value"], sorted(run.params.items()), title="params")
    if run.metrics:
        print_table(["metric", "last value"], sorted(run.metrics.items()), title="metrics")
    shown = {k: v for k, v in run.tags.items() if all_tags or not k.startswith(SYSTEM_TAG_PREFIX)}
    if shown:
        print_table(["tag", "value"], sorted(shown.items()), title="tags")
    if files:
        print_table(["artifact", "bytes"], [[a.path, a.size] for a in files], title="artifacts")


@runs.command("compare")
@click.argument("run_ids", nargs=-1)
@_with_search_options
@json_option
def runs_compare(run_ids: tuple[str, ...], experiment: str | None, filter_text: str | None,
                 order_by: tuple[str, ...], max_results: int, as_json: bool) -> None:
    """Compare runs side by side: the given RUN_IDS, or those an experiment/filter selects."""
    client = open_client()
    if run_ids:
        ids = [client.resolve_run_id(r) for r in run_ids]
        found = [client.get_run(i) for i in ids]
    else:
        found = _search(experiment, filter_text, order_by, max_results)
    if as_json:
        print_json([_run_dict(r) for r in found])
        return
    param_keys = sorted({k for r in found for k in r.params})
    metric_keys = sorted({k for r in found for k in r.metrics})
    rows: list[list[Any]] = [["status", *(r.status.value for r in found)],
                             ["duration", *(format_duration(r.duration_s) for r in found)]]
    rows += [[f"params.{k}", *(r.params.get(k) for r in found)] for k in param_keys]
    rows += [[f"metrics.{k}", *(_marked(r.metrics.get(k), k, found) for r in found)]
             for k in metric_keys]
    print_table(["", *(f"{r.name}\n{r.id[:8]}" for r in found)], rows,
                title=f"{len(found)} run(s) compared (* best)")


def _marked(value: float | None, key: str, found: Sequence[Any]) -> str:
    """The value, starred when it is the best of the row (lowest for loss/error keys)."""
    values = [r.metrics[key] for r in found
              if isinstance(r.metrics.get(key), float) and r.metrics[key] == r.metrics[key]]
    if value is None or len(values) < 2 or value != value:
        return format_value(value)
    lower_is_better = any(word in key.lower() for word in ("loss", "error", "rmse", "mae"))
    best = min(values) if lower_is_better else max(values)
    return format_value(value) + (" *" if value == best else "")
