"""Request bodies checked against a model's signature before predict, without pandas.

A :class:`Validator` is compiled once per model version from its signature (column names,
dtypes, bounds, which columns may be missing) and then checks each request in plain Python
over the parsed JSON: no DataFrame and no schema object is built per request. It returns a
:class:`Checked` item (the rows in signature order, or an array), and :meth:`Validator.
assemble` joins the items of a micro-batch into one model input.

Every refusal is an :class:`~loopml.errors.InvalidInput` (HTTP 422) that names the field
and the row and says what was expected and what type came; it never quotes the submitted
value.

Which values may be missing or non-finite (``null``, ``NaN``, ``±Infinity``): in a column
or tensor where the model's input example has such values, or everywhere with
``allow_non_finite`` (``loopml serve --allow-non-finite``); elsewhere they are refused, as
most models fail on them.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loopml.errors import InvalidArgument, InvalidInput
from loopml.models.formats import json_type, request_format
from loopml.models.signature import Schema

__all__ = ["Checked", "InvalidInput", "PassThrough", "Validator", "compile_validator",
           "json_type"]


@dataclass(frozen=True, slots=True)
class Checked:
    """One request's input, checked: ``rows`` rows of ``data`` in the validator's form."""

    rows: int
    data: Any


class Validator(ABC):
    """Checks request bodies for one model version and assembles micro-batches."""

    #: whether items can be concatenated into one model input (else each is predicted alone)
    batchable: bool = True
    #: the column names of a table input (empty for arrays)
    names: tuple[str, ...] = ()
    #: the one numpy dtype of every column of a table input, when they share one
    array_dtype: Any = None
    #: whether every value it lets through is a finite number (no null, NaN, text, …)
    finite: bool = False
    #: what it was compiled from (signature inputs, missing-value fields, options): two
    #: validators with the same non-empty key check alike and accept each other's items
    key: str = ""

    def check(self, body: Any) -> Checked:
        """The input of a parsed request body; :class:`InvalidArgument` for a body without
        one of the four formats, :class:`InvalidInput` for data that does not fit."""
        key, value = request_format(body)
        return self.check_value(key, value)

    @abstractmethod
    def check_value(self, key: str, value: Any) -> Checked:
        """The input held by ``value`` sent in format ``key``."""

    @abstractmethod
    def assemble(self, items: Sequence[Checked]) -> Any:
        """One model input holding the rows of ``items`` in order."""

    def assemble_array(self, items: Sequence[Checked]) -> Any:
        """The rows of ``items`` as one 2-D array of :attr:`array_dtype`. Only a validator
        that sets ``array_dtype`` (a table of one numeric dtype) has an array form of its
        own; for the others this is the ordinary input."""
        return self.assemble(items)

    def synthetic(self) -> Checked:
        """One plausible row (zeros, empty strings) to warm the model with."""
        raise InvalidInput("this model has no signature: it cannot be warmed without its "
                           "input example")


class PassThrough(Validator):
    """A model without a signature: the data goes to the model as sent, one request at a
    time (records become a DataFrame, arrays a numpy array)."""

    batchable = False

    def check_value(self, key: str, value: Any) -> Checked:
        if key == "dataframe_split":
            columns = list(value["columns"])
            data = value["data"]
            if not isinstance(data, list) or not all(isinstance(r, list) and len(r) == len(
                    columns) for r in data):
                raise InvalidInput("each row of dataframe_split's data must be an array of "
                                   f"{len(columns)} values", field="data")
            value = [dict(zip(columns, row, strict=True)) for row in data]
        rows = len(value) if isinstance(value, list) else 1
        return Checked(rows, value)

    def assemble(self, items: Sequence[Checked]) -> Any:
        from loopml.models.inputs import prepare_input

        (item,) = items
        return prepare_input(item.data, None)


def compile_validator(schema: Schema | None, *, example: Any = None,
                      allow_non_finite: bool = False) -> Validator:
    """The validator of ``schema`` (None: :class:`PassThrough`); ``example`` is the
    model's input example as a request body, telling which fields may be missing."""
    if schema is None:
        return PassThrough()
    nullable = _fields_with_missing_values(schema, example)
    validator: Validator
    if schema.is_columns:
        from loopml.serving.columns import ColumnsValidator

        validator = ColumnsValidator(schema.columns, nullable=nullable,
                                     allow_all=allow_non_finite)
    else:
        from loopml.serving.tensors import TensorsValidator

        validator = TensorsValidator(schema.tensors, nullable=nullable,
                                     allow_all=allow_non_finite)
    validator.key = json.dumps([schema.to_dict(), sorted(nullable), allow_non_finite],
                               sort_keys=True, default=str)
    return validator


def _fields_with_missing_values(schema: Schema, example: Any) -> Collection[str]:
    """Names of the columns (or tensors) where the example body has null or NaN values."""
    if not isinstance(example, Mapping):
        return frozenset()
    try:
        key, value = request_format(example)
    except InvalidArgument:
        return frozenset()
    found: set[str] = set()
    if key == "dataframe_split":
        columns = [str(c) for c in value["columns"]]
        for row in value["data"]:
            found.update(c for c, v in zip(columns, row, strict=False) if _missing(v))
    elif key in {"dataframe_records", "instances"} and all(isinstance(r, Mapping)
                                                           for r in value):
        for row in value:
            found.update(str(c) for c, v in row.items() if _missing(v))
    elif isinstance(value, Mapping):
        found.update(str(c) for c, v in value.items() if _any_missing(v))
    elif _any_missing(value):
        found.update(schema.names)
    return frozenset(found)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value - value != 0)


def _any_missing(value: Any) -> bool:
    if isinstance(value, list):
        return any(_any_missing(v) for v in value)
    return _missing(value)
