"""The model server's parts without a server: request validation against signatures, the
micro-batcher, output splitting and the Prometheus text."""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidArgument, InvalidInput
from loopml.models import ColumnSpec, Schema, TensorSpec
from loopml.serving.batching import MicroBatcher
from loopml.serving.metrics import Registry
from loopml.serving.model import split_output
from loopml.serving.validation import compile_validator

SECRET = "SECRET-VALUE-17"
TABLE = Schema(columns=(ColumnSpec("age", "float64"), ColumnSpec("visits", "int32"),
                        ColumnSpec("city", "string"), ColumnSpec("vip", "bool"),
                        ColumnSpec("seen", "datetime64[ns]")))
ROW = {"age": 31.5, "visits": 3, "city": "Oslo", "vip": False, "seen": "2024-05-01T10:00:00"}


def _refused(validator: Any, body: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validator.check(body)
    assert SECRET not in caught.value.message
    return caught.value


def test_every_table_format_gives_the_same_rows() -> None:
    validator = compile_validator(TABLE)
    names = list(ROW)
    flipped = names[::-1]
    bodies = [
        {"dataframe_records": [ROW, ROW]},
        {"dataframe_split": {"columns": flipped, "data": [[ROW[n] for n in flipped]] * 2}},
        {"instances": [[ROW[n] for n in names]] * 2},
        {"inputs": {n: [ROW[n]] * 2 for n in names}},
    ]
    for body in bodies:
        checked = validator.check(body)
        assert checked.rows == 2 and checked.data == [[ROW[n] for n in names]] * 2
    assert validator.check({"inputs": ROW}).rows == 1  # one row as {column: value}
    frame = validator.assemble([validator.check(bodies[0]), validator.check(bodies[2])])
    assert list(frame.columns) == names and len(frame) == 4
    assert [str(t) for t in frame.dtypes[["age", "visits", "vip", "seen"]]] == [
        "float64", "int32", "bool", "datetime64[ns]"]
    assert not validator.finite and validator.array_dtype is None


@pytest.mark.parametrize(("row", "field", "words"), [
    ({k: v for k, v in ROW.items() if k != "city"}, "city", "missing column 'city'"),
    ({**ROW, "extra": SECRET}, "extra", "unexpected column 'extra'"),
    ({**ROW, "age": SECRET}, "age", "expected a number (float64), got a string"),
    ({**ROW, "visits": 2.5}, "visits", "expected an integer (int32), got a number"),
    ({**ROW, "visits": 2**40}, "visits", "out of the range of int32"),
    ({**ROW, "vip": 1}, "vip", "expected a boolean (bool), got a number"),
    ({**ROW, "city": None}, "city", "null, but the model needs a string"),
    ({**ROW, "age": math.inf}, "age", "not finite"),
    ({**ROW, "seen": SECRET}, "seen", "not an ISO 8601 date-time"),
])
def test_table_refusals_name_field_and_row(row: dict[str, Any], field: str, words: str) -> None:
    refused = _refused(compile_validator(TABLE), {"dataframe_records": [ROW, ROW, row]})
    assert (refused.field, refused.row, refused.http_status) == (field, 2, 422)
    assert words in refused.message and "row 2" in refused.message


def test_shapes_and_formats_that_do_not_fit() -> None:
    validator = compile_validator(TABLE)
    assert _refused(validator, {"instances": [[1.0, 2]]}).message.startswith(
        "row 0 has 2 values; the model takes 5 columns")
    assert _refused(validator, {"dataframe_records": [[SECRET]]}).row == 0
    assert _refused(validator, {"dataframe_records": []}).field == "dataframe_records"
    columns = {n: [ROW[n]] * 2 for n in ROW} | {"age": [1.0]}
    assert "different lengths" in _refused(validator, {"inputs": columns}).message
    with pytest.raises(InvalidArgument, match="exactly one of"):
        validator.check({"rows": [ROW]})


def test_missing_values_are_allowed_where_the_example_has_them() -> None:
    schema = Schema(columns=(ColumnSpec("a", "float64"), ColumnSpec("b", "float64")))
    example = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, None]]}}
    validator = compile_validator(schema, example=example)
    assert validator.check({"dataframe_records": [{"a": 1.0, "b": None}]}).rows == 1
    assert _refused(validator, {"dataframe_records": [{"a": None, "b": 1.0}]}).field == "a"
    assert compile_validator(schema, allow_non_finite=True).check(
        {"instances": [[math.nan, None]]}).rows == 1
    everything = compile_validator(schema)
    assert everything.finite and everything.array_dtype == np.float64
    array = everything.assemble_array([everything.check({"instances": [[1, 2.5]]})] * 2)
    assert array.dtype == np.float64 and array.shape == (2, 2)


