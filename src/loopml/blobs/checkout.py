"""Materialising a tree into a directory: :func:`checkout`.

Only files that differ are written. When the stat cache has the index of the directory
(:mod:`loopml.blobs.index`: the tree it held at its last build or checkout), only the
files that differ between that tree and the new one, and those changed on disk since, are
looked at; otherwise a file already in the directory is recognised as unchanged by the
stat cache (no read), else — when its size matches — by hashing it. The rest are
written, each to a temporary name beside it and renamed, so a reader never sees a half
file and an interrupted checkout leaves every file either old or new. Files are
always copies: nothing in the directory is a link into the store, so editing them can
never damage a version. Files of one pack are read together (one open, or one download
from a remote store); files are written on the store's worker threads.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from loopml.blobs.chunking import read_file, write_atomic
from loopml.blobs.diff import diff_trees
from loopml.blobs.entry import FileEntry, check_tree_path
from loopml.blobs.index import DirectoryIndex
from loopml.blobs.listing import iter_files
from loopml.blobs.local import LocalBackend
from loopml.blobs.packs import RANGES_PER_DOWNLOAD, read_packed_many
from loopml.blobs.parallel import run_parallel
from loopml.blobs.statcache import (
    Fingerprint,
    Scan,
    Scanned,
    StatCache,
    content_digest,
    fingerprint,
    scan_files,
)
from loopml.blobs.store import BlobStore
from loopml.errors import Conflict, InvalidArgument, NotFound

__all__ = ["CheckoutStats", "checkout", "checkout_once"]

# A local pack's files are written in batches of at most this many, and at least this
# few: enough batches for the writing threads (creating and renaming files is system work
# that runs in parallel, measured 1.5x faster on 4 threads than on 1 for 200 small files).
_FILES_PER_TASK = 256
_MIN_FILES_PER_TASK = 32
_RANGES_PER_TASK = 1


@dataclass(frozen=True)
class CheckoutStats:
    """What a checkout did: files ``written``, found ``unchanged``, and ``removed``."""

    written: int
    unchanged: int
    removed: int


@dataclass
class _Plan:
    to_write: dict[str, FileEntry]
    extra: list[str]
    unchanged: int
    #: Files found right by hashing: (absolute path, fingerprint, entry).
    remember: list[tuple[str, Fingerprint, FileEntry]] = field(default_factory=list)
    #: How the directory's new index is made: from its old one (less the files of its
    #: tree that the new tree has not), or from every entry.
    index: DirectoryIndex | None = None
    removed: list[str] = field(default_factory=list)
    wanted: dict[str, FileEntry] | None = None


def checkout(store: BlobStore, tree: str, dest: str | os.PathLike[str], *, prefix: str = "",
             stat_cache: StatCache | None = None, progress: bool = False,
             remove_extra: bool = False) -> CheckoutStats:
    """Make the directory ``dest`` hold the files of ``tree`` (or of its ``prefix``).

    With ``prefix`` (a directory or a file of the tree), paths under ``dest`` are relative
    to it. Files in ``dest`` that the tree does not have are kept, unless ``remove_extra``
    (then they are deleted, with the directories left empty). ``stat_cache`` lets files
    already right be recognised without reading them, and remembers those written; when
    it knows which tree ``dest`` held at its last add or checkout, only the two trees'
    differences are looked at.
    """
    prefix = prefix.strip("/")
    root = Path(os.path.abspath(dest))
    if root.exists() and not root.is_dir():
        raise InvalidArgument(f"{root} is a file; check out into a directory")
    present = scan_files(root) if root.is_dir() else Scan(str(root), {})
    plan = None
    if stat_cache is not None and not prefix and present:
        index = DirectoryIndex.load(stat_cache, str(root))
        if index is not None:
            plan = _plan_from_index(store, index, present, tree)
    if plan is None:
        plan = _plan_by_files(store, stat_cache, tree, prefix, present)
    if remove_extra:
        _remove(root, plan.extra)
    else:
        _check_in_the_way(list(plan.to_write), plan.extra)
    tasks = _tasks(plan.to_write, local=isinstance(store.backend, LocalBackend),
                   workers=store.workers)
    written = run_parallel(lambda task: _write(store, root, task), tasks,
                           workers=store.workers, progress=progress,
                           description="writing files")
    if stat_cache is not None:
        done = [*plan.remember, *(item for task in written for item in task)]
        stat_cache.remember(done)
        if not prefix:
            _new_index(plan, tree, root, present, done).save(stat_cache, str(root))
    return CheckoutStats(len(plan.to_write), plan.unchanged,
                         len(plan.extra) if remove_extra else 0)


def _new_index(plan: _Plan, tree: str, root: Path, present: Scanned,
               done: list[tuple[str, Fingerprint, FileEntry]]) -> DirectoryIndex:
    """The index of ``root`` once it holds ``tree`` (extra files kept are not indexed)."""
    cut = len(str(root)) + 1
    changed = {path[cut:]: (print_, entry) for path, print_, entry in done}
    if plan.index is not None:
        return plan.index.updated(tree, changed, [*plan.removed, *plan.extra], read_ns=None)
    assert plan.wanted is not None
    wanted, extra = plan.wanted, set(plan.extra)
    kept = ((rel, print_, wanted[rel]) for rel, (_, print_) in present.items()
            if rel not in extra and rel not in changed)
    return DirectoryIndex.of(tree, [*kept, *((rel, *found) for rel, found in changed.items())],
                             read_ns=None)


def _plan_from_index(store: BlobStore, index: DirectoryIndex, present: Scan,
                     tree: str) -> _Plan | None:
    """What to do, from the tree the directory held (None if that tree is not in store)."""
    try:
        changes = diff_trees(store, index.tree, tree)
    except NotFound:
        return None  # recorded with another store
    to_write = {**changes.added, **{rel: new for rel, (_, new) in changes.modified.items()}}
    extra = [rel for rel in changes.removed if rel in present]
    look, gone = index.changes(present)
    to_hash: list[tuple[str, FileEntry]] = []
    for rel in look:  # changed on disk since: right only if it holds the tree's content
        if rel in to_write or rel in changes.removed:
            continue
        entry = index.entry(rel)
        if entry is None:
            extra.append(rel)  # in neither tree
        else:
            to_hash.append((rel, entry))
    for rel in gone:
        entry = index.entry(rel)
        if entry is not None and rel not in to_write and rel not in changes.removed:
            to_write[rel] = entry
    plan = _Plan(to_write, sorted(extra), 0, index=index, removed=list(changes.removed))
    _check_by_hashing(store, plan, present, to_hash)
    plan.unchanged = len(present) - len(plan.extra) - sum(rel in present for rel in to_write)
    return plan


def _check_by_hashing(store: BlobStore, plan: _Plan, present: Scanned,
                      candidates: list[tuple[str, FileEntry]]) -> None:
    """Hash each candidate file: count it unchanged if it holds its entry's content, else
    add it to the files to write."""
    digests = run_parallel(content_digest, [present[rel][0] for rel, _ in candidates],
                           workers=store.workers)
    for (rel, entry), (digest, print_) in zip(candidates, digests, strict=True):
        if digest == entry.digest and print_ is not None:
            plan.remember.append((present[rel][0], print_, entry))
        else:
            plan.to_write[rel] = entry


def _plan_by_files(store: BlobStore, stat_cache: StatCache | None, tree: str, prefix: str,
                   present: Scanned) -> _Plan:
    """What to do, comparing each file of the tree with the one in the directory."""
    wanted = _wanted(store, tree, prefix)
    known = (stat_cache.lookup({path: print_ for rel, (path, print_) in present.items()
                                if rel in wanted}) if stat_cache is not None else {})
    to_write: dict[str, FileEntry] = {}
    to_hash = []
    unchanged = 0
    for rel, entry in wanted.items():
        found = present.get(rel)
        if found is not None and found[0] in known:
            if known[found[0]].same_content(entry):
                unchanged += 1
            else:
                to_write[rel] = entry
        elif found is not None and found[1].size == entry.size:
            to_hash.append(rel)
        else:
            to_write[rel] = entry
    plan = _Plan(to_write, sorted(rel for rel in present if rel not in wanted), unchanged,
                 wanted=wanted)
    _check_by_hashing(store, plan, present, [(rel, wanted[rel]) for rel in to_hash])
    plan.unchanged += len(plan.remember)
    return plan


def _wanted(store: BlobStore, tree: str, prefix: str) -> dict[str, FileEntry]:
    """The files to materialise, by path relative to ``prefix``."""
    prefix = prefix.strip("/")
    if not prefix:
        return dict(iter_files(store, tree))
    check_tree_path(prefix)
    cut = len(prefix) + 1
    wanted = {path[cut:] if path != prefix else prefix.rsplit("/", 1)[-1]: entry
              for path, entry in iter_files(store, tree, prefix)}
    if not wanted:
        raise NotFound(f"no file or directory '{prefix}' in tree {tree}; list the tree's "
                       "files to see its paths")
    return wanted


def _tasks(to_write: dict[str, FileEntry], *, local: bool, workers: int,
           ) -> list[list[tuple[str, FileEntry]]]:
    """Files of one pack together; every other file alone.

    A local pack is read in batches of files; from a remote store, a pack many files come
    from is one task (one download), while a few files are read a few per task, so that
    their ranged reads run in parallel.
    """
    by_pack: dict[str, list[tuple[str, FileEntry]]] = {}
    tasks: list[list[tuple[str, FileEntry]]] = []
    for rel, entry in sorted(to_write.items()):
        if entry.pack is None:
            tasks.append([(rel, entry)])
        else:
            by_pack.setdefault(entry.pack, []).append((rel, entry))
    for group in by_pack.values():
        group.sort(key=lambda item: item[1].offset)
        size = (min(_FILES_PER_TASK, max(_MIN_FILES_PER_TASK, -(-len(group) // workers)))
                if local else
                len(group) if len(group) > RANGES_PER_DOWNLOAD else _RANGES_PER_TASK)
        tasks += [group[i:i + size] for i in range(0, len(group), size)]
    return tasks


def _write(store: BlobStore, root: Path, task: list[tuple[str, FileEntry]],
           ) -> list[tuple[str, Fingerprint, FileEntry]]:
    """Write the files of one task; return what the stat cache should remember."""
    done = []
    if task[0][1].pack is not None:
        contents = read_packed_many(store, [entry for _, entry in task])
        for (rel, entry), data in zip(task, contents, strict=True):
            path = root / rel
            write_atomic(path, [data])
            done.append((str(path), fingerprint(path.stat()), entry))
    else:
        rel, entry = task[0]
        path = root / rel
        read_file(store, entry, path)
        done.append((str(path), fingerprint(path.stat()), entry))
    return done


def _remove(root: Path, extra: list[str]) -> None:
    """Delete the files ``extra`` and then the directories they leave empty."""
    parents: set[Path] = set()
    for rel in extra:
        path = root / rel
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise InvalidArgument(f"cannot remove {path} ({exc.strerror or exc}); check its "
                                  "permissions, or check out without remove_extra") from None
        parents.update(path.parents[i] for i in range(rel.count("/")))
    for directory in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: it holds files to keep
            directory.rmdir()


def _check_in_the_way(to_write: list[str], extra: list[str]) -> None:
    """Conflict if a file to write would replace a directory of other files, or needs a
    directory where another file is."""
    if not extra or not to_write:
        return
    extra_files = set(extra)
    extra_dirs = {rel.rsplit("/", i)[0] for rel in extra for i in range(1, rel.count("/") + 1)}
    for rel in to_write:
        parts = rel.split("/")
        blocking = next((p for p in ("/".join(parts[:i]) for i in range(1, len(parts)))
                         if p in extra_files), None)
        if rel in extra_dirs or blocking is not None:
            where = rel if blocking is None else blocking
            raise Conflict(f"cannot write '{rel}': '{where}' is in the way (a directory where "
                           "the tree has a file, or a file where it has a directory); move it "
                           "or check out with remove_extra=True")


def checkout_once(store: BlobStore, tree: str, cache: Path) -> Path:
    """The tree ``tree`` as the directory ``cache/<tree>``: checked out into a staging
    directory and renamed into place, so it is either whole or absent, and written once
    however many processes ask for it at the same time."""
    import shutil
    import uuid

    target = cache / tree
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".{tree}.{uuid.uuid4().hex[:8]}"
    try:
        checkout(store, tree, staging)
        try:
            os.rename(staging, target)
        except OSError:  # another process wrote it meanwhile
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
