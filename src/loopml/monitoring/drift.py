"""Whether a window drifted from a reference: the documented default rule and its report.

::

    report = drift_report(reference_profile, window_profile,
                          rules=DriftRules(columns={"age": DriftRule(numeric_threshold=0.2)}),
                          roles={"score": "prediction", "churned": "target"},
                          importance={"age": 0.4, "plan": 0.6})
    report.drifted, report.score, report.drifted_columns, report["age"].reason

The default rule
----------------
A column **drifts** when both hold:

1. its test's p-value, adjusted with Holm's method over all the columns tested, is at most
   ``alpha = 0.01`` — the two-sample Kolmogorov–Smirnov test for numeric columns, Pearson's
   chi-squared test of homogeneity for categorical ones (see :mod:`loopml.monitoring.stats`);
2. its effect size reaches the threshold — numeric: the Wasserstein-1 distance of at least
   ``0.1`` reference standard deviations; categorical: a Jensen–Shannon distance (base 2) of
   at least ``0.05``;

and each side has at least ``min_count = 50`` values (otherwise the statistics are reported
without a verdict).

Why both: the p-value alone flags everything at a million rows (a mean move of 0.02 standard
deviations has ``p < 1e-6`` there), while a distance alone false-alarms on small windows (the
Jensen–Shannon distance between two samples of the same 30 categories is about 0.2 at 100 rows,
the Wasserstein distance about 0.1 SD). The corrected p-value bounds the chance that any column
of an unchanged window is flagged by ``alpha`` (1%; measured on 1,000 unchanged windows each of
100, 300 and 1,000 rows of 25 columns: 0.8%, 0.6% and 0.9% of windows); the effect threshold
keeps changes too small to matter unflagged at any size. Calibration on 20 numeric and 5
categorical synthetic columns: a mean move of 0.5 SD gives a Wasserstein distance of 0.5, a
standard deviation grown 1.5 times about 0.4, a category gaining ten points a Jensen–Shannon
distance of 0.085 (a 50/50 column) to 0.15; a mean move of 0.02 SD gives 0.02, a category
gaining half a point 0.004 to 0.04 (a rare one doubling) — all flagged or left alone as they
should be at 1,000, 100,000 and 1,000,000 rows. A category never seen before that takes 0.5%
of the rows reaches 0.05 and is flagged once significant (the quality checks name it too).

Every threshold is configurable, for all columns (``DriftRules(default=DriftRule(...))``) or per
column (``DriftRules(columns={"age": DriftRule(...)})``): ``alpha=1`` gives a distance-only
rule, a threshold of 0 a test-only one; the effect can also be ``psi`` (both kinds) or ``ks``
(the KS distance, numeric).

The dataset
-----------
The dataset **drifts** when the weighted share of drifted feature columns reaches
``dataset_threshold = 0.2``. The weights are the model's feature importances (normalised over
the feature columns tested) when given, else equal, so one drifted feature that carries half of
the model's importance makes the dataset drift, and four drifted features out of twenty-five
of little importance do not (five of equal weight do). Columns with the role ``prediction`` or
``target`` are tested with the same rule (prediction drift, target drift) but carry no weight.

Columns not compared are listed in ``DriftReport.skipped`` with the reason: missing or retyped
in the window (the quality checks report those too), no values on one side (an empty window
has every column skipped and no verdict), or a kind that has no statistics (lists, structs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from loopml.errors import InvalidArgument
from loopml.monitoring.results import ColumnDrift, ColumnRole, DriftReport
from loopml.monitoring.stats import bonferroni, categorical_statistics, holm, numeric_statistics
from loopml.profiling.column import ColumnProfile
from loopml.profiling.table import TableProfile

__all__ = ["CATEGORICAL_EFFECTS", "NUMERIC_EFFECTS", "CategoricalEffect", "Correction",
           "DriftRule", "DriftRules", "NumericEffect", "drift_report"]

Correction = Literal["holm", "bonferroni", "none"]
NumericEffect = Literal["wasserstein", "psi", "ks"]
CategoricalEffect = Literal["jensen_shannon", "psi"]
NUMERIC_EFFECTS: tuple[str, ...] = get_args(NumericEffect)
CATEGORICAL_EFFECTS: tuple[str, ...] = get_args(CategoricalEffect)
ROLES: tuple[str, ...] = get_args(ColumnRole)
_TEST_P = {"numeric": ("KS", "ks_p_value"), "categorical": ("chi-squared", "chi2_p_value")}
_EFFECT_LABELS = {"wasserstein": ("Wasserstein", " SD"), "psi": ("PSI", ""),
                  "ks": ("KS distance", ""), "jensen_shannon": ("Jensen–Shannon", "")}
_CORRECTION_NAMES = {"holm": "Holm", "bonferroni": "Bonferroni", "none": "uncorrected"}


def _effect_text(effect: str, value: float, relation: str = " ≥ ") -> str:
    """``Wasserstein ≥ 0.1 SD``, or with ``relation=" "`` a measured ``Wasserstein 0.42 SD``."""
    label, unit = _EFFECT_LABELS[effect]
    return f"{label}{relation}{value:.3g}{unit}"


def _number(name: str, value: object, low: float, high: float, *, low_open: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or \
            value < low or value > high or (low_open and value == low):
        bound = f"{'>' if low_open else '≥'} {low:g} and ≤ {high:g}"
        raise InvalidArgument(f"{name} must be a number {bound}, got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class DriftRule:
    """When one column counts as drifted (see the module docstring for the default).

    ``alpha``: the family-wise level the corrected p-value must not exceed (1 disables the
    test). ``numeric_effect`` (``wasserstein``, ``psi`` or ``ks``) and ``numeric_threshold``,
    ``categorical_effect`` (``jensen_shannon`` or ``psi``) and ``categorical_threshold``: the
    effect size that must also be reached (0 disables it). ``min_count``: the fewest values
    each side needs for a verdict.
    """

    alpha: float = 0.01
    numeric_effect: NumericEffect = "wasserstein"
    numeric_threshold: float = 0.1
    categorical_effect: CategoricalEffect = "jensen_shannon"
    categorical_threshold: float = 0.05
    min_count: int = 50

    def __post_init__(self) -> None:
        _number("alpha", self.alpha, 0.0, 1.0, low_open=True)
        _number("numeric_threshold", self.numeric_threshold, 0.0, math.inf, low_open=False)
        _number("categorical_threshold", self.categorical_threshold, 0.0, math.inf,
                low_open=False)
        for name, value, allowed in (("numeric_effect", self.numeric_effect, NUMERIC_EFFECTS),
                                     ("categorical_effect", self.categorical_effect,
                                      CATEGORICAL_EFFECTS)):
            if value not in allowed:
                raise InvalidArgument(f"{name} must be one of {', '.join(allowed)}, "
                                      f"got {value!r}")
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, int) or \
                self.min_count < 1:
            raise InvalidArgument(f"min_count must be a whole number ≥ 1, got "
                                  f"{self.min_count!r}")

    def effect(self, kind: str) -> tuple[str, float]:
        """The effect size (statistic name) and threshold for a column of this kind."""
        if kind == "numeric":
            return self.numeric_effect, self.numeric_threshold
        return self.categorical_effect, self.categorical_threshold

    def describe(self) -> str:
        """The thresholds in words: ``p ≤ 0.01 and Wasserstein ≥ 0.1 SD (numeric) …``."""
        numeric = _effect_text(self.numeric_effect, self.numeric_threshold)
        categorical = _effect_text(self.categorical_effect, self.categorical_threshold)
        return (f"p ≤ {self.alpha:g} and {numeric} (numeric) or {categorical} "
                f"(categorical), with at least {self.min_count} values on each side")


@dataclass(frozen=True, kw_only=True)
class DriftRules:
    """The rule of every column (``default``, overridden per column by ``columns``), the
    multiple-test ``correction`` (``holm``, ``bonferroni`` or ``none``) and the
    ``dataset_threshold`` the weighted share of drifted features must reach."""

    default: DriftRule = field(default_factory=DriftRule)
    columns: Mapping[str, DriftRule] = field(default_factory=dict)
    dataset_threshold: float = 0.2
    correction: Correction = "holm"

    def __post_init__(self) -> None:
        if not isinstance(self.default, DriftRule):
            raise InvalidArgument(f"default must be a DriftRule, got "
                                  f"{type(self.default).__name__}")
        if not isinstance(self.columns, Mapping):
            raise InvalidArgument(f"columns must map column names to DriftRule, got "
                                  f"{type(self.columns).__name__}")
        for name, rule in self.columns.items():
            if not isinstance(name, str) or not isinstance(rule, DriftRule):
                raise InvalidArgument(f"columns must map column names to DriftRule, got "
                                      f"{name!r}: {type(rule).__name__}")
        # A private copy (a plain dict: the rules travel to workers, a mappingproxy cannot).
        object.__setattr__(self, "columns", dict(self.columns))
        _number("dataset_threshold", self.dataset_threshold, 0.0, 1.0, low_open=True)
        if self.correction not in _CORRECTION_NAMES:
            raise InvalidArgument(f"correction must be one of {', '.join(_CORRECTION_NAMES)}, "
                                  f"got {self.correction!r}")

    def rule(self, column: str) -> DriftRule:
        """The rule that applies to ``column``."""
        return self.columns.get(column, self.default)

    def describe(self) -> str:
        """The rule in one sentence, thresholds included."""
        correction = _CORRECTION_NAMES[self.correction]
        how = "uncorrected" if self.correction == "none" else f"{correction}-corrected"
        text = (f"a column drifts when its test (KS for numeric, chi-squared for categorical "
                f"columns; p-values {how} over the columns tested) gives "
                f"{self.default.describe()}; the dataset drifts when the importance-weighted "
                f"share of drifted features reaches {self.dataset_threshold:g}")
        if self.columns:
            text += f" (own rules for: {', '.join(sorted(self.columns))})"
        return text


# -- the report ---------------------------------------------------------------------------------

def _skip_reason(name: str, reference: TableProfile, current: TableProfile) -> str | None:
    if name not in reference.columns:
        return "not in the reference"
    if name not in current.columns:
        return "missing in the current window"
    ref, cur = reference.columns[name], current.columns[name]
    if ref.kind != cur.kind:
        return f"retyped: {ref.kind} → {cur.kind}"
    if ref.kind == "other":
        return "no drift statistics for this kind of column (lists, structs, binary)"
    if cur.count == 0:
        return "no values in the current window"
    if ref.count == 0:
        return "no values in the reference"
    return None


def _checked_options(reference: TableProfile, current: TableProfile,
                     roles: Mapping[str, ColumnRole] | None,
                     importance: Mapping[str, float] | None,
                     columns: Sequence[str] | None) -> list[str]:
    for name, role in (roles or {}).items():
        if role not in ROLES:
            raise InvalidArgument(f"the role of column {name!r} must be one of "
                                  f"{', '.join(ROLES)}, got {role!r}")
    for name, weight in (importance or {}).items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or \
                not math.isfinite(weight) or weight < 0:
            raise InvalidArgument(f"the importance of column {name!r} must be a finite number "
                                  f"≥ 0, got {weight!r}")
    if columns is None:
        return reference.column_names + [name for name in current.column_names
                                         if name not in reference.columns]
    if isinstance(columns, str):
        raise InvalidArgument(f"columns must be a list of column names, got the string "
                              f"{columns!r}; write [{columns!r}]")
    unknown = [name for name in columns
               if name not in reference.columns and name not in current.columns]
    if unknown:
        raise InvalidArgument(f"no column(s) {', '.join(map(repr, unknown))} in the reference "
                              f"or the current window; columns: "
                              f"{', '.join(reference.column_names)}")
    return list(dict.fromkeys(columns))


def _p_text(p: float) -> str:
    return "p<1e-300" if p < 1e-300 else f"p={p:.2g}"


def _reason(rule: DriftRule, kind: str, statistics: Mapping[str, float], p: float | None,
            effect_value: float, correction: str, tested: int,
            counts: tuple[int, int]) -> tuple[bool, str]:
    """The verdict and its reason in words, with the figures."""
    effect, threshold = rule.effect(kind)
    test, raw_key = _TEST_P[kind]
    effect_text = _effect_text(effect, effect_value, " ")
    if p is None:
        side, count = ("reference", counts[0]) if counts[0] < counts[1] else \
            ("current window", counts[1])
        return False, (f"only {count} values in the {side} (min_count {rule.min_count}): no "
                       f"verdict ({test} p={statistics[raw_key]:.2g} uncorrected, "
                       f"{effect_text})")
    how = "uncorrected" if correction == "none" else \
        f"{_CORRECTION_NAMES[correction]}-corrected over {tested} columns"
    significant = p <= rule.alpha
    large = effect_value >= threshold
    if significant and large:
        return True, (f"{test} {_p_text(p)} ({how}) ≤ α={rule.alpha:g} and {effect_text} ≥ "
                      f"{threshold:g}: drifted")
    if significant:
        return False, (f"{test} {_p_text(p)} ({how}) ≤ α={rule.alpha:g} but {effect_text} < "
                       f"{threshold:g}: a real change too small to matter, not drifted")
    return False, (f"{test} {_p_text(p)} ({how}) > α={rule.alpha:g}: no significant change "
                   f"({effect_text}), not drifted")


@dataclass(frozen=True, slots=True)
class _Compared:
    name: str
    kind: Literal["numeric", "categorical"]
    role: ColumnRole
    reference: ColumnProfile
    current: ColumnProfile
    statistics: dict[str, float]
    tested: bool


def _compare(name: str, reference: ColumnProfile, current: ColumnProfile, role: ColumnRole,
             rule: DriftRule) -> _Compared:
    if reference.kind == "numeric":
        statistics = numeric_statistics(reference, current)
        kind: Literal["numeric", "categorical"] = "numeric"
    else:
        statistics = categorical_statistics(reference, current)
        kind = "categorical"
    tested = min(reference.count, current.count) >= rule.min_count
    return _Compared(name, kind, role, reference, current, statistics, tested)


def _weights(compared: Sequence[_Compared],
             importance: Mapping[str, float] | None) -> dict[str, float]:
    features = [c.name for c in compared if c.role == "feature" and c.tested]
    raw = {name: float(importance.get(name, 0.0)) if importance is not None else 1.0
           for name in features}
    total = sum(raw.values())
    return {name: weight / total if total > 0 else 0.0 for name, weight in raw.items()}


def drift_report(reference: TableProfile, current: TableProfile, *,
                 rules: DriftRules | None = None,
                 roles: Mapping[str, ColumnRole] | None = None,
                 importance: Mapping[str, float] | None = None,
                 columns: Sequence[str] | None = None) -> DriftReport:
    """The drift of every column of ``current`` from ``reference``, and the dataset's verdict.

    ``rules`` (default: the documented rule above), ``roles`` (column → ``feature``,
    ``prediction`` or ``target``; default ``feature``), ``importance`` (column → feature
    importance, any non-negative scale; features not named weigh nothing), ``columns`` (only
    these; default all). Computed from the two profiles alone, in milliseconds.
    """
    rules = DriftRules() if rules is None else rules
    if not isinstance(rules, DriftRules):
        raise InvalidArgument(f"rules must be a DriftRules, got {type(rules).__name__}")
    names = _checked_options(reference, current, roles, importance, columns)
    roles = roles or {}
    skipped: dict[str, str] = {}
    compared: list[_Compared] = []
    for name in names:
        reason = _skip_reason(name, reference, current)
        if reason is not None:
            skipped[name] = reason
            continue
        compared.append(_compare(name, reference.columns[name], current.columns[name],
                                 roles.get(name, "feature"), rules.rule(name)))
    tested = [c for c in compared if c.tested]
    raw = [c.statistics[_TEST_P[c.kind][1]] for c in tested]
    adjusted = holm(raw) if rules.correction == "holm" else bonferroni(raw) \
        if rules.correction == "bonferroni" else raw
    corrected = dict(zip((c.name for c in tested), adjusted, strict=True))
    weights = _weights(compared, importance)
    checks = []
    for c in compared:
        rule = rules.rule(c.name)
        effect, threshold = rule.effect(c.kind)
        effect_value = c.statistics[effect]
        p = corrected.get(c.name)
        drifted, reason = _reason(rule, c.kind, c.statistics, p, effect_value,
                                  rules.correction, len(tested),
                                  (c.reference.count, c.current.count))
        checks.append(ColumnDrift(
            column=c.name, kind=c.kind, role=c.role, reference_count=c.reference.count,
            current_count=c.current.count, statistics=c.statistics, p_value=p, effect=effect,
            effect_value=effect_value, threshold=threshold, drifted=drifted, reason=reason,
            weight=weights.get(c.name, 0.0)))
    score = sum(check.weight for check in checks if check.drifted)
    return DriftReport(columns=tuple(checks), score=score, threshold=rules.dataset_threshold,
                       drifted=bool(weights) and score >= rules.dataset_threshold - 1e-12,
                       rule=rules.describe(), reference_rows=reference.rows,
                       current_rows=current.rows, skipped=skipped)
