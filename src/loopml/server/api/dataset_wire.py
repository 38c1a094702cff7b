"""The JSON shapes of the dataset registry in ``/api/v1``: entities to plain dicts and back.

Shared by the server's dataset endpoints and the remote client's dataset methods (this
module needs neither starlette nor SQLAlchemy). A version travels with every field of
:class:`~loopml.datasets.entities.DatasetVersion`; its ``kind`` as its string value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loopml.datasets.entities import Dataset, DatasetKind, DatasetVersion
from loopml.errors import InvalidArgument

if TYPE_CHECKING:
    from loopml.datasets.diff import VersionDiff

__all__ = ["dataset_in", "dataset_out", "dataset_version_in", "dataset_version_out", "diff_in",
           "diff_out"]


def dataset_out(d: Dataset) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "description": d.description,
            "created_at": d.created_at, "contract": d.contract}


def dataset_in(d: Mapping[str, Any]) -> Dataset:
    return Dataset(id=d["id"], name=d["name"], description=d.get("description", ""),
                   created_at=d["created_at"], contract=d.get("contract"))


def dataset_version_out(v: DatasetVersion) -> dict[str, Any]:
    return {"id": v.id, "dataset": v.dataset, "version": v.version, "kind": v.kind.value,
            "tree": v.tree, "files": v.files, "bytes": v.bytes, "rows": v.rows,
            "new_files": v.new_files, "new_rows": v.new_rows, "schema": v.schema,
            "profile": v.profile, "validation": v.validation,
            "parent_version": v.parent_version, "message": v.message,
            "created_at": v.created_at, "created_by": v.created_by, "tags": list(v.tags),
            "unchanged": v.unchanged}


def dataset_version_in(d: Mapping[str, Any]) -> DatasetVersion:
    try:
        kind = DatasetKind(d["kind"])
    except ValueError:
        raise InvalidArgument(f"unknown dataset kind {d['kind']!r}; the server is newer "
                              "than this client: upgrade loopml") from None
    return DatasetVersion(
        id=d["id"], dataset=d["dataset"], version=d["version"], kind=kind, tree=d["tree"],
        files=d["files"], bytes=d["bytes"], rows=d.get("rows"), new_files=d["new_files"],
        new_rows=d.get("new_rows"), schema=d.get("schema"), profile=d.get("profile"),
        validation=d.get("validation"), parent_version=d.get("parent_version"),
        message=d.get("message", ""), created_at=d["created_at"],
        created_by=d.get("created_by", ""), tags=tuple(d.get("tags", ())),
        unchanged=bool(d.get("unchanged", False)))


def diff_out(diff: VersionDiff) -> dict[str, Any]:
    return diff.to_dict()


def diff_in(d: Mapping[str, Any]) -> VersionDiff:
    from loopml.datasets.diff import VersionDiff

    return VersionDiff(old=d["old"], new=d["new"], added=list(d["added"]),
                       removed=list(d["removed"]), modified=list(d["modified"]),
                       rows_old=d.get("rows_old"), rows_new=d.get("rows_new"),
                       columns=list(d.get("columns", [])), shifts=list(d.get("shifts", [])))
