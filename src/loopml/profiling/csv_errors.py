"""One-line messages for CSV files that do not read: which file, line, column, and the fix.

pyarrow reports a bad CSV as, for example::

    CSV parse error: Expected 3 columns, got 2: 5,6
    In CSV column #0: CSV conversion error to int64: invalid value 'foo'

and only names the row when it read the file on one thread. The streaming reader uses several,
so on an error the file is read again on one thread (errors are rare; the cost is one more read
up to the bad row) to learn the row number, and the column number is turned into its name.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

__all__ = ["describe_csv_error"]

_ROW = re.compile(r"Row #(\d+)")
_COLUMN = re.compile(r"In CSV column #(\d+)")
_COLUMN_COUNT = re.compile(r"Expected (\d+) columns, got (\d+)(?:: (.*))?", re.S)
_CONVERSION = re.compile(r"conversion error to (.+?): invalid value '(.*)'", re.S)
_HEADER_BYTES = 1 << 20


def _single_threaded_error(path: Path, delimiter: str, column_types: Mapping[str, pa.DataType],
                           block_bytes: int) -> str | None:
    """The error text of the same read on one thread (which names the row), if it fails."""
    try:
        stream = pa.input_stream(str(path), compression="detect")
        with pa_csv.open_csv(
                stream, read_options=pa_csv.ReadOptions(use_threads=False, block_size=block_bytes),
                parse_options=pa_csv.ParseOptions(delimiter=delimiter),
                convert_options=pa_csv.ConvertOptions(column_types=dict(column_types))
        ) as reader:
            for _ in reader:
                pass
    except pa.ArrowException as exc:
        return str(exc)
    return None


def _header(path: Path, delimiter: str) -> list[str]:
    """The column names on the first line (best effort: [] when it cannot be read)."""
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            head = stream.read(_HEADER_BYTES).decode("utf-8", errors="replace")
        return next(csv.reader(io.StringIO(head), delimiter=delimiter), [])
    except (OSError, pa.ArrowException, csv.Error):
        return []


def _clip(text: str, limit: int = 60) -> str:
    text = text.strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def describe_csv_error(path: Path, error: BaseException, *, delimiter: str = ",",
                       column_types: Mapping[str, pa.DataType] | None = None,
                       block_bytes: int = 4 << 20) -> str:
    """A one-line message for the pyarrow ``error`` raised while reading the CSV at ``path``
    (with the reader options it was read with: the same blocks infer the same types)."""
    text = str(error).strip()
    if "Empty CSV file" in text:
        return f"{path} is empty: a CSV table needs at least a header line with the column names"
    if "Row #" not in text and ("CSV parse error" in text or "conversion error" in text):
        text = _single_threaded_error(path, delimiter, column_types or {}, block_bytes) or text
    where: list[str] = []
    if row := _ROW.search(text):
        where.append(f"line {row.group(1)}")
    column_name = None
    if column := _COLUMN.search(text):
        index = int(column.group(1))
        names = _header(path, delimiter)
        column_name = names[index] if index < len(names) else f"#{index + 1}"
        where.append(f"column {column_name!r}")
    place = f"{path}, {', '.join(where)}" if where else str(path)
    if count := _COLUMN_COUNT.search(text):
        found = f" in {_clip(count.group(3))!r}" if count.group(3) else ""
        return (f"{place}: expected {count.group(1)} values, found {count.group(2)}{found}; "
                f"check that line for a missing or extra {delimiter!r} or an unclosed quote")
    if conversion := _CONVERSION.search(text):
        kind, value = conversion.group(1), _clip(conversion.group(2))
        name = column_name or "the column"
        return (f"{place}: cannot read {value!r} as {kind} (the type inferred from the first "
                f"rows or given in column_types); fix the value, or read {name!r} with "
                f"column_types={{{name!r}: 'string'}} (or another type that fits it)")
    first = text.splitlines()[0] if text else type(error).__name__
    first = re.sub(r"^CSV parse error: ", "", first)
    return f"{place}: cannot read the file as CSV: {_clip(first, 200)}"
