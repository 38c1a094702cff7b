"""``loopml events``: the audit timeline of automation, deployments and monitoring alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import format_time, print_json, print_table
from loopml.errors import InvalidArgument

__all__ = ["events", "parse_since"]


def parse_since(text: str, *, now_ms: int) -> int:
    """ms since the epoch from a look-back (``90s``, ``30m``, ``1h``, ``2d``) or an ISO time
    (``2025-03-30``, ``2025-03-30T08:00``; UTC unless it names an offset)."""
    from loopml.durations import parse_duration

    try:
        return now_ms - int(parse_duration(text, what="--since") * 1000)
    except InvalidArgument:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"--since {text!r} is neither a look-back (30m, 1h, 2d) nor an "
                              "ISO time (2025-03-30T08:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _who(event: Any) -> str:
    if event.version is not None and event.model:
        return f"{event.model} v{event.version}"
    return event.model or "-"


@click.command("events")
@click.option("--since", default=None, help="Only events this recent (30m, 1h, 2d) or after "
              "an ISO time.")
@click.option("--model", default=None, help="Only events of this model.")
@click.option("--deployment", default=None, help="Only events of this deployment.")
@click.option("--kind", default=None, help="Only events of this kind (trigger_fired, "
              "promoted, deploy_rollback, alert_drift, ...).")
@click.option("--source", "sources", multiple=True,
              type=click.Choice(["automation", "deployments", "monitoring"]),
              help="Logs to merge (repeatable; default: all three).")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True,
              help="The newest this many events.")
@json_option
def events(since: str | None, model: str | None, deployment: str | None, kind: str | None,
           sources: tuple[str, ...], limit: int, as_json: bool) -> None:
    """The timeline: triggers fired, runs, gates, rollouts, promotions, rollbacks and
    monitoring alerts, oldest first, with the reason and numbers of each decision."""
    from loopml.client.ops import EVENT_SOURCES
    from loopml.tracking.records import now_ms

    start = None if since is None else parse_since(since, now_ms=now_ms())
    found = open_client().list_events(since=start, kind=kind, model=model,
                                      deployment=deployment, limit=limit,
                                      include=sources or EVENT_SOURCES)
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    print_table(("time (UTC)", "event", "trigger", "model", "deployment", "run", "reason"),
                [(format_time(e.at), e.kind, e.trigger or "-", _who(e), e.deployment or "-",
                  (e.run_id or "-")[:8], e.reason or "-") for e in found],
                title=f"{len(found)} event(s)")
