"""Deployments and their audit timeline in the metadata store (plain functions over a
connection, in the caller's transaction).

Every change of a deployment's policy bumps its ``revision`` and appends an event (created,
updated, rollback, auto-rollback) naming the primary model version before and after.

**Rollback** routes all traffic back to the last safe version and pins the primary to it
until the policy is changed again. The safe version is the one that served before the most
recent change: with a canary, the primary (the canary is dropped); otherwise the version the
primary served before its latest move, a move being a created/updated event of the
deployment or, for a primary that follows an alias, a move of that alias (from the
registry's audit log; while pinned, only its moves before the pin). Moves away from the
version served now are skipped, so rolling back again goes one step further back.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from loopml.deployments.policy import TrafficPolicy
from loopml.deployments.tables import deployment_events, deployments
from loopml.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from loopml.registry import records as registry
from loopml.registry.refs import ModelRef, parse_model_ref
from loopml.tracking.records import now_ms

__all__ = ["EVENT_KINDS", "Deployment", "DeploymentEvent", "apply_rollback",
           "check_deployment_name", "create_deployment", "deployment_history",
           "get_deployment", "list_deployments", "rollback_deployment", "safe_version",
           "update_deployment"]

EVENT_KINDS = ("created", "updated", "rollback", "auto-rollback")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Deployment:
    """A named endpoint and what it serves."""

    id: str
    name: str
    policy: TrafficPolicy
    revision: int
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class DeploymentEvent:
    """One change of a deployment: its kind, the primary's version before and after, the
    policy it left in place, who, why and when."""

    deployment: str
    kind: str
    model: str
    from_version: int | None
    to_version: int | None
    policy: TrafficPolicy
    actor: str
    reason: str
    created_at: int


def check_deployment_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(f"invalid deployment name {name!r}: use 1-128 letters, digits, "
                              "'_', '-' or '.', starting with a letter or digit")
    return name


def _deployment(row: Any) -> Deployment:
    return Deployment(id=row.id, name=row.name, policy=TrafficPolicy.from_json(row.policy),
                      revision=row.revision, created_at=row.created_at,
                      updated_at=row.updated_at)


def _row(conn: sa.Connection, name: str, *, lock: bool = False) -> Any:
    query = sa.select(deployments).where(deployments.c.name == name)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        names = conn.execute(sa.select(deployments.c.name).order_by(deployments.c.name)
                             .limit(20)).scalars().all()
        known = ", ".join(names) if names else "none yet (create one with loopml deploy create)"
        raise NotFound(f"no deployment named {name!r}; existing deployments: {known}")
    return row


def get_deployment(conn: sa.Connection, name: str) -> Deployment:
    return _deployment(_row(conn, name))


def list_deployments(conn: sa.Connection) -> list[Deployment]:
    rows = conn.execute(sa.select(deployments).order_by(deployments.c.name)).all()
    return [_deployment(row) for row in rows]


def _resolve(conn: sa.Connection, ref: ModelRef) -> int:
    return registry.resolve(conn, ref).version


def _check_refs(conn: sa.Connection, policy: TrafficPolicy) -> int:
    """The primary's version now; NotFound when a reference of the policy names nothing."""
    if policy.canary is not None:
        _resolve(conn, parse_model_ref(policy.canary.model))
    if policy.shadow is not None:
        _resolve(conn, parse_model_ref(policy.shadow))
    return _resolve(conn, policy.primary)


def _event(conn: sa.Connection, row: Any, kind: str, policy: TrafficPolicy,
           old: int | None, new: int | None, actor: str, reason: str,
           when: int) -> DeploymentEvent:
    model = policy.primary.name
    conn.execute(deployment_events.insert().values(
        deployment_id=row.id, kind=kind, model=model, from_version=old, to_version=new,
        policy=policy.to_json(), actor=actor, reason=reason, created_at=when))
    return DeploymentEvent(deployment=row.name, kind=kind, model=model, from_version=old,
                           to_version=new, policy=policy, actor=actor, reason=reason,
                           created_at=when)


def create_deployment(conn: sa.Connection, name: str, policy: TrafficPolicy, *, actor: str,
                      reason: str = "") -> Deployment:
    """Record a new deployment; its model references must name registered versions."""
    check_deployment_name(name)
    if conn.execute(sa.select(deployments.c.id).where(deployments.c.name == name)).first():
        raise AlreadyExists(f"a deployment named {name!r} exists already; change it with "
                            f"loopml deploy update {name}, or choose another name")
    version = _check_refs(conn, policy)
    now = now_ms()
    values = {"id": uuid.uuid4().hex, "name": name, "policy": policy.to_json(),
              "revision": 1, "created_at": now, "updated_at": now}
    conn.execute(deployments.insert().values(**values))
    row = _row(conn, name)
    _event(conn, row, "created", policy, None, version, actor, reason, now)
    return _deployment(row)


