"""One file's content in the blob store: stored whole, or cut into content-defined chunks.

A file of :data:`CHUNK_THRESHOLD` bytes or more is cut with FastCDC (boundaries chosen by
the content, so an insertion or an append moves only the chunks around it) into chunks of
:data:`MIN_CHUNK`–:data:`MAX_CHUNK` bytes, :data:`AVG_CHUNK` on average; each chunk is a
blob. The chunks are listed, in order, in *pages* of about :data:`PAGE_CHUNKS` chunks, whose
boundaries are also chosen by content (a chunk whose digest ends in a given pattern closes
a page); a *chunk index* lists the pages. Appending 10 MB to a 1 GB file therefore stores
the new chunks, the re-cut last chunk (``AVG_CHUNK`` on average, ``MAX_CHUNK`` at most), a
few pages and the index (~12 KB): about 1.02x the appended bytes, where one flat list of
8,000 chunk digests would add 640 KB on every append. Average chunks larger than 128 KiB
would break 1.05x whenever the last chunk happens to be long.

::

    page   {"chunks": [[chunk digest, size], ...]}
    index  {"pages": [[page digest, chunks, bytes], ...], "size": total}

Parts are written before what lists them (chunks, pages, then the index), so an index that
exists means the whole file is stored; an interrupted store leaves only reusable chunks.

Smaller files are stored whole (one blob) by :func:`store_file`; trees store them in packs
(:mod:`loopml.blobs.packs`). :func:`read_file` and :func:`open_entry` read any layout and
verify what they read.
"""

from __future__ import annotations

import io
import mmap
import os
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from blake3 import blake3

from loopml.blobs.backend import check_source
from loopml.blobs.digest import check_digest
from loopml.blobs.entry import FileEntry
from loopml.blobs.hashing import canonical_json
from loopml.blobs.packs import read_packed
from loopml.blobs.store import BlobStore
from loopml.errors import Conflict, CorruptData, InvalidArgument, MissingDependency

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = [
    "AVG_CHUNK", "CHUNK_THRESHOLD", "MAX_CHUNK", "MIN_CHUNK", "PAGE_CHUNKS", "TEMP_SUFFIX",
    "FileEntry",
    "check_unchanged", "iter_chunks", "iter_content", "iter_pages", "open_entry",
    "page_chunks", "read_all", "read_file", "store_file", "store_file_counted", "write_atomic",
]

CHUNK_THRESHOLD = 4 << 20
MIN_CHUNK, AVG_CHUNK, MAX_CHUNK = 32 << 10, 128 << 10, 384 << 10
PAGE_CHUNKS, MAX_PAGE_CHUNKS = 64, 1024
_BATCH = 32  # chunks stored per parallel task
TEMP_SUFFIX = ".loopml-tmp"  # of write_atomic's temporary files, never part of a tree


def store_file(store: BlobStore, path: str | os.PathLike[str]) -> FileEntry:
    """Store the file at ``path`` (whole, or chunked if large); return its entry.

    Raises :class:`~loopml.errors.Conflict` if the file changes while it is read.
    """
    path = Path(path)
    check_source(path)
    return store_file_counted(store, path)[0]


