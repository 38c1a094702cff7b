"""The web UI: server-rendered pages over the same client the REST API uses.

``routes()`` (in :data:`loopml.server.app.ROUTE_TABLES`) serves the pages under ``/ui``:
experiments and runs (filter, sort, columns, metric charts, comparison), datasets (versions,
schema, column statistics, diffs), models (versions, aliases, audit history, lineage),
pipelines (DAG, steps, cache hits, logs), deployments (traffic, requests, monitoring, alerts),
the review queue (keyboard labelling) and the automation timeline. ``loopml ui`` and
``loopml server`` both serve it. Pages are Jinja2 templates (``templates/``) with loopml's
own CSS and script (``static/``); charts are drawn by Plotly, whose script the server takes
from the installed ``plotly`` package (the ``ui`` extra).
"""

from __future__ import annotations

from loopml.ui.routing import routes

__all__ = ["routes"]
