"""The profile of one column: counts, moments, quantile sketch, distinct count, categories.

A :class:`ColumnProfile` is a compact (a few KB), mergeable summary of the values of a column,
whatever their number. Numeric columns (integers, floats, decimals, and dates and times as their
epoch integers) get min, max, mean, variance and a quantile sketch; categorical columns
(strings, booleans, dictionaries) get category counts; all but "other" columns (lists, structs,
binary) get a distinct-count estimate. NaN counts as a null.

Everything merges exactly, the mean and variance included (through exact sums, see
:mod:`loopml.profiling.moments`): merged in any order or grouping, the profiles of the parts of
a table equal the profile of one pass over the same batches. Category counts are the exception
past their capacity (see :mod:`loopml.profiling.categories`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from loopml.errors import InvalidArgument
from loopml.profiling.categories import CategoryCounter, Label
from loopml.profiling.codec import require
from loopml.profiling.distinct import HyperLogLog
from loopml.profiling.moments import Moments, merge_moments
from loopml.profiling.quantiles import QuantileSketch

__all__ = ["SUMMARY_QUANTILES", "ColumnKind", "ColumnProfile"]

ColumnKind = Literal["numeric", "categorical", "other"]
KINDS: tuple[ColumnKind, ...] = ("numeric", "categorical", "other")
SUMMARY_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
Number = int | float
_MOMENTS = ("min", "max", "mean", "m2")
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _to_json(value: Number | None) -> Number | str | None:
    """Infinities and NaN (from infinite values in a column) as text: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _from_json(value: object, key: str) -> Number | None:
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise InvalidArgument(f"column profile {key!r} must be a number, got {value!r:.80}")


def _same(a: object, b: object) -> bool:
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return both_nan or a == b


def _merge_bound(a: Number | None, b: Number | None, pick: Any) -> Number | None:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)  # type: ignore[no-any-return]


