"""Recognising unchanged files without reading them: directory scans and the stat cache.

:func:`scan_files` lists the files under a directory with their :class:`Fingerprint`
(size, modification time, inode, change time). :class:`StatCache` is a small SQLite file,
local to one machine, that remembers for each absolute path the fingerprint it had when
its content was last hashed (or written by a checkout) and the resulting
:class:`~loopml.blobs.entry.FileEntry`; and for each directory a tree was built from or
checked out into, that tree and the fingerprint and entry of each of its files (its index,
read and compared by :mod:`loopml.blobs.index`), so that re-adding a directory costs one
scan plus the files that changed. A file whose fingerprint still matches is taken to hold
the same content, as git and DVC do; anything else (an edit, a ``touch``, a copy over it)
changes the fingerprint and the file is read again.

An entry also says where the content was stored (a pack, a chunk index). Callers check
that this object is present in the store they use before trusting it, so one cache can
serve several stores, and a stale row costs a re-read, never a wrong version.
"""

from __future__ import annotations

import mmap
import os
import shutil
import sqlite3
import threading
from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from contextlib import contextmanager, suppress
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import Any, NamedTuple

import orjson
from blake3 import blake3

from loopml.blobs.chunking import TEMP_SUFFIX, read_all, write_atomic
from loopml.blobs.entry import FileEntry
from loopml.blobs.hashing import hash_bytes
from loopml.errors import BackendUnavailable, InvalidArgument, NotFound

__all__ = [
    "COARSE_RACY_NS", "Fingerprint", "Scan", "Scanned", "StatCache", "content_digest",
    "fingerprint", "is_racy", "scan_files",
]

_SCHEMA_VERSION = 5
_QUERY_BATCH = 500
_FOLD = 256  # remembered files a directory keeps in single rows


