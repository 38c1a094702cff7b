"""One contract, every blob backend: local directory, memory and S3 (moto server)."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest

from loopml.blobs import BlobBackend
from loopml.blobs.local import LocalBackend
from loopml.blobs.memory import MemoryBackend
from loopml.errors import BackendUnavailable, InvalidArgument, LoopmlError, NotFound

KEY = "ab/" + "c" * 62


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> BlobBackend:
    if request.param == "local":
        return LocalBackend(tmp_path / "blobs")
    if request.param == "memory":
        return MemoryBackend(f"contract-{uuid.uuid4().hex[:8]}")
    from loopml.blobs.s3 import S3Backend

    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Backend(bucket, "some/prefix", endpoint_url=endpoint)


def test_url_names_the_store(backend: BlobBackend) -> None:
    assert backend.url.split("://")[0] in ("file", "memory", "s3")
    assert backend.url in repr(backend)


def test_put_and_get_bytes(backend: BlobBackend) -> None:
    assert not backend.exists(KEY)
    backend.put_bytes(KEY, b"hello")
    assert backend.exists(KEY)
    assert backend.get_bytes(KEY) == b"hello"


def test_empty_object(backend: BlobBackend) -> None:
    backend.put_bytes(KEY, b"")
    assert backend.exists(KEY)
    assert backend.get_bytes(KEY) == b""


def test_put_and_get_file(backend: BlobBackend, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"file content\x00\xff")
    backend.put_file(KEY, source)
    assert backend.get_bytes(KEY) == source.read_bytes()
    dest = tmp_path / "dest.bin"
    backend.get_file(KEY, dest)
    assert dest.read_bytes() == source.read_bytes()


def test_overwrite_with_same_bytes_is_harmless(backend: BlobBackend) -> None:
    backend.put_bytes(KEY, b"same")
    backend.put_bytes(KEY, b"same")
    assert backend.get_bytes(KEY) == b"same"
    assert list(backend.iter_keys()) == [KEY]


def test_missing_key_raises_not_found_naming_the_key(backend: BlobBackend,
                                                     tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=KEY):
        backend.get_bytes(KEY)
    dest = tmp_path / "never.bin"
    with pytest.raises(NotFound, match=KEY):
        backend.get_file(KEY, dest)
    assert not dest.exists()


def test_a_key_prefix_is_not_an_object(backend: BlobBackend) -> None:
    backend.put_bytes(KEY, b"x")
    assert not backend.exists("ab")
    with pytest.raises(NotFound):
        backend.get_bytes("ab")
    backend.delete("ab")  # nothing there: nothing happens
    assert backend.get_bytes(KEY) == b"x"


def test_missing_source_file_is_the_callers_mistake(backend: BlobBackend,
                                                    tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no file at"):
        backend.put_file(KEY, tmp_path / "absent.bin")
    with pytest.raises(InvalidArgument, match="not a regular file"):
        backend.put_file(KEY, tmp_path)
    assert not backend.exists(KEY)


def test_iter_keys_lists_every_key(backend: BlobBackend) -> None:
    assert list(backend.iter_keys()) == []
    keys = {f"{i:02x}/{'d' * 62}" for i in range(5)} | {"ab/" + "e" * 62}
    for key in keys:
        backend.put_bytes(key, key.encode())
    assert set(backend.iter_keys()) == keys


def test_delete_removes_and_is_idempotent(backend: BlobBackend) -> None:
    backend.put_bytes(KEY, b"x")
    backend.delete(KEY)
    assert not backend.exists(KEY)
    assert list(backend.iter_keys()) == []
    backend.delete(KEY)  # a second delete is fine
    with pytest.raises(NotFound):
        backend.get_bytes(KEY)


@pytest.mark.parametrize("key", ["", "../escape", "ab/../../x", "/abs", "ab//cd", ".hidden",
                                 "ab\\cd"])
def test_unsafe_keys_are_rejected(backend: BlobBackend, key: str) -> None:
    with pytest.raises(InvalidArgument, match="not a blob key"):
        backend.put_bytes(key, b"x")
    with pytest.raises(InvalidArgument):
        backend.get_bytes(key)


def test_large_object_round_trip(backend: BlobBackend, tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024)
    source = tmp_path / "large.bin"
    source.write_bytes(data)
    backend.put_file(KEY, source)
    dest = tmp_path / "large.out"
    backend.get_file(KEY, dest)
    assert dest.read_bytes() == data
    backend.put_bytes("cd/" + "f" * 62, data)
    assert backend.get_bytes("cd/" + "f" * 62) == data


def test_get_range_reads_part_of_an_object(backend: BlobBackend) -> None:
    data = bytes(range(256)) * 4
    backend.put_bytes(KEY, data)
    assert backend.get_range(KEY, 0, 10) == data[:10]
    assert backend.get_range(KEY, 300, 50) == data[300:350]
    assert backend.get_range(KEY, 1000, 100) == data[1000:]  # fewer at the end
    with pytest.raises(NotFound, match="cd/"):
        backend.get_range("cd/" + "0" * 62, 0, 1)


def test_large_file_goes_up_in_parts(backend: BlobBackend, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from loopml.blobs import s3

    if not isinstance(backend, s3.S3Backend):
        pytest.skip("only S3 uploads in parts")
    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 6 << 20)
    monkeypatch.setattr(s3, "PART_SIZE", 5 << 20)  # S3's smallest part
    data = os.urandom(12 << 20)  # three parts, the last one short
    source = tmp_path / "parts.bin"
    source.write_bytes(data)
    backend.put_file(KEY, source)
    assert backend.get_bytes(KEY) == data
    assert list(backend.iter_keys()) == [KEY]


def test_concurrent_puts_of_one_key(backend: BlobBackend) -> None:
    data = os.urandom(256 * 1024)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def put() -> None:
        try:
            start.wait()
            for _ in range(3):
                backend.put_bytes(KEY, data)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert backend.get_bytes(KEY) == data
    assert list(backend.iter_keys()) == [KEY]


def test_driver_errors_are_translated(backend: BlobBackend, tmp_path: Path) -> None:
    """A store that cannot be reached raises BackendUnavailable naming its URL, never raw."""
    broken = _broken_twin(backend, tmp_path)
    if broken is None:
        pytest.skip("the memory backend has no driver that can fail")
    with pytest.raises(BackendUnavailable) as caught:
        broken.put_bytes(KEY, b"x")
    assert broken.url in str(caught.value)
    assert "check that" in str(caught.value)
    with pytest.raises(LoopmlError):
        broken.get_bytes(KEY)


def _broken_twin(backend: BlobBackend, tmp_path: Path) -> BlobBackend | None:
    if isinstance(backend, LocalBackend):
        root = tmp_path / "a-file"
        root.write_text("not a directory")
        return LocalBackend(root)
    if isinstance(backend, MemoryBackend):
        return None
    from loopml.blobs.s3 import S3Backend

    assert isinstance(backend, S3Backend)
    return S3Backend(f"no-such-bucket-{uuid.uuid4().hex[:8]}", "p",
                     endpoint_url=backend.endpoint_url)
