"""Reading tables (CSV, Parquet, directories of Parquet), error messages, schemas."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.errors import InvalidArgument, NotFound
from loopml.profiling import (
    ColumnSchema,
    TableProfile,
    open_table,
    profile_table,
    schema_diff,
    schema_of,
)
from loopml.profiling.sources import CsvSource, ParquetSource


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_is_read_in_batches_with_inferred_types(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i * 0.5},name{i % 3}\n" for i in range(10_000))
    source = CsvSource(_write(tmp_path / "t.csv", "id,score,name\n" + rows), block_bytes=4096)
    assert schema_of(source.schema) == [ColumnSchema("id", "int64"),
                                        ColumnSchema("score", "double"),
                                        ColumnSchema("name", "string")]
    assert len(list(source.batches())) > 10
    profile = profile_table(source)
    assert profile.rows == 10_000 and profile["id"].max == 9_999
    assert profile["name"].distinct == 3


def test_tsv_and_compressed_csv(tmp_path: Path) -> None:
    _write(tmp_path / "t.tsv", "a\tb\n1\tx\n2\ty\n")
    assert profile_table(open_table(tmp_path / "t.tsv")).column_names == ["a", "b"]
    with gzip.open(tmp_path / "t.csv.gz", "wt") as stream:
        stream.write("a,b\n1,x\n2,y\n3,z\n")
    assert profile_table(open_table(tmp_path / "t.csv.gz")).rows == 3


def test_csv_with_a_short_row_names_the_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.csv", "a,b,c\n1,2,x\n3,4,y\n5,6\n7,8,z\n")
    with pytest.raises(InvalidArgument) as raised:
        profile_table(open_table(path))
    message = str(raised.value)
    assert message.startswith(f"{path}, line 4: expected 3 values, found 2 in '5,6'")
    assert "\n" not in message and "pyarrow" not in message
    assert raised.value.__suppress_context__


def test_csv_value_of_the_wrong_type_names_line_and_column(tmp_path: Path) -> None:
    lines = "".join(f"{i},{i}\n" for i in range(2_000))
    path = _write(tmp_path / "late.csv", "id,amount\n" + lines + "2000,lots\n")
    with pytest.raises(InvalidArgument) as raised:
        profile_table(CsvSource(path, block_bytes=1024))
    message = str(raised.value)
    assert message.startswith(f"{path}, line 2002, column 'amount': cannot read 'lots' as int64")
    assert "column_types={'amount': 'string'}" in message
    # The suggested fix works.
    fixed = CsvSource(path, column_types={"amount": pa.string()}, block_bytes=1024)
    assert profile_table(fixed).rows == 2_001
    assert profile_table(open_table(path, column_types={"amount": "string"})).rows == 2_001


def test_empty_and_header_only_csv(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="is empty: a CSV table needs at least a header"):
        open_table(_write(tmp_path / "empty.csv", "")).schema  # noqa: B018
    profile = profile_table(open_table(_write(tmp_path / "header.csv", "a,b\n")))
    assert profile.rows == 0 and profile.column_names == ["a", "b"]


def test_unsupported_or_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"unsupported format '\.xlsx'; supported: CSV"):
        open_table(_write(tmp_path / "t.xlsx", "x"))
    with pytest.raises(NotFound, match="no such file or directory"):
        open_table(tmp_path / "missing.csv")
    with pytest.raises(InvalidArgument, match="unknown type 'int65'"):
        open_table(_write(tmp_path / "t.csv", "a\n1\n"), column_types={"a": "int65"})


def _parquet(path: Path, table: pa.Table, *, row_group_size: int = 1_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def _numbers(start: int, rows: int) -> pa.Table:
    rng = np.random.default_rng(start)
    return pa.table({"n": pa.array(np.arange(start, start + rows)),
                     "x": rng.normal(size=rows),
                     "c": pa.array(np.array(["u", "v"])[rng.integers(0, 2, rows)])})


def test_parquet_file_streams_bounded_batches(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "t.parquet", _numbers(0, 5_500))
    source = ParquetSource(path, batch_rows=2_000)
    assert [b.num_rows for b in source.batches()] == [2_000, 2_000, 1_500]
    assert profile_table(source).rows == profile_table(open_table(path)).rows == 5_500


def test_directory_of_parquet_files_in_sorted_order(tmp_path: Path) -> None:
    parts = {"part-2.parquet": _numbers(2_000, 1_000), "part-1.parquet": _numbers(0, 2_000),
             "sub/part-3.pq": _numbers(3_000, 500)}
    for name, table in parts.items():
        _parquet(tmp_path / "t" / name, table)
    _write(tmp_path / "t" / "_SUCCESS", "")
    source = open_table(tmp_path / "t")
    firsts = [batch.column("n")[0].as_py() for batch in source.batches()]
    assert firsts[0] == 0 and firsts[-1] == 3_000 and firsts == sorted(firsts)
    whole = profile_table(source)
    merged = profile_table(parts["part-1.parquet"])
    for name in ("part-2.parquet", "sub/part-3.pq"):
        merged = merged.merge(profile_table(parts[name]))
    assert whole.rows == merged.rows == 3_500
    assert whole["x"].sketch == merged["x"].sketch
    assert whole["c"].categories == merged["c"].categories
    # Parquet strings are read dictionary-encoded for speed: the profile is the same.
    assert whole["c"].distinct_sketch == merged["c"].distinct_sketch
    assert next(source.batches()).column("c").type == pa.string()
    assert pa.types.is_dictionary(next(source.batches(dictionary_strings=True)).column("c").type)


def test_directory_problems_are_named(tmp_path: Path) -> None:
    _parquet(tmp_path / "mixed" / "a.parquet", _numbers(0, 10))
    _parquet(tmp_path / "mixed" / "b.parquet", _numbers(0, 10).drop_columns(["x"]))
    with pytest.raises(InvalidArgument, match=r"b\.parquet does not have the schema of .*"
                                              r"removed column 'x'"):
        profile_table(open_table(tmp_path / "mixed"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument, match="holds no Parquet files"):
        open_table(tmp_path / "empty")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(InvalidArgument, match="is not a readable Parquet file: Parquet magic"):
        open_table(broken)


def test_schema_diff_lists_added_removed_and_retyped_columns() -> None:
    old = pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.float64())])
    new = pa.schema([("a", pa.float64()), ("c", pa.float64()), ("d", pa.bool_())])
    diff = schema_diff(old, new)
    assert [c.name for c in diff.added] == ["d"] and [c.name for c in diff.removed] == ["b"]
    assert diff.retyped == [(ColumnSchema("a", "int64"), ColumnSchema("a", "double"))]
    assert list(diff) == ["added column 'd' (bool)", "removed column 'b' (string)",
                          "column 'a' changed type from int64 to double"]
    assert diff and len(diff) == 3
    assert not schema_diff(old, schema_of(old))
    assert diff.to_dict()["retyped"] == [{"name": "a", "old": "int64", "new": "double"}]


def test_profile_schema_survives_storage(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "t.parquet", pa.table({"a": pa.array([1, 2], pa.int32())}))
    profile = profile_table(open_table(path))
    again = TableProfile.from_dict(profile.to_dict())
    assert schema_of(again.schema) == [ColumnSchema("a", "int32", True)]
