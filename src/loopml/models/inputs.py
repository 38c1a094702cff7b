"""Turning what a caller passes to ``predict`` into what the model was saved to take.

Accepted: a pandas DataFrame, a numpy array, a list of dicts (records), a dict of columns or
of named arrays, nested lists. The data is put in the signature's column order and cast to its
dtypes; anything else is an :class:`~loopml.errors.InvalidArgument` naming the column and the
expected and actual types. Casts that lose nothing are allowed (int → float, float32 → float64).

Data parsed from JSON (records, nested lists) has no bit widths, so it may also narrow within
a family (a JSON number into a ``float32`` tensor); arrays and DataFrames must not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from loopml.errors import InvalidArgument, MissingDependency
from loopml.models.signature import (
    ColumnSpec,
    Schema,
    TensorSpec,
    dtype_kind,
    dtype_name,
    shape_text,
)

__all__ = ["numpy_module", "pandas_module", "prepare_input"]


def pandas_module() -> Any:
    """pandas, imported on first use; a :class:`MissingDependency` when it is not installed."""
    try:
        import pandas
    except ImportError as exc:
        raise MissingDependency("table inputs (columns, records)", package="pandas",
                                extra="pandas") from exc
    return pandas


def numpy_module() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise MissingDependency("model inputs", package="numpy", extra="models") from exc
    return numpy


def _bits(dtype: str) -> int:
    found = re.search(r"\d+", dtype)
    return int(found.group(0)) if found else 64


def compatible(got: str, expected: str, *, lenient: bool) -> bool:
    """Whether data of dtype ``got`` may be cast to ``expected`` without losing meaning."""
    if expected == "object" or got == expected:
        return True
    got_kind, want_kind = dtype_kind(got), dtype_kind(expected)
    numeric = {"int", "uint", "bool"}
    if want_kind == "float":
        return got_kind in numeric or (got_kind == "float"
                                       and (lenient or _bits(got) <= _bits(expected)))
    if want_kind in {"int", "uint"}:
        if got_kind == "bool":
            return True
        if got_kind not in {"int", "uint"}:
            return False
        if lenient:
            return True
        if got_kind == want_kind:
            return _bits(got) <= _bits(expected)
        return got_kind == "uint" and _bits(got) < _bits(expected)
    if want_kind == "category":
        return got_kind in {"string", "category", "int", "uint", "bool"}
    if want_kind == "datetime":
        return got_kind == "datetime" or (lenient and got_kind == "string")
    return got_kind == want_kind


def _type_error(what: str, got: str, expected: str) -> InvalidArgument:
    return InvalidArgument(f"{what} has type {got}, the model expects {expected}; convert it "
                           f"(e.g. .astype('{expected}')) before predicting")


def _cast_column(series: Any, spec: ColumnSpec, lenient: bool) -> Any:
    got = dtype_name(series.dtype, series.to_numpy() if series.dtype.kind == "O" else None)
    if not compatible(got, spec.dtype, lenient=lenient):
        raise _type_error(f"column '{spec.name}'", got, spec.dtype)
    kind = dtype_kind(spec.dtype)
    if got == spec.dtype or kind in {"string", "binary", "object"}:
        return series
    try:
        if kind == "datetime" and dtype_kind(got) == "string":
            return pandas_module().to_datetime(series).astype(spec.dtype)
        return series.astype(spec.dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"column '{spec.name}' cannot be converted from {got} to "
                              f"{spec.dtype}: {exc}") from exc


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _to_frame(data: Any, columns: Sequence[ColumnSpec]) -> tuple[Any, bool]:
    pd = pandas_module()
    names = [c.name for c in columns]
    if isinstance(data, pd.DataFrame):
        return data, False
    if isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
        return pd.DataFrame.from_records(data), True
    if isinstance(data, Mapping):
        lenient = not all(hasattr(v, "dtype") for v in data.values())
        try:
            return pd.DataFrame(dict(data)), lenient
        except ValueError as exc:
            raise InvalidArgument(f"input columns have different lengths: {exc}") from exc
    lenient = isinstance(data, list | tuple)
    array = numpy_module().asarray(data) if lenient or hasattr(data, "shape") else None
    if array is None or array.ndim != 2:
        raise InvalidArgument(
            f"the model takes a table with columns {_quoted(names)}; got a {type(data).__name__}"
            + (f" of shape {array.shape}" if array is not None else "")
            + ": pass a pandas DataFrame, a list of dicts or a 2-D array")
    if array.shape[1] != len(names):
        raise InvalidArgument(f"input has {array.shape[1]} columns, the model expects "
                              f"{len(names)}: {_quoted(names)}")
    frame = (pd.DataFrame(list(data), columns=names) if lenient
             else pd.DataFrame(array, columns=names))
    return frame, lenient


def _prepare_columns(data: Any, columns: Sequence[ColumnSpec]) -> Any:
    frame, lenient = _to_frame(data, columns)
    names = [c.name for c in columns]
    given = [str(c) for c in frame.columns]
    missing = [n for n in names if n not in given]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        raise InvalidArgument(f"missing {noun} {_quoted(missing)}; the model expects columns: "
                              f"{_quoted(names)}")
    extra = [n for n in given if n not in names]
    if extra:
        noun = "column" if len(extra) == 1 else "columns"
        raise InvalidArgument(f"unexpected {noun} {_quoted(extra)}; the model expects columns: "
                              f"{_quoted(names)}; drop the others before predicting")
    frame = frame.rename(columns=str)
    casted = {c.name: _cast_column(frame[c.name], c, lenient) for c in columns}
    return pandas_module().DataFrame(casted, index=frame.index)


def _to_array(data: Any, label: str) -> tuple[Any, bool]:
    np = numpy_module()
    if isinstance(data, np.ndarray):
        return data, False
    if hasattr(data, "detach"):  # a torch tensor
        return data.detach().cpu().numpy(), False
    if hasattr(data, "to_numpy"):  # a DataFrame or Series
        return data.to_numpy(), False
    if isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
        raise InvalidArgument(f"{label} is a tensor; got records (a list of dicts): pass a "
                              "nested list or an array instead")
    if isinstance(data, list | tuple):
        try:
            return np.asarray(data), True
        except ValueError as exc:
            raise InvalidArgument(f"{label} is not a rectangular array: {exc}") from exc
    raise InvalidArgument(f"{label} must be an array or a nested list; got a "
                          f"{type(data).__name__}")


def _prepare_tensor(data: Any, spec: TensorSpec, label: str) -> Any:
    array, lenient = _to_array(data, label)
    got = dtype_name(array.dtype, array.ravel() if array.dtype.kind == "O" else None)
    if not compatible(got, spec.dtype, lenient=lenient):
        raise _type_error(label, got, spec.dtype)
    shape = tuple(array.shape)
    if len(shape) != len(spec.shape) or any(want not in (-1, have)
                                            for want, have in zip(spec.shape, shape, strict=False)):
        raise InvalidArgument(f"{label} has shape {shape_text(shape)}, the model expects "
                              f"{spec.shape_text()} "
                              "(-1: any size)")
    if got == spec.dtype or dtype_kind(spec.dtype) in {"string", "binary", "object"}:
        return array
    return array.astype(spec.dtype)


def prepare_input(data: Any, schema: Schema | None) -> Any:
    """``data`` in the form and dtypes ``schema`` describes (DataFrame, array or dict of arrays)."""
    if schema is None:
        if isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
            return pandas_module().DataFrame.from_records(data)
        if isinstance(data, list | tuple):
            return numpy_module().asarray(data)
        return data
    if schema.is_columns:
        return _prepare_columns(data, schema.columns)
    if len(schema.tensors) == 1:
        only = schema.tensors[0]
        if isinstance(data, Mapping) and only.name is not None and only.name in data:
            data = data[only.name]
        return _prepare_tensor(data, only, "input")
    names = schema.names
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"the model takes several named inputs ({_quoted(names)}); pass a "
                              f"dict of arrays, got a {type(data).__name__}")
    missing = [n for n in names if n not in data]
    extra = [str(n) for n in data if n not in names]
    if missing or extra:
        raise InvalidArgument(f"inputs {_quoted(list(map(str, data)))} do not match the model's "
                              f"{_quoted(names)} (missing: {_quoted(missing) or 'none'}, "
                              f"unexpected: {_quoted(extra) or 'none'})")
    return {name: _prepare_tensor(data[name], spec, f"input '{name}'")
            for name, spec in zip(names, schema.tensors, strict=True)}
