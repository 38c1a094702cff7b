"""Registered models, versions, aliases and alias events in the metadata store."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from loopml.errors import AlreadyExists, Conflict, NotFound
from loopml.registry.entities import AliasEvent, ModelVersion, RegisteredModel
from loopml.registry.refs import ModelRef, check_alias, check_model_name
from loopml.registry.tables import alias_events, model_aliases, model_versions, registered_models
from loopml.tracking.records import now_ms

__all__ = ["alias_history", "create_model", "delete_alias", "delete_version", "ensure_model",
           "get_model", "insert_version", "list_models", "list_versions", "resolve",
           "set_alias", "set_status", "versions_of_runs"]

_JSON_FIELDS: dict[str, Any] = {"signature": None, "metrics": {}, "params": {}, "datasets": []}


def _model(conn: sa.Connection, row: Any) -> RegisteredModel:
    aliases = dict(conn.execute(sa.select(model_aliases.c.alias, model_aliases.c.version)
                                .where(model_aliases.c.model_id == row.id)
                                .order_by(model_aliases.c.alias)).all())
    latest = conn.execute(sa.select(sa.func.max(model_versions.c.version))
                          .where(model_versions.c.model_id == row.id)).scalar()
    return RegisteredModel(id=row.id, name=row.name, description=row.description,
                           tags=orjson.loads(row.tags), created_at=row.created_at,
                           aliases=aliases, latest_version=latest)


def _row(conn: sa.Connection, name: str, *, lock: bool = False) -> Any:
    query = sa.select(registered_models).where(registered_models.c.name == name)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        names = conn.execute(sa.select(registered_models.c.name)
                             .order_by(registered_models.c.name).limit(20)).scalars().all()
        known = ", ".join(names) if names else "none yet (register one with log_model)"
        raise NotFound(f"no registered model named {name!r}; existing models: {known}")
    return row


def get_model(conn: sa.Connection, name: str) -> RegisteredModel:
    return _model(conn, _row(conn, name))


def list_models(conn: sa.Connection) -> list[RegisteredModel]:
    rows = conn.execute(sa.select(registered_models).order_by(registered_models.c.name)).all()
    return [_model(conn, row) for row in rows]


def create_model(conn: sa.Connection, name: str, *, description: str = "",
                 tags: dict[str, str] | None = None) -> RegisteredModel:
    check_model_name(name)
    values = {"id": uuid.uuid4().hex, "name": name, "description": description,
              "tags": orjson.dumps(tags or {}).decode(), "created_at": now_ms()}
    try:
        with conn.begin_nested():
            conn.execute(registered_models.insert().values(**values))
    except sa_exc.IntegrityError:
        raise AlreadyExists(f"a model named {name!r} is registered already") from None
    return get_model(conn, name)


def ensure_model(conn: sa.Connection, name: str) -> RegisteredModel:
    found = conn.execute(sa.select(registered_models)
                         .where(registered_models.c.name == check_model_name(name))).first()
    if found is not None:
        return _model(conn, found)
    try:
        return create_model(conn, name)
    except AlreadyExists:  # registered by another writer meanwhile
        return get_model(conn, name)


def _aliases_by_version(conn: sa.Connection, model_id: str) -> dict[int, tuple[str, ...]]:
    result: dict[int, list[str]] = {}
    for alias, version in conn.execute(
            sa.select(model_aliases.c.alias, model_aliases.c.version)
            .where(model_aliases.c.model_id == model_id).order_by(model_aliases.c.alias)):
        result.setdefault(version, []).append(alias)
    return {k: tuple(v) for k, v in result.items()}


def _version(row: Any, name: str, aliases: tuple[str, ...] = ()) -> ModelVersion:
    decoded: dict[str, Any] = {
        k: orjson.loads(getattr(row, k)) if getattr(row, k) is not None else default
        for k, default in _JSON_FIELDS.items()}
    return ModelVersion(id=row.id, model=name, version=row.version, tree=row.tree,
                        flavor=row.flavor, run_id=row.run_id,
                        source_version_id=row.source_version_id, status=row.status,
                        description=row.description, created_at=row.created_at,
                        created_by=row.created_by, aliases=aliases, **decoded)


def insert_version(conn: sa.Connection, name: str, **fields: Any) -> ModelVersion:
    """Register the next version of ``name`` (created if new) in this transaction."""
    model = ensure_model(conn, name)
    newest = conn.execute(sa.select(sa.func.max(model_versions.c.version))
                          .where(model_versions.c.model_id == model.id)).scalar()
    values = {**fields, "id": uuid.uuid4().hex, "model_id": model.id,
              "version": (newest or 0) + 1, "created_at": now_ms()}
    for key in _JSON_FIELDS:
        if key in values:
            values[key] = None if values[key] is None else orjson.dumps(values[key]).decode()
    try:
        with conn.begin_nested():
            conn.execute(model_versions.insert().values(**values))
    except sa_exc.IntegrityError:
        raise Conflict(f"another writer registered version {values['version']} of {name!r} "
                       "at the same time; register again") from None
    row = conn.execute(sa.select(model_versions)
                       .where(model_versions.c.id == values["id"])).one()
    return _version(row, name)


def list_versions(conn: sa.Connection, name: str) -> list[ModelVersion]:
    row = _row(conn, name)
    aliases = _aliases_by_version(conn, row.id)
    found = conn.execute(sa.select(model_versions).where(model_versions.c.model_id == row.id)
                         .order_by(model_versions.c.version)).all()
    return [_version(r, name, aliases.get(r.version, ())) for r in found]


def resolve(conn: sa.Connection, ref: ModelRef) -> ModelVersion:
    """The version a reference names: a number, an alias, or the latest active version."""
    model = _row(conn, ref.name)
    aliases = _aliases_by_version(conn, model.id)
    number = ref.version
    if ref.alias is not None:
        number = next((v for v, names in aliases.items() if ref.alias in names), None)
        if number is None:
            known = sorted(a for names in aliases.values() for a in names)
            raise NotFound(f"no alias {ref.alias!r} on model {ref.name!r}; existing aliases: "
                           f"{', '.join(known) if known else 'none'}")
    query = sa.select(model_versions).where(model_versions.c.model_id == model.id)
    if number is None:
        query = query.where(model_versions.c.status == "active") \
            .order_by(model_versions.c.version.desc()).limit(1)
    else:
        query = query.where(model_versions.c.version == number)
    row = conn.execute(query).first()
    if row is None:
        versions = conn.execute(sa.select(model_versions.c.version)
                                .where(model_versions.c.model_id == model.id)
                                .order_by(model_versions.c.version)).scalars().all()
        raise NotFound(f"model {ref.name!r} has no {'active ' if number is None else ''}"
                       f"version{'' if number is None else f' {number}'}; versions: "
                       f"{', '.join(map(str, versions)) or 'none'}")
    return _version(row, ref.name, aliases.get(row.version, ()))


def set_alias(conn: sa.Connection, name: str, alias: str, version: int, *, actor: str,
              reason: str) -> AliasEvent:
    """Point ``alias`` at ``version`` and record the move, under a lock on the model's row so
    that concurrent moves are serialised and the audit log stays a consistent chain."""
    check_alias(alias)
    model = _row(conn, name, lock=True)
    target = resolve(conn, ModelRef(name, version=version))
    if target.status != "active":
        raise Conflict(f"{name}/{version} is {target.status}: an archived version cannot "
                       f"receive aliases; restore it first (loopml models restore {name}/"
                       f"{version})")
    current = conn.execute(sa.select(model_aliases.c.version).where(
        model_aliases.c.model_id == model.id, model_aliases.c.alias == alias)).scalar()
    now = now_ms()
    if current is None:
        conn.execute(model_aliases.insert().values(model_id=model.id, alias=alias,
                                                   version=version, updated_at=now))
    else:
        conn.execute(model_aliases.update().where(model_aliases.c.model_id == model.id,
                                                  model_aliases.c.alias == alias)
                     .values(version=version, updated_at=now))
    return _event(conn, model.id, name, alias, current, version, actor, reason, now)


def delete_alias(conn: sa.Connection, name: str, alias: str, *, actor: str,
                 reason: str) -> AliasEvent:
    model = _row(conn, name, lock=True)
    current = conn.execute(sa.select(model_aliases.c.version).where(
        model_aliases.c.model_id == model.id, model_aliases.c.alias == alias)).scalar()
    if current is None:
        resolve(conn, ModelRef(name, alias=alias))  # raises NotFound listing the aliases
    conn.execute(model_aliases.delete().where(model_aliases.c.model_id == model.id,
                                              model_aliases.c.alias == alias))
    return _event(conn, model.id, name, alias, current, None, actor, reason, now_ms())


def _event(conn: sa.Connection, model_id: str, name: str, alias: str, old: int | None,
           new: int | None, actor: str, reason: str, when: int) -> AliasEvent:
    conn.execute(alias_events.insert().values(
        model_id=model_id, alias=alias, from_version=old, to_version=new, actor=actor,
        reason=reason, created_at=when))
    return AliasEvent(model=name, alias=alias, from_version=old, to_version=new, actor=actor,
                      reason=reason, created_at=when)


def alias_history(conn: sa.Connection, name: str, alias: str | None = None) -> list[AliasEvent]:
    """Every move of the model's aliases (or of one alias), oldest first."""
    model = _row(conn, name)
    query = sa.select(alias_events).where(alias_events.c.model_id == model.id)
    if alias is not None:
        query = query.where(alias_events.c.alias == alias)
    return [AliasEvent(model=name, alias=r.alias, from_version=r.from_version,
                       to_version=r.to_version, actor=r.actor, reason=r.reason,
                       created_at=r.created_at)
            for r in conn.execute(query.order_by(alias_events.c.id))]


