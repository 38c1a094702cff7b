"""Hyperparameter tuning: Optuna study journals and tune() calls.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hpo_journal",
        sa.Column("study", sa.String(256), nullable=False),
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("log", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("study", "seq", name="pk_hpo_journal"),
    )
    op.create_table(
        "hpo_tunings",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("study", sa.String(256), nullable=False),
        sa.Column("n_trials", sa.Integer, nullable=True),
        sa.Column("claimed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_hpo_tunings"),
    )
    op.create_index("ix_hpo_tunings_study_created_at", "hpo_tunings", ["study", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_hpo_tunings_study_created_at", table_name="hpo_tunings")
    op.drop_table("hpo_tunings")
    op.drop_table("hpo_journal")
