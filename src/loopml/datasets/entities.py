"""Values of the dataset registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Dataset", "DatasetKind", "DatasetVersion"]


class DatasetKind(StrEnum):
    FILE = "file"  # one file that is not a table
    TREE = "tree"  # a directory of files (images, documents, …)
    TABLE = "table"  # CSV / Parquet files read as one table


@dataclass(frozen=True, slots=True)
class Dataset:
    id: str
    name: str
    description: str
    created_at: int
    contract: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One immutable version: a content-addressed tree plus what was computed on add."""

    id: str
    dataset: str
    version: int
    kind: DatasetKind
    tree: str
    files: int
    bytes: int
    rows: int | None
    new_files: int
    new_rows: int | None
    schema: list[dict[str, Any]] | None
    profile: str | None
    validation: dict[str, Any] | None
    parent_version: int | None
    message: str
    created_at: int
    created_by: str
    tags: tuple[str, ...] = field(default=())
    #: True when ``add`` found the content identical to the latest version (nothing stored).
    unchanged: bool = False

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"
