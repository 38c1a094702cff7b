"""Resumable multipart uploads of large blobs: start → parts → complete (or abort).

::

    uploads = Uploads(meta, blobs, ttl_s=86_400)
    session = uploads.start(digest, size, part_size=64 << 20, user="ana")
    for number in session.missing:               # any order, in parallel, retried at will
        uploads.put_part(session.id, number, part_file)
    ref = uploads.complete(session.id, scratch=Path("/tmp"))   # verified, then stored

Where the state lives, so that several server processes behave as one:

- the *sessions* are rows of the metadata database (:mod:`loopml.server.upload_tables`):
  one per session, one per part received;
- the *parts* are staged in the blob store itself, under ``uploads/<session id>/<number>``
  (keys that can never be a blob's, whose keys are ``ab/cdef…``), so a part received by
  one process is read by whichever process completes the upload — on a local directory or
  on S3 alike, with no shared scratch disk.

A session's id is derived from the blob's digest, size and part size: starting the same
upload again (after a crash, from another machine) finds the same session and the parts
already received, so only the missing ones are sent. Two uploaders of the same blob share
the session harmlessly: part ``n`` of a given blob cut at a given size is always the same
bytes. A part sent again replaces the one there (writes are atomic).

``complete`` reads the parts back in order while hashing them, checks the BLAKE3 digest
the session was started with, stores the blob (atomically) and deletes the parts; bytes
that do not match are refused and the session is dropped: nothing is kept. Every write to
a session pushes its expiry ``ttl_s`` ahead; sessions untouched that long are expired (their
parts deleted) by the next :meth:`Uploads.start`, or by :meth:`Uploads.expire`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa
from blake3 import blake3
from sqlalchemy import exc as sa_exc

from loopml.blobs import BlobRef, BlobStore
from loopml.blobs.digest import check_digest, key_for
from loopml.blobs.hashing import hash_bytes
from loopml.blobs.local import LocalBackend
from loopml.errors import Conflict, InvalidArgument, NotFound
from loopml.server.upload_tables import blob_upload_parts, blob_uploads
from loopml.store import MetadataStore
from loopml.store.dialect import insert_on_conflict

__all__ = ["MAX_PARTS", "MAX_PART_SIZE", "MIN_PART_SIZE", "TooLarge", "UploadSession",
           "Uploads", "part_key"]

#: The smallest and largest part size a session may use, and the most parts it may have.
MIN_PART_SIZE = 1 << 20
MAX_PART_SIZE = 1 << 30
MAX_PARTS = 10_000
#: Bytes read from the staged parts at a time when completing an upload.
_WINDOW = 8 << 20
#: Expired sessions removed by one call of :meth:`Uploads.start`.
_EXPIRE_BATCH = 20


class TooLarge(InvalidArgument):
    """A blob larger than the server accepts (413)."""

    http_status = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a blob of {size:,} bytes is larger than this server accepts "
                         f"({limit:,} bytes, its max_upload_bytes); store less, or raise "
                         "the limit where the server is started")


@dataclass(frozen=True)
class UploadSession:
    """An upload in progress: the blob it builds, how it is cut, the parts received."""

    id: str
    digest: str
    size: int
    part_size: int
    received: tuple[int, ...]
    expires_at: int
    #: True when the blob is stored already: there is nothing to send.
    complete: bool = False

    @property
    def parts(self) -> int:
        return max(1, -(-self.size // self.part_size))

    @property
    def missing(self) -> list[int]:
        """The numbers (from 1) of the parts not received yet."""
        if self.complete:
            return []
        have = set(self.received)
        return [number for number in range(1, self.parts + 1) if number not in have]

    def part_length(self, number: int) -> int:
        """How many bytes part ``number`` holds; InvalidArgument if there is no such part."""
        if not isinstance(number, int) or not 1 <= number <= self.parts:
            raise InvalidArgument(f"upload {self.id} has parts 1 to {self.parts}, not "
                                  f"{number!r}")
        return min(self.part_size, self.size - (number - 1) * self.part_size)

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "digest": self.digest, "size": self.size,
                "part_size": self.part_size, "parts": self.parts,
                "received": list(self.received), "missing": self.missing,
                "expires_at": self.expires_at, "complete": self.complete}


def part_key(upload_id: str, number: int) -> str:
    """The blob-store key a part is staged under."""
    return f"uploads/{upload_id}/{number}"


class _Ended(Exception):
    """The session's row went away while a part was being received."""


