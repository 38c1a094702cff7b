"""Profiling a table in one streaming pass, with hooks for other per-batch work.

:func:`profile_table` reads a table batch by batch and folds every column of every batch into
its :class:`~loopml.profiling.column.ColumnProfile`. The columns of a batch are profiled on a
small thread pool (numpy and Arrow release the GIL) while a reader thread fetches the next
batches; memory stays bounded by a few batches whatever the size of the table. Observers
(anything with an ``observe(batch, first_row)`` method, e.g. a data-contract checker) see each
batch in the same pass, so a table is read once to be both profiled and validated.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from typing import Any, Protocol

import pyarrow as pa

from loopml.errors import InvalidArgument
from loopml.profiling.accumulate import column_kind, update_profile
from loopml.profiling.column import ColumnProfile
from loopml.profiling.schema import schema_of
from loopml.profiling.sources import ArrowSource, TableSource
from loopml.profiling.table import TableProfile

__all__ = ["BatchObserver", "profile_table"]

_MAX_THREADS = 4
# One batch read ahead overlaps reading with profiling; more only holds more memory.
_READ_AHEAD = 1


class BatchObserver(Protocol):
    """Per-batch work done during the profiling pass."""

    def observe(self, batch: pa.RecordBatch, first_row: int) -> None:
        """Look at ``batch``, whose first row is row ``first_row`` (0-based) of the table."""


def _source(table: TableSource | pa.Table | pa.RecordBatch) -> TableSource:
    if isinstance(table, TableSource):
        return table
    if isinstance(table, pa.Table | pa.RecordBatch):
        return ArrowSource(table)
    raise InvalidArgument(f"profile_table() takes a TableSource (see open_table) or a pyarrow "
                          f"Table or RecordBatch, got {type(table).__name__}")


def _checked_names(schema: pa.Schema) -> list[str]:
    names: list[str] = schema.names
    repeated = [name for name, n in Counter(names).items() if n > 1]
    if repeated:
        raise InvalidArgument(f"column names must be unique, but {', '.join(map(repr, repeated))}"
                              " appear(s) more than once; rename the columns")
    return names


def _checked(source: TableSource, names: list[str]) -> Iterator[pa.RecordBatch]:
    for batch in source.batches(dictionary_strings=True):
        if batch.schema.names != names:
            raise InvalidArgument(f"a batch of {source.path or 'the table'} has columns "
                                  f"{batch.schema.names}, not {names}")
        yield batch


_DONE = object()


def _read_ahead(batches: Iterator[pa.RecordBatch],
                depth: int) -> Generator[pa.RecordBatch, None, None]:
    """The same batches, read by a background thread up to ``depth`` batches ahead, so that
    reading (decompressing, decoding, parsing: GIL-free in Arrow) overlaps profiling."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)

    reader = threading.Thread(target=read, name="loopml-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def _profile_batches(batches: Iterator[pa.RecordBatch], profiles: list[ColumnProfile],
                     observers: Sequence[BatchObserver], workers: int
                     ) -> tuple[int, list[ColumnProfile]]:
    rows = 0
    if workers <= 1:
        for batch in batches:
            profiles = [update_profile(p, batch.column(i)) for i, p in enumerate(profiles)]
            for observer in observers:
                observer.observe(batch, rows)
            rows += batch.num_rows
        return rows, profiles
    with ThreadPoolExecutor(workers, thread_name_prefix="loopml-profile") as pool:
        for batch in batches:
            # Observers first: they are usually the longest tasks of a batch.
            watching: list[Future[None]] = [pool.submit(o.observe, batch, rows)
                                            for o in observers]
            updates = [pool.submit(update_profile, p, batch.column(i))
                       for i, p in enumerate(profiles)]
            profiles = [task.result() for task in updates]
            for task in watching:
                task.result()
            rows += batch.num_rows
    return rows, profiles


def profile_table(table: TableSource | pa.Table | pa.RecordBatch, *,
                  observers: Sequence[BatchObserver] = (),
                  threads: int | None = None) -> TableProfile:
    """The profile of every column of ``table``, read once as a stream of record batches.

    ``observers`` see each batch during the same pass; ``threads`` bounds the worker threads
    (default: the number of CPUs, at most 4; 1 works in the calling thread).
    """
    source = _source(table)
    schema = source.schema
    names = _checked_names(schema)
    profiles = [ColumnProfile.empty(column_kind(field.type)) for field in schema]
    workers = threads if threads is not None else min(os.cpu_count() or 1, _MAX_THREADS)
    with closing(_read_ahead(_checked(source, names), _READ_AHEAD)) as batches:
        rows, profiles = _profile_batches(batches, profiles, observers, workers)
    return TableProfile(rows, dict(zip(names, profiles, strict=True)), tuple(schema_of(schema)))
