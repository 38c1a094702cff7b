"""Automation: the human review queue (predictions chosen from the payload log for a person to
confirm or correct, and where their labels went).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(256), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("prediction", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("label", sa.Text, nullable=True),
        sa.Column("labelled_by", sa.String(256), nullable=False, server_default=""),
        sa.Column("labelled_at", sa.BigInteger, nullable=True),
        sa.Column("batch", sa.String(32), nullable=True),
        sa.Column("dataset_version", sa.String(300), nullable=True),
        sa.Column("committed_at", sa.BigInteger, nullable=True),
        sa.Column("feedback_at", sa.BigInteger, nullable=True),
        sa.Column("queued_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_items"),
        sa.UniqueConstraint("endpoint", "request_id", "row",
                            name="uq_review_items_endpoint_request_id_row"),
    )
    op.create_index("ix_review_items_endpoint_status", "review_items", ["endpoint", "status"])


def downgrade() -> None:
    op.drop_index("ix_review_items_endpoint_status", table_name="review_items")
    op.drop_table("review_items")
