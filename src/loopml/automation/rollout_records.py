"""Rollouts in the metadata store (plain functions over a connection, in the caller's
transaction; the table is :data:`~loopml.automation.tables_rollout.automation_rollouts`).

A rollout moves from stage to stage with :func:`move_rollout`, which changes the row only
when it is still at the stage the caller saw (a compare-and-set under the row's lock), so
two controllers, or one that resumed after a crash, never apply a step twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from loopml.automation.tables_rollout import automation_rollouts
from loopml.errors import Conflict, InvalidArgument, NotFound

__all__ = ["MODES", "OUTCOMES", "STAGES", "Rollout", "active_rollout", "get_rollout",
           "insert_rollout", "list_rollouts", "move_rollout"]

MODES = ("direct", "shadow", "canary")
#: ``started`` (nothing applied yet), ``shadow`` / ``canary`` (the deployment mirrors to or
#: splits traffic with the challenger), ``done`` (an outcome is set), ``gate`` (a candidate
#: that failed its gate: recorded, never rolled out)
STAGES = ("started", "shadow", "canary", "done", "gate")
OUTCOMES = ("promoted", "rejected", "rolled_back")


@dataclass(frozen=True, slots=True)
class Rollout:
    """One candidate version on its way to (or away from) an alias."""

    id: str
    model: str
    challenger: int
    champion: int | None
    deployment: str | None
    mode: str
    stage: str
    started_at: int
    updated_at: int
    deadline_at: int | None
    state: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None
    reason: str = ""

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def challenger_ref(self) -> str:
        return f"{self.model}/{self.challenger}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "challenger": self.challenger,
                "champion": self.champion, "deployment": self.deployment, "mode": self.mode,
                "stage": self.stage, "started_at": self.started_at,
                "updated_at": self.updated_at, "deadline_at": self.deadline_at,
                "state": self.state, "outcome": self.outcome, "reason": self.reason}


def _rollout(row: Any) -> Rollout:
    return Rollout(id=row.id, model=row.model, challenger=row.challenger,
                   champion=row.champion, deployment=row.deployment, mode=row.mode,
                   stage=row.stage, started_at=row.started_at, updated_at=row.updated_at,
                   deadline_at=row.deadline_at, state=orjson.loads(row.state),
                   outcome=row.outcome, reason=row.reason)


def _json(state: dict[str, Any]) -> str:
    return orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def insert_rollout(conn: sa.Connection, *, model: str, challenger: int, champion: int | None,
                   deployment: str | None, mode: str, now: int,
                   state: dict[str, Any] | None = None, stage: str = "started",
                   outcome: str | None = None, reason: str = "") -> Rollout:
    if mode not in MODES:
        raise InvalidArgument(f"unknown rollout mode {mode!r}; use one of {', '.join(MODES)}")
    if stage not in STAGES or (outcome is not None and outcome not in OUTCOMES):
        raise InvalidArgument(f"unknown rollout stage {stage!r} or outcome {outcome!r}")
    values = {"id": uuid.uuid4().hex, "model": model, "challenger": challenger,
              "champion": champion, "deployment": deployment, "mode": mode, "stage": stage,
              "started_at": now, "updated_at": now, "deadline_at": None,
              "state": _json(state or {}), "outcome": outcome, "reason": reason}
    conn.execute(automation_rollouts.insert().values(**values))
    return get_rollout(conn, str(values["id"]))


def get_rollout(conn: sa.Connection, rollout_id: str, *, lock: bool = False) -> Rollout:
    query = sa.select(automation_rollouts).where(automation_rollouts.c.id == rollout_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"no rollout with id {rollout_id!r}; list them with "
                       "list_rollouts() (or loopml events)")
    return _rollout(row)


def list_rollouts(conn: sa.Connection, *, model: str | None = None,
                  unfinished: bool = False, limit: int | None = None) -> list[Rollout]:
    """Rollouts, newest first (``unfinished``: only those still running, oldest first)."""
    table = automation_rollouts
    query = sa.select(table)
    if model is not None:
        query = query.where(table.c.model == model)
    if unfinished:
        query = query.where(table.c.outcome.is_(None)).order_by(table.c.started_at,
                                                                  table.c.id)
    else:
        query = query.order_by(table.c.started_at.desc(), table.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [_rollout(row) for row in conn.execute(query)]


def active_rollout(conn: sa.Connection, *, model: str,
                   deployment: str | None) -> Rollout | None:
    """The unfinished rollout of ``model`` or on ``deployment``, if there is one."""
    table = automation_rollouts
    same = table.c.model == model
    if deployment is not None:
        same = sa.or_(same, table.c.deployment == deployment)
    row = conn.execute(sa.select(table).where(table.c.outcome.is_(None), same)
                       .order_by(table.c.started_at).limit(1)).first()
    return None if row is None else _rollout(row)


def move_rollout(conn: sa.Connection, rollout: Rollout, *, stage: str, now: int,
                 state: dict[str, Any] | None = None, deadline_at: int | None = None,
                 outcome: str | None = None, reason: str | None = None) -> Rollout:
    """``rollout`` at ``stage`` (with the other fields given), provided the stored row is
    still at ``rollout.stage`` with ``rollout.updated_at``; :class:`Conflict` otherwise."""
    if stage not in STAGES or (outcome is not None and outcome not in OUTCOMES):
        raise InvalidArgument(f"unknown rollout stage {stage!r} or outcome {outcome!r}")
    if (stage == "done") != (outcome is not None):
        raise InvalidArgument("a rollout has an outcome exactly when its stage is 'done'")
    table = automation_rollouts
    values: dict[str, Any] = {"stage": stage, "updated_at": max(now, rollout.updated_at),
                              "deadline_at": deadline_at, "outcome": outcome,
                              "state": _json(rollout.state if state is None else state)}
    if reason is not None:
        values["reason"] = reason
    changed = conn.execute(table.update().where(
        table.c.id == rollout.id, table.c.stage == rollout.stage,
        table.c.updated_at == rollout.updated_at, table.c.outcome.is_(None)).values(**values))
    if changed.rowcount != 1:
        now_row = get_rollout(conn, rollout.id)
        raise Conflict(f"rollout {rollout.id} of {rollout.challenger_ref} moved on meanwhile "
                       f"(now at stage {now_row.stage!r}, outcome {now_row.outcome}); it was "
                       "advanced by another controller: read it again")
    return get_rollout(conn, rollout.id)
