"""Automation: the audit timeline of events, trigger state, the retrains the agent started,
and the agents' leader lease.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "automation_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(128), nullable=False, server_default=""),
        sa.Column("pipeline", sa.String(512), nullable=False, server_default=""),
        sa.Column("model", sa.String(256), nullable=False, server_default=""),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("deployment", sa.String(128), nullable=False, server_default=""),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(256), nullable=False, server_default=""),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("data", sa.Text, nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name="pk_automation_events"),
    )
    op.create_index("ix_automation_events_at", "automation_events", ["at"])
    op.create_index("ix_automation_events_model_at", "automation_events", ["model", "at"])
    op.create_table(
        "trigger_state",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_fired_at", sa.BigInteger, nullable=True),
        sa.Column("last_alert_id", sa.BigInteger, nullable=True),
        sa.Column("baseline", sa.Text, nullable=False, server_default="{}"),
        sa.Column("fire_requested_at", sa.BigInteger, nullable=True),
        sa.Column("fire_requested_by", sa.String(256), nullable=False, server_default=""),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_trigger_state"),
    )
    op.create_table(
        "automation_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(128), nullable=False),
        sa.Column("pipeline", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("host", sa.String(256), nullable=False, server_default=""),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("model", sa.String(256), nullable=False, server_default=""),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("candidate", sa.String(16), nullable=False, server_default=""),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("ended_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_automation_runs"),
    )
    op.create_index("ix_automation_runs_pipeline_status", "automation_runs",
                    ["pipeline", "status"])
    op.create_index("ix_automation_runs_status", "automation_runs", ["status"])
    op.create_table(
        "agent_lease",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(256), nullable=False, server_default=""),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("acquired_at", sa.BigInteger, nullable=False),
        sa.Column("renewed_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_agent_lease"),
    )


def downgrade() -> None:
    op.drop_table("agent_lease")
    op.drop_index("ix_automation_runs_status", table_name="automation_runs")
    op.drop_index("ix_automation_runs_pipeline_status", table_name="automation_runs")
    op.drop_table("automation_runs")
    op.drop_table("trigger_state")
    op.drop_index("ix_automation_events_model_at", table_name="automation_events")
    op.drop_index("ix_automation_events_at", table_name="automation_events")
    op.drop_table("automation_events")
