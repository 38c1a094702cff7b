"""Hashed trees: a directory of files as one content-addressed digest — the public verbs.

::

    info = build_tree(store, "data/images", stat_cache=cache)            # add a directory
    info2 = build_tree(store, "data/images", base=info.digest, stat_cache=cache)
    for path, entry in iter_files(store, info2.digest, prefix="cats"):   # read
        ...
    changes = diff_trees(store, info.digest, info2.digest)                # compare
    digest = tree_from_entries(store, {**old, "new.jpg": entry}, base=info2.digest)

A tree is made of directory listings and, for versions close to a parent, deltas
(:mod:`loopml.blobs.listing` describes both); file contents are stored whole, packed or
chunked (:mod:`loopml.blobs.entry`). Materialise a tree with
:func:`~loopml.blobs.checkout.checkout`; copy it between stores with
:func:`~loopml.blobs.transfer.push` and :func:`~loopml.blobs.transfer.pull`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from loopml.blobs.build import build_tree
from loopml.blobs.chunking import iter_chunks, iter_pages
from loopml.blobs.diff import TreeDiff, diff_trees
from loopml.blobs.entry import FileEntry, check_tree_path
from loopml.blobs.listing import (
    Delta,
    TreeInfo,
    check_present,
    iter_files,
    load_listing,
    load_tree_object,
    resolve_tree,
    write_tree,
)
from loopml.blobs.store import BlobStore
from loopml.errors import NotFound

__all__ = [
    "FileEntry", "TreeDiff", "TreeInfo", "build_tree", "diff_trees", "iter_files",
    "reachable_objects", "tree_from_entries", "tree_info",
]


def tree_from_entries(store: BlobStore, entries: Mapping[str, FileEntry], *,
                      base: str | None = None) -> str:
    """Store a tree holding exactly ``entries`` (path → entry); return its digest.

    Every entry's content must be in ``store`` already (entries come from
    :func:`~loopml.blobs.chunking.store_file`, :func:`iter_files` or a build); that is
    checked, once per stored object not found in ``base``. Pass ``base`` (usually the
    parent version) to store the tree as a small delta against it; ``base`` itself is
    returned if nothing changed. Paths must be relative, with ``/`` between names.
    """
    entries = {check_tree_path(path): entry for path, entry in entries.items()}
    base_entries = dict(iter_files(store, base)) if base is not None else {}
    missing = check_present(store, entries,
                            known={entry.storage for entry in base_entries.values()})
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more"
                                          if len(missing) > 3 else "")
        raise NotFound(f"the content of {shown} is not in {store.url}; store the files "
                       "first (store_file or build_tree) and pass the entries they return")
    return write_tree(store, entries, base=base, base_entries=base_entries).digest


def tree_info(store: BlobStore, digest: str) -> TreeInfo:
    """How many files and bytes tree ``digest`` holds (reads its root or delta only)."""
    resolved = resolve_tree(store, digest)
    return TreeInfo(digest, resolved.files, resolved.bytes)


def reachable_objects(store: BlobStore, trees: Iterable[str]) -> set[str]:
    """Every blob the trees ``trees`` need: their deltas and listings, packs, whole
    files, chunk indexes, pages and chunks. What a garbage collector must keep.

    A collector must delete unreachable tree objects before the blobs they list (parents
    before children), so that an interrupted collection never leaves a tree object whose
    parts are gone.
    """
    found: set[str] = set()
    entries: set[FileEntry] = set()
    for tree in trees:
        current = tree
        while current not in found:
            found.add(current)
            obj = load_tree_object(store, current)
            if not isinstance(obj, Delta):
                _collect_listing(store, current, found, entries)
                break
            entries.update(entry for entry in obj.changes.values() if entry is not None)
            current = obj.base
    for index in {entry.chunks for entry in entries if entry.chunks is not None}:
        found.update(iter_pages(store, index))
        found.update(digest for digest, _ in iter_chunks(store, index))
    found.update(entry.storage for entry in entries)
    return found


def _collect_listing(store: BlobStore, listing: str, found: set[str],
                     entries: set[FileEntry]) -> None:
    found.add(listing)
    dirs, files = load_listing(store, listing)
    entries.update(files.values())
    for child, _, _ in dirs.values():
        if child not in found:
            _collect_listing(store, child, found, entries)
