"""``/api/v1`` blob endpoints: content-addressed bytes in and out, streamed.

======  ========================================  ============================================
POST    /api/v1/blobs/missing                     ``{digests: [...]}`` → ``{missing: [...]}``:
                                                  which of them the server lacks (viewer)
HEAD    /api/v1/blobs/{digest}                    200 if stored (Content-Length), else 404
GET     /api/v1/blobs/{digest}                    the bytes, streamed; ``Range: bytes=a-b``
                                                  → 206 with that range
PUT     /api/v1/blobs/{digest}                    store the body (streamed): 201, or 200 if
                                                  the blob was there; 400 if the body does
                                                  not hash to ``digest``; 413 over the limit
POST    /api/v1/uploads                           start (or resume) a multipart upload
                                                  ``{digest, size, part_size}``
GET     /api/v1/uploads/{id}                      the session: parts received and missing
PUT     /api/v1/uploads/{id}/parts/{number}       one part (exactly its size; sent again, it
                                                  replaces the one there)
POST    /api/v1/uploads/{id}/complete             join, verify, store: ``{digest, size}``
DELETE  /api/v1/uploads/{id}                      abort: drop the session and its parts
======  ========================================  ============================================

A body is never held in memory: it is written to a temporary file while it is hashed
(BLAKE3), then stored in one atomic write; a body that does not hash to the digest it was
sent for, or that passes the server's ``max_upload_bytes``, leaves nothing behind. Sessions
of multipart uploads live in the database and their parts in the blob store
(:mod:`loopml.server.uploads`), so any server process may take any request.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from blake3 import blake3
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from loopml.blobs.digest import check_digest, key_for
from loopml.blobs.local import LocalBackend
from loopml.errors import CorruptData, InvalidArgument, NotFound
from loopml.server.api.common import (
    API,
    actor,
    body_object,
    call,
    client,
    get_int,
    get_str,
    json_response,
    upload_limit,
)
from loopml.server.roles import requires
from loopml.server.uploads import TooLarge, Uploads

if TYPE_CHECKING:
    from loopml.blobs import BlobStore

__all__ = ["MAX_MISSING_DIGESTS",
           "receive_body", "routes"]

#: The largest blob one upload may carry unless the server's options say otherwise.
#: Seconds an upload session lives without receiving anything.
#: The most digests one ``blobs/missing`` request may ask about.
MAX_MISSING_DIGESTS = 100_000
#: Bytes buffered before a write to the temporary file, and read per piece of a download
#: (a range of at most ``_PIECE`` bytes is always answered as a range: clients rely on it).
_BUFFER = 1 << 20
_PIECE = 4 << 20
_DIGEST_HEADER = "X-Loopml-Digest"




def _uploads(request: Request) -> Uploads:
    server = client(request)
    ttl = float(request.app.state.options.upload_ttl_s)
    return Uploads(server.meta, server.blobs, ttl_s=ttl, max_bytes=upload_limit(request))


def _blobs(request: Request) -> BlobStore:
    return client(request).blobs


async def receive_body(request: Request, dest: Path, *, limit: int,
                       exact: int | None = None) -> tuple[int, str]:
    """Write the request body to ``dest`` while hashing it; its size and BLAKE3 digest.

    More than ``limit`` bytes (declared or received) is a 413; with ``exact`` (a part of a
    known size), any other size is a 400. ``dest`` may be left partial on an error: the
    caller removes it."""
    if exact is not None:
        limit = exact
    _check_declared(request, limit, exact)
    hasher, size, buffer = blake3(), 0, bytearray()

    def flush(out: BinaryIO, data: bytes) -> None:
        hasher.update(data)
        out.write(data)

    with dest.open("wb") as out:
        async for chunk in _body(request):
            size += len(chunk)
            if size > limit:
                raise TooLarge(size, limit) if exact is None else _wrong_size(exact, size)
            buffer += chunk
            if len(buffer) >= _BUFFER:
                await run_in_threadpool(flush, out, bytes(buffer))
                buffer.clear()
        if buffer:
            await run_in_threadpool(flush, out, bytes(buffer))
    if exact is not None and size != exact:
        raise _wrong_size(exact, size)
    return size, hasher.hexdigest()


async def _drain(request: Request, *, limit: int) -> int:
    """Read and drop the body (its blob is stored already); its size."""
    _check_declared(request, limit, None)
    size = 0
    async for chunk in _body(request):
        size += len(chunk)
        if size > limit:
            raise TooLarge(size, limit)
    return size


def _check_declared(request: Request, limit: int, exact: int | None) -> None:
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return
    if exact is not None and int(declared) != exact:
        raise _wrong_size(exact, int(declared))
    if int(declared) > limit:
        raise TooLarge(int(declared), limit)


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise InvalidArgument("the upload broke off before its end; send it again") from None


def _wrong_size(expected: int, got: int) -> InvalidArgument:
    return InvalidArgument(f"this upload must hold exactly {expected:,} bytes, got {got:,}; "
                           "send the whole part")


@contextlib.contextmanager
def _scratch_file() -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="loopml-blob-")
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


# -- single blobs -----------------------------------------------------------------------------
@requires("viewer")
async def missing_blobs(request: Request) -> Response:
    """Which of ``digests`` the server does not hold (a read, so viewers may ask)."""
    body = await body_object(request)
    digests = body.get("digests")
    if not isinstance(digests, list):
        raise InvalidArgument("field 'digests' must be a list of blob digests")
    if len(digests) > MAX_MISSING_DIGESTS:
        raise InvalidArgument(f"at most {MAX_MISSING_DIGESTS:,} digests per request, got "
                              f"{len(digests):,}; ask in batches")
    wanted = list(dict.fromkeys(check_digest(d) for d in digests))
    found = await call(_blobs(request).has_many, wanted)
    return json_response({"missing": [d for d, present in zip(wanted, found, strict=True)
                              if not present]})


async def put_blob(request: Request) -> Response:
    """Store the body as blob ``digest``, verified; nothing is kept if it does not match."""
    digest = check_digest(request.path_params["digest"])
    blobs, limit = _blobs(request), upload_limit(request)
    if await call(blobs.has, digest):
        size = await _drain(request, limit=limit)
        return json_response({"digest": digest, "size": size, "created": False})
    with _scratch_file() as tmp:
        size, actual = await receive_body(request, tmp, limit=limit)
        if actual != digest:
            raise InvalidArgument(f"the body hashes to {actual}, not to the digest {digest} "
                                  "it was sent for; nothing was stored. Send the blob's "
                                  "exact bytes to /blobs/<their BLAKE3 digest>")
        await call(blobs.backend.put_file, key_for(digest), tmp)
    return json_response({"digest": digest, "size": size, "created": True}, status=201)


def _known_size(blobs: BlobStore, digest: str) -> int | None:
    """The size of a stored blob where the backend tells it without a read, else None;
    NotFound if it is not stored."""
    backend = blobs.backend
    if isinstance(backend, LocalBackend):
        try:
            return (backend.root / key_for(digest)).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"no blob {digest} on this server; upload it first") from None
    if not blobs.has(digest):
        raise NotFound(f"no blob {digest} on this server; upload it first")
    return None


def _parse_range(header: str | None) -> tuple[int | None, int | None] | None:
    """(first, last) of a single ``bytes=`` range (``None`` for an open end; a suffix
    range is ``(None, n)``), or None where the header is absent or not one plain range
    (which is then ignored, as HTTP allows)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[6:].strip().partition("-")
    if not sep or not (first.isdigit() or last.isdigit()):
        return None
    if (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if first and last and int(last) < int(first):
        return None
    return (int(first) if first else None, int(last) if last else None)


def _pieces(blobs: BlobStore, digest: str, start: int, length: int | None, *,
            first: bytes, verify: bool) -> Iterator[bytes]:
    """The bytes of ``digest`` from ``start`` (``length`` of them, or to its end), read in
    pieces; ``first`` is the first piece, already read. With ``verify`` (the whole blob),
    a mismatch cuts the response short, so the client keeps nothing."""
    key, hasher = key_for(digest), blake3()
    offset, left = start, length
    piece = first
    while piece:
        if left is not None:
            piece = piece[:left]
            left -= len(piece)
        if verify:
            hasher.update(piece)
        offset += len(piece)
        yield piece
        if left == 0 or len(piece) < _PIECE:
            break
        piece = blobs.backend.get_range(key, offset, _PIECE if left is None else min(_PIECE, left))
    if verify and hasher.hexdigest() != digest:
        raise CorruptData(f"blob {digest} on the server does not match its address; "
                          "the download was cut short")


async def get_blob(request: Request) -> Response:
    """The blob's bytes, streamed (206 with the part a ``Range`` header asks for)."""
    digest = check_digest(request.path_params["digest"])
    blobs = _blobs(request)
    size = await call(_known_size, blobs, digest)
    headers = {_DIGEST_HEADER: digest, "Accept-Ranges": "bytes"}
    if request.method == "HEAD":
        if size is not None:
            headers["Content-Length"] = str(size)
        return Response(status_code=200, headers=headers)
    wanted = _parse_range(request.headers.get("range"))
    if wanted is None:
        return await _whole(blobs, digest, size, headers)
    if size is None:
        return await _blind_range(blobs, digest, wanted, headers)
    start, last = wanted
    if start is None:  # the last ``last`` bytes
        start, last = max(0, size - (last or 0)), size - 1
    last = size - 1 if last is None else min(last, size - 1)
    if start >= size:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    first = await call(blobs.backend.get_range, key_for(digest), start, _PIECE)
    headers["Content-Length"] = str(last - start + 1)
    headers["Content-Range"] = f"bytes {start}-{last}/{size}"
    return StreamingResponse(_pieces(blobs, digest, start, last - start + 1, first=first,
                                     verify=False),
                             status_code=206, headers=headers,
                             media_type="application/octet-stream")


async def _whole(blobs: BlobStore, digest: str, size: int | None,
                 headers: dict[str, str]) -> Response:
    first = await call(blobs.backend.get_range, key_for(digest), 0, _PIECE)
    if size is not None or len(first) < _PIECE:
        headers["Content-Length"] = str(size if size is not None else len(first))
    return StreamingResponse(_pieces(blobs, digest, 0, None, first=first, verify=True),
                             headers=headers, media_type="application/octet-stream")


async def _blind_range(blobs: BlobStore, digest: str,
                       wanted: tuple[int | None, int | None],
                       headers: dict[str, str]) -> Response:
    """A range of a blob whose size the store does not tell without a read (S3, memory):
    a bounded range is read at once (its true end is then known); any other is ignored,
    as HTTP allows, and the whole blob is sent."""
    start, last = wanted
    if start is None or last is None or last - start + 1 > _PIECE:
        return await _whole(blobs, digest, None, headers)
    data = await call(blobs.backend.get_range, key_for(digest), start, last - start + 1)
    if not data:
        return Response(status_code=416, headers={"Content-Range": "bytes */*"})
    headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/*"
    return Response(data, status_code=206, headers=headers,
                    media_type="application/octet-stream")


# -- multipart uploads --------------------------------------------------------------------------
async def start_upload(request: Request) -> Response:
    """Start a multipart upload ``{digest, size, part_size}``, or resume the one there is."""
    body = await body_object(request)
    digest = check_digest(get_str(body, "digest"))
    size = get_int(body, "size", minimum=1)
    part_size = get_int(body, "part_size", minimum=1)
    session = await call(_uploads(request).start, digest, size, part_size=part_size,
                         user=actor(request))
    return json_response(session.to_dict(), status=200 if session.complete else 201)


async def upload_status(request: Request) -> Response:
    """A multipart upload: its parts received and missing."""
    session = await call(_uploads(request).status, request.path_params["upload_id"])
    return json_response(session.to_dict())


async def put_upload_part(request: Request) -> Response:
    """One part of a multipart upload (exactly its size; sent again, it replaces the first)."""
    uploads = _uploads(request)
    upload_id = request.path_params["upload_id"]
    number = _part_number(request.path_params["number"])
    session = await call(uploads.status, upload_id)
    expected = session.part_length(number)
    with _scratch_file() as tmp:
        await receive_body(request, tmp, limit=expected, exact=expected)
        await call(uploads.put_part, upload_id, number, tmp)
    return json_response({"id": upload_id, "number": number, "size": expected})


async def complete_upload(request: Request) -> Response:
    """Join the parts, check them against the digest, store the blob."""
    ref = await call(_uploads(request).complete, request.path_params["upload_id"])
    return json_response({"digest": ref.digest, "size": ref.size}, status=201)


async def abort_upload(request: Request) -> Response:
    """Drop a multipart upload and its parts."""
    await call(_uploads(request).abort, request.path_params["upload_id"])
    return Response(status_code=204)


def _part_number(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise InvalidArgument(f"part number {raw!r} must be a whole number from 1 to 10000")
    return int(raw)


def routes() -> list[BaseRoute]:
    blob = f"{API}/blobs/{{digest}}"
    upload = f"{API}/uploads/{{upload_id}}"
    return [
        Route(f"{API}/blobs/missing", missing_blobs, methods=["POST"]),
        Route(blob, get_blob, methods=["GET", "HEAD"]),
        Route(blob, put_blob, methods=["PUT"]),
        Route(f"{API}/uploads", start_upload, methods=["POST"]),
        Route(upload, upload_status, methods=["GET"]),
        Route(upload, abort_upload, methods=["DELETE"]),
        Route(f"{upload}/parts/{{number}}", put_upload_part, methods=["PUT"]),
        Route(f"{upload}/complete", complete_upload, methods=["POST"]),
    ]
