"""A capped counter of categories: exact counts of up to ``capacity`` values, then top-K.

Counts come from Arrow's hash-based ``value_counts`` (or a ``bincount`` of dictionary indices),
so no Python code runs per row; only the distinct values of a batch become Python objects. While
a column has at most ``capacity`` distinct values (1,000 by default) the counts are exact and
merging is exact. Past that, the counter keeps the ``capacity`` most frequent values (ties broken
by value, so the result does not depend on the order of batches within a batch's count) and adds
the rest to ``other`` (ties are broken by value, so the result is deterministic): the top values
of a high-cardinality column are then approximate.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from loopml.errors import InvalidArgument
from loopml.profiling.arrays import arrow_array, numpy_values
from loopml.profiling.codec import require

__all__ = ["DEFAULT_CAPACITY", "CategoryCounter", "Label", "value_counts"]

DEFAULT_CAPACITY = 1000
# Item lists longer than this (as JSON) are stored compressed.
_READABLE_BYTES = 2048
Label = str | bool | int | float


def _order(item: tuple[Label, int]) -> tuple[int, str, Label]:
    # Most frequent first; ties by type name, then value (labels of one column share a type).
    return -item[1], type(item[0]).__name__, item[0]


def value_counts(array: pa.Array) -> tuple[pa.Array, np.ndarray[Any, Any]]:
    """Distinct non-null values of ``array`` and how often each occurs."""
    if pat.is_dictionary(array.type):
        assert isinstance(array, pa.DictionaryArray)
        indices = array.indices
        counts = np.bincount(numpy_values(indices.drop_null() if indices.null_count
                                          else indices), minlength=len(array.dictionary))
        present = np.flatnonzero(counts)
        values = array.dictionary.take(arrow_array(present))
        if values.null_count:  # a null inside the dictionary is a null value
            valid = values.is_valid()
            return values.filter(valid), counts[present][numpy_values(valid)]
        return values, counts[present]
    counted = pc.value_counts(array.drop_null() if array.null_count else array)
    return counted.field("values"), numpy_values(counted.field("counts"))


@dataclass(frozen=True)
class CategoryCounter:
    """Counts of the most frequent values of a column, plus the count of all ``other`` values."""

    items: tuple[tuple[Label, int], ...] = ()
    other: int = 0
    capacity: int = DEFAULT_CAPACITY

    @classmethod
    def from_arrow(cls, array: pa.Array, *,
                   capacity: int = DEFAULT_CAPACITY) -> CategoryCounter:
        """The counter of the non-null values of a string, boolean or dictionary array."""
        values, counts = value_counts(array)
        return cls.from_counts(values, counts, capacity=capacity)

    @classmethod
    def from_counts(cls, values: pa.Array, counts: np.ndarray[Any, Any], *,
                    capacity: int = DEFAULT_CAPACITY) -> CategoryCounter:
        """The counter of distinct ``values`` seen ``counts`` times (see :func:`value_counts`)."""
        other = 0
        if len(values) > capacity:
            # Keep the top `capacity` in Arrow before making Python objects of them.
            table = pa.Table.from_arrays([arrow_array(counts.astype(np.int64)), values],
                                         names=["count", "value"])
            order = pc.sort_indices(table, sort_keys=[("count", "descending"),
                                                      ("value", "ascending")])
            keep = order[:capacity]
            kept = numpy_values(keep)
            other = int(counts.sum()) - int(counts[kept].sum())
            values, counts = values.take(keep), counts[kept]
        pairs = zip(values.to_pylist(), counts.tolist(), strict=True)
        return cls(tuple(sorted(pairs, key=_order)), other, capacity)

    @property
    def total(self) -> int:
        """Number of values counted (in ``items`` and ``other``)."""
        return sum(count for _, count in self.items) + self.other

    @property
    def complete(self) -> bool:
        """Whether every value seen is in ``items`` with its exact count."""
        return self.other == 0

    def counts(self) -> dict[Label, int]:
        return dict(self.items)

    def top(self, n: int = 10) -> list[tuple[Label, int]]:
        """The ``n`` most frequent values with their counts."""
        return list(self.items[:n])

    def merge(self, other: CategoryCounter) -> CategoryCounter:
        """The counter of both streams (exact while the distinct values fit the capacity)."""
        merged = dict(self.items)
        for label, count in other.items:
            merged[label] = merged.get(label, 0) + count
        ordered = sorted(merged.items(), key=_order)
        capacity = min(self.capacity, other.capacity)
        dropped = sum(count for _, count in ordered[capacity:])
        return CategoryCounter(tuple(ordered[:capacity]), self.other + other.other + dropped,
                               capacity)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_dict` gives back an equal counter.

        Items are a readable ``[[value, count], …]`` list, or when that list is long, the same
        list as compressed JSON text under ``items_z`` (a column of a thousand names shrinks
        several times).
        """
        items = [[label, count] for label, count in self.items]
        data: dict[str, Any] = {"capacity": self.capacity, "other": self.other}
        text = json.dumps(items, ensure_ascii=False, separators=(",", ":"))
        if len(text) <= _READABLE_BYTES:
            data["items"] = items
        else:
            packed = zlib.compress(text.encode("utf-8"), 9)
            data["items_z"] = base64.b64encode(packed).decode("ascii")
        return data

    @classmethod
    def from_dict(cls, data: object) -> CategoryCounter:
        what = "category counts"
        capacity = require(data, "capacity", int, what=what)
        other = require(data, "other", int, what=what)
        if isinstance(data, dict) and "items_z" in data:
            raw = _unpack(require(data, "items_z", str, what=what), what=what)
        else:
            raw = require(data, "items", list, what=what)
        items: list[tuple[Label, int]] = []
        for entry in raw:
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], int)
                    and isinstance(entry[0], str | bool | int | float)):
                raise InvalidArgument(f"{what} items must be [value, count] pairs, "
                                      f"got {entry!r:.80}")
            items.append((entry[0], entry[1]))
        return cls(tuple(items), other, capacity)


def _unpack(text: str, *, what: str) -> Any:
    try:
        return json.loads(zlib.decompress(base64.b64decode(text, validate=True)))
    except (ValueError, zlib.error):
        raise InvalidArgument(f"{what}: 'items_z' is not compressed JSON") from None
