"""Folding one Arrow array (a column of a record batch) into a column profile.

All work is vectorised: numpy reductions for the extremes and moments, one ``bincount`` for the
quantile sketch, stable hashes for the distinct count, Arrow's ``value_counts`` for categories.
Integer batches with a small range are first reduced to (value, count) pairs with a
``bincount``, after which every statistic costs next to nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from loopml.profiling.arrays import numpy_values
from loopml.profiling.categories import DEFAULT_CAPACITY, CategoryCounter, value_counts
from loopml.profiling.column import ColumnKind, ColumnProfile
from loopml.profiling.hashing import hash_array, hash_numbers
from loopml.profiling.quantiles import QuantileSketch
from loopml.profiling.scratch import scratch

__all__ = ["column_kind", "update_profile"]

Array = np.ndarray[Any, Any]

# Integer batches whose range is at most this (and below their length) are counted by value.
_SMALL_RANGE = 1 << 16


def column_kind(arrow_type: pa.DataType) -> ColumnKind:
    """How a column of this Arrow type is profiled."""
    if (pat.is_dictionary(arrow_type) or pat.is_string(arrow_type)
            or pat.is_large_string(arrow_type) or pat.is_string_view(arrow_type)
            or pat.is_boolean(arrow_type)):
        return "categorical"
    if pat.is_integer(arrow_type) or pat.is_floating(arrow_type) or pat.is_decimal(arrow_type):
        return "numeric"
    if pat.is_temporal(arrow_type) and not pat.is_interval(arrow_type):
        return "numeric"
    return "other"


def _numbers(values: pa.Array) -> Array:
    """The non-null values of a numeric Arrow array as a numpy array (zero-copy if possible)."""
    numbers = numpy_values(values)
    return numbers.astype(np.float64) if numbers.dtype.kind == "f" and \
        numbers.dtype != np.float64 else numbers


def _dot(a: Array, b: Array) -> Any:
    """The dot product of two vectors without BLAS: columns are profiled on several threads,
    and OpenBLAS called from several threads at once spins on its own threads (measured:
    ten times slower than this loop)."""
    return np.einsum("i,i->", a, b)


def _python_number(value: Any, integer: bool) -> int | float:
    return int(value) if integer else float(value)


def _numeric_batch(array: pa.Array) -> tuple[ColumnProfile, Array]:
    """The profile of one batch of a numeric column, and the hashes of its distinct values."""
    nulls = array.null_count
    numbers = _numbers(array.drop_null() if nulls else array)
    if len(numbers) and numbers.dtype.kind == "f" and np.isnan(numbers.min()):
        # min() propagates NaN: only then look for NaN values, which count as nulls.
        nan = np.isnan(numbers)
        nulls += int(np.count_nonzero(nan))
        numbers = numbers[~nan]
    count = len(numbers)
    if count == 0:
        return ColumnProfile("numeric", 0, nulls), np.zeros(0, dtype=np.uint64)
    integer = numbers.dtype.kind in "iu"
    low, high = numbers.min(), numbers.max()
    weights: Array | None = None
    # Infinite values make the moments inf or NaN, which is their honest value: no warnings.
    with np.errstate(invalid="ignore", over="ignore"):
        if integer and int(high) - int(low) < min(_SMALL_RANGE, count):
            # Few possible values: count each one, then work on (value, count) pairs.
            offsets = np.subtract(numbers, low, out=scratch("offsets", count, np.intp),
                                  casting="unsafe")
            tally = np.bincount(offsets)
            present = np.flatnonzero(tally)
            numbers, weights = present.astype(numbers.dtype) + low, tally[present]
            mean = float(_dot(numbers.astype(np.float64), weights) / count)
            deviation = numbers - mean
            m2 = float(_dot(deviation * deviation, weights))
        else:
            mean = float(numbers.mean(dtype=np.float64))
            deviation = np.subtract(numbers, mean, out=scratch("deviation", count, np.float64))
            m2 = float(_dot(deviation, deviation))
    sketch = QuantileSketch.from_values(numbers, weights)
    profile = ColumnProfile("numeric", count, nulls, _python_number(low, integer),
                            _python_number(high, integer), mean, m2, sketch)
    return profile, hash_numbers(numbers, out=scratch("hashes", len(numbers), np.uint64))


def _categorical_batch(array: pa.Array, capacity: int) -> tuple[ColumnProfile, Array]:
    values, counts = value_counts(array)
    count = int(counts.sum())
    nulls = len(array) - count
    if count == 0:
        return ColumnProfile("categorical", 0, nulls), np.zeros(0, dtype=np.uint64)
    categories = CategoryCounter.from_counts(values, counts, capacity=capacity)
    profile = ColumnProfile("categorical", count, nulls, categories=categories)
    return profile, hash_array(values)


def update_profile(profile: ColumnProfile, array: pa.Array) -> ColumnProfile:
    """``profile`` merged with the profile of the values of ``array``."""
    kind = profile.kind
    if kind == "other":
        nulls = array.null_count
        return profile.merge(ColumnProfile("other", len(array) - nulls, nulls))
    if kind == "numeric":
        batch, hashes = _numeric_batch(array)
    else:
        capacity = DEFAULT_CAPACITY if profile.categories is None else \
            profile.categories.capacity
        batch, hashes = _categorical_batch(array, capacity)
    merged = profile.merge(batch)
    if profile.distinct_sketch is not None:
        merged = dataclasses.replace(
            merged, distinct_sketch=profile.distinct_sketch.with_hashes(hashes))
    return merged