def store_file_counted(store: BlobStore, path: Path) -> tuple[FileEntry, int, os.stat_result]:
    """:func:`store_file` without the path checks; also returns the bytes newly written and
    the file's ``stat`` as read (for the stat cache)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise Conflict(f"{path} disappeared while it was being stored; add it again") from None
    except OSError as exc:
        raise _unreadable(path, exc) from None
    try:
        before = os.fstat(fd)
        if before.st_size < CHUNK_THRESHOLD:
            data = read_all(fd, before.st_size)
            digest, created = store.add_bytes(data)
            entry, written = FileEntry(digest, len(data)), len(data) if created else 0
        else:
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
                entry, written = _store_chunked(store, mapped)
        after = os.fstat(fd)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    finally:
        os.close(fd)
    check_unchanged(path, before, after)
    return entry, written, after


def check_unchanged(path: Path | str, before: os.stat_result, after: os.stat_result) -> None:
    """Raise Conflict if the file at ``path`` changed between the two ``fstat`` results."""
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise Conflict(f"{path} changed while it was being stored; "
                       "store it again once nothing is writing to it")


def _store_chunked(store: BlobStore, mapped: mmap.mmap) -> tuple[FileEntry, int]:
    """Cut the mapped file into chunks and store them, on the store's threads as the cuts
    come (cutting holds the GIL; hashing and writing do not), while another thread hashes
    the whole file."""
    try:
        from fastcdc import fastcdc
    except ImportError:
        raise MissingDependency("storing files larger than 4 MiB", package="fastcdc") from None
    from concurrent.futures import ThreadPoolExecutor

    view = memoryview(mapped)

    def put_batch(batch: list[tuple[int, int]]) -> list[tuple[str, int, int]]:
        stored = []
        for offset, length in batch:
            digest, created = store.add_bytes(view[offset:offset + length])
            stored.append((digest, length, length if created else 0))
        return stored

    try:
        with ThreadPoolExecutor(max_workers=store.workers + 1,
                                thread_name_prefix="loopml-chunks") as pool:
            whole = pool.submit(lambda: blake3(view, max_threads=blake3.AUTO).hexdigest())
            tasks: list[Future[list[tuple[str, int, int]]]] = []
            try:
                batch: list[tuple[int, int]] = []
                for cut in fastcdc(view, min_size=MIN_CHUNK, avg_size=AVG_CHUNK,
                                   max_size=MAX_CHUNK):
                    batch.append((cut.offset, cut.length))
                    if len(batch) == _BATCH:
                        tasks.append(pool.submit(put_batch, batch))
                        batch = []
                if batch:
                    tasks.append(pool.submit(put_batch, batch))
                results = [task.result() for task in tasks]
            except BaseException:
                for task in tasks:
                    task.cancel()
                raise
            whole_digest = whole.result()
    finally:
        view.release()
    chunks = [(digest, size) for stored in results for digest, size, _ in stored]
    written = sum(new for stored in results for _, _, new in stored)
    index, index_written = _write_index(store, chunks)
    return FileEntry(whole_digest, len(mapped), chunks=index), written + index_written


def _write_index(store: BlobStore, chunks: list[tuple[str, int]]) -> tuple[str, int]:
    """Write the pages listing ``chunks``, then the index listing the pages."""
    pages: list[list[Any]] = []
    page: list[list[Any]] = []
    written = 0
    for position, (digest, size) in enumerate(chunks):
        page.append([digest, size])
        last = position == len(chunks) - 1
        if last or len(page) >= MAX_PAGE_CHUNKS or int(digest[-4:], 16) % PAGE_CHUNKS == 0:
            data = canonical_json({"chunks": page})
            page_digest, created = store.add_bytes(data)
            written += len(data) if created else 0
            pages.append([page_digest, len(page), sum(item[1] for item in page)])
            page = []
    data = canonical_json({"pages": pages, "size": sum(size for _, size in chunks)})
    index, created = store.add_bytes(data)
    return index, written + (len(data) if created else 0)


def iter_pages(store: BlobStore, index: str) -> list[str]:
    """The page digests of the chunk index ``index``."""
    return [page for page, _, _ in _load(store, index, "pages")]


def page_chunks(store: BlobStore, page: str) -> list[tuple[str, int]]:
    """``(digest, size)`` of each chunk listed by the page ``page``."""
    return [(digest, size) for digest, size, _ in _load(store, page, "chunks")]


def iter_chunks(store: BlobStore, index: str) -> Iterator[tuple[str, int]]:
    """``(digest, size)`` of each chunk of the chunk index ``index``, in file order."""
    for page in iter_pages(store, index):
        yield from page_chunks(store, page)


def _load(store: BlobStore, digest: str, field: str) -> list[tuple[str, int, int]]:
    document = store.get_json(digest)
    try:
        rows = document[field]
        return [(check_digest(row[0]), int(row[1]), int(row[-1])) for row in rows]
    except (TypeError, KeyError, IndexError, ValueError):
        raise InvalidArgument(f"blob {digest} is not a chunk {field[:-1]} list; pass the "
                              "'chunks' digest of a file entry") from None


def iter_content(store: BlobStore, entry: FileEntry) -> Iterator[bytes]:
    """The content of ``entry`` in pieces, each verified; the whole is checked at the end."""
    if entry.pack is not None:
        yield read_packed(store, entry)
        return
    if entry.chunks is None:
        yield store.get_bytes(entry.digest)
        return
    hasher, size = blake3(), 0
    for piece in _prefetch(store, iter_chunks(store, entry.chunks)):
        hasher.update(piece)
        size += len(piece)
        yield piece
    if hasher.hexdigest() != entry.digest or size != entry.size:
        raise CorruptData(f"the chunks of file {entry.digest} (index {entry.chunks}) in "
                          f"{store.url} do not make up the file; store the file again")


def _prefetch(store: BlobStore, chunks: Iterable[tuple[str, int]]) -> Iterator[bytes]:
    """Chunk contents in order, fetching a few ahead on threads (remote stores are slow)."""
    from concurrent.futures import ThreadPoolExecutor  # only when chunks are read

    workers = min(store.workers, 8)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loopml-read") as pool:
        window: deque[Future[bytes]] = deque()
        for digest, _ in chunks:
            window.append(pool.submit(store.get_bytes, digest))
            if len(window) > 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def read_file(store: BlobStore, entry: FileEntry, dest: str | os.PathLike[str]) -> None:
    """Write the content of ``entry`` to ``dest`` atomically, verified before it appears."""
    write_atomic(Path(dest), iter_content(store, entry))


def write_atomic(dest: Path, pieces: Iterable[bytes]) -> None:
    """Write ``pieces`` to a temporary file beside ``dest``, then rename it over ``dest``.

    An error while producing or writing the pieces (a corrupt blob, a full disk) leaves
    ``dest`` as it was. The directory of ``dest`` is created if needed.
    """
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"
    try:
        try:
            stream = tmp.open("xb")
        except FileNotFoundError:
            dest.parent.mkdir(parents=True, exist_ok=True)
            stream = tmp.open("xb")
        try:
            with stream:
                for piece in pieces:
                    stream.write(piece)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise InvalidArgument(f"cannot write {dest} ({exc.strerror or exc}); check that "
                              f"{dest.parent} is a writable directory with free space") from None


def open_entry(store: BlobStore, entry: FileEntry) -> BinaryIO:
    """A binary stream over the content of ``entry`` (a chunked file is streamed)."""
    if entry.chunks is None:
        return io.BytesIO(b"".join(iter_content(store, entry)))
    return io.BufferedReader(_PieceStream(iter_content(store, entry)), buffer_size=1 << 20)


class _PieceStream(io.RawIOBase):
    """A raw stream reading from an iterator of byte pieces."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._current:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._current = memoryview(piece)
        count = min(len(buffer), len(self._current))
        buffer[:count] = self._current[:count]
        self._current = self._current[count:]
        return count

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()
        super().close()


def read_all(fd: int, size: int) -> bytes:
    """The content of the open file ``fd``, expected to hold ``size`` bytes.

    Reads until ``size`` bytes or the end of the file; a file that grew or shrank meanwhile
    is caught by the caller comparing ``fstat`` before and after.
    """
    data = os.read(fd, size)
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            break
        data += more
    return data


def _unreadable(path: Path, exc: OSError) -> InvalidArgument:
    return InvalidArgument(f"cannot read {path} ({exc.strerror or exc}); "
                           "check that it is a readable file")
