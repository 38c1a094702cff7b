"""The automation page: the timeline of the loop's decisions (trigger → run → gate → rollout →
promote or roll back), merged with deployment changes and monitoring alerts, each with the
numbers behind it. Events of one training run are grouped into one chain.

Query parameters ``model``, ``deployment``, ``kind`` and ``limit`` narrow the listing, as
``loopml events`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from loopml.automation.events import Event, list_events
from loopml.ui import charts
from loopml.ui.render import client_of, int_param, page, render

__all__ = ["automation_page", "chains", "lane"]

DEFAULT_EVENTS, MAX_EVENTS = 200, 2000
_LANES = (("trigger", "trigger"), ("run_", "run"), ("candidate", "run"), ("gate", "gate"),
          ("rejected", "gate"), ("rollout", "rollout"), ("promoted", "promote"),
          ("rolled_back", "rollback"), ("deploy_rollback", "rollback"),
          ("deploy_auto-rollback", "rollback"), ("deploy_", "deploy"), ("alert_", "alert"),
          ("labels", "labels"), ("agent", "agent"))


def lane(kind: str) -> str:
    """The step of the loop an event kind belongs to (a row of the timeline chart)."""
    return next((name for prefix, name in _LANES if kind.startswith(prefix)), kind)


def chains(events: Sequence[Event]) -> list[tuple[str | None, list[Event]]]:
    """Events grouped by training run (in order of each group's first event); events of no
    run stand alone."""
    groups: list[tuple[str | None, list[Event]]] = []
    by_run: dict[str, list[Event]] = {}
    for event in events:
        if event.run_id:
            if event.run_id not in by_run:
                by_run[event.run_id] = []
                groups.append((event.run_id, by_run[event.run_id]))
            by_run[event.run_id].append(event)
        else:
            groups.append((None, [event]))
    return groups


def _hover(event: Event) -> str:
    subject = event.model + (f"/{event.version}" if event.version else "")
    return " · ".join(p for p in (event.kind, subject, event.deployment, event.reason) if p)


@page
def automation_page(request: Request) -> Response:
    params = request.query_params
    filters: dict[str, Any] = {k: params.get(k) or None for k in ("model", "deployment",
                                                                   "kind")}
    limit = int_param(request, "limit", DEFAULT_EVENTS, 1, MAX_EVENTS)
    events = list_events(client_of(request).meta, limit=limit, **filters)
    figure = None
    if events:
        figure = charts.timeline([(e.at, lane(e.kind), _hover(e)) for e in events],
                                 title="timeline")
    groups = list(reversed(chains(events)))
    return render(request, "automation.html", section="automation", events=events,
                  groups=groups, figure=figure, filters=filters, limit=limit, lane=lane)
