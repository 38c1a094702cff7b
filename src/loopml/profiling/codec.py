"""Compact, exact, JSON-able encoding of the numpy arrays inside sketches.

An array is stored as base64 text of its zlib-compressed little-endian bytes: a sketch's bucket
counts or registers (mostly small numbers and runs of zeros) shrink to a fraction of their raw
size, and decoding gives back exactly the same array.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any

import numpy as np

from loopml.errors import InvalidArgument

__all__ = ["decode_array", "encode_array", "require"]


def encode_array(values: np.ndarray[Any, Any], dtype: str) -> str:
    """``values`` as text: base64 of the zlib-compressed bytes of ``values.astype(dtype)``."""
    raw = np.ascontiguousarray(values, dtype=np.dtype(dtype)).tobytes()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def decode_array(text: object, dtype: str, *, what: str) -> np.ndarray[Any, Any]:
    """The array :func:`encode_array` encoded; ``what`` names it in the error for bad input."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{what} must be an encoded array (a string), "
                              f"got {type(text).__name__}")
    try:
        raw = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
    except (binascii.Error, zlib.error, UnicodeEncodeError, ValueError):
        raise InvalidArgument(f"{what} is not a valid encoded array") from None
    item = np.dtype(dtype).itemsize
    if len(raw) % item:
        raise InvalidArgument(f"{what} holds {len(raw)} bytes, not a whole number of {dtype}")
    return np.frombuffer(raw, dtype=np.dtype(dtype)).copy()


def require(data: object, key: str, kind: type | tuple[type, ...], *, what: str) -> Any:
    """``data[key]``, checked to be a dict entry of type ``kind``; else InvalidArgument."""
    if not isinstance(data, dict):
        raise InvalidArgument(f"{what} must be a mapping, got {type(data).__name__}")
    if key not in data:
        raise InvalidArgument(f"{what} lacks the key {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,))):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidArgument(f"{what}[{key!r}] must be {names}, got {value!r:.80}")
    return value
