"""Content-addressed blobs: the BLAKE3 hash of the bytes is their address.

:class:`BlobStore` is written once over any :class:`~loopml.blobs.backend.BlobBackend`
and adds what every backend shares: hashing, deduplication (a blob already stored is not
sent again), verification on every read (:class:`~loopml.errors.CorruptData` if the bytes
no longer match their address), atomic downloads, parallel transfers and trees — a
directory stored as one canonical JSON manifest blob::

    {"files": {"relative/posix/path": {"digest": "<64 hex>", "size": 123}, ...}}
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from loopml.blobs.backend import BlobBackend, check_source
from loopml.blobs.digest import BlobRef, check_digest, key_for
from loopml.blobs.hashing import canonical_json, hash_bytes, hash_file
from loopml.blobs.parallel import run_parallel
from loopml.errors import Conflict, CorruptData, InvalidArgument, NotFound

__all__ = ["BlobStore"]

StrPath = str | os.PathLike[str]


class BlobStore:
    """Blobs addressed by content over ``backend``.

    ``workers`` threads run the many-file operations (``put_files``, ``get_files``,
    ``put_tree``, ``get_tree``); ``progress=True`` shows a bar for them when stderr is a
    terminal.
    """

    def __init__(self, backend: BlobBackend, *, workers: int = 8, progress: bool = False) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise InvalidArgument(f"workers must be a whole number of threads >= 1, "
                                  f"got {workers!r}")
        self.backend = backend
        self.workers = workers
        self.progress = progress

    @property
    def url(self) -> str:
        """The URL of the backend, e.g. ``file:///home/me/.loopml/blobs``."""
        return self.backend.url

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r}, workers={self.workers})"

    # -- single blobs -------------------------------------------------------------------

    def has(self, digest: str) -> bool:
        """Whether the blob ``digest`` is stored (its content is not checked)."""
        return self.backend.exists(key_for(digest))

    def has_many(self, digests: Sequence[str]) -> list[bool]:
        """Whether each of ``digests`` is stored: in one call where the backend answers for
        many keys at once (:meth:`BlobBackend.exists_many`), else a look-up each on the
        store's threads."""
        keys = [key_for(digest) for digest in digests]
        found = self.backend.exists_many(keys)
        if found is None:
            found = run_parallel(self.backend.exists, keys, workers=self.workers)
        return found

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` unless it is stored already; return its digest."""
        return self.add_bytes(data)[0]

    def add_bytes(self, data: bytes | bytearray | memoryview) -> tuple[str, bool]:
        """Like :meth:`put_bytes`, also saying whether the bytes were new (and so written)."""
        digest = hash_bytes(data)
        key = key_for(digest)
        if self.backend.exists(key):
            return digest, False
        self.backend.put_bytes(key, bytes(data))
        return digest, True

    def put_file(self, path: StrPath) -> BlobRef:
        """Store the file at ``path`` unless its content is stored already.

        Raises :class:`~loopml.errors.Conflict` (and stores nothing) if the file changes
        while it is being stored.
        """
        path = Path(path)
        check_source(path)
        before = _fingerprint(path)
        try:
            digest = hash_file(path)
        except OSError as exc:
            raise InvalidArgument(f"cannot read {path} ({exc.strerror or exc}); "
                                  "check that it is a readable file") from None
        key = key_for(digest)
        uploaded = not self.backend.exists(key)
        if uploaded:
            self.backend.put_file(key, path)
        if _fingerprint(path) != before:
            if uploaded:
                self.backend.delete(key)
            raise Conflict(f"{path} changed while it was being stored; "
                           "store it again once nothing is writing to it")
        return BlobRef(digest, before.size)

    def get_bytes(self, digest: str) -> bytes:
        """The content of blob ``digest``, verified against its hash."""
        data = self.backend.get_bytes(key_for(digest))
        actual = hash_bytes(data)
        if actual != digest:
            raise self._corrupt(digest, actual)
        return data

    def get_file(self, digest: str, dest: StrPath) -> None:
        """Write blob ``digest`` to ``dest``, creating its directory, replacing any file.

        The blob is downloaded to a temporary file beside ``dest``, verified, then renamed:
        ``dest`` is never left partial, and a corrupt blob never reaches it.
        """
        key = key_for(digest)
        dest = Path(dest)
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:12]}.loopml-tmp"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.backend.get_file(key, tmp)
            actual = hash_file(tmp)
            if actual != digest:
                raise self._corrupt(digest, actual)
            os.replace(tmp, dest)
        except OSError as exc:
            raise InvalidArgument(f"cannot write {dest} ({exc.strerror or exc}); check that "
                                  f"{dest.parent} is a writable directory") from None
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, digest: str) -> None:
        """Remove blob ``digest``; nothing happens if it is not stored."""
        self.backend.delete(key_for(digest))

    def put_json(self, obj: Any) -> str:
        """Store ``obj`` as canonical JSON (equal values give equal digests); return the digest."""
        return self.put_bytes(canonical_json(obj))

    def get_json(self, digest: str) -> Any:
        """The value stored by :meth:`put_json` as blob ``digest``."""
        data = self.get_bytes(digest)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise InvalidArgument(f"blob {digest} does not hold JSON; "
                                  "pass a digest returned by put_json") from None

    def _corrupt(self, digest: str, actual: str) -> CorruptData:
        return CorruptData(
            f"blob {digest} is corrupt: its content hashes to {actual}; the copy under "
            f"'{key_for(digest)}' in {self.url} was altered or truncated. Remove it with "
            f"BlobStore.delete('{digest}') and store the original content again")

    # -- many blobs ---------------------------------------------------------------------

    def put_files(self, paths: Iterable[StrPath]) -> list[BlobRef]:
        """Store many files in parallel; the references keep the order of ``paths``."""
        return run_parallel(self.put_file, [Path(path) for path in paths],
                            workers=self.workers, progress=self.progress,
                            description="storing blobs")

    def get_files(self, items: Iterable[tuple[str, StrPath]]) -> list[Path]:
        """Write many blobs, given as ``(digest, dest)`` pairs, in parallel; return the dests.

        Every digest is checked before anything is transferred.
        """
        pairs = [(check_digest(digest), Path(dest)) for digest, dest in items]

        def fetch(pair: tuple[str, Path]) -> Path:
            self.get_file(*pair)
            return pair[1]

        return run_parallel(fetch, pairs, workers=self.workers, progress=self.progress,
                            description="fetching blobs")

    # -- trees --------------------------------------------------------------------------

    def put_tree(self, directory: StrPath) -> str:
        """Store every file under ``directory`` and a manifest of them; return its digest.

        Files are found recursively (symlinks to files are followed, symlinked directories
        are not descended into); empty directories are not recorded. The manifest is
        canonical: the same files always give the same digest.
        """
        root = Path(directory)
        if not root.is_dir():
            raise NotFound(f"no directory at {root} to store; check the path")
        relative = _list_files(root)
        refs = self.put_files([root / name for name in relative])
        files = {name: {"digest": ref.digest, "size": ref.size}
                 for name, ref in zip(relative, refs, strict=True)}
        return self.put_json({"files": files})

    def read_manifest(self, digest: str) -> dict[str, BlobRef]:
        """The files of the tree whose manifest is blob ``digest``: relative path → blob."""
        document = self.get_json(digest)
        files = document.get("files") if isinstance(document, dict) else None
        if not isinstance(files, dict):
            raise InvalidArgument(f"blob {digest} is not a tree manifest (it has no 'files' "
                                  "mapping); pass a digest returned by put_tree")
        manifest: dict[str, BlobRef] = {}
        for name, entry in files.items():
            try:
                _check_relative(name)
                manifest[name] = BlobRef(check_digest(entry["digest"]), int(entry["size"]))
            except (TypeError, KeyError, ValueError):
                raise InvalidArgument(f"blob {digest} is not a valid tree manifest: its entry "
                                      f"{name!r} is malformed; pass a digest returned by "
                                      "put_tree") from None
        return manifest

    def get_tree(self, manifest_digest: str, dest: StrPath) -> list[Path]:
        """Write the tree stored as ``manifest_digest`` under ``dest``; return the file paths."""
        manifest = self.read_manifest(manifest_digest)
        root = Path(dest)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidArgument(f"cannot create {root} ({exc.strerror or exc}); "
                                  "choose a writable destination") from None
        return self.get_files([(ref.digest, root / name) for name, ref in manifest.items()])


class _Fingerprint(NamedTuple):
    size: int
    mtime_ns: int
    inode: int


def _fingerprint(path: Path) -> _Fingerprint:
    stat = path.stat()
    return _Fingerprint(stat.st_size, stat.st_mtime_ns, stat.st_ino)


def _list_files(root: Path) -> list[str]:
    """Relative POSIX paths of the files under ``root``, sorted."""

    def fail(exc: OSError) -> None:
        raise InvalidArgument(f"cannot list {exc.filename} ({exc.strerror or exc}); "
                              "check its permissions")

    names = []
    for directory, _subdirs, files in os.walk(root, onerror=fail):
        base = Path(directory)
        names += [(base / name).relative_to(root).as_posix()
                  for name in files if (base / name).is_file()]
    return sorted(names)


def _check_relative(name: object) -> None:
    """Raise ValueError unless ``name`` is a relative path that stays inside its root."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\x00" in name:
        raise ValueError(name)
    if any(part in ("", ".", "..") for part in name.split("/")) or Path(name).is_absolute():
        raise ValueError(name)
