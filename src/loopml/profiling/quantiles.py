"""A mergeable quantile sketch with relative accuracy (after DDSketch, Masson et al. 2019).

Values are counted in logarithmic buckets: bucket ``k`` holds the magnitudes in
``(γ**(k-1), γ**k]`` with ``γ = 2**(1/36)``, so any quantile is answered within about 1% of
its true value, whatever the distribution. Zeros have a count of their own and negative values
a store of their own (by magnitude). Each store keeps at most ``MAX_BUCKETS`` buckets: beyond
that its lowest buckets (magnitudes nearest zero) are collapsed into one, keeping the accuracy
of the upper 57 octaves (a dynamic range of about 10**17).

The bucket of a value is found without a logarithm, from the bits of its float64: the exponent
gives the octave and the top 12 mantissa bits (a "cell" of 1/4096 octave) index a small table
of the bucket within the octave; then one ``np.bincount`` counts a whole batch. The mapping is
integer arithmetic, so it is the same on every machine, and a sketch depends only on the
multiset of its values (collapsing is driven by the largest bucket alone): merging the sketches
of two parts gives exactly the sketch of the whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.errors import InvalidArgument
from loopml.profiling.codec import decode_array, encode_array, require
from loopml.profiling.scratch import scratch

__all__ = ["BUCKETS_PER_OCTAVE", "MAX_BUCKETS", "RELATIVE_ACCURACY", "QuantileSketch"]

Array = np.ndarray[Any, Any]

BUCKETS_PER_OCTAVE = 36
MAX_BUCKETS = 2048
GAMMA = 2.0 ** (1.0 / BUCKETS_PER_OCTAVE)
_LOG_GAMMA = math.log(GAMMA)
_CELL_BITS = 12
# Half a cell of slack: a cell straddling a bucket boundary goes to the bucket of its middle.
RELATIVE_ACCURACY = (GAMMA - 1) / (GAMMA + 1) + 2.0 ** -(_CELL_BITS + 1)

_CELLS = 1 << _CELL_BITS
_EXPONENT_MASK = 0x7FF
_MAGNITUDE_MASK = (1 << 23) - 1  # float64 bits >> 40: 1 sign, 11 exponent and 12 cell bits
# Bucket of cell c within its octave: the cell straddling a bucket boundary goes by its middle.
_CELL_BUCKET = np.ceil(BUCKETS_PER_OCTAVE * np.log2(
    1 + (np.arange(_CELLS) + 0.5) / _CELLS)).astype(np.int32)
# First bucket of each biased exponent (1 … 2046 for normal numbers).
_OCTAVE_BUCKET = (BUCKETS_PER_OCTAVE * (np.arange(2048) - 1023)).astype(np.int32)
_EMPTY = np.zeros(0, dtype=np.int64)


def _bucket_value(keys: Array) -> Array:
    """The value that represents each bucket: within RELATIVE_ACCURACY of all its members."""
    return np.asarray(2.0 * np.exp(keys * _LOG_GAMMA) / (1.0 + GAMMA))


@dataclass(frozen=True, eq=False)
class _Store:
    """Counts of consecutive buckets ``offset, offset + 1, …``; no zeros at either end."""

    offset: int = 0
    counts: Array = field(default_factory=lambda: _EMPTY)

    @staticmethod
    def canonical(offset: int, counts: Array) -> _Store:
        nonzero = np.flatnonzero(counts)
        if len(nonzero) == 0:
            return _Store()
        counts = counts[nonzero[0]:nonzero[-1] + 1].astype(np.int64)
        offset += int(nonzero[0])
        if len(counts) > MAX_BUCKETS:
            cut = len(counts) - MAX_BUCKETS
            collapsed = counts[cut:].copy()
            collapsed[0] = counts[:cut + 1].sum()
            counts, offset = collapsed, offset + cut
        return _Store(offset, counts)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def merge(self, other: _Store) -> _Store:
        if not len(other.counts):
            return self
        if not len(self.counts):
            return other
        low = min(self.offset, other.offset)
        high = max(self.offset + len(self.counts), other.offset + len(other.counts))
        summed = np.zeros(high - low, dtype=np.int64)
        summed[self.offset - low:self.offset - low + len(self.counts)] += self.counts
        summed[other.offset - low:other.offset - low + len(other.counts)] += other.counts
        return _Store.canonical(low, summed)

    def keys(self) -> Array:
        return self.offset + np.arange(len(self.counts), dtype=np.int64)

    def count_below(self, magnitudes: Array) -> Array:
        """How many magnitudes are below each of ``magnitudes`` (> 0), log-interpolated."""
        if not len(self.counts):
            return np.zeros(len(magnitudes))
        position = np.log(magnitudes) / _LOG_GAMMA
        key = np.ceil(position)
        index = (key - self.offset).astype(np.int64)
        inside = np.clip(index, 0, len(self.counts) - 1)
        cumulative = np.concatenate([[0], np.cumsum(self.counts)])
        partial = cumulative[inside] + (position - (key - 1)) * self.counts[inside]
        return np.where(index < 0, 0.0, np.where(index >= len(self.counts),
                                                 float(cumulative[-1]), partial))

    def to_json(self) -> list[Any]:
        return [self.offset, encode_array(self.counts, "<u8")]

    @staticmethod
    def from_json(data: object, *, what: str) -> _Store:
        if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int)):
            raise InvalidArgument(f"{what} must be [offset, encoded counts]")
        counts = decode_array(data[1], "<u8", what=what).astype(np.int64)
        return _Store.canonical(data[0], counts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Store) and self.offset == other.offset and bool(
            np.array_equal(self.counts, other.counts))

    __hash__ = None  # type: ignore[assignment]


def _stores(cells: Array, exponents: Array, weights: Array | None) -> tuple[_Store, _Store]:
    """Positive and negative stores from the (sign-extended int32) cells of normal numbers."""
    size = len(cells)
    buckets = np.take(_OCTAVE_BUCKET, exponents, out=scratch("buckets", size, np.int32),
                      mode="clip")
    within = np.bitwise_and(cells, _CELLS - 1, out=scratch("within", size, np.int32))
    buckets += np.take(_CELL_BUCKET, within, out=scratch("part", size, np.int32), mode="clip")
    low, high = int(buckets.min()), int(buckets.max())
    # Even keys count positive values, odd keys negative ones (cells >> 31 is -1 for those).
    buckets -= low
    buckets <<= 1
    buckets -= np.right_shift(cells, 31, out=within)
    length = 2 * (high - low + 1)
    if weights is None:
        counts = np.bincount(buckets, minlength=length)
    else:
        counts = np.rint(np.bincount(buckets, weights=weights, minlength=length)).astype(np.int64)
    return _Store.canonical(low, counts[0::2]), _Store.canonical(low, counts[1::2])


@dataclass(frozen=True, eq=False)
class QuantileSketch:
    """Relative-error quantiles of a stream of numbers: mergeable, about 1% accurate."""

    zeros: int = 0
    positive: _Store = field(default_factory=_Store)
    negative: _Store = field(default_factory=_Store)

    @classmethod
    def from_values(cls, values: Array, counts: Array | None = None) -> QuantileSketch:
        """The sketch of a numpy array of numbers without NaN (infinities are left out).

        With ``counts``, each value stands for that many occurrences.
        """
        if len(values) == 0:
            return cls()
        size = len(values)
        if values.dtype != np.float64 or not values.flags.c_contiguous:
            converted = scratch("floats", size, np.float64)
            np.copyto(converted, values, casting="unsafe")
            values = converted
        cells = np.right_shift(values.view(np.int64), 40, out=scratch("cells", size, np.int32),
                               casting="unsafe")
        exponents = np.right_shift(cells, _CELL_BITS, out=scratch("exponents", size, np.int32))
        exponents &= _EXPONENT_MASK
        zeros = 0
        if int(exponents.min()) == 0 or int(exponents.max()) == _EXPONENT_MASK:
            # Zeros and subnormals count as zero; infinities (and NaN) are left out.
            zero = exponents == 0
            zeros = int(np.count_nonzero(zero) if counts is None else counts[zero].sum())
            keep = (exponents > 0) & (exponents < _EXPONENT_MASK)
            cells, exponents = cells[keep], exponents[keep]
            counts = None if counts is None else counts[keep]
            if not len(cells):
                return cls(zeros=zeros)
        positive, negative = _stores(cells, exponents, counts)
        return cls(zeros, positive, negative)

    @property
    def count(self) -> int:
        return self.zeros + self.positive.total + self.negative.total

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """The sketch of both streams together (exactly what one sketch of both would be)."""
        return QuantileSketch(self.zeros + other.zeros, self.positive.merge(other.positive),
                              self.negative.merge(other.negative))

    def _ordered(self) -> tuple[Array, Array]:
        """Representative values in increasing order, with their counts."""
        values = np.concatenate([-_bucket_value(self.negative.keys())[::-1], [0.0],
                                 _bucket_value(self.positive.keys())])
        counts = np.concatenate([self.negative.counts[::-1], [self.zeros],
                                 self.positive.counts])
        return values, counts

    def quantiles(self, qs: Array) -> Array:
        """The values at quantiles ``qs`` (each in [0, 1]); NaN for an empty sketch.

        The quantile q is the value of rank ``floor(q * (count - 1))`` in sorted order (numpy's
        ``method="lower"``), within RELATIVE_ACCURACY of it.
        """
        qs = np.asarray(qs, dtype=np.float64)
        count = self.count
        if count == 0:
            return np.full(qs.shape, np.nan)
        values, counts = self._ordered()
        ranks = np.clip(qs, 0.0, 1.0) * (count - 1)
        index = np.searchsorted(np.cumsum(counts), ranks, side="right")
        return np.asarray(values[np.minimum(index, len(values) - 1)])

    def cdf(self, xs: Array) -> Array:
        """The fraction of values at or below each of ``xs`` (log-interpolated in a bucket)."""
        xs = np.asarray(xs, dtype=np.float64)
        count = self.count
        if count == 0:
            return np.full(xs.shape, np.nan)
        negatives = self.negative.total
        below = np.full(xs.shape, float(negatives + self.zeros))
        positive = xs > 0
        if positive.any():
            below[positive] += self.positive.count_below(xs[positive])
        negative = xs < 0
        if negative.any():
            below[negative] = negatives - self.negative.count_below(-xs[negative])
        return np.clip(below / count, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_dict` gives back an equal sketch."""
        return {"buckets_per_octave": BUCKETS_PER_OCTAVE, "max_buckets": MAX_BUCKETS,
                "zeros": self.zeros, "positive": self.positive.to_json(),
                "negative": self.negative.to_json()}

    @classmethod
    def from_dict(cls, data: object) -> QuantileSketch:
        what = "quantile sketch"
        octave = require(data, "buckets_per_octave", int, what=what)
        buckets = require(data, "max_buckets", int, what=what)
        if (octave, buckets) != (BUCKETS_PER_OCTAVE, MAX_BUCKETS):
            raise InvalidArgument(f"{what} has {octave} buckets per octave and at most "
                                  f"{buckets}; this loopml reads {BUCKETS_PER_OCTAVE} and "
                                  f"{MAX_BUCKETS} only")
        zeros = require(data, "zeros", int, what=what)
        positive = _Store.from_json(require(data, "positive", list, what=what),
                                    what=f"{what} positive buckets")
        negative = _Store.from_json(require(data, "negative", list, what=what),
                                    what=f"{what} negative buckets")
        return cls(zeros, positive, negative)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QuantileSketch) and self.zeros == other.zeros and \
            self.positive == other.positive and self.negative == other.negative

    __hash__ = None  # type: ignore[assignment]
