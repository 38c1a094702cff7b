"""Tables of the model registry (created by migration 0004)."""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import BigId, Millis, metadata

__all__ = ["alias_events", "model_aliases", "model_versions", "registered_models"]

registered_models = sa.Table(
    "registered_models", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("tags", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created_at", Millis, nullable=False),
)

model_versions = sa.Table(
    "model_versions", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model_id", sa.String(32), sa.ForeignKey("registered_models.id"),
              nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # The model package as a content-addressed tree in the blob store.
    sa.Column("tree", sa.String(64), nullable=False),
    sa.Column("flavor", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(32), nullable=True),
    sa.Column("source_version_id", sa.String(32), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    # JSON: signature, metrics, params, dataset versions read by the run.
    sa.Column("signature", sa.Text, nullable=True),
    sa.Column("metrics", sa.Text, nullable=False, server_default="{}"),
    sa.Column("params", sa.Text, nullable=False, server_default="{}"),
    sa.Column("datasets", sa.Text, nullable=False, server_default="[]"),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
    sa.UniqueConstraint("model_id", "version"),
    sa.Index(None, "run_id"),
)

#: The current target of each alias: one row per (model, alias), so an alias points to
#: exactly one version at any time.
model_aliases = sa.Table(
    "model_aliases", metadata,
    sa.Column("model_id", sa.String(32), sa.ForeignKey("registered_models.id"),
              primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", Millis, nullable=False),
)

#: The audit log: every move of every alias, who, when, from which version to which, why.
alias_events = sa.Table(
    "alias_events", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.String(32), sa.ForeignKey("registered_models.id"),
              nullable=False),
    sa.Column("alias", sa.String(128), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("actor", sa.String(256), nullable=False, server_default=""),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", Millis, nullable=False),
    sa.Index(None, "model_id", "alias", "id"),
)
