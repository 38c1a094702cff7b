"""The default drift rule: real shifts flagged and trivial ones ignored at 1k, 100k and 1M rows,
at most 2% of unchanged windows of 100 to 1,000 rows flagged, and the report around it."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pyarrow as pa
import pytest
from monitoring_data import (
    COLUMNS,
    NUMERIC_COLUMNS,
    REAL_SHIFTS,
    TRIVIAL_SHIFTS,
    Shifts,
    monitoring_table,
)

from loopml.errors import InvalidArgument
from loopml.monitoring.drift import DriftRule, DriftRules, drift_report
from loopml.profiling import TableProfile, profile_table

MIXED = Shifts(mean_shift={**REAL_SHIFTS.mean_shift, **TRIVIAL_SHIFTS.mean_shift},
               scale=dict(REAL_SHIFTS.scale),
               category_shift={**REAL_SHIFTS.category_shift, **TRIVIAL_SHIFTS.category_shift})
P_VALUE_ONLY = DriftRules(default=DriftRule(numeric_threshold=0, categorical_threshold=0))


@pytest.fixture(scope="module")
def reference() -> TableProfile:
    return profile_table(monitoring_table(100_000, seed=0))


@pytest.fixture(scope="module")
def million() -> TableProfile:
    """One million rows with the real and the trivial shifts (profiled once: ~1 s)."""
    return profile_table(monitoring_table(1_000_000, seed=1, shifts=MIXED))


def shifted(rows: int, seed: int = 1) -> TableProfile:
    return profile_table(monitoring_table(rows, seed=seed, shifts=MIXED))


# -- the verdict at every size ------------------------------------------------------------------

@pytest.mark.parametrize("rows", [1_000, 100_000, 1_000_000])
def test_exactly_the_real_shifts_are_flagged(reference: TableProfile, million: TableProfile,
                                             rows: int) -> None:
    current = million if rows == 1_000_000 else shifted(rows)
    report = drift_report(reference, current)
    assert set(report.drifted_columns) == REAL_SHIFTS.columns
    assert len(report.columns) == len(COLUMNS) and not report.skipped
    for name in TRIVIAL_SHIFTS.columns:
        check = report[name]
        assert check.effect_value is not None and check.p_value is not None
        # Small windows: not significant; large ones: significant or not, far too small.
        assert check.p_value > 0.01 if rows == 1_000 else check.effect_value < 0.05


def test_a_p_value_alone_flags_trivial_changes_at_a_million_rows(
        reference: TableProfile, million: TableProfile) -> None:
    report = drift_report(reference, million, rules=P_VALUE_ONLY)
    trivial = set(report.drifted_columns) & TRIVIAL_SHIFTS.columns
    assert len(trivial) >= 3  # what the effect threshold of the default rule prevents
    check = drift_report(reference, million)["normal_a"]
    assert check.p_value is not None and check.p_value <= 0.01 and not check.drifted
    assert "too small to matter" in check.reason


def test_false_alarms_on_unchanged_windows_stay_below_two_percent(
        reference: TableProfile) -> None:
    # 200 unchanged windows of 100, 300 and 1,000 rows; an alarm is any of 25 columns flagged.
    # Measured over 1,000 windows per size: 0.8% (100 rows), 0.6% (300), 0.9% (1,000).
    alarms = 0
    for index in range(200):
        rows = (100, 300, 1_000)[index % 3]
        window = profile_table(monitoring_table(rows, seed=1_000 + index))
        alarms += bool(drift_report(reference, window).drifted_columns)
    assert alarms <= 4


def test_a_distance_alone_false_alarms_on_small_windows(reference: TableProfile) -> None:
    distance_only = DriftRules(default=DriftRule(alpha=1.0))
    windows = [profile_table(monitoring_table(100, seed=50 + i)) for i in range(10)]
    assert all(drift_report(reference, w, rules=distance_only).drifted_columns for w in windows)
    assert not any(drift_report(reference, w).drifted_columns for w in windows)


def test_reasons_state_the_figures(reference: TableProfile, million: TableProfile) -> None:
    report = drift_report(reference, million)
    moved = report["normal_b"]
    assert moved.drifted and moved.effect == "wasserstein" and moved.threshold == 0.1
    assert moved.reason.startswith("KS p")
    assert "Holm-corrected over 25 columns" in moved.reason
    assert f"Wasserstein {moved.effect_value:.3g} SD ≥ 0.1: drifted" in moved.reason
    category = report["cat_10"]
    assert category.kind == "categorical" and category.effect == "jensen_shannon"
    assert category.reason.startswith("chi-squared p") and category.reason.endswith("drifted")
    assert set(category.statistics) == {"chi2", "chi2_dof", "chi2_p_value", "jensen_shannon",
                                        "psi"}
    assert set(moved.statistics) == {"ks", "ks_p_value", "wasserstein", "psi"}
    quiet = drift_report(reference, shifted(1_000))["uniform_a"]
    assert "no significant change" in quiet.reason and not quiet.drifted
    assert "Holm" in report.rule and "0.01" in report.rule and "0.2" in report.rule
    json.dumps(report.to_dict())


# -- the dataset ---------------------------------------------------------------------------------

def test_dataset_verdict_weighs_features_by_importance(reference: TableProfile) -> None:
    current = shifted(1_000)
    equal = drift_report(reference, current)
    assert equal.score == pytest.approx(len(REAL_SHIFTS.columns) / len(COLUMNS))
    assert equal.drifted and equal.threshold == 0.2  # 7 of 25 features: 0.28
    important = {name: 1.0 for name in COLUMNS} | {"normal_b": 20.0}
    weighted = drift_report(reference, current, importance=important)
    assert weighted.drifted and weighted.score == pytest.approx(26 / 44)
    assert sum(c.weight for c in weighted.columns) == pytest.approx(1.0)
    unimportant = drift_report(reference, current, importance={"normal_a": 1.0, "cat_5": 3.0})
    assert unimportant.score == 0.0 and not unimportant.drifted
    assert unimportant["cat_5"].weight == 0.75 and unimportant["normal_b"].weight == 0.0
    laxer = drift_report(reference, current, rules=DriftRules(dataset_threshold=0.3))
    assert not laxer.drifted


def test_prediction_and_target_are_checked_but_not_weighed(reference: TableProfile) -> None:
    roles = {"normal_b": "prediction", "cat_3": "target"}
    report = drift_report(reference, shifted(1_000), roles=roles)  # type: ignore[arg-type]
    assert report["normal_b"].drifted and report["normal_b"].role == "prediction"
    assert report["cat_3"].drifted and report["cat_3"].role == "target"
    assert report["normal_b"].weight == 0.0 and report["cat_3"].weight == 0.0
    assert report.score == pytest.approx(5 / 23)


def test_rules_per_column_and_other_effects(reference: TableProfile) -> None:
    current = shifted(1_000)
    rules = DriftRules(columns={"normal_b": DriftRule(numeric_threshold=1.0),
                                "cat_3": DriftRule(categorical_effect="psi",
                                                   categorical_threshold=0.01),
                                "count_b": DriftRule(numeric_effect="ks",
                                                     numeric_threshold=0.1)})
    report = drift_report(reference, current, rules=rules)
    assert not report["normal_b"].drifted and report["normal_b"].threshold == 1.0
    assert report["cat_3"].effect == "psi" and report["cat_3"].drifted
    assert report["count_b"].effect == "ks" and report["count_b"].drifted
    assert "own rules for: cat_3, count_b, normal_b" in report.rule


def test_corrections(reference: TableProfile) -> None:
    current = shifted(1_000)
    raw = drift_report(reference, current, rules=DriftRules(correction="none"))
    bonferroni = drift_report(reference, current, rules=DriftRules(correction="bonferroni"))
    holm = drift_report(reference, current)
    for name in ("uniform_a", "cat_20"):
        p = raw[name].statistics["ks_p_value" if name in NUMERIC_COLUMNS else "chi2_p_value"]
        assert raw[name].p_value == p
        assert bonferroni[name].p_value == pytest.approx(min(1.0, 25 * p))
        assert p <= (holm[name].p_value or 0) <= (bonferroni[name].p_value or 0)
    assert "uncorrected" in raw["uniform_a"].reason


# -- bad and thin input ---------------------------------------------------------------------------

def test_missing_retyped_and_new_columns_are_skipped(reference: TableProfile) -> None:
    table = monitoring_table(500, seed=3)
    table = table.drop_columns(["normal_a"]).set_column(
        table.schema.get_field_index("count_b") - 1, "count_b",
        pa.array([str(v) for v in table["count_b"].to_pylist()]))
    table = table.append_column("extra", pa.array(np.zeros(500)))
    report = drift_report(reference, profile_table(table))
    assert report.skipped == {"normal_a": "missing in the current window",
                              "count_b": "retyped: numeric → categorical",
                              "extra": "not in the reference"}
    assert len(report.columns) == 23


def test_an_empty_window_gives_no_verdict(reference: TableProfile) -> None:
    empty = profile_table(monitoring_table(0, seed=4))
    report = drift_report(reference, empty)
    assert report.columns == () and not report.drifted and report.score == 0.0
    assert report.skipped == dict.fromkeys(COLUMNS, "no values in the current window")
    assert report.current_rows == 0 and report.reference_rows == 100_000


def test_all_null_and_other_columns_are_skipped() -> None:
    reference = profile_table(pa.table({"x": np.arange(100.0), "tags": [[1]] * 100}))
    current = profile_table(pa.table({"x": pa.array([None] * 80, type=pa.float64()),
                                      "tags": [[2]] * 80}))
    report = drift_report(reference, current)
    assert report.skipped["x"] == "no values in the current window"
    assert report.skipped["tags"].startswith("no drift statistics for this kind")
    backwards = drift_report(current, reference, columns=["x"])
    assert backwards.skipped == {"x": "no values in the reference"}


def test_too_few_values_are_reported_without_a_verdict(reference: TableProfile) -> None:
    report = drift_report(reference, shifted(30))
    check = report["normal_b"]
    assert check.p_value is None and not check.drifted and check.weight == 0.0
    assert check.reason.startswith("only 30 values in the current window (min_count 50)")
    assert not report.drifted and report.score == 0.0
    lenient = drift_report(reference, shifted(30), rules=DriftRules(
        default=DriftRule(min_count=20)))
    assert lenient["normal_b"].p_value is not None


def test_columns_selects_and_validates(reference: TableProfile) -> None:
    current = shifted(1_000)
    report = drift_report(reference, current, columns=["cat_3", "normal_b"])
    assert [c.column for c in report.columns] == ["cat_3", "normal_b"]
    assert "over 2 columns" in report["cat_3"].reason
    with pytest.raises(InvalidArgument, match="no column.*'nope'"):
        drift_report(reference, current, columns=["nope"])
    with pytest.raises(InvalidArgument, match=r"write \['cat_3'\]"):
        drift_report(reference, current, columns="cat_3")


@pytest.mark.parametrize(("options", "message"), [
    ({"alpha": 0}, "alpha must be a number > 0"),
    ({"alpha": 1.5}, "alpha must be a number"),
    ({"numeric_effect": "kl"}, "numeric_effect must be one of wasserstein, psi, ks"),
    ({"categorical_effect": "wasserstein"}, "categorical_effect must be one of"),
    ({"numeric_threshold": -0.1}, "numeric_threshold must be a number ≥ 0"),
    ({"min_count": 0}, "min_count must be a whole number"),
])
def test_rule_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        DriftRule(**options)  # type: ignore[arg-type]


def test_rules_and_arguments_are_checked(reference: TableProfile) -> None:
    with pytest.raises(InvalidArgument, match="dataset_threshold"):
        DriftRules(dataset_threshold=1.5)
    with pytest.raises(InvalidArgument, match="correction must be one of holm"):
        DriftRules(correction="fdr")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="columns must map column names to DriftRule"):
        DriftRules(columns={"age": 0.1})  # type: ignore[dict-item]
    given = {"age": DriftRule(alpha=0.05)}
    rules = DriftRules(columns=given)
    given["age"] = DriftRule()
    assert pickle.loads(pickle.dumps(rules)).rule("age").alpha == 0.05
    assert rules.rule("other") == DriftRule()
    current = shifted(100)
    with pytest.raises(InvalidArgument, match="role of column 'cat_3' must be one of feature"):
        drift_report(reference, current, roles={"cat_3": "label"})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgument, match="importance of column 'cat_3'"):
        drift_report(reference, current, importance={"cat_3": -1.0})
    with pytest.raises(InvalidArgument, match="rules must be a DriftRules"):
        drift_report(reference, current, rules=DriftRule())  # type: ignore[arg-type]
