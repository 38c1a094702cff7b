"""Content-addressed blob storage: every file of every dataset, artifact and model, once.

``BlobStore`` hashes (BLAKE3), deduplicates and verifies; a ``BlobBackend`` keeps the bytes
(a local directory, S3, or memory), opened from a URL by ``open_backend``::

    store = BlobStore(open_backend("file:///data/blobs"))
    digest = store.put_bytes(b"hello")
    assert store.get_bytes(digest) == b"hello"
"""

from loopml.blobs.backend import BlobBackend
from loopml.blobs.digest import BlobRef
from loopml.blobs.hashing import canonical_json, hash_bytes, hash_file
from loopml.blobs.registry import open_backend
from loopml.blobs.store import BlobStore

__all__ = [
    "BlobBackend",
    "BlobRef",
    "BlobStore",
    "canonical_json",
    "hash_bytes",
    "hash_file",
    "open_backend",
]
