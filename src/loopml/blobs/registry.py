"""The scheme table: a blob store URL to the backend that serves it.

=================================  =========================================================
``file:///PATH`` or a plain path   :class:`~loopml.blobs.local.LocalBackend` (a directory)
``memory://NAME``                  :class:`~loopml.blobs.memory.MemoryBackend`; within one
                                   process the same NAME opens the same store (like fsspec's
                                   memory filesystem), so separate parts of a program that
                                   open ``memory://x`` share blobs
``s3://BUCKET/PREFIX``             :class:`~loopml.blobs.s3.S3Backend` (any S3-compatible store)
=================================  =========================================================

Backend modules are imported only when their scheme is opened.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from loopml.errors import InvalidArgument

if TYPE_CHECKING:
    from loopml.blobs.backend import BlobBackend
    from loopml.blobs.memory import MemoryBackend

__all__ = ["known_schemes", "open_backend"]

_memory_stores: dict[str, MemoryBackend] = {}
_memory_lock = threading.Lock()


def _open_file(location: str, s3_endpoint_url: str) -> BlobBackend:
    from loopml.blobs.local import LocalBackend

    path = unquote(location)
    if path.startswith("localhost/"):
        path = path[len("localhost"):]
    if re.match(r"/[A-Za-z]:[/\\]", path):  # file:///C:/dir on Windows
        path = path[1:]
    if not path:
        raise InvalidArgument("the blob URL 'file://' names no directory; "
                              "write it as file:///ABSOLUTE/PATH")
    return LocalBackend(Path(path))


def _open_memory(location: str, s3_endpoint_url: str) -> BlobBackend:
    from loopml.blobs.memory import MemoryBackend

    with _memory_lock:
        store = _memory_stores.get(location)
        if store is None:
            store = _memory_stores[location] = MemoryBackend(location)
        return store


def _open_s3(location: str, s3_endpoint_url: str) -> BlobBackend:
    from loopml.blobs.s3 import S3Backend

    bucket, _, prefix = location.partition("/")
    if not bucket:
        raise InvalidArgument(f"the blob URL 's3://{location}' names no bucket; "
                              "write it as s3://BUCKET/PREFIX")
    return S3Backend(bucket, prefix, endpoint_url=s3_endpoint_url)


_SCHEMES: dict[str, Callable[[str, str], BlobBackend]] = {
    "file": _open_file,
    "memory": _open_memory,
    "s3": _open_s3,
}


def known_schemes() -> list[str]:
    """The URL schemes :func:`open_backend` accepts, e.g. ``["file", "memory", "s3"]``."""
    return sorted(_SCHEMES)


def open_backend(url: str, *, s3_endpoint_url: str = "") -> BlobBackend:
    """The backend for a blob store ``url`` (see the table in this module's docstring).

    ``s3_endpoint_url`` selects an S3-compatible server for ``s3://`` URLs (empty: AWS).
    An unknown scheme raises :class:`~loopml.errors.InvalidArgument` listing the known ones.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidArgument(f"blob store URL {url!r} is empty; use file:///PATH, "
                              "s3://BUCKET/PREFIX or memory://NAME")
    scheme, separator, location = url.partition("://")
    if not separator:
        from loopml.blobs.local import LocalBackend

        return LocalBackend(Path(url))  # a plain directory path, taken literally
    opener = _SCHEMES.get(scheme.lower())
    if opener is None:
        known = ", ".join(f"{name}://" for name in known_schemes())
        raise InvalidArgument(f"unknown blob store scheme '{scheme}' in {url!r}; "
                              f"known schemes: {known} (or a plain directory path)")
    return opener(location, s3_endpoint_url)
