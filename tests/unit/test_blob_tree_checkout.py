"""Checkout: materialise a tree, rewriting only the files that differ, atomically."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from loopml.blobs import BlobStore
from loopml.blobs import checkout as checkout_module
from loopml.blobs.checkout import CheckoutStats, checkout
from loopml.blobs.digest import key_for
from loopml.blobs.local import LocalBackend
from loopml.blobs.memory import MemoryBackend
from loopml.blobs.statcache import StatCache
from loopml.blobs.tree import build_tree, iter_files
from loopml.errors import Conflict, CorruptData, InvalidArgument, NotFound


def make_tree(root: Path, dirs: int, files: int) -> dict[str, bytes]:
    rnd = random.Random(0)
    made = {"README.md": b"top level file", "d0/deep/er/leaf.txt": b"nested"}
    made.update((f"d{d}/f{i:03d}.bin", rnd.randbytes(rnd.randrange(1, 3000)))
                for d in range(dirs) for i in range(files))
    for rel, data in made.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return made


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(LocalBackend(tmp_path / "blobs"), workers=4)
    return BlobStore(MemoryBackend(), workers=4)


@pytest.fixture(params=[True, False], ids=["stat-cache", "no-cache"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> StatCache | None:
    return StatCache(tmp_path / "cache" / "stat.sqlite") if request.param else None


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file()}


def inodes(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def two_versions(store: BlobStore, root: Path) -> tuple[str, str, dict[str, bytes],
                                                         dict[str, bytes]]:
    old = make_tree(root, dirs=3, files=20)
    v1 = build_tree(store, root).digest
    (root / "d1" / "f002.bin").write_bytes(b"changed in v2")
    (root / "d2" / "f010.bin").unlink()
    (root / "d2" / "added.bin").write_bytes(b"added in v2")
    v2 = build_tree(store, root, base=v1).digest
    return v1, v2, old, files_of(root)


def test_checkout_into_an_empty_directory(store: BlobStore, cache: StatCache | None,
                                          tmp_path: Path) -> None:
    _v1, v2, _old, new = two_versions(store, tmp_path / "src")
    stats = checkout(store, v2, tmp_path / "out", stat_cache=cache)
    assert stats == CheckoutStats(written=len(new), unchanged=0, removed=0)
    assert files_of(tmp_path / "out") == new


def test_only_differing_files_are_rewritten(store: BlobStore, cache: StatCache | None,
                                            tmp_path: Path) -> None:
    v1, v2, old, _new = two_versions(store, tmp_path / "src")
    out = tmp_path / "out"
    checkout(store, v2, out, stat_cache=cache)
    _age(out)
    before = inodes(out)
    stats = checkout(store, v1, out, stat_cache=cache)
    assert stats == CheckoutStats(written=2, unchanged=len(old) - 2, removed=0)
    assert files_of(out) == {**old, "d2/added.bin": b"added in v2"}  # extra file kept
    after = inodes(out)
    rewritten = {p for p in before if p in after and before[p] != after[p]}
    assert rewritten == {"d1/f002.bin"}
    assert checkout(store, v1, out, stat_cache=cache).written == 0


def test_a_locally_edited_file_is_restored(store: BlobStore, cache: StatCache | None,
                                           tmp_path: Path) -> None:
    _v1, v2, _old, new = two_versions(store, tmp_path / "src")
    out = tmp_path / "out"
    checkout(store, v2, out, stat_cache=cache)
    (out / "d0" / "f001.bin").write_bytes(b"local edit")
    (out / "d0" / "f002.bin").write_bytes(b"x" * len(new["d0/f002.bin"]))  # same size
    stats = checkout(store, v2, out, stat_cache=cache)
    assert stats.written == 2 and files_of(out) == new


def test_remove_extra_deletes_files_and_empty_directories(store: BlobStore,
                                                          cache: StatCache | None,
                                                          tmp_path: Path) -> None:
    v1, v2, old, _new = two_versions(store, tmp_path / "src")
    out = tmp_path / "out"
    checkout(store, v2, out, stat_cache=cache)
    (out / "stray" / "deep").mkdir(parents=True)
    (out / "stray" / "deep" / "junk.txt").write_bytes(b"junk")
    stats = checkout(store, v1, out, stat_cache=cache, remove_extra=True)
    assert stats.removed == 2  # d2/added.bin and the stray file
    assert files_of(out) == old
    assert not (out / "stray").exists()


def test_prefix_checks_out_a_directory_or_a_file(store: BlobStore, tmp_path: Path) -> None:
    _v1, v2, _old, new = two_versions(store, tmp_path / "src")
    checkout(store, v2, tmp_path / "d0", prefix="d0/")
    assert files_of(tmp_path / "d0") == {p[3:]: d for p, d in new.items() if p.startswith("d0/")}
    checkout(store, v2, tmp_path / "one", prefix="d0/deep/er/leaf.txt")
    assert files_of(tmp_path / "one") == {"leaf.txt": b"nested"}
    with pytest.raises(NotFound, match="no file or directory 'nope'"):
        checkout(store, v2, tmp_path / "none", prefix="nope")


def test_things_in_the_way_are_a_conflict_unless_removed(store: BlobStore,
                                                         tmp_path: Path) -> None:
    _v1, v2, _old, new = two_versions(store, tmp_path / "src")
    out = tmp_path / "out"
    (out / "README.md").mkdir(parents=True)  # a directory where the tree has a file
    (out / "README.md" / "inside.txt").write_bytes(b"in the way")
    (out / "d1").write_bytes(b"a file where the tree has a directory")
    with pytest.raises(Conflict, match="in the way"):
        checkout(store, v2, out)
    checkout(store, v2, out, remove_extra=True)
    assert files_of(out) == new
    (tmp_path / "plain").write_bytes(b"file")
    with pytest.raises(InvalidArgument, match="is a file"):
        checkout(store, v2, tmp_path / "plain")


def test_a_corrupt_blob_leaves_the_file_untouched(tmp_path: Path) -> None:
    store = BlobStore(MemoryBackend(), workers=2)
    v1, v2, _old, _new = two_versions(store, tmp_path / "src")
    out = tmp_path / "out"
    checkout(store, v2, out)
    entry = dict(iter_files(store, v1))["d1/f002.bin"]
    assert entry.pack is not None
    pack = store.backend.get_bytes(key_for(entry.pack))
    damaged = pack[:entry.offset] + b"\xff" * entry.size + pack[entry.offset + entry.size:]
    store.backend.put_bytes(key_for(entry.pack), damaged)
    with pytest.raises(CorruptData):
        checkout(store, v1, out)
    assert (out / "d1" / "f002.bin").read_bytes() == b"changed in v2"
    assert not [p for p in out.rglob("*") if "loopml-tmp" in p.name]


def test_the_known_tree_of_a_directory_is_used_and_verified(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(LocalBackend(tmp_path / "blobs"), workers=2)
    cache = StatCache(tmp_path / "stat.sqlite")
    v1, v2, _old, new = two_versions(store, tmp_path / "src")
    out = tmp_path / "out"
    checkout(store, v2, out, stat_cache=cache)
    monkeypatch.setattr(checkout_module, "_plan_by_files", _fail)
    stats = checkout(store, v1, out, stat_cache=cache, remove_extra=True)  # from the diff
    assert (stats.written, stats.removed) == (2, 1)
    assert checkout(store, v2, out, stat_cache=cache).written == 2
    (out / "d0" / "f000.bin").write_bytes(b"edited")  # the directory no longer holds v2
    monkeypatch.undo()
    stats = checkout(store, v2, out, stat_cache=cache, remove_extra=True)
    assert (stats.written, stats.removed) == (1, 1)
    assert files_of(out) == new


def test_checkout_then_add_gives_the_same_tree(store: BlobStore, tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "stat.sqlite")
    v1, _v2, _old, _new = two_versions(store, tmp_path / "src")
    checkout(store, v1, tmp_path / "out", stat_cache=cache)
    assert build_tree(store, tmp_path / "out", stat_cache=cache).digest == v1


def _fail(*args: object, **kwargs: object) -> None:
    raise AssertionError("the directory should have been recognised as a known tree")


def _age(root: Path) -> None:
    then = time.time_ns() - 10_000_000_000
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(then, then))


def test_the_index_restores_local_changes_outside_the_diff(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(LocalBackend(tmp_path / "blobs"), workers=2)
    cache = StatCache(tmp_path / "stat.sqlite")
    v1, v2, old, _new = two_versions(store, tmp_path / "src")
    out = tmp_path / "out"
    checkout(store, v2, out, stat_cache=cache)
    (out / "d0" / "f003.bin").write_bytes(b"local edit")  # in both trees, unchanged between
    (out / "d0" / "f004.bin").unlink()
    (out / "d0" / "f005.bin").write_bytes(old["d0/f005.bin"])  # rewritten with its content
    (out / "untracked.txt").write_bytes(b"mine")
    monkeypatch.setattr(checkout_module, "_plan_by_files", _fail)
    stats = checkout(store, v1, out, stat_cache=cache)
    assert stats.written == 4  # the two the trees differ by, the edit and the deletion
    assert files_of(out) == {**old, "d2/added.bin": b"added in v2", "untracked.txt": b"mine"}
    stats = checkout(store, v1, out, stat_cache=cache, remove_extra=True)
    assert (stats.written, stats.removed) == (0, 2)
    assert files_of(out) == old
    assert build_tree(store, out, stat_cache=cache, base=v1).digest == v1
