"""Tables of automation (created by migration 0009).

``automation_events`` is the audit timeline of the loop: every decision — a trigger fired, a
pipeline run started, succeeded or failed, a gate passed or failed, a rollout started, a
version promoted, rejected or rolled back, an agent started or stopped — with the trigger,
pipeline, model version, deployment and run it concerns, the reason in words and the numbers
behind it (``data``, JSON).

``trigger_state`` is what a trigger remembers between evaluations, so that an agent that
restarts neither loses nor repeats a firing: when it last fired, the newest monitoring alert
it consumed, what it compared against (``baseline``, JSON), a pending request to fire it by
hand, and the last evaluation error (recorded once, not every tick).

``automation_runs`` holds each retrain the agent started (one row per firing, across its
retries): the pipeline, the attempt, the pipeline run of the current attempt, who drives it
(agent, host, process) and its outcome; ``candidate`` says whether the model version it
registered is waiting to be handed to the rollout policy (``pending``; ``retry-N`` after N
failed hand-offs), was (``handed``), or failed every hand-off (``failed``).
At most one row per pipeline is ``running``: that is the "one retrain at a time" rule.

``agent_lease`` elects one leader among agents sharing a database: a row per lease name,
held by ``holder`` until ``expires_at`` (the database's clock), taken over only by a
compare-and-set once it expired.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import BigId, Millis, metadata

__all__ = ["agent_lease", "automation_events", "automation_runs", "trigger_state"]

automation_events = sa.Table(
    "automation_events", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", Millis, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("trigger", sa.String(128), nullable=False, server_default=""),
    sa.Column("pipeline", sa.String(512), nullable=False, server_default=""),
    sa.Column("model", sa.String(256), nullable=False, server_default=""),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("deployment", sa.String(128), nullable=False, server_default=""),
    sa.Column("run_id", sa.String(32), nullable=True),
    sa.Column("actor", sa.String(256), nullable=False, server_default=""),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("data", sa.Text, nullable=False, server_default="{}"),
    sa.Index(None, "at"),
    sa.Index(None, "model", "at"),
)

trigger_state = sa.Table(
    "trigger_state", metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("created_at", Millis, nullable=False),
    sa.Column("last_fired_at", Millis, nullable=True),
    sa.Column("last_alert_id", sa.BigInteger, nullable=True),
    sa.Column("baseline", sa.Text, nullable=False, server_default="{}"),
    sa.Column("fire_requested_at", Millis, nullable=True),
    sa.Column("fire_requested_by", sa.String(256), nullable=False, server_default=""),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at", Millis, nullable=False),
)

automation_runs = sa.Table(
    "automation_runs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("trigger", sa.String(128), nullable=False),
    sa.Column("pipeline", sa.String(512), nullable=False),
    # running | succeeded | failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("run_id", sa.String(32), nullable=True),
    sa.Column("holder", sa.String(256), nullable=False),
    sa.Column("host", sa.String(256), nullable=False, server_default=""),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("model", sa.String(256), nullable=False, server_default=""),
    sa.Column("version", sa.Integer, nullable=True),
    # "" (nothing registered) | pending | retry-N | handed | failed
    sa.Column("candidate", sa.String(16), nullable=False, server_default=""),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("started_at", Millis, nullable=False),
    sa.Column("ended_at", Millis, nullable=True),
    sa.Index(None, "pipeline", "status"),
    sa.Index(None, "status"),
)

agent_lease = sa.Table(
    "agent_lease", metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(256), nullable=False, server_default=""),
    sa.Column("expires_at", Millis, nullable=False),
    sa.Column("acquired_at", Millis, nullable=False),
    sa.Column("renewed_at", Millis, nullable=False),
)
