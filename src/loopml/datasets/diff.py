"""Differences between two versions: files, table rows and columns, statistics that moved."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from loopml.blobs import BlobStore
from loopml.blobs.tree import diff_trees
from loopml.datasets.entities import DatasetVersion
from loopml.datasets.ingest import load_profile

__all__ = ["VersionDiff", "diff_versions"]


@dataclass(frozen=True, slots=True)
class VersionDiff:
    old: str
    new: str
    added: list[str]
    removed: list[str]
    modified: list[str]
    rows_old: int | None = None
    rows_new: int | None = None
    columns: list[str] = field(default_factory=list)
    shifts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_delta(self) -> int | None:
        if self.rows_old is None or self.rows_new is None:
            return None
        return self.rows_new - self.rows_old

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "rows_delta": self.rows_delta}


def diff_versions(blobs: BlobStore, old: DatasetVersion, new: DatasetVersion) -> VersionDiff:
    files = diff_trees(blobs, old.tree, new.tree)
    result = VersionDiff(old=old.ref, new=new.ref, added=list(files.added),
                         removed=list(files.removed), modified=list(files.modified),
                         rows_old=old.rows, rows_new=new.rows)
    old_profile, new_profile = load_profile(blobs, old), load_profile(blobs, new)
    if old_profile is None or new_profile is None:
        return result
    from loopml.profiling import profile_shift, schema_diff, schema_of

    columns = schema_diff(schema_of(old_profile.schema), schema_of(new_profile.schema))
    shifts = [dataclasses.asdict(s) for s in profile_shift(old_profile, new_profile)]
    return dataclasses.replace(result, columns=list(columns), shifts=shifts)
