"""Tables of deployments (created by migration 0007).

``deployments`` holds one row per named deployment: its traffic policy (JSON, see
:mod:`loopml.deployments.policy`) and a ``revision`` counted up by every change, so that a
server that rolls back on its own changes only the policy it saw (several servers of one
deployment may breach at once; one rollback is recorded).

``deployment_events`` is the audit timeline of a deployment: created, updated, rollback and
auto-rollback, with who, why, when, and the primary version before and after.

``payload_segments`` indexes the payload log: each row names one Parquet file in the blob
store (its content address) written by a model server, with the endpoint it served, what it
holds (``requests`` or ``feedback``), how many rows and the time span of those rows. Readers
(monitoring, ``loopml serve`` tests) find a window's segments here and stream their row groups.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import BigId, Millis, metadata

__all__ = ["deployment_events", "deployments", "payload_segments"]

deployments = sa.Table(
    "deployments", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("policy", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("updated_at", Millis, nullable=False),
)

deployment_events = sa.Table(
    "deployment_events", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", sa.String(32), sa.ForeignKey("deployments.id"), nullable=False),
    # created | updated | rollback | auto-rollback
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("policy", sa.Text, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False, server_default=""),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", Millis, nullable=False),
    sa.Index(None, "deployment_id", "id"),
)

payload_segments = sa.Table(
    "payload_segments", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # What was served: NAME@ALIAS (or NAME/N), or a deployment's name.
    sa.Column("endpoint", sa.String(256), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    # The Parquet file: a blob's content address.
    sa.Column("blob", sa.String(64), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("first_at", Millis, nullable=False),
    sa.Column("last_at", Millis, nullable=False),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("host", sa.String(256), nullable=False, server_default=""),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Index(None, "endpoint", "kind", "last_at"),
    sa.Index(None, "model", "kind", "last_at"),
)
