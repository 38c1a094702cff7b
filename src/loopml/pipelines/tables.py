"""Tables of pipeline runs and their steps (created by migration 0005).

A pipeline run is also a tracked run (``runs.id``); each executed step is a child run.
``pipeline_steps.cache_key`` indexes finished steps so a later run with the same code,
inputs and params reuses their outputs.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import Millis, metadata

__all__ = ["pipeline_runs", "pipeline_steps"]

pipeline_runs = sa.Table(
    "pipeline_runs", metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("pipeline", sa.String(256), nullable=False),
    # Where the pipeline function lives ("path/to/file.py:name" or "module:name").
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    # JSON: parameters, and the DAG as traced (nodes, their steps and dependencies).
    sa.Column("params", sa.Text, nullable=False, server_default="{}"),
    sa.Column("graph", sa.Text, nullable=False, server_default="{}"),
    sa.Column("executor", sa.String(256), nullable=False, server_default="inline"),
    sa.Column("sample", sa.Integer, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("resumed_from", sa.String(32), nullable=True),
    # The driver process, so a run whose driver died (kill -9) can be told from a live one.
    sa.Column("host", sa.String(256), nullable=False, server_default=""),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("ended_at", Millis, nullable=True),
    sa.Index(None, "pipeline", "created_at"),
)

pipeline_steps = sa.Table(
    "pipeline_steps", metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("pipeline_runs.run_id"), primary_key=True),
    sa.Column("node", sa.String(256), primary_key=True),
    sa.Column("step", sa.String(256), nullable=False),
    sa.Column("child_run_id", sa.String(32), nullable=True),
    # pending, running, completed, cached, failed, skipped
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cache_key", sa.String(64), nullable=True),
    # JSON list of output references (materializer, kind, digest, type).
    sa.Column("outputs", sa.Text, nullable=True),
    sa.Column("cached_from", sa.String(32), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("started_at", Millis, nullable=True),
    sa.Column("ended_at", Millis, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("logs", sa.String(64), nullable=True),
    sa.Column("device", sa.String(256), nullable=True),
    sa.Index(None, "cache_key"),
)
