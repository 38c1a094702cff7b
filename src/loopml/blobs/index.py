"""What a directory held when a tree was last built from it or checked out into it.

Like git's index: for each such directory the stat cache keeps (:meth:`StatCache.index_of
<loopml.blobs.statcache.StatCache.index_of>`) the tree and, for each of its files, the
fingerprint the file had then and its entry in the tree. A new scan compared with the
index (:meth:`DirectoryIndex.changes`) names the files that may have changed — new ones,
those whose fingerprint differs and those that were too recent to be judged by their
fingerprint (see :func:`~loopml.blobs.statcache.is_racy`) — and those that have gone. Every
other file is known to hold its entry's content: adding the directory again, or checking
another tree out into it, looks only at the files named, and never reads the whole tree.

The index is kept a directory at a time, as two flat lists per directory: the files'
fingerprints ``[name, size, mtime_ns, inode, ctime_ns, name, …]``, laid out as
:attr:`Scan.listing <loopml.blobs.statcache.Scan.listing>` lays out a scan (so an unchanged
directory is one list comparison) with ``None`` for the time of a racy file, and their
entries as the fields of :class:`~loopml.blobs.entry.FileEntry` ``[digest, size, chunk
index, pack, offset, …]``. It is a file beside the stat cache, written whole after the
tree it names (so an interrupted build or checkout leaves the previous index); any index
is safe to use, however old, since a file changed since has another fingerprint.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from loopml.blobs.entry import FileEntry
from loopml.blobs.statcache import COARSE_RACY_NS, Fingerprint, Scan, StatCache, is_racy

__all__ = ["DirectoryIndex"]

_FORMAT = "loopml.directory-index/1"
_PRINT = 5  # values per file in a directory's fingerprint list
_ENTRY = 5  # values per file in a directory's entry list (a FileEntry's fields)
_new_tuple = tuple.__new__  # a FileEntry from its fields, built in C
#: A directory's two lists: fingerprints and entries.
Rows = list[list[Any]]


class DirectoryIndex:
    """The tree a directory held and the fingerprint and entry of each of its files."""

    def __init__(self, tree: str, dirs: dict[str, Rows]) -> None:
        #: The tree the directory held.
        self.tree = tree
        self._dirs = dirs
        self._names: dict[str, dict[str, int]] = {}
        self._by_digest: dict[str, str] | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, stat_cache: StatCache, root: str) -> DirectoryIndex | None:
        """The index of directory ``root`` (an absolute path), or None if none is known."""
        document = stat_cache.index_of(root)
        try:
            if document["format"] == _FORMAT and document["root"] == root:
                tree, dirs = document["tree"], document["dirs"]
                if isinstance(tree, str) and all(
                        type(prints) is list and type(entries) is list
                        and len(prints) == len(entries) and len(prints) % _PRINT == 0
                        for prints, entries in dirs.values()):
                    return cls(tree, dirs)
        except (TypeError, KeyError, ValueError, AttributeError):
            pass
        return None  # none, or not one this code wrote: only a cache

    def save(self, stat_cache: StatCache, root: str) -> None:
        """Record this index as that of directory ``root``."""
        stat_cache.remember_index(root, {"format": _FORMAT, "root": root, "tree": self.tree,
                                         "dirs": self._dirs})

    @classmethod
    def of(cls, tree: str, files: Iterable[tuple[str, Fingerprint, FileEntry]], *,
           read_ns: int | None) -> DirectoryIndex:
        """The index of a directory holding ``tree``, from each file's (path relative to the
        directory, fingerprint, entry). Files whose fingerprint is too recent for ``read_ns``
        (when they were read, see :func:`~loopml.blobs.statcache.is_racy`) are marked to be
        checked next time; None: every fingerprint is trusted (files just written)."""
        grouped: dict[str, dict[str, tuple[list[Any], list[Any]]]] = {}
        for rel, print_, entry in files:
            directory, _, name = rel.rpartition("/")
            grouped.setdefault(directory, {})[name] = _rows(name, print_, entry, read_ns)
        return cls(tree, {directory: _joined(found) for directory, found in grouped.items()})

    @classmethod
    def from_scan(cls, tree: str, scan: Scan, entries: Mapping[str, FileEntry],
                  moved: Mapping[str, Fingerprint], *, read_ns: int) -> DirectoryIndex:
        """The index of the scanned directory, which holds ``tree`` (whose files are
        ``entries``), as :meth:`of` without a step per file; ``moved`` are the fingerprints
        of files that changed between the scan and their reading (the content is theirs)."""
        dirs: dict[str, Rows] = {}
        earliest = read_ns - COARSE_RACY_NS
        for directory, listed in scan.listing.items():
            prints = list(listed)
            flat: list[Any] = []
            for name in prints[::_PRINT]:
                flat += entries[_join(directory, name)]
            for i, mtime in enumerate(prints[2::_PRINT]):
                if mtime >= earliest:  # maybe racy: see precisely
                    at = slice(i * _PRINT, (i + 1) * _PRINT)
                    prints[at] = _print_row(prints[at.start], Fingerprint(*prints[at][1:]),
                                            read_ns)
            dirs[directory] = [prints, flat]
        index = cls(tree, dirs)
        for rel, print_ in moved.items():
            directory, _, name = rel.rpartition("/")
            position = index._position(directory, name)
            if position is not None:
                at = slice(position * _PRINT, (position + 1) * _PRINT)
                dirs[directory][0][at] = _print_row(name, print_, read_ns)
        return index

    def __len__(self) -> int:
        return sum(len(rows[1]) // _ENTRY for rows in self._dirs.values())

    def changes(self, scan: Scan) -> tuple[list[str], list[str]]:
        """``(look, gone)``, in path order: the files of ``scan`` (a scan of the directory)
        that may have changed, and the indexed files no longer there."""
        look: list[str] = []
        gone: list[str] = []
        for directory, listed in scan.listing.items():
            rows = self._dirs.get(directory)
            if rows is None:
                look += (_join(directory, name) for name in listed[::_PRINT])
            elif rows[0] != listed:
                changed = _files(listed).difference(_files(rows[0]))
                look += (_join(directory, found[0]) for found in changed)
                gone += (_join(directory, name) for name in
                         set(rows[0][::_PRINT]).difference(listed[::_PRINT]))
        for directory in self._dirs.keys() - scan.listing.keys():
            gone += (_join(directory, name) for name in self._dirs[directory][0][::_PRINT])
        look.sort()
        gone.sort()
        return look, gone

    def _position(self, directory: str, name: str) -> int | None:
        names = self._names.get(directory)
        if names is None:
            rows = self._dirs.get(directory)
            if rows is None:
                return None
            names = self._names[directory] = {n: i for i, n in enumerate(rows[0][::_PRINT])}
        return names.get(name)

    def entry(self, rel: str) -> FileEntry | None:
        """The entry of ``rel`` in the tree, or None if the tree has no such file."""
        directory, _, name = rel.rpartition("/")
        i = self._position(directory, name)
        return None if i is None else _entry(self._dirs[directory], i)

    def with_digest(self, digest: str) -> FileEntry | None:
        """An entry of the tree holding the content ``digest``, or None."""
        with self._lock:
            if self._by_digest is None:
                self._by_digest = {
                    found: _join(directory, name)
                    for directory, (prints, entries) in self._dirs.items()
                    for name, found in zip(prints[::_PRINT], entries[::_ENTRY], strict=True)}
        rel = self._by_digest.get(digest)
        return None if rel is None else self.entry(rel)

    def entries(self) -> dict[str, FileEntry]:
        """Every file of the tree: path → entry."""
        return {_join(directory, name): _entry(rows, i)
                for directory, rows in self._dirs.items()
                for i, name in enumerate(rows[0][::_PRINT])}

    def updated(self, tree: str, changed: Mapping[str, tuple[Fingerprint, FileEntry]],
                removed: Iterable[str], *, read_ns: int | None) -> DirectoryIndex:
        """The index of the directory now holding ``tree``: this one, less the files
        ``removed``, with the files ``changed`` (path → new fingerprint and entry) added or
        replaced; ``read_ns`` as for :meth:`of`. Untouched directories are shared."""
        touched: dict[str, dict[str, tuple[Fingerprint, FileEntry] | None]] = {}
        for rel in removed:
            directory, _, name = rel.rpartition("/")
            touched.setdefault(directory, {})[name] = None
        for rel, found in changed.items():
            directory, _, name = rel.rpartition("/")
            touched.setdefault(directory, {})[name] = found
        dirs = dict(self._dirs)
        for directory, updates in touched.items():
            rows = self._replaced(directory, updates, read_ns)
            if rows is None:
                rows = self._rebuilt(directory, updates, read_ns)
            if rows[1]:
                dirs[directory] = rows
            else:
                dirs.pop(directory, None)
        return DirectoryIndex(tree, dirs)

    def _replaced(self, directory: str,
                  updates: Mapping[str, tuple[Fingerprint, FileEntry] | None],
                  read_ns: int | None) -> Rows | None:
        """The directory's rows with files replaced in place; None unless every update
        replaces a file already indexed (the usual case: files edited)."""
        positions = [self._position(directory, name) for name in updates]
        if any(i is None for i in positions) or any(u is None for u in updates.values()):
            return None
        prints, entries = (list(rows) for rows in self._dirs[directory])
        for (name, found), i in zip(updates.items(), positions, strict=True):
            assert found is not None and i is not None
            print_row, entry_row = _rows(name, *found, read_ns)
            prints[i * _PRINT:(i + 1) * _PRINT] = print_row
            entries[i * _ENTRY:(i + 1) * _ENTRY] = entry_row
        return [prints, entries]

    def _rebuilt(self, directory: str,
                 updates: Mapping[str, tuple[Fingerprint, FileEntry] | None],
                 read_ns: int | None) -> Rows:
        files: dict[str, tuple[list[Any], list[Any]]] = {}
        rows = self._dirs.get(directory)
        if rows is not None:
            prints, entries = rows
            for i, name in enumerate(prints[::_PRINT]):
                files[name] = (prints[i * _PRINT:(i + 1) * _PRINT],
                               entries[i * _ENTRY:(i + 1) * _ENTRY])
        for name, found in updates.items():
            if found is None:
                files.pop(name, None)
            else:
                files[name] = _rows(name, *found, read_ns)
        return _joined(files)


def _files(prints: list[Any]) -> set[tuple[Any, ...]]:
    """The (name, size, mtime_ns, inode, ctime_ns) of each file of a fingerprint list."""
    values = iter(prints)
    return set(zip(values, values, values, values, values, strict=True))


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _print_row(name: str, print_: Fingerprint, read_ns: int | None) -> list[Any]:
    racy = read_ns is not None and is_racy(print_, read_ns)
    return [name, print_.size, None if racy else print_.mtime_ns, print_.inode,
            print_.ctime_ns]


def _rows(name: str, print_: Fingerprint, entry: FileEntry,
          read_ns: int | None) -> tuple[list[Any], list[Any]]:
    return _print_row(name, print_, read_ns), list(entry)


def _joined(files: Mapping[str, tuple[list[Any], list[Any]]]) -> Rows:
    """One directory's two flat lists, files in name order (as a scan lists them)."""
    prints: list[Any] = []
    entries: list[Any] = []
    for name in sorted(files):
        print_row, entry_row = files[name]
        prints += print_row
        entries += entry_row
    return [prints, entries]


def _entry(rows: Rows, i: int) -> FileEntry:
    return _new_tuple(FileEntry, rows[1][i * _ENTRY:(i + 1) * _ENTRY])
