"""``add`` and ``append``: turn files on disk into an immutable dataset version.

Order of work, so that bad input stores nothing and an interruption leaves no half version:
1. read and check (kind, table schema/profile/contract) — nothing written yet;
2. store blobs and directory listings (content-addressed, atomic, reused after a crash);
3. insert the version row in one transaction — the version exists whole or not at all.

The rows are read and written through a :class:`Catalog`: the metadata store
(:mod:`loopml.datasets.records`, SQLAlchemy), or for the command line on the embedded store
its ``sqlite3`` twin (:mod:`loopml.datasets.quick_add`), which spares the SQLAlchemy
start-up. This module imports neither.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loopml.blobs import BlobStore
from loopml.blobs.chunking import FileEntry
from loopml.blobs.statcache import StatCache
from loopml.blobs.tree import build_tree, diff_trees, iter_files, tree_from_entries
from loopml.datasets.entities import Dataset, DatasetKind, DatasetVersion
from loopml.datasets.refs import DatasetRef, check_dataset_name
from loopml.errors import InvalidArgument, NotFound

if TYPE_CHECKING:  # pyarrow and numpy load only when a table is read; SQLAlchemy when used
    from loopml.profiling import TableProfile
    from loopml.store import MetadataStore

__all__ = ["Catalog", "IngestOptions", "add", "add_to", "append", "append_to", "detect_kind",
           "load_profile"]

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True, slots=True)
class IngestOptions:
    message: str = ""
    strict: bool = False
    run_id: str | None = None
    progress: bool = False


class Catalog(Protocol):
    """Where dataset versions are recorded."""

    def latest(self, name: str) -> tuple[Dataset | None, DatasetVersion | None]:
        """The dataset ``name`` (None if it does not exist) and its latest version."""

    def insert(self, name: str, parent: DatasetVersion | None, fields: dict[str, Any],
               options: IngestOptions) -> DatasetVersion:
        """Record the next version of ``name`` (creating the dataset) in one transaction."""


def detect_kind(path: Path) -> DatasetKind:
    """A CSV/Parquet file or a directory of Parquet files is a table; else a file or a tree.

    A directory is read only until its first file that is not Parquet."""
    if path.is_file():
        return DatasetKind.TABLE if path.suffix.lower() in TABLE_SUFFIXES else DatasetKind.FILE
    found = False
    for directory, _, names in os.walk(path):
        for name in names:
            if not name.lower().endswith((".parquet", ".pq")):
                return DatasetKind.TREE
            found = found or os.path.isfile(os.path.join(directory, name))
    return DatasetKind.TABLE if found else DatasetKind.TREE


def _checked_path(path: str | Path) -> Path:
    local = Path(path)
    if not local.exists():
        raise InvalidArgument(f"cannot add {str(local)!r}: no such file or directory")
    if local.is_dir() and not any(p.is_file() for p in local.rglob("*")):
        raise InvalidArgument(f"cannot add {str(local)!r}: the directory holds no files")
    return local


def load_profile(blobs: BlobStore, version: DatasetVersion) -> TableProfile | None:
    if version.profile is None:
        return None
    from loopml.profiling import TableProfile

    return TableProfile.from_dict(blobs.get_json(version.profile))


def _scan_table(path: Path, contract: dict[str, Any] | None, *, strict: bool,
                name: str) -> tuple[TableProfile, dict[str, Any] | None]:
    from loopml.datasets.contract import Contract, scan
    from loopml.profiling import open_table

    profile, report = scan(open_table(path),
                           Contract.from_dict(contract) if contract else None)
    if report is not None and not report.ok and strict:
        raise InvalidArgument(f"{path} violates the contract of dataset {name!r} (--strict): "
                              + "; ".join(report.lines()))
    return profile, (None if report is None else report.to_dict())


def _validation(report: dict[str, Any] | None, parent: TableProfile | None,
                child: TableProfile) -> dict[str, Any]:
    from loopml.profiling import profile_shift

    shifts = [] if parent is None else profile_shift(parent, child)
    return {"contract": report, "shifts": [dataclasses.asdict(s) for s in shifts]}


def add(meta: MetadataStore, blobs: BlobStore, stat_cache: StatCache | None, *, name: str,
        path: str | Path, options: IngestOptions) -> DatasetVersion:
    """A new version of ``name`` holding exactly ``path`` (or the latest, when identical)."""
    from loopml.datasets.records import StoreCatalog

    return add_to(StoreCatalog(meta), blobs, stat_cache, name=name, path=path, options=options)


def add_to(catalog: Catalog, blobs: BlobStore, stat_cache: StatCache | None, *, name: str,
           path: str | Path, options: IngestOptions) -> DatasetVersion:
    """:func:`add`, recording the version in ``catalog``."""
    check_dataset_name(name)
    local = _checked_path(path)
    kind = detect_kind(local)
    dataset, parent = catalog.latest(name)
    profile, report, schema = None, None, None
    if kind is DatasetKind.TABLE:
        # Read and check first, so that a table that does not parse or breaks a strict
        # contract stores nothing. (Profiling and storing side by side was measured slower
        # on 2 cores: both already use every core.)
        profile, report = _scan_table(local, dataset.contract if dataset else None,
                                      strict=options.strict, name=name)
        from loopml.profiling import schema_of

        schema = [dataclasses.asdict(c) for c in schema_of(profile.schema)]
    tree = build_tree(blobs, local, base=None if parent is None else parent.tree,
                      stat_cache=stat_cache, progress=options.progress)
    if parent is not None and parent.tree == tree.digest and parent.kind is kind:
        return dataclasses.replace(parent, unchanged=True)
    new_files = tree.files
    if parent is not None:
        changes = diff_trees(blobs, parent.tree, tree.digest)
        new_files = len(changes.added) + len(changes.modified)
    parent_profile = None if parent is None else load_profile(blobs, parent)
    fields: dict[str, Any] = {"kind": kind.value, "tree": tree.digest, "files": tree.files,
                              "bytes": tree.bytes, "new_files": new_files}
    if profile is not None:
        fields.update(rows=profile.rows, new_rows=profile.rows, schema=schema,
                      profile=blobs.put_json(profile.to_dict()),
                      validation=_validation(report, parent_profile, profile))
    return catalog.insert(name, parent, fields, options)


def append(meta: MetadataStore, blobs: BlobStore, stat_cache: StatCache | None, *, name: str,
           path: str | Path, options: IngestOptions) -> DatasetVersion:
    """A new version = the latest one plus the files (tree) or rows (table) at ``path``."""
    from loopml.datasets.records import StoreCatalog

    return append_to(StoreCatalog(meta), blobs, stat_cache, name=name, path=path,
                     options=options)


def append_to(catalog: Catalog, blobs: BlobStore, stat_cache: StatCache | None, *, name: str,
              path: str | Path, options: IngestOptions) -> DatasetVersion:
    """:func:`append`, recording the version in ``catalog``."""
    check_dataset_name(name)
    local = _checked_path(path)
    dataset, parent = catalog.latest(name)
    if dataset is None:
        raise NotFound(f"no dataset named {name!r} to append to; create it with "
                       f"'loopml data add PATH --name {name}'")
    if parent is None:
        raise NotFound(f"dataset {name!r} has no version to append to; create one with "
                       f"'loopml data add PATH --name {name}'")
    if parent.kind is DatasetKind.FILE:
        raise InvalidArgument(f"dataset {name!r} is a single file, which cannot grow; add the "
                              "new content as a new version with 'loopml data add'")
    entries = dict(iter_files(blobs, parent.tree))
    added_tree = build_tree(blobs, local, stat_cache=stat_cache, progress=options.progress)
    prefix = f"appended/v{parent.version + 1}/" if parent.kind is DatasetKind.TABLE else ""
    added = {prefix + p: e for p, e in iter_files(blobs, added_tree.digest)}
    _check_no_overwrite(name, parent, entries, added)
    new = {p: e for p, e in added.items() if p not in entries}
    if not new:
        return dataclasses.replace(parent, unchanged=True)
    fields: dict[str, Any] = {"kind": parent.kind.value,
                              "tree": tree_from_entries(blobs, {**entries, **new},
                                                        base=parent.tree),
                              "files": len(entries) + len(new),
                              "bytes": parent.bytes + sum(e.size for e in new.values()),
                              "new_files": len(new)}
    if parent.kind is DatasetKind.TABLE:
        fields.update(_appended_rows(blobs, local, parent, dataset.contract, options, name))
    return catalog.insert(name, parent, fields, options)


def _check_no_overwrite(name: str, parent: DatasetVersion, entries: dict[str, FileEntry],
                        added: dict[str, FileEntry]) -> None:
    clashes = [p for p, e in added.items() if p in entries and entries[p].digest != e.digest]
    if clashes:
        shown = ", ".join(clashes[:5]) + (f" and {len(clashes) - 5} more" if len(clashes) > 5
                                          else "")
        raise InvalidArgument(
            f"append only adds files, but {shown} exist(s) in {name}@{parent.version} with other "
            "content; to replace files, add a new full version with 'loopml data add'")


def _appended_rows(blobs: BlobStore, local: Path, parent: DatasetVersion,
                   contract: dict[str, Any] | None, options: IngestOptions,
                   name: str) -> dict[str, Any]:
    if detect_kind(local) is not DatasetKind.TABLE:
        raise InvalidArgument(f"dataset {name!r} is a table: append a CSV or Parquet file (or a "
                              f"directory of Parquet files), not {str(local)!r}")
    from loopml.profiling import schema_diff, schema_of

    added, report = _scan_table(local, contract, strict=options.strict, name=name)
    parent_profile = load_profile(blobs, parent)
    if parent_profile is None or parent.rows is None:
        raise InvalidArgument(f"{name}@{parent.version} has no table profile to append rows "
                              "to; add the whole table as a new version with 'loopml data add'")
    changes = schema_diff(schema_of(parent_profile.schema), schema_of(added.schema))
    if changes:
        raise InvalidArgument(f"cannot append {str(local)!r} to {name}@{parent.version}: "
                              f"its columns differ ({'; '.join(changes)}); align the columns "
                              "or add a new full version with 'loopml data add'")
    merged = parent_profile.merge(added)
    return {"rows": parent.rows + added.rows, "new_rows": added.rows,
            "schema": parent.schema, "profile": blobs.put_json(merged.to_dict()),
            "validation": _validation(report, parent_profile, added)}


def resolve_version(meta: MetadataStore, ref: DatasetRef) -> DatasetVersion:
    from loopml.datasets import records

    with meta.read() as conn:
        return records.resolve(conn, ref)
