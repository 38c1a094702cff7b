"""Blob transfer over HTTP against a real uvicorn server in a thread: streamed uploads checked
against their digest, ranged downloads, batched look-ups, resumable multipart uploads shared
by two server processes, and bad input (a wrong digest, an oversized body, names and tree
paths that escape) refused with a clear 4xx that leaves nothing behind."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from servers import Counting, ServerThread, call_json

import loopml
from loopml.blobs import hash_bytes
from loopml.blobs.hashing import canonical_json
from loopml.client import Client
from loopml.client.http import HttpSession
from loopml.client.remote_blobs import HttpBlobBackend
from loopml.errors import InvalidArgument
from loopml.server.app import ServerOptions, create_app
from loopml.server.uploads import MIN_PART_SIZE, Uploads

pytest.importorskip("uvicorn")

MiB = 1 << 20


class Served:
    """One server process's worth: an app over its own client of ``home``, and a raw pool."""

    def __init__(self, home: Path, options: ServerOptions, database_url: str = "",
                 blob_url: str = "") -> None:
        self.client = Client(loopml.load_settings(home=home, database_url=database_url,
                                                  blob_url=blob_url, progress=False))
        self.app = create_app(client=self.client, options=options)
        self.counting = Counting(self.app)
        self.server = ServerThread.for_app(self.counting)
        self.url = self.server.url
        self.pool = urllib3.PoolManager(retries=False)

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        return call_json(self.pool, method, self.url + path, body, raw=raw, headers=headers)

    def close(self) -> None:
        self.server.stop()
        self.client.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    one = Served(tmp_path / "server", ServerOptions(auth=False, max_upload_bytes=12 * MiB))
    yield one
    one.close()


