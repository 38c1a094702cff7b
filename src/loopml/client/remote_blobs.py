"""The blob store of a ``loopml server``, as a :class:`~loopml.blobs.BlobBackend` over HTTP.

::

    store = BlobStore(HttpBlobBackend(session))        # session: an HttpSession
    copy_trees(local_store, store, [tree])             # sends only what the server lacks

- *look-ups* are batched: :meth:`HttpBlobBackend.exists_many` asks ``POST
  /api/v1/blobs/missing`` about up to :data:`MISSING_BATCH` digests per request, so finding
  what a push must send costs a request per level of a tree, not one per object;
- *small blobs* go up as one streamed ``PUT /api/v1/blobs/{digest}``; the server hashes
  the body and refuses it unless it matches the digest;
- *large blobs* (``multipart_threshold`` bytes and more) go up as a resumable multipart
  upload: parts of ``part_size`` bytes sent in parallel, each retried on a broken
  connection; the session is found again by the blob's digest, so an upload killed
  midway and started again sends only the parts the server lacks;
- *reads* stream (``GET``), ranged reads send ``Range`` (packs are read file by file).

The server never deletes or lists blobs for a client: :meth:`delete` and :meth:`iter_keys`
raise :class:`~loopml.errors.PermissionDenied`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from loopml.blobs.backend import BlobBackend, check_key, check_source
from loopml.blobs.digest import check_digest
from loopml.blobs.parallel import run_parallel
from loopml.client.http import CHUNK_SIZE, HttpSession
from loopml.errors import (
    BackendUnavailable,
    Conflict,
    LoopmlError,
    NotFound,
    PermissionDenied,
)

__all__ = ["DEFAULT_PART_SIZE", "MISSING_BATCH", "MULTIPART_THRESHOLD", "RANGE_PIECE",
           "HttpBlobBackend", "PartReader", "digest_of", "file_reader"]

T = TypeVar("T")

API = "/api/v1"
#: Blobs of this size and more are uploaded in parts.
MULTIPART_THRESHOLD = 64 << 20
#: The size of one part of a multipart upload.
DEFAULT_PART_SIZE = 16 << 20
#: Digests asked about per ``blobs/missing`` request.
MISSING_BATCH = 10_000
#: The largest range asked for in one request (the server answers such a range as asked).
RANGE_PIECE = 4 << 20

#: Reads ``length`` bytes at ``offset`` of what is uploaded, as an iterator of chunks.
PartReader = Callable[[int, int], Iterator[bytes]]


def digest_of(key: str) -> str:
    """The digest whose backend key is ``key`` (``ab/cdef…`` → ``abcdef…``)."""
    check_key(key)
    return check_digest(key.replace("/", "", 1))


class HttpBlobBackend(BlobBackend):
    """The server's blob store, reached through ``session``.

    ``workers`` parts of a multipart upload are sent at once; each request that breaks
    off is sent again up to ``retries`` times."""

    def __init__(self, session: HttpSession, *, multipart_threshold: int = MULTIPART_THRESHOLD,
                 part_size: int = DEFAULT_PART_SIZE, workers: int = 4,
                 retries: int = 3) -> None:
        self.session = session
        self.url = f"{session.base_url}{API}/blobs"
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.workers = workers
        self.retries = retries

    # -- look-ups ---------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.exists_many([key])[0]

    def exists_many(self, keys: Sequence[str]) -> list[bool]:
        digests = [digest_of(key) for key in keys]
        missing: set[str] = set()
        for start in range(0, len(digests), MISSING_BATCH):
            batch = digests[start:start + MISSING_BATCH]
            answer = self.session.request("POST", f"{API}/blobs/missing",
                                          json={"digests": batch}, idempotent=True)
            missing.update(answer["missing"])
        return [digest not in missing for digest in digests]

    # -- writes -----------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        view = memoryview(data)

        def read(offset: int, length: int) -> Iterator[bytes]:
            for start in range(offset, offset + length, CHUNK_SIZE):
                yield bytes(view[start:min(start + CHUNK_SIZE, offset + length)])

        self._put(digest_of(key), len(data), read)

    def put_file(self, key: str, path: Path) -> None:
        check_source(path)
        self._put(digest_of(key), path.stat().st_size, file_reader(path))

    def _put(self, digest: str, size: int, read: PartReader) -> None:
        if size >= self.multipart_threshold:
            self.put_parts(digest, size, read)
            return
        self._retrying(lambda: self.session.upload(
            "PUT", f"{API}/blobs/{digest}", read(0, size), size=size))

    def put_parts(self, digest: str, size: int, read: PartReader) -> int:
        """Upload blob ``digest`` of ``size`` bytes in parts (resuming a session the server
        has for it); the number of parts sent by this call."""
        session = self._retrying(lambda: self.session.request(
            "POST", f"{API}/uploads", idempotent=True,
            json={"digest": digest, "size": size, "part_size": self.part_size}))
        if session["complete"]:
            return 0
        upload = f"{API}/uploads/{session['id']}"
        part_size = int(session["part_size"])

        def send(number: int) -> None:
            offset = (number - 1) * part_size
            length = min(part_size, size - offset)
            self._retrying(lambda: self.session.upload(
                "PUT", f"{upload}/parts/{number}", read(offset, length), size=length))

        todo = [int(number) for number in session["missing"]]
        run_parallel(send, todo, workers=self.workers)
        try:
            self.session.request("POST", f"{upload}/complete")
        except (BackendUnavailable, NotFound):
            if not self.exists_many([f"{digest[:2]}/{digest[2:]}"])[0]:
                raise
        return len(todo)

    def _retrying(self, call: Callable[[], T]) -> T:
        """``call()``, again after a connection that broke off (with a growing pause)."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except BackendUnavailable:
                if attempt == self.retries:
                    raise
                time.sleep(min(2.0, 0.1 * 2 ** attempt))
        raise AssertionError("unreachable")

    # -- reads ------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        with self.session.stream("GET", f"{API}/blobs/{digest_of(key)}") as chunks:
            return b"".join(chunks)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Asked in ranges of at most :data:`RANGE_PIECE` bytes, which the server always
        answers as ranges (a larger one it may answer with the whole blob)."""
        path = f"{API}/blobs/{digest_of(key)}"
        pieces: list[bytes] = []
        end = offset + max(0, length)
        while offset < end:
            want = min(RANGE_PIECE, end - offset)
            headers = {"Range": f"bytes={offset}-{offset + want - 1}"}
            try:
                with self.session.stream("GET", path, headers=headers) as chunks:
                    piece = b"".join(chunks)
            except LoopmlError as exc:
                if getattr(exc, "http_status", None) == 416:  # at or past the end
                    break
                raise
            pieces.append(piece[:want])
            if len(piece) < want:
                break
            offset += want
        return b"".join(pieces)

    def get_file(self, key: str, dest: Path) -> None:
        digest = digest_of(key)
        self.session.download(f"{API}/blobs/{digest}", dest, digest=digest)

    # -- not offered ------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        raise PermissionDenied(f"blobs on the server {self.session.base_url} are not deleted "
                               "by clients; the server's administrator collects unused ones")

    def iter_keys(self) -> Iterator[str]:
        raise PermissionDenied(f"the server {self.session.base_url} does not list its blobs; "
                               "ask about the digests you need with exists_many")


def file_reader(path: str | os.PathLike[str]) -> PartReader:
    """A :data:`PartReader` over the file at ``path`` (which must not shrink meanwhile)."""
    local = Path(path)

    def read(offset: int, length: int) -> Iterator[bytes]:
        with local.open("rb") as stream:
            stream.seek(offset)
            left = length
            while left > 0:
                chunk = stream.read(min(CHUNK_SIZE, left))
                if not chunk:
                    raise Conflict(f"{local} became shorter while it was uploaded; upload "
                                   "it again once nothing writes to it")
                left -= len(chunk)
                yield chunk

    return read
