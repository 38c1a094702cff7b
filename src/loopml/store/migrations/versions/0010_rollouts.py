"""Automation: rollouts of candidate model versions (direct, shadow, canary), their stage,
what they measured and how they ended.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automation_rollouts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("challenger", sa.Integer, nullable=False),
        sa.Column("champion", sa.Integer, nullable=True),
        sa.Column("deployment", sa.String(128), nullable=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("deadline_at", sa.BigInteger, nullable=True),
        sa.Column("state", sa.Text, nullable=False, server_default="{}"),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_automation_rollouts"),
    )
    op.create_index("ix_automation_rollouts_model_started_at", "automation_rollouts",
                    ["model", "started_at"])
    op.create_index("ix_automation_rollouts_outcome", "automation_rollouts", ["outcome"])


def downgrade() -> None:
    op.drop_index("ix_automation_rollouts_outcome", table_name="automation_rollouts")
    op.drop_index("ix_automation_rollouts_model_started_at", table_name="automation_rollouts")
    op.drop_table("automation_rollouts")
