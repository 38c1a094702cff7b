"""``loopml data add`` without SQLAlchemy on the embedded store (see
:mod:`loopml.store.quick_read`): :class:`QuickCatalog` reads and writes the rows that
:mod:`loopml.datasets.records` reads and writes, with the same values, through ``sqlite3``;
a contract test checks that both agree.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from loopml.config import Settings
from loopml.datasets.entities import Dataset, DatasetKind, DatasetVersion
from loopml.errors import Conflict
from loopml.identity import current_user
from loopml.store.quick_read import quick_write, read_rows

if TYPE_CHECKING:
    from loopml.datasets.ingest import IngestOptions

__all__ = ["QuickCatalog"]

_DATASET_COLUMNS = "id, name, description, created_at, contract"
_VERSION_COLUMNS = ("id", "version", "kind", "tree", "files", "bytes", "rows", "new_files",
                    "new_rows", "schema", "profile", "validation", "parent_version", "message",
                    "created_at", "created_by")
_LATEST = f"""
SELECT {', '.join('v.' + c for c in _VERSION_COLUMNS)},
       (SELECT group_concat(tag, char(0)) FROM (
            SELECT tag FROM dataset_tags t WHERE t.dataset_id = v.dataset_id
            AND t.version = v.version ORDER BY tag))
FROM dataset_versions v WHERE v.dataset_id = ? ORDER BY v.version DESC LIMIT 1
"""


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _version(row: tuple[Any, ...], dataset: Dataset,
             tags: tuple[str, ...] = ()) -> DatasetVersion:
    values = dict(zip(_VERSION_COLUMNS, row, strict=False))
    return DatasetVersion(
        id=values["id"], dataset=dataset.name, version=values["version"],
        kind=DatasetKind(values["kind"]), tree=values["tree"], files=values["files"],
        bytes=values["bytes"], rows=values["rows"], new_files=values["new_files"],
        new_rows=values["new_rows"], schema=_loads(values["schema"]),
        profile=values["profile"], validation=_loads(values["validation"]),
        parent_version=values["parent_version"], message=values["message"],
        created_at=values["created_at"], created_by=values["created_by"], tags=tags)


def _dataset(row: tuple[Any, ...]) -> Dataset:
    return Dataset(id=row[0], name=row[1], description=row[2], created_at=row[3],
                   contract=_loads(row[4]))


class QuickCatalog:
    """The :class:`~loopml.datasets.ingest.Catalog` of the embedded store, over ``sqlite3``.

    Made by :meth:`open`, which gives None when the store is not an embedded one at this
    code's revision (or does not exist yet): then use the client.
    """

    def __init__(self, settings: Settings, dataset: Dataset | None,
                 parent: DatasetVersion | None) -> None:
        self.settings = settings
        self._found = (dataset, parent)

    @classmethod
    def open(cls, settings: Settings, name: str) -> QuickCatalog | None:
        """The catalog, having read dataset ``name`` and its latest version; or None."""
        rows = read_rows(settings, f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE name = ?",
                         (name,))
        if rows is None:
            return None
        if not rows:
            return cls(settings, None, None)
        dataset = _dataset(rows[0])
        found = read_rows(settings, _LATEST, (dataset.id,))
        if found is None:
            return None
        if not found:
            return cls(settings, dataset, None)
        tags = tuple(found[0][-1].split("\0")) if found[0][-1] else ()
        return cls(settings, dataset, _version(found[0][:-1], dataset, tags))

    def latest(self, name: str) -> tuple[Dataset | None, DatasetVersion | None]:
        return self._found

    def insert(self, name: str, parent: DatasetVersion | None, fields: dict[str, Any],
               options: IngestOptions) -> DatasetVersion:
        with quick_write(self.settings) as conn:
            if conn is not None and options.run_id is None:
                return _insert(conn, name, parent, fields, options)
        # The store changed meanwhile (or lineage is asked for): the metadata store's way.
        from loopml.datasets.records import StoreCatalog
        from loopml.store import MetadataStore

        meta = MetadataStore(self.settings.database_url)
        try:
            return StoreCatalog(meta).insert(name, parent, fields, options)
        finally:
            meta.close()


def _insert(conn: sqlite3.Connection, name: str, parent: DatasetVersion | None,
            fields: dict[str, Any], options: IngestOptions) -> DatasetVersion:
    """As ``records.ensure_dataset`` then ``records.insert_version``, in one transaction."""
    now = int(time.time() * 1000)
    row = conn.execute(f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE name = ?",
                       (name,)).fetchone()
    if row is None:
        row = (uuid.uuid4().hex, name, "", now, None)
        conn.execute(f"INSERT INTO datasets ({_DATASET_COLUMNS}) VALUES (?, ?, ?, ?, ?)", row)
    dataset = _dataset(row)
    newest = conn.execute("SELECT max(version) FROM dataset_versions WHERE dataset_id = ?",
                          (dataset.id,)).fetchone()[0]
    values = {"kind": None, "tree": None, "files": None, "bytes": None, "rows": None,
              "new_files": None, "new_rows": None, "schema": None, "profile": None,
              "validation": None, **fields,
              "id": uuid.uuid4().hex, "version": (newest or 0) + 1,
              "parent_version": None if parent is None else parent.version,
              "message": options.message, "created_at": now, "created_by": current_user()}
    values["schema"], values["validation"] = _dumps(values["schema"]), _dumps(
        values["validation"])
    try:
        conn.execute(f"INSERT INTO dataset_versions (dataset_id, {', '.join(_VERSION_COLUMNS)})"
                     f" VALUES (?{', ?' * len(_VERSION_COLUMNS)})",
                     (dataset.id, *(values[c] for c in _VERSION_COLUMNS)))
    except sqlite3.IntegrityError:
        raise Conflict(f"another writer added version {values['version']} of dataset "
                       f"{name!r} at the same time; run the command again") from None
    return _version(tuple(values[c] for c in _VERSION_COLUMNS), dataset)
