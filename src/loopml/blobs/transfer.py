"""Copying trees between stores: :func:`push` (to a remote) and :func:`pull` (from one).

Only objects missing at the destination are copied, and finding them costs no lookup per
file: a tree object (delta or listing) present at the destination means everything below
it is present (the stores are written children first), so the walk stops there. Pushing
a version that changed 1% of 20,000 files looks up its delta (missing), the delta's base
(present: stop), and the pack or two holding the changed files; it then copies those.

Copies keep that order — data (packs, whole files, chunks), chunk pages, chunk indexes,
listings from the leaves up, deltas from the base up — so an interrupted transfer leaves
the destination with complete trees or none, and the next transfer resumes. Every object
is verified against its digest as it is read, so damage is never propagated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from loopml.blobs.chunking import iter_pages, page_chunks
from loopml.blobs.digest import key_for
from loopml.blobs.entry import FileEntry
from loopml.blobs.listing import Delta, load_listing, load_tree_object
from loopml.blobs.parallel import run_parallel
from loopml.blobs.store import BlobStore

__all__ = ["TransferStats", "copy_trees", "pull", "push"]


@dataclass(frozen=True)
class TransferStats:
    """What a transfer did: ``objects`` and ``bytes`` copied, objects ``skipped`` (found at
    the destination already)."""

    objects: int = 0
    bytes: int = 0
    skipped: int = 0


def push(store: BlobStore, remote: BlobStore, tree: str, *,
         progress: bool = False) -> TransferStats:
    """Copy tree ``tree`` from ``store`` to ``remote``, sending only what ``remote`` lacks."""
    return copy_trees(store, remote, [tree], progress=progress)


def pull(store: BlobStore, remote: BlobStore, tree: str, *,
         progress: bool = False) -> TransferStats:
    """Copy tree ``tree`` from ``remote`` into ``store``, fetching only what ``store`` lacks."""
    return copy_trees(remote, store, [tree], progress=progress)


@dataclass
class _Plan:
    """The objects missing at the destination, in the groups they are copied in."""

    data: set[str] = field(default_factory=set)
    pages: set[str] = field(default_factory=set)
    indexes: set[str] = field(default_factory=set)
    listings: dict[str, list[str]] = field(default_factory=dict)  # listing -> missing children
    deltas: list[str] = field(default_factory=list)  # base first
    present: dict[str, bool] = field(default_factory=dict)  # every lookup made


def copy_trees(src: BlobStore, dst: BlobStore, trees: Iterable[str], *,
               progress: bool = False) -> TransferStats:
    """Copy the trees ``trees`` from ``src`` to ``dst``; see the module docstring."""
    plan = _Plan()
    entries: set[FileEntry] = set()
    roots: list[str] = []
    for tree in trees:
        chain, current = [], tree
        while not _present(dst, plan, [current])[current]:
            obj = load_tree_object(src, current)
            if not isinstance(obj, Delta):
                roots.append(current)
                break
            chain.append(current)
            entries.update(entry for entry in obj.changes.values() if entry is not None)
            current = obj.base
        plan.deltas += [delta for delta in reversed(chain) if delta not in plan.deltas]
    _plan_listings(src, dst, plan, roots, entries)
    _plan_entries(src, dst, plan, entries)
    heights = _heights(plan.listings)
    waves = [sorted(plan.data), sorted(plan.pages), sorted(plan.indexes)]
    waves += [sorted(listing for listing, h in heights.items() if h == height)
              for height in range(max(heights.values(), default=-1) + 1)]
    waves += [[delta] for delta in plan.deltas]
    copied = 0
    objects = 0
    for wave in waves:
        sizes = run_parallel(lambda digest: _copy(src, dst, digest), wave, workers=dst.workers,
                             progress=progress, description="copying blobs")
        copied += sum(sizes)
        objects += len(wave)
    skipped = sum(1 for found in plan.present.values() if found)
    return TransferStats(objects, copied, skipped)


def _present(dst: BlobStore, plan: _Plan, digests: Iterable[str]) -> dict[str, bool]:
    """Whether each of ``digests`` is at ``dst``, looking up each once (in parallel)."""
    wanted = list(dict.fromkeys(digests))
    unknown = [digest for digest in wanted if digest not in plan.present]
    found = dst.has_many(unknown)
    plan.present.update(zip(unknown, found, strict=True))
    return {digest: plan.present[digest] for digest in wanted}


def _plan_listings(src: BlobStore, dst: BlobStore, plan: _Plan, roots: list[str],
                   entries: set[FileEntry]) -> None:
    """Walk the missing listings level by level, stopping at those already at ``dst``."""
    level = roots
    while level:
        children: dict[str, list[str]] = {}
        for listing in level:
            if listing in plan.listings:
                continue
            dirs, files = load_listing(src, listing)
            entries.update(files.values())
            children[listing] = [child for child, _, _ in dirs.values()]
        found = _present(dst, plan, [c for kids in children.values() for c in kids])
        for listing, kids in children.items():
            plan.listings[listing] = [child for child in kids if not found[child]]
        level = [child for kids in plan.listings.values() for child in kids
                 if child not in plan.listings]


def _plan_entries(src: BlobStore, dst: BlobStore, plan: _Plan,
                  entries: set[FileEntry]) -> None:
    """Add the stored objects of ``entries`` missing at ``dst`` (and their chunks)."""
    storage = _present(dst, plan, sorted({entry.storage for entry in entries}))
    indexes = {entry.chunks for entry in entries if entry.chunks is not None}
    plan.data.update(digest for digest, found in storage.items()
                     if not found and digest not in indexes)
    plan.indexes.update(index for index in indexes if not storage[index])
    pages = [page for index in sorted(plan.indexes) for page in iter_pages(src, index)]
    missing_pages = [page for page, found in _present(dst, plan, pages).items() if not found]
    plan.pages.update(missing_pages)
    chunks = [digest for page in missing_pages
              for digest, _ in page_chunks(src, page)]
    plan.data.update(digest for digest, found in _present(dst, plan, chunks).items()
                     if not found)


def _heights(listings: dict[str, list[str]]) -> dict[str, int]:
    """Each missing listing's height above its missing descendants (leaves are 0), so that
    copying by increasing height writes every listing after its children."""
    heights: dict[str, int] = {}

    def height(listing: str) -> int:
        if listing not in heights:
            kids = listings.get(listing, [])
            heights[listing] = 1 + max((height(kid) for kid in kids), default=-1)
        return heights[listing]

    for listing in listings:
        height(listing)
    return heights


def _copy(src: BlobStore, dst: BlobStore, digest: str) -> int:
    """Copy one blob, verified on the way; return its size."""
    data = src.get_bytes(digest)
    dst.backend.put_bytes(key_for(digest), data)
    return len(data)
