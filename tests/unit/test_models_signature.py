"""Signatures: inferred from examples, enforced at predict with messages that name the column
and the expected and actual types."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidArgument
from loopml.models import ColumnSpec, Schema, Signature, TensorSpec, infer_signature, save_model
from loopml.models.inputs import prepare_input

COLUMNS = Schema(columns=(ColumnSpec("age", "float64"), ColumnSpec("visits", "int64"),
                          ColumnSpec("city", "string")))
TENSOR = Schema(tensors=(TensorSpec("float32", (-1, 4)),))


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"age": [31.0, 45.5], "visits": [3, 7], "city": ["Oslo", "Lima"]})


def test_infer_from_a_dataframe() -> None:
    signature = infer_signature(_frame(), np.array([0, 1]))
    assert signature.inputs == COLUMNS
    assert signature.outputs == Schema(tensors=(TensorSpec("int64", (-1,)),))


def test_infer_from_an_array_records_and_dict_of_arrays() -> None:
    assert infer_signature(np.zeros((5, 4), dtype="float32")).inputs == TENSOR
    records = _frame().to_dict(orient="records")
    assert infer_signature(records).inputs == COLUMNS
    named = infer_signature({"ids": np.zeros((2, 3), dtype="int64"),
                             "mask": np.ones((2, 3), dtype=bool)})
    assert named.inputs.names == ["ids", "mask"]
    assert named.inputs.tensors[1] == TensorSpec("bool", (-1, 3), "mask")


def test_signature_round_trips_through_a_dict() -> None:
    signature = Signature(COLUMNS, TENSOR)
    assert Signature.from_dict(signature.to_dict()) == signature
    with pytest.raises(InvalidArgument, match="malformed"):
        Schema.from_dict({"columns": [{"dtype": "float64"}]})


def test_columns_are_put_in_the_signature_order() -> None:
    shuffled = _frame()[["city", "age", "visits"]]
    prepared = prepare_input(shuffled, COLUMNS)
    assert list(prepared.columns) == ["age", "visits", "city"]


def test_missing_column() -> None:
    with pytest.raises(InvalidArgument, match="missing column 'visits'; the model expects "
                       "columns: 'age', 'visits', 'city'"):
        prepare_input(_frame().drop(columns="visits"), COLUMNS)


def test_extra_column() -> None:
    with pytest.raises(InvalidArgument, match="unexpected column 'zip'"):
        prepare_input(_frame().assign(zip="0150"), COLUMNS)


def test_wrong_column_type() -> None:
    frame = _frame().assign(age=["31", "45"])
    with pytest.raises(InvalidArgument,
                       match="column 'age' has type string, the model expects float64"):
        prepare_input(frame, COLUMNS)
    with pytest.raises(InvalidArgument,
                       match="column 'visits' has type float64, the model expects int64"):
        prepare_input(_frame().assign(visits=[3.5, 7.0]), COLUMNS)


def test_safe_casts_are_allowed() -> None:
    frame = _frame().assign(age=[31, 45], visits=np.array([3, 7], dtype="int32"))
    prepared = prepare_input(frame, COLUMNS)
    assert prepared["age"].dtype == "float64"
    assert prepared["visits"].dtype == "int64"


def test_records_and_rows_are_accepted() -> None:
    records = [{"age": 31, "visits": 3, "city": "Oslo"}]
    assert prepare_input(records, COLUMNS)["age"].tolist() == [31.0]
    rows = [[31.0, 3, "Oslo"]]
    assert prepare_input(rows, COLUMNS)["city"].tolist() == ["Oslo"]
    with pytest.raises(InvalidArgument, match="input has 2 columns, the model expects 3"):
        prepare_input([[1.0, 2]], COLUMNS)


def test_tensor_shape_and_dtype() -> None:
    with pytest.raises(InvalidArgument,
                       match=r"input has shape \(2, 3\), the model expects \(-1, 4\)"):
        prepare_input(np.zeros((2, 3), dtype="float32"), TENSOR)
    with pytest.raises(InvalidArgument, match="input has type float64, the model expects float32"):
        prepare_input(np.zeros((2, 4)), TENSOR)  # an array may not narrow
    assert prepare_input([[0.5, 1.0, 2.0, 3.0]], TENSOR).dtype == "float32"  # JSON may
    assert prepare_input(np.zeros((2, 4), dtype="int64"), TENSOR).dtype == "float32"
    with pytest.raises(InvalidArgument, match="input has type string, the model expects float32"):
        prepare_input([["a", "b", "c", "d"]], TENSOR)


def test_named_tensors() -> None:
    schema = Schema(tensors=(TensorSpec("int64", (-1, 3), "ids"),
                             TensorSpec("bool", (-1, 3), "mask")))
    with pytest.raises(InvalidArgument, match="missing: 'mask'"):
        prepare_input({"ids": np.zeros((1, 3), dtype="int64")}, schema)


def test_a_loaded_model_enforces_its_signature(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"age": [20.0, 30.0, 40.0, 50.0], "income": [1.0, 2.0, 1.5, 3.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    loaded = save_model(model, tmp_path / "pkg", input_example=frame.head(2)).load()
    with pytest.raises(InvalidArgument,
                       match="column 'age' has type string, the model expects float64"):
        loaded.predict([{"age": "old", "income": 1.0}])
    assert loaded.predict([{"age": 45, "income": 2}]).tolist() == model.predict(
        pd.DataFrame({"age": [45.0], "income": [2.0]})).tolist()
