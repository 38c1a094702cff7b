"""Recording a dataset version whose content a remote client has uploaded.

The client builds the version's tree in its local cache (hashing, packing, chunking, the
stat cache: :func:`loopml.datasets.ingest.add_to`), sends the objects the server lacks,
then asks for the version to be recorded. Before a row is written the server checks what
it is told, so that a version it records is always whole and readable:

- the tree is walked down to the objects it shares with the dataset's latest version
  (already checked when that was recorded): every listing and delta must be here and
  well formed (names that stay inside the tree), and every file's content stored;
- the counts (files, bytes, new files) are computed here, not taken from the request;
- a table's profile must be a stored profile; its schema and validation are plain JSON;
- ``parent_version`` must still be the latest version (else 409: another writer added one
  meanwhile, and the client builds again on it).

Content identical to the latest version (same tree and kind) records nothing and answers
that version with ``unchanged``, as the embedded ``add`` does.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from loopml.blobs.digest import check_digest
from loopml.blobs.entry import FileEntry
from loopml.blobs.listing import Delta, check_present, load_tree_object
from loopml.blobs.tree import diff_trees, tree_info
from loopml.datasets.entities import DatasetKind, DatasetVersion
from loopml.datasets.refs import check_dataset_name
from loopml.errors import Conflict, InvalidArgument, NotFound

if TYPE_CHECKING:
    from loopml.blobs import BlobStore
    from loopml.client import Client

__all__ = ["check_tree", "commit_version"]


def check_tree(blobs: BlobStore, tree: str, *, trusted: set[str]) -> tuple[int, int]:
    """Raise InvalidArgument unless tree ``tree`` is whole and well formed in ``blobs``
    (objects in ``trusted`` and below them are taken as checked); its files and bytes."""
    seen: set[str] = set()
    entries: set[FileEntry] = set()
    stack = [check_digest(tree)]
    while stack:
        digest = stack.pop()
        if digest in seen or digest in trusted:
            continue
        seen.add(digest)
        try:
            obj = load_tree_object(blobs, digest)
            if isinstance(obj, Delta):
                entries.update(e for e in obj.changes.values() if e is not None)
                stack.append(obj.base)
            else:
                dirs, files = obj
                entries.update(files.values())
                stack.extend(child for child, _, _ in dirs.values())
        except NotFound:
            raise InvalidArgument(f"tree {tree} is not whole on this server: its object "
                                  f"{digest} is missing; upload the tree's objects (files "
                                  "first, the tree last), then record the version") from None
    missing = check_present(blobs, {str(i): e for i, e in enumerate(entries)})
    if missing:
        absent = sorted({e.storage for i, e in enumerate(entries) if str(i) in missing})
        raise InvalidArgument(f"tree {tree} lists content this server does not hold "
                              f"({len(absent)} object(s), e.g. {absent[0]}); upload it "
                              "first, then record the version")
    info = tree_info(blobs, tree)
    return info.files, info.bytes


def commit_version(server: Client, name: str, body: dict[str, Any], *,
                   user: str) -> DatasetVersion:
    """Record the version ``body`` describes as the next one of dataset ``name``."""
    from loopml.datasets import records

    check_dataset_name(name)
    kind = _kind(body.get("kind"))
    tree = check_digest(body.get("tree"))
    parent_number = _optional_int(body, "parent_version", minimum=1)
    message = _optional_str(body, "message") or ""
    run_id = _optional_str(body, "run_id")
    with server.meta.read() as conn:
        dataset = records.find_dataset(conn, name)
        parent = None if dataset is None else records.latest_version(conn, dataset)
    _check_parent(name, parent, parent_number)
    blobs = server.blobs
    files, size = check_tree(blobs, tree, trusted=set() if parent is None else {parent.tree})
    if parent is not None and parent.tree == tree and parent.kind is kind:
        return dataclasses.replace(parent, unchanged=True)
    new_files = files
    if parent is not None:
        changes = diff_trees(blobs, parent.tree, tree)
        new_files = len(changes.added) + len(changes.modified)
    fields: dict[str, Any] = {"kind": kind.value, "tree": tree, "files": files, "bytes": size,
                              "new_files": new_files}
    if kind is DatasetKind.TABLE:
        fields.update(_table_fields(blobs, body))
    with server.meta.write() as conn:
        dataset = records.ensure_dataset(conn, name)
        _check_parent(name, records.latest_version(conn, dataset), parent_number)
        version = records.insert_version(
            conn, dataset, parent_version=parent_number, message=message,
            created_by=user, **fields)
        if run_id is not None:
            records.record_lineage(conn, run_id, version, "output")
    return version


def _check_parent(name: str, latest: DatasetVersion | None, parent: int | None) -> None:
    have = None if latest is None else latest.version
    if have != parent:
        raise Conflict(f"dataset {name!r} is at version {have or 'none'}, not "
                       f"{parent or 'none'} as this version was built on (another writer "
                       "added one meanwhile); add it again")


def _table_fields(blobs: BlobStore, body: dict[str, Any]) -> dict[str, Any]:
    from loopml.profiling import TableProfile

    rows = _optional_int(body, "rows", minimum=0)
    new_rows = _optional_int(body, "new_rows", minimum=0)
    schema, validation = body.get("schema"), body.get("validation")
    if rows is None or new_rows is None or body.get("profile") is None:
        raise InvalidArgument("a table version needs 'rows', 'new_rows' and 'profile' (the "
                              "digest of its stored profile)")
    profile = check_digest(body["profile"])
    if not isinstance(schema, list) or not all(isinstance(c, dict) for c in schema):
        raise InvalidArgument("field 'schema' of a table version must be a list of column "
                              "objects")
    if validation is not None and not isinstance(validation, dict):
        raise InvalidArgument("field 'validation' must be an object or null")
    try:
        TableProfile.from_dict(blobs.get_json(profile))
    except NotFound:
        raise InvalidArgument(f"the profile {profile} is not on this server; upload it "
                              "first") from None
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidArgument(f"blob {profile} is not a table profile") from None
    return {"rows": rows, "new_rows": new_rows, "schema": schema, "profile": profile,
            "validation": validation}


def _kind(value: object) -> DatasetKind:
    try:
        return DatasetKind(str(value))
    except ValueError:
        raise InvalidArgument(f"field 'kind' must be one of "
                              f"{', '.join(k.value for k in DatasetKind)}, got {value!r}"
                              ) from None


def _optional_int(body: dict[str, Any], name: str, *, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidArgument(f"field {name!r} must be a whole number >= {minimum}, got "
                              f"{value!r}")
    return value


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"field {name!r} must be a string, got {value!r}")
    return value
