"""Exact detection of repeated values across a stream of batches.

Values are reduced to stable 64-bit hashes (:func:`loopml.profiling.hashing.hash_array`: for
numbers a bijection, so exact; for strings exact up to a 2**-64 chance of collision per pair).
The hashes seen so far are kept as a few sorted runs of geometrically growing sizes (a log-
structured merge): each batch is checked against every run with ``np.searchsorted`` and then
added as a new run, and runs of similar size are merged. A stream of n values costs
O(n log n) time and 8 bytes per distinct value, and repeats are found as their batch goes by,
so examples of repeated values can be reported without a second pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from loopml.profiling.arrays import numpy_values
from loopml.profiling.hashing import hash_array

__all__ = ["DuplicateFinder"]

Array = np.ndarray[Any, Any]


class DuplicateFinder:
    """Counts the values that repeat an earlier value, and keeps a few examples."""

    def __init__(self, *, max_examples: int = 5) -> None:
        self.duplicates = 0
        self.examples: list[Any] = []
        self.rows: list[int] = []
        self._max_examples = max_examples
        self._runs: list[Array] = []

    def add(self, values: pa.Array, *, first_row: int = 0) -> None:
        """Look at the values of ``values`` (nulls are skipped); ``first_row`` is the row number
        of its first element, for the examples' row numbers."""
        if values.null_count:
            positions = np.flatnonzero(numpy_values(values.is_valid()))
            values = values.filter(values.is_valid())
        else:
            positions = np.arange(len(values))
        if not len(values):
            return
        hashes = hash_array(values)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        first = np.ones(len(ordered), dtype=bool)
        first[1:] = ordered[1:] != ordered[:-1]
        distinct = ordered[first]
        seen = np.zeros(len(distinct), dtype=bool)
        for run in self._runs:
            place = np.minimum(np.searchsorted(run, distinct), len(run) - 1)
            seen |= run[place] == distinct
        # A value repeats if it occurred earlier in this batch or in an earlier batch.
        repeated = ~first | seen[np.cumsum(first) - 1]
        count = int(np.count_nonzero(repeated))
        if count:
            self.duplicates += count
            self._keep_examples(values, positions, np.sort(order[repeated]), first_row)
        fresh = distinct[~seen]
        if len(fresh):
            self._push(fresh)

    def _keep_examples(self, values: pa.Array, positions: Array, where: Array,
                       first_row: int) -> None:
        room = self._max_examples - len(self.examples)
        if room <= 0:
            return
        for index in where[:room * 4].tolist():
            value = values[index].as_py()
            if value not in self.examples and len(self.examples) < self._max_examples:
                self.examples.append(value)
                self.rows.append(first_row + int(positions[index]))

    def _push(self, run: Array) -> None:
        self._runs.append(run)
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            newest = self._runs.pop()
            self._runs[-1] = np.sort(np.concatenate([self._runs[-1], newest]), kind="stable")
