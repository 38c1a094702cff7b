"""File contents in the blob store: whole, packed and content-defined chunked layouts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from loopml.blobs import BlobStore, hash_bytes
from loopml.blobs import chunking as chunking_module
from loopml.blobs.chunking import (
    CHUNK_THRESHOLD,
    MAX_CHUNK,
    iter_chunks,
    open_entry,
    read_file,
    store_file,
)
from loopml.blobs.digest import key_for
from loopml.blobs.entry import FileEntry, decode_entry, encode_entry
from loopml.blobs.local import LocalBackend
from loopml.blobs.memory import MemoryBackend
from loopml.blobs.packs import read_packed, read_range, write_pack
from loopml.errors import Conflict, CorruptData, InvalidArgument, NotFound

MB = 1 << 20


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(LocalBackend(tmp_path / "blobs"), workers=4)
    return BlobStore(MemoryBackend(), workers=4)


def _stored_bytes(store: BlobStore) -> int:
    return sum(len(store.backend.get_bytes(key)) for key in store.backend.iter_keys())


def _random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def test_small_file_is_one_whole_blob(store: BlobStore, tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_bytes(b"hello")
    entry = store_file(store, path)
    assert entry == FileEntry(hash_bytes(b"hello"), 5)
    assert store.get_bytes(entry.digest) == b"hello"
    read_file(store, entry, tmp_path / "out" / "copy.txt")
    assert (tmp_path / "out" / "copy.txt").read_bytes() == b"hello"
    with open_entry(store, entry) as stream:
        assert stream.read() == b"hello"


def test_large_file_round_trips_through_chunks(store: BlobStore, tmp_path: Path) -> None:
    data = _random(CHUNK_THRESHOLD + 3 * MB, seed=1)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    entry = store_file(store, path)
    assert entry.digest == hash_bytes(data) and entry.size == len(data)
    assert entry.chunks is not None and entry.pack is None
    chunks = list(iter_chunks(store, entry.chunks))
    assert sum(size for _, size in chunks) == len(data)
    assert all(size <= MAX_CHUNK for _, size in chunks) and len(chunks) > 10
    read_file(store, entry, tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == data
    with open_entry(store, entry) as stream:
        head = stream.read(1000)
        assert head == data[:1000]
        assert stream.read() == data[1000:]


def test_appending_stores_little_more_than_the_appended_bytes(tmp_path: Path) -> None:
    store = BlobStore(LocalBackend(tmp_path / "blobs"), workers=4)
    path = tmp_path / "grow.bin"
    path.write_bytes(_random(64 * MB, seed=2))
    first = store_file(store, path)
    before = _stored_bytes(store)
    appended = _random(10 * MB, seed=3)
    with path.open("ab") as stream:
        stream.write(appended)
    second = store_file(store, path)
    growth = _stored_bytes(store) - before
    assert second.digest != first.digest and second.size == 74 * MB
    assert len(appended) <= growth <= 1.1 * len(appended)
    with open_entry(store, second) as stream:
        assert hash_bytes(stream.read()) == second.digest


def test_an_insertion_in_the_middle_stores_a_few_chunks(store: BlobStore,
                                                        tmp_path: Path) -> None:
    data = _random(16 * MB, seed=4)
    path = tmp_path / "edit.bin"
    path.write_bytes(data)
    store_file(store, path)
    before = _stored_bytes(store)
    path.write_bytes(data[:8 * MB] + b"inserted text" * 100 + data[8 * MB:])
    entry = store_file(store, path)
    assert _stored_bytes(store) - before <= 3 * MAX_CHUNK + 64 * 1024
    read_file(store, entry, tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == path.read_bytes()


def test_a_corrupt_chunk_is_detected_and_the_destination_left_alone(tmp_path: Path) -> None:
    store = BlobStore(MemoryBackend(), workers=2)
    path = tmp_path / "big.bin"
    path.write_bytes(_random(CHUNK_THRESHOLD + MB, seed=5))
    entry = store_file(store, path)
    assert entry.chunks is not None
    digest, size = list(iter_chunks(store, entry.chunks))[3]
    store.backend.put_bytes(key_for(digest), b"\0" * size)
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"previous content")
    with pytest.raises(CorruptData, match=digest):
        read_file(store, entry, dest)
    assert dest.read_bytes() == b"previous content"
    assert [p.name for p in tmp_path.iterdir() if "loopml-tmp" in p.name] == []
    with pytest.raises(CorruptData), open_entry(store, entry) as stream:
        stream.read()


def test_a_missing_chunk_is_not_found(tmp_path: Path) -> None:
    store = BlobStore(MemoryBackend(), workers=2)
    path = tmp_path / "big.bin"
    path.write_bytes(_random(CHUNK_THRESHOLD + MB, seed=6))
    entry = store_file(store, path)
    assert entry.chunks is not None
    store.delete(next(iter_chunks(store, entry.chunks))[0])
    with pytest.raises(NotFound):
        read_file(store, entry, tmp_path / "dest.bin")
    assert not (tmp_path / "dest.bin").exists()


def test_a_file_changing_while_stored_is_a_conflict(store: BlobStore, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "moving.txt"
    path.write_bytes(b"first")
    real_add = store.add_bytes

    def add_and_edit(data: bytes) -> tuple[str, bool]:
        path.write_bytes(b"second, longer")
        return real_add(data)

    monkeypatch.setattr(store, "add_bytes", add_and_edit)
    with pytest.raises(Conflict, match="changed while it was being stored"):
        store_file(store, path)


def test_store_file_reports_bad_paths(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no file at"):
        store_file(store, tmp_path / "missing")
    with pytest.raises(InvalidArgument, match="not a regular file"):
        store_file(store, tmp_path)


def test_packed_files_read_back_by_range(store: BlobStore, tmp_path: Path) -> None:
    contents = [b"alpha", b"", b"gamma" * 1000]
    pack, offsets, created = write_pack(store, contents)
    assert created and offsets == [0, 5, 5]
    assert write_pack(store, contents) == (pack, offsets, False)  # same content, same pack
    entries = [FileEntry(hash_bytes(data), len(data), pack=pack, offset=offset)
               for data, offset in zip(contents, offsets, strict=True)]
    for data, entry in zip(contents, entries, strict=True):
        assert read_packed(store, entry) == data
        assert read_range(store, pack, entry.offset, entry.size) == data
        with open_entry(store, entry) as stream:
            assert stream.read() == data
    read_file(store, entries[2], tmp_path / "gamma.txt")
    assert (tmp_path / "gamma.txt").read_bytes() == contents[2]
    wrong = entries[0]._replace(offset=1)
    with pytest.raises(CorruptData, match="pack"):
        read_packed(store, wrong)


def test_entries_round_trip_through_json() -> None:
    digest = hash_bytes(b"x")
    for entry in (FileEntry(digest, 1), FileEntry(digest, 9, chunks=digest),
                  FileEntry(digest, 2, pack=digest, offset=7)):
        assert decode_entry(encode_entry(entry)) == entry
    for bad in ([digest], [digest, -1], ["short", 1], [digest, 1, "pack", digest, -2],
                [digest, 1, "zip", digest], {"digest": digest}, [digest, True]):
        with pytest.raises(ValueError):
            decode_entry(bad)


def test_average_chunk_keeps_appends_within_target() -> None:
    # The re-cut last chunk is at most MAX_CHUNK: under 5% of a 10 MB append.
    assert chunking_module.MAX_CHUNK <= 0.04 * 10 * MB
