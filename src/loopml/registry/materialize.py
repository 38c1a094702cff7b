"""A registered package as a local directory: written once per content, then reused."""

from __future__ import annotations

from pathlib import Path

from loopml.blobs import BlobStore
from loopml.blobs.checkout import checkout_once

__all__ = ["materialize"]


def materialize(blobs: BlobStore, tree: str, cache: Path) -> Path:
    """The package stored as ``tree``, checked out under ``cache`` (atomically, once)."""
    return checkout_once(blobs, tree, cache)