def _change(conn: sa.Connection, row: Any, kind: str, policy: TrafficPolicy, *, actor: str,
            reason: str, old: int | None, new: int) -> DeploymentEvent:
    now = now_ms()
    conn.execute(deployments.update().where(deployments.c.id == row.id).values(
        policy=policy.to_json(), revision=row.revision + 1, updated_at=now))
    return _event(conn, row, kind, policy, old, new, actor, reason, now)


def _served(conn: sa.Connection, policy: TrafficPolicy) -> int | None:
    try:
        return _resolve(conn, policy.primary)
    except NotFound:  # the alias or version went away since
        return None


def update_deployment(conn: sa.Connection, name: str, policy: TrafficPolicy, *, actor: str,
                      reason: str = "") -> DeploymentEvent:
    """Replace the policy of ``name`` (which also lifts a rollback's pin)."""
    row = _row(conn, name, lock=True)
    old = _served(conn, TrafficPolicy.from_json(row.policy))
    new = _check_refs(conn, policy)
    return _change(conn, row, "updated", policy, actor=actor, reason=reason, old=old, new=new)


def deployment_history(conn: sa.Connection, name: str) -> list[DeploymentEvent]:
    """Every change of ``name``, oldest first."""
    row = _row(conn, name)
    query = sa.select(deployment_events).where(deployment_events.c.deployment_id == row.id)
    return [DeploymentEvent(deployment=name, kind=r.kind, model=r.model,
                            from_version=r.from_version, to_version=r.to_version,
                            policy=TrafficPolicy.from_json(r.policy), actor=r.actor,
                            reason=r.reason, created_at=r.created_at)
            for r in conn.execute(query.order_by(deployment_events.c.id))]


def safe_version(conn: sa.Connection, name: str) -> tuple[int, str]:
    """(the version a rollback of ``name`` goes to, the change it undoes, in words)."""
    deployment = get_deployment(conn, name)
    policy = deployment.policy
    current = _served(conn, policy)
    model = policy.primary.name
    if policy.canary is not None and current is not None:
        return current, f"the canary {policy.canary.model} ({policy.canary.percent:g}%)"
    moves: list[tuple[int, int, int | None, str]] = []
    pinned_at = None  # alias moves after the pin did not reach the traffic
    for event in deployment_history(conn, name):
        if event.kind in {"created", "updated"} and event.model == model:
            moves.append((event.created_at, 0, event.from_version, f"the {event.kind} policy"))
            pinned_at = None
        elif event.kind in {"rollback", "auto-rollback"}:
            pinned_at = event.created_at
    followed = parse_model_ref(policy.model)
    if followed.alias is not None:
        for move in registry.alias_history(conn, followed.name, followed.alias):
            if deployment.created_at <= move.created_at <= (pinned_at or move.created_at):
                moves.append((move.created_at, 1, move.from_version,
                              f"the move of {followed} to version {move.to_version}"))
    for _, _, before, what in sorted(moves, key=lambda m: (m[0], m[1]), reverse=True):
        if before is not None and before != current:
            return before, what
    raise Conflict(f"deployment {name!r} has no earlier version of {model} to roll back to "
                   f"(it serves version {current}); change it with loopml deploy update")


def apply_rollback(conn: sa.Connection, name: str, version: int, *, kind: str = "rollback",
                   actor: str, reason: str, revision: int | None = None
                   ) -> DeploymentEvent | None:
    """Pin ``name``'s primary to ``version`` and drop its canary; None when ``revision`` is
    given and the deployment has changed since (someone else rolled it back or changed it)."""
    if kind not in EVENT_KINDS:
        raise InvalidArgument(f"unknown event kind {kind!r}; use one of "
                              f"{', '.join(EVENT_KINDS)}")
    row = _row(conn, name, lock=True)
    if revision is not None and row.revision != revision:
        return None
    policy = TrafficPolicy.from_json(row.policy)
    old = _served(conn, policy)
    if policy.canary is not None:  # what is rolled back is the canary's version
        canary = parse_model_ref(policy.canary.model)
        if canary.name == policy.primary.name:
            old = _served(conn, TrafficPolicy(model=policy.canary.model))
    pinned = dataclasses.replace(policy, canary=None, pinned=version)
    _resolve(conn, pinned.primary)
    return _change(conn, row, kind, pinned, actor=actor, reason=reason, old=old, new=version)


def rollback_deployment(conn: sa.Connection, name: str, *, actor: str,
                        reason: str = "") -> DeploymentEvent:
    """Route all of ``name``'s traffic to its last safe version (see the module's
    docstring) and pin it there."""
    version, undone = safe_version(conn, name)
    why = reason or f"rolled back {undone}"
    event = apply_rollback(conn, name, version, actor=actor, reason=why)
    assert event is not None
    return event
