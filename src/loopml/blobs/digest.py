"""Content addresses: digest validation, the backend key of a digest, and :class:`BlobRef`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.errors import InvalidArgument

__all__ = ["BlobRef", "check_digest", "key_for"]

_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BlobRef:
    """A stored blob: its BLAKE3 hex ``digest`` and its ``size`` in bytes."""

    digest: str
    size: int


def check_digest(digest: object) -> str:
    """``digest`` unchanged if it is 64 lowercase hex characters; else InvalidArgument.

    Checking every digest before it becomes a key also keeps keys inside the store
    (no ``..`` or ``/`` can reach a backend from a digest).
    """
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise InvalidArgument(
            f"{digest!r} is not a blob digest; a digest is 64 lowercase hex characters "
            "(a BLAKE3 hash), as returned by BlobStore.put_bytes or put_file")
    return digest


def key_for(digest: str) -> str:
    """The backend key of a (valid) digest: a two-character fan-out directory, then the rest."""
    check_digest(digest)
    return f"{digest[:2]}/{digest[2:]}"
