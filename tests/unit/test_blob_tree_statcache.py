"""The stat cache and directory scans: recognising unchanged files without reading them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from loopml.blobs import hash_bytes
from loopml.blobs import statcache as statcache_module
from loopml.blobs.entry import FileEntry
from loopml.blobs.index import DirectoryIndex
from loopml.blobs.statcache import (
    Fingerprint,
    StatCache,
    content_digest,
    is_racy,
    scan_files,
)
from loopml.errors import BackendUnavailable, NotFound

DIGEST = hash_bytes(b"content")


def entry(n: int) -> FileEntry:
    return FileEntry(DIGEST, n, pack=hash_bytes(b"pack"), offset=n * 10)


def test_scan_lists_files_in_path_order(tmp_path: Path) -> None:
    for rel in ("b.txt", "a/x.txt", "a.txt", "a/y/z.txt", ".hidden"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(rel.encode())
    (tmp_path / "a" / ".x.txt.0123.loopml-tmp").write_bytes(b"an interrupted checkout")
    (tmp_path / "link.txt").symlink_to(tmp_path / "b.txt")
    (tmp_path / "dirlink").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    scanned = scan_files(tmp_path)
    assert list(scanned) == sorted(scanned) == [".hidden", "a.txt", "a/x.txt", "a/y/z.txt",
                                                "b.txt", "link.txt"]
    path, print_ = scanned["a/x.txt"]
    assert path == str(tmp_path / "a" / "x.txt")
    assert print_.size == len(b"a/x.txt") and print_.inode == os.stat(path).st_ino
    assert list(scan_files(tmp_path / "b.txt")) == ["b.txt"]
    with pytest.raises(NotFound):
        scan_files(tmp_path / "missing")


def test_lookup_returns_only_files_whose_fingerprint_matches(tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "deep" / "cache.sqlite")
    prints = {f"/data/d/{i}": Fingerprint(i, 1000 + i, 50 + i, 2000 + i) for i in range(5)}
    cache.remember((path, print_, entry(i)) for i, (path, print_) in enumerate(prints.items()))
    assert cache.lookup(prints) == {path: entry(i) for i, path in enumerate(prints)}
    moved = dict(prints)
    moved["/data/d/1"] = prints["/data/d/1"]._replace(mtime_ns=1)
    moved["/data/d/2"] = prints["/data/d/2"]._replace(ctime_ns=1)
    moved["/data/other/9"] = Fingerprint(1, 2, 3, 4)
    assert set(cache.lookup(moved)) == {"/data/d/0", "/data/d/3", "/data/d/4"}
    assert cache.lookup({}) == {}
    cache.close()
    assert StatCache(tmp_path / "deep" / "cache.sqlite").lookup(prints)["/data/d/4"] == entry(4)


def test_many_files_fold_into_the_directory_row(tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "cache.sqlite")
    total = statcache_module._FOLD * 2 + 7
    prints = {f"/big/dir/f{i}": Fingerprint(i, i, i, i) for i in range(total)}
    for start in range(0, total, 50):  # a few at a time, then folded
        cache.remember((path, prints[path], entry(int(path.rsplit("f", 1)[1])))
                       for path in list(prints)[start:start + 50])
    assert len(cache.lookup(prints)) == total
    with cache._connection("read") as db:
        recent = db.execute("SELECT count(*) FROM recent").fetchone()[0]
    assert recent < statcache_module._FOLD
    cache.remember([("/big/dir/f3", Fingerprint(99, 9, 9, 9), entry(99))])  # newest wins
    assert cache.lookup({"/big/dir/f3": Fingerprint(99, 9, 9, 9)}) == {"/big/dir/f3": entry(99)}
    cache.clear()
    assert cache.lookup(prints) == {}


def test_index_names_the_files_that_may_have_changed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for name in ("a", "b", "c", "d/e"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
    old = time.time_ns() - 10_000_000_000
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(old, old))
    scanned = scan_files(root)
    recent = dict(scanned)
    recent["c"] = (recent["c"][0], recent["c"][1]._replace(mtime_ns=time.time_ns()))
    stored = {rel: FileEntry(hash_bytes(rel.encode()), print_.size, pack=DIGEST, offset=i)
              for i, (rel, (_, print_)) in enumerate(scanned.items())}
    index = DirectoryIndex.of(DIGEST, ((rel, print_, stored[rel])
                                       for rel, (_, print_) in recent.items()),
                              read_ns=time.time_ns())
    cache = StatCache(tmp_path / "cache.sqlite")
    index.save(cache, str(root))
    loaded = DirectoryIndex.load(cache, str(root))
    assert loaded is not None and loaded.tree == DIGEST and len(loaded) == 4
    assert DirectoryIndex.load(cache, str(tmp_path)) is None
    (root / "b").write_bytes(b"B")  # changed; "c" was too recent to be trusted
    (root / "d" / "e").unlink()
    (root / "new").write_bytes(b"new")
    assert loaded.changes(scan_files(root)) == (["b", "c", "new"], ["d/e"])
    assert loaded.entry("a") == stored["a"] and loaded.entry("new") is None
    assert loaded.with_digest(stored["b"].digest) == stored["b"]
    assert loaded.with_digest("f" * 64) is None
    assert loaded.entries() == stored
    now = scan_files(root)
    new_entry = FileEntry(hash_bytes(b"new"), 3)
    later = loaded.updated(hash_bytes(b"next"),
                           {rel: (now[rel][1], new_entry) for rel in ("b", "c", "new")},
                           ["d/e"], read_ns=None)
    assert later.changes(scan_files(root)) == ([], [])
    assert later.entry("new") == new_entry and later.entry("a") == stored["a"]
    assert later.entry("d/e") is None and len(later) == 4


def test_index_without_trusted_fingerprints_looks_at_everything(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    scanned = scan_files(tmp_path)
    index = DirectoryIndex.of(DIGEST, [("f", scanned["f"][1], entry(1))],
                              read_ns=time.time_ns())
    assert index.changes(scanned) == (["f"], [])  # just written: racy
    trusted = DirectoryIndex.of(DIGEST, [("f", scanned["f"][1], entry(1))], read_ns=None)
    assert trusted.changes(scanned) == ([], [])


def test_racy_fingerprints() -> None:
    now = time.time_ns()
    assert is_racy(Fingerprint(1, now - 1_000_000, 1, 1), now)
    assert not is_racy(Fingerprint(1, now - 10_000_000_000, 1, 1), now)
    whole_second = (now // 1_000_000_000 - 1) * 1_000_000_000  # a coarse timestamp
    assert is_racy(Fingerprint(1, whole_second, 1, 1), now)


def test_content_digest(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"content")
    digest, print_ = content_digest(str(tmp_path / "f"))
    assert digest == DIGEST and print_ is not None and print_.size == 7
    big = os.urandom(2 << 20)
    (tmp_path / "big").write_bytes(big)
    assert content_digest(str(tmp_path / "big"))[0] == hash_bytes(big)
    assert content_digest(str(tmp_path / "missing")) == ("", None)


def test_a_damaged_cache_file_says_it_can_be_deleted(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendUnavailable, match="delete the file"):
        StatCache(path).lookup({"/x/y": Fingerprint(1, 2, 3, 4)})


def test_an_older_cache_schema_is_rebuilt(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "cache.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE dirs (something_else TEXT)")
        db.execute("PRAGMA user_version=1")
    cache = StatCache(path)
    cache.remember([("/a/b", Fingerprint(1, 2, 3, 4), entry(1))])
    assert cache.lookup({"/a/b": Fingerprint(1, 2, 3, 4)}) == {"/a/b": entry(1)}


def test_an_index_this_code_did_not_write_is_ignored(tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "cache.sqlite")
    for document in ({"format": "loopml.directory-index/0", "root": "/r", "tree": DIGEST,
                      "dirs": {}},
                     {"format": "loopml.directory-index/1", "root": "/elsewhere",
                      "tree": DIGEST, "dirs": {}},
                     {"format": "loopml.directory-index/1", "root": "/r", "tree": DIGEST,
                      "dirs": {"": [["a", 1, 2, 3, 4], ["short"]]}},
                     ["not", "a", "document"]):
        cache.remember_index("/r", document)
        assert DirectoryIndex.load(cache, "/r") is None
    cache._index_path("/r").write_bytes(b"{truncated")
    assert DirectoryIndex.load(cache, "/r") is None
    DirectoryIndex(DIGEST, {}).save(cache, "/r")
    assert DirectoryIndex.load(cache, "/r") is not None
