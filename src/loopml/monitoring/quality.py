"""Data quality of a window against the training profile (and the dataset contract).

::

    table, issues = conform(window.features, reference)   # types of the reference
    watch = QualityObserver(reference, contract=contract, schema_issues=issues)
    current = profile_table(table, observers=[watch])     # one pass: profile and checks
    report = watch.report(current.rows)                   # QualityReport

    quality_report(reference, window.features)            # the same without the profile

:func:`conform` casts each column to the type of the reference's column. Values that do not
read as that type (text junk in a numeric column) become null and are counted as
``invalid_value``; a column none of whose values read is a ``retyped_column``, as is a column
of another family of types (numbers sent for a text column); a column the reference has and
the window lacks is a ``missing_column``. A column the window has and the reference lacks is an
``unexpected_column``: reported with severity ``warning`` (the model ignores it), an error only
with ``fail_on_unexpected``. An empty window has no issues: there is no verdict on nothing.

:class:`QualityObserver` counts, per column, during the profiling pass, and judges each count
against what chance alone gives on a window like the training data, at ``significance``
(0.001: about one false alarm per thousand checks, whatever the window's size):

- ``missing``: nulls (and NaN). Fails when the window's share of missing values is above the
  reference's share plus ``missing_margin`` (5 points) *and* significantly so (a one-sided
  binomial z-test against that allowed share): 8 nulls in 100 rows is no evidence of a share
  above 7%, 200 in 1,000 are.
- ``out_of_range``: numbers below the training minimum or above the maximum, widened on each
  side by ``range_tolerance`` (5%) of the training range. Training extremes are the extremes of
  a sample of n values, so even unchanged data passes them: a new value lies outside with
  chance at most 2/(n+1), whatever the distribution, and the share of the window outside is
  itself random (the reference's extremes fall where they fall: a Gamma(2, 1/n) share, whose
  99.9th percentile is 9.2/n). The check fails when the count outside the widened range is
  significantly above that percentile's expectation (Poisson tail): with n = 100,000, a
  million-row window tolerates about 120 stray values and a 1,000-row window two, while
  sentinel values (-999 in 0.5% of rows) fail from a few hundred rows up. Dates and times
  are not checked against the training range (time moves on); the contract's bounds still
  apply.
- ``unseen_category``: values of a categorical column that never occurred in the reference,
  when the reference counted every category (its counts are complete). Unchanged data meets
  unseen categories too, about as often as the reference met categories seen once (Good-Turing:
  a share of (singletons + 6.9)/(n + 1) at the 99.9th percentile); the check fails when the
  count is significantly above that.
- The contract's column rules (``nullable`` → ``missing``, ``min``/``max`` → ``out_of_range``,
  ``categories`` → ``unseen_category``, ``unique`` → ``duplicate``, ``type`` →
  ``retyped_column``): any violation fails. A contract's row-count bounds describe a dataset,
  not a window, and are not checked.

All per-batch work is vectorised (Arrow compute kernels); a numeric column whose batch lies
inside the range costs one min/max.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from loopml.datasets.contract import Contract, ContractChecker
from loopml.errors import InvalidArgument
from loopml.monitoring.conform import (
    conform,
    examples_of,
    parse_arrow_type,
    show_value,
    type_family,
)
from loopml.monitoring.results import QualityIssue, QualityReport
from loopml.profiling import ColumnProfile, TableProfile
from loopml.profiling.arrays import arrow_array

__all__ = ["DEFAULT_MISSING_MARGIN", "DEFAULT_RANGE_TOLERANCE", "DEFAULT_SIGNIFICANCE",
           "QualityObserver", "quality_report"]

DEFAULT_MISSING_MARGIN = 0.05
DEFAULT_RANGE_TOLERANCE = 0.05
DEFAULT_SIGNIFICANCE = 0.001
_CONTRACT_KINDS = {"nullable": "missing", "min": "out_of_range", "max": "out_of_range",
                   "categories": "unseen_category", "unique": "duplicate",
                   "type": "retyped_column", "missing": "missing_column"}


# -- conforming a window to the reference's types ----------------------------------------------


# -- the checks of the profiling pass -----------------------------------------------------------

def _allowed_share(reference: ColumnProfile) -> float:
    total = reference.count + reference.nulls
    return reference.nulls / total if total else 0.0


class _Column:
    """The counts of one column during the pass."""

    def __init__(self, name: str, profile: ColumnProfile, type_text: str,
                 observer: QualityObserver) -> None:
        self.name, self.options = name, observer
        self.values = self.nulls = self.outside = self.unseen = 0
        self.unreadable, self.check_missing = 0, True  # set from conform()'s issues
        self.examples: dict[str, tuple[list[str], list[int]]] = {}
        self.bounds: tuple[float, float] | None = None
        family = type_family(parse_arrow_type(type_text) or pa.null())
        if profile.kind == "numeric" and family == "number" and profile.count \
                and profile.min is not None and profile.max is not None \
                and math.isfinite(profile.min) and math.isfinite(profile.max):
            slack = observer.range_tolerance * (float(profile.max) - float(profile.min))
            self.bounds = (float(profile.min) - slack, float(profile.max) + slack)
        self.allowed: list[Any] | None = None
        if profile.categories is not None and profile.categories.complete and profile.count:
            self.allowed = list(profile.categories.counts())
        self._value_sets: dict[pa.DataType, pa.Array | None] = {}

    def _keep(self, kind: str, values: Any, mask: Any, first_row: int) -> None:
        shown, rows = self.examples.setdefault(kind, ([], []))
        need = self.options.max_examples - len(rows)
        if need > 0:
            more, where = examples_of(values, mask, first_row, need)
            shown += more
            rows += where

    def observe(self, array: pa.Array, first_row: int) -> None:
        self.values += len(array)
        missing = array.null_count
        if pat.is_floating(array.type):
            missing += pc.sum(pc.is_nan(array)).as_py() or 0
        if missing:
            self.nulls += missing
            self._keep("missing", array, array.is_null(nan_is_null=True), first_row)
        if self.bounds is not None and type_family(array.type) == "number":
            self._check_range(array, first_row)
        if self.allowed is not None:
            self._check_categories(array, first_row)

    def _check_range(self, array: pa.Array, first_row: int) -> None:
        if pat.is_decimal(array.type):
            array = array.cast(pa.float64())
        assert self.bounds is not None
        low, high = self.bounds
        extremes = pc.min_max(array)
        least, most = extremes["min"].as_py(), extremes["max"].as_py()
        if least is None or (low <= least and most <= high) or math.isnan(least):
            return
        # Bounds as Arrow scalars: a Python float here would make pyarrow import pandas.
        bounds = arrow_array(np.array([low, high], dtype=np.float64))
        outside = pc.or_(pc.less(array, bounds[0]), pc.greater(array, bounds[1]))
        count = outside.true_count
        if count:
            self.outside += count
            self._keep("out_of_range", array, outside, first_row)

    def _value_set(self, arrow_type: pa.DataType) -> pa.Array | None:
        if arrow_type not in self._value_sets:
            assert self.allowed is not None
            family = type_family(arrow_type)
            wanted = {"text": str, "boolean": bool}.get(family)
            labels = [label for label in self.allowed if type(label) is wanted]
            self._value_sets[arrow_type] = None if wanted is None else \
                pa.array(labels, pa.large_string() if wanted is str else pa.bool_()
                         ).cast(arrow_type)
        return self._value_sets[arrow_type]

    def _check_categories(self, array: pa.Array, first_row: int) -> None:
        if isinstance(array, pa.DictionaryArray):
            allowed = self._value_set(array.dictionary.type)
            if allowed is None:
                return
            strange = pc.invert(pc.is_in(array.dictionary, value_set=allowed))
            if not strange.true_count:
                return
            unseen = pc.take(strange, array.indices).fill_null(False)
        else:
            allowed = self._value_set(array.type)
            if allowed is None:
                return
            unseen = pc.and_(pc.is_valid(array), pc.invert(pc.is_in(array, value_set=allowed)))
        count = unseen.true_count
        if count:
            self.unseen += count
            self._keep("unseen_category", array, unseen, first_row)

    def issues(self, reference: ColumnProfile) -> list[QualityIssue]:
        found = []
        options, rows = self.options, self.values
        # Values conform() could not read are reported as such, not again as missing.
        nulls = self.nulls - self.unreadable
        if rows and nulls > 0 and self.check_missing and _too_many_missing(
                nulls, rows, _allowed_share(reference) + options.margin, options.significance):
            found.append(self._issue("missing", nulls,
                                     f"{nulls:,} of {rows:,} values are missing "
                                     f"({nulls / rows:.1%}); the reference had "
                                     f"{_allowed_share(reference):.1%}, allowed "
                                     f"{options.margin * 100:g} points more"))
        present = rows - self.nulls
        if self.outside and _beyond_chance(self.outside, present * options.extremes_bound
                                           / (reference.count + 1), options.significance):
            low, high = _number(reference.min), _number(reference.max)
            found.append(self._issue("out_of_range", self.outside,
                                     f"{self.outside:,} value(s) outside the training range "
                                     f"[{low}, {high}] widened by "
                                     f"{options.range_tolerance:.0%} of its width"))
        if self.unseen and _beyond_chance(self.unseen, present * self.unseen_share(reference),
                                          options.significance):
            found.append(self._issue("unseen_category", self.unseen,
                                     f"{self.unseen:,} value(s) of categories never seen in "
                                     "the training data"))
        return found

    def unseen_share(self, reference: ColumnProfile) -> float:
        """The share of values of unseen categories that chance gives (a high percentile)."""
        assert reference.categories is not None
        singletons = sum(1 for _, count in reference.categories.items if count == 1)
        return (singletons - math.log(self.options.significance)) / (reference.count + 1)

    def _issue(self, kind: str, count: int, what: str) -> QualityIssue:
        shown, rows = self.examples.get(kind, ([], []))
        if kind == "missing":  # the rows say it all
            shown, example = [], f" (rows {', '.join(map(str, rows))}, …)" if rows else ""
        else:
            example = f", e.g. {', '.join(map(repr, shown))} (rows " \
                      f"{', '.join(map(str, rows))})" if shown else ""
        return QualityIssue(self.name, kind, count, self.values,
                            f"column {self.name!r}: {what}{example}", tuple(shown), tuple(rows))


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


def _too_many_missing(nulls: int, rows: int, allowed: float, significance: float) -> bool:
    """Whether ``nulls`` of ``rows`` is significantly above the share ``allowed``."""
    if allowed >= 1.0 or nulls / rows <= allowed:
        return False
    if allowed <= 0.0:
        return True
    z = (nulls - rows * allowed) / math.sqrt(rows * allowed * (1.0 - allowed))
    return z > NormalDist().inv_cdf(1.0 - significance)


def _beyond_chance(count: int, expected: float, significance: float) -> bool:
    """Whether ``count`` events are significantly more than a Poisson count of mean
    ``expected`` (exact tail up to a mean of 50, normal approximation above)."""
    if count <= expected:
        return False
    if expected > 50.0:
        z = (count - 0.5 - expected) / math.sqrt(expected)
        return z > NormalDist().inv_cdf(1.0 - significance)
    term = below = math.exp(-expected)
    for i in range(1, count):
        term *= expected / i
        below += term
    return 1.0 - below < significance


def _extremes_bound(significance: float) -> float:
    """t such that a Gamma(2, 1) share exceeds t with chance ``significance``: the share of
    new values beyond a sample's extremes is at most Gamma(2, 1/n) distributed."""
    low, high = 0.0, 100.0
    for _ in range(60):
        middle = (low + high) / 2
        if math.exp(-middle) * (1 + middle) > significance:
            low = middle
        else:
            high = middle
    return high