def test_tensor_inputs() -> None:
    validator = compile_validator(Schema(tensors=(TensorSpec("float32", (-1, 3)),)))
    checked = validator.check({"inputs": [[1, 2, 3], [4.5, 5, 6]]})
    assert checked.rows == 2 and checked.data.dtype == np.float32
    assert validator.check({"instances": [[1, 2, 3]]}).rows == 1
    assert validator.check({"dataframe_split": {"columns": ["x", "y", "z"],
                                                "data": [[1, 2, 3]]}}).rows == 1
    batch = validator.assemble([checked, checked])
    assert batch.shape == (4, 3)
    assert "shape (2, 2)" in _refused(validator, {"inputs": [[1, 2], [3, 4]]}).message
    assert _refused(validator, {"inputs": [[1, 2, 3], [1, 2]]}).row == 1
    assert _refused(validator, {"inputs": [[1, 2, 3], [1, SECRET, 3]]}).row == 1
    assert _refused(validator, {"inputs": [[1, 2, 3], [None, 1, 2]]}).row == 1
    assert _refused(validator, {"inputs": [[1, 2, 3], [1e39, 1, 2]]}).row == 1  # inf as float32
    assert "not named columns" in _refused(validator, {"dataframe_records": [{"a": 1}]}).message
    ints = compile_validator(Schema(tensors=(TensorSpec("int8", (-1,)),)))
    assert "out of the range of int8" in _refused(ints, {"inputs": [1, 300]}).message
    assert "integers" in _refused(ints, {"inputs": [1, 2.5]}).message


def test_named_tensors() -> None:
    validator = compile_validator(Schema(tensors=(TensorSpec("float64", (-1, 2), "a"),
                                                  TensorSpec("int64", (-1,), "b"))))
    checked = validator.check({"inputs": {"a": [[1, 2]], "b": [7]}})
    assert checked.rows == 1 and set(checked.data) == {"a", "b"}
    assert validator.check({"instances": [{"a": [1, 2], "b": 7}]}).rows == 1
    merged = validator.assemble([checked, checked])
    assert merged["a"].shape == (2, 2) and merged["b"].tolist() == [7, 7]
    assert _refused(validator, {"inputs": {"a": [[1, 2]]}}).field == "b"
    assert "different numbers of rows" in _refused(
        validator, {"inputs": {"a": [[1, 2]], "b": [1, 2]}}).message


def test_no_signature_passes_data_through_one_request_at_a_time() -> None:
    validator = compile_validator(None)
    assert not validator.batchable
    checked = validator.check({"dataframe_split": {"columns": ["x"], "data": [[1], [2]]}})
    frame = validator.assemble([checked])
    assert isinstance(frame, pd.DataFrame) and frame["x"].tolist() == [1, 2]


def test_split_output() -> None:
    assert split_output(np.arange(5), [2, 3]) == [[0, 1], [2, 3, 4]]  # lists: cheap to encode
    proba = split_output(np.array([[0.5, 0.5], [0.1, 0.9], [1.0, 0.0]]), [1, 2])
    assert proba == [[[0.5, 0.5]], [[0.1, 0.9], [1.0, 0.0]]]
    texts = split_output(np.array(["a", "b", "c"], dtype=object), [2, 1]) or []
    assert [list(p) for p in texts] == [["a", "b"], ["c"]]
    frame = pd.DataFrame({"a": range(3)})
    assert [len(p) for p in split_output(frame, [1, 2]) or []] == [1, 2]
    assert split_output({"x": np.zeros(3)}, [1, 2]) is not None
    assert split_output(np.float64(1.0), [1, 1]) is None
    assert split_output([1, 2], [1, 2]) is None


def test_batches_form_under_concurrency_and_a_bad_item_fails_alone() -> None:
    seen: list[int] = []

    def work(items: list[int]) -> list[Any]:
        seen.append(len(items))
        return [ValueError("bad") if item < 0 else item * 10 for item in items]

    async def main() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[int] = MicroBatcher(work, executor=pool, max_batch_size=4,
                                                      max_wait_s=0.01)
            return await asyncio.gather(*(batcher.submit(i, 1) for i in [*range(9), -1]),
                                        return_exceptions=True)

    results = asyncio.run(main())
    assert results[:9] == [i * 10 for i in range(9)]
    assert isinstance(results[9], ValueError)
    assert max(seen) == 4 and sum(seen) == 10


def test_prometheus_text() -> None:
    registry = Registry()
    registry.requests.inc(("/predict", "churn", "3", "200"), 2)
    registry.latency.observe(("/predict", "churn", "3"), 0.003)
    text = registry.render()
    assert "# TYPE loopml_requests_total counter" in text
    assert (f'loopml_requests_total{{route="/predict",model="churn",version="3",status="200",'
            f'worker="{registry.worker}"}} 2') in text
    assert 'le="0.0025"} 0\n' in text and 'le="0.005"} 1\n' in text and 'le="+Inf"} 1\n' in text
    assert registry.latency.count()[math.inf] == 1
