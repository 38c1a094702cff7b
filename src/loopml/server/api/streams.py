"""Stored bytes as streamed responses: a blob or a tree's file is read piece by piece from
the blob store and verified against its BLAKE3 address on the way out.

A small blob is read whole (one verified read, one response with a Content-Length); a larger
one is read in :data:`PIECE` ranges, so a multi-gigabyte artifact never sits in the server's
memory. If the pieces do not hash to the address the response is cut short, and the client,
which checks the digest it was given, keeps nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from blake3 import blake3
from starlette.responses import Response, StreamingResponse

from loopml.blobs import BlobStore
from loopml.blobs.digest import key_for
from loopml.blobs.entry import FileEntry
from loopml.errors import CorruptData

__all__ = ["DIGEST_HEADER", "PIECE", "blob_response", "entry_response"]

#: Bytes read from the blob store at a time.
PIECE = 4 * 1024 * 1024
#: The header that carries the content's BLAKE3 digest.
DIGEST_HEADER = "X-Loopml-Digest"


def _headers(digest: str, size: int, filename: str) -> dict[str, str]:
    return {DIGEST_HEADER: digest, "Content-Length": str(size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"}


def _pieces(blobs: BlobStore, digest: str, size: int) -> Iterator[bytes]:
    key = key_for(digest)
    hasher, offset = blake3(), 0
    while offset < size:
        piece = blobs.backend.get_range(key, offset, min(PIECE, size - offset))
        if not piece:
            break
        hasher.update(piece)
        offset += len(piece)
        yield piece
    if offset != size or hasher.hexdigest() != digest:
        raise CorruptData(f"blob {digest} in {blobs.url} does not match its address; "
                          "store the original content again")


def blob_response(blobs: BlobStore, digest: str, size: int, *, filename: str) -> Response:
    """The content of blob ``digest`` (``size`` bytes) as a download named ``filename``."""
    headers = _headers(digest, size, filename)
    if size <= PIECE:
        return Response(blobs.get_bytes(digest), media_type="application/octet-stream",
                        headers=headers)
    return StreamingResponse(_pieces(blobs, digest, size), headers=headers,
                             media_type="application/octet-stream")


def entry_response(blobs: BlobStore, entry: FileEntry, *, filename: str) -> Response:
    """The content of a tree's file ``entry`` (plain, chunked or packed) as a download."""
    from loopml.blobs.chunking import iter_content

    headers = _headers(entry.digest, entry.size, filename)
    if entry.chunks is None and entry.pack is None:
        return blob_response(blobs, entry.digest, entry.size, filename=filename)
    return StreamingResponse(iter_content(blobs, entry), headers=headers,
                             media_type="application/octet-stream")
