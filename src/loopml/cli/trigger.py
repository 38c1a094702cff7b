"""``loopml trigger list|check|fire``: the project's triggers, their state, firing by hand."""

from __future__ import annotations

from typing import Any

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import format_time, print_json, print_table

__all__ = ["trigger"]

project_option = click.option("--project", "project_file", default=None,
                              type=click.Path(dir_okay=False),
                              help="The project file (default: ./loopml.yaml).")


def _load(project_file: str | None) -> Any:
    from loopml.automation.project import load_project

    return load_project(project_file)


def _rows(project: Any, client: Any) -> list[dict[str, Any]]:
    from loopml.automation import records
    from loopml.automation.triggers import ScheduleTrigger
    from loopml.tracking.records import now_ms

    with client.meta.read() as conn:
        states = records.list_states(conn)
        running = {t.name: records.running_run(conn, t.pipeline_ref) for t in project.triggers}
    rows = []
    for trigger in project.triggers:
        state = states.get(trigger.name)
        next_at = None
        if isinstance(trigger, ScheduleTrigger):
            anchor = now_ms() if state is None else max(state.last_fired_at or 0,
                                                        state.created_at)
            next_at = trigger.next_time(anchor)
        retrain = running[trigger.name]
        rows.append({
            "name": trigger.name, "kind": trigger.kind, "condition": trigger.describe(),
            "pipeline": trigger.pipeline_ref, "model": trigger.model,
            "deployment": trigger.deployment,
            "last_fired_at": None if state is None else state.last_fired_at,
            "next_at": next_at,
            "fire_requested_by": None if state is None or state.fire_requested_at is None
            else state.fire_requested_by or "someone",
            "running": None if retrain is None else {"retrain": retrain.id,
                                                     "run_id": retrain.run_id,
                                                     "attempt": retrain.attempt},
            "error": None if state is None else state.last_error})
    return rows


def _status(row: dict[str, Any]) -> str:
    if row["error"]:
        return f"error: {row['error']}"
    if row["running"]:
        return f"retraining (run {(row['running']['run_id'] or 'starting')[:8]})"
    if row["fire_requested_by"]:
        return f"fire requested by {row['fire_requested_by']}"
    return "idle"


@click.group()
def trigger() -> None:
    """Triggers declared in loopml.yaml: list them, check them now, fire one by hand."""


@trigger.command("list")
@project_option
@json_option
def list_triggers(project_file: str | None, as_json: bool) -> None:
    """Each trigger: its condition, pipeline, last firing, next scheduled time and state."""
    rows = _rows(_load(project_file), open_client())
    if as_json:
        print_json(rows)
        return
    print_table(("trigger", "kind", "condition", "pipeline", "last fired", "next", "state"),
                [(r["name"], r["kind"], r["condition"], r["pipeline"],
                  format_time(r["last_fired_at"]), format_time(r["next_at"]), _status(r))
                 for r in rows])


@trigger.command("check")
@project_option
@json_option
def check(project_file: str | None, as_json: bool) -> None:
    """Evaluate every trigger now, without firing anything: would it fire, and why."""
    from loopml.automation import records
    from loopml.errors import LoopmlError
    from loopml.tracking.records import now_ms

    project = _load(project_file)
    meta = open_client().meta
    now = now_ms()
    results = []
    for item in project.triggers:
        with meta.read() as conn:
            state = records.get_state(conn, item.name) or records.TriggerState(
                name=item.name, created_at=now)
        try:
            firing = item.evaluate(records.StoreContext(meta, state, now))
            verdict = ("fires", firing.reason) if firing else ("quiet", "condition not met")
        except LoopmlError as exc:
            verdict = ("error", str(exc))
        if state.fire_requested_at is not None and verdict[0] != "error":
            verdict = ("fires", f"requested by hand by {state.fire_requested_by or 'someone'}")
        results.append({"name": item.name, "kind": item.kind, "verdict": verdict[0],
                        "reason": verdict[1]})
    if as_json:
        print_json(results)
        return
    print_table(("trigger", "kind", "now", "reason"),
                [(r["name"], r["kind"], r["verdict"], r["reason"]) for r in results])


@trigger.command("fire")
@click.argument("name")
@project_option
@json_option
def fire(name: str, project_file: str | None, as_json: bool) -> None:
    """Ask the agent to fire NAME on its next evaluation (loopml agent --once runs it now)."""
    from loopml.automation.agent import fire_trigger

    state = fire_trigger(name, project=_load(project_file), client=open_client())
    if as_json:
        print_json(state.to_dict())
        return
    click.echo(f"trigger {name} will fire on the agent's next evaluation (requested by "
               f"{state.fire_requested_by or 'you'} at {format_time(state.fire_requested_at)} "
               "UTC); without a running agent: loopml agent --once")
