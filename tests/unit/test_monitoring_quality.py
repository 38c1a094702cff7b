"""Data quality of a window against the training profile and the dataset contract: schema
problems named, junk counted, missing values, ranges and categories judged with sense."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.datasets.contract import Contract
from loopml.errors import InvalidArgument
from loopml.monitoring.conform import conform
from loopml.monitoring.quality import QualityObserver, quality_report
from loopml.profiling import TableProfile, open_table, profile_table


def _reference(rows: int = 5_000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    income = rng.normal(50.0, 10.0, rows)
    income[rng.random(rows) < 0.02] = np.nan  # 2% missing in training
    return pa.table({
        "age": rng.integers(18, 91, rows),
        "income": income,
        "plan": rng.choice(["free", "pro", "team"], rows),
        "active": rng.random(rows) < 0.5,
        "signup": pa.array(rng.integers(1_600_000_000_000, 1_700_000_000_000, rows),
                           pa.timestamp("ms", tz="UTC")),
    })


@pytest.fixture(scope="module")
def reference() -> TableProfile:
    return profile_table(_reference())


def _kinds(report: object) -> dict[tuple[str, str], int]:
    return {(i.column, i.kind): i.count for i in report.issues}  # type: ignore[attr-defined]


def test_a_window_like_the_training_data_is_clean(reference: TableProfile) -> None:
    for seed in range(1, 4):
        for rows in (100, 1_000, 20_000):
            report = quality_report(reference, _reference(rows, seed))
            assert not report.failed, [i.message for i in report.issues]
            assert report.rows == rows


def test_missing_and_retyped_columns_are_named(reference: TableProfile) -> None:
    window = _reference(200, 1).drop_columns(["income"])
    window = window.set_column(1, "plan", pa.array(np.arange(200)))      # numbers for text
    window = window.append_column("note", pa.array(["hi"] * 200))
    table, issues = conform(window, reference)
    found = {(i.column, i.kind): i for i in issues}
    assert set(found) == {("income", "missing_column"), ("plan", "retyped_column"),
                          ("note", "unexpected_column")}
    assert "'income'" in found["income", "missing_column"].message
    assert "'plan' is int64 where the reference is string" in found["plan",
                                                                  "retyped_column"].message
    assert found["note", "unexpected_column"].severity == "warning"
    assert table.column_names == ["age", "plan", "active", "signup"]
    assert table.schema.field("plan").type == pa.string()

    report = quality_report(reference, window.drop_columns(["plan"]))
    assert report.failed  # the missing column is an error
    only_extra = quality_report(reference, _reference(200, 1).append_column(
        "note", pa.array(["hi"] * 200)))
    assert not only_extra.failed and [i.kind for i in only_extra.issues] == [
        "unexpected_column"]
    strict = quality_report(reference, _reference(200, 1).append_column(
        "note", pa.array(["hi"] * 200)), fail_on_unexpected=True)
    assert strict.failed


def test_junk_in_a_numeric_column_is_counted_not_a_crash(reference: TableProfile) -> None:
    window = _reference(300, 2)
    ages = [str(v) for v in window.column("age").to_pylist()]
    for row in (5, 17, 250):
        ages[row] = "abc" if row != 17 else "  not a number at all, really, it is just text  "
    ages[6] = " 42 "  # whitespace around a number reads
    window = window.set_column(0, "age", pa.array(ages))
    table, issues = conform(window, reference)
    assert table.schema.field("age").type == pa.int64()
    assert table.column("age").null_count == 3
    assert table.column("age")[6].as_py() == 42
    [issue] = issues
    assert (issue.kind, issue.column, issue.count, issue.total) == ("invalid_value", "age", 3,
                                                                      300)
    assert issue.rows == (5, 17, 250)
    assert issue.examples[0] == "abc" and len(issue.examples[1]) <= 40
    # The nulls the junk became are not reported a second time as missing values.
    assert _kinds(quality_report(reference, window)) == {("age", "invalid_value"): 3}

    all_text = window.set_column(0, "age", pa.array(["young", "old"] * 150))
    [retyped] = conform(all_text, reference)[1]
    assert (retyped.kind, retyped.column) == ("retyped_column", "age")
    assert "none of its 300 values reads as int64" in retyped.message


def test_text_reads_as_booleans_and_times(reference: TableProfile) -> None:
    window = pa.table({"active": ["true", "false", "maybe"],
                       "signup": ["2023-01-01T00:00:00", "2023-06-01 12:00:00Z", "soon"]})
    table, issues = conform(window, reference)
    assert table.column("active").to_pylist() == [True, False, None]
    assert table.column("signup").type == pa.timestamp("ms", tz="UTC")
    assert table.column("signup").null_count == 1
    assert {(i.column, i.kind, i.examples) for i in issues if i.kind == "invalid_value"} == {
        ("active", "invalid_value", ("maybe",)), ("signup", "invalid_value", ("soon",))}


def test_types_of_one_family_are_cast(reference: TableProfile) -> None:
    window = _reference(100, 3)
    window = window.set_column(0, "age", pa.array([30.0] * 100))
    micros = window.column("signup").cast(pa.int64()).to_numpy() * 1_000 + 7  # below a ms
    window = window.set_column(4, "signup", pa.array(micros, pa.timestamp("us")))
    table, issues = conform(window, reference)
    assert issues == []
    assert table.schema.field("age").type == pa.int64()
    assert table.schema.field("signup").type == pa.timestamp("ms", tz="UTC")
    # Fractions in an integer column are kept as floats, and said.
    fractions = window.set_column(0, "age", pa.array([30.5] * 100))
    table, issues = conform(fractions, reference)
    assert table.schema.field("age").type == pa.float64()
    assert [(i.column, i.kind) for i in issues] == [("age", "retyped_column")]
    with pytest.raises(InvalidArgument, match="'age' appear"):
        conform(pa.table([[1], [2]], names=["age", "age"]), reference)


def test_an_empty_window_has_no_verdict(reference: TableProfile) -> None:
    for empty in (pa.table({}), _reference(10).slice(0, 0)):
        table, issues = conform(empty, reference)
        assert (table.num_rows, issues) == (0, [])
        assert table.column_names == [c.name for c in reference.schema]
        report = quality_report(reference, empty)
        assert (report.rows, report.failed, report.issues) == (0, False, ())


def test_missing_values_need_a_real_excess_over_the_reference(
        reference: TableProfile) -> None:
    def with_missing(rows: int, share: float) -> pa.Table:
        window = _reference(rows, 4)
        income = window.column("income").to_numpy().copy()
        income[: int(rows * share)] = np.nan
        return window.set_column(1, "income", pa.array(income))

    # 2% in training, +5 points allowed: 8% of 100 rows is no evidence, 20% of 1,000 is.
    assert not quality_report(reference, with_missing(100, 0.08)).failed
    report = quality_report(reference, with_missing(1_000, 0.2))
    [issue] = report.issues
    assert (issue.column, issue.kind) == ("income", "missing")
    assert issue.count >= 200 and issue.rows[:3] == (0, 1, 2)
    assert re.search(r"222 of 1,000 values are missing \(22.2%\); the reference had 1.\d%",
                     issue.message)
    assert not quality_report(reference, with_missing(1_000, 0.2), missing_margin=0.3).failed


def test_out_of_range_values_need_more_than_chance_gives(reference: TableProfile) -> None:
    window = _reference(20_000, 5)
    ages = window.column("age").to_numpy().copy()
    ages[100] = 92        # just past the training max 90: inside the 5% tolerance
    ages[200:210] = 500   # ten stray values in 20,000 rows: what chance gives on 5,000
    assert not quality_report(reference, window.set_column(0, "age", pa.array(ages))).failed
    ages[300:500] = -7    # 1% of the rows: a real problem
    report = quality_report(reference, window.set_column(0, "age", pa.array(ages)))
    [issue] = report.issues
    assert (issue.kind, issue.count, issue.rows[:2]) == ("out_of_range", 210, (200, 201))
    assert issue.examples == ("500",) * 5
    assert "training range [18, 90]" in issue.message
    # In a small window a few values out of range are a failure, one is not.
    one = _reference(100, 6).set_column(0, "age", pa.array([30] * 99 + [1_000]))
    assert not quality_report(reference, one).failed
    three = _reference(100, 6).set_column(0, "age", pa.array([30] * 97 + [1_000] * 3))
    assert _kinds(quality_report(reference, three)) == {("age", "out_of_range"): 3}


def test_dates_are_not_held_to_the_training_range(reference: TableProfile) -> None:
    window = _reference(100, 7).set_column(
        4, "signup", pa.array([1_800_000_000_000] * 100, pa.timestamp("ms", tz="UTC")))
    assert not quality_report(reference, window).failed


def test_unseen_categories_are_reported_with_examples(reference: TableProfile,
                                                      tmp_path: object) -> None:
    window = _reference(1_000, 8)
    plans = window.column("plan").to_pylist()
    plans[10] = "enterprise"  # one new value: chance on a reference of 5,000 rows
    assert not quality_report(reference, window.set_column(2, "plan", pa.array(plans))).failed
    plans[20:40] = ["enterprise"] * 20
    window = window.set_column(2, "plan", pa.array(plans))
    report = quality_report(reference, window)
    [issue] = report.issues
    assert (issue.kind, issue.count, issue.examples, issue.rows) == (
        "unseen_category", 21, ("enterprise",) * 5, (10, 20, 21, 22, 23))
    # The same check on dictionary-encoded batches (a Parquet file profiled in one pass).
    path = f"{tmp_path}/window.parquet"
    pq.write_table(window, path, row_group_size=300)
    observer = QualityObserver(reference)
    profile = profile_table(open_table(path), observers=[observer])
    assert _kinds(observer.report(profile.rows)) == {("plan", "unseen_category"): 21}


def test_contract_rules_are_checked_in_the_same_pass(reference: TableProfile) -> None:
    contract = Contract.from_dict({"rows": {"min": 1_000_000}, "columns": {
        "age": {"type": "integer", "min": 21, "max": 80},
        "plan": {"categories": ["free", "pro", "team"], "nullable": False}}})
    window = _reference(500, 9)
    plans = window.column("plan").to_pylist()
    plans[3] = None
    window = window.set_column(2, "plan", pa.array(plans))
    table, issues = conform(window, reference)
    observer = QualityObserver(reference, contract=contract, schema_issues=issues)
    rows = profile_table(table, observers=[observer]).rows
    report = observer.report(rows)
    found = {(i.column, i.kind): i for i in report.issues}
    assert set(found) == {("age", "out_of_range"), ("plan", "missing")}
    assert found["age", "out_of_range"].message.startswith("contract: column 'age'")
    assert found["plan", "missing"].rows == (3,)
    assert ("", "row_count") not in found  # row bounds describe a dataset, not a window


def test_options_are_checked(reference: TableProfile) -> None:
    with pytest.raises(InvalidArgument, match="missing_margin must be between 0 and 1"):
        QualityObserver(reference, missing_margin=5)
    with pytest.raises(InvalidArgument, match="max_examples"):
        QualityObserver(reference, max_examples=-1)
