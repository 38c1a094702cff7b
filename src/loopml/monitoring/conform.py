"""Conforming a window to the reference: each column cast to the type of the reference's column.

::

    table, issues = conform(window.features, reference)

Values that do not read as the reference's type (text junk in a numeric column, from a JSON
payload) become null and are counted as ``invalid_value``, with a few examples and their row
numbers; a column none of whose values read is a ``retyped_column``, as is a column of another
family of types (numbers sent for a text column); a column the reference has and the window
lacks is a ``missing_column`` (left out of the conformed table). A column the window has and the
reference lacks is an ``unexpected_column``: severity ``warning`` (the model ignores it), an
error only with ``fail_on_unexpected``. An empty window has no issues: no verdict on nothing.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from loopml.errors import InvalidArgument
from loopml.monitoring.results import QualityIssue
from loopml.profiling import TableProfile, column_kind

__all__ = ["conform", "examples_of", "parse_arrow_type", "show_value", "type_family"]

_EXAMPLE_CHARS = 40
_ERRORS = (pa.ArrowException, OverflowError, TypeError, ValueError)
_TIMESTAMP = re.compile(r"timestamp\[(\w+)(?:, tz=(.+))?\]")
_ZONE = r"(Z|[+-]\d\d:\d\d|[+-]\d{4})$"
_DICTIONARY = re.compile(r"dictionary<values=(\w+),")


def parse_arrow_type(text: str) -> pa.DataType | None:
    """The Arrow type a profile's schema names (None for types it cannot name back)."""
    if match := _TIMESTAMP.fullmatch(text):
        return pa.timestamp(match.group(1), match.group(2))
    if match := _DICTIONARY.match(text):
        text = match.group(1)
    try:
        return pa.type_for_alias(text)
    except (ValueError, KeyError):
        return None


def type_family(arrow_type: pa.DataType) -> str:
    """Types of one family convert into each other without loss of meaning."""
    if pat.is_dictionary(arrow_type):
        return type_family(arrow_type.value_type)
    if pat.is_integer(arrow_type) or pat.is_floating(arrow_type) or pat.is_decimal(arrow_type):
        return "number"
    if pat.is_string(arrow_type) or pat.is_large_string(arrow_type) \
            or pat.is_string_view(arrow_type):
        return "text"
    for family, test in (("boolean", pat.is_boolean), ("timestamp", pat.is_timestamp),
                         ("date", pat.is_date), ("time", pat.is_time),
                         ("duration", pat.is_duration)):
        if test(arrow_type):
            return family
    return "other"


def show_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= _EXAMPLE_CHARS else text[:_EXAMPLE_CHARS - 1] + "…"


def examples_of(values: pa.Array | pa.ChunkedArray, mask: pa.Array | pa.ChunkedArray,
              first_row: int, limit: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Up to ``limit`` (values as text, row numbers) where ``mask`` is true."""
    if limit <= 0:
        return (), ()
    rows = pc.indices_nonzero(mask.fill_null(False))[:limit]
    shown = values.take(rows).to_pylist()
    return (tuple("null" if v is None else show_value(v) for v in shown),
            tuple(first_row + r for r in rows.to_pylist()))


def _plain_text(values: pa.ChunkedArray) -> pa.Array:
    array = values.combine_chunks()
    if isinstance(array, pa.DictionaryArray):
        array = array.dictionary_decode()
    return array.cast(pa.large_string())


def _cast_text(text: pa.Array, target: pa.DataType) -> pa.Array:
    """Text as ``target`` (numbers through float64); raises on a value that does not read."""
    if type_family(target) == "number":
        return text.cast(pa.float64())
    if pat.is_timestamp(target) and target.tz is not None:
        # Arrow reads a time with a zone offset as such, one without only as a naive time:
        # read each kind its way (a time without an offset is UTC).
        zoned = pc.match_substring_regex(text, _ZONE)
        nothing = pa.scalar(None, text.type)
        return pc.coalesce(pc.if_else(zoned, text, nothing).cast(target),
                           pc.if_else(zoned, nothing, text).cast(pa.timestamp(target.unit))
                           .cast(target))
    return text.cast(target)


def _unreadable(distinct: pa.Array, target: pa.DataType) -> list[Any]:
    """The values of ``distinct`` that do not read as ``target``, found by bisection: each
    readable slice costs one vectorised cast, so a few junk values cost a few dozen casts."""
    bad: list[Any] = []
    pending = [(0, len(distinct))]
    while pending:
        start, stop = pending.pop()
        try:
            _cast_text(distinct.slice(start, stop - start), target)
        except _ERRORS:
            if stop - start == 1:
                bad.append(distinct[start].as_py())
            else:
                middle = (start + stop) // 2
                pending += [(middle, stop), (start, middle)]
    return bad


def _parse_text(name: str, values: pa.ChunkedArray, target: pa.DataType, max_examples: int
                ) -> tuple[pa.Array, list[QualityIssue]]:
    """A text column read as ``target``: unreadable values become null and are reported."""
    text = pc.utf8_trim_whitespace(_plain_text(values))
    present = len(text) - text.null_count
    bad = _unreadable(pc.unique(text.drop_null()), target)
    if not bad:
        return _numeric_as(name, _cast_text(text, target), target)
    invalid = pc.fill_null(pc.is_in(text, value_set=pa.array(bad, pa.large_string())), False)
    count = invalid.true_count
    examples, rows = examples_of(text, invalid, 0, max_examples)
    if count == present:
        issue = QualityIssue(name, "retyped_column", count, len(text),
                             f"column {name!r} holds text ({values.type}) where the reference "
                             f"holds {target}, and none of its {count:,} values reads as "
                             f"{target}, e.g. {', '.join(map(repr, examples))}",
                             examples, rows)
        return pa.nulls(len(text), target), [issue]
    kept = pc.if_else(invalid, pa.scalar(None, pa.large_string()), text)
    converted, issues = _numeric_as(name, _cast_text(kept, target), target)
    issue = QualityIssue(name, "invalid_value", count, len(text),
                         f"column {name!r}: {count:,} value(s) do not read as {target} and "
                         f"count as missing, e.g. {', '.join(map(repr, examples))} "
                         f"(rows {', '.join(map(str, rows))})", examples, rows)
    return converted, [issue, *issues]


def _numeric_as(name: str, values: pa.Array | pa.ChunkedArray, target: pa.DataType
                ) -> tuple[Any, list[QualityIssue]]:
    """Values of ``target``'s family cast to it. Numbers that do not fit are kept as float64
    (with an issue); times lose the precision ``target`` lacks."""
    try:
        return values.cast(target), []
    except _ERRORS:
        if type_family(target) != "number":
            return values.cast(target, safe=False), []
    kept = values.cast(pa.float64())
    issue = QualityIssue(name, "retyped_column", len(kept), len(kept),
                         f"column {name!r} holds numbers that do not fit {target} (fractions "
                         f"or values too large); they are compared as float64")
    return kept, [issue]


def _conformed(name: str, type_text: str, kind: str, values: pa.ChunkedArray,
               max_examples: int) -> tuple[Any, list[QualityIssue]]:
    """One column of the window as the reference's type, and what was wrong with it."""
    target, actual, rows = parse_arrow_type(type_text), values.type, len(values)
    if target is None or actual == target or str(actual) == type_text:
        if column_kind(actual) == kind:
            return values, []
        return values, [QualityIssue(name, "retyped_column", rows, rows,
                                     f"column {name!r} is {actual}; the reference is "
                                     f"{type_text}")]
    if pat.is_null(actual):
        return values.cast(target), []
    source, wanted = type_family(actual), type_family(target)
    if source == wanted and source != "other":
        return _numeric_as(name, values, target)
    if source == "text" and wanted != "other":
        return _parse_text(name, values, target, max_examples)
    try:
        converted, how = values.cast(target), f"its values are compared as {target}"
    except _ERRORS:
        converted, how = pa.nulls(rows, target), "its values are left out of the checks"
    return converted, [QualityIssue(name, "retyped_column", rows, rows,
                                    f"column {name!r} is {actual} where the reference is "
                                    f"{type_text}: {how}; send {type_text} values")]


def conform(table: pa.Table, reference: TableProfile, *, max_examples: int = 5,
            fail_on_unexpected: bool = False) -> tuple[pa.Table, list[QualityIssue]]:
    """``table``'s columns of the reference, cast to the reference's types (in its order),
    and the schema issues found on the way (see the module's documentation)."""
    repeated = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
    if repeated:
        raise InvalidArgument(f"column names must be unique, but {', '.join(map(repr, repeated))}"
                              " appear(s) more than once; rename the columns")
    if table.num_rows == 0:
        return _empty(reference), []
    rows, present = table.num_rows, set(table.column_names)
    names, columns, issues = [], [], []
    for column in reference.schema:
        if column.name not in present:
            issues.append(QualityIssue(column.name, "missing_column", rows, rows,
                                       f"column {column.name!r} ({column.type}) is missing "
                                       "from the window; the model was trained with it"))
            continue
        values, found = _conformed(column.name, column.type,
                                   reference.columns[column.name].kind,
                                   table.column(column.name), max_examples)
        names.append(column.name)
        columns.append(values)
        issues += found
    known = set(reference.column_names)
    for name in table.column_names:
        if name not in known:
            issues.append(QualityIssue(
                name, "unexpected_column", rows, rows,
                f"column {name!r} is not in the reference (the training data); the model "
                "does not use it", severity="error" if fail_on_unexpected else "warning"))
    return pa.table(columns, names=names), issues


def _empty(reference: TableProfile) -> pa.Table:
    fields = [pa.field(c.name, parse_arrow_type(c.type) or pa.null()) for c in reference.schema]
    return pa.schema(fields).empty_table()
