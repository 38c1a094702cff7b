"""Pipelines: pipeline runs and their steps (with the step cache index).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("pipeline", sa.String(256), nullable=False),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("params", sa.Text, nullable=False, server_default="{}"),
        sa.Column("graph", sa.Text, nullable=False, server_default="{}"),
        sa.Column("executor", sa.String(256), nullable=False, server_default="inline"),
        sa.Column("sample", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resumed_from", sa.String(32), nullable=True),
        sa.Column("host", sa.String(256), nullable=False, server_default=""),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("ended_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_pipeline_runs"),
    )
    op.create_index("ix_pipeline_runs_pipeline_created_at", "pipeline_runs",
                    ["pipeline", "created_at"])
    op.create_table(
        "pipeline_steps",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("node", sa.String(256), nullable=False),
        sa.Column("step", sa.String(256), nullable=False),
        sa.Column("child_run_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=True),
        sa.Column("outputs", sa.Text, nullable=True),
        sa.Column("cached_from", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_at", sa.BigInteger, nullable=True),
        sa.Column("ended_at", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("logs", sa.String(64), nullable=True),
        sa.Column("device", sa.String(256), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "node", name="pk_pipeline_steps"),
        sa.ForeignKeyConstraint(["run_id"], ["pipeline_runs.run_id"],
                                name="fk_pipeline_steps_run_id_pipeline_runs"),
    )
    op.create_index("ix_pipeline_steps_cache_key", "pipeline_steps", ["cache_key"])


def downgrade() -> None:
    op.drop_index("ix_pipeline_steps_cache_key", table_name="pipeline_steps")
    op.drop_table("pipeline_steps")
    op.drop_index("ix_pipeline_runs_pipeline_created_at", table_name="pipeline_runs")
    op.drop_table("pipeline_runs")
