"""Validation of table inputs (a signature of named columns), compiled once per model.

Each column becomes a small rule (accepted JSON types, range, whether it may be missing);
a request's rows are checked against the rules in plain Python and kept as lists in the
signature's column order. A micro-batch becomes one DataFrame (or, for a model served from
an array, one 2-D array) only when it is predicted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopml.errors import InvalidInput
from loopml.models.formats import json_type
from loopml.models.signature import ColumnSpec, dtype_kind
from loopml.serving.validation import Checked, Validator

__all__ = ["ColumnsValidator"]

_NUMERIC = {"float", "int", "uint", "bool"}
_ACCEPTED: dict[str, tuple[type, ...]] = {
    "float": (float, int, bool), "int": (int, bool), "uint": (int, bool), "bool": (bool,),
    "string": (str,), "binary": (str,), "datetime": (str,), "category": (str, int, bool),
}
_EXPECTED = {"float": "a number", "int": "an integer", "uint": "an integer",
             "bool": "a boolean", "string": "a string", "binary": "a string",
             "datetime": "an ISO 8601 date-time string", "category": "a string or integer"}
_PLACEHOLDER: dict[str, Any] = {"float": 0.0, "int": 0, "uint": 0, "bool": False,
                                "datetime": "1970-01-01T00:00:00"}


def _numpy_dtype(dtype: str, kind: str) -> Any:
    """The numpy dtype of a numeric column (None for pandas' nullable dtypes, text, …)."""
    if kind not in _NUMERIC:
        return None
    import numpy as np

    try:
        return np.dtype(dtype)
    except TypeError:
        return None


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    dtype: str
    kind: str
    accepted: tuple[type, ...]  # () accepts anything (dtype object)
    nullable: bool
    check_finite: bool
    low: float | None
    high: float | None
    numpy_dtype: Any

    @classmethod
    def of(cls, spec: ColumnSpec, *, nullable: bool) -> _Rule:
        import numpy as np

        kind = dtype_kind(spec.dtype)
        numpy_dtype = _numpy_dtype(spec.dtype, kind)
        low: float | None = None
        high: float | None = None
        if kind in {"int", "uint"}:
            info = np.iinfo(numpy_dtype if numpy_dtype is not None else spec.dtype.lower())
            low, high = int(info.min), int(info.max)
        elif kind == "float" and numpy_dtype is not None and numpy_dtype.itemsize < 8:
            high = float(np.finfo(numpy_dtype).max)
            low = -high
        return cls(spec.name, spec.dtype, kind, _ACCEPTED.get(kind, ()),
                   nullable or kind == "object", kind == "float" and not nullable, low, high,
                   numpy_dtype)

    def expected(self) -> str:
        return f"{_EXPECTED.get(self.kind, 'a value')} ({self.dtype})"


def _quoted(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(f"'{_short(n)}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _short(name: object) -> str:
    text = str(name)
    return text if len(text) <= 64 else text[:61] + "..."


class ColumnsValidator(Validator):
    """Checks rows against named, typed columns."""

    def __init__(self, columns: Sequence[ColumnSpec], *, nullable: Collection[str] = (),
                 allow_all: bool = False) -> None:
        self.names: tuple[str, ...] = tuple(c.name for c in columns)
        self._keys = frozenset(self.names)
        self._position = {name: i for i, name in enumerate(self.names)}
        self._rules = tuple(_Rule.of(c, nullable=allow_all or c.name in nullable)
                            for c in columns)
        dtypes = {r.numpy_dtype for r in self._rules}
        only = next(iter(dtypes)) if len(dtypes) == 1 else None
        self.array_dtype = only if only is not None and only.kind in "fiub" else None
        self.finite = all(r.kind in _NUMERIC and not r.nullable for r in self._rules)
        self._frame_columns: Any = None

    # -- checking ---------------------------------------------------------------------
    def check_value(self, key: str, value: Any) -> Checked:
        if key == "dataframe_split":
            rows = self._from_split(value)
        elif isinstance(value, Mapping):  # "inputs": {"column": [values, ...]} or one row
            rows = self._from_columns(value)
        elif not value:
            raise InvalidInput(f"{key} holds no rows", field=key)
        elif isinstance(value[0], Mapping):
            rows = self._from_records(value)
        else:
            rows = self._from_lists(value, None)
        return Checked(len(rows), rows)

    def _check_row(self, values: list[Any], r: int) -> None:
        for rule, value in zip(self._rules, values, strict=True):
            kind = type(value)
            if kind in rule.accepted:
                if kind is float and rule.check_finite and value - value != 0:
                    raise InvalidInput(f"row {r}, column '{_short(rule.name)}': the value is "
                                       "not finite (NaN or infinity), which the model does "
                                       "not accept here", field=rule.name, row=r)
                if rule.low is not None and kind is not bool and not (
                        rule.low <= value <= rule.high):  # type: ignore[operator]
                    raise InvalidInput(f"row {r}, column '{_short(rule.name)}': the value is "
                                       f"out of the range of {rule.dtype}", field=rule.name,
                                       row=r)
                if rule.kind == "datetime":
                    self._check_datetime(rule, value, r)
            elif value is None:
                if not rule.nullable:
                    raise InvalidInput(f"row {r}, column '{_short(rule.name)}': null, but the "
                                       f"model needs {rule.expected()}", field=rule.name, row=r)
            elif rule.accepted:
                raise InvalidInput(f"row {r}, column '{_short(rule.name)}': expected "
                                   f"{rule.expected()}, got {_article(json_type(value))}",
                                   field=rule.name, row=r)

    @staticmethod
    def _check_datetime(rule: _Rule, value: str, r: int) -> None:
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"row {r}, column '{_short(rule.name)}': the string is not an "
                               "ISO 8601 date-time (e.g. 2024-05-01T12:00:00)",
                               field=rule.name, row=r) from None

    def _key_error(self, row: Mapping[str, Any], r: int | None) -> InvalidInput:
        where = "" if r is None else f"row {r}: "
        missing = [n for n in self.names if n not in row]
        if missing:
            return InvalidInput(f"{where}missing column {_quoted(missing, 5)}; the model "
                                f"takes columns {_quoted(self.names)}", field=missing[0], row=r)
        extra = [str(k) for k in row if k not in self._keys]
        return InvalidInput(f"{where}unexpected column {_quoted(extra, 5)}; the model takes "
                            f"columns {_quoted(self.names)}: drop the others",
                            field=_short(extra[0]), row=r)

    def _from_records(self, records: list[Any]) -> list[list[Any]]:
        rows = []
        keys, names = self._keys, self.names
        for r, row in enumerate(records):
            if type(row) is not dict:
                raise InvalidInput(f"row {r}: expected an object (column → value), got "
                                   f"{_article(json_type(row))}", row=r)
            if row.keys() != keys:
                raise self._key_error(row, r)
            values = list(map(row.__getitem__, names))
            self._check_row(values, r)
            rows.append(values)
        return rows

    def _from_lists(self, data: Any, order: list[int] | None) -> list[list[Any]]:
        if not isinstance(data, list):
            raise InvalidInput(f"expected an array of rows, got {_article(json_type(data))}",
                               field="data")
        width = len(self.names)
        rows = []
        for r, row in enumerate(data):
            if type(row) is not list:
                if width != 1 or isinstance(row, Mapping):
                    raise InvalidInput(f"row {r}: expected an array of {width} values (or an "
                                       f"object), got {_article(json_type(row))}", row=r)
                row = [row]
            if len(row) != width:
                raise InvalidInput(f"row {r} has {len(row)} values; the model takes {width} "
                                   f"columns: {_quoted(self.names)}", row=r)
            values = row if order is None else [row[i] for i in order]
            self._check_row(values, r)
            rows.append(values)
        return rows

    def _from_split(self, split: Mapping[str, Any]) -> list[list[Any]]:
        columns = split["columns"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InvalidInput("dataframe_split's columns must be an array of column names",
                               field="columns")
        if set(columns) != self._keys:
            raise self._key_error(dict.fromkeys(columns), None)
        if len(columns) != len(self.names):
            raise InvalidInput("dataframe_split's columns name a column twice", field="columns")
        order = None if tuple(columns) == self.names else [columns.index(n) for n in self.names]
        return self._from_lists(split["data"], order)

    def _from_columns(self, columns: Mapping[str, Any]) -> list[list[Any]]:
        if columns.keys() != self._keys:
            raise self._key_error(columns, None)
        values = [columns[n] for n in self.names]
        if not any(isinstance(v, list) for v in values):
            values = [[v] for v in values]  # one row given as {column: value}
        for name, column in zip(self.names, values, strict=True):
            if not isinstance(column, list):
                raise InvalidInput(f"column '{_short(name)}': expected an array of values, "
                                   f"got {_article(json_type(column))}", field=name)
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            raise InvalidInput("the columns of inputs have different lengths: "
                               + ", ".join(f"'{_short(n)}': {len(v)}"
                                           for n, v in zip(self.names, values, strict=True)))
        rows = [list(row) for row in zip(*values, strict=True)]
        for r, row in enumerate(rows):
            self._check_row(row, r)
        return rows

    def synthetic(self) -> Checked:
        return Checked(1, [[_PLACEHOLDER.get(rule.kind, "") if rule.kind != "object" else None
                            for rule in self._rules]])

    # -- assembling -------------------------------------------------------------------
    @staticmethod
    def _rows(items: Sequence[Checked]) -> list[list[Any]]:
        if len(items) == 1:
            rows: list[list[Any]] = items[0].data
            return rows
        return [row for item in items for row in item.data]

    def assemble_array(self, items: Sequence[Checked]) -> Any:
        """The rows of ``items`` as one 2-D array (needs :attr:`array_dtype`)."""
        import numpy as np

        return np.array(self._rows(items), dtype=self.array_dtype)

    def assemble(self, items: Sequence[Checked]) -> Any:
        from loopml.models.inputs import pandas_module

        pd = pandas_module()
        if self._frame_columns is None:
            self._frame_columns = pd.Index(self.names)
        if self.array_dtype is not None:
            return pd.DataFrame(self.assemble_array(items), columns=self._frame_columns,
                                copy=False)
        rows = self._rows(items)
        data = {rule.name: self._column(pd, rule, [row[j] for row in rows])
                for j, rule in enumerate(self._rules)}
        return pd.DataFrame(data, columns=self._frame_columns)

    @staticmethod
    def _column(pd: Any, rule: _Rule, values: list[Any]) -> Any:
        import numpy as np

        if rule.numpy_dtype is not None:
            return np.array(values, dtype=rule.numpy_dtype)
        if rule.kind == "datetime":
            return pd.to_datetime(pd.Series(values), format="ISO8601").astype(rule.dtype)
        if rule.kind in {"string", "binary", "object"}:
            return np.array(values, dtype=object)
        return pd.array(values, dtype=rule.dtype)


def _article(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun
