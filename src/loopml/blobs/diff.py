"""Comparing two trees: which files were added, removed or modified (:func:`diff_trees`).

Files are compared by content (digest and size), never by where the bytes are stored, so
a tree and a delta holding the same files are equal. Sub-directories whose listings have
the same digest are skipped unread; deltas are compared by the paths they touch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from loopml.blobs.entry import FileEntry
from loopml.blobs.listing import ResolvedTree, load_listing, resolve_tree, walk_listing
from loopml.blobs.store import BlobStore

__all__ = ["TreeDiff", "diff_trees"]


@dataclass(frozen=True)
class TreeDiff:
    """The files that differ between an old and a new tree, by path (each in path order)."""

    #: Files only in the new tree.
    added: dict[str, FileEntry] = field(default_factory=dict)
    #: Files only in the old tree.
    removed: dict[str, FileEntry] = field(default_factory=dict)
    #: Files in both with different content: ``(old, new)``.
    modified: dict[str, tuple[FileEntry, FileEntry]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether the trees hold different files."""
        return bool(self.added or self.removed or self.modified)


def diff_trees(store: BlobStore, old: str, new: str) -> TreeDiff:
    """What changed from tree ``old`` to tree ``new``."""
    if old == new:
        return TreeDiff()
    before, after = resolve_tree(store, old), resolve_tree(store, new)
    pairs: dict[str, tuple[FileEntry | None, FileEntry | None]] = {}
    for path, was, now in _diff_listings(store, before.full, after.full, ""):
        pairs[path] = (was, now)
    for path in pairs.keys() | before.overrides.keys() | after.overrides.keys():
        was, now = pairs.get(path, (None, None))
        pairs[path] = (_entry(store, before, path, was, path in pairs),
                       _entry(store, after, path, now, path in pairs))
    result = TreeDiff()
    for path in sorted(pairs):
        was, now = pairs[path]
        if was is None and now is not None:
            result.added[path] = now
        elif now is None and was is not None:
            result.removed[path] = was
        elif was is not None and now is not None and not was.same_content(now):
            result.modified[path] = (was, now)
    return result


def _entry(store: BlobStore, tree: ResolvedTree, path: str, in_full: FileEntry | None,
           known: bool) -> FileEntry | None:
    """The entry of ``path`` in ``tree``: its delta's if any, else its full listing's
    (``in_full`` when ``known``, else looked up)."""
    if path in tree.overrides:
        return tree.overrides[path]
    return in_full if known else _lookup(store, tree.full, path)


def _lookup(store: BlobStore, listing: str, path: str) -> FileEntry | None:
    *directories, name = path.split("/")
    for part in directories:
        dirs, _ = load_listing(store, listing)
        if part not in dirs:
            return None
        listing = dirs[part][0]
    return load_listing(store, listing)[1].get(name)


def _diff_listings(store: BlobStore, old: str, new: str, path: str,
                   ) -> Iterator[tuple[str, FileEntry | None, FileEntry | None]]:
    """``(path, old entry, new entry)`` of each file differing between two full listings."""
    if old == new:
        return
    old_dirs, old_files = load_listing(store, old)
    new_dirs, new_files = load_listing(store, new)
    for name in old_files.keys() | new_files.keys():
        was, now = old_files.get(name), new_files.get(name)
        if was is None or not was.same_content(now):
            yield path + name, was, now
    for name in old_dirs.keys() | new_dirs.keys():
        was_dir, now_dir = old_dirs.get(name), new_dirs.get(name)
        if was_dir is not None and now_dir is not None:
            yield from _diff_listings(store, was_dir[0], now_dir[0], f"{path}{name}/")
        elif was_dir is not None:
            for sub, entry in walk_listing(store, was_dir[0], f"{path}{name}/"):
                yield sub, entry, None
        elif now_dir is not None:
            for sub, entry in walk_listing(store, now_dir[0], f"{path}{name}/"):
                yield sub, None, entry
