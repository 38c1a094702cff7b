"""Adding a directory (or one file) to the blob store as a tree: :func:`build_tree`.

1. *scan*: one ``stat`` per file (:func:`~loopml.blobs.statcache.scan_files`);
2. *recognise*: if the stat cache has the index of the directory (the tree it held at its
   last build or checkout, :mod:`loopml.blobs.index`) and that tree is ``base`` (or no base
   is given), only the files the index cannot vouch for are looked at, and the result is
   written as changes to that tree; nothing else is read. Otherwise a file whose
   fingerprint matches the stat cache keeps its entry unread; its stored object is trusted
   if ``base`` holds it, else looked up once per object (one lookup per pack, not per file);
3. *store* the rest on threads: files under :data:`~loopml.blobs.packs.PACK_FILE_LIMIT`
   are read in path order into packs, larger ones stored whole or chunked; a file whose
   content the base tree already holds takes the base's entry and stores nothing;
4. *write* the tree, after all content (:func:`~loopml.blobs.listing.write_tree`), then
   record the directory's new index.

The stat cache is updated after each pack or file, so the work done before an interruption
is found again by the next build (packs are also made in path order, so without a cache a
pack is cut the same way again and found already stored); the tree is written last, so an
interrupted build leaves no tree, and the index is recorded after it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from loopml.blobs.chunking import check_unchanged, read_all, store_file_counted
from loopml.blobs.entry import FileEntry, check_tree_path
from loopml.blobs.hashing import hash_bytes
from loopml.blobs.index import DirectoryIndex
from loopml.blobs.listing import TreeInfo, check_present, iter_files, write_changes, write_tree
from loopml.blobs.packs import PACK_FILE_LIMIT, PACK_TARGET, write_pack
from loopml.blobs.parallel import run_parallel
from loopml.blobs.statcache import (
    Fingerprint,
    Scan,
    Scanned,
    StatCache,
    fingerprint,
    is_racy,
    scan_files,
)
from loopml.blobs.store import BlobStore
from loopml.errors import Conflict, InvalidArgument

__all__ = ["build_tree"]


def build_tree(store: BlobStore, root: str | os.PathLike[str], *, base: str | None = None,
               stat_cache: StatCache | None = None, progress: bool = False,
               record: bool = True) -> TreeInfo:
    """Store every file under ``root`` and the tree listing them; describe the result.

    ``root`` may be a directory (files found recursively; empty directories are not kept)
    or a single file, stored as a tree holding that one file under its own name. ``base``
    is a tree that is probably similar (the parent version): content it holds is not stored
    again, the result is stored as a small delta on it, and if nothing differs ``base``
    itself is returned. ``stat_cache`` lets unchanged files be recognised without reading;
    unless ``record`` is False (a tree built only to compare, as ``loopml data status``
    does), the directory's index then names the result.
    """
    scan_start = time.time_ns()
    root_path = os.path.abspath(root)
    scanned = scan_files(Path(root_path))
    for directory, listed in scanned.listing.items():
        if "\\" in directory or any("\\" in name for name in listed[::5]):
            for name in listed[::5]:  # names from a directory hold no "/", NUL, "." or ".."
                check_tree_path(f"{directory}/{name}" if directory else name)
    index = None if stat_cache is None else DirectoryIndex.load(stat_cache, root_path)
    if index is not None and (index.tree == base or (base is None and store.has(index.tree))):
        info, index = _build_on_index(store, scanned, index, stat_cache, scan_start, progress,
                                      delta=base is not None)
    else:
        info, index = _build_by_files(store, scanned, base, stat_cache, scan_start, progress)
    if stat_cache is not None and index is not None and record:
        index.save(stat_cache, root_path)
    return info


def _build_on_index(store: BlobStore, scanned: Scan, index: DirectoryIndex,
                    stat_cache: StatCache | None, scan_start: int, progress: bool, *,
                    delta: bool) -> tuple[TreeInfo, DirectoryIndex | None]:
    """The tree of ``scanned`` as changes to the tree ``index`` describes (written as a
    delta on it if ``delta`` and small, else in full), and the new index (None when
    nothing changed)."""
    files, size = len(scanned), sum(sum(listed[1::5]) for listed in scanned.listing.values())
    look, gone = index.changes(scanned)
    if not look and not gone:
        return TreeInfo(index.tree, files, size), None
    writer = _Writer(store, scanned, index.with_digest, stat_cache, scan_start)
    run_parallel(writer.store, _work_items(look, scanned), workers=store.workers,
                 progress=progress, description="storing files")
    changes: dict[str, FileEntry | None] = {
        rel: entry for rel, (_, entry) in writer.results.items()
        if not entry.same_content(index.entry(rel))}
    changes.update((rel, None) for rel in gone)

    def entries() -> dict[str, FileEntry]:
        every = index.entries()
        for rel in gone:
            del every[rel]
        every.update((rel, entry) for rel, (_, entry) in writer.results.items())
        return every

    info = (write_changes(store, index.tree, changes, files=files, size=size, entries=entries,
                          scanned=True) if delta or not changes
            else write_tree(store, entries(), scanned=True))
    return (dataclasses.replace(info, new_files=writer.new_files, new_bytes=writer.new_bytes),
            index.updated(info.digest, writer.results, gone, read_ns=scan_start))


def _build_by_files(store: BlobStore, scanned: Scan, base: str | None,
                    stat_cache: StatCache | None, scan_start: int,
                    progress: bool) -> tuple[TreeInfo, DirectoryIndex]:
    """The tree of ``scanned``, each file recognised by its own stat-cache row, and the
    directory's index."""
    base_entries = dict(iter_files(store, base)) if base is not None else {}
    by_digest = {entry.digest: entry for entry in base_entries.values()}
    unchanged = (stat_cache.lookup(dict(scanned.values())) if stat_cache is not None
                 else {})
    entries: dict[str, FileEntry] = {}
    unproven: dict[str, FileEntry] = {}
    for rel, (path, _) in scanned.items():
        hit = unchanged.get(path)
        if hit is not None:
            known = by_digest.get(hit.digest)
            if known is not None:
                entries[rel] = known
            else:
                unproven[rel] = hit
    absent = set(check_present(store, unproven,
                               known={entry.storage for entry in base_entries.values()}))
    entries.update((rel, entry) for rel, entry in unproven.items() if rel not in absent)
    todo = sorted(rel for rel in scanned if rel not in entries)
    writer = _Writer(store, scanned, by_digest.get, stat_cache, scan_start)
    run_parallel(writer.store, _work_items(todo, scanned), workers=store.workers,
                 progress=progress, description="storing files")
    entries.update((rel, entry) for rel, (_, entry) in writer.results.items())
    info = write_tree(store, entries, base=base, base_entries=base_entries, scanned=True)
    index = DirectoryIndex.from_scan(info.digest, scanned, entries, writer.moved,
                                     read_ns=scan_start)
    return dataclasses.replace(info, new_files=writer.new_files, new_bytes=writer.new_bytes), index


