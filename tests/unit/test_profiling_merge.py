"""Exact merging (mean and variance through exact sums), the batches Parquet parts read as,
and reading Arrow buffers without pyarrow's pandas bridge."""

from __future__ import annotations

import decimal
import json
import math
import subprocess
import sys
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.errors import InvalidArgument
from loopml.profiling import ColumnProfile, TableProfile, open_table, profile_table
from loopml.profiling.accumulate import update_profile
from loopml.profiling.arrays import arrow_array, numpy_values
from loopml.profiling.moments import Moments
from loopml.profiling.sources import ParquetSource, batch_runs


def _batches(values: np.ndarray, cuts: list[int]) -> list[ColumnProfile]:
    bounds = [0, *cuts, len(values)]
    return [update_profile(ColumnProfile.empty("numeric"), pa.array(values[a:b]))
            for a, b in pairwise(bounds)]


def _fold(profiles: list[ColumnProfile]) -> ColumnProfile:
    merged = profiles[0]
    for profile in profiles[1:]:
        merged = merged.merge(profile)
    return merged


def test_mean_and_variance_merge_exactly_in_any_order_and_grouping() -> None:
    rng = np.random.default_rng(7)
    # Magnitudes far apart: the float formula loses bits here at every merge.
    values = np.concatenate([rng.normal(1e9, 1.0, 3_000), rng.normal(0.0, 1e-3, 3_000),
                             rng.lognormal(0.0, 4.0, 3_000)])
    parts = _batches(values, [1_000, 2_500, 4_000, 6_001, 8_000])
    left = _fold(parts)
    right = _fold(parts[::-1])
    grouped = _fold(parts[:3]).merge(_fold(parts[3:]))
    shuffled = _fold([parts[i] for i in (3, 0, 5, 1, 4, 2)])
    for other in (right, grouped, shuffled):
        assert (other.mean, other.m2, other.sums) == (left.mean, left.m2, left.sums)
        assert other == left
    assert left.mean == pytest.approx(float(np.mean(values)), rel=1e-12)
    assert left.variance == pytest.approx(float(np.var(values)), rel=1e-9)


def test_exact_sums_survive_storage_and_old_profiles_still_merge() -> None:
    values = np.random.default_rng(3).normal(5.0, 2.0, 4_000)
    first, second, third = _batches(values, [1_000, 2_500])
    merged = first.merge(second)
    assert merged.sums is not None and "sums" in merged.to_dict()
    stored = ColumnProfile.from_dict(json.loads(json.dumps(merged.to_dict())))
    assert stored.sums == merged.sums
    assert stored.merge(third) == merged.merge(third)
    # A profile stored before exact sums existed merges through its mean and m2.
    old = merged.to_dict()
    del old["sums"]
    assert ColumnProfile.from_dict(old).merge(third).mean == pytest.approx(
        merged.merge(third).mean, rel=1e-15)
    with pytest.raises(InvalidArgument, match="'sums' must be"):
        ColumnProfile.from_dict({**merged.to_dict(), "sums": [1, "zz", "1"]})


def test_constant_values_have_zero_variance_and_infinities_stay_honest() -> None:
    constant = _fold(_batches(np.full(3_000, 1e16 + 2.0), [1_000, 2_000]))
    assert constant.m2 == 0.0 and constant.mean == 1e16 + 2.0
    with_inf = _fold(_batches(np.array([1.0, 2.0, np.inf, 3.0]), [2]))
    assert with_inf.mean == math.inf and with_inf.sums is None and math.isnan(with_inf.m2)
    both = _fold(_batches(np.array([1.0, -np.inf, 2.0, np.inf]), [2]))
    assert math.isnan(both.mean)
    high, low = Moments.of(2, 1e300, 0.0), Moments.of(2, -1e300, 0.0)
    assert high is not None and low is not None
    assert high.merge(low).m2 == math.inf and high.merge(low).mean == 0.0


def test_table_profiles_of_parts_equal_the_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    table = pa.table({"x": rng.normal(size=50_000), "n": rng.integers(0, 1_000, 50_000),
                      "c": pa.array(np.array(["a", "b", "c"])[rng.integers(0, 3, 50_000)])})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=5_000)
    whole = profile_table(ParquetSource(path, batch_rows=10_000))
    parts = [profile_table(ParquetSource(path, batch_rows=10_000, row_groups=range(a, b)))
             for a, b in ((0, 4), (4, 6), (6, 10))]
    assert parts[2].merge(parts[0]).merge(parts[1]) == whole
    stored = TableProfile.from_dict(json.loads(json.dumps(parts[0].to_dict())))
    assert stored.merge(parts[1].merge(parts[2])) == whole


def test_batch_runs_group_small_row_groups_and_split_none(tmp_path: Path) -> None:
    assert batch_runs([1_000] * 5 + [500], 2_000) == [range(0, 2), range(2, 4), range(4, 6)]
    assert batch_runs([5_000, 100, 100, 5_000], 2_000) == [range(0, 1), range(1, 3),
                                                          range(3, 4)]
    assert batch_runs([], 2_000) == []
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"n": np.arange(5_500)}), path, row_group_size=1_000)
    sizes = [b.num_rows for b in ParquetSource(path, batch_rows=2_000,
                                               row_groups=range(2, 6)).batches()]
    assert sizes == [2_000, 1_500]
    with pytest.raises(InvalidArgument, match=r"within 0…6 .* got range\(4, 9\)"):
        ParquetSource(path, row_groups=range(4, 9))
    with pytest.raises(InvalidArgument, match="applies to one Parquet file"):
        ParquetSource(tmp_path, row_groups=range(0, 1))


def test_numpy_values_reads_buffers_with_offsets_nulls_and_types() -> None:
    sliced = pa.array(np.arange(10, dtype=np.int32)).slice(3, 4)
    assert numpy_values(sliced).tolist() == [3, 4, 5, 6]
    flags = pa.array([True, False, True, True, False, True, False, False, True, True])
    assert numpy_values(flags.slice(5, 5)).tolist() == [True, False, False, True, True]
    assert numpy_values(pa.array([date(1970, 1, 3)])).tolist() == [2]
    stamp = pa.array([datetime(1970, 1, 1, 0, 0, 1)], pa.timestamp("ms"))
    assert numpy_values(stamp).tolist() == [1_000]
    assert numpy_values(pa.array([decimal.Decimal("1.5")])).tolist() == [1.5]
    assert numpy_values(pa.array([1.5, None, 2.5]), fill=0).tolist() == [1.5, 0.0, 2.5]
    with pytest.raises(ValueError, match="no fill value"):
        numpy_values(pa.array([1, None]))
    with pytest.raises(ValueError, match="not string"):
        numpy_values(pa.array(["a"]))
    assert arrow_array(np.array([4, 5], dtype=np.int64)).to_pylist() == [4, 5]


def test_profiling_does_not_import_pandas(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    rng = np.random.default_rng(1)
    pq.write_table(pa.table({"x": rng.normal(size=1_000), "n": rng.integers(0, 9, 1_000),
                             "s": pa.array(["a", None] * 500), "b": [True, False] * 500,
                             "d": np.arange(1_000).astype("datetime64[D]")}), path)
    profile_table(open_table(path))  # the same code, in this process first
    code = ("import sys; from loopml.profiling import open_table, profile_table; "
            f"profile_table(open_table({str(path)!r})); print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
