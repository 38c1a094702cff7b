"""Hashed trees: build, read, deltas, diff, tree_from_entries, reachability, kill-safety."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from loopml.blobs import BlobStore, hash_bytes
from loopml.blobs import build as build_module
from loopml.blobs import chunking as chunking_module
from loopml.blobs import listing as listing_module
from loopml.blobs.digest import key_for
from loopml.blobs.entry import FileEntry
from loopml.blobs.listing import MAX_DELTA_DEPTH, resolve_tree
from loopml.blobs.local import LocalBackend
from loopml.blobs.memory import MemoryBackend
from loopml.blobs.statcache import StatCache
from loopml.blobs.tree import (
    build_tree,
    diff_trees,
    iter_files,
    reachable_objects,
    tree_from_entries,
    tree_info,
)
from loopml.errors import InvalidArgument, NotFound


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(LocalBackend(tmp_path / "blobs"), workers=4)
    return BlobStore(MemoryBackend(), workers=4)


def make_tree(root: Path, dirs: int = 3, files: int = 10, seed: int = 0) -> dict[str, bytes]:
    """``dirs`` sub-directories of ``files`` small files, plus a nested one and a top file."""
    rnd = random.Random(seed)
    made = {"README.md": b"top level file"}
    for d in range(dirs):
        for i in range(files):
            made[f"d{d}/f{i:03d}.bin"] = rnd.randbytes(rnd.randrange(1, 3000))
    made["d0/deep/er/leaf.txt"] = b"nested"
    for rel, data in made.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return made


def contents(store: BlobStore, tree: str, prefix: str = "") -> dict[str, bytes]:
    from loopml.blobs.chunking import open_entry

    result = {}
    for path, entry in iter_files(store, tree, prefix):
        with open_entry(store, entry) as stream:
            result[path] = stream.read()
    return result


def is_delta(store: BlobStore, digest: str) -> bool:
    return "base" in store.get_json(digest)


def test_build_stores_every_file_and_reads_back(store: BlobStore, tmp_path: Path) -> None:
    made = make_tree(tmp_path / "data")
    info = build_tree(store, tmp_path / "data")
    assert (info.files, info.bytes) == (len(made), sum(len(d) for d in made.values()))
    assert (info.new_files, info.new_bytes) == (info.files, info.bytes)
    assert contents(store, info.digest) == made
    assert [path for path, _ in iter_files(store, info.digest)] == sorted(made)
    assert tree_info(store, info.digest).files == len(made)
    assert all(entry.pack is not None for _, entry in iter_files(store, info.digest))
    again = build_tree(store, tmp_path / "data")  # no stat cache: read again, nothing stored
    assert again.digest == info.digest and (again.new_files, again.new_bytes) == (0, 0)


def test_small_files_are_packed_not_one_object_each(tmp_path: Path) -> None:
    store = BlobStore(MemoryBackend(), workers=2)
    make_tree(tmp_path / "data", dirs=4, files=50)
    build_tree(store, tmp_path / "data")
    assert len(list(store.backend.iter_keys())) < 15  # 201 files: a pack, and listings


def test_large_files_are_chunked_and_medium_ones_whole(store: BlobStore, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunking_module, "CHUNK_THRESHOLD", 2 << 20)
    (tmp_path / "data").mkdir()
    big = random.Random(1).randbytes(3 << 20)
    medium = random.Random(2).randbytes(1 << 20)
    (tmp_path / "data" / "big.bin").write_bytes(big)
    (tmp_path / "data" / "medium.bin").write_bytes(medium)
    info = build_tree(store, tmp_path / "data")
    entries = dict(iter_files(store, info.digest))
    assert entries["big.bin"].chunks is not None
    assert entries["medium.bin"] == FileEntry(hash_bytes(medium), len(medium))
    assert contents(store, info.digest) == {"big.bin": big, "medium.bin": medium}


def test_a_single_file_is_a_tree_of_one(store: BlobStore, tmp_path: Path) -> None:
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    info = build_tree(store, tmp_path / "table.csv")
    assert contents(store, info.digest) == {"table.csv": b"a,b\n1,2\n"}


def test_empty_directory_is_an_empty_tree(store: BlobStore, tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    info = build_tree(store, tmp_path / "empty")
    assert (info.files, info.bytes) == (0, 0)
    assert list(iter_files(store, info.digest)) == []


def test_missing_root_is_not_found(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no file or directory"):
        build_tree(store, tmp_path / "nope")


def test_iter_files_reads_only_the_listings_under_a_prefix(
        store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_tree(tmp_path / "data")
    info = build_tree(store, tmp_path / "data")
    loaded: list[str] = []
    real = listing_module.load_listing

    def spy(store_: BlobStore, digest: str) -> listing_module.Listing:
        loaded.append(digest)
        return real(store_, digest)

    monkeypatch.setattr(listing_module, "load_listing", spy)
    listing_module.clear_cache()
    assert contents(store, info.digest, "d1") == {p: d for p, d in made.items()
                                                  if p.startswith("d1/")}
    assert len(loaded) == 2  # the root and d1, not d0, d0/deep, d2, ...
    assert [p for p, _ in iter_files(store, info.digest, "d0/deep/er/leaf.txt")] == \
        ["d0/deep/er/leaf.txt"]
    assert list(iter_files(store, info.digest, "d9")) == []
    assert list(iter_files(store, info.digest, "d0/f000.bin/x")) == []
    with pytest.raises(InvalidArgument):
        list(iter_files(store, info.digest, "../etc"))


def test_a_version_close_to_its_base_is_a_small_delta(store: BlobStore, tmp_path: Path) -> None:
    made = make_tree(tmp_path / "data", dirs=4, files=25)
    v1 = build_tree(store, tmp_path / "data")
    assert not is_delta(store, v1.digest)
    (tmp_path / "data" / "d1" / "f003.bin").write_bytes(b"changed")
    (tmp_path / "data" / "d2" / "f004.bin").unlink()
    (tmp_path / "data" / "d3" / "new.bin").write_bytes(b"added")
    v2 = build_tree(store, tmp_path / "data", base=v1.digest)
    assert is_delta(store, v2.digest)
    assert len(store.backend.get_bytes(key_for(v2.digest))) < 1000
    expected = {**made, "d1/f003.bin": b"changed", "d3/new.bin": b"added"}
    del expected["d2/f004.bin"]
    assert contents(store, v2.digest) == expected
    assert contents(store, v2.digest, "d3") == {p: d for p, d in expected.items()
                                                if p.startswith("d3/")}
    assert (v2.files, v2.bytes) == (len(expected), sum(len(d) for d in expected.values()))
    assert v2.new_files == 2  # the changed and the added file
    assert build_tree(store, tmp_path / "data", base=v2.digest).digest == v2.digest
    changes = diff_trees(store, v1.digest, v2.digest)
    assert list(changes.added) == ["d3/new.bin"]
    assert list(changes.removed) == ["d2/f004.bin"]
    assert list(changes.modified) == ["d1/f003.bin"]
    reverse = diff_trees(store, v2.digest, v1.digest)
    assert (list(reverse.added), list(reverse.removed)) == (["d2/f004.bin"], ["d3/new.bin"])


def test_unchanged_content_as_full_and_delta_trees_has_no_diff(store: BlobStore,
                                                                tmp_path: Path) -> None:
    make_tree(tmp_path / "data", dirs=4, files=25)
    v1 = build_tree(store, tmp_path / "data")
    (tmp_path / "data" / "d1" / "f003.bin").write_bytes(b"changed")
    delta = build_tree(store, tmp_path / "data", base=v1.digest)
    full = build_tree(store, tmp_path / "data")
    assert delta.digest != full.digest and is_delta(store, delta.digest)
    assert not diff_trees(store, delta.digest, full.digest).changed
    assert diff_trees(store, full.digest, v1.digest).changed


def test_delta_chains_are_cut(store: BlobStore, tmp_path: Path) -> None:
    make_tree(tmp_path / "data", dirs=2, files=200)
    tree = build_tree(store, tmp_path / "data").digest
    depths = []
    for version in range(MAX_DELTA_DEPTH + 3):
        (tmp_path / "data" / "d0" / "f000.bin").write_bytes(f"version {version}".encode())
        tree = build_tree(store, tmp_path / "data", base=tree).digest
        depths.append(resolve_tree(store, tree).depth)
    assert max(depths) == MAX_DELTA_DEPTH and 0 in depths
    assert contents(store, tree, "d0/f000.bin") == {
        "d0/f000.bin": f"version {MAX_DELTA_DEPTH + 2}".encode()}


def test_big_changes_are_written_in_full(store: BlobStore, tmp_path: Path) -> None:
    make_tree(tmp_path / "data", dirs=2, files=10)
    v1 = build_tree(store, tmp_path / "data")
    for path in (tmp_path / "data" / "d0").glob("*.bin"):
        path.write_bytes(b"all new " + path.name.encode())
    v2 = build_tree(store, tmp_path / "data", base=v1.digest)
    assert not is_delta(store, v2.digest)


def test_diff_skips_equal_subtrees(store: BlobStore, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path / "data")
    _age(tmp_path / "data")
    cache = StatCache(tmp_path / "stat.sqlite")  # unchanged files keep their entries
    v1 = build_tree(store, tmp_path / "data", stat_cache=cache)
    (tmp_path / "data" / "d2" / "f001.bin").write_bytes(b"edited")
    v2 = build_tree(store, tmp_path / "data", stat_cache=cache)  # full, not a delta
    unchanged = {digest for digest, _, _ in
                 (listing_module.load_listing(store, v1.digest)[0][name]
                  for name in ("d0", "d1"))}
    loaded: list[str] = []
    real = listing_module.load_listing

    def spy(store_: BlobStore, digest: str) -> listing_module.Listing:
        loaded.append(digest)
        return real(store_, digest)

    import loopml.blobs.diff as diff_module

    monkeypatch.setattr(diff_module, "load_listing", spy)
    changes = diff_trees(store, v1.digest, v2.digest)
    assert list(changes.modified) == ["d2/f001.bin"] and not changes.added
    assert not unchanged & set(loaded)


def test_tree_from_entries_appends_without_reading_the_parent(store: BlobStore,
                                                              tmp_path: Path) -> None:
    made = make_tree(tmp_path / "data")
    parent = build_tree(store, tmp_path / "data")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "extra.txt").write_bytes(b"appended")
    added = dict(iter_files(store, build_tree(store, tmp_path / "more").digest))
    entries = {**dict(iter_files(store, parent.digest)), **{f"new/{p}": e
                                                            for p, e in added.items()}}
    child = tree_from_entries(store, entries, base=parent.digest)
    assert contents(store, child) == {**made, "new/extra.txt": b"appended"}
    assert is_delta(store, child)
    assert tree_from_entries(store, dict(iter_files(store, parent.digest)),
                             base=parent.digest) == parent.digest
    full = tree_from_entries(store, entries)
    assert not is_delta(store, full) and not diff_trees(store, full, child).changed


def test_tree_from_entries_checks_paths_and_content(store: BlobStore) -> None:
    stored = FileEntry(store.put_bytes(b"x"), 1)
    missing = FileEntry(hash_bytes(b"never stored"), 12)
    with pytest.raises(NotFound, match="gone.txt"):
        tree_from_entries(store, {"ok.txt": stored, "gone.txt": missing})
    for bad in ("/abs", "a/../b", "a//b", ""):
        with pytest.raises(InvalidArgument, match="not a path inside a tree"):
            tree_from_entries(store, {bad: stored})
    with pytest.raises(InvalidArgument, match="both a file and a directory"):
        tree_from_entries(store, {"a": stored, "a/b": stored})
    with pytest.raises(InvalidArgument, match="both a file and a directory"):
        tree_from_entries(store, {"a/b": stored, "a": stored})


def test_listings_with_unsafe_names_are_rejected(store: BlobStore) -> None:
    entry = [store.put_bytes(b"x"), 1]
    for name in ("..", "a/b", ".", ""):
        digest = store.put_json({"dirs": {}, "files": {name: entry}})
        with pytest.raises(InvalidArgument, match="not a tree listing"):
            list(iter_files(store, digest))
    digest = store.put_json({"something": "else"})
    with pytest.raises(InvalidArgument, match="not a tree listing"):
        list(iter_files(store, digest))
    good = store.put_json({"dirs": {}, "files": {"a": entry, "b": entry}})
    bad = store.put_json({"dirs": {}, "files": {"a": entry, "b": ["not", "an", "entry"]}})
    with pytest.raises(InvalidArgument, match="not a tree listing"):
        list(iter_files(store, bad))
    with pytest.raises(InvalidArgument, match="not a tree listing"):  # decoded when read
        diff_trees(store, good, bad)


def test_reachable_objects_are_every_object_of_the_trees(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunking_module, "CHUNK_THRESHOLD", 2 << 20)
    store = BlobStore(MemoryBackend(), workers=2)
    make_tree(tmp_path / "data")
    (tmp_path / "data" / "big.bin").write_bytes(random.Random(3).randbytes(3 << 20))
    v1 = build_tree(store, tmp_path / "data")
    (tmp_path / "data" / "d1" / "f000.bin").write_bytes(b"v2")
    v2 = build_tree(store, tmp_path / "data", base=v1.digest)
    every = {key.replace("/", "") for key in store.backend.iter_keys()}
    assert reachable_objects(store, [v2.digest]) == every
    assert v2.digest not in reachable_objects(store, [v1.digest])


def test_stat_cache_hits_are_not_read(store: BlobStore, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path / "data", dirs=3, files=30)
    _age(tmp_path / "data")
    cache = StatCache(tmp_path / "cache" / "stat.sqlite")
    v1 = build_tree(store, tmp_path / "data", stat_cache=cache)
    read: list[str] = []
    real = build_module._read_small
    monkeypatch.setattr(build_module, "_read_small", lambda p: (read.append(p), real(p))[1])
    assert build_tree(store, tmp_path / "data", stat_cache=cache, base=v1.digest) == \
        build_module.TreeInfo(v1.digest, v1.files, v1.bytes)
    assert read == []
    edited = tmp_path / "data" / "d1" / "f007.bin"
    edited.write_bytes(b"edited")
    v2 = build_tree(store, tmp_path / "data", stat_cache=cache, base=v1.digest)
    assert read == [str(edited)] and v2.new_files == 1
    cache.clear()
    build_tree(store, tmp_path / "data", stat_cache=cache, base=v2.digest)
    assert len(read) == 1 + v1.files


def test_cached_entries_are_trusted_only_if_stored(tmp_path: Path) -> None:
    make_tree(tmp_path / "data")
    _age(tmp_path / "data")
    cache = StatCache(tmp_path / "stat.sqlite")
    first = BlobStore(MemoryBackend(), workers=2)
    info = build_tree(first, tmp_path / "data", stat_cache=cache)
    other = BlobStore(MemoryBackend(), workers=2)  # same cache, another store
    again = build_tree(other, tmp_path / "data", stat_cache=cache)
    assert again.digest == info.digest and again.new_files == info.files
    assert set(other.backend.iter_keys()) == set(first.backend.iter_keys())


def test_recently_modified_files_are_not_trusted_by_fingerprint(store: BlobStore,
                                                                tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    target = data / "racy.txt"
    target.write_bytes(b"one")
    cache = StatCache(tmp_path / "stat.sqlite")
    v1 = build_tree(store, data, stat_cache=cache)
    stat = target.stat()
    target.write_bytes(b"two")  # same size, and maybe the same timestamp tick
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    v2 = build_tree(store, data, stat_cache=cache, base=v1.digest)
    assert contents(store, v2.digest) == {"racy.txt": b"two"}


def test_an_interrupted_build_leaves_no_tree_and_its_packs_are_reused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(LocalBackend(tmp_path / "blobs"), workers=1)
    make_tree(tmp_path / "data", dirs=4, files=40)
    _age(tmp_path / "data")
    cache = StatCache(tmp_path / "stat.sqlite")
    monkeypatch.setattr(build_module, "PACK_TARGET", 20_000)
    real = build_module.write_pack
    calls = []

    def dies_on_third(store_: BlobStore, items: list[bytes]) -> tuple[str, list[int], bool]:
        calls.append(len(items))
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if killed
        return real(store_, items)

    monkeypatch.setattr(build_module, "write_pack", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_tree(store, tmp_path / "data", stat_cache=cache)
    keys = list(store.backend.iter_keys())
    assert len(keys) == 2  # two packs, no listing
    assert all(not store.get_bytes(key.replace("/", "")).startswith(b'{"dirs"') for key in keys)
    read: list[str] = []
    real_read = build_module._read_small
    monkeypatch.setattr(build_module, "_read_small", lambda p: (read.append(p), real_read(p))[1])
    monkeypatch.setattr(build_module, "write_pack", real)
    info = build_tree(store, tmp_path / "data", stat_cache=cache)
    assert info.files == 4 * 40 + 2 and len(read) < info.files - 20  # packed files not re-read
    assert contents(store, info.digest) == {
        p.relative_to(tmp_path / "data").as_posix(): p.read_bytes()
        for p in (tmp_path / "data").rglob("*") if p.is_file()}


def _age(root: Path) -> None:
    """Date every file 10 s back, out of the stat cache's racy window."""
    then = time.time_ns() - 10_000_000_000
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(then, then))


