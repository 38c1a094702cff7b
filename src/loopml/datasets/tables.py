"""Tables of the dataset registry (created by migration 0003)."""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import Millis, metadata

__all__ = ["dataset_tags", "dataset_versions", "datasets", "run_datasets"]

datasets = sa.Table(
    "datasets", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", Millis, nullable=False),
    # The data contract as canonical JSON, or NULL when the dataset has none.
    sa.Column("contract", sa.Text, nullable=True),
)

dataset_versions = sa.Table(
    "dataset_versions", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), nullable=False),
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
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
    sa.UniqueConstraint("dataset_id", "version"),
)

dataset_tags = sa.Table(
    "dataset_tags", metadata,
    sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), primary_key=True),
    sa.Column("tag", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", Millis, nullable=False),
)

#: Lineage: which run read ("input") or wrote ("output") which dataset version.
run_datasets = sa.Table(
    "run_datasets", metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("version_id", sa.String(32), sa.ForeignKey("dataset_versions.id"),
              primary_key=True),
    sa.Column("role", sa.String(8), primary_key=True),
    sa.Column("created_at", Millis, nullable=False),
    sa.Index(None, "version_id"),
)
