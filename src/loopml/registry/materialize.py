"""A registered package as a local directory: written once per content, then reused."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from loopml.blobs import BlobStore
from loopml.blobs.checkout import checkout
from loopml.models.manifest import MANIFEST_NAME

__all__ = ["materialize"]


def materialize(blobs: BlobStore, tree: str, cache: Path) -> Path:
    """The package stored as ``tree``, checked out under ``cache`` (atomically, once)."""
    target = cache / tree
    if (target / MANIFEST_NAME).is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".{tree}.{uuid.uuid4().hex[:8]}"
    try:
        checkout(blobs, tree, staging)
        try:
            os.rename(staging, target)
        except OSError:  # another process materialised it meanwhile
            if not (target / MANIFEST_NAME).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