def _session_id(digest: str, size: int, part_size: int) -> str:
    return hash_bytes(f"{digest}:{size}:{part_size}".encode())[:32]


def _now() -> int:
    return int(time.time() * 1000)


class Uploads:
    """Upload sessions over one metadata store and one blob store (see the module doc)."""

    def __init__(self, meta: MetadataStore, blobs: BlobStore, *, ttl_s: float = 86_400,
                 max_bytes: int | None = None) -> None:
        if ttl_s <= 0:
            raise InvalidArgument(f"the upload expiry must be > 0 seconds, got {ttl_s!r}")
        self.meta, self.blobs = meta, blobs
        self.ttl_ms = int(ttl_s * 1000)
        self.max_bytes = max_bytes

    # -- sessions -----------------------------------------------------------------------

    def start(self, digest: str, size: int, *, part_size: int,
              user: str = "") -> UploadSession:
        """The session that uploads blob ``digest`` of ``size`` bytes in parts of
        ``part_size``: a new one, or the one already started (with its parts)."""
        check_digest(digest)
        if (self.max_bytes is not None and isinstance(size, int)
                and size > self.max_bytes):
            raise TooLarge(size, self.max_bytes)
        _check_sizes(size, part_size)
        self.expire(limit=_EXPIRE_BATCH)
        upload_id = _session_id(digest, size, part_size)
        if self.blobs.has(digest):
            self._drop(upload_id)
            return UploadSession(upload_id, digest, size, part_size, (), 0, complete=True)
        now = _now()
        try:
            with self.meta.write() as conn:
                row = conn.execute(sa.select(blob_uploads.c.expires_at)
                                   .where(blob_uploads.c.id == upload_id)).first()
                if row is None:
                    conn.execute(blob_uploads.insert().values(
                        id=upload_id, digest=digest, size=size, part_size=part_size,
                        created_by=user[:256], created_at=now,
                        expires_at=now + self.ttl_ms))
                else:
                    conn.execute(blob_uploads.update().where(blob_uploads.c.id == upload_id)
                                 .values(expires_at=now + self.ttl_ms))
        except sa_exc.IntegrityError:
            pass  # started by another process at the same moment: the same session
        return self.status(upload_id)

    def status(self, upload_id: str) -> UploadSession:
        """The session ``upload_id`` with the parts received; NotFound if there is none."""
        with self.meta.read() as conn:
            row = conn.execute(sa.select(blob_uploads)
                               .where(blob_uploads.c.id == _check_id(upload_id))).first()
            if row is None or row.expires_at < _now():
                raise NotFound(f"no upload session {upload_id!r} (never started, completed, "
                               "aborted or expired); start the upload again")
            received = conn.execute(sa.select(blob_upload_parts.c.number)
                                    .where(blob_upload_parts.c.upload_id == upload_id)
                                    .order_by(blob_upload_parts.c.number)).scalars().all()
        return UploadSession(row.id, row.digest, row.size, row.part_size, tuple(received),
                             row.expires_at)

    def put_part(self, upload_id: str, number: int, path: Path) -> UploadSession:
        """Stage the file ``path`` as part ``number`` (replacing one sent before)."""
        session = self.status(upload_id)
        expected = session.part_length(number)
        size = path.stat().st_size
        if size != expected:
            raise InvalidArgument(f"part {number} of upload {upload_id} must hold exactly "
                                  f"{expected:,} bytes, got {size:,}; send the whole part")
        self.blobs.backend.put_file(part_key(upload_id, number), path)
        now = _now()
        try:
            with self.meta.write() as conn:
                touched = conn.execute(blob_uploads.update()
                                       .where(blob_uploads.c.id == upload_id)
                                       .values(expires_at=now + self.ttl_ms)).rowcount
                if not touched:
                    raise _Ended(upload_id)
                stmt = insert_on_conflict(conn, blob_upload_parts)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=["upload_id", "number"],
                    set_={"size": stmt.excluded.size,
                          "received_at": stmt.excluded.received_at}),
                    {"upload_id": upload_id, "number": number, "size": size,
                     "received_at": now})
        except (_Ended, sa_exc.IntegrityError):  # completed, aborted or expired meanwhile
            self.blobs.backend.delete(part_key(upload_id, number))
            raise NotFound(f"upload session {upload_id!r} ended while part {number} was "
                           "being received; start the upload again") from None
        return session

    def complete(self, upload_id: str, *, scratch: Path | None = None) -> BlobRef:
        """Join the parts, check them against the session's digest, store the blob.

        Conflict (409) while parts are missing; InvalidArgument (400) when the parts do not
        hash to the digest, and then the session and its parts are dropped."""
        session = self.status(upload_id)
        if session.missing:
            shown = ", ".join(str(n) for n in session.missing[:10])
            more = f" and {len(session.missing) - 10} more" if len(session.missing) > 10 else ""
            raise Conflict(f"upload {upload_id} still lacks part(s) {shown}{more} of "
                           f"{session.parts}; send them, then complete it")
        ref = BlobRef(session.digest, session.size)
        if self.blobs.has(session.digest):
            self._drop(upload_id)
            return ref
        fd, name = tempfile.mkstemp(prefix="loopml-blob-", dir=scratch)
        joined = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                actual = self._join(session, out)
            if actual != session.digest:
                self._drop(upload_id)
                raise InvalidArgument(
                    f"the parts of upload {upload_id} hash to {actual}, not to {session.digest}"
                    " the upload was started with; nothing was kept: start it again")
            self.blobs.backend.put_file(key_for(session.digest), joined)
        finally:
            joined.unlink(missing_ok=True)
        self._drop(upload_id)
        return ref

    def _join(self, session: UploadSession, out: BinaryIO) -> str:
        hasher = blake3()
        backend = self.blobs.backend
        for number in range(1, session.parts + 1):
            key, length, offset = part_key(session.id, number), session.part_length(number), 0
            while offset < length:
                try:
                    piece = backend.get_range(key, offset, min(_WINDOW, length - offset))
                except NotFound:
                    if self.blobs.has(session.digest):  # completed by another process
                        return session.digest
                    raise Conflict(f"part {number} of upload {session.id} is gone (aborted "
                                   "or expired meanwhile); start the upload again") from None
                if not piece:
                    break
                hasher.update(piece)
                out.write(piece)
                offset += len(piece)
        return hasher.hexdigest()

    def abort(self, upload_id: str) -> None:
        """Drop the session and its parts (nothing happens if there is none)."""
        self._drop(_check_id(upload_id))

    def expire(self, *, now: int | None = None, limit: int = 1000) -> int:
        """Drop up to ``limit`` sessions expired at ``now`` (ms); how many were dropped."""
        with self.meta.read() as conn:
            ids = conn.execute(sa.select(blob_uploads.c.id)
                               .where(blob_uploads.c.expires_at < (now or _now()))
                               .limit(limit)).scalars().all()
        for upload_id in ids:
            self._drop(upload_id)
        return len(ids)

    def _drop(self, upload_id: str) -> None:
        """Delete a session's staged parts, then its rows."""
        with self.meta.read() as conn:
            row = conn.execute(sa.select(blob_uploads.c.size, blob_uploads.c.part_size)
                               .where(blob_uploads.c.id == upload_id)).first()
        if row is None:
            return
        parts = max(1, -(-row.size // row.part_size))
        backend = self.blobs.backend
        for number in range(1, parts + 1):
            backend.delete(part_key(upload_id, number))
        if isinstance(backend, LocalBackend):  # a directory holds the parts there
            with contextlib.suppress(OSError):
                (backend.root / "uploads" / upload_id).rmdir()
        with self.meta.write() as conn:
            conn.execute(blob_upload_parts.delete()
                         .where(blob_upload_parts.c.upload_id == upload_id))
            conn.execute(blob_uploads.delete().where(blob_uploads.c.id == upload_id))


def _check_sizes(size: object, part_size: object) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise InvalidArgument(f"an upload's size must be a whole number of bytes >= 1, got "
                              f"{size!r}")
    if (not isinstance(part_size, int) or isinstance(part_size, bool)
            or not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE):
        raise InvalidArgument(f"part_size must be {MIN_PART_SIZE:,} to {MAX_PART_SIZE:,} "
                              f"bytes, got {part_size!r}")
    if -(-size // part_size) > MAX_PARTS:
        raise InvalidArgument(f"{size:,} bytes in parts of {part_size:,} make more than "
                              f"{MAX_PARTS:,} parts; use parts of at least "
                              f"{-(-size // MAX_PARTS):,} bytes")


def _check_id(upload_id: object) -> str:
    if (not isinstance(upload_id, str) or len(upload_id) != 32
            or any(c not in "0123456789abcdef" for c in upload_id)):
        raise InvalidArgument(f"{upload_id!r} is not an upload id; use the id returned when "
                              "the upload was started")
    return upload_id
