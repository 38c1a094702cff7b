"""How trees are stored: listings and deltas, read and written (public verbs: ``tree``).

A tree is stored in one of two forms, both canonical JSON blobs:

- *full*: every directory is one listing, naming its files (entries as in
  :mod:`loopml.blobs.entry`) and its sub-directories (listing digest, file count, bytes)::

      {"dirs": {"cats": [digest, 1000, 5120000]}, "files": {"README": [digest, 120]}}

- *delta*: a base tree plus the paths that changed (``null`` = removed)::

      {"base": digest, "changes": {"cats/1.jpg": [...], "old.txt": null},
       "depth": 1, "file_count": 20000, "byte_count": 102400000}

A version that changes 1% of 20,000 files is stored as a delta of 200 entries (~35 KB),
where rewriting the 20 directory listings it touches would cost 3.6 MB — more than the
changed files themselves. A chain of deltas is cut (a full tree written) once it is
:data:`MAX_DELTA_DEPTH` deep or its changes reach a quarter of the files. Equal content
can therefore have two digests (full and delta): compare versions with
:func:`~loopml.blobs.diff.diff_trees`, or pass ``base`` so an unchanged tree returns it.

Everything is written after what it refers to — data, then listings deepest first, then
the root or delta — so a tree object that exists in a store means the whole tree exists
there. Build, push and pull rely on this, and an interrupted write leaves no half tree.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, ItemsView, Iterator, Mapping, ValuesView
from dataclasses import dataclass
from typing import Any, NamedTuple

from loopml.blobs.digest import check_digest
from loopml.blobs.entry import (
    FileEntry,
    check_name,
    check_tree_path,
    decode_entry,
    encode_entry,
)
from loopml.blobs.hashing import canonical_json, hash_bytes
from loopml.blobs.parallel import run_parallel
from loopml.blobs.store import BlobStore
from loopml.errors import InvalidArgument

__all__ = [
    "MAX_DELTA_DEPTH", "Delta", "Listing", "ListingFiles", "ResolvedTree", "TreeInfo",
    "check_present",
    "clear_cache", "iter_files", "load_listing", "load_tree_object", "resolve_tree", "walk_listing",
    "write_changes", "write_tree",
]

MAX_DELTA_DEPTH = 16



class ListingFiles(Mapping[str, FileEntry]):
    """The files of a directory listing, by name; each entry is decoded (and checked) when
    first read, so looking up a few files of a listing of thousands decodes only those."""

    __slots__ = ("_decoded", "_digest", "_raw")

    def __init__(self, digest: str, raw: dict[str, Any]) -> None:
        self._digest = digest
        self._raw = raw
        self._decoded: dict[str, FileEntry] = {}

    def __getitem__(self, name: str) -> FileEntry:
        entry = self._decoded.get(name)
        if entry is None:
            raw = self._raw[name]
            try:
                entry = self._decoded[name] = decode_entry(raw)
            except ValueError:
                raise _not_a_tree(self._digest) from None
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def decoded(self) -> dict[str, FileEntry]:
        """Every file, decoded at once (faster than one by one)."""
        if len(self._decoded) < len(self._raw):
            try:
                self._decoded = {name: decode_entry(raw) for name, raw in self._raw.items()}
            except ValueError:
                raise _not_a_tree(self._digest) from None
        return self._decoded

    def values(self) -> ValuesView[FileEntry]:
        return self.decoded().values()

    def items(self) -> ItemsView[str, FileEntry]:
        return self.decoded().items()


Listing = tuple[dict[str, tuple[str, int, int]], ListingFiles]


@dataclass(frozen=True)
class TreeInfo:
    """A stored tree: its ``digest``, how many ``files`` and ``bytes`` it holds, and how many
    files and bytes of content the call that built it had to store (``new_*``)."""

    digest: str
    files: int
    bytes: int
    new_files: int = 0
    new_bytes: int = 0


class ResolvedTree(NamedTuple):
    """A tree as its full base listing plus the overrides of the deltas above it."""

    full: str
    overrides: dict[str, FileEntry | None]
    depth: int
    changes: int
    files: int
    bytes: int


class Delta(NamedTuple):
    """A decoded delta: its base tree, chain depth, totals, and changed paths."""

    base: str
    depth: int
    files: int
    bytes: int
    changes: dict[str, FileEntry | None]


# Decoded tree objects are immutable (content-addressed): a process keeps recent ones,
# up to about this many entries in all (a directory listing of 1,000 files is 1,000).
_CACHE_ENTRIES = 200_000
_cache: OrderedDict[tuple[str, str], tuple[Delta | Listing, int]] = OrderedDict()
_cache_weight = 0
_cache_lock = threading.Lock()


def _load(store: BlobStore, digest: str) -> Delta | Listing:
    """The decoded tree object ``digest`` (a listing or a delta), from a small LRU cache."""
    global _cache_weight
    key = (store.url, digest)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key][0]
    document = store.get_json(check_digest(digest))
    try:
        if isinstance(document, dict) and "base" in document:
            value: Delta | Listing = Delta(
                check_digest(document["base"]), int(document["depth"]),
                int(document["file_count"]), int(document["byte_count"]),
                {check_tree_path(path): None if raw is None else decode_entry(raw)
                 for path, raw in document["changes"].items()})
        else:
            dirs = {check_name(name): (check_digest(raw[0]), int(raw[1]), int(raw[2]))
                    for name, raw in document["dirs"].items()}
            raw_files = document["files"]
            if not isinstance(raw_files, dict):
                raise ValueError("files must be a mapping")
            for name in raw_files:
                check_name(name)
            if dirs.keys() & raw_files.keys():
                raise ValueError("a name is both a file and a directory")
            value = (dirs, ListingFiles(digest, raw_files))
    except (TypeError, KeyError, IndexError, ValueError, AttributeError):
        raise _not_a_tree(digest) from None
    weight = 1 + (len(value.changes) if isinstance(value, Delta)
                  else len(value[0]) + len(value[1]))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = (value, weight)
            _cache_weight += weight
        while _cache_weight > _CACHE_ENTRIES and len(_cache) > 1:
            _cache_weight -= _cache.popitem(last=False)[1][1]
    return value


def _not_a_tree(digest: str) -> InvalidArgument:
    return InvalidArgument(f"blob {digest} is not a tree listing or delta; pass a tree "
                           "digest returned by build_tree or tree_from_entries")


def clear_cache() -> None:
    """Forget the decoded tree objects kept by this process (for measurements and tests)."""
    global _cache_weight
    with _cache_lock:
        _cache.clear()
        _cache_weight = 0


def load_tree_object(store: BlobStore, digest: str) -> Delta | Listing:
    """The decoded tree object ``digest``: a :class:`Delta`, or a listing (dirs, files)."""
    return _load(store, digest)


def load_listing(store: BlobStore, digest: str) -> Listing:
    """The sub-directories and files of the full directory listing ``digest``."""
    value = _load(store, digest)
    if isinstance(value, Delta):
        raise InvalidArgument(f"blob {digest} is a tree delta, not a directory listing")
    return value


def resolve_tree(store: BlobStore, digest: str) -> ResolvedTree:
    """Follow the deltas of tree ``digest`` down to its full base listing."""
    overrides: dict[str, FileEntry | None] = {}
    current, steps, changes = digest, 0, 0
    totals: tuple[int, int, int] | None = None
    while isinstance(value := _load(store, current), Delta):
        if totals is None:
            totals = (value.depth, value.files, value.bytes)
        for path, entry in value.changes.items():
            overrides.setdefault(path, entry)
        changes += len(value.changes)
        current, steps = value.base, steps + 1
        if steps > 10 * MAX_DELTA_DEPTH:
            raise InvalidArgument(f"tree {digest} has a delta chain that does not end")
    if totals is None:
        dirs, files_ = value
        totals = (0, len(files_) + sum(d[1] for d in dirs.values()),
                  sum(e.size for e in files_.values()) + sum(d[2] for d in dirs.values()))
    return ResolvedTree(current, overrides, totals[0], changes, totals[1], totals[2])


def iter_files(store: BlobStore, digest: str, prefix: str = "") -> Iterator[tuple[str, FileEntry]]:
    """``(path, entry)`` of every file of tree ``digest`` under ``prefix``, in path order.

    ``prefix`` is a directory (its files are listed, with their full paths) or a file (just
    that one); only the listings on the way to it and below it are read.
    """
    prefix = check_tree_path(prefix.strip("/")) if prefix.strip("/") else ""
    resolved = resolve_tree(store, digest)
    found = _walk_prefix(store, resolved.full, prefix)
    if not resolved.overrides:
        yield from found
        return
    merged = dict(found)
    for path, entry in resolved.overrides.items():
        if not prefix or path == prefix or path.startswith(prefix + "/"):
            if entry is None:
                merged.pop(path, None)
            else:
                merged[path] = entry
    yield from sorted(merged.items())


def _walk_prefix(store: BlobStore, listing: str, prefix: str) -> Iterator[tuple[str, FileEntry]]:
    parts = prefix.split("/") if prefix else []
    for depth, part in enumerate(parts):
        dirs, files = load_listing(store, listing)
        if depth == len(parts) - 1 and part in files:
            yield prefix, files[part]
            return
        if part not in dirs:
            return
        listing = dirs[part][0]
    yield from walk_listing(store, listing, prefix + "/" if prefix else "")


def walk_listing(store: BlobStore, listing: str, path: str) -> Iterator[tuple[str, FileEntry]]:
    """Every file below the full listing ``listing``, its path prefixed by ``path``."""
    dirs, listed = load_listing(store, listing)
    files = listed.decoded()
    # Sorting directories as "name/" puts every path in plain string order.
    keys = sorted([*files, *(name + "/" for name in dirs)])
    for key in keys:
        if key.endswith("/"):
            yield from walk_listing(store, dirs[key[:-1]][0], path + key)
        else:
            yield path + key, files[key]


_INLINE_CHECKS = 8


def check_present(store: BlobStore, entries: Mapping[str, FileEntry], *,
                  known: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """The paths of ``entries`` whose content is not in ``store``.

    Objects in ``known`` are taken as present; each other object is looked up once.
    """
    objects = sorted({entry.storage for entry in entries.values()} - known)
    # A few look-ups cost less than starting threads for them.
    found = run_parallel(store.has, objects,
                         workers=store.workers if len(objects) > _INLINE_CHECKS else 1)
    missing = {obj for obj, present in zip(objects, found, strict=True) if not present}
    return [path for path, entry in entries.items() if entry.storage in missing]


def write_tree(store: BlobStore, entries: Mapping[str, FileEntry], *, base: str | None = None,
               base_entries: Mapping[str, FileEntry] | None = None,
               scanned: bool = False) -> TreeInfo:
    """Store the tree of ``entries`` (content already stored), as a delta on ``base`` when
    that is small; ``base_entries`` are the files of ``base`` if the caller has them.

    ``scanned`` says the paths come from a directory scan, so no path can be both a file
    and a directory and that check is skipped for a delta.
    """
    files, size = len(entries), sum(entry.size for entry in entries.values())
    if base is None:
        return TreeInfo(_write_listings(store, entries), files, size)
    if base_entries is None:
        base_entries = dict(iter_files(store, base))
    changes: dict[str, FileEntry | None] = {
        path: entry for path, entry in entries.items()
        if not entry.same_content(base_entries.get(path))}
    changes.update((path, None) for path in base_entries if path not in entries)
    return write_changes(store, base, changes, files=files, size=size,
                         entries=lambda: entries, scanned=scanned)


def write_changes(store: BlobStore, base: str, changes: Mapping[str, FileEntry | None], *,
                  files: int, size: int, entries: Callable[[], Mapping[str, FileEntry]],
                  scanned: bool = False) -> TreeInfo:
    """Store the tree ``base`` with ``changes`` (path → new entry, or None: removed), which
    holds ``files`` files of ``size`` bytes in all: as a delta on ``base`` when that is
    small, else as full listings of ``entries()`` (every file of the new tree).

    ``base`` itself is returned when there are no changes; ``scanned`` as for
    :func:`write_tree`.
    """
    if not changes:
        return TreeInfo(base, files, size)
    resolved = resolve_tree(store, base)
    if resolved.depth < MAX_DELTA_DEPTH and resolved.changes + len(changes) <= files // 4:
        if not scanned:
            _check_shape(entries())
        delta = {"base": base, "depth": resolved.depth + 1, "file_count": files,
                 "byte_count": size, "changes": {path: None if entry is None
                                                 else encode_entry(entry)
                                                 for path, entry in changes.items()}}
        return TreeInfo(store.put_json(delta), files, size)
    return TreeInfo(_write_listings(store, entries()), files, size)


class _Node:
    __slots__ = ("dirs", "files")

    def __init__(self) -> None:
        self.dirs: dict[str, _Node] = {}
        self.files: dict[str, FileEntry] = {}


def _check_shape(entries: Mapping[str, FileEntry]) -> _Node:
    """The directory structure of ``entries``; InvalidArgument if a path is file and dir."""
    root = _Node()
    for path, entry in entries.items():
        node, parts = root, path.split("/")
        for part in parts[:-1]:
            if part in node.files:
                raise InvalidArgument(f"'{path}' lies under '{part}', which is a file; a "
                                      "path cannot be both a file and a directory")
            node = node.dirs.setdefault(part, _Node())
        if parts[-1] in node.dirs:
            raise InvalidArgument(f"'{path}' is both a file and a directory; rename one")
        node.files[parts[-1]] = entry
    return root


def _write_listings(store: BlobStore, entries: Mapping[str, FileEntry]) -> str:
    """Write the listings of ``entries``, deepest first and the root last; return its digest."""
    levels: list[list[bytes]] = []

    def encode(node: _Node, depth: int) -> tuple[str, int, int]:
        dirs = {name: encode(child, depth + 1) for name, child in node.dirs.items()}
        data = canonical_json({"dirs": {name: list(value) for name, value in dirs.items()},
                               "files": {name: encode_entry(entry)
                                         for name, entry in node.files.items()}})
        while len(levels) <= depth:
            levels.append([])
        levels[depth].append(data)
        return (hash_bytes(data),
                len(node.files) + sum(count for _, count, _ in dirs.values()),
                sum(e.size for e in node.files.values()) + sum(b for _, _, b in dirs.values()))

    digest = encode(_check_shape(entries), 0)[0]
    for level in reversed(levels):
        run_parallel(store.add_bytes, level, workers=store.workers)
    return digest
