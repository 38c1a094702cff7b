"""Exactly mergeable mean and variance.

A column profile's mean and variance come from two exact sums over its batches: for a batch of
``n`` values with mean ``m`` and sum of squared deviations ``M2`` (floats computed by numpy),
the profile adds ``n·m`` to the first sum and ``M2 + n·m²`` to the second. Both sums are binary
fractions held exactly as Python integers times a power of two, so adding them is exact:
merging is associative and commutative, and profiles of the parts of a table merged in any
order or grouping give the same mean and variance, to the last bit, as one pass over the same
batches. (Chan's float formula, used before, rounds at every merge, so the result depended on
the order of merging.) The mean ``Σ₁/n`` and the sum of squared deviations ``Σ₂ - Σ₁²/n`` are
then computed exactly and rounded once.

Only finite statistics have exact sums: a column holding infinite values has an infinite or NaN
mean, which :func:`merge_moments` leaves to the float formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loopml.errors import InvalidArgument

__all__ = ["Moments", "merge_moments"]


def _exact(value: float) -> tuple[int, int]:
    """``value`` as ``numerator * 2**exponent``."""
    numerator, denominator = value.as_integer_ratio()
    return numerator, 1 - denominator.bit_length()


def _divide(numerator: int, exponent: int, divisor: int) -> float:
    """``numerator * 2**exponent / divisor``, correctly rounded (Python's int division is)."""
    try:
        if exponent >= 0:
            return (numerator << exponent) / divisor
        return numerator / (divisor << -exponent)
    except OverflowError:
        return math.inf if numerator > 0 else -math.inf


@dataclass(frozen=True)
class Moments:
    """``count`` values whose sum is ``first * 2**exponent`` and whose sum of per-batch
    ``M2 + n·m²`` is ``second * 2**exponent``; kept in lowest terms (no common factor 2)."""

    count: int
    first: int
    second: int
    exponent: int

    @classmethod
    def canonical(cls, count: int, first: int, second: int, exponent: int) -> Moments:
        both = first | second
        if both == 0:
            return cls(count, 0, 0, 0)
        shift = (both & -both).bit_length() - 1  # common trailing zero bits
        return cls(count, first >> shift, second >> shift, exponent + shift)

    @classmethod
    def of(cls, count: int, mean: float, m2: float) -> Moments | None:
        """The sums of ``count`` values with this ``mean`` and ``m2``; None unless finite."""
        if not (math.isfinite(mean) and math.isfinite(m2)):
            return None
        mean_n, mean_e = _exact(mean)
        m2_n, m2_e = _exact(m2)
        # first = count·mean; second = m2 + count·mean², on the smallest exponent of the three.
        exponent = min(mean_e, 2 * mean_e, m2_e)
        first = (count * mean_n) << (mean_e - exponent)
        second = ((m2_n << (m2_e - exponent))
                  + ((count * mean_n * mean_n) << (2 * mean_e - exponent)))
        return cls.canonical(count, first, second, exponent)

    def merge(self, other: Moments) -> Moments:
        exponent = min(self.exponent, other.exponent)
        a, b = self.exponent - exponent, other.exponent - exponent
        return Moments.canonical(self.count + other.count,
                                 (self.first << a) + (other.first << b),
                                 (self.second << a) + (other.second << b), exponent)

    @property
    def mean(self) -> float:
        return _divide(self.first, self.exponent, self.count)

    @property
    def m2(self) -> float:
        """The sum of squared deviations from the mean: ``(n·Σ₂ - Σ₁²) / n``, never negative."""
        e, n = self.exponent, self.count
        if e >= 0:
            numerator, scale = n * self.second - (self.first * self.first << e), e
        else:
            numerator, scale = (n * self.second << -e) - self.first * self.first, 2 * e
        return _divide(max(numerator, 0), scale, n)

    def to_json(self) -> list[int | str]:
        return [self.exponent, format(self.first, "x"), format(self.second, "x")]

    @classmethod
    def from_json(cls, count: int, data: object) -> Moments:
        try:
            assert isinstance(data, list) and len(data) == 3 and type(data[0]) is int
            first, second = int(data[1], 16), int(data[2], 16)
        except (AssertionError, TypeError, ValueError):
            raise InvalidArgument(f"column profile 'sums' must be [exponent, hex sum, hex sum "
                                  f"of squares], got {data!r:.80}") from None
        if count <= 0:
            raise InvalidArgument("column profile 'sums' needs a positive count")
        return cls.canonical(count, first, second, data[0])


def merge_moments(a: tuple[int, float | None, float, Moments | None],
                  b: tuple[int, float | None, float, Moments | None]
                  ) -> tuple[float | None, float, Moments | None]:
    """The mean, m2 and exact sums of two ``(count, mean, m2, sums)`` together."""
    count_a, mean_a, m2_a, sums_a = a
    count_b, mean_b, m2_b, sums_b = b
    if not count_b or mean_b is None:
        return mean_a, m2_a, sums_a
    if not count_a or mean_a is None:
        return mean_b, m2_b, sums_b
    sums_a = sums_a or Moments.of(count_a, mean_a, m2_a)
    sums_b = sums_b or Moments.of(count_b, mean_b, m2_b)
    if sums_a is not None and sums_b is not None:
        merged = sums_a.merge(sums_b)
        return merged.mean, merged.m2, merged
    # Infinite values: the float formula gives their honest (inf or NaN) moments.
    count = count_a + count_b
    delta = mean_b - mean_a
    return (mean_a + delta * count_b / count,
            m2_a + m2_b + delta * delta * count_a * count_b / count, None)