def set_status(conn: sa.Connection, name: str, version: int, status: str) -> ModelVersion:
    """Archive (``archived``) or restore (``active``) a version."""
    target = resolve(conn, ModelRef(name, version=version))
    if status == "archived" and target.aliases:
        raise Conflict(f"{name}/{version} carries the alias(es) {', '.join(target.aliases)}; "
                       "move or delete them before archiving the version")
    conn.execute(model_versions.update().where(model_versions.c.id == target.id)
                 .values(status=status))
    return resolve(conn, ModelRef(name, version=version))


def delete_version(conn: sa.Connection, name: str, version: int) -> None:
    target = resolve(conn, ModelRef(name, version=version))
    if target.aliases:
        raise Conflict(f"{name}/{version} carries the alias(es) {', '.join(target.aliases)}; "
                       "move or delete them before deleting the version")
    conn.execute(model_versions.delete().where(model_versions.c.id == target.id))


def versions_of_runs(conn: sa.Connection, run_ids: list[str]) -> list[ModelVersion]:
    """Model versions built by any of ``run_ids`` (for dataset lineage)."""
    if not run_ids:
        return []
    rows = conn.execute(sa.select(model_versions, registered_models.c.name.label("model_name"))
                        .join(registered_models,
                              registered_models.c.id == model_versions.c.model_id)
                        .where(model_versions.c.run_id.in_(run_ids))
                        .order_by(model_versions.c.created_at)).all()
    return [_version(r, r.model_name) for r in rows]
