"""A blob backend over a local (or network-mounted) directory: ``file:///PATH``.

Keys map to paths under the root (``ab/cdef…`` → ``ROOT/ab/cdef…``), so the fan-out is
carried by the key. Every write goes to a uniquely named temporary file in the target
directory (``.tmp-<uuid>``) and is renamed over the final name with :func:`os.replace`,
which is atomic on POSIX and Windows: a reader never sees a partial object, and a writer
that fails removes its temporary file. A process killed mid-write may leave a ``.tmp-*``
file behind; such names are never keys (keys cannot start with ``.``) and
:meth:`LocalBackend.iter_keys` skips them.

Durability: by default files are not fsynced (a crash of the *machine* right after a write
could leave an empty or short object; the blob store detects that on read, because it
verifies every hash). Pass ``fsync=True`` to fsync each file and its directory before the
write returns, at the cost of a disk flush per blob.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from loopml.blobs.backend import BlobBackend, check_key, check_source

__all__ = ["LocalBackend"]

_TEMP_PREFIX = ".tmp-"
_COPY_BUFFER = 1 << 20


class LocalBackend(BlobBackend):
    """Objects stored as files under ``root`` (created on the first write)."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = self.root.as_uri()
        self.fsync = fsync

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    @property
    def _write_fix(self) -> str:
        return f"check that {self.root} is a writable directory on a disk with free space"

    @property
    def _read_fix(self) -> str:
        return f"check that {self.root} is a readable directory"

    def exists(self, key: str) -> bool:
        path = self._path(key)
        try:
            return path.is_file()
        except OSError as exc:
            raise self._unavailable(f"look up '{key}'", exc, self._read_fix) from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        def write(tmp: Path) -> None:
            with tmp.open("xb") as stream:
                stream.write(data)

        self._write_atomically(key, write)

    def put_file(self, key: str, path: Path) -> None:
        check_source(path)
        self._write_atomically(key, lambda tmp: shutil.copyfile(path, tmp))

    def _write_atomically(self, key: str, write: Callable[[Path], object]) -> None:
        final = self._path(key)
        tmp = final.parent / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                write(tmp)
                if self.fsync:
                    _fsync(tmp)
                os.replace(tmp, final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            if self.fsync:
                _fsync(final.parent)
        except OSError as exc:
            raise self._unavailable(f"write '{key}'", exc, self._write_fix) from exc

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._not_found(key) from None
        except OSError as exc:
            raise self._unavailable(f"read '{key}'", exc, self._read_fix) from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._not_found(key) from None
        except OSError as exc:
            raise self._unavailable(f"read '{key}'", exc, self._read_fix) from exc
        try:
            return os.pread(fd, length, offset)
        except OSError as exc:
            raise self._unavailable(f"read '{key}'", exc, self._read_fix) from exc
        finally:
            os.close(fd)

    def get_file(self, key: str, dest: Path) -> None:
        path = self._path(key)
        try:
            source = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._not_found(key) from None
        except OSError as exc:
            raise self._unavailable(f"read '{key}'", exc, self._read_fix) from exc
        with source:
            try:
                target = dest.open("wb")
            except OSError as exc:
                raise self._bad_dest(dest, exc) from None
            with target:
                try:
                    shutil.copyfileobj(source, target, _COPY_BUFFER)
                except OSError as exc:
                    raise self._unavailable(
                        f"copy '{key}' to {dest}", exc,
                        f"{self._read_fix} and that {dest.parent} has free space") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            pass  # a fan-out directory is not an object
        except OSError as exc:
            raise self._unavailable(f"delete '{key}'", exc, self._write_fix) from exc

    def iter_keys(self) -> Iterator[str]:
        def fail(exc: OSError) -> None:
            raise exc

        try:
            if not self.root.is_dir():
                return
            for directory, subdirs, files in os.walk(self.root, onerror=fail):
                subdirs[:] = [name for name in subdirs if not name.startswith(".")]
                relative = Path(directory).relative_to(self.root)
                for name in files:
                    if not name.startswith("."):
                        yield (relative / name).as_posix()
        except OSError as exc:
            raise self._unavailable("list keys", exc, self._read_fix) from exc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
