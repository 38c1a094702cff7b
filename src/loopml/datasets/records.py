"""Datasets, versions, tags and lineage rows in the metadata store."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from loopml.datasets.entities import Dataset, DatasetKind, DatasetVersion
from loopml.datasets.refs import DatasetRef, check_dataset_name, check_tag
from loopml.datasets.tables import dataset_tags, dataset_versions, datasets, run_datasets
from loopml.errors import Conflict, InvalidArgument, NotFound
from loopml.store.dialect import insert_on_conflict
from loopml.tracking.context import current_user
from loopml.tracking.records import now_ms

if TYPE_CHECKING:
    from loopml.datasets.ingest import IngestOptions
    from loopml.store import MetadataStore

__all__ = ["StoreCatalog", "dataset_lineage", "ensure_dataset", "find_dataset", "get_dataset",
           "insert_version", "latest_version", "list_datasets", "list_versions",
           "record_lineage", "resolve", "set_contract", "set_tag"]

_JSON_COLUMNS = ("schema", "validation")


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _dataset(row: Any) -> Dataset:
    return Dataset(id=row.id, name=row.name, description=row.description,
                   created_at=row.created_at, contract=_loads(row.contract))


def find_dataset(conn: sa.Connection, name: str) -> Dataset | None:
    row = conn.execute(sa.select(datasets).where(datasets.c.name == name)).first()
    return None if row is None else _dataset(row)


def get_dataset(conn: sa.Connection, name: str) -> Dataset:
    found = find_dataset(conn, name)
    if found is None:
        names = conn.execute(sa.select(datasets.c.name).order_by(datasets.c.name)
                             .limit(20)).scalars().all()
        known = ", ".join(names) if names else "none yet (add one with loopml data add)"
        raise NotFound(f"no dataset named {name!r}; existing datasets: {known}")
    return found


def ensure_dataset(conn: sa.Connection, name: str, *, description: str = "") -> Dataset:
    found = find_dataset(conn, check_dataset_name(name))
    if found is not None:
        return found
    dataset = Dataset(id=uuid.uuid4().hex, name=name, description=description,
                      created_at=now_ms())
    try:
        with conn.begin_nested():
            conn.execute(datasets.insert().values(id=dataset.id, name=name,
                                                  description=description,
                                                  created_at=dataset.created_at))
    except sa_exc.IntegrityError:  # created by another writer meanwhile
        return get_dataset(conn, name)
    return dataset


def set_contract(conn: sa.Connection, name: str, contract: dict[str, Any] | None) -> None:
    dataset = get_dataset(conn, name)
    conn.execute(datasets.update().where(datasets.c.id == dataset.id)
                 .values(contract=_dumps(contract)))


def list_datasets(conn: sa.Connection) -> list[tuple[Dataset, DatasetVersion | None]]:
    """Every dataset with its latest version (None while it has none)."""
    found = [_dataset(r) for r in conn.execute(sa.select(datasets).order_by(datasets.c.name))]
    return [(d, latest_version(conn, d)) for d in found]


def _version(row: Any, dataset: Dataset, tags: tuple[str, ...] = ()) -> DatasetVersion:
    return DatasetVersion(
        id=row.id, dataset=dataset.name, version=row.version, kind=DatasetKind(row.kind),
        tree=row.tree, files=row.files, bytes=row.bytes, rows=row.rows,
        new_files=row.new_files, new_rows=row.new_rows, schema=_loads(row.schema),
        profile=row.profile, validation=_loads(row.validation),
        parent_version=row.parent_version, message=row.message, created_at=row.created_at,
        created_by=row.created_by, tags=tags)


def _tags_by_version(conn: sa.Connection, dataset: Dataset) -> dict[int, tuple[str, ...]]:
    result: dict[int, list[str]] = {}
    for tag, version in conn.execute(
            sa.select(dataset_tags.c.tag, dataset_tags.c.version)
            .where(dataset_tags.c.dataset_id == dataset.id).order_by(dataset_tags.c.tag)):
        result.setdefault(version, []).append(tag)
    return {k: tuple(v) for k, v in result.items()}


def latest_version(conn: sa.Connection, dataset: Dataset) -> DatasetVersion | None:
    row = conn.execute(sa.select(dataset_versions)
                       .where(dataset_versions.c.dataset_id == dataset.id)
                       .order_by(dataset_versions.c.version.desc()).limit(1)).first()
    if row is None:
        return None
    return _version(row, dataset, _tags_by_version(conn, dataset).get(row.version, ()))


def list_versions(conn: sa.Connection, name: str) -> list[DatasetVersion]:
    dataset = get_dataset(conn, name)
    tags = _tags_by_version(conn, dataset)
    rows = conn.execute(sa.select(dataset_versions)
                        .where(dataset_versions.c.dataset_id == dataset.id)
                        .order_by(dataset_versions.c.version)).all()
    return [_version(r, dataset, tags.get(r.version, ())) for r in rows]


def resolve(conn: sa.Connection, ref: DatasetRef) -> DatasetVersion:
    """The version a reference names, or NotFound listing the versions and tags there are."""
    dataset = get_dataset(conn, ref.name)
    tags = _tags_by_version(conn, dataset)
    number = ref.version
    if number is None and ref.tag != "latest":
        number = next((v for v, names in tags.items() if ref.tag in names), None)
    query = sa.select(dataset_versions).where(dataset_versions.c.dataset_id == dataset.id)
    if number is None and ref.tag == "latest":
        row = conn.execute(query.order_by(dataset_versions.c.version.desc()).limit(1)).first()
    else:
        row = None if number is None else conn.execute(
            query.where(dataset_versions.c.version == number)).first()
    if row is None:
        versions = conn.execute(sa.select(dataset_versions.c.version)
                                .where(dataset_versions.c.dataset_id == dataset.id)
                                .order_by(dataset_versions.c.version)).scalars().all()
        known = ", ".join(str(v) for v in versions) or "none"
        tag_names = ", ".join(sorted(t for names in tags.values() for t in names)) or "none"
        raise NotFound(f"dataset {ref.name!r} has no version {str(ref).partition('@')[2]!r}; "
                       f"versions: {known}; tags: {tag_names}")
    return _version(row, dataset, tags.get(row.version, ()))


def insert_version(conn: sa.Connection, dataset: Dataset, **fields: Any) -> DatasetVersion:
    """Insert the next version of ``dataset`` (number = newest + 1) in this transaction."""
    newest = conn.execute(sa.select(sa.func.max(dataset_versions.c.version))
                          .where(dataset_versions.c.dataset_id == dataset.id)).scalar()
    values = {**fields, "id": uuid.uuid4().hex, "dataset_id": dataset.id,
              "version": (newest or 0) + 1, "created_at": now_ms()}
    for column in _JSON_COLUMNS:
        values[column] = _dumps(values.get(column))
    try:
        with conn.begin_nested():
            conn.execute(dataset_versions.insert().values(**values))
    except sa_exc.IntegrityError:
        raise Conflict(f"another writer added version {values['version']} of dataset "
                       f"{dataset.name!r} at the same time; run the command again") from None
    row = conn.execute(sa.select(dataset_versions)
                       .where(dataset_versions.c.id == values["id"])).one()
    return _version(row, dataset)


def set_tag(conn: sa.Connection, ref: DatasetRef, tag: str) -> DatasetVersion:
    """Point ``tag`` at the version ``ref`` names (moving it if it pointed elsewhere)."""
    check_tag(tag)
    version = resolve(conn, ref)
    dataset = get_dataset(conn, ref.name)
    stmt = insert_on_conflict(conn, dataset_tags)
    stmt = stmt.on_conflict_do_update(index_elements=["dataset_id", "tag"],
                                      set_={"version": stmt.excluded.version,
                                            "updated_at": stmt.excluded.updated_at})
    conn.execute(stmt, {"dataset_id": dataset.id, "tag": tag, "version": version.version,
                        "updated_at": now_ms()})
    return resolve(conn, ref)


def record_lineage(conn: sa.Connection, run_id: str, version: DatasetVersion,
                   role: str) -> None:
    if role not in ("input", "output"):
        raise InvalidArgument(f"lineage role must be 'input' or 'output', got {role!r}")
    stmt = insert_on_conflict(conn, run_datasets).on_conflict_do_nothing()
    try:
        with conn.begin_nested():
            conn.execute(stmt, {"run_id": run_id, "version_id": version.id, "role": role,
                                "created_at": now_ms()})
    except sa_exc.IntegrityError:
        raise NotFound(f"no run with id {run_id!r}; list runs with 'loopml runs list'") from None


def dataset_lineage(conn: sa.Connection, version: DatasetVersion) -> list[tuple[str, str, int]]:
    """(run id, role, when) of every run that read or wrote ``version``, oldest first."""
    rows = conn.execute(sa.select(run_datasets.c.run_id, run_datasets.c.role,
                                  run_datasets.c.created_at)
                        .where(run_datasets.c.version_id == version.id)
                        .order_by(run_datasets.c.created_at)).all()
    return [(r.run_id, r.role, r.created_at) for r in rows]


class StoreCatalog:
    """The :class:`~loopml.datasets.ingest.Catalog` of versions in the metadata store."""

    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    def latest(self, name: str) -> tuple[Dataset | None, DatasetVersion | None]:
        with self.meta.read() as conn:
            dataset = find_dataset(conn, name)
            return dataset, None if dataset is None else latest_version(conn, dataset)

    def insert(self, name: str, parent: DatasetVersion | None, fields: dict[str, Any],
               options: IngestOptions) -> DatasetVersion:
        with self.meta.write() as conn:
            dataset = ensure_dataset(conn, name)
            version = insert_version(
                conn, dataset, parent_version=None if parent is None else parent.version,
                message=options.message, created_by=current_user(), **fields)
            if options.run_id is not None:
                record_lineage(conn, options.run_id, version, "output")
        return version