class Fingerprint(NamedTuple):
    """What ``stat`` says about a file; equal fingerprints mean unchanged content."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int


# A file modified this close to the time it was read could change again within the same
# timestamp tick without its fingerprint changing ("racily clean", as git calls it).
_RACY_NS = 100_000_000
#: The racy window of whole-second timestamps (FAT, HFS+, some NFS); the widest one.
COARSE_RACY_NS = 2_000_000_000

#: A scan: relative POSIX path → (absolute path, fingerprint).
Scanned = Mapping[str, tuple[str, Fingerprint]]


class Scan(Mapping[str, tuple[str, Fingerprint]]):
    """A scan of a directory (see :func:`scan_files`): relative POSIX path → (absolute path,
    fingerprint), in path order.

    The scan keeps only :attr:`listing`; the mapping is made from it when first used, a
    file or all at once, so that comparing a scan with a directory's index (which needs
    the listing alone) costs nothing per file.
    """

    def __init__(self, base: str, listing: dict[str, list[Any]]) -> None:
        #: The directory the relative paths start from.
        self.base = base.rstrip("/")  # "/" itself as a root
        #: Each directory's files as one flat list, ``[name, size, mtime_ns, inode,
        #: ctime_ns, name, …]`` in name order, by the directory's relative path (``""``:
        #: the top); for :mod:`loopml.blobs.index`, which compares a directory at a time.
        self.listing = listing
        self._positions: dict[str, dict[str, int]] = {}
        self._all: dict[str, tuple[str, Fingerprint]] | None = None
        self._count = sum(len(listed) for listed in listing.values()) // 5

    def __getitem__(self, rel: str) -> tuple[str, Fingerprint]:
        directory, _, name = rel.rpartition("/")
        positions = self._positions.get(directory)
        if positions is None:
            listed = self.listing[directory]  # KeyError: no such file
            positions = self._positions[directory] = {
                key: i for i, key in enumerate(listed[::5])}
        k = positions[name] * 5
        return (f"{self.base}/{rel}",
                _new_tuple(Fingerprint, self.listing[directory][k + 1:k + 5]))

    def __contains__(self, rel: object) -> bool:
        if not isinstance(rel, str):
            return False
        try:
            self[rel]
        except KeyError:
            return False
        return True

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        return iter(self._every())

    def items(self) -> ItemsView[str, tuple[str, Fingerprint]]:
        return self._every().items()

    def values(self) -> ValuesView[tuple[str, Fingerprint]]:
        return self._every().values()

    def _every(self) -> dict[str, tuple[str, Fingerprint]]:
        """Every file, in path order (plain string order of the relative paths)."""
        if self._all is None:
            found = {}
            for directory, listed in self.listing.items():
                prefix = f"{directory}/" if directory else ""
                for k in range(0, len(listed), 5):
                    rel = prefix + listed[k]
                    found[rel] = (f"{self.base}/{rel}",
                                  _new_tuple(Fingerprint, listed[k + 1:k + 5]))
            self._all = {rel: found[rel] for rel in sorted(found)}
        return self._all


# Builds a Fingerprint from a tuple in C, without the NamedTuple's Python-level __new__
# (a scan makes 20,000 of them).
_new_tuple = tuple.__new__


def fingerprint(stat: os.stat_result) -> Fingerprint:
    """The fingerprint of a ``stat`` result."""
    return Fingerprint(stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)


def is_racy(print_: Fingerprint, read_ns: int) -> bool:
    """Whether a file with this fingerprint, read at ``read_ns`` (``time.time_ns()``), is
    too recent for its fingerprint to prove its content later."""
    window = COARSE_RACY_NS if print_.mtime_ns % 1_000_000_000 == 0 else _RACY_NS
    return print_.mtime_ns >= read_ns - window


def content_digest(path: str) -> tuple[str, Fingerprint | None]:
    """The content digest of the file at ``path``, and its fingerprint if it held still
    while read (``("", None)`` if it cannot be read)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return "", None
    try:
        before = os.fstat(fd)
        if before.st_size < (1 << 20):
            digest = hash_bytes(read_all(fd, before.st_size))
        else:
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
                digest = blake3(mapped, max_threads=blake3.AUTO).hexdigest()
        after = os.fstat(fd)
    except OSError:
        return "", None
    finally:
        os.close(fd)
    held = (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    return digest, fingerprint(after) if held else None


def scan_files(root: Path) -> Scan:
    """Every file under the directory ``root``, in path order: relative POSIX path →
    (absolute path, fingerprint).

    Symbolic links to files are followed; linked directories are not entered; other kinds
    of entries (sockets, broken links) are skipped, as are checkout's temporary files. If
    ``root`` is a file, the result holds just that file, under its own name.
    """
    root = Path(os.path.abspath(root))
    try:
        if root.is_file():
            return Scan(str(root.parent), {"": [root.name, *fingerprint(root.stat())]})
        if not root.is_dir():
            raise NotFound(f"no file or directory at {root}; check the path")
        listing: dict[str, list[Any]] = {}
        _scan(str(root).rstrip("/"), "", listing)
        return Scan(str(root), listing)
    except OSError as exc:
        raise InvalidArgument(f"cannot list {exc.filename or root} ({exc.strerror or exc}); "
                              "check its permissions") from None


def _scan(directory: str, prefix: str, listing: dict[str, list[Any]]) -> None:
    # Names and stat calls relative to the directory's descriptor: cheaper than DirEntry
    # objects and full paths (a scan of 20,000 files spends most of its time here).
    fd = os.open(directory or "/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        listed = []
        for name in os.listdir(fd):
            try:
                stat = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if S_ISDIR(stat.st_mode):
                    # Keying directories as "name/" lists every path in plain string order.
                    listed.append((name + "/", stat))
                    continue
                if S_ISLNK(stat.st_mode):  # a link to a file counts as that file
                    stat = os.stat(name, dir_fd=fd)
            except FileNotFoundError:
                continue  # removed while we looked, or a broken link
            if S_ISREG(stat.st_mode) and not (name[0] == "." and name.endswith(TEMP_SUFFIX)):
                listed.append((name, stat))
    finally:
        os.close(fd)
    listed.sort()  # names are unique: only the keys are compared
    files: list[Any] = []
    for key, stat in listed:
        if key[-1] == "/":
            _scan(f"{directory}/{key[:-1]}", prefix + key, listing)
        else:
            files += (key, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)
    if files:
        listing[prefix[:-1]] = files


class StatCache:
    """Fingerprints and entries of files, by absolute path, in the SQLite file ``path``.

    One row per directory holds its files as one JSON document, so that looking up the
    20,000 files of a dataset reads 20 rows rather than 20,000; files remembered a few at
    a time (a checkout rewriting 1%) get a small row each until there are enough to fold.
    The file and its directory are created on first use. Safe to share between threads;
    several processes may use one file (SQLite WAL). It is only a cache: deleting the file
    loses nothing but time.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"StatCache({str(self.path)!r})"

    def lookup(self, files: Mapping[str, Fingerprint]) -> dict[str, FileEntry]:
        """The entries of those ``files`` (absolute path → current fingerprint) whose
        fingerprint is the one remembered: the files known to be unchanged."""
        by_directory = _by_directory(files)
        found: dict[str, FileEntry] = {}
        with self._connection("read") as db:
            documents = _documents(db, list(by_directory))
        for directory, remembered in documents.items():
            for name, path, print_ in by_directory[directory]:
                row = remembered.get(name)
                if (row is not None and row[0] == print_[0] and row[1] == print_[1]
                        and row[2] == print_[2] and row[3] == print_[3]):
                    found[path] = FileEntry(row[4], row[0], row[5], row[6], row[7])
        return found

    def remember(self, items: Iterable[tuple[str, Fingerprint, FileEntry]]) -> None:
        """Record each ``(absolute path, fingerprint, entry)``, replacing what was there.

        A few files of a directory go in one small row each; past :data:`_FOLD` of them,
        they are folded into the directory's document.
        """
        updates: dict[str, dict[str, list[Any]]] = {}
        for path, print_, entry in items:
            directory, _, name = path.rpartition("/")
            updates.setdefault(directory, {})[name] = [*print_, entry.digest, entry.chunks,
                                                       entry.pack, entry.offset]
        if not updates:
            return
        with self._connection("write") as db, db:
            db.execute("BEGIN IMMEDIATE")  # read-modify-write, one writer at a time
            counts = dict(_query(db, "SELECT dir, count(*) FROM recent WHERE dir IN ({}) "
                                     "GROUP BY dir", list(updates)))
            fold = [d for d, changed in updates.items() if counts.get(d, 0) + len(changed) > _FOLD]
            documents = _documents(db, fold)
            for directory in fold:
                merged = documents.get(directory, {})
                merged.update(updates.pop(directory))
                db.execute("INSERT OR REPLACE INTO dirs VALUES (?, ?)",
                           (directory, orjson.dumps(merged)))
                db.execute("DELETE FROM recent WHERE dir = ?", (directory,))
            db.executemany("INSERT OR REPLACE INTO recent VALUES (?, ?, ?)",
                           [(directory, name, orjson.dumps(row))
                            for directory, changed in updates.items()
                            for name, row in changed.items()])

    def index_of(self, root: str) -> Any:
        """The document recorded by :meth:`remember_index` for directory ``root`` (an
        absolute path), or None."""
        try:
            return orjson.loads(self._index_path(root).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None

    def remember_index(self, root: str, document: Any) -> None:
        """Record the index of directory ``root`` (see :mod:`loopml.blobs.index`), a value
        JSON can hold.

        Indexes are files beside the SQLite file (writing a few MB there costs several
        times more), each replaced whole by a rename; a failure to write one is ignored.
        """
        with suppress(InvalidArgument):  # write_atomic's word for an OSError
            write_atomic(self._index_path(root), [orjson.dumps(document)])

    def _index_path(self, root: str) -> Path:
        return self.path.parent / f"{self.path.name}-index" / hash_bytes(root.encode())[:32]

    def clear(self) -> None:
        """Forget everything."""
        with self._connection("write") as db, db:
            db.execute("DELETE FROM dirs")
            db.execute("DELETE FROM recent")
        shutil.rmtree(self._index_path("/").parent, ignore_errors=True)

    def close(self) -> None:
        """Close the database connection (it reopens on the next call)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def _connection(self, action: str) -> Iterator[sqlite3.Connection]:
        """The open connection, under the lock; SQLite errors become BackendUnavailable."""
        with self._lock:
            try:
                yield self._connect()
            except (sqlite3.Error, OSError, orjson.JSONDecodeError) as exc:
                raise BackendUnavailable(
                    f"cannot {action} the stat cache {self.path} ({exc}); it is only a cache: "
                    "delete the file (and its -wal and -shm files) and try again") from exc

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=30,
                                 isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if db.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
                db.execute("DROP TABLE IF EXISTS dirs")
                db.execute("DROP TABLE IF EXISTS trees")  # indexes are files since version 5
                db.execute("DROP TABLE IF EXISTS recent")
                db.execute("CREATE TABLE dirs (path TEXT PRIMARY KEY, files BLOB NOT NULL)")
                db.execute("CREATE TABLE recent (dir TEXT, name TEXT, row BLOB NOT NULL, "
                           "PRIMARY KEY (dir, name)) WITHOUT ROWID")
                db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            self._db = db
        return self._db


def _by_directory(files: Mapping[str, Fingerprint],
                  ) -> dict[str, list[tuple[str, str, Fingerprint]]]:
    """``files`` grouped by directory: (name, path, fingerprint) in each."""
    grouped: dict[str, list[tuple[str, str, Fingerprint]]] = {}
    last, bucket = None, []
    for path, print_ in files.items():
        directory, _, name = path.rpartition("/")
        if directory != last:  # paths of a directory mostly come together
            last, bucket = directory, grouped.setdefault(directory, [])
        bucket.append((name, path, print_))
    return grouped


def _query(db: sqlite3.Connection, sql: str, keys: list[str]) -> list[Any]:
    """Run ``sql`` with its ``IN ({})`` filled with ``keys``, in batches."""
    rows: list[Any] = []
    for start in range(0, len(keys), _QUERY_BATCH):
        batch = keys[start:start + _QUERY_BATCH]
        rows += db.execute(sql.format(",".join("?" * len(batch))), batch).fetchall()
    return rows


def _documents(db: sqlite3.Connection, directories: list[str]) -> dict[str, dict[str, Any]]:
    """The remembered files of each of ``directories``: name → row, recent rows included."""
    documents = {directory: orjson.loads(document) for directory, document in
                 _query(db, "SELECT path, files FROM dirs WHERE path IN ({})", directories)}
    for directory, name, row in _query(
            db, "SELECT dir, name, row FROM recent WHERE dir IN ({})", directories):
        documents.setdefault(directory, {})[name] = orjson.loads(row)
    return documents