def test_the_index_looks_only_at_what_changed(store: BlobStore, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    made = make_tree(data, dirs=4, files=30)
    _age(data)
    cache = StatCache(tmp_path / "stat.sqlite")
    v1 = build_tree(store, data, stat_cache=cache)
    (data / "d1" / "f003.bin").write_bytes(b"edited")
    (data / "d2" / "f004.bin").write_bytes(made["d2/f004.bin"])  # rewritten, same bytes
    (data / "d3" / "f005.bin").unlink()
    (data / "d9").mkdir()
    (data / "d9" / "new.bin").write_bytes(b"new")
    (data / "d0" / "copy.bin").write_bytes(made["d0/f001.bin"])  # content the base holds
    read: list[str] = []
    real = build_module._read_small
    monkeypatch.setattr(build_module, "_read_small", lambda p: (read.append(p), real(p))[1])
    monkeypatch.setattr(build_module, "iter_files", _never)  # the base is not read
    monkeypatch.setattr(StatCache, "lookup", _never)  # nor looked up file by file
    v2 = build_tree(store, data, stat_cache=cache, base=v1.digest)
    assert sorted(os.path.relpath(p, data) for p in read) == [
        "d0/copy.bin", "d1/f003.bin", "d2/f004.bin", "d9/new.bin"]
    assert v2.new_files == 2 and is_delta(store, v2.digest)
    changes = diff_trees(store, v1.digest, v2.digest)
    assert (sorted(changes.added), sorted(changes.modified), sorted(changes.removed)) == (
        ["d0/copy.bin", "d9/new.bin"], ["d1/f003.bin"], ["d3/f005.bin"])
    assert contents(store, v2.digest) == files_of(data)
    monkeypatch.undo()
    cache.clear()  # the same tree, file by file
    assert not diff_trees(store, v2.digest,
                          build_tree(store, data, stat_cache=cache, base=v1.digest).digest
                          ).changed


def test_the_index_of_another_tree_is_not_used_as_a_base(store: BlobStore,
                                                         tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_tree(data)
    _age(data)
    cache = StatCache(tmp_path / "stat.sqlite")
    build_tree(store, data, stat_cache=cache)
    make_tree(tmp_path / "other", seed=5)
    other = build_tree(store, tmp_path / "other")
    (data / "d0" / "f000.bin").write_bytes(b"edited")
    v2 = build_tree(store, data, stat_cache=cache, base=other.digest)
    assert contents(store, v2.digest) == files_of(data)
    assert build_tree(store, data, stat_cache=cache, base=v2.digest).digest == v2.digest


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file()}


def _never(*args: object, **kwargs: object) -> None:
    raise AssertionError("the directory's index should have made this unnecessary")


def test_the_index_keeps_the_fingerprint_a_file_was_read_with(
        store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    make_tree(data, dirs=2, files=5)
    _age(data)
    cache = StatCache(tmp_path / "stat.sqlite")
    real_scan = build_module.scan_files

    def stale_scan(root: Path) -> object:  # as if d1/f002.bin changed after the scan
        found = real_scan(root)
        listed = found.listing["d1"]
        listed[listed.index("f002.bin") + 2] -= 7  # its modification time
        return found

    monkeypatch.setattr(build_module, "scan_files", stale_scan)
    v1 = build_tree(store, data, stat_cache=cache)
    monkeypatch.undo()
    read: list[str] = []
    real = build_module._read_small
    monkeypatch.setattr(build_module, "_read_small", lambda p: (read.append(p), real(p))[1])
    assert build_tree(store, data, stat_cache=cache, base=v1.digest).digest == v1.digest
    assert read == []
