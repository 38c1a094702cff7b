"""A local cache in front of a server's blob store: :class:`CachedBackend`.

The remote client builds a dataset version in its local cache (so hashing, packing,
chunking and the stat cache work as they do on the embedded store) and reads versions
through it. Blobs are addressed by content, so a cached copy never goes stale:

- *writes* go to the local cache only (a push sends them to the server afterwards);
- *reads* are answered from the cache, else fetched from the server, checked against
  their digest and kept — a ranged read too fetches the whole blob (a tree's blobs are
  small: packs of ~8 MB, files under 4 MB, chunks), so reading a version twice downloads
  it once;
- ``exists`` answers for the *cache*: the cache may hold a tree without all the content
  it lists (a version built on content the server holds), so nothing may conclude from a
  cached tree that its files are cached too — every read falls back to the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from loopml.blobs.backend import BlobBackend
from loopml.blobs.hashing import hash_bytes
from loopml.client.remote_blobs import digest_of
from loopml.errors import NotFound

__all__ = ["CachedBackend"]


class CachedBackend(BlobBackend):
    """``local`` (a directory) in front of ``remote`` (the server's blobs)."""

    def __init__(self, local: BlobBackend, remote: BlobBackend) -> None:
        self.local, self.remote = local, remote
        self.url = remote.url

    def __repr__(self) -> str:
        return f"CachedBackend({self.local.url!r} in front of {self.remote.url!r})"

    def exists(self, key: str) -> bool:
        return self.local.exists(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.local.put_bytes(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self.local.put_file(key, path)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.local.get_bytes(key)
        except NotFound:
            data = self.remote.get_bytes(key)
        if hash_bytes(data) == digest_of(key):  # else the caller's check reports it
            self.local.put_bytes(key, data)
        return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if self.local.exists(key):
            return self.local.get_range(key, offset, length)
        data = self.get_bytes(key)  # the whole blob, checked and kept: the next read is local
        return data[offset:offset + length]

    def get_file(self, key: str, dest: Path) -> None:
        try:
            self.local.get_file(key, dest)
            return
        except NotFound:
            self.remote.get_file(key, dest)  # checked against the digest as it arrives
        self.local.put_file(key, dest)

    def delete(self, key: str) -> None:
        self.local.delete(key)

    def iter_keys(self) -> Iterator[str]:
        return self.local.iter_keys()