class QualityObserver:
    """Counts a window's quality issues during its profiling pass (a ``BatchObserver``).

    ``reference`` is the training profile; ``schema_issues`` are issues found before the pass
    (by :func:`conform`), reported with the rest. See the module's documentation for the
    checks and the meaning of ``missing_margin``, ``range_tolerance`` and ``significance``.
    """

    def __init__(self, reference: TableProfile, *, contract: Contract | None = None,
                 max_examples: int = 5, missing_margin: float = DEFAULT_MISSING_MARGIN,
                 range_tolerance: float = DEFAULT_RANGE_TOLERANCE,
                 significance: float = DEFAULT_SIGNIFICANCE,
                 schema_issues: Sequence[QualityIssue] = ()) -> None:
        for key, value, high in (("missing_margin", missing_margin, 1.0),
                                 ("range_tolerance", range_tolerance, math.inf),
                                 ("significance", significance, 0.5)):
            if not 0.0 <= value <= high or (key == "significance" and value == 0.0):
                raise InvalidArgument(f"{key} must be between 0 and {high}, got {value!r}")
        if max_examples < 0:
            raise InvalidArgument(f"max_examples must be 0 or more, got {max_examples!r}")
        self.reference = reference
        self.contract = None if contract is None else Contract(contract.columns)
        self.max_examples, self.margin = max_examples, missing_margin
        self.range_tolerance, self.significance = range_tolerance, significance
        self.extremes_bound = _extremes_bound(significance)
        self.schema_issues = tuple(schema_issues)
        self._columns = {c.name: _Column(c.name, reference.columns[c.name], c.type, self)
                         for c in reference.schema}
        for issue in self.schema_issues:
            column = self._columns.get(issue.column)
            if column is not None and issue.kind == "invalid_value":
                column.unreadable += issue.count
            elif column is not None and issue.kind == "retyped_column":
                column.check_missing = False
        self._positions: dict[pa.Schema, list[tuple[int, _Column]]] = {}
        self._checker: ContractChecker | None = None

    def observe(self, batch: pa.RecordBatch, first_row: int) -> None:
        positions = self._positions.get(batch.schema)
        if positions is None:
            names = batch.schema.names
            positions = [(names.index(name), column) for name, column in self._columns.items()
                         if name in names]
            self._positions[batch.schema] = positions
        for index, column in positions:
            column.observe(batch.column(index), first_row)
        if self.contract is not None:
            if self._checker is None:
                self._checker = ContractChecker(self.contract, batch.schema)
            self._checker.observe(batch, first_row)

    def report(self, rows: int) -> QualityReport:
        """The issues of the ``rows`` observed; none for an empty window (no verdict)."""
        if rows == 0:
            return QualityReport(0, ())
        issues = list(self.schema_issues)
        for name, column in self._columns.items():
            issues += column.issues(self.reference.columns[name])
        if self._checker is not None:
            issues += self._contract_issues(rows, {(i.column, i.kind) for i in issues})
        return QualityReport(rows, tuple(issues))

    def _contract_issues(self, rows: int, known: set[tuple[str, str]]) -> list[QualityIssue]:
        assert self._checker is not None
        found = []
        for violation in self._checker.report(rows).violations:
            kind = _CONTRACT_KINDS.get(violation.rule, violation.rule)
            column = violation.column or ""
            if kind in ("missing_column", "retyped_column") and (column, kind) in known:
                continue  # conform said it already
            rows_shown: tuple[int, ...] = ()
            shown = tuple(show_value(v) for v in violation.examples[:self.max_examples])
            if violation.rule == "nullable":
                rows_shown, shown = tuple(int(v) for v in violation.examples[:len(shown)]), ()
            found.append(QualityIssue(column, kind, violation.count, rows,
                                      f"contract: {violation.message}", shown, rows_shown))
        return found


def quality_report(reference: TableProfile, current: pa.Table, *,
                   contract: Contract | None = None, max_examples: int = 5,
                   missing_margin: float = DEFAULT_MISSING_MARGIN,
                   range_tolerance: float = DEFAULT_RANGE_TOLERANCE,
                   significance: float = DEFAULT_SIGNIFICANCE,
                   fail_on_unexpected: bool = False) -> QualityReport:
    """The quality of ``current`` against ``reference``: :func:`conform`, then the checks of
    :class:`QualityObserver` over its batches."""
    table, issues = conform(current, reference, max_examples=max_examples,
                            fail_on_unexpected=fail_on_unexpected)
    observer = QualityObserver(reference, contract=contract, max_examples=max_examples,
                               missing_margin=missing_margin, range_tolerance=range_tolerance,
                               significance=significance, schema_issues=issues)
    first_row = 0
    for batch in table.to_batches():
        observer.observe(batch, first_row)
        first_row += batch.num_rows
    return observer.report(table.num_rows)

