"""The input example stored in a model package, in a format that loads without pickle.

=========================  ==========================  ======================================
example given              file                        stored as
=========================  ==========================  ======================================
pandas DataFrame           ``input_example.json``      ``dataframe_split`` + column dtypes
list of dicts (records)    ``input_example.json``      ``dataframe_records``
numpy array, torch tensor  ``input_example.npy``       ``numpy.save(allow_pickle=False)``
dict of arrays             ``input_example.npz``       ``numpy.savez`` (named arrays)
=========================  ==========================  ======================================

The JSON files have the shape of a serving request body, so they can be POSTed as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.errors import CorruptData, InvalidArgument
from loopml.models.inputs import numpy_module, pandas_module

__all__ = ["ExampleRef", "read_example", "write_example"]


@dataclass(frozen=True)
class ExampleRef:
    """Where the example lies in the package (relative path) and what it was."""

    path: str
    type: str  # dataframe | records | ndarray | tensors

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "type": self.type}


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _write_json(path: Path, body: Mapping[str, Any]) -> None:
    try:
        path.write_text(json.dumps(body, default=_plain))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"the input example cannot be stored as JSON: {exc}; pass a "
                              "DataFrame or array of numbers, strings, booleans and dates") from exc


def _write_array(path: Path, array: Any) -> None:
    if array.dtype.kind == "O":
        raise InvalidArgument("an input example array of dtype object cannot be stored without "
                              "pickle; pass a DataFrame (for text) or an array of a numeric dtype")
    numpy_module().save(path, array, allow_pickle=False)


def write_example(example: Any, directory: Path) -> ExampleRef:
    """Store ``example`` in ``directory`` and say where and as what."""
    np = numpy_module()
    if type(example).__name__ == "DataFrame" and hasattr(example, "to_json"):
        split = json.loads(example.to_json(orient="split", index=False, date_format="iso",
                                           date_unit="ns"))
        dtypes = {str(c): str(t) for c, t in example.dtypes.items()}
        split["columns"] = [str(c) for c in split["columns"]]
        _write_json(directory / "input_example.json",
                    {"dataframe_split": split, "dtypes": dtypes})
        return ExampleRef("input_example.json", "dataframe")
    if isinstance(example, list) and example and all(isinstance(r, Mapping) for r in example):
        _write_json(directory / "input_example.json",
                    {"dataframe_records": [dict(r) for r in example]})
        return ExampleRef("input_example.json", "records")
    if isinstance(example, Mapping):
        arrays = {str(k): np.asarray(v) for k, v in example.items()}
        if any(a.dtype.kind == "O" for a in arrays.values()):
            raise InvalidArgument("input example arrays of dtype object cannot be stored "
                                  "without pickle; use numeric or string arrays")
        np.savez(directory / "input_example.npz", allow_pickle=False, **arrays)
        return ExampleRef("input_example.npz", "tensors")
    if hasattr(example, "detach"):
        example = example.detach().cpu().numpy()
    try:
        array = np.asarray(example)
    except ValueError as exc:
        raise InvalidArgument(f"the input example is not a rectangular array: {exc}") from exc
    _write_array(directory / "input_example.npy", array)
    return ExampleRef("input_example.npy", "ndarray")


def read_example(directory: Path, ref: ExampleRef) -> Any:
    """The example as it was given (DataFrame, records, array or dict of arrays)."""
    path = directory / ref.path
    if not path.is_file():
        raise CorruptData(f"the model package at {directory} names the input example "
                          f"'{ref.path}', which is missing; save the model again")
    np = numpy_module()
    if ref.type == "ndarray":
        return np.load(path, allow_pickle=False)
    if ref.type == "tensors":
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    body = json.loads(path.read_text())
    if ref.type == "records":
        return body["dataframe_records"]
    pd = pandas_module()
    split = body["dataframe_split"]
    frame = pd.DataFrame(split["data"], columns=split["columns"])
    for column, dtype in body.get("dtypes", {}).items():
        if dtype.startswith("datetime"):
            frame[column] = pd.to_datetime(frame[column]).astype(dtype)
        elif str(frame[column].dtype) != dtype:
            frame[column] = frame[column].astype(dtype)
    return frame
