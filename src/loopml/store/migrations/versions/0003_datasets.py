"""Dataset registry: datasets, immutable versions, tags, run lineage.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("contract", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("name", name="uq_datasets_name"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tree", sa.String(64), nullable=False),
        sa.Column("files", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=True),
        sa.Column("new_files", sa.BigInteger, nullable=False),
        sa.Column("new_rows", sa.BigInteger, nullable=True),
        sa.Column("schema", sa.Text, nullable=True),
        sa.Column("profile", sa.String(64), nullable=True),
        sa.Column("validation", sa.Text, nullable=True),
        sa.Column("parent_version", sa.Integer, nullable=True),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_versions"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"],
                                name="fk_dataset_versions_dataset_id_datasets"),
        sa.UniqueConstraint("dataset_id", "version",
                            name="uq_dataset_versions_dataset_id_version"),
    )
    op.create_table(
        "dataset_tags",
        sa.Column("dataset_id", sa.String(32), nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", "tag", name="pk_dataset_tags"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"],
                                name="fk_dataset_tags_dataset_id_datasets"),
    )
    op.create_table(
        "run_datasets",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "version_id", "role", name="pk_run_datasets"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE",
                                name="fk_run_datasets_run_id_runs"),
        sa.ForeignKeyConstraint(["version_id"], ["dataset_versions.id"],
                                name="fk_run_datasets_version_id_dataset_versions"),
    )
    op.create_index("ix_run_datasets_version_id", "run_datasets", ["version_id"])


def downgrade() -> None:
    for table in ("run_datasets", "dataset_tags", "dataset_versions", "datasets"):
        op.drop_table(table)
