"""Push and pull of trees between stores, over every backend as the remote (local, memory,
S3 on a moto server): only missing objects copied, found without a lookup per file,
children before parents, verified, resumable."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from loopml.blobs import BlobStore
from loopml.blobs import chunking as chunking_module
from loopml.blobs.checkout import checkout
from loopml.blobs.digest import key_for
from loopml.blobs.local import LocalBackend
from loopml.blobs.memory import MemoryBackend
from loopml.blobs.statcache import StatCache
from loopml.blobs.transfer import TransferStats, pull, push
from loopml.blobs.tree import build_tree, iter_files, reachable_objects
from loopml.errors import CorruptData


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(LocalBackend(tmp_path / "remote"), workers=4)
    if request.param == "memory":
        return BlobStore(MemoryBackend(), workers=4)
    from loopml.blobs.s3 import S3Backend

    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return BlobStore(S3Backend(bucket, "blobs", endpoint_url=endpoint), workers=8)


@pytest.fixture
def local(tmp_path: Path) -> BlobStore:
    return BlobStore(LocalBackend(tmp_path / "local"), workers=4)


class Spy:
    """Counts lookups and writes made on a store's backend."""

    def __init__(self, store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lookups: list[str] = []
        self.writes: list[str] = []
        backend = store.backend
        real_exists, real_put = backend.exists, backend.put_bytes
        monkeypatch.setattr(backend, "exists",
                            lambda key: (self.lookups.append(key), real_exists(key))[1])
        monkeypatch.setattr(backend, "put_bytes",
                            lambda key, data: (self.writes.append(key), real_put(key, data))[1])


def make_data(root: Path, dirs: int = 4, files: int = 50) -> None:
    rnd = random.Random(7)
    for d in range(dirs):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(files):
            (root / f"d{d}" / f"f{i:03d}.bin").write_bytes(rnd.randbytes(rnd.randrange(10, 4000)))
    then = time.time_ns() - 10_000_000_000  # out of the stat cache's racy window
    for path in root.rglob("*.bin"):
        os.utime(path, ns=(then, then))


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


def keys(store: BlobStore) -> set[str]:
    return set(store.backend.iter_keys())


def test_push_then_pull_round_trips_a_tree(local: BlobStore, remote: BlobStore,
                                           tmp_path: Path) -> None:
    make_data(tmp_path / "data")
    tree = build_tree(local, tmp_path / "data").digest
    stats = push(local, remote, tree)
    assert stats.objects == len(keys(local)) and stats.skipped == 0
    assert keys(remote) == keys(local)
    assert push(local, remote, tree) == TransferStats(0, 0, 1)  # the root is there: stop
    fresh = BlobStore(MemoryBackend(), workers=4)
    assert pull(fresh, remote, tree).objects == len(keys(local))
    checkout(fresh, tree, tmp_path / "out")
    assert files_of(tmp_path / "out") == files_of(tmp_path / "data")
    checkout(remote, tree, tmp_path / "direct")  # straight from the remote store
    assert files_of(tmp_path / "direct") == files_of(tmp_path / "data")


def test_incremental_push_copies_only_what_changed(local: BlobStore, remote: BlobStore,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    make_data(tmp_path / "data", dirs=4, files=200)
    cache = StatCache(tmp_path / "stat.sqlite")
    v1 = build_tree(local, tmp_path / "data", stat_cache=cache).digest
    push(local, remote, v1)
    for d in range(4):  # 1% of the files, spread over every directory
        (tmp_path / "data" / f"d{d}" / "f100.bin").write_bytes(b"new content %d" % d)
        (tmp_path / "data" / f"d{d}" / "f150.bin").write_bytes(b"more new content %d" % d)
    v2 = build_tree(local, tmp_path / "data", base=v1, stat_cache=cache).digest
    new_objects = keys(local) - keys(remote)
    assert len(new_objects) == 2  # one pack of the changed files, and the delta
    spy = Spy(remote, monkeypatch)
    stats = push(local, remote, v2)
    assert stats.objects == 2 and stats.skipped == 1
    assert set(spy.writes) == new_objects
    assert spy.writes[-1] == key_for(v2)  # the tree object last
    assert len(spy.lookups) <= 3  # the delta, its base, the new pack: not 800 files


def test_push_of_a_full_tree_walks_only_changed_directories(
        local: BlobStore, remote: BlobStore, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    make_data(tmp_path / "data", dirs=4, files=100)
    cache = StatCache(tmp_path / "stat.sqlite")
    v1 = build_tree(local, tmp_path / "data", stat_cache=cache).digest
    push(local, remote, v1)
    (tmp_path / "data" / "d2" / "f001.bin").write_bytes(b"edited")
    v2 = build_tree(local, tmp_path / "data", stat_cache=cache).digest  # no base: full
    spy = Spy(remote, monkeypatch)
    stats = push(local, remote, v2)
    assert stats.objects == 3  # the new pack, d2's listing, the root listing
    assert len(spy.lookups) <= 1 + 4 + 2  # root, 4 sub-directories, d2's (two) packs
    assert spy.writes[-1] == key_for(v2)


def test_chunked_files_push_only_new_chunks(local: BlobStore, remote: BlobStore,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunking_module, "CHUNK_THRESHOLD", 1 << 20)
    (tmp_path / "data").mkdir()
    big = tmp_path / "data" / "big.bin"
    big.write_bytes(random.Random(1).randbytes(3 << 20))
    v1 = build_tree(local, big).digest
    push(local, remote, v1)
    with big.open("ab") as stream:
        stream.write(random.Random(2).randbytes(1 << 20))
    v2 = build_tree(local, big, base=v1).digest
    stats = push(local, remote, v2)
    assert stats.bytes < 1.5 * (1 << 20)
    assert keys(remote) == keys(local)
    fresh = BlobStore(MemoryBackend(), workers=2)
    pull(fresh, remote, v2)
    checkout(fresh, v2, tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == big.read_bytes()


def test_an_interrupted_push_leaves_no_tree_and_resumes(local: BlobStore, remote: BlobStore,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    make_data(tmp_path / "data")
    tree = build_tree(local, tmp_path / "data").digest
    real_put = remote.backend.put_bytes
    calls: list[str] = []

    def dies(key: str, data: bytes) -> None:
        calls.append(key)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if killed
        real_put(key, data)

    monkeypatch.setattr(remote.backend, "put_bytes", dies)
    with pytest.raises(KeyboardInterrupt):
        push(local, remote, tree)
    monkeypatch.undo()
    assert not remote.has(tree)
    present = {key.replace("/", "") for key in keys(remote)}
    listings = {d for d in present if local.get_bytes(d)[:1] == b"{"}
    for listing in listings:  # whatever listing arrived, all it names arrived before it
        assert reachable_objects(local, [listing]) <= present
    push(local, remote, tree)
    assert keys(remote) == keys(local)


def test_damage_in_the_source_is_not_propagated(local: BlobStore, remote: BlobStore,
                                                tmp_path: Path) -> None:
    make_data(tmp_path / "data", dirs=1, files=5)
    tree = build_tree(local, tmp_path / "data").digest
    pack = next(iter(iter_files(local, tree)))[1].pack
    assert pack is not None
    path = local.backend.root / key_for(pack)  # type: ignore[attr-defined]
    path.write_bytes(b"\0" + path.read_bytes()[1:])
    with pytest.raises(CorruptData, match=pack):
        push(local, remote, tree)
    assert not remote.has(tree) and not remote.has(pack)
