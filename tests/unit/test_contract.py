"""Data contracts: every rule, reports, inference, YAML, and messages for bad contracts."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.datasets.contract import ColumnRule, Contract, infer_contract, scan
from loopml.errors import InvalidArgument
from loopml.profiling import open_table, profile_table


def _table(rows: int = 1_000) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table({
        "id": pa.array(np.arange(rows)),
        "age": pa.array(rng.integers(18, 90, rows)),
        "score": rng.normal(0.5, 0.1, rows),
        "country": pa.array(np.array(["FR", "DE", "US"])[rng.integers(0, 3, rows)]),
        "plan": pa.array(np.array(["free", "pro"])[rng.integers(0, 2, rows)]).dictionary_encode(),
        "signup": pa.array(np.datetime64("2024-01-01") + rng.integers(0, 300, rows)
                           ).cast(pa.timestamp("s")),
        "day": pa.array([dt.date(2024, 5, 1)] * rows),
        "email": pa.array([f"user{i}@example.com" for i in range(rows)]),
    })


def _violations(table: pa.Table, text: str) -> dict[tuple[str | None, str], dict]:
    profile, report = scan(table, Contract.from_yaml(text))
    assert report is not None and profile.rows == table.num_rows
    return {(v["column"], v["rule"]): v for v in report.to_dict()["violations"]}


def test_a_table_that_keeps_its_contract() -> None:
    text = """
    rows: {min: 1, max: 5000}
    columns:
      id: {type: integer, nullable: false, unique: true, min: 0}
      age: {type: int64, min: 18, max: 89}
      score: {type: number}
      country: {type: string, categories: [FR, DE, US, GB]}
      plan: {type: string, categories: [free, pro]}
      signup: {type: timestamp, min: 2024-01-01, max: "2024-12-31T00:00:00"}
      day: {type: date, min: 2024-05-01, max: 2024-05-01}
      email: {unique: true}
    """
    profile, report = scan(_table(), Contract.from_yaml(text))
    assert report is not None and report.ok, report.lines()
    assert report.to_dict() == {"ok": True, "rows": 1_000, "violations": []}
    assert profile["age"].count == 1_000


def test_type_rule_and_missing_columns_fail_every_row() -> None:
    found = _violations(_table(), """
    columns:
      age: {type: float, min: 1000}
      score: {type: integer}
      nope: {nullable: true}
    """)
    assert set(found) == {("age", "type"), ("score", "type"), ("nope", "missing")}
    assert found["age", "type"]["examples"] == ["int64"] and found["age", "type"]["count"] == 1000
    assert found["age", "type"]["message"] == \
        "column 'age' has type int64, the contract wants float"
    assert "column 'nope' is missing" in found["nope", "missing"]["message"]


def test_nullable_counts_nulls_and_nan_and_shows_rows() -> None:
    table = pa.table({"x": pa.array([1.0, None, float("nan"), 2.0] * 5),
                      "s": pa.array(["a", None, "b", "c"] * 5)})
    found = _violations(table, "columns: {x: {nullable: false}, s: {nullable: false}}")
    assert found["x", "nullable"]["count"] == 10
    assert found["x", "nullable"]["examples"] == [1, 2, 5, 6, 9]
    assert found["s", "nullable"]["count"] == 5
    assert "5 null value(s) but nullable is false" in found["s", "nullable"]["message"]


def test_min_and_max_with_examples_capped_at_five() -> None:
    table = pa.table({"v": pa.array(list(range(-10, 100)))})
    found = _violations(table, "columns: {v: {min: 0, max: 89.5}}")
    assert found["v", "min"]["count"] == 10 and found["v", "min"]["examples"] == [-10, -9, -8,
                                                                                   -7, -6]
    assert found["v", "max"]["count"] == 10 and len(found["v", "max"]["examples"]) == 5
    assert found["v", "max"]["message"].startswith("column 'v': 10 value(s) above max 89.5")


def test_min_max_on_dates_and_times() -> None:
    found = _violations(_table(), """
    columns:
      signup: {max: "2024-06-01T00:00:00"}
      day: {min: 2024-06-01}
    """)
    assert found["day", "min"]["count"] == 1_000
    assert found["day", "min"]["examples"] == ["2024-05-01"]
    assert found["signup", "max"]["examples"][0] > "2024-06-01"


def test_categories_on_strings_and_dictionaries() -> None:
    found = _violations(_table(), """
    columns:
      country: {categories: [FR]}
      plan: {categories: [free]}
    """)
    assert sorted(found["country", "categories"]["examples"]) == ["DE", "US"]
    assert found["plan", "categories"]["examples"] == ["pro"]
    table = _table()
    expected = sum(1 for v in table.column("plan").to_pylist() if v != "free")
    assert found["plan", "categories"]["count"] == expected


def test_rules_on_parquet_strings_read_as_dictionaries(tmp_path: Path) -> None:
    table = _table()
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=300)
    text = "columns: {country: {categories: [FR], unique: true}, email: {unique: true}}"
    from_file = _violations_of(scan(open_table(tmp_path / "t.parquet"), Contract.from_yaml(text)))
    assert from_file == _violations(table, text)
    assert from_file["country", "unique"]["count"] == 997


def _violations_of(result: tuple) -> dict:
    return {(v["column"], v["rule"]): v for v in result[1].to_dict()["violations"]}


def test_unique_is_exact_across_batches() -> None:
    rows = 200_000
    ids = np.arange(rows)
    ids[150_000] = 7  # one repeat, far from the first occurrence
    table = pa.table({"id": pa.array(ids), "name": pa.array([f"n{i % 199_999}"
                                                             for i in range(rows)])})
    batched = pa.Table.from_batches(table.to_batches(max_chunksize=10_000))
    found = _violations(batched, "columns: {id: {unique: true}, name: {unique: true}}")
    assert found["id", "unique"]["count"] == 1 and found["id", "unique"]["examples"] == [7]
    assert found["name", "unique"]["count"] == 1
    assert found["name", "unique"]["examples"] == ["n0"]
    assert "repeat an earlier row but unique is true" in found["id", "unique"]["message"]


def test_row_count_bounds() -> None:
    assert _violations(_table(10), "rows: {min: 11}")[None, "rows"]["message"] == \
        "the table has 10 rows; the contract wants at least 11"
    assert (None, "rows") in _violations(_table(10), "rows: {max: 9}")
    assert _violations(_table(10), "rows: {min: 10, max: 10}") == {}


def test_inferred_contract_holds_for_its_own_data(tmp_path: Path) -> None:
    table = _table(5_000)
    pq.write_table(table, tmp_path / "t.parquet")
    profile = profile_table(open_table(tmp_path / "t.parquet"))
    contract = infer_contract(profile)
    assert contract.columns["age"] == ColumnRule("integer", False, int(
        pc_min(table, "age")), int(pc_max(table, "age")))
    assert contract.columns["country"].categories == ("DE", "FR", "US")
    assert contract.columns["email"].categories is None  # too many to list
    assert contract.columns["signup"].min.startswith("2024-01-0")
    _, report = scan(open_table(tmp_path / "t.parquet"), contract)
    assert report is not None and report.ok, report.lines()
    _, report = scan(table.slice(0, 10), Contract.from_yaml(contract.to_yaml()))
    assert report is not None and report.ok, report.lines()


def pc_min(table: pa.Table, name: str) -> int:
    return int(np.min(table.column(name).to_numpy()))


def pc_max(table: pa.Table, name: str) -> int:
    return int(np.max(table.column(name).to_numpy()))


def test_yaml_and_dict_round_trips() -> None:
    text = """
    rows: {min: 5}
    columns:
      a: {type: integer, nullable: false, min: 0, max: 10, unique: true}
      b: {categories: [x, "y"], type: string}
      c: {min: 2024-01-01}
      d:
    """
    contract = Contract.from_yaml(text)
    assert contract.columns["c"].min == "2024-01-01"
    assert contract.columns["d"] == ColumnRule()
    assert Contract.from_yaml(contract.to_yaml()) == contract
    assert Contract.from_dict(json.loads(json.dumps(contract.to_dict()))) == contract
    assert contract.to_dict()["columns"]["a"] == {"type": "integer", "nullable": False,
                                                  "min": 0, "max": 10, "unique": True}


@pytest.mark.parametrize(("text", "message"), [
    ("columns: {a: {maximum: 3}}", "columns.a.maximum: unknown rule; known rules: type, "
                                   "nullable, min, max, categories, unique"),
    ("colums: {a: {}}", "unknown key 'colums'; known keys: columns, rows"),
    ("columns: {a: {type: integr}}", "columns.a.type: unknown type 'integr'"),
    ("columns: {a: {nullable: maybe}}", "columns.a.nullable must be true or false"),
    ("columns: {a: {categories: x}}", "columns.a.categories must be a list"),
    ("columns: {a: {min: 5, max: 1}}", "columns.a: min 5 is above max 1"),
    ("columns: {a: {min: [1]}}", "columns.a.min must be a number, a date or a time"),
    ("columns: {a: 3}", "columns.a must be a mapping of rules"),
    ("rows: {min: -1}", "rows.min must be a whole number >= 0"),
    ("rows: {least: 1}", "rows must be a mapping with 'min' and/or 'max'"),
    ("columns: [a, b]", "columns must map column names to rules"),
    ("- a\n- b", "a contract must be a mapping"),
    ("columns: {a: {min: 1}", "contract is not valid YAML at line 1, column 22"),
])
def test_bad_contracts_name_the_key(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        Contract.from_yaml(text)
    assert message in str(raised.value)


def test_bounds_that_do_not_fit_the_column_type() -> None:
    with pytest.raises(InvalidArgument, match=r"columns\.signup\.min: 'soon' cannot be compared"):
        scan(_table(), Contract.from_yaml("columns: {signup: {min: soon}}"))
    with pytest.raises(InvalidArgument, match=r"columns\.age\.categories: .* are not all values"):
        scan(_table(), Contract.from_yaml("columns: {age: {categories: [young, old]}}"))


def test_scan_without_contract_only_profiles() -> None:
    profile, report = scan(_table(50))
    assert report is None and profile.rows == 50


def test_inferred_contract_holds_for_unusual_types() -> None:
    rows = 200
    table = pa.table({
        "utc": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
                         + dt.timedelta(hours=i) for i in range(rows)],
                        pa.timestamp("us", tz="UTC")),
        "price": pa.array([decimal.Decimal("1.25") * i for i in range(rows)],
                          pa.decimal128(10, 2)),
        "half": pa.array(np.arange(rows, dtype=np.float16)),
        "clock": pa.array([dt.time(1, 2, 3)] * rows, pa.time32("s")),
        "wait": pa.array([dt.timedelta(seconds=i) for i in range(rows)], pa.duration("s")),
        "view": pa.array(["a", "b"] * (rows // 2), pa.string_view()),
        "holes": pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 0] * (rows // 4)),
                                                pa.array(["x", None, "z"])),
        "huge": pa.array(np.full(rows, 2**64 - 1, dtype=np.uint64)),
    })
    contract = infer_contract(profile_table(table))
    assert contract.columns["holes"] == ColumnRule("string", True, categories=("x", "z"))
    assert contract.columns["utc"].min == "2024-01-01T00:00:00+00:00"
    _, report = scan(table, Contract.from_yaml(contract.to_yaml()))
    assert report is not None and report.ok, report.lines()
    _, report = scan(table, Contract.from_yaml("columns: {view: {categories: [a]}, "
                                               "price: {max: 10}, half: {min: 1}}"))
    assert report is not None
    assert [(v.column, v.rule, v.count) for v in report.violations] == [
        ("view", "categories", 100), ("price", "max", 191), ("half", "min", 1)]
