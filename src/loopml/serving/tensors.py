"""Validation of array inputs (a signature of one or several tensors), compiled once per model.

A request's nested lists become one numpy array per tensor, checked for type, shape and
finiteness; a micro-batch concatenates them along the first (batch) dimension.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopml.errors import InvalidInput
from loopml.models.formats import json_type
from loopml.models.signature import TensorSpec, dtype_kind, shape_text
from loopml.serving.validation import Checked, Validator

__all__ = ["TensorsValidator"]

#: numpy dtype kinds (``arr.dtype.kind``) accepted for each family of the signature's dtype
_KINDS = {"float": "fiub", "int": "iub", "uint": "iub", "bool": "b", "string": "U",
          "binary": "U"}
_EXPECTED = {"float": "numbers", "int": "integers", "uint": "integers", "bool": "booleans",
             "string": "strings", "binary": "strings"}


def _leaves(value: Any) -> Any:
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _first_row(rows: list[Any], bad: Callable[[Any], bool]) -> int | None:
    """The index of the first row with a leaf for which ``bad`` holds."""
    for r, row in enumerate(rows):
        if any(bad(leaf) for leaf in _leaves(row)):
            return r
    return None


@dataclass(frozen=True, slots=True)
class _Tensor:
    label: str
    field: str
    spec: TensorSpec
    family: str
    numpy_dtype: Any
    allow_missing: bool

    @classmethod
    def of(cls, spec: TensorSpec, *, nullable: bool) -> _Tensor:
        import numpy as np

        family = dtype_kind(spec.dtype)
        try:
            numpy_dtype = np.dtype(spec.dtype) if family in _KINDS and family not in {
                "string", "binary"} else None
        except TypeError:
            numpy_dtype = None
        label = "input" if spec.name is None else f"input '{spec.name}'"
        return cls(label, spec.name or "input", spec, family, numpy_dtype, nullable)

    def fail(self, message: str, row: int | None = None) -> InvalidInput:
        where = "" if row is None else f"row {row} of "
        return InvalidInput(f"{where}{self.label}: {message}", field=self.field, row=row)

    def check(self, value: Any) -> Any:
        import numpy as np

        if not isinstance(value, list):
            raise self.fail(f"expected an array, got a {json_type(value)}")
        try:
            array = np.asarray(value)
        except ValueError:
            raise self._ragged(value) from None
        array = self._check_type(array, value)
        shape = self.spec.shape
        if array.ndim != len(shape) or any(want not in (-1, have) for want, have in zip(
                shape, array.shape, strict=False)):
            raise self.fail(f"the data has shape {shape_text(array.shape)}, the model expects "
                            f"{self.spec.shape_text()} (-1: any size)")
        if self.family == "float" and not self.allow_missing:
            finite = np.isfinite(array)
            if not finite.all():
                row = int(np.argmin(finite.reshape(len(array), -1).all(axis=1))) \
                    if array.ndim else None
                raise self.fail("a value is not finite (NaN or infinity), which the model "
                                "does not accept here", row)
        return array

    def _check_type(self, array: Any, value: list[Any]) -> Any:
        import numpy as np

        allowed = _KINDS.get(self.family)
        if allowed is None:  # object, datetime, …: not checked
            return array
        kind = array.dtype.kind
        if kind == "O" and self.family == "float" and self.allow_missing:
            try:
                return array.astype(self.numpy_dtype)  # null → NaN
            except (TypeError, ValueError):
                pass
        if kind not in allowed:
            if kind == "O" and _first_row(value, lambda v: v is None) is not None:
                row = _first_row(value, lambda v: v is None)
                raise self.fail(f"null, but the model needs {_EXPECTED[self.family]} "
                                f"({self.spec.dtype})", row)
            row = _first_row(value, lambda v: not _fits(v, self.family))
            raise self.fail(f"expected {_EXPECTED[self.family]} ({self.spec.dtype}), got "
                            "values of another type", row)
        if self.numpy_dtype is None or array.dtype == self.numpy_dtype:
            return array
        if self.numpy_dtype.kind in "iu" and array.size:
            info = np.iinfo(self.numpy_dtype)
            if array.min() < info.min or array.max() > info.max:
                raise self.fail(f"a value is out of the range of {self.spec.dtype}")
        with np.errstate(over="ignore"):  # too large for float32: infinity, refused below
            return array.astype(self.numpy_dtype)

    def _ragged(self, value: list[Any]) -> InvalidInput:
        import numpy as np

        first = None
        for r, row in enumerate(value):
            try:
                shape = np.shape(row)
            except ValueError:
                return self.fail("the row is not a rectangular array", r)
            if first is None:
                first = shape
            elif shape != first:
                return self.fail(f"shape {shape_text(shape)} differs from row 0's "
                                 f"{shape_text(first)}", r)
        return self.fail("the data is not a rectangular array")


def _fits(value: Any, family: str) -> bool:
    if family == "float":
        return isinstance(value, int | float)
    if family in {"int", "uint"}:
        return isinstance(value, int)
    if family == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)


class TensorsValidator(Validator):
    """Checks arrays against one tensor spec, or several named ones."""

    def __init__(self, tensors: Sequence[TensorSpec], *, nullable: Collection[str] = (),
                 allow_all: bool = False) -> None:
        self._tensors = tuple(
            _Tensor.of(t, nullable=allow_all or (t.name or "input") in nullable
                       or "input" in nullable) for t in tensors)
        self.names: tuple[str, ...] = tuple(t.field for t in self._tensors)
        self.batchable = all(t.spec.shape and t.spec.shape[0] == -1 for t in self._tensors)
        self.single = len(self._tensors) == 1
        self.finite = all(t.numpy_dtype is not None and not t.allow_missing
                          for t in self._tensors)

    def check_value(self, key: str, value: Any) -> Checked:
        if key == "dataframe_records":
            raise InvalidInput("the model takes arrays, not named columns: send "
                               "{\"inputs\": [[...], ...]} or {\"instances\": [...]}",
                               field=key)
        if key == "dataframe_split":
            value = value["data"]
        if key == "instances" and value and all(isinstance(r, Mapping) for r in value):
            value = self._columns_of(value)
        if self.single:
            only = self._tensors[0]
            if isinstance(value, Mapping):
                if set(value) != {only.field}:
                    raise InvalidInput(f"the model takes one input named '{only.field}'; send "
                                       "{\"inputs\": [[...], ...]}", field=only.field)
                value = value[only.field]
            array = only.check(value)
            return Checked(len(array) if array.ndim else 1, array)
        return self._check_named(value)

    def _columns_of(self, rows: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
        for r, row in enumerate(rows):
            if set(row) != set(self.names):
                raise InvalidInput(f"row {r}: the model takes inputs "
                                   + ", ".join(f"'{n}'" for n in self.names), row=r)
        return {name: [row[name] for row in rows] for name in self.names}

    def _check_named(self, value: Any) -> Checked:
        wanted = ", ".join(f"'{n}'" for n in self.names)
        if not isinstance(value, Mapping):
            raise InvalidInput(f"the model takes several named inputs ({wanted}): send "
                               "{\"inputs\": {name: array, ...}}")
        for tensor in self._tensors:
            if tensor.field not in value:
                raise InvalidInput(f"missing input '{tensor.field}'; the model takes {wanted}",
                                   field=tensor.field)
        extra = [str(k)[:64] for k in value if k not in self.names]
        if extra:
            raise InvalidInput(f"unexpected input '{extra[0]}'; the model takes {wanted}",
                               field=extra[0])
        arrays = {t.field: t.check(value[t.field]) for t in self._tensors}
        lengths = {len(a) if a.ndim else 1 for a in arrays.values()}
        if len(lengths) != 1:
            raise InvalidInput("the inputs have different numbers of rows: " + ", ".join(
                f"'{n}': {len(a) if a.ndim else 1}" for n, a in arrays.items()))
        return Checked(lengths.pop(), arrays)

    def assemble(self, items: Sequence[Checked]) -> Any:
        import numpy as np

        if len(items) == 1:
            return items[0].data
        if self.single:
            return np.concatenate([item.data for item in items])
        return {name: np.concatenate([item.data[name] for item in items])
                for name in self.names}

    def synthetic(self) -> Checked:
        import numpy as np

        arrays = {}
        for tensor in self._tensors:
            shape = tuple(1 if d == -1 else d for d in tensor.spec.shape)
            arrays[tensor.field] = (np.zeros(shape, dtype=tensor.numpy_dtype)
                                    if tensor.numpy_dtype is not None
                                    else np.full(shape, "", dtype=object))
        rows = next(iter(arrays.values())).shape[0] if self.batchable else 1
        return Checked(rows, arrays[self.names[0]] if self.single else arrays)
