"""Recognising unchanged files without reading them: directory scans and the stat cache.

:func:`scan_files` lists the files under a directory with their :class:`Fingerprint`
(size, modification time, inode, change time). :class:`StatCache` is a small SQLite file,
local to one machine, that remembers for each absolute path the fingerprint it had when
its content was last hashed (or written by a checkout) and the resulting
:class:`~loopml.blobs.entry.FileEntry`; and for each directory added, the digest of its
whole scan and the tree it gave, so re-adding an unchanged directory costs one scan.
A file whose fingerprint still matches is taken to hold the same content, as git and DVC
do; anything else (an edit, a ``touch``, a copy over it) changes the fingerprint and the
file is read again.

An entry also says where the content was stored (a pack, a chunk index). Callers check
that this object is present in the store they use before trusting it, so one cache can
serve several stores, and a stale row costs a re-read, never a wrong version.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from stat import S_ISREG
from typing import Any, NamedTuple

import orjson
from blake3 import blake3

from loopml.blobs.chunking import TEMP_SUFFIX, read_all
from loopml.blobs.entry import FileEntry
from loopml.blobs.hashing import hash_bytes
from loopml.errors import BackendUnavailable, InvalidArgument, NotFound

__all__ = [
    "Fingerprint", "Scanned", "StatCache", "content_digest", "fingerprint", "is_racy",
    "scan_digest", "scan_files",
]

_SCHEMA_VERSION = 4
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
_COARSE_RACY_NS = 2_000_000_000  # whole-second timestamps (FAT, HFS+, some NFS)

#: A scan: relative POSIX path → (absolute path, fingerprint).
Scanned = Mapping[str, tuple[str, Fingerprint]]


def fingerprint(stat: os.stat_result) -> Fingerprint:
    """The fingerprint of a ``stat`` result."""
    return Fingerprint(stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)


def is_racy(print_: Fingerprint, read_ns: int) -> bool:
    """Whether a file with this fingerprint, read at ``read_ns`` (``time.time_ns()``), is
    too recent for its fingerprint to prove its content later."""
    window = _COARSE_RACY_NS if print_.mtime_ns % 1_000_000_000 == 0 else _RACY_NS
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


def scan_files(root: Path) -> dict[str, tuple[str, Fingerprint]]:
    """Every file under the directory ``root``, in path order: relative POSIX path →
    (absolute path, fingerprint).

    Symbolic links to files are followed; linked directories are not entered; other kinds
    of entries (sockets, broken links) are skipped, as are checkout's temporary files. If
    ``root`` is a file, the result holds just that file, under its own name.
    """
    root = Path(os.path.abspath(root))
    try:
        if root.is_file():
            return {root.name: (str(root), fingerprint(root.stat()))}
        if not root.is_dir():
            raise NotFound(f"no file or directory at {root}; check the path")
        found: dict[str, tuple[str, Fingerprint]] = {}
        _scan(str(root), "", found)
        return found
    except OSError as exc:
        raise InvalidArgument(f"cannot list {exc.filename or root} ({exc.strerror or exc}); "
                              "check its permissions") from None


def _scan(directory: str, prefix: str, found: dict[str, tuple[str, Fingerprint]]) -> None:
    with os.scandir(directory) as entries:
        # Sorting directories as "name/" lists every path in plain string order.
        listed = sorted((entry.name + "/" if entry.is_dir(follow_symlinks=False)
                         else entry.name, entry) for entry in entries)
    for key, entry in listed:
        if key.endswith("/"):
            _scan(entry.path, prefix + key, found)
            continue
        if key.endswith(TEMP_SUFFIX) and key.startswith("."):
            continue
        try:
            stat = entry.stat()
        except FileNotFoundError:
            continue  # removed while we looked, or a broken link
        if S_ISREG(stat.st_mode):
            found[prefix + key] = (entry.path, Fingerprint(
                stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns))


def scan_digest(scanned: Scanned) -> str:
    """A digest of a scan: equal digests mean the same paths with the same fingerprints.

    ``scanned`` must be in path order, as :func:`scan_files` returns it.
    """
    return hash_bytes(orjson.dumps([(path, *print_) for path, (_, print_) in scanned.items()]))


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

    def tree_for(self, root: str, scan: str) -> str | None:
        """The tree last added from (or checked out to) directory ``root`` when its scan
        digest was ``scan``; files that were too recent to trust then are hashed now."""
        with self._connection("read") as db:
            row = db.execute("SELECT tree, unsure FROM trees WHERE root = ? AND scan = ?",
                             (root, scan)).fetchone()
        if row is None:
            return None
        unsure: dict[str, str] = orjson.loads(row[1])
        if any(content_digest(path)[0] != digest for path, digest in unsure.items()):
            return None
        return str(row[0])

    def remember_tree(self, root: str, scan: str, tree: str, *,
                      unsure: Mapping[str, str] | None = None) -> None:
        """Record that directory ``root``, scanned as ``scan``, holds tree ``tree``.

        ``unsure`` maps the absolute paths of files modified too recently to be recognised
        by their fingerprint (see :func:`is_racy`) to their content digests.
        """
        with self._connection("write") as db, db:
            db.execute("INSERT OR REPLACE INTO trees VALUES (?, ?, ?, ?)",
                       (root, scan, tree, orjson.dumps(dict(unsure or {}))))

    def clear(self) -> None:
        """Forget everything."""
        with self._connection("write") as db, db:
            db.execute("DELETE FROM dirs")
            db.execute("DELETE FROM recent")
            db.execute("DELETE FROM trees")

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
                db.execute("DROP TABLE IF EXISTS trees")
                db.execute("DROP TABLE IF EXISTS recent")
                db.execute("CREATE TABLE dirs (path TEXT PRIMARY KEY, files BLOB NOT NULL)")
                db.execute("CREATE TABLE recent (dir TEXT, name TEXT, row BLOB NOT NULL, "
                           "PRIMARY KEY (dir, name)) WITHOUT ROWID")
                db.execute("CREATE TABLE trees (root TEXT PRIMARY KEY, scan TEXT NOT NULL, "
                           "tree TEXT NOT NULL, unsure BLOB NOT NULL)")
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
