"""Value skew between two versions of a table, read from their profiles alone.

When a version is added, its profile is compared with its parent's: a column whose mean moved
by more than ``mean_shift`` parent standard deviations, whose variance grew or shrank by more
than ``variance_ratio``, whose category frequencies moved by more than ``category_shift`` (total
variation distance), or whose share of nulls changed by more than ``null_shift`` is reported as
a :class:`Shift`. Columns added, removed or retyped are schema changes, not shifts (see
:func:`loopml.profiling.schema.schema_diff`), and are skipped here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loopml.errors import InvalidArgument
from loopml.profiling.column import ColumnProfile
from loopml.profiling.table import TableProfile

__all__ = ["Shift", "profile_shift"]


@dataclass(frozen=True, slots=True)
class Shift:
    """One statistic of one column that moved past its threshold.

    ``kind`` is ``mean_shift`` (in parent standard deviations), ``variance_ratio`` (larger over
    smaller variance; infinite when one side is constant), ``category_shift`` (total variation
    distance between category frequencies) or ``null_shift`` (change in the share of nulls).
    """

    column: str
    kind: str
    value: float
    threshold: float
    message: str


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _null_shift(name: str, parent: ColumnProfile, child: ColumnProfile,
                threshold: float) -> Shift | None:
    before, after = parent.count + parent.nulls, child.count + child.nulls
    if not before or not after:
        return None
    value = abs(child.nulls / after - parent.nulls / before)
    if value <= threshold:
        return None
    return Shift(name, "null_shift", value, threshold,
                 f"column {name!r}: nulls went from {_percent(parent.nulls, before)} to "
                 f"{_percent(child.nulls, after)} of rows (threshold {threshold:.0%})")


def _mean_shift(name: str, parent: ColumnProfile, child: ColumnProfile,
                threshold: float) -> Shift | None:
    if parent.mean is None or child.mean is None or not math.isfinite(parent.mean) or \
            not math.isfinite(child.mean):
        return None  # no mean to compare (no values, or infinite ones)
    delta = child.mean - parent.mean
    scale = parent.std or child.std
    if not scale:
        if delta == 0:
            return None
        value = math.inf
        detail = "a constant column changed value"
    else:
        value = abs(delta) / scale
        detail = f"{value:.2f} standard deviations of the parent"
        if value <= threshold:
            return None
    return Shift(name, "mean_shift", value, threshold,
                 f"column {name!r}: mean moved from {parent.mean:.6g} to {child.mean:.6g} "
                 f"({detail}; threshold {threshold:g})")


def _variance_ratio(name: str, parent: ColumnProfile, child: ColumnProfile,
                    threshold: float) -> Shift | None:
    before, after = parent.variance, child.variance
    if before is None or after is None or not math.isfinite(before) or \
            not math.isfinite(after) or (before == 0 and after == 0):
        return None
    value = math.inf if min(before, after) == 0 else max(after / before, before / after)
    if value <= threshold:
        return None
    direction = "grew" if after > before else "shrank"
    return Shift(name, "variance_ratio", value, threshold,
                 f"column {name!r}: spread {direction}, standard deviation {math.sqrt(before):.6g}"
                 f" → {math.sqrt(after):.6g} (variance ratio {value:.3g}; threshold "
                 f"{threshold:g})")


def _category_shift(name: str, parent: ColumnProfile, child: ColumnProfile,
                    threshold: float) -> Shift | None:
    if parent.categories is None or child.categories is None:
        return None
    before, after = parent.categories.total, child.categories.total
    if not before or not after:
        return None
    old, new = parent.categories.counts(), child.categories.counts()
    labels = list(dict.fromkeys([*old, *new]))
    moves = {label: new.get(label, 0) / after - old.get(label, 0) / before for label in labels}
    other = child.categories.other / after - parent.categories.other / before
    value = 0.5 * (sum(abs(m) for m in moves.values()) + abs(other))
    if value <= threshold:
        return None
    largest = sorted(labels, key=lambda label: -abs(moves[label]))[:3]
    changes = ", ".join(f"{label!r} {_percent(old.get(label, 0), before)} → "
                        f"{_percent(new.get(label, 0), after)}" for label in largest)
    return Shift(name, "category_shift", value, threshold,
                 f"column {name!r}: category frequencies moved by {value:.2f} (total variation; "
                 f"threshold {threshold:g}); largest changes: {changes}")


def profile_shift(parent: TableProfile, child: TableProfile, *, mean_shift: float = 0.5,
                  variance_ratio: float = 2.0, category_shift: float = 0.1,
                  null_shift: float = 0.1) -> list[Shift]:
    """The statistics of ``child`` that moved past a threshold against ``parent``.

    Only columns present in both with the same kind of profile are compared.
    """
    if mean_shift < 0 or variance_ratio < 1 or not 0 <= category_shift <= 1 or \
            not 0 <= null_shift <= 1:
        raise InvalidArgument(
            f"thresholds must be mean_shift >= 0, variance_ratio >= 1 and category_shift, "
            f"null_shift in [0, 1]; got mean_shift={mean_shift}, variance_ratio="
            f"{variance_ratio}, category_shift={category_shift}, null_shift={null_shift}")
    shifts: list[Shift] = []
    for column in child.schema:
        before, after = parent.columns.get(column.name), child.columns[column.name]
        if before is None or before.kind != after.kind:
            continue
        checks = [_null_shift(column.name, before, after, null_shift)]
        if after.kind == "numeric":
            checks += [_mean_shift(column.name, before, after, mean_shift),
                       _variance_ratio(column.name, before, after, variance_ratio)]
        elif after.kind == "categorical":
            checks.append(_category_shift(column.name, before, after, category_shift))
        shifts += [shift for shift in checks if shift is not None]
    return shifts
