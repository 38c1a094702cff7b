"""Probe of the storage layers under the dataset registry (blobs: trees, packs, chunks).

Not a test: prints figures. Generates, in a fresh temporary directory,
A = 20,000 files of ~5 KB in 20 sub-directories and B = one file of --b-mb MB, then times
cold add, unchanged re-add, add after a 1% change, checkout of the old version over the
new one, pushes to a moto S3 server (separate process), and storage growth.

    .venv/bin/python bench/_storage_probe.py [--b-mb 1024] [--dir /tmp] [--no-s3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopml.blobs import BlobStore
from loopml.blobs.checkout import checkout
from loopml.blobs.hashing import hash_file
from loopml.blobs.listing import iter_files
from loopml.blobs.local import LocalBackend
from loopml.blobs.statcache import StatCache
from loopml.blobs.transfer import pull, push
from loopml.blobs.tree import build_tree

rows: list[tuple[str, str, str]] = []


def timed(label: str, target: str, function: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = function()
    elapsed = time.perf_counter() - start
    rows.append((label, f"{elapsed:.3f} s", target))
    print(f"[probe] {label}: {elapsed:.3f} s  {result!r:.160}", file=sys.stderr)
    return result


def stored_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def make_a(root: Path, rnd: random.Random) -> None:
    for d in range(20):
        folder = root / f"dir{d:02d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"img_{i:05d}.jpg").write_bytes(rnd.randbytes(4096 + rnd.randrange(2048)))


def make_big(path: Path, megabytes: int, rnd: random.Random) -> None:
    with path.open("wb") as stream:
        for _ in range(megabytes):
            stream.write(rnd.randbytes(1 << 20))


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.1)
    return server, endpoint


def s3_store(endpoint: str) -> BlobStore:
    import boto3

    from loopml.blobs.s3 import S3Backend

    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(key, value)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket="probe")
    return BlobStore(S3Backend("probe", "blobs", endpoint_url=endpoint), workers=16)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--b-mb", type=int, default=1024)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--no-s3", action="store_true")
    parser.add_argument("--baseline", action="store_true",
                        help="also time one blob per file (BlobStore.put_files)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="loopml-probe-", dir=args.dir))
    rnd = random.Random(42)
    try:
        probe(work, args, rnd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(label) for label, _, _ in rows)
    print(f"{'measurement':<{width}}  {'figure':>14}  target")
    for label, figure, target in rows:
        print(f"{label:<{width}}  {figure:>14}  {target}")


def probe(work: Path, args: argparse.Namespace, rnd: random.Random) -> None:
    a_dir = work / "A"
    make_a(a_dir, rnd)
    time.sleep(0.2)  # let the newest files age past the stat cache's racy window
    if args.baseline:
        flat = BlobStore(LocalBackend(work / "flat"))
        files = sorted(p for p in a_dir.rglob("*") if p.is_file())
        timed("A: one blob per file (put_files, baseline)", "", lambda: flat.put_files(files))
    blobs = work / "blobs"
    store = BlobStore(LocalBackend(blobs))
    cache = StatCache(work / "cache" / "stat.sqlite")
    v1 = timed("A: cold add", "<= 2.5 s", lambda: build_tree(store, a_dir, stat_cache=cache))
    timed("A: re-add unchanged", "<= 0.25 s",
          lambda: build_tree(store, a_dir, base=v1.digest, stat_cache=cache))
    after_v1 = stored_bytes(blobs)
    files = sorted(p for p in a_dir.rglob("*") if p.is_file())
    changed = 0
    for path in rnd.sample(files, len(files) // 100):
        data = rnd.randbytes(path.stat().st_size)
        path.write_bytes(data)
        changed += len(data)
    v2 = timed("A: add after 1% change", "<= 0.4 s",
               lambda: build_tree(store, a_dir, base=v1.digest, stat_cache=cache))
    growth = stored_bytes(blobs) - after_v1
    rows.append(("A: storage growth / changed bytes", f"{growth / changed:.3f}x", "<= 1.05x"))
    timed("A: checkout v1 over v2", "<= 0.3 s",
          lambda: checkout(store, v1.digest, a_dir, stat_cache=cache))
    expected = dict(iter_files(store, v1.digest))
    sample = rnd.sample(sorted(expected), 50)
    wrong = [p for p in sample if hash_file(a_dir / p) != expected[p].digest]
    assert not wrong, f"checkout wrote wrong content: {wrong}"
    timed("A: checkout v2 again", "", lambda: checkout(store, v2.digest, a_dir, stat_cache=cache))
    if not args.no_s3:
        server, endpoint = start_moto()
        try:
            remote = s3_store(endpoint)
            timed("A: push v1 to S3 (cold)", "", lambda: push(store, remote, v1.digest))
            timed("A: push v2 to S3 (incremental)", "<= 0.2 s",
                  lambda: push(store, remote, v2.digest))
            fresh = BlobStore(LocalBackend(work / "pulled"))
            timed("A: pull v2 from S3 into a fresh store", "",
                  lambda: pull(fresh, remote, v2.digest))
            timed("A: checkout v1 from S3 over v2", "",
                  lambda: checkout(remote, v1.digest, a_dir, stat_cache=cache))
        finally:
            server.terminate()
            server.wait()
    b_file = work / "B" / "big.bin"
    b_file.parent.mkdir()
    make_big(b_file, args.b_mb, rnd)
    b1 = timed(f"B: cold add ({args.b_mb} MB)", "",
               lambda: build_tree(store, b_file, stat_cache=cache))
    before = stored_bytes(blobs)
    with b_file.open("ab") as stream:
        stream.write(rnd.randbytes(10 << 20))
    timed("B: add after appending 10 MB", "",
          lambda: build_tree(store, b_file, base=b1.digest, stat_cache=cache))
    growth = stored_bytes(blobs) - before
    rows.append(("B: storage growth / appended bytes", f"{growth / (10 << 20):.3f}x",
                 "<= 1.05x"))


if __name__ == "__main__":
    main()
