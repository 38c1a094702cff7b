"""Tables of experiment tracking (created by migrations 0001 and 0002)."""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import BigId, Millis, metadata

__all__ = ["artifacts", "experiments", "latest_metrics", "metrics", "params", "runs", "tags"]

experiments = sa.Table(
    "experiments", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("lifecycle", sa.String(16), nullable=False, server_default="active"),
)

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("experiment_id", sa.String(32), sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("start_time", Millis, nullable=False),
    sa.Column("end_time", Millis, nullable=True),
    sa.Column("parent_run_id", sa.String(32), nullable=True),
    sa.Column("user", sa.String(256), nullable=False, server_default=""),
    sa.Column("lifecycle", sa.String(16), nullable=False, server_default="active"),
    sa.Index(None, "experiment_id", "start_time"),
    sa.Index(None, "parent_run_id"),
)

params = sa.Table(
    "params", metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Index(None, "key", "value"),
    sqlite_with_rowid=False,
)

tags = sa.Table(
    "tags", metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Index(None, "key", "value"),
    sqlite_with_rowid=False,
)

metrics = sa.Table(
    "metrics", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", Millis, nullable=False),
    # NaN is stored as NULL with is_nan set: SQLite cannot hold NaN.
    sa.Column("value", sa.Float(precision=53), nullable=True),
    sa.Column("is_nan", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index(None, "run_id", "key", "step"),
)

#: The last value of each metric of each run (highest step, then newest): what search filters
#: and orders on. Derived from ``metrics``; ``experiment_id`` is copied so the index serves
#: "ORDER BY metric" within an experiment.
latest_metrics = sa.Table(
    "latest_metrics", metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("experiment_id", sa.String(32), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", Millis, nullable=False),
    sa.Column("value", sa.Float(precision=53), nullable=True),
    sa.Column("is_nan", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index(None, "experiment_id", "key", "value", "run_id"),
    sqlite_with_rowid=False,
)

artifacts = sa.Table(
    "artifacts", metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