def _stored_keys(served: Served) -> list[str]:
    return sorted(served.client.blobs.backend.iter_keys())


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the server writes bodies as they arrive, for this test alone."""
    where = tmp_path / "scratch"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def test_put_get_head_and_missing(served: Served) -> None:
    data = os.urandom(3 * MiB)
    digest = hash_bytes(data)
    other = hash_bytes(b"never stored")
    status, body, _ = served.call("POST", "/api/v1/blobs/missing",
                                  {"digests": [digest, other, digest]})
    assert status == 200 and body == {"missing": [digest, other]}
    status, body, _ = served.call("PUT", f"/api/v1/blobs/{digest}", raw=data)
    assert status == 201 and body == {"digest": digest, "size": len(data), "created": True}
    status, body, _ = served.call("PUT", f"/api/v1/blobs/{digest}", raw=data)
    assert status == 200 and body["created"] is False
    assert served.call("POST", "/api/v1/blobs/missing", {"digests": [digest, other]})[1] == {
        "missing": [other]}
    status, body, headers = served.call("GET", f"/api/v1/blobs/{digest}")
    assert status == 200 and body == data and headers["X-Loopml-Digest"] == digest
    status, _, headers = served.call("HEAD", f"/api/v1/blobs/{digest}")
    assert status == 200 and headers["Content-Length"] == str(len(data))
    assert served.call("GET", f"/api/v1/blobs/{other}")[0] == 404
    status, body, _ = served.call("GET", "/api/v1/blobs/not-a-digest")
    assert status == 400 and "not a blob digest" in body["message"]
    status, body, _ = served.call("POST", "/api/v1/blobs/missing", {"digests": ["../x"]})
    assert status == 400 and "not a blob digest" in body["message"]


def test_ranged_downloads(served: Served) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB: several pieces of the server's reads
    digest = hash_bytes(data)
    assert served.call("PUT", f"/api/v1/blobs/{digest}", raw=data)[0] == 201
    for header, start, end in [("bytes=10-19", 10, 20), ("bytes=9999990-", 9999990, None),
                               ("bytes=-7", len(data) - 7, None),
                               ("bytes=4194300-8388700", 4194300, 8388701),
                               ("bytes=10239990-99999999", 10239990, None)]:
        status, body, headers = served.call("GET", f"/api/v1/blobs/{digest}",
                                            headers={"Range": header})
        assert status == 206, header
        assert body == data[start:end], header
        last = (len(data) if end is None else end) - 1
        assert headers["Content-Range"] == f"bytes {start}-{last}/{len(data)}"
    status, _, headers = served.call("GET", f"/api/v1/blobs/{digest}",
                                     headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    status, body, _ = served.call("GET", f"/api/v1/blobs/{digest}",
                                  headers={"Range": "bytes=5-1,3-4"})  # ignored: all of it
    assert status == 200 and body == data
    backend = HttpBlobBackend(HttpSession(served.url))
    key = f"{digest[:2]}/{digest[2:]}"
    assert backend.get_range(key, 100, 50) == data[100:150]
    assert backend.get_range(key, len(data) - 3, 50) == data[-3:]
    assert backend.get_range(key, len(data) + 5, 10) == b""
    assert backend.get_range(key, 1000, 9 * MiB) == data[1000:1000 + 9 * MiB]  # 3 requests


def test_ranges_of_a_store_that_does_not_tell_sizes(tmp_path: Path) -> None:
    served = Served(tmp_path / "server", ServerOptions(auth=False), blob_url="memory://ranges")
    try:
        data = os.urandom(5 * MiB)
        digest = hash_bytes(data)
        assert served.call("PUT", f"/api/v1/blobs/{digest}", raw=data)[0] == 201
        blob = f"/api/v1/blobs/{digest}"
        status, body, headers = served.call("GET", blob, headers={"Range": "bytes=2-5"})
        assert (status, body, headers["Content-Range"]) == (206, data[2:6], "bytes 2-5/*")
        status, body, headers = served.call("GET", blob, headers={
            "Range": f"bytes={len(data) - 2}-{len(data) + 10}"})
        assert status == 206 and body == data[-2:]
        assert headers["Content-Range"] == f"bytes {len(data) - 2}-{len(data) - 1}/*"
        for ignored in ("bytes=-4", "bytes=7-"):  # the size is needed: the whole blob
            status, body, _ = served.call("GET", blob, headers={"Range": ignored})
            assert status == 200 and body == data
        past = f"bytes={len(data)}-{len(data) + 1}"
        assert served.call("GET", blob, headers={"Range": past})[0] == 416
        backend = HttpBlobBackend(HttpSession(served.url))
        assert backend.get_range(f"{digest[:2]}/{digest[2:]}", 10, 6 * MiB) == data[10:]
    finally:
        served.close()


def test_a_body_that_does_not_match_its_digest_keeps_nothing(served: Served,
                                                            scratch: Path) -> None:
    claimed = hash_bytes(b"what the client says")
    status, body, _ = served.call("PUT", f"/api/v1/blobs/{claimed}", raw=b"something else")
    assert status == 400 and "hashes to" in body["message"] and claimed in body["message"]
    assert _stored_keys(served) == [] and list(scratch.iterdir()) == []
    backend = HttpBlobBackend(HttpSession(served.url))
    with pytest.raises(InvalidArgument, match="hashes to"):
        backend.put_bytes(f"{claimed[:2]}/{claimed[2:]}", b"something else")


def test_oversized_uploads_are_refused_with_413(served: Served, scratch: Path) -> None:
    big = b"x" * (12 * MiB + 1)
    digest = hash_bytes(big)
    status, body, _ = served.call("PUT", f"/api/v1/blobs/{digest}", raw=big)
    assert status == 413 and "max_upload_bytes" in body["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(13):
            yield b"x" * MiB

    answer = served.pool.request("PUT", f"{served.url}/api/v1/blobs/{digest}", body=chunked(),
                                 chunked=True)
    assert answer.status == 413
    status, body, _ = served.call("POST", "/api/v1/uploads",
                                  {"digest": digest, "size": 1 << 40, "part_size": 64 * MiB})
    assert status == 413
    assert _stored_keys(served) == [] and list(scratch.iterdir()) == []


def _crashing_after(backend: HttpBlobBackend, parts: int) -> None:
    """Make ``backend`` die (as a killed process would) after sending ``parts`` parts."""
    sent = []
    upload = backend.session.upload

    def dying(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if "/parts/" in path:
            if len(sent) >= parts:
                raise KeyboardInterrupt
            sent.append(path)
        return upload(method, path, *args, **kwargs)

    backend.session.upload = dying  # type: ignore[method-assign]


def test_multipart_upload_resumes_with_the_missing_parts_only(served: Served,
                                                               tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(5 * MiB + 12345))  # 6 parts of 1 MiB
    digest = hash_bytes(source.read_bytes())
    key = f"{digest[:2]}/{digest[2:]}"
    first = HttpBlobBackend(HttpSession(served.url), multipart_threshold=2 * MiB,
                            part_size=MIN_PART_SIZE, workers=1)
    _crashing_after(first, 2)
    with pytest.raises(KeyboardInterrupt):
        first.put_file(key, source)
    assert not served.client.blobs.has(digest)
    served.counting.reset()
    again = HttpBlobBackend(HttpSession(served.url), multipart_threshold=2 * MiB,
                            part_size=MIN_PART_SIZE, workers=3)
    again.put_file(key, source)
    parts = [path for method, path in served.counting.requests if "/parts/" in path]
    assert len(parts) == 4 and served.counting.body_bytes < 4 * MiB + 20_000
    assert served.client.blobs.get_bytes(digest) == source.read_bytes()
    assert not any(k.startswith("uploads/") for k in _stored_keys(served))  # parts dropped
    assert list((served.client.settings.home / "blobs" / "uploads").iterdir()) == []
    served.counting.reset()
    again.put_file(key, source)  # stored already: nothing is sent
    assert served.counting.body_bytes < 1000


def test_multipart_refusals_keep_nothing(served: Served) -> None:
    data = os.urandom(2 * MiB + 10)
    claimed = hash_bytes(b"not these bytes")
    status, session, _ = served.call("POST", "/api/v1/uploads",
                                     {"digest": claimed, "size": len(data),
                                      "part_size": MIN_PART_SIZE})
    assert status == 201 and session["missing"] == [1, 2, 3]
    upload = f"/api/v1/uploads/{session['id']}"
    status, body, _ = served.call("PUT", f"{upload}/parts/1", raw=data[:10])
    assert status == 400 and "exactly 1,048,576 bytes" in body["message"]
    status, body, _ = served.call("PUT", f"{upload}/parts/4", raw=data[:10])
    assert status == 400 and "parts 1 to 3" in body["message"]
    for number, start in ((1, 0), (3, 2 * MiB)):
        assert served.call("PUT", f"{upload}/parts/{number}",
                           raw=data[start:start + MiB])[0] == 200
    status, body, _ = served.call("POST", f"{upload}/complete")
    assert status == 409 and "lacks part(s) 2" in body["message"]
    assert served.call("PUT", f"{upload}/parts/2", raw=data[MiB:2 * MiB])[0] == 200
    status, body, _ = served.call("POST", f"{upload}/complete")
    assert status == 400 and claimed in body["message"]  # the bytes are not the digest's
    assert _stored_keys(served) == []
    assert served.call("GET", upload)[0] == 404
    status, session, _ = served.call("POST", "/api/v1/uploads",
                                     {"digest": claimed, "size": 5, "part_size": 10})
    assert status == 400 and "part_size" in session["message"]
    assert served.call("DELETE", "/api/v1/uploads/not-an-id")[0] == 400
    assert served.call("DELETE", "/api/v1/uploads/..%2F..")[0] in (400, 404)


def test_two_server_processes_share_upload_sessions(tmp_path: Path, database_url: str) -> None:
    """Two servers over one database (SQLite, PostgreSQL) and one blob store."""
    served = Served(tmp_path / "server", ServerOptions(auth=False), database_url)
    second = Served(tmp_path / "server", ServerOptions(auth=False), database_url)
    try:
        data = os.urandom(3 * MiB)
        digest = hash_bytes(data)
        status, session, _ = served.call("POST", "/api/v1/uploads", {
            "digest": digest, "size": len(data), "part_size": MIN_PART_SIZE})
        upload = f"/api/v1/uploads/{session['id']}"
        assert served.call("PUT", f"{upload}/parts/2", raw=data[MiB:2 * MiB])[0] == 200
        assert second.call("PUT", f"{upload}/parts/1", raw=data[:MiB])[0] == 200
        status, again, _ = second.call("POST", "/api/v1/uploads", {
            "digest": digest, "size": len(data), "part_size": MIN_PART_SIZE})
        assert again["id"] == session["id"] and again["missing"] == [3]
        assert second.call("PUT", f"{upload}/parts/3", raw=data[2 * MiB:])[0] == 200
        status, body, _ = served.call("POST", f"{upload}/complete")
        assert status == 201 and body == {"digest": digest, "size": len(data)}
        assert second.call("GET", f"/api/v1/blobs/{digest}")[1] == data
    finally:
        second.close()
        served.close()


def test_stale_upload_sessions_expire(served: Served) -> None:
    uploads = Uploads(served.client.meta, served.client.blobs, ttl_s=60)
    data = os.urandom(MiB)
    session = uploads.start(hash_bytes(data + b"!"), MiB + 1, part_size=MIN_PART_SIZE)
    part = served.client.settings.home / "part"
    part.write_bytes(data)
    uploads.put_part(session.id, 1, part)
    assert any(k.startswith("uploads/") for k in _stored_keys(served))
    assert uploads.expire(now=int(time.time() * 1000) + 30_000) == 0
    assert uploads.expire(now=int(time.time() * 1000) + 120_000) == 1
    assert not any(k.startswith("uploads/") for k in _stored_keys(served))
    status, _, _ = served.call("GET", f"/api/v1/uploads/{session.id}")
    assert status == 404


@pytest.mark.parametrize("name", ["..", ".hidden", "a%2F..%2F..%2Fetc", "%2E%2E", "x" * 200])
def test_dataset_names_that_escape_are_refused(served: Served, name: str) -> None:
    status, body, _ = served.call("POST", f"/api/v1/datasets/{name}/versions",
                                  {"kind": "tree", "tree": "0" * 64})
    assert status in (400, 404, 405), body
    if status == 400:
        assert "invalid dataset name" in body["message"]
    assert served.client.list_datasets() == []


def _put(served: Served, data: bytes) -> str:
    digest = hash_bytes(data)
    assert served.call("PUT", f"/api/v1/blobs/{digest}", raw=data)[0] in (200, 201)
    return digest


def test_trees_that_escape_or_are_incomplete_are_refused(served: Served) -> None:
    content = _put(served, b"payload")
    for files in ({"..": [content, 7]}, {"a/b": [content, 7]}, {"ok": [content, -1]}):
        tree = _put(served, canonical_json({"dirs": {}, "files": files}))
        status, body, _ = served.call("POST", "/api/v1/datasets/evil/versions",
                                      {"kind": "tree", "tree": tree})
        assert status == 400 and "not a tree" in body["message"], files
    escaping_delta = _put(served, canonical_json({
        "base": _put(served, canonical_json({"dirs": {}, "files": {"f": [content, 7]}})),
        "depth": 1, "file_count": 2, "byte_count": 14,
        "changes": {"../../etc/passwd": [content, 7]}}))
    status, body, _ = served.call("POST", "/api/v1/datasets/evil/versions",
                                  {"kind": "tree", "tree": escaping_delta})
    assert status == 400 and "not a tree" in body["message"]
    absent = hash_bytes(b"never uploaded")
    incomplete = _put(served, canonical_json({"dirs": {}, "files": {"f": [absent, 14]}}))
    status, body, _ = served.call("POST", "/api/v1/datasets/evil/versions",
                                  {"kind": "tree", "tree": incomplete})
    assert status == 400 and "does not hold" in body["message"]
    assert served.call("POST", "/api/v1/datasets/evil/versions",
                       {"kind": "tree", "tree": absent})[0] == 400
    assert served.client.list_datasets() == []
    good = _put(served, canonical_json({"dirs": {}, "files": {"f": [content, 7]}}))
    status, version, _ = served.call("POST", "/api/v1/datasets/fine/versions",
                                     {"kind": "tree", "tree": good, "files": 999})
    assert status == 201 and (version["files"], version["bytes"]) == (1, 7)  # counted here
    status, body, _ = served.call("POST", "/api/v1/datasets/fine/versions",
                                  {"kind": "tree", "tree": good})  # built on no version
    assert status == 409 and "another writer" in body["message"]
    status, body, _ = served.call("POST", "/api/v1/datasets/fine/versions",
                                  {"kind": "table", "tree": good, "parent_version": 1})
    assert status == 400 and "rows" in body["message"]