@dataclass(frozen=True, eq=False)
class ColumnProfile:
    """Summary statistics of one column; immutable, combine with :meth:`merge`.

    ``count`` is the number of non-null values and ``m2`` the sum of squared deviations from
    the mean (``variance`` is ``m2 / count``, the population variance).
    """

    kind: ColumnKind
    count: int = 0
    nulls: int = 0
    min: Number | None = None
    max: Number | None = None
    mean: float | None = None
    m2: float = 0.0
    sketch: QuantileSketch | None = None
    distinct_sketch: HyperLogLog | None = None
    categories: CategoryCounter | None = None
    #: The exact sums behind ``mean`` and ``m2`` (see :mod:`loopml.profiling.moments`); None
    #: when they are the statistics of one batch (the sums follow from them) or not finite.
    sums: Moments | None = None

    @classmethod
    def empty(cls, kind: ColumnKind) -> ColumnProfile:
        """The profile of no values of a column of this kind."""
        if kind == "numeric":
            return cls(kind, sketch=QuantileSketch(), distinct_sketch=HyperLogLog())
        if kind == "categorical":
            return cls(kind, distinct_sketch=HyperLogLog(), categories=CategoryCounter())
        return cls(kind)

    # -- statistics -------------------------------------------------------------------------

    @property
    def variance(self) -> float | None:
        return None if self.count == 0 else self.m2 / self.count

    @property
    def std(self) -> float | None:
        variance = self.variance
        return None if variance is None else math.sqrt(max(variance, 0.0))

    @property
    def distinct(self) -> int | None:
        """Number of distinct non-null values: exact from complete category counts, else the
        HyperLogLog estimate; None for "other" columns."""
        if self.categories is not None and self.categories.complete:
            return len(self.categories.items)
        if self.distinct_sketch is None:
            return None
        return min(round(self.distinct_sketch.estimate()), self.count)

    def _numeric_sketch(self, what: str) -> QuantileSketch:
        if self.sketch is None:
            raise InvalidArgument(f"{what} needs a numeric column; this one is {self.kind}")
        return self.sketch

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` in [0, 1] (within about 1%); None without values.

        The quantile q is the value of rank ``floor(q * (count - 1))`` in sorted order (numpy's
        ``method="lower"``); for integer columns it is rounded to an integer.
        """
        return self.quantiles([q])[0]

    def quantiles(self, qs: list[float] | tuple[float, ...]) -> list[float | None]:
        """The values at several quantiles (see :meth:`quantile`)."""
        sketch = self._numeric_sketch("quantile()")
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise InvalidArgument(f"a quantile must be between 0 and 1, got {q}")
        if self.count == 0 or sketch.count == 0:
            return [None for _ in qs]
        values = sketch.quantiles(np.asarray(qs, dtype=np.float64))
        # The exact extremes are known: clamp the sketch's approximations to them.
        assert self.min is not None and self.max is not None
        low, high = float(self.min), float(self.max)
        values = np.clip(values, low, high)
        if isinstance(self.min, int) and isinstance(self.max, int):
            # Integer columns (and dates and times) have integer quantiles.
            values = np.rint(values)
        return [high if q >= 1 else low if q <= 0 else float(v)
                for q, v in zip(qs, values.tolist(), strict=True)]

    def cdf(self, x: float | list[float] | np.ndarray[Any, Any]) -> Any:
        """The fraction of non-null values at or below ``x`` (a number or an array of them)."""
        sketch = self._numeric_sketch("cdf()")
        xs = np.asarray(x, dtype=np.float64)
        if self.count == 0:
            result = np.full(xs.shape, np.nan)
        else:
            assert self.min is not None and self.max is not None
            result = sketch.cdf(xs)
            result = np.where(xs < float(self.min), 0.0, result)
            result = np.where(xs >= float(self.max), 1.0, result)
        return float(result) if result.ndim == 0 else result

    def histogram(self, bins: int = 20) -> tuple[list[float], list[int]]:
        """Equal-width bin ``edges`` (``bins + 1``) from min to max, and estimated ``counts``.

        The counts come from the quantile sketch and add up to ``count``.
        """
        sketch = self._numeric_sketch("histogram()")
        if bins < 1:
            raise InvalidArgument(f"bins must be at least 1, got {bins}")
        if self.count == 0 or self.min is None or self.max is None:
            return [], []
        low, high = float(self.min), float(self.max)
        if low == high:
            return [low, high], [self.count]
        edges = np.linspace(low, high, bins + 1)
        cumulative = np.rint(self.cdf(edges[1:-1]) * self.count).astype(np.int64) \
            if sketch.count else np.zeros(bins - 1, dtype=np.int64)
        cumulative = np.concatenate([[0], np.maximum.accumulate(cumulative), [self.count]])
        return edges.tolist(), np.diff(cumulative).tolist()

    def top(self, n: int = 10) -> list[tuple[Label, int]]:
        """The ``n`` most frequent values of a categorical column with their counts."""
        return [] if self.categories is None else self.categories.top(n)

    def summary(self) -> dict[str, Any]:
        """The figures a person reads: nulls, range, moments, quantiles, distinct, top values,
        histogram (JSON-able)."""
        out: dict[str, Any] = {"kind": self.kind, "count": self.count, "nulls": self.nulls,
                               "distinct": self.distinct}
        if self.kind == "numeric":
            quantiles = self.quantiles(SUMMARY_QUANTILES)
            edges, counts = self.histogram()
            out.update(min=self.min, max=self.max, mean=self.mean, std=self.std,
                       quantiles={f"p{round(q * 100)}": v
                                  for q, v in zip(SUMMARY_QUANTILES, quantiles, strict=True)},
                       histogram={"edges": edges, "counts": counts})
        if self.categories is not None:
            out.update(top=[[label, count] for label, count in self.top(10)],
                       other=self.categories.total - sum(c for _, c in self.top(10)))
        return out

    # -- merging and storage ----------------------------------------------------------------

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """The profile of both columns' values together (same kind)."""
        if other.kind != self.kind:
            raise InvalidArgument(f"cannot merge a {self.kind} column profile with a "
                                  f"{other.kind} one")
        mean, m2, sums = merge_moments((self.count, self.mean, self.m2, self.sums),
                                       (other.count, other.mean, other.m2, other.sums))

        def both(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else a.merge(b)

        return ColumnProfile(
            self.kind, self.count + other.count, self.nulls + other.nulls,
            _merge_bound(self.min, other.min, min), _merge_bound(self.max, other.max, max),
            mean, m2, both(self.sketch, other.sketch),
            both(self.distinct_sketch, other.distinct_sketch),
            both(self.categories, other.categories), sums)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_dict` gives back an equal profile."""
        data: dict[str, Any] = {"kind": self.kind, "count": self.count, "nulls": self.nulls}
        if self.kind == "numeric":
            data.update({key: _to_json(getattr(self, key)) for key in _MOMENTS})
            if self.sums is not None:
                data["sums"] = self.sums.to_json()
        if self.sketch is not None:
            data["sketch"] = self.sketch.to_dict()
        if self.distinct_sketch is not None:
            data["distinct"] = self.distinct_sketch.to_dict()
        if self.categories is not None:
            data["categories"] = self.categories.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: object) -> ColumnProfile:
        what = "column profile"
        kind = require(data, "kind", str, what=what)
        if kind not in KINDS:
            raise InvalidArgument(f"{what} kind must be one of {', '.join(KINDS)}, got {kind!r}")
        assert isinstance(data, dict)
        low, high, mean, m2 = (_from_json(data.get(key), key) for key in _MOMENTS)
        count = require(data, "count", int, what=what)
        return cls(
            kind, count, require(data, "nulls", int, what=what),
            low, high, None if mean is None else float(mean), float(m2 or 0.0),
            QuantileSketch.from_dict(data["sketch"]) if "sketch" in data else None,
            HyperLogLog.from_dict(data["distinct"]) if "distinct" in data else None,
            CategoryCounter.from_dict(data["categories"]) if "categories" in data else None,
            Moments.from_json(count, data["sums"]) if "sums" in data else None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ColumnProfile):
            return NotImplemented
        return all(_same(getattr(self, name), getattr(other, name)) for name in (
            "kind", "count", "nulls", *_MOMENTS, "sketch", "distinct_sketch", "categories"))

    __hash__ = None  # type: ignore[assignment]

