"""BLAKE3 content hashing and canonical JSON: how a blob's address is computed.

A digest is the 64-character lowercase hex BLAKE3 hash of a blob's bytes. Manifests and
other structured blobs are serialised as canonical JSON (sorted keys, no whitespace, UTF-8)
so that equal values always hash to the same digest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from blake3 import blake3

from loopml.errors import InvalidArgument

__all__ = ["canonical_json", "hash_bytes", "hash_file"]

CHUNK_SIZE = 1 << 20
# Below this size a plain read beats memory mapping and BLAKE3's multithreading.
_MMAP_THRESHOLD = 1 << 20


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """The hex BLAKE3 digest of ``data``."""
    return blake3(data).hexdigest()


def hash_file(path: str | os.PathLike[str]) -> str:
    """The hex BLAKE3 digest of the file at ``path``.

    Large files are memory-mapped and hashed on several threads (BLAKE3 releases the GIL);
    where a file cannot be mapped, it is streamed in 1 MiB chunks. ``OSError`` (e.g.
    ``FileNotFoundError``) propagates: callers decide what a missing file means.
    """
    path = Path(path)
    size = path.stat().st_size
    if size < _MMAP_THRESHOLD:
        return blake3(path.read_bytes()).hexdigest()
    try:
        return blake3(max_threads=blake3.AUTO).update_mmap(path).hexdigest()
    except (OSError, ValueError):
        # Some files (pipes, special filesystems) cannot be mapped: stream them instead.
        hasher = blake3()
        with path.open("rb") as stream:
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
        return hasher.hexdigest()


def canonical_json(obj: Any) -> bytes:
    """``obj`` as canonical JSON: sorted keys, no whitespace, UTF-8.

    Raises :class:`~loopml.errors.InvalidArgument` for values JSON cannot hold.
    """
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        raise InvalidArgument(
            f"cannot store a value of type {type(obj).__name__} as canonical JSON ({exc}); "
            "use dicts with str keys, lists, str, int, float, bool and None") from None
