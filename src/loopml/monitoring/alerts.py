"""Alerts: every failed check of a monitored window, recorded once and sent to the sinks.

A check fails when the dataset-level drift verdict is "drifted" (kind ``drift``), when a
prediction or target column drifted (``prediction_drift``, ``target_drift``, one alert per
column), for each data-quality issue of severity ``error`` (``quality``, per column and kind
of issue; warnings such as an unexpected column are reported, not alerted) and for each
performance metric worse than the baseline (``performance``). Each becomes a
``monitor_alerts`` row, then goes to the sinks:

- a log line (logger ``loopml.monitoring``, level WARNING), always;
- each webhook URL of the ``monitor_webhooks`` setting (``LOOPML_MONITOR_WEBHOOKS``,
  comma-separated): one ``POST`` per window with the JSON body
  ``{"event": "loopml.monitor.alerts", "endpoint": …, "window": [start_ms, end_ms],
  "alerts": [Alert.to_dict(), …]}``, a 3-second timeout and no retry.

A sink that fails never fails the check: the outcome is recorded in the alerts' ``delivered``
(``{"log": "ok", "webhook 1 (hooks.example.com)": "error: HTTP 500"}``; URLs are not stored,
they may hold secrets). Triggers of the automation read alerts with :func:`list_alerts`, a
query by endpoint and id (``after`` is a poller's cursor) on an index.
"""

from __future__ import annotations

import dataclasses
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson

from loopml.durations import epoch_ms
from loopml.errors import InvalidArgument
from loopml.monitoring.records import Alert, insert_alert, mark_delivered
from loopml.monitoring.records import list_alerts as _list_alerts
from loopml.monitoring.results import MonitorReport

if TYPE_CHECKING:
    from loopml.client.base import ClientBase
    from loopml.config import Settings
    from loopml.store import MetadataStore

__all__ = ["AlertDraft", "alerts_for", "deliver", "fire_alerts", "list_alerts", "webhook_urls"]

logger = logging.getLogger("loopml.monitoring")

WEBHOOK_TIMEOUT_S = 3.0
_ROLE_KIND = {"prediction": "prediction_drift", "target": "target_drift"}


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """A failed check, before it is recorded."""

    kind: str
    column: str
    statistic: str
    message: str
    value: float | None = None
    threshold: float | None = None


def alerts_for(report: MonitorReport) -> list[AlertDraft]:
    """The failed checks of ``report`` (none for an empty window)."""
    where = report.deployment or report.current
    drafts: list[AlertDraft] = []
    drift = report.drift
    if drift is not None:
        features = [c for c in drift.columns if c.role == "feature" and c.drifted]
        if drift.drifted:
            named = ", ".join(f"{c.column} ({c.effect} {c.effect_value:.3g})"
                              if c.effect_value is not None else c.column for c in features)
            drafts.append(AlertDraft(
                "drift", "", "score",
                f"data drift on {where}: drift score {drift.score:.3g} reached "
                f"{drift.threshold:.3g}; drifted: {named or 'none'}", drift.score,
                drift.threshold))
        drafts.extend(AlertDraft(_ROLE_KIND[c.role], c.column, c.effect,
                                 f"{c.role} drift on {where}, column {c.column}: {c.reason}",
                                 c.effect_value, c.threshold)
                      for c in drift.columns if c.drifted and c.role in _ROLE_KIND)
    if report.quality is not None:
        drafts.extend(AlertDraft("quality", issue.column, issue.kind,
                                 f"data quality on {where}: {issue.message}", issue.count)
                      for issue in report.quality.issues if issue.severity == "error")
    performance = report.performance
    if performance is not None:
        drafts.extend(AlertDraft("performance", "", name,
                                 f"performance on {where}: {performance.message}",
                                 performance.metrics.get(name),
                                 performance.baseline.get(name))
                      for name in performance.degraded)
    return drafts


def webhook_urls(settings: Settings) -> list[str]:
    """The webhook URLs of the ``monitor_webhooks`` setting."""
    urls = [url.strip() for url in settings.monitor_webhooks.split(",") if url.strip()]
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgument(f"monitor_webhooks holds {url!r}, which is not an http(s) "
                                  "URL; fix LOOPML_MONITOR_WEBHOOKS (comma-separated URLs)")
    return urls


def _post(url: str, body: bytes, timeout: float) -> str:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "loopml-monitor"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return "ok" if 200 <= answer.status < 300 else f"error: HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"error: HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"error: {reason}"[:200]


def deliver(alerts: Sequence[Alert], *, webhooks: Sequence[str] = (),
            timeout: float = WEBHOOK_TIMEOUT_S) -> dict[str, str]:
    """Send ``alerts`` (of one window) to the log and the webhooks; the outcome per sink."""
    if not alerts:
        return {}
    for alert in alerts:
        logger.warning("monitoring alert #%d %s on %s: %s", alert.id, alert.kind,
                       alert.endpoint, alert.message)
    outcome = {"log": "ok"}
    first = alerts[0]
    body = orjson.dumps({"event": "loopml.monitor.alerts", "endpoint": first.endpoint,
                         "window": [first.window_start, first.window_end],
                         "alerts": [alert.to_dict() for alert in alerts]})
    for number, url in enumerate(webhooks, 1):
        sink = f"webhook {number} ({urlsplit(url).hostname})"
        outcome[sink] = _post(url, body, timeout)
        if outcome[sink] != "ok":
            logger.error("monitoring alerts of %s could not be sent to %s: %s",
                         first.endpoint, sink, outcome[sink])
    return outcome


def fire_alerts(meta: MetadataStore, report: MonitorReport, *, endpoint: str,
                report_id: int | None = None, webhooks: Sequence[str] = (),
                timeout: float = WEBHOOK_TIMEOUT_S) -> list[Alert]:
    """Record the failed checks of ``report`` as alerts, send them, record where they went."""
    drafts = alerts_for(report)
    if not drafts:
        return []
    window = report.window or (0, 0)
    model, _, number = (report.model_version or "").partition("/")
    with meta.write() as conn:
        alerts = [insert_alert(conn, endpoint=endpoint, report_id=report_id, model=model,
                               version=int(number) if number.isdigit() else None,
                               window=window, **dataclasses.asdict(draft))
                  for draft in drafts]
    delivered = deliver(alerts, webhooks=webhooks, timeout=timeout)
    with meta.write() as conn:
        mark_delivered(conn, [alert.id for alert in alerts], delivered)
    return [dataclasses.replace(alert, delivered=delivered) for alert in alerts]


def list_alerts(deployment: str | None = None, since: int | datetime | None = None, *,
                after: int | None = None, kind: str | None = None, limit: int = 100,
                client: ClientBase | None = None) -> list[Alert]:
    """Alerts of ``deployment`` (every endpoint when None), oldest first: created at or after
    ``since``, with an id above ``after`` (a poller's cursor), of one ``kind``; the newest
    ``limit``."""
    from loopml.monitoring.reference import use_client

    stores = use_client(client)
    with stores.meta.read() as conn:
        return _list_alerts(conn, endpoint=deployment, since=epoch_ms(since, what="since"),
                            after=after, kind=kind, limit=limit)
