"""Reading tables as streams of Arrow record batches: CSV, Parquet, directories of Parquet.

:func:`open_table` returns a :class:`TableSource`: the table's ``pyarrow.Schema`` and a way to
iterate over its record batches, so a table of any size is read with bounded memory. Reading
errors are translated at this boundary: a file that does not parse raises
:class:`~loopml.errors.InvalidArgument` naming the file, the line and the column where they are
known (see :mod:`loopml.profiling.csv_errors`), never a raw pyarrow error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pyarrow.types as pat

from loopml.errors import InvalidArgument, NotFound
from loopml.profiling.csv_errors import describe_csv_error

__all__ = [
    "BATCH_ROWS",
    "SUPPORTED_FORMATS",
    "ArrowSource",
    "CsvSource",
    "ParquetSource",
    "TableSource",
    "batch_runs",
    "open_table",
]

# Memory, not speed, sets these (measured on 1M rows x 25 columns: 32K-row batches profile as
# fast as 64K ones; every column being read holds about this many bytes of buffered reads).
BATCH_ROWS = 1 << 15
CSV_BLOCK_BYTES = 4 << 20
PARQUET_READ_BYTES = 1 << 18
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv", ".tsv")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst", ".lz4")
SUPPORTED_FORMATS = ("CSV (.csv, .tsv, optionally .gz/.bz2/.zst/.lz4 compressed)",
                     "Parquet (.parquet, .pq, .parq)", "a directory of Parquet files")


class TableSource(ABC):
    """A table that can be read as record batches, as often as needed."""

    #: The file or directory read, None for a table in memory.
    path: Path | None = None

    @property
    @abstractmethod
    def schema(self) -> pa.Schema:
        """The Arrow schema every batch has."""

    @abstractmethod
    def batches(self, *, dictionary_strings: bool = False) -> Iterator[pa.RecordBatch]:
        """The rows, in order, as record batches of bounded size.

        With ``dictionary_strings``, string columns may come dictionary-encoded (as Parquet
        stores them, which reads and profiles several times faster) instead of with the plain
        string type of :attr:`schema`.
        """


class ArrowSource(TableSource):
    """A ``pyarrow.Table`` or ``RecordBatch`` already in memory."""

    def __init__(self, table: pa.Table | pa.RecordBatch, *, batch_rows: int = BATCH_ROWS):
        self._table = pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) \
            else table
        self._batch_rows = batch_rows

    @property
    def schema(self) -> pa.Schema:
        return self._table.schema

    def batches(self, *, dictionary_strings: bool = False) -> Iterator[pa.RecordBatch]:
        yield from self._table.to_batches(max_chunksize=self._batch_rows)


class CsvSource(TableSource):
    """A CSV (or TSV) file, read in blocks; column types are inferred from the first block
    unless given in ``column_types``."""

    def __init__(self, path: Path, *, column_types: Mapping[str, pa.DataType] | None = None,
                 block_bytes: int = CSV_BLOCK_BYTES):
        self.path = path
        self._block_bytes = block_bytes
        self._delimiter = "\t" if ".tsv" in path.suffixes else ","
        self._column_types = dict(column_types or {})
        self._schema: pa.Schema | None = None

    def _reader(self) -> pa_csv.CSVStreamingReader:
        stream = pa.input_stream(str(self.path), compression="detect")
        return pa_csv.open_csv(
            stream, read_options=pa_csv.ReadOptions(block_size=self._block_bytes),
            parse_options=pa_csv.ParseOptions(delimiter=self._delimiter),
            convert_options=pa_csv.ConvertOptions(column_types=self._column_types))

    @property
    def schema(self) -> pa.Schema:
        if self._schema is None:
            try:
                with self._reader() as reader:
                    self._schema = reader.schema
            except pa.ArrowException as exc:
                raise InvalidArgument(self._describe(exc)) from None
        return self._schema

    def batches(self, *, dictionary_strings: bool = False) -> Iterator[pa.RecordBatch]:
        try:
            with self._reader() as reader:
                self._schema = reader.schema
                for batch in reader:
                    if batch.num_rows:
                        yield batch
        except pa.ArrowException as exc:
            raise InvalidArgument(self._describe(exc)) from None

    def _describe(self, error: pa.ArrowException) -> str:
        assert self.path is not None
        return describe_csv_error(self.path, error, delimiter=self._delimiter,
                                  column_types=self._column_types, block_bytes=self._block_bytes)


def _parquet_error(path: Path, error: Exception) -> InvalidArgument:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return InvalidArgument(f"{path} is not a readable Parquet file: {first_line}")


class ParquetSource(TableSource):
    """One Parquet file, or every Parquet file under a directory (in sorted path order),
    read in batches of at most ``batch_rows`` rows; ``row_groups`` reads only that range of one
    file's row groups.

    Batches follow :func:`batch_runs`: consecutive small row groups are read as one batch, a
    large row group as several, and a batch never spans files. A range of row groups that
    starts where a run starts reads as the very batches it gives within the whole file, so the
    profiles of such parts merge into exactly the profile of the file (see
    :mod:`loopml.profiling.moments`).
    """

    def __init__(self, path: Path, *, batch_rows: int = BATCH_ROWS,
                 row_groups: range | None = None):
        self.path = path
        self._batch_rows = batch_rows
        self.row_groups = row_groups
        if row_groups is not None:
            self._check_row_groups(path, row_groups)
        if path.is_dir():
            self.files = sorted(
                p for p in path.rglob("*") if p.is_file()
                and p.suffix.lower() in PARQUET_SUFFIXES
                and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))
            if not self.files:
                suffixes = ", ".join(PARQUET_SUFFIXES)
                raise InvalidArgument(f"{path} holds no Parquet files ({suffixes}); a table "
                                      "directory must hold Parquet files only")
        else:
            self.files = [path]
        self._schema = self._file_schema(self.files[0])

    @staticmethod
    def _check_row_groups(path: Path, row_groups: range) -> None:
        if path.is_dir():
            raise InvalidArgument(f"row_groups applies to one Parquet file; {path} is a "
                                  "directory")
        try:
            groups = pq.read_metadata(path).num_row_groups
        except (pa.ArrowException, OSError) as exc:
            raise _parquet_error(path, exc) from None
        if row_groups.step != 1 or not 0 <= row_groups.start <= row_groups.stop <= groups:
            raise InvalidArgument(f"row_groups must be a range of consecutive row groups "
                                  f"within 0…{groups} of {path}, got {row_groups!r}")

    @staticmethod
    def _file_schema(path: Path) -> pa.Schema:
        try:
            return pq.read_schema(path).remove_metadata()
        except (pa.ArrowException, OSError) as exc:
            raise _parquet_error(path, exc) from None

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def batches(self, *, dictionary_strings: bool = False) -> Iterator[pa.RecordBatch]:
        strings = [f.name for f in self._schema if pat.is_string(f.type)
                   or pat.is_large_string(f.type)] if dictionary_strings else []
        for path in self.files:
            if path != self.files[0]:
                schema = self._file_schema(path)
                if not schema.equals(self._schema):
                    from loopml.profiling.schema import schema_diff

                    changes = "; ".join(schema_diff(self._schema, schema)) or \
                        "nullability differs"
                    raise InvalidArgument(f"{path} does not have the schema of {self.files[0]}:"
                                          f" {changes}; all files of a table need one schema")
            yield from self._file_batches(path, strings)

    def _file_batches(self, path: Path, strings: list[str]) -> Iterator[pa.RecordBatch]:
        try:
            # Without pre-buffering, a row group is read column chunk by column chunk in
            # PARQUET_READ_BYTES reads: pre-buffering would hold every chunk of the file in
            # memory at once. Columns are decoded on the calling thread: profiling runs its
            # own threads, and Arrow's pool would add a heap per thread (measured: +25 MB).
            with pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_READ_BYTES,
                                read_dictionary=strings or None) as reader:
                metadata = reader.metadata
                groups = range(metadata.num_row_groups) if self.row_groups is None \
                    else self.row_groups
                sizes = [metadata.row_group(i).num_rows for i in groups]
                for run in batch_runs(sizes, self._batch_rows):
                    for batch in reader.iter_batches(batch_size=self._batch_rows,
                                                     row_groups=[groups[i] for i in run],
                                                     use_threads=False):
                        if batch.num_rows:
                            yield batch
        except (pa.ArrowException, OSError) as exc:
            raise _parquet_error(path, exc) from None


def batch_runs(group_rows: Sequence[int], batch_rows: int) -> list[range]:
    """How row groups of these sizes are read: runs of consecutive row groups, each run read
    as one batch when it holds several (together at most ``batch_rows`` rows), and a run of one
    large row group as batches of ``batch_rows``. Runs are chosen greedily from the first row
    group, so a range of row groups starting at a run reads as the same batches as within the
    whole file."""
    runs: list[range] = []
    start, rows = 0, 0
    for index, size in enumerate(group_rows):
        if index > start and rows + size > batch_rows:
            runs.append(range(start, index))
            start, rows = index, 0
        rows += size
    if len(group_rows) > start:
        runs.append(range(start, len(group_rows)))
    return runs


def _is_csv(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in CSV_SUFFIXES


def open_table(path: str | Path, *,
               column_types: Mapping[str, str | pa.DataType] | None = None) -> TableSource:
    """The table at ``path``: a CSV/TSV file, a Parquet file or a directory of Parquet files.

    ``column_types`` (CSV only) fixes the type of named columns (``{"zip": "string"}``) instead
    of inferring it from the first rows. Raises :class:`~loopml.errors.NotFound` when nothing is
    at ``path`` and :class:`~loopml.errors.InvalidArgument` for other formats.
    """
    path = Path(path)
    if not path.exists():
        raise NotFound(f"no table at {str(path)!r}: no such file or directory")
    if path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES:
        if column_types:
            raise InvalidArgument("column_types applies to CSV files only; Parquet files "
                                  "carry their own types")
        return ParquetSource(path)
    if _is_csv(path):
        return CsvSource(path, column_types=_arrow_types(column_types or {}))
    raise InvalidArgument(f"cannot read {str(path)!r} as a table: unsupported format "
                          f"{''.join(path.suffixes) or '(no extension)'!r}; supported: "
                          + "; ".join(SUPPORTED_FORMATS))


def _arrow_types(column_types: Mapping[str, str | pa.DataType]) -> dict[str, pa.DataType]:
    types = {}
    for name, kind in column_types.items():
        if isinstance(kind, pa.DataType):
            types[name] = kind
            continue
        try:
            types[name] = pa.type_for_alias(kind)
        except (ValueError, KeyError):
            raise InvalidArgument(f"column_types[{name!r}]: unknown type {kind!r}; use an Arrow "
                                  "type name such as 'int64', 'double', 'string', "
                                  "'timestamp[s]'") from None
    return types
