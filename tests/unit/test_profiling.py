"""Column and table profiles: statistics, exact merges, serialisation, nulls, edge cases."""

from __future__ import annotations

import datetime as dt
import json
import math
import threading

import numpy as np
import pyarrow as pa
import pytest

import loopml.profiling as profiling
from loopml.errors import InvalidArgument
from loopml.profiling import ColumnProfile, ColumnSchema, TableProfile, profile_table

EXPORTED = [
    "BatchObserver", "CategoryCounter", "ColumnKind", "ColumnProfile", "ColumnSchema",
    "HyperLogLog", "QuantileSketch", "SchemaDiff", "Shift", "TableProfile", "TableSource",
    "column_kind", "hash_array", "open_table", "profile_shift", "profile_table", "schema_diff",
    "schema_of", "update_profile",
]


def _table(rows: int, *, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    nulls = rng.random(rows) < 0.05
    return pa.table({
        "amount": pa.array(rng.lognormal(3, 1, rows), mask=nulls),
        "delta": rng.normal(0, 10, rows),
        "count": pa.array(rng.integers(0, 40, rows)),
        "user": pa.array(rng.integers(0, 10**9, rows)),
        "country": pa.array(np.array(["FR", "DE", "US", "GB"])[rng.integers(0, 4, rows)]),
        "active": pa.array(rng.random(rows) < 0.3),
        "segment": pa.array(np.array(["a", "b", "c"])[rng.integers(0, 3, rows)],
                            ).dictionary_encode(),
        "seen": pa.array((1_600_000_000 + rng.integers(0, 10**7, rows)).astype("datetime64[s]")),
        "tags": pa.array([["x"]] * rows),
    })


def test_public_names_are_pinned() -> None:
    assert sorted(profiling.__all__) == sorted(EXPORTED)


def test_numeric_statistics_match_numpy() -> None:
    table = _table(50_000)
    profile = profile_table(table)
    amount = table.column("amount").drop_null().to_numpy()
    column = profile["amount"]
    assert column.kind == "numeric"
    assert (column.count, column.nulls) == (len(amount), 50_000 - len(amount))
    assert (column.min, column.max) == (amount.min(), amount.max())
    assert column.mean == pytest.approx(amount.mean(), rel=1e-12)
    assert column.variance == pytest.approx(amount.var(), rel=1e-9)
    for q in (0.01, 0.5, 0.99):
        assert column.quantile(q) == pytest.approx(np.quantile(amount, q, method="lower"),
                                                   rel=0.01)
    assert column.cdf(float(np.median(amount))) == pytest.approx(0.5, abs=0.01)
    assert column.distinct == pytest.approx(len(np.unique(amount)), rel=0.03)
    counts = profile["count"]
    assert isinstance(counts.min, int) and counts.distinct == 40
    assert counts.quantile(0.5) == np.quantile(table.column("count").to_numpy(), 0.5,
                                               method="lower")


def test_categorical_and_other_columns() -> None:
    table = _table(20_000)
    profile = profile_table(table)
    country = profile["country"]
    expected = dict(zip(*np.unique(table.column("country").to_numpy(zero_copy_only=False),
                                   return_counts=True), strict=True))
    assert country.kind == "categorical" and country.categories is not None
    assert country.categories.counts() == {k: int(v) for k, v in expected.items()}
    assert country.distinct == 4
    assert profile["active"].categories is not None
    assert set(profile["active"].categories.counts()) == {True, False}
    assert profile["segment"].kind == "categorical" and profile["segment"].distinct == 3
    assert profile["seen"].kind == "numeric" and isinstance(profile["seen"].min, int)
    assert profile["tags"].kind == "other" and profile["tags"].count == 20_000
    with pytest.raises(InvalidArgument, match="numeric column; this one is categorical"):
        country.quantile(0.5)
    with pytest.raises(InvalidArgument, match="no column 'nope'"):
        profile["nope"]


def _assert_exactly_equal_but_moments(a: ColumnProfile, b: ColumnProfile) -> None:
    assert (a.kind, a.count, a.nulls, a.min, a.max) == (b.kind, b.count, b.nulls, b.min, b.max)
    assert (a.sketch, a.distinct_sketch, a.categories) == (b.sketch, b.distinct_sketch,
                                                           b.categories)
    if a.mean is not None:
        assert a.mean == pytest.approx(b.mean, rel=1e-12)
        assert a.m2 == pytest.approx(b.m2, rel=1e-9)


def test_profile_of_concatenation_equals_merge_of_profiles() -> None:
    first, second = _table(30_000, seed=1), _table(45_000, seed=2)
    whole = profile_table(pa.concat_tables([first, second]))
    merged = profile_table(first).merge(profile_table(second))
    assert merged.rows == whole.rows == 75_000
    assert merged.schema == whole.schema
    for name in whole.column_names:
        _assert_exactly_equal_but_moments(merged[name], whole[name])


def test_profile_does_not_depend_on_batch_size_or_threads() -> None:
    table = _table(40_000)
    reference = profile_table(table, threads=1)
    small_batches = profile_table(pa.Table.from_batches(table.to_batches(max_chunksize=999)),
                                  threads=3)
    for name in reference.column_names:
        _assert_exactly_equal_but_moments(small_batches[name], reference[name])


def test_merge_rejects_other_schemas_naming_the_columns() -> None:
    profile = profile_table(_table(1_000))
    changed = _table(1_000).drop_columns(["delta", "count"])
    other = profile_table(changed.append_column("extra", pa.array(range(1_000))).append_column(
        "count", pa.array([1.5] * 1_000)))
    with pytest.raises(InvalidArgument) as raised:
        profile.merge(other)
    message = str(raised.value)
    assert "added column 'extra'" in message and "removed column 'delta'" in message
    assert "column 'count' changed type from int64 to double" in message


def test_serialisation_round_trips_exactly_through_json() -> None:
    profile = profile_table(_table(30_000))
    text = json.dumps(profile.to_dict())
    again = TableProfile.from_dict(json.loads(text))
    assert again == profile
    assert json.dumps(again.to_dict()) == text
    assert again["amount"].quantile(0.3) == profile["amount"].quantile(0.3)


def test_serialised_profile_stays_small_per_column_whatever_the_rows() -> None:
    rng = np.random.default_rng(0)
    rows = 1_000_000
    table = pa.table({"wide": rng.lognormal(0, 4, rows) * rng.choice([-1, 1], rows),
                      "normal": rng.normal(0, 1, rows),
                      "ids": pa.array(rng.integers(0, 2**62, rows)),
                      "labels": pa.array([f"label-{i % 900}" for i in range(rows)])})
    profile = profile_table(table)
    for name in table.column_names:
        size = len(json.dumps(profile[name].to_dict()))
        assert size < 12_000, (name, size)
    labels = profile["labels"]
    assert TableProfile.from_dict(json.loads(json.dumps(profile.to_dict())))["labels"] == labels
    assert labels.categories is not None and len(labels.categories.items) == 900


def test_from_dict_rejects_what_is_not_a_profile() -> None:
    with pytest.raises(InvalidArgument, match="not a table profile"):
        TableProfile.from_dict({"rows": 3})
    data = profile_table(_table(100)).to_dict()
    data["columns"]["delta"]["mean"] = "high"
    with pytest.raises(InvalidArgument, match="'mean' must be a number"):
        TableProfile.from_dict(data)
    data = profile_table(_table(100)).to_dict()
    del data["columns"]["delta"]
    with pytest.raises(InvalidArgument, match="one column profile per schema column"):
        TableProfile.from_dict(data)


def test_nulls_nan_and_all_null_columns() -> None:
    table = pa.table({"x": pa.array([1.0, None, float("nan"), 3.0]),
                      "none": pa.array([None, None, None, None], type=pa.float64()),
                      "text": pa.array([None, None, None, None], type=pa.string()),
                      "null": pa.array([None] * 4)})
    profile = profile_table(table)
    assert (profile["x"].count, profile["x"].nulls, profile["x"].mean) == (2, 2, 2.0)
    none = profile["none"]
    assert (none.count, none.nulls, none.min, none.mean, none.distinct) == (0, 4, None, None, 0)
    assert none.quantile(0.5) is None and none.histogram() == ([], [])
    assert math.isnan(none.cdf(1.0))
    assert profile["text"].nulls == 4 and profile["text"].distinct == 0
    assert profile["null"].kind == "other" and profile["null"].nulls == 4
    summary = profile.summary()
    assert summary["columns"]["none"]["quantiles"]["p50"] is None
    assert TableProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_empty_table() -> None:
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    profile = profile_table(schema.empty_table())
    assert profile.rows == 0 and profile["a"].count == 0 and profile["b"].count == 0
    assert profile.schema == (ColumnSchema("a", "int64"), ColumnSchema("b", "string"))
    assert profile.merge(profile_table(pa.table({"a": [1], "b": ["x"]}))).rows == 1
    assert TableProfile.from_dict(profile.to_dict()) == profile


def test_histogram_and_summary() -> None:
    values = np.random.default_rng(4).normal(50, 5, 100_000)
    column = profile_table(pa.table({"v": values}))["v"]
    edges, counts = column.histogram(bins=10)
    assert len(edges) == 11 and edges[0] == values.min() and edges[-1] == values.max()
    exact, _ = np.histogram(values, bins=np.array(edges))
    assert sum(counts) == 100_000
    assert np.abs(np.array(counts) - exact).max() < 0.01 * 100_000
    summary = column.summary()
    assert set(summary["quantiles"]) == {"p1", "p5", "p25", "p50", "p75", "p95", "p99"}
    assert summary["std"] == pytest.approx(values.std(), rel=1e-9)
    assert len(summary["histogram"]["counts"]) == 20
    constant = profile_table(pa.table({"c": [7, 7, 7]}))["c"]
    assert constant.histogram() == ([7.0, 7.0], [3])
    with pytest.raises(InvalidArgument, match="bins"):
        column.histogram(bins=0)
    with pytest.raises(InvalidArgument, match="between 0 and 1"):
        column.quantile(1.5)


def test_timestamp_and_date_columns_profile_as_epoch_numbers() -> None:
    days = [dt.date(2024, 1, 1), dt.date(2024, 3, 1), None]
    profile = profile_table(pa.table({"day": pa.array(days)}))
    assert profile["day"].min == (dt.date(2024, 1, 1) - dt.date(1970, 1, 1)).days
    assert profile["day"].nulls == 1


def test_duplicate_column_names_are_refused() -> None:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(InvalidArgument, match="'a' appear"):
        profile_table(table)
    with pytest.raises(InvalidArgument, match="takes a TableSource"):
        profile_table([1, 2])  # type: ignore[arg-type]


class _Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.seen: list[tuple[int, int]] = []
        self.fail_at = fail_at

    def observe(self, batch: pa.RecordBatch, first_row: int) -> None:
        if first_row == self.fail_at:
            raise InvalidArgument("observer refused the batch")
        self.seen.append((first_row, batch.num_rows))


@pytest.mark.parametrize("threads", [1, 2])
def test_observers_see_every_batch_in_order(threads: int) -> None:
    table = pa.Table.from_batches(_table(10_000).to_batches(max_chunksize=3_000))
    recorder = _Recorder()
    profile_table(table, observers=[recorder], threads=threads)
    assert recorder.seen == [(0, 3_000), (3_000, 3_000), (6_000, 3_000), (9_000, 1_000)]


@pytest.mark.parametrize("threads", [1, 2])
def test_an_observer_error_stops_the_pass_and_its_threads(threads: int) -> None:
    before = threading.active_count()
    table = pa.Table.from_batches(_table(10_000).to_batches(max_chunksize=1_000))
    with pytest.raises(InvalidArgument, match="observer refused"):
        profile_table(table, observers=[_Recorder(fail_at=2_000)], threads=threads)
    assert threading.active_count() == before


def test_infinite_values_survive_canonical_json() -> None:
    orjson = pytest.importorskip("orjson")
    table = pa.table({"x": [1.0, float("inf"), -float("inf"), 2.0], "y": [float("inf")] * 4})
    profile = profile_table(table)
    assert (profile["x"].min, profile["x"].max) == (-math.inf, math.inf)
    assert math.isnan(profile["x"].mean or 0.0) and profile["x"].sketch is not None
    assert profile["x"].sketch.count == 2  # infinities stay out of the quantile sketch
    again = TableProfile.from_dict(orjson.loads(orjson.dumps(profile.to_dict())))
    assert again == profile and again["y"].mean == math.inf
