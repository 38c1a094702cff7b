"""The request bodies MLflow users already send, and predictions as JSON values.

::

    {"dataframe_records": [{"age": 31, "plan": "pro"}, ...]}
    {"dataframe_split": {"columns": ["age", "plan"], "data": [[31, "pro"], ...]}}
    {"instances": [[0.1, 0.2], ...]}          # rows: arrays, or dicts
    {"inputs": [[0.1, 0.2], ...]}             # an array, or {"column": [values, ...]}

The input example of a package is stored in this shape too (:mod:`loopml.models.example`).
Shared by ``loopml serve`` (which checks the body against the signature without pandas, see
:mod:`loopml.serving.validation`) and a serving bundle's ``serve.py``
(:mod:`loopml.models.serve_entry`, which hands :func:`parse_payload`'s result to
``LoadedModel.predict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopml.errors import InvalidArgument

__all__ = ["FORMATS", "json_type", "parse_payload", "request_format", "to_jsonable"]

FORMATS = ("dataframe_records", "dataframe_split", "instances", "inputs")


def request_format(body: Any) -> tuple[str, Any]:
    """(format, value) of a request body holding exactly one of :data:`FORMATS`."""
    if not isinstance(body, Mapping):
        raise InvalidArgument(f"the request body must be a JSON object with one of "
                              f"{', '.join(FORMATS)}; got a {json_type(body)}")
    present = [key for key in FORMATS if key in body]
    if len(present) != 1:
        raise InvalidArgument(f"the request body must hold exactly one of {', '.join(FORMATS)}; "
                              f"it holds {', '.join(present) or 'none of them'}")
    key = present[0]
    value = body[key]
    if key in {"dataframe_records", "instances"} and not isinstance(value, list):
        raise InvalidArgument(f"{key} must be a list; got a {json_type(value)}")
    if key == "dataframe_split" and (not isinstance(value, Mapping) or "columns" not in value
                                     or "data" not in value):
        raise InvalidArgument("dataframe_split must be {\"columns\": [...], \"data\": "
                              "[[...], ...]}")
    return key, value


def parse_payload(body: Any) -> Any:
    """The model input held by a request body in one of the four accepted formats."""
    key, value = request_format(body)
    if key == "dataframe_split":
        columns = list(value["columns"])
        try:
            return [dict(zip(columns, row, strict=True)) for row in value["data"]]
        except (TypeError, ValueError):
            raise InvalidArgument(f"each row of dataframe_split's data must be a list of "
                                  f"{len(columns)} values, one per column") from None
    return value


def to_jsonable(predictions: Any) -> Any:
    """Predictions as JSON values (arrays → lists, tables → records)."""
    if hasattr(predictions, "to_dict") and hasattr(predictions, "columns"):
        return predictions.to_dict(orient="records")
    if hasattr(predictions, "tolist"):
        return predictions.tolist()
    if isinstance(predictions, Mapping):
        return {str(k): to_jsonable(v) for k, v in predictions.items()}
    if isinstance(predictions, tuple | list):
        return [to_jsonable(v) for v in predictions]
    return predictions


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type: error messages say it, never the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
