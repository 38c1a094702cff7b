"""Stable 64-bit hashes of Arrow arrays: the same value hashes the same in every process.

Python's ``hash`` is salted per process, so sketches built on it could not be merged across
machines. Here numbers hash through the splitmix64 finaliser over their 64 bits (a bijection:
two different integers, or two different floats, never collide), and strings and binary values
through a polynomial hash of their bytes folded with their length and finalised the same way.
Everything is vectorised with numpy; no Python code runs per value.

A string hash is 64 bits, so two different strings collide with probability about 2**-64 per
pair; exact checks built on these hashes (``unique`` in a contract) inherit that caveat.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from loopml.errors import InvalidArgument
from loopml.profiling.arrays import numpy_values
from loopml.profiling.scratch import scratch

__all__ = ["hash_array", "hash_numbers", "hash_strings", "splitmix64"]

U64 = np.uint64
_GOLDEN = U64(0x9E3779B97F4A7C15)
_MIX1 = U64(0xBF58476D1CE4E5B9)
_MIX2 = U64(0x94D049BB133111EB)
_BASE = U64(0x9FB21C651E98DF25)  # an odd multiplier for the byte polynomial
_STRING_SEED = U64(0x243F6A8885A308D3)
# Strings are hashed in slices of at most this many bytes, to bound temporary memory.
_SLICE_BYTES = 1 << 22

_powers: np.ndarray[Any, np.dtype[np.uint64]] = np.ones(1, dtype=np.uint64)


def splitmix64(values: np.ndarray[Any, Any], *, out: np.ndarray[Any, Any] | None = None
               ) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """The splitmix64 finaliser of 64-bit words: a well-mixed bijection of uint64.

    The result goes to ``out`` (a uint64 array of the same length) when given.
    """
    z = np.empty(len(values), dtype=np.uint64) if out is None else out
    np.copyto(z, values, casting="unsafe")
    shifted = scratch("splitmix", len(z), np.uint64)
    z += _GOLDEN
    z ^= np.right_shift(z, U64(30), out=shifted)
    z *= _MIX1
    z ^= np.right_shift(z, U64(27), out=shifted)
    z *= _MIX2
    z ^= np.right_shift(z, U64(31), out=shifted)
    return np.asarray(z, dtype=np.uint64)


def hash_numbers(values: np.ndarray[Any, Any], *, out: np.ndarray[Any, Any] | None = None
                 ) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Hashes of a numeric or boolean numpy array (floats by their bits, ``-0.0`` as ``0.0``),
    written to ``out`` when given."""
    if values.dtype.kind == "f":
        # Adding 0.0 turns -0.0 into 0.0, so equal numbers hash equal.
        normalised = scratch("normalised", len(values), np.float64)
        np.add(values, 0.0, out=normalised)
        bits = normalised.view(np.uint64)
    elif values.dtype.kind in "iu":
        bits = values.astype(np.int64, copy=False).view(np.uint64)
    elif values.dtype.kind == "b":
        bits = values.astype(np.uint64)
    else:
        raise InvalidArgument(f"cannot hash a numpy array of dtype {values.dtype}")
    return splitmix64(bits, out=out)


def _byte_powers(length: int) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """``_BASE ** j`` modulo 2**64 for j < length, cached and grown on demand."""
    global _powers
    if len(_powers) < length:
        size = max(length, 2 * len(_powers))
        factors = np.full(size, _BASE, dtype=np.uint64)
        factors[0] = 1
        _powers = np.multiply.accumulate(factors)
    return _powers


def _hash_string_slice(offsets: np.ndarray[Any, Any],
                       data: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    starts = offsets[:-1].astype(np.int64)
    lengths = np.diff(offsets).astype(np.int64)
    sums = np.zeros(len(lengths), dtype=np.uint64)
    total = int(lengths.sum())
    if total:
        first = int(starts[0])
        chunk = data[first:first + total].astype(np.uint64)
        local = starts - first
        position = np.arange(total, dtype=np.int64) - np.repeat(local, lengths)
        chunk *= _byte_powers(int(lengths.max()))[position]
        nonempty = lengths > 0
        sums[nonempty] = np.add.reduceat(chunk, local[nonempty])
    sums ^= lengths.astype(np.uint64) * _STRING_SEED
    return splitmix64(sums)


def hash_strings(array: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Hashes of a string or binary Arrow array (null slots hash as the empty string)."""
    if pat.is_string_view(array.type) or pat.is_binary_view(array.type):
        array = array.cast(pa.large_binary())
    buffers = array.buffers()
    width = np.int64 if pat.is_large_string(array.type) or pat.is_large_binary(
        array.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=width)[array.offset:array.offset + len(array) + 1]
    data = (np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None
            else np.zeros(0, dtype=np.uint8))
    if len(array) == 0:
        return np.zeros(0, dtype=np.uint64)
    out = np.empty(len(array), dtype=np.uint64)
    # Split into row ranges of bounded byte size; a single huge value gets a range of its own.
    row = 0
    while row < len(array):
        limit = int(offsets[row]) + _SLICE_BYTES
        end = max(row + 1, int(np.searchsorted(offsets, limit, side="right")) - 1)
        end = min(end, len(array))
        out[row:end] = _hash_string_slice(offsets[row:end + 1], data)
        row = end
    return out


def hash_array(array: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Stable hashes of the values of an Arrow array (null slots hash as zero or the empty
    string: drop nulls first where they matter).

    Numbers, temporal values and booleans hash by value, strings and binary by content, and a
    dictionary array by its decoded values. Other types raise
    :class:`~loopml.errors.InvalidArgument`.
    """
    kind = array.type
    if pat.is_dictionary(kind):
        assert isinstance(array, pa.DictionaryArray)
        indices = numpy_values(array.indices, fill=0)
        return np.asarray(hash_array(array.dictionary)[indices], dtype=np.uint64)
    if pat.is_string(kind) or pat.is_large_string(kind) or pat.is_binary(kind) or \
            pat.is_large_binary(kind) or pat.is_string_view(kind) or pat.is_binary_view(kind):
        return hash_strings(array)
    if pat.is_boolean(kind) or pat.is_integer(kind) or pat.is_floating(kind) or \
            pat.is_decimal(kind) or (pat.is_temporal(kind) and not pat.is_interval(kind)):
        return hash_numbers(numpy_values(array, fill=0))
    raise InvalidArgument(f"cannot hash values of type {kind}; supported: numbers, booleans, "
                          "strings, binary, dates and times, and dictionaries of those")