def _work_items(todo: list[str], scanned: Scanned) -> list[list[str]]:
    """Small files grouped, in path order, into packs of about PACK_TARGET bytes; each
    larger file alone."""
    items: list[list[str]] = []
    pack: list[str] = []
    pack_size = 0
    for rel in todo:
        size = scanned[rel][1].size
        if size >= PACK_FILE_LIMIT:
            items.append([rel])
            continue
        pack.append(rel)
        pack_size += size
        if pack_size >= PACK_TARGET:
            items.append(pack)
            pack, pack_size = [], 0
    if pack:
        items.append(pack)
    return items


class _Writer:
    """Stores work items on the pool's threads, collecting entries and counts.

    ``known`` gives an entry already stored for a content digest (the base tree's), or None.
    """

    def __init__(self, store: BlobStore, scanned: Scanned,
                 known: Callable[[str], FileEntry | None], stat_cache: StatCache | None,
                 scan_start: int) -> None:
        self.blobs, self.scanned, self.known = store, scanned, known
        self.stat_cache, self.scan_start = stat_cache, scan_start
        #: path → (fingerprint when read, entry) of every file stored or recognised.
        self.results: dict[str, tuple[Fingerprint, FileEntry]] = {}
        #: path → fingerprint when read, of the files that changed since the scan.
        self.moved: dict[str, Fingerprint] = {}
        self.new_files = self.new_bytes = 0
        self._lock = threading.Lock()

    def store(self, item: list[str]) -> None:
        """Store one work item: a single large file, or the small files of one pack."""
        path, print_ = self.scanned[item[0]]
        if len(item) == 1 and print_.size >= PACK_FILE_LIMIT:
            entry, written, stat = store_file_counted(self.blobs, Path(path))
            entry = self.known(entry.digest) or entry
            self._done({item[0]: (fingerprint(stat), entry)}, int(written > 0), written)
        else:
            self._store_pack(item)

    def _store_pack(self, item: list[str]) -> None:
        contents: list[bytes] = []
        positions: dict[str, int] = {}  # digest -> index in contents
        found: dict[str, tuple[str, int, Fingerprint, FileEntry | None]] = {}
        for rel in item:
            data, print_ = _read_small(self.scanned[rel][0])
            digest = hash_bytes(data)
            known = self.known(digest)
            found[rel] = (digest, len(data), print_, known)
            if known is None and digest not in positions:
                positions[digest] = len(contents)
                contents.append(data)
        pack, offsets, created = (write_pack(self.blobs, contents) if contents
                                  else ("", [], False))
        results = {}
        for rel, (digest, size, print_, known) in found.items():
            results[rel] = (print_, known if known is not None else
                            FileEntry(digest, size, pack=pack, offset=offsets[positions[digest]]))
        written = sum(len(data) for data in contents) if created else 0
        self._done(results, len(contents) if created else 0, written)

    def _done(self, results: dict[str, tuple[Fingerprint, FileEntry]], files: int,
              written: int) -> None:
        scanned = self.scanned
        with self._lock:
            self.results.update(results)
            self.moved.update((rel, print_) for rel, (print_, _) in results.items()
                              if print_ != scanned[rel][1])
            self.new_files += files
            self.new_bytes += written
        if self.stat_cache is not None:
            self.stat_cache.remember((self.scanned[rel][0], print_, entry)
                                     for rel, (print_, entry) in results.items()
                                     if not is_racy(print_, self.scan_start))


def _read_small(path: str) -> tuple[bytes, Fingerprint]:
    """The content and fingerprint of a small file; Conflict if it changes meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise Conflict(f"{path} disappeared while it was being stored; add it again") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path} ({exc.strerror or exc}); "
                              "check that it is a readable file") from None
    try:
        before = os.fstat(fd)
        data = read_all(fd, before.st_size)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    check_unchanged(path, before, after)
    return data, fingerprint(after)
