"""``loopml agent``: the controller loop that retrains, gates, deploys and rolls back."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import format_time, print_json, print_table

__all__ = ["agent"]


def _log(line: str) -> None:
    click.echo(f"{datetime.now(tz=UTC):%H:%M:%S} {line}", err=True)


def _on_signals(stop: Any) -> None:
    """SIGTERM and the first Ctrl-C stop the loop gracefully; a second Ctrl-C interrupts."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, _frame: Any) -> None:
        _log(f"{signal.Signals(signum).name}: stopping (waiting for running pipelines; "
             "Ctrl-C again to interrupt)")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@click.command("agent")
@click.option("--project", "project_file", default=None, type=click.Path(dir_okay=False),
              help="The project file with the triggers (default: ./loopml.yaml).")
@click.option("--once", is_flag=True, help="Evaluate every trigger once, wait for the "
              "pipelines started, hand their versions to the rollout policy, and exit "
              "(for cron or CI); exits 1 if a retrain failed.")
@click.option("--interval", default=None, help="Between two evaluations, e.g. 30s or 5m "
              "(default: the project's agent.interval, else the agent_interval setting).")
@click.option("--executor", default=None,
              help="Where pipelines run: inline, processes[:N], ray-local or ray://host:port.")
@click.option("--lease-ttl", default=None, help="How long leadership lasts unless renewed, "
              "e.g. 15s (agents sharing a database elect one leader).")
@json_option
def agent(project_file: str | None, once: bool, interval: str | None, executor: str | None,
          lease_ttl: str | None, as_json: bool) -> None:
    """Run the automation loop: evaluate the triggers of loopml.yaml, run the pipelines they
    start, hand new versions to the gate and rollout policy, record every decision (see
    loopml events). Several agents against one database elect one leader.

    \b
    loopml.yaml, e.g.:
      defaults: {pipeline: pipelines/train.py:churn, model: churn, min_interval: 10m}
      triggers:
        more-data: {kind: new_data, dataset: churn, min_rows: 1000}
        nightly:   {kind: schedule, cron: "0 3 * * *", timezone: Europe/Paris}
        drift:     {kind: drift, deployment: churn-api}
        by-hand:   {kind: manual}
    (kinds: new_data, schedule, drift, decay, code_change, manual)
    """
    from loopml.automation.agent import Agent
    from loopml.automation.events import list_events
    from loopml.automation.project import load_project
    from loopml.durations import parse_duration
    from loopml.tracking.records import now_ms

    project = load_project(project_file)
    client = open_client()
    started = now_ms()
    runner = Agent(project, client=client, executor=executor,
                   interval=None if interval is None else parse_duration(
                       interval, what="--interval"),
                   lease_ttl=None if lease_ttl is None else parse_duration(
                       lease_ttl, what="--lease-ttl"),
                   log=_log)
    _on_signals(runner.stop)
    runner.run(once=once)
    if not once:
        return
    found = list_events(client.meta, since=started, include=("automation",), limit=1000)
    if as_json:
        print_json([e.to_dict() for e in found])
    elif found:
        print_table(("time (UTC)", "event", "trigger", "model", "run", "reason"),
                    [(format_time(e.at), e.kind, e.trigger or "-",
                      f"{e.model} v{e.version}" if e.version is not None else e.model or "-",
                      (e.run_id or "-")[:8], e.reason) for e in found])
    else:
        click.echo("nothing fired")
    if any(e.kind == "run_failed" and not e.data.get("retry") and e.actor == runner.holder
           for e in found):
        sys.exit(1)
