"""Monitoring: checked windows (reports), their results as a time series, alerts, and the
reference profiles of model versions.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitor_reports",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("endpoint", sa.String(256), nullable=False),
        sa.Column("model", sa.String(256), nullable=False, server_default=""),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("window_end", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("failed", sa.String(128), nullable=False, server_default=""),
        sa.Column("drift_score", sa.Float, nullable=True),
        sa.Column("report", sa.String(64), nullable=False),
        sa.Column("profile", sa.String(64), nullable=True),
        sa.Column("reference", sa.String(64), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_reports"),
    )
    op.create_index("ix_monitor_reports_endpoint_window_end", "monitor_reports",
                    ["endpoint", "window_end"])
    op.create_table(
        "monitor_results",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("report_id", sa.BigInteger, nullable=False),
        sa.Column("endpoint", sa.String(256), nullable=False),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("window_end", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("column_name", sa.String(256), nullable=False, server_default=""),
        sa.Column("statistic", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("passed", sa.Boolean, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_results"),
        sa.ForeignKeyConstraint(["report_id"], ["monitor_reports.id"],
                                name="fk_monitor_results_report_id_monitor_reports"),
    )
    op.create_index("ix_monitor_results_endpoint_kind_column_name_window_end",
                    "monitor_results", ["endpoint", "kind", "column_name", "window_end"])
    op.create_index("ix_monitor_results_report_id", "monitor_results", ["report_id"])
    op.create_table(
        "monitor_alerts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("endpoint", sa.String(256), nullable=False),
        sa.Column("report_id", sa.BigInteger, nullable=True),
        sa.Column("model", sa.String(256), nullable=False, server_default=""),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("column_name", sa.String(256), nullable=False, server_default=""),
        sa.Column("statistic", sa.String(64), nullable=False, server_default=""),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("window_end", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("delivered", sa.Text, nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_alerts"),
        sa.ForeignKeyConstraint(["report_id"], ["monitor_reports.id"],
                                name="fk_monitor_alerts_report_id_monitor_reports"),
    )
    op.create_index("ix_monitor_alerts_endpoint_id", "monitor_alerts", ["endpoint", "id"])
    op.create_index("ix_monitor_alerts_created_at", "monitor_alerts", ["created_at"])
    op.create_table(
        "model_references",
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("roles", sa.Text, nullable=False, server_default="{}"),
        sa.Column("importance", sa.Text, nullable=True),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("version_id", name="pk_model_references"),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"],
                                name="fk_model_references_version_id_model_versions"),
    )


def downgrade() -> None:
    op.drop_table("model_references")
    op.drop_index("ix_monitor_alerts_created_at", table_name="monitor_alerts")
    op.drop_index("ix_monitor_alerts_endpoint_id", table_name="monitor_alerts")
    op.drop_table("monitor_alerts")
    op.drop_index("ix_monitor_results_report_id", table_name="monitor_results")
    op.drop_index("ix_monitor_results_endpoint_kind_column_name_window_end",
                  table_name="monitor_results")
    op.drop_table("monitor_results")
    op.drop_index("ix_monitor_reports_endpoint_window_end", table_name="monitor_reports")
    op.drop_table("monitor_reports")
