"""Profiling the parts of a large table in parallel on an executor, and merging the profiles.

::

    parts = split_parquet("events.parquet", parts=8)          # ranges of row groups
    profile = profile_parts(parts, executor="ray://head:10001")
    profile, quality = profile_parts(sorted(Path("lake/").glob("*.parquet")),
                                     executor="processes:4", reference=training_profile)

Each part (a Parquet file, a range of row groups of one, a CSV file, or any
:class:`~loopml.profiling.TableSource`) is profiled in one task on the executor (``inline``,
``processes:N``, ``ray-local``, ``ray://host:port``: see
:func:`~loopml.pipelines.executors.base.open_executor`), one thread per task, and the profiles
are merged in the order of the parts. Profiles merge exactly, mean and variance included, so
the result is the profile of the whole table; when the parts are the row-group ranges that
:func:`split_parquet` chooses, it is the very profile one pass over the file gives
(:func:`~loopml.profiling.profile_table`), to the last bit.

With ``reference`` (a training profile), each task also runs the data-quality checks of
:class:`~loopml.monitoring.quality.QualityObserver` on its rows; their counts are added up and
the verdict is drawn once, on the whole table, so it is the verdict of one pass (the example
rows are numbered across the parts, in their order). The parts are checked as they are, not
cast: their columns must have the reference's types (:func:`~loopml.monitoring.compare`
casts a table that does not, in memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, overload

from loopml.errors import InvalidArgument

if TYPE_CHECKING:
    from loopml.monitoring.quality import QualityObserver
    from loopml.monitoring.results import QualityReport
    from loopml.pipelines.executors.base import Executor
    from loopml.profiling import TableProfile, TableSource
    from loopml.profiling.sources import ParquetSource

__all__ = ["profile_parts", "split_parquet"]

Part = str | Path


@dataclass(frozen=True)
class _ColumnCounts:
    """What the quality checks counted in one column of one part."""

    values: int
    nulls: int
    outside: int
    unseen: int
    examples: dict[str, tuple[list[str], list[int]]]


def _counts(observer: QualityObserver) -> dict[str, _ColumnCounts]:
    return {name: _ColumnCounts(column.values, column.nulls, column.outside, column.unseen,
                                column.examples)
            for name, column in observer._columns.items()}


def _profile_part(source: TableSource, reference: TableProfile | None
                  ) -> tuple[TableProfile, dict[str, _ColumnCounts] | None]:
    """The task: one part's profile (and quality counts), on one thread."""
    from loopml.profiling import profile_table

    if reference is None:
        return profile_table(source, threads=1), None
    from loopml.monitoring.quality import QualityObserver

    observer = QualityObserver(reference)
    return profile_table(source, observers=[observer], threads=1), _counts(observer)


def _merged_quality(reference: TableProfile, parts: list[tuple[int, dict[str, _ColumnCounts]]]
                    ) -> QualityReport:
    """The report of one observer that saw every part in turn (``(rows, counts)`` each)."""
    from loopml.monitoring.quality import QualityObserver

    observer = QualityObserver(reference)
    offset = 0
    for rows, counts in parts:
        for name, column in observer._columns.items():
            seen = counts[name]
            column.values += seen.values
            column.nulls += seen.nulls
            column.outside += seen.outside
            column.unseen += seen.unseen
            for kind, (shown, where) in seen.examples.items():
                kept, kept_rows = column.examples.setdefault(kind, ([], []))
                room = observer.max_examples - len(kept_rows)
                kept += shown[:room]
                kept_rows += [offset + row for row in where[:room]]
        offset += rows
    return observer.report(offset)


def _open(part: Part | TableSource) -> TableSource:
    from loopml.profiling import TableSource, open_table

    if isinstance(part, TableSource):
        return part
    if isinstance(part, str | Path):
        return open_table(part)
    raise InvalidArgument(f"a part must be a path (Parquet or CSV file) or a TableSource, "
                          f"got {type(part).__name__}")


def _check_types(sources: list[TableSource], reference: TableProfile) -> None:
    from loopml.profiling import schema_diff

    for source in sources:
        diff = schema_diff(reference.schema, source.schema)
        if diff.removed or diff.retyped:
            where = source.path or "a part"
            changes = "; ".join(diff.lines()[len(diff.added):])
            raise InvalidArgument(f"{where} does not have the reference's columns and types "
                                  f"({changes}); give parts that do, or check the table with "
                                  "compare(), which casts it first")


@overload
def profile_parts(parts: Sequence[Part | TableSource], *, executor: str | Executor = ...,
                  reference: None = None) -> TableProfile: ...


@overload
def profile_parts(parts: Sequence[Part | TableSource], *, executor: str | Executor = ...,
                  reference: TableProfile) -> tuple[TableProfile, QualityReport]: ...


def profile_parts(parts: Sequence[Part | TableSource], *,
                  executor: str | Executor = "inline", reference: TableProfile | None = None
                  ) -> TableProfile | tuple[TableProfile, QualityReport]:
    """The profile of the table made of ``parts``, each profiled in its own task on
    ``executor``; with ``reference``, also the quality report of the whole table (see the
    module's documentation). An executor given as a spec is opened and closed here."""
    from loopml.pipelines.executors.base import Executor, open_executor

    if isinstance(parts, str | Path) or not parts:
        raise InvalidArgument(f"profile_parts() takes a list of parts (paths or TableSources),"
                              f" got {parts!r:.80}; split one Parquet file with split_parquet()")
    sources = [_open(part) for part in parts]
    if reference is not None:
        _check_types(sources, reference)
    runner = open_executor(executor)
    try:
        futures = [runner.submit(_profile_part, source, reference) for source in sources]
        try:
            results = [future.result() for future in futures]
        finally:
            for future in futures:
                runner.cancel(future)
    finally:
        if not isinstance(executor, Executor):
            runner.close()
    profile = results[0][0]
    for part, _ in results[1:]:
        profile = profile.merge(part)
    if reference is None:
        return profile
    counted = [(part.rows, counts) for part, counts in results if counts is not None]
    return profile, _merged_quality(reference, counted)


def split_parquet(path: str | Path, *, parts: int) -> list[ParquetSource]:
    """One Parquet file as up to ``parts`` ranges of row groups with about as many rows each.

    The ranges start where :func:`~loopml.profiling.sources.batch_runs` starts a batch, so
    each part reads as the batches one pass over the whole file reads, and the merged profile
    of the parts is the file's profile exactly. A file of fewer row groups (or batches of
    row groups) gives fewer parts: a row group is never split.
    """
    from loopml.profiling.sources import BATCH_ROWS, ParquetSource, batch_runs

    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise InvalidArgument(f"parts must be a positive number of parts, got {parts!r}")
    source = _open(path)
    if not isinstance(source, ParquetSource) or source.files != [source.path]:
        raise InvalidArgument(f"split_parquet() splits one Parquet file; {path} is not one "
                              "(give the files of a directory as parts themselves)")
    import pyarrow.parquet as pq

    file = source.files[0]
    metadata = pq.read_metadata(file)
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    target = max(sum(sizes), 1) / parts
    cuts: list[int] = []
    rows = 0
    for run in batch_runs(sizes, BATCH_ROWS):
        if rows >= target * (len(cuts) + 1) and len(cuts) < parts - 1:
            cuts.append(run.start)
        rows += sum(sizes[i] for i in run)
    bounds = [0, *cuts, len(sizes)]
    return [ParquetSource(file, row_groups=range(start, stop))
            for start, stop in pairwise(bounds)]
