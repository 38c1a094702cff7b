"""BlobStore: content addressing, dedup, verification, atomic writes, trees, the scheme table."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import loopml.blobs
from loopml.blobs import BlobRef, BlobStore, canonical_json, hash_bytes, hash_file, open_backend
from loopml.blobs.local import LocalBackend
from loopml.blobs.memory import MemoryBackend
from loopml.errors import Conflict, CorruptData, InvalidArgument, NotFound

HELLO = hash_bytes(b"hello")


@pytest.fixture
def local(tmp_path: Path) -> BlobStore:
    return BlobStore(LocalBackend(tmp_path / "blobs"), workers=8)


def _object_path(store: BlobStore, digest: str) -> Path:
    backend = store.backend
    assert isinstance(backend, LocalBackend)
    return backend.root / digest[:2] / digest[2:]


def _all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# -- hashing ------------------------------------------------------------------------------

def test_hashes_are_blake3_hex(tmp_path: Path) -> None:
    assert hash_bytes(b"") == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(b"hello")
    large.write_bytes(b"x" * (3 << 20))
    assert hash_file(small) == HELLO
    assert hash_file(large) == hash_bytes(b"x" * (3 << 20))
    (tmp_path / "empty").touch()
    assert hash_file(tmp_path / "empty") == hash_bytes(b"")


def test_canonical_json_is_sorted_and_compact() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}}) == \
        '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    with pytest.raises(InvalidArgument, match="canonical JSON"):
        canonical_json({1: object()})


# -- single blobs -------------------------------------------------------------------------

def test_put_bytes_returns_the_digest_and_dedups(local: BlobStore, monkeypatch) -> None:
    assert local.put_bytes(b"hello") == HELLO
    assert local.has(HELLO)
    assert local.get_bytes(HELLO) == b"hello"
    writes: list[str] = []
    monkeypatch.setattr(local.backend, "put_bytes", lambda key, data: writes.append(key))
    assert local.put_bytes(b"hello") == HELLO
    assert writes == []  # already stored: not sent again
    assert list(local.backend.iter_keys()) == [f"{HELLO[:2]}/{HELLO[2:]}"]


def test_put_file_returns_a_ref_and_dedups(local: BlobStore, tmp_path: Path) -> None:
    first, second = tmp_path / "one.txt", tmp_path / "two.txt"
    first.write_bytes(b"hello")
    second.write_bytes(b"hello")
    assert local.put_file(first) == BlobRef(HELLO, 5)
    assert local.put_file(second) == BlobRef(HELLO, 5)
    assert len(list(local.backend.iter_keys())) == 1
    with pytest.raises(NotFound, match="no file at"):
        local.put_file(tmp_path / "missing.txt")


def test_file_changed_while_stored_is_a_conflict(local: BlobStore, tmp_path: Path,
                                                 monkeypatch) -> None:
    source = tmp_path / "moving.txt"
    source.write_bytes(b"first")
    real_put = LocalBackend.put_file

    def put_then_modify(self: LocalBackend, key: str, path: Path) -> None:
        real_put(self, key, path)
        path.write_bytes(b"second, longer")

    monkeypatch.setattr(LocalBackend, "put_file", put_then_modify)
    with pytest.raises(Conflict, match="changed while it was being stored"):
        local.put_file(source)
    assert list(local.backend.iter_keys()) == []


@pytest.mark.parametrize("bad", ["", "abc", HELLO.upper(), HELLO[:-1] + "g", "../" + HELLO[3:],
                                 HELLO + "0", 42])
def test_bad_digest_is_invalid_argument(local: BlobStore, bad: object, tmp_path: Path) -> None:
    for call in (local.has, local.get_bytes, local.get_json, local.delete):
        with pytest.raises(InvalidArgument, match="not a blob digest"):
            call(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="not a blob digest"):
        local.get_file(bad, tmp_path / "out")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="not a blob digest"):
        local.get_files([(HELLO, tmp_path / "a"), (bad, tmp_path / "b")])  # type: ignore[list-item]
    assert not (tmp_path / "a").exists()  # checked before any transfer


def test_missing_blob_is_not_found(local: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=HELLO[2:]):
        local.get_bytes(HELLO)
    with pytest.raises(NotFound):
        local.get_file(HELLO, tmp_path / "out" / "file")
    assert _all_files(tmp_path / "out") == []


def test_tampered_blob_raises_corrupt_data(local: BlobStore, tmp_path: Path) -> None:
    digest = local.put_bytes(b"precious")
    _object_path(local, digest).write_bytes(b"tampered")
    with pytest.raises(CorruptData, match=f"blob {digest} is corrupt: its content hashes to "
                                          f"{hash_bytes(b'tampered')}"):
        local.get_bytes(digest)
    dest = tmp_path / "out" / "precious.txt"
    with pytest.raises(CorruptData, match="delete"):
        local.get_file(digest, dest)
    assert not dest.exists()
    assert _all_files(dest.parent) == []  # the temporary download was removed too
    local.delete(digest)  # the fix the message gives
    assert local.put_bytes(b"precious") == digest
    local.get_file(digest, dest)
    assert dest.read_bytes() == b"precious"


def test_get_file_replaces_an_existing_file(local: BlobStore, tmp_path: Path) -> None:
    dest = tmp_path / "deep" / "dir" / "file.txt"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old")
    local.get_file(local.put_bytes(b"hello"), dest)
    assert dest.read_bytes() == b"hello"
    assert _all_files(dest.parent) == ["file.txt"]


def test_json_round_trip_is_canonical(local: BlobStore) -> None:
    digest = local.put_json({"b": [1, 2.5, None], "a": "x"})
    assert digest == local.put_json({"a": "x", "b": [1, 2.5, None]})
    assert local.get_json(digest) == {"a": "x", "b": [1, 2.5, None]}
    with pytest.raises(InvalidArgument, match="does not hold JSON"):
        local.get_json(local.put_bytes(b"\xff not json"))


# -- atomic writes ------------------------------------------------------------------------

def test_crash_before_rename_leaves_nothing(local: BlobStore, tmp_path: Path,
                                           monkeypatch) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(b"payload")

    def crash(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error (simulated crash)")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(loopml.errors.BackendUnavailable, match="simulated crash"):
        local.put_bytes(b"payload")
    with pytest.raises(loopml.errors.BackendUnavailable):
        local.put_file(source)
    monkeypatch.undo()
    digest = hash_bytes(b"payload")
    assert not local.has(digest)
    assert _all_files(tmp_path / "blobs") == []  # no partial object, no temporary litter


def test_interrupted_download_leaves_no_dest(local: BlobStore, tmp_path: Path,
                                             monkeypatch) -> None:
    digest = local.put_bytes(b"payload")
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        local.get_file(digest, tmp_path / "out" / "file")
    assert _all_files(tmp_path / "out") == []


def test_concurrent_local_writes_leave_no_litter(local: BlobStore, tmp_path: Path) -> None:
    sources = []
    for index in range(40):
        path = tmp_path / "src" / f"{index}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"same content")
        sources.append(path)
    refs = local.put_files(sources)
    assert {ref.digest for ref in refs} == {hash_bytes(b"same content")}
    assert len(_all_files(tmp_path / "blobs")) == 1


# -- many blobs and trees -----------------------------------------------------------------

def test_put_files_in_parallel(local: BlobStore, tmp_path: Path) -> None:
    paths = []
    for index in range(500):
        path = tmp_path / "many" / f"{index:03d}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(f"file {index}".encode())
        paths.append(path)
    refs = local.put_files(paths)
    assert [ref.digest for ref in refs] == [hash_bytes(p.read_bytes()) for p in paths]
    assert len(list(local.backend.iter_keys())) == 500
    dests = local.get_files([(ref.digest, tmp_path / "back" / p.name)
                             for ref, p in zip(refs, paths, strict=True)])
    assert [d.read_bytes() for d in dests] == [p.read_bytes() for p in paths]


def test_put_files_reports_the_first_failure(local: BlobStore, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes(b"ok")
    with pytest.raises(NotFound, match=r"missing\.txt"):
        local.put_files([good, tmp_path / "missing.txt"])


def _make_tree(root: Path) -> None:
    files = {"a.txt": b"alpha", "sub/b.bin": os.urandom(3000), "sub/deeper/c.txt": b"gamma",
             "sub/deeper/dup.txt": b"alpha", "empty.txt": b""}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_tree_round_trip(local: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "tree"
    _make_tree(source)
    manifest_digest = local.put_tree(source)
    manifest = local.read_manifest(manifest_digest)
    assert list(manifest) == sorted(_all_files(source))
    assert manifest["a.txt"] == manifest["sub/deeper/dup.txt"] == BlobRef(hash_bytes(b"alpha"), 5)
    written = local.get_tree(manifest_digest, tmp_path / "copy")
    assert written == [tmp_path / "copy" / name for name in manifest]
    for name in _all_files(source):
        assert (tmp_path / "copy" / name).read_bytes() == (source / name).read_bytes()
    assert _all_files(tmp_path / "copy") == _all_files(source)


def test_same_tree_gives_the_same_manifest(local: BlobStore, tmp_path: Path) -> None:
    _make_tree(tmp_path / "one")
    _make_tree(tmp_path / "one")  # rewrite: new mtimes, same bytes
    first = local.put_tree(tmp_path / "one")
    os.rename(tmp_path / "one", tmp_path / "two")
    assert local.put_tree(tmp_path / "two") == first
    raw = local.get_bytes(first)
    assert raw == canonical_json(local.get_json(first))
    (tmp_path / "two" / "a.txt").write_bytes(b"changed")
    assert local.put_tree(tmp_path / "two") != first


def test_empty_tree_and_missing_directory(local: BlobStore, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    digest = local.put_tree(tmp_path / "empty")
    assert local.read_manifest(digest) == {}
    assert local.get_tree(digest, tmp_path / "out") == []
    assert (tmp_path / "out").is_dir()
    with pytest.raises(NotFound, match="no directory"):
        local.put_tree(tmp_path / "absent")


@pytest.mark.parametrize("document", [
    [1, 2],
    {"nofiles": {}},
    {"files": {"../escape.txt": {"digest": HELLO, "size": 5}}},
    {"files": {"/etc/passwd": {"digest": HELLO, "size": 5}}},
    {"files": {"a/./b": {"digest": HELLO, "size": 5}}},
    {"files": {"ok.txt": {"digest": "../../x", "size": 5}}},
    {"files": {"ok.txt": {"size": 5}}},
])
def test_malformed_manifests_are_rejected(local: BlobStore, tmp_path: Path,
                                          document: object) -> None:
    digest = local.put_json(document)
    with pytest.raises(InvalidArgument, match="manifest"):
        local.get_tree(digest, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_progress_bar_on_a_terminal(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    store = BlobStore(MemoryBackend(), workers=4, progress=True)
    paths = []
    for index in range(20):
        paths.append(tmp_path / f"{index}.txt")
        paths[-1].write_text(str(index))
    assert len(store.put_files(paths)) == 20


def test_workers_must_be_positive() -> None:
    with pytest.raises(InvalidArgument, match="workers"):
        BlobStore(MemoryBackend(), workers=0)


# -- the scheme table ---------------------------------------------------------------------

def test_open_backend_schemes(tmp_path: Path) -> None:
    local = open_backend(f"file://{tmp_path}/with space")
    assert isinstance(local, LocalBackend)
    assert local.root == tmp_path / "with space"
    assert isinstance(open_backend(local.url), LocalBackend)
    assert open_backend(local.url).root == local.root  # type: ignore[attr-defined]
    plain = open_backend(str(tmp_path / "plain"))
    assert isinstance(plain, LocalBackend)
    assert plain.root == tmp_path / "plain"
    first = open_backend("memory://shared")
    assert isinstance(first, MemoryBackend)
    assert open_backend("memory://shared") is first
    assert open_backend("memory://other") is not first


def test_open_backend_s3_is_lazy_and_parses_the_url() -> None:
    from loopml.blobs.s3 import S3Backend

    backend = open_backend("s3://bucket/some/prefix/", s3_endpoint_url="http://127.0.0.1:1")
    assert isinstance(backend, S3Backend)
    assert (backend.bucket, backend.prefix, backend.url) == (
        "bucket", "some/prefix", "s3://bucket/some/prefix")
    with pytest.raises(InvalidArgument, match="names no bucket"):
        open_backend("s3:///prefix")


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgument, match=r"'gs'.*file://, memory://, s3://"):
        open_backend("gs://bucket/prefix")
    with pytest.raises(InvalidArgument, match="empty"):
        open_backend("")


def test_an_s3_store_needs_no_aws_library_with_plain_credentials() -> None:
    import subprocess

    code = ("import sys; from loopml.blobs import open_backend; "
            "backend = open_backend('s3://bucket/prefix', s3_endpoint_url='http://127.0.0.1:9'); "
            "backend._client._find_credentials(); "
            "print([m for m in ('s3fs', 'botocore', 'boto3', 'urllib3') if m in sys.modules])")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env=env)
    assert result.stdout.strip() == "[]"


def test_importing_blobs_stays_light() -> None:
    import subprocess

    code = ("import sys, loopml.blobs; heavy = [m for m in ('s3fs', 'botocore', 'rich', "
            "'fsspec') if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_public_names() -> None:
    assert sorted(loopml.blobs.__all__) == ["BlobBackend", "BlobRef", "BlobStore",
                                            "canonical_json", "hash_bytes", "hash_file",
                                            "open_backend"]
