"""The table of rollouts (created by migration 0010).

``automation_rollouts`` holds one row per candidate model version that met the promotion
policies: which version challenged which, on which deployment, in which mode (``direct``,
``shadow``, ``canary``), the stage it has reached, when it started, was last advanced and
when its stage is due (``deadline_at``), what it measured and restores (``state``, JSON),
and how it ended (``outcome``: ``promoted``, ``rejected`` or ``rolled_back``; NULL while it
runs) and why. Each change of stage is one transaction together with the alias move or the
deployment change it makes, so a controller that dies mid-rollout finds on restart a stage
whose side effects are all in place, or none of them.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import Millis, metadata

__all__ = ["automation_rollouts"]

automation_rollouts = sa.Table(
    "automation_rollouts", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("challenger", sa.Integer, nullable=False),
    sa.Column("champion", sa.Integer, nullable=True),
    sa.Column("deployment", sa.String(128), nullable=True),
    # direct | shadow | canary
    sa.Column("mode", sa.String(16), nullable=False),
    # started | shadow | canary | done | gate
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("started_at", Millis, nullable=False),
    sa.Column("updated_at", Millis, nullable=False),
    sa.Column("deadline_at", Millis, nullable=True),
    sa.Column("state", sa.Text, nullable=False, server_default="{}"),
    # promoted | rejected | rolled_back; NULL while the rollout runs
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Index(None, "model", "started_at"),
    sa.Index(None, "outcome"),
)
