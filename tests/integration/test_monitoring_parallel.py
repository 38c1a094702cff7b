"""Partitions of a table profiled in parallel (inline threads, a process pool, a local Ray
cluster) merge into exactly the profile, and the quality verdict, of one pass over the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from monitoring_data import REAL_SHIFTS, monitoring_table

from loopml.errors import InvalidArgument, NotFound
from loopml.monitoring.parallel import profile_parts, split_parquet
from loopml.monitoring.quality import QualityObserver
from loopml.profiling import TableProfile, open_table, profile_table
from loopml.profiling.sources import BATCH_ROWS

ROWS = 100_000
GROUP_ROWS = BATCH_ROWS // 4  # four row groups make one batch: parts start at batch runs


@pytest.fixture(scope="module")
def reference() -> TableProfile:
    return profile_table(monitoring_table(20_000, seed=1))


@pytest.fixture(scope="module")
def table_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shifted window with quality problems spread over its rows: values out of the
    training range, a category never seen in training."""
    table = monitoring_table(ROWS, seed=2, shifts=REAL_SHIFTS)
    rows = np.arange(ROWS)
    stray = pa.array(np.where(rows % 500 == 17, 1e6, table["normal_c"].to_numpy()))
    labels = table["cat_30"].combine_chunks().dictionary_decode()
    unseen = pc.if_else(pa.array(rows % 1_000 == 5), "zz-new", labels)
    table = table.set_column(table.schema.get_field_index("normal_c"), "normal_c", stray)
    table = table.set_column(table.schema.get_field_index("cat_30"), "cat_30",
                             unseen.dictionary_encode())
    path = tmp_path_factory.mktemp("parallel") / "window.parquet"
    pq.write_table(table, path, row_group_size=GROUP_ROWS)
    return path


def _one_pass(path: Path, reference: TableProfile) -> tuple[TableProfile, object]:
    observer = QualityObserver(reference)
    profile = profile_table(open_table(path), observers=[observer])
    return profile, observer.report(profile.rows)


def test_split_parquet_cuts_at_batch_runs(table_file: Path) -> None:
    parts = split_parquet(table_file, parts=3)
    groups = pq.read_metadata(table_file).num_row_groups
    assert [p.row_groups for p in parts] == [range(0, 8), range(8, 12), range(12, groups)]
    assert [p.row_groups for p in split_parquet(table_file, parts=1)] == [range(0, groups)]
    # Never more parts than batches of row groups.
    assert len(split_parquet(table_file, parts=100)) == -(-ROWS // BATCH_ROWS)


@pytest.mark.parametrize("executor", ["inline", "processes:2"])
def test_parts_merge_into_the_one_pass_profile_and_verdict(
        table_file: Path, reference: TableProfile, executor: str) -> None:
    whole, verdict = _one_pass(table_file, reference)
    parts = split_parquet(table_file, parts=3)
    profile, quality = profile_parts(parts, executor=executor, reference=reference)
    assert profile == whole  # to the last bit, mean and variance included
    assert quality == verdict
    kinds = {(issue.column, issue.kind) for issue in quality.issues}
    assert {("normal_c", "out_of_range"), ("cat_30", "unseen_category")} <= kinds
    # Example rows are numbered across the parts, as in one pass.
    stray = next(i for i in quality.issues if i.column == "normal_c")
    assert stray.rows[:3] == (17, 517, 1_017)
    # Any order, any grouping: the same profile.
    assert profile_parts(parts[::-1], executor=executor) == whole


def test_parts_on_a_local_ray_cluster(table_file: Path, reference: TableProfile,
                                      ray_address: str) -> None:
    from loopml.pipelines.executors import ray as ray_module

    whole, verdict = _one_pass(table_file, reference)
    try:
        profile, quality = profile_parts(split_parquet(table_file, parts=4),
                                         executor=ray_address, reference=reference)
    finally:  # loopml keeps the connection open for later calls; close it for other tests
        ray_module._disconnect_at_exit()
    assert profile == whole
    assert quality == verdict


def test_files_and_csv_parts(tmp_path: Path, table_file: Path) -> None:
    table = pq.read_table(table_file)
    folder = tmp_path / "lake"
    folder.mkdir()
    for index, start in enumerate(range(0, ROWS, 40_000)):
        pq.write_table(table.slice(start, 40_000), folder / f"part-{index}.parquet",
                       row_group_size=GROUP_ROWS)
    files = sorted(folder.glob("*.parquet"))
    assert profile_parts(files, executor="inline") == profile_table(open_table(folder))

    numbers = table.select(["normal_a", "count_b"])
    halves = [tmp_path / "a.csv", tmp_path / "b.csv"]
    pa_csv.write_csv(numbers.slice(0, 30_000), halves[0])
    pa_csv.write_csv(numbers.slice(30_000, 20_000), halves[1])
    merged = profile_parts(halves)
    assert merged.rows == 50_000
    assert merged == profile_table(open_table(halves[0])).merge(
        profile_table(open_table(halves[1])))
    assert merged["count_b"].max == pc.max(numbers["count_b"].slice(0, 50_000)).as_py()


def test_bad_parts_are_named(tmp_path: Path, table_file: Path, reference: TableProfile) -> None:
    with pytest.raises(InvalidArgument, match="list of parts"):
        profile_parts([])
    with pytest.raises(InvalidArgument, match="list of parts"):
        profile_parts(str(table_file))  # type: ignore[call-overload]
    with pytest.raises(NotFound, match="no table at"):
        profile_parts([tmp_path / "nothing.parquet"])
    with pytest.raises(InvalidArgument, match="positive number of parts"):
        split_parquet(table_file, parts=0)
    with pytest.raises(InvalidArgument, match="splits one Parquet file"):
        split_parquet(table_file.parent, parts=2)
    retyped = tmp_path / "retyped.parquet"
    table = pq.read_table(table_file)
    pq.write_table(table.set_column(0, "normal_a", table["normal_a"].cast(pa.string())), retyped)
    with pytest.raises(InvalidArgument, match="'normal_a' changed type from double to string"):
        profile_parts([retyped], reference=reference)
    other = tmp_path / "other.parquet"
    pq.write_table(table.drop_columns(["cat_3"]), other)
    with pytest.raises(InvalidArgument, match="cannot merge profiles of different schemas"):
        profile_parts([table_file, other])
