"""What a model takes and returns: named columns with dtypes, or tensors with shape and dtype.

A :class:`Signature` is usually inferred from the input example (and from the model's
prediction on it) by :func:`infer_signature`; it is stored in ``loopml-model.yaml`` and
enforced at predict time (see :mod:`loopml.models.inputs`)::

    Signature(inputs=Schema(columns=(ColumnSpec("age", "float64"), ColumnSpec("city", "string"))),
              outputs=Schema(tensors=(TensorSpec("int64", (-1,)),)))

Dtype names are numpy's (``float64``, ``int32``, ``bool``, ``datetime64[ns]``) plus
``string`` (text in an object or string column), ``binary``, ``category`` and ``object``
(anything, not checked); pandas nullable dtypes keep their names (``Int64``, ``boolean``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import InvalidArgument

__all__ = ["ColumnSpec", "Schema", "Signature", "TensorSpec", "dtype_kind", "dtype_name",
           "infer_schema", "infer_signature", "shape_text"]


@dataclass(frozen=True)
class ColumnSpec:
    """One named column of a table input or output."""

    name: str
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


@dataclass(frozen=True)
class TensorSpec:
    """An array of fixed rank; ``-1`` in ``shape`` is a dimension of any size (the batch)."""

    dtype: str
    shape: tuple[int, ...]
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    def shape_text(self) -> str:
        return shape_text(self.shape)


def shape_text(shape: Sequence[int]) -> str:
    """A shape as Python writes a tuple: ``(-1, 4)``, ``(3,)``."""
    inner = ", ".join(str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


@dataclass(frozen=True)
class Schema:
    """Either columns (a table) or tensors (arrays), never both."""

    columns: tuple[ColumnSpec, ...] = ()
    tensors: tuple[TensorSpec, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.columns) == bool(self.tensors):
            raise InvalidArgument(
                "a schema has either columns or tensors (exactly one of them); "
                f"got {len(self.columns)} columns and {len(self.tensors)} tensors")

    @property
    def is_columns(self) -> bool:
        return bool(self.columns)

    @property
    def names(self) -> list[str]:
        if self.columns:
            return [c.name for c in self.columns]
        return [t.name or f"output_{i}" for i, t in enumerate(self.tensors)]

    def to_dict(self) -> dict[str, Any]:
        if self.columns:
            return {"columns": [c.to_dict() for c in self.columns]}
        return {"tensors": [t.to_dict() for t in self.tensors]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        try:
            if "columns" in data:
                return cls(columns=tuple(ColumnSpec(str(c["name"]), str(c["dtype"]))
                                         for c in data["columns"]))
            return cls(tensors=tuple(
                TensorSpec(str(t["dtype"]), tuple(int(d) for d in t["shape"]), t.get("name"))
                for t in data["tensors"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"schema {dict(data)!r} is malformed ({exc!r}); expected "
                                  "{'columns': [{name, dtype}]} or "
                                  "{'tensors': [{name, dtype, shape}]}") from exc


@dataclass(frozen=True)
class Signature:
    """The inputs a model accepts and, when known, the outputs it returns."""

    inputs: Schema
    outputs: Schema | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs.to_dict(),
                "outputs": self.outputs.to_dict() if self.outputs else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        if "inputs" not in data:
            raise InvalidArgument(f"signature {dict(data)!r} has no 'inputs'")
        outputs = data.get("outputs")
        return cls(Schema.from_dict(data["inputs"]),
                   Schema.from_dict(outputs) if outputs else None)


def dtype_kind(dtype: str) -> str:
    """The family of a dtype name: bool, int, uint, float, complex, string, datetime, …"""
    lowered = dtype.lower()
    for prefix, kind in (("bool", "bool"), ("uint", "uint"), ("int", "int"), ("float", "float"),
                         ("complex", "complex"), ("datetime", "datetime"),
                         ("timedelta", "timedelta")):
        if lowered.startswith(prefix):
            return kind
    if lowered in {"string", "str"}:
        return "string"
    return lowered  # binary, category, object


def _object_kind(values: Any) -> str:
    sample = [v for v in values[:1000] if v is not None and v == v]
    if sample and all(isinstance(v, str) for v in sample):
        return "string"
    if sample and all(isinstance(v, bytes) for v in sample):
        return "binary"
    return "object"


def dtype_name(dtype: Any, values: Any = None) -> str:
    """loopml's name for a numpy or pandas dtype; ``values`` resolve object columns."""
    name = str(dtype)
    kind = getattr(dtype, "kind", "O")
    if name in {"string", "str"} or name.startswith("string["):
        return "string"
    if name == "category":
        return "category"
    if kind in "OUS" and not name.startswith("datetime"):
        if kind == "U":
            return "string"
        if kind == "S":
            return "binary"
        return _object_kind(values) if values is not None else "object"
    return name


def _is_dataframe(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns")


def _is_series(data: Any) -> bool:
    return type(data).__name__ == "Series" and hasattr(data, "dtype")


def _tensor_spec(array: Any, name: str | None = None) -> TensorSpec:
    import numpy as np

    array = np.asarray(array)
    shape = (-1, *array.shape[1:]) if array.ndim else ()
    return TensorSpec(dtype_name(array.dtype, array.ravel() if array.dtype.kind == "O" else None),
                      tuple(int(d) for d in shape), name)


def _columns_schema(frame: Any) -> Schema:
    return Schema(columns=tuple(
        ColumnSpec(str(col), dtype_name(frame[col].dtype, frame[col].to_numpy()))
        for col in frame.columns))


def _records_frame(records: Sequence[Mapping[str, Any]]) -> Any:
    from loopml.models.inputs import pandas_module

    return pandas_module().DataFrame.from_records(list(records))


def infer_schema(data: Any) -> Schema:
    """Columns of a DataFrame or list of dicts; tensors of arrays, dicts and tuples of arrays."""
    if _is_dataframe(data):
        return _columns_schema(data)
    if _is_series(data):
        return Schema(tensors=(_tensor_spec(data.to_numpy()),))
    if isinstance(data, Mapping):
        if data and all(hasattr(v, "shape") for v in data.values()):
            return Schema(tensors=tuple(_tensor_spec(v, str(k)) for k, v in data.items()))
        from loopml.models.inputs import pandas_module

        return _columns_schema(pandas_module().DataFrame(dict(data)))
    if isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
        return _columns_schema(_records_frame(data))
    if isinstance(data, tuple) and data and all(hasattr(v, "shape") for v in data):
        return Schema(tensors=tuple(_tensor_spec(v, f"output_{i}") for i, v in enumerate(data)))
    if hasattr(data, "detach"):  # a torch tensor
        data = data.detach().cpu().numpy()
    try:
        return Schema(tensors=(_tensor_spec(data),))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"cannot infer a schema from a {type(data).__name__}: give a pandas DataFrame, a "
            "numpy array, a list of dicts or a dict of arrays") from exc


def infer_signature(model_input: Any, model_output: Any = None) -> Signature:
    """The signature of a model from an input example and, optionally, its prediction on it."""
    return Signature(infer_schema(model_input),
                     infer_schema(model_output) if model_output is not None else None)
