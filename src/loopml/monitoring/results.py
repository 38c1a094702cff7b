"""What a monitoring check finds: plain frozen values, JSON-able with ``to_dict``.

::

    MonitorReport                         one window (or one compare) against a reference
     ├── drift: DriftReport               per-column drift and the dataset-level verdict
     │    └── columns: [ColumnDrift]      statistics, the rule's verdict and its reason
     ├── quality: QualityReport           missing, out-of-range, unseen, schema, junk values
     │    └── issues: [QualityIssue]
     └── performance: PerformanceReport   metrics on joined delayed labels (or None)

Everything here is computed by pure functions (:mod:`loopml.monitoring.drift`,
:mod:`loopml.monitoring.quality`, :mod:`loopml.monitoring.performance`); persistence, alerts
and reports read these values and never recompute them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["ColumnDrift", "ColumnRole", "DriftReport", "MonitorReport", "PerformanceReport",
           "QualityIssue", "QualityReport"]

ColumnRole = Literal["feature", "prediction", "target"]


def _finite(value: Any) -> Any:
    """JSON has no infinities or NaN: they become None (statistics) recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """The drift of one column between a reference and a current sample.

    ``statistics`` holds every computed measure by name (numeric: ``ks``, ``ks_p_value``,
    ``wasserstein`` (normalised by the reference standard deviation), ``psi``; categorical:
    ``chi2``, ``chi2_p_value``, ``jensen_shannon``, ``psi``). ``p_value`` is the test's p-value
    after the correction for the number of columns tested, ``effect`` the name of the effect
    size the rule compares with ``threshold``. ``drifted`` is the rule's verdict and ``reason``
    says why in words, with the figures. ``weight`` is the column's share in the dataset-level
    verdict (feature importance, or equal weights).
    """

    column: str
    kind: Literal["numeric", "categorical"]
    role: ColumnRole
    reference_count: int
    current_count: int
    statistics: dict[str, float]
    p_value: float | None
    effect: str
    effect_value: float | None
    threshold: float
    drifted: bool
    reason: str
    weight: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Per-column drift and the dataset-level verdict.

    ``score`` is the weighted share of drifted feature columns (weights: feature importance
    when the model provides it, else equal); the dataset drifted when ``score`` reaches
    ``threshold``. ``rule`` describes the per-column rule in words (thresholds included).
    ``skipped`` names columns not compared and why (kind "other", no values on one side).
    """

    columns: tuple[ColumnDrift, ...]
    score: float
    threshold: float
    drifted: bool
    rule: str
    reference_rows: int
    current_rows: int
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def __getitem__(self, column: str) -> ColumnDrift:
        for check in self.columns:
            if check.column == column:
                return check
        from loopml.errors import InvalidArgument

        raise InvalidArgument(f"no drift check for column {column!r}; checked: "
                              f"{', '.join(c.column for c in self.columns) or 'none'}")

    def to_dict(self) -> dict[str, Any]:
        return {"score": _finite(self.score), "threshold": self.threshold,
                "drifted": self.drifted, "rule": self.rule,
                "reference_rows": self.reference_rows, "current_rows": self.current_rows,
                "drifted_columns": self.drifted_columns, "skipped": dict(self.skipped),
                "columns": [c.to_dict() for c in self.columns]}


@dataclass(frozen=True, slots=True)
class QualityIssue:
    """One kind of data-quality failure in one column of a window.

    ``kind`` is ``missing`` (share of nulls above the reference's by more than the allowed
    margin), ``out_of_range`` (outside the training range or the dataset contract),
    ``unseen_category``, ``missing_column``, ``retyped_column``, ``unexpected_column`` or
    ``invalid_value`` (non-numeric junk in a numeric column), or ``duplicate`` (a contract's
    ``unique`` rule). ``examples`` are a few offending values (as text, truncated) and ``rows``
    their row numbers in the window. ``severity`` ``warning`` (e.g. an unexpected column, which
    the model ignores) is reported without failing the window.
    """

    column: str
    kind: str
    count: int
    total: int
    message: str
    examples: tuple[str, ...] = ()
    rows: tuple[int, ...] = ()
    severity: Literal["error", "warning"] = "error"

    @property
    def share(self) -> float:
        return self.count / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share": self.share}


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The data-quality issues of a window (empty ``issues``: the window is clean); it failed
    when an issue has severity ``error``."""

    rows: int
    issues: tuple[QualityIssue, ...]

    @property
    def failed(self) -> bool:
        return any(issue.severity == "error" for issue in self.issues)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "failed": self.failed,
                "issues": [issue.to_dict() for issue in self.issues]}


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    """Model metrics on the rows of a window whose labels arrived.

    ``task`` is ``classification`` (accuracy, f1, auc where scores exist) or ``regression``
    (rmse, mae, r2). ``baseline`` holds the model version's validation metrics it is compared
    with, ``degraded`` names the metrics worse than baseline by more than the tolerance, with
    the reason in ``message``.
    """

    task: Literal["classification", "regression"]
    labelled: int
    rows: int
    metrics: dict[str, float]
    baseline: dict[str, float]
    degraded: tuple[str, ...]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """All checks of one window against one reference.

    ``empty`` is True (and ``drift`` None) when the window held no rows: no verdict is given
    on nothing. ``window`` is the time span in ms since the epoch, when the window came from a
    payload log.
    """

    reference: str
    current: str
    rows: int
    drift: DriftReport | None
    quality: QualityReport | None
    performance: PerformanceReport | None = None
    window: tuple[int, int] | None = None
    deployment: str | None = None
    model_version: str | None = None

    @property
    def empty(self) -> bool:
        return self.rows == 0

    @property
    def failed_checks(self) -> list[str]:
        """The checks that failed: ``drift``, ``quality``, ``performance``."""
        failed = []
        if self.drift is not None and self.drift.drifted:
            failed.append("drift")
        if self.quality is not None and self.quality.failed:
            failed.append("quality")
        if self.performance is not None and self.performance.degraded:
            failed.append("performance")
        return failed

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "current": self.current, "rows": self.rows,
                "empty": self.empty, "window": list(self.window) if self.window else None,
                "deployment": self.deployment, "model_version": self.model_version,
                "failed_checks": self.failed_checks,
                "drift": None if self.drift is None else self.drift.to_dict(),
                "quality": None if self.quality is None else self.quality.to_dict(),
                "performance": None if self.performance is None
                else self.performance.to_dict()}
