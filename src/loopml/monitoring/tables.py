"""Tables of monitoring (created by migration 0008).

``monitor_reports`` holds one row per checked window of an endpoint (a deployment's name, or
the model reference a plain ``loopml serve`` filed its payload log under): the model version
that answered, the window's time span and row count, the checks that failed, and three blobs
— the report's JSON, the window's profile and the reference profile — so a report can be
shown (or drawn as HTML) again later without re-reading a row of the payload log.

``monitor_results`` is the time series the reports break into: one row per (window, check,
column, statistic) with its value, and for the statistics a verdict rests on, the threshold
and whether it passed. ``loopml monitor show`` and the automation triggers read it by
endpoint, check and column over time.

``monitor_alerts`` records every failed check once, with the sinks it was sent to
(``delivered``: JSON ``{sink: "ok" | "error: …"}``); readers poll it by endpoint and id.

``model_references`` gives a model version its reference profile: the profile's blob (the
training data with the model's predictions and, when known, the target), the role of its
special columns, optional feature importances, and where it came from.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import BigId, Millis, metadata

__all__ = ["model_references", "monitor_alerts", "monitor_reports", "monitor_results"]

monitor_reports = sa.Table(
    "monitor_reports", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(256), nullable=False),
    sa.Column("model", sa.String(256), nullable=False, server_default=""),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("window_start", Millis, nullable=False),
    sa.Column("window_end", Millis, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    # The failed checks, comma-separated (drift,quality,performance); "" when all passed.
    sa.Column("failed", sa.String(128), nullable=False, server_default=""),
    sa.Column("drift_score", sa.Float, nullable=True),
    # Blobs (content addresses): the report's JSON, the window's and the reference profile.
    sa.Column("report", sa.String(64), nullable=False),
    sa.Column("profile", sa.String(64), nullable=True),
    sa.Column("reference", sa.String(64), nullable=True),
    sa.Column("created_at", Millis, nullable=False),
    sa.Index(None, "endpoint", "window_end"),
)

monitor_results = sa.Table(
    "monitor_results", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("report_id", sa.BigInteger, sa.ForeignKey("monitor_reports.id"), nullable=False),
    sa.Column("endpoint", sa.String(256), nullable=False),
    sa.Column("window_start", Millis, nullable=False),
    sa.Column("window_end", Millis, nullable=False),
    # drift | prediction_drift | target_drift | quality | performance | window
    sa.Column("kind", sa.String(32), nullable=False),
    # "" for a check of the whole window (the drift score, a performance metric).
    sa.Column("column_name", sa.String(256), nullable=False, server_default=""),
    sa.Column("statistic", sa.String(64), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    # None for a statistic that is reported, not judged.
    sa.Column("passed", sa.Boolean, nullable=True),
    sa.Index(None, "endpoint", "kind", "column_name", "window_end"),
    sa.Index(None, "report_id"),
)

monitor_alerts = sa.Table(
    "monitor_alerts", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(256), nullable=False),
    sa.Column("report_id", sa.BigInteger, sa.ForeignKey("monitor_reports.id"), nullable=True),
    sa.Column("model", sa.String(256), nullable=False, server_default=""),
    sa.Column("version", sa.Integer, nullable=True),
    # drift | prediction_drift | target_drift | quality | performance
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("column_name", sa.String(256), nullable=False, server_default=""),
    sa.Column("statistic", sa.String(64), nullable=False, server_default=""),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("window_start", Millis, nullable=False),
    sa.Column("window_end", Millis, nullable=False),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("delivered", sa.Text, nullable=False, server_default="{}"),
    sa.Index(None, "endpoint", "id"),
    sa.Index(None, "created_at"),
)

model_references = sa.Table(
    "model_references", metadata,
    sa.Column("version_id", sa.String(32), sa.ForeignKey("model_versions.id"),
              primary_key=True),
    sa.Column("profile", sa.String(64), nullable=False),
    # JSON: {column: "prediction" | "target"} (the other columns are features).
    sa.Column("roles", sa.Text, nullable=False, server_default="{}"),
    # JSON: {feature: importance}, or null when the model gave none.
    sa.Column("importance", sa.Text, nullable=True),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
)
