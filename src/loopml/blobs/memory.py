"""A blob backend in a Python dict: ``memory://NAME``, for tests and throw-away work.

Thread-safe (one lock around the dict). Nothing survives the process. Writes replace a
whole ``bytes`` value under the lock, so they are atomic by construction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from loopml.blobs.backend import BlobBackend, check_key, check_source
from loopml.errors import InvalidArgument

__all__ = ["MemoryBackend"]


class MemoryBackend(BlobBackend):
    """Objects kept in memory; ``name`` only labels the store in its URL."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.url = f"memory://{name}"
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self._objects

    def put_bytes(self, key: str, data: bytes) -> None:
        check_key(key)
        value = bytes(data)
        with self._lock:
            self._objects[key] = value

    def put_file(self, key: str, path: Path) -> None:
        check_key(key)
        check_source(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidArgument(f"cannot read {path} ({exc}); check its permissions") from None
        self.put_bytes(key, data)

    def get_bytes(self, key: str) -> bytes:
        check_key(key)
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise self._not_found(key)
        return data

    def get_file(self, key: str, dest: Path) -> None:
        data = self.get_bytes(key)
        try:
            dest.write_bytes(data)
        except OSError as exc:
            raise self._bad_dest(dest, exc) from None

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def iter_keys(self) -> Iterator[str]:
        with self._lock:
            keys = list(self._objects)
        return iter(keys)
