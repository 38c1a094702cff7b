"""The storage interface under the blob store: a few verbs on string keys.

A backend stores opaque bytes under keys such as ``"ab/cdef0123…"`` and knows nothing of
hashing; :class:`~loopml.blobs.store.BlobStore` adds content addressing on top. Every
implementation obeys one contract, checked by ``tests/contract/test_blob_backends.py``:

- writes are atomic: a reader sees the old object, the whole new object, or nothing;
- overwriting a key with the same bytes is harmless (concurrent writers race safely);
- reading a missing key raises :class:`~loopml.errors.NotFound` naming the key;
- ``delete`` of a missing key does nothing (deletes are idempotent);
- driver errors (``OSError``, HTTP and S3 errors) never escape raw: they become
  :class:`~loopml.errors.BackendUnavailable` naming the store URL and the fix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

from loopml.errors import BackendUnavailable, InvalidArgument, NotFound

__all__ = ["BlobBackend", "check_key", "check_source"]


class BlobBackend(ABC):
    """Where blob bytes live. Subclasses set :attr:`url` and implement every method."""

    #: Where this backend stores objects, as a URL (``file:///…``, ``s3://…``, ``memory://…``).
    url: str

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""

    def exists_many(self, keys: Sequence[str]) -> list[bool] | None:
        """Whether an object is stored under each of ``keys``, answered in one call; None
        (the default) where the backend has no such call: the blob store then looks the
        keys up one by one on its threads. A backend behind a network round trip (a
        ``loopml server``) answers for thousands of keys in one request."""
        return None

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically, replacing any object there."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Store the content of the local file ``path`` under ``key`` atomically."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object under ``key``; :class:`~loopml.errors.NotFound` if there is none."""

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes of the object under ``key`` from byte ``offset`` (fewer at its
        end); :class:`~loopml.errors.NotFound` if there is none. Backends that can read a
        part without the whole (a file, a ranged GET) do so."""
        return self.get_bytes(key)[offset:offset + length]

    @abstractmethod
    def get_file(self, key: str, dest: Path) -> None:
        """Write the object under ``key`` to the local file ``dest`` (its directory exists).

        A missing key raises :class:`~loopml.errors.NotFound` without creating ``dest``.
        ``dest`` is written in place: callers that need an atomic result write to a
        temporary name and rename it, as :class:`~loopml.blobs.store.BlobStore` does.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object under ``key``; nothing happens if there is none."""

    @abstractmethod
    def iter_keys(self) -> Iterator[str]:
        """Every stored key, in no particular order."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # Shared error wording, so every backend says the same thing the same way.

    def _not_found(self, key: str) -> NotFound:
        return NotFound(f"no blob under key '{key}' in {self.url}; "
                        "it was never stored there or has been deleted")

    def _unavailable(self, action: str, exc: BaseException, fix: str) -> BackendUnavailable:
        reason = str(exc) or type(exc).__name__
        return BackendUnavailable(f"cannot {action} in blob store {self.url} ({reason}); {fix}")

    @staticmethod
    def _bad_dest(dest: Path, exc: OSError) -> InvalidArgument:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return InvalidArgument(f"cannot write {dest} ({reason}); "
                               f"check that {dest.parent} is a writable directory")


def check_key(key: object) -> str:
    """``key`` unchanged if it is a safe relative key; else InvalidArgument.

    A key is one or more ``/``-separated segments, none empty, none starting with ``.``
    (which also rules out ``..`` and the backends' own temporary names), no backslash.
    """
    if (not isinstance(key, str) or not key or "\\" in key or "\x00" in key
            or any(not part or part.startswith(".") for part in key.split("/"))):
        raise InvalidArgument(
            f"{key!r} is not a blob key; a key is '/'-separated segments such as "
            "'ab/cdef…', none empty and none starting with '.'")
    return key


def check_source(path: Path) -> None:
    """Raise unless ``path`` is a regular file that ``put_file`` can read.

    Called before a backend touches storage, so that a bad local path is reported as the
    caller's mistake (NotFound / InvalidArgument) and not as an unavailable store.
    """
    if not path.exists():
        raise NotFound(f"no file at {path} to store; check the path")
    if not path.is_file():
        raise InvalidArgument(f"{path} is not a regular file; only files can be stored as blobs")
