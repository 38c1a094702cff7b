"""Latest value of each metric per run, indexed for search; backfilled from history.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BACKFILL = """
INSERT INTO latest_metrics (run_id, key, experiment_id, step, timestamp, value, is_nan)
SELECT m.run_id, m.key, r.experiment_id, m.step, m.timestamp, m.value, m.is_nan
FROM metrics m JOIN runs r ON r.id = m.run_id
WHERE m.id = (
    SELECT m2.id FROM metrics m2 WHERE m2.run_id = m.run_id AND m2.key = m.key
    ORDER BY m2.step DESC, m2.timestamp DESC, m2.id DESC LIMIT 1
)
"""


def upgrade() -> None:
    op.create_table(
        "latest_metrics",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=True),
        sa.Column("is_nan", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_latest_metrics"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE",
                                name="fk_latest_metrics_run_id_runs"),
        sqlite_with_rowid=False,
    )
    # run_id last: the index covers a walk in value order (no visit to the table rows).
    op.create_index("ix_latest_metrics_experiment_id_key_value_run_id", "latest_metrics",
                    ["experiment_id", "key", "value", "run_id"])
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_table("latest_metrics")
