"""MLflow's search syntax, page tokens and model signatures as loopml reads them (no server)."""

from __future__ import annotations

import math

import pytest

from loopml.errors import InvalidArgument
from loopml.models.signature import ColumnSpec, TensorSpec
from loopml.server.mlflow.messages import Message, decode_page_token, encode_page_token
from loopml.server.mlflow.packages import translate_signature
from loopml.server.mlflow.translate import mlflow_filter, mlflow_order_by, name_matcher
from loopml.tracking.filter import Comparison, Identifier, parse_filter


@pytest.mark.parametrize(("mlflow_text", "loopml_text"), [
    ("attr.run_name = 'a'", "attributes.run_name = 'a'"),
    ("run.status != 'FAILED' and parameters.C = '1'", "status != 'FAILED' and params.C = '1'"),
    ("parameter.`lr x` = '0.1'", "params.`lr x` = '0.1'"),
    ("params.C = 'attr.x' and tags.t = \"run.y\"", "params.C = 'attr.x' and tags.t = 'run.y'"),
    ("metrics.run.loss < 1e-3", "metrics.`run.loss` < 0.001"),
    ("Created > 5", "start_time > 5"),
])
def test_mlflow_spellings_become_loopml_filters(mlflow_text: str, loopml_text: str) -> None:
    assert mlflow_filter(mlflow_text) == parse_filter(loopml_text)


@pytest.mark.parametrize("text", [
    "datasets.name = 'x'", "dataset.digest = 'x'", "attributes.artifact_uri = 'x'",
    "metrics.auc > ", "params.a = 'x' OR 1=1", "(" * 2000 + "status = 'x'" + ")" * 2000,
    "not " * 5000 + "status = 'x'", "x" * 20_001,
])
def test_unsupported_or_malformed_filters_are_invalid_arguments(text: str) -> None:
    with pytest.raises(InvalidArgument):
        mlflow_filter(text)


def test_order_by_spellings() -> None:
    first, second = mlflow_order_by(["metrics.`val loss` DESC", "attr.start_time"])
    assert (first.ident, first.ascending) == (Identifier("metric", "val loss"), False)
    assert (second.ident, second.ascending) == (Identifier("attribute", "start_time"), True)
    with pytest.raises(InvalidArgument):
        mlflow_order_by(["datasets.name"])
    assert mlflow_filter("params.x IN ('a', 'b')") == Comparison(
        Identifier("param", "x"), "IN", ("a", "b"))


def test_name_filters() -> None:
    like = name_matcher("name LIKE 'ch%_n'", "search")
    assert like("churn") and like("chxn") and not like("chn") and not like("Churn")
    ilike = name_matcher("attributes.name ILIKE 'CH%'", "search")
    assert ilike("churn") and not ilike("xchurn")
    assert name_matcher("name = 'it''s'", "search")("it's")
    assert name_matcher("name LIKE 'a\\%'", "search")("a%")
    assert not name_matcher("name LIKE 'a\\%'", "search")("ab")
    assert not name_matcher("name LIKE '" + "%" * 50 + "b'", "search")("a" * 256)
    with pytest.raises(InvalidArgument):
        name_matcher("tags.x = 'y'", "search")


def test_page_tokens_round_trip_and_bad_ones_are_refused() -> None:
    assert decode_page_token(encode_page_token(1234), "x") == 1234
    assert decode_page_token("", "x") == 0
    for token in ("garbage", encode_page_token(-1), "eyJvZmZzZXQiOiAiMSJ9"):
        with pytest.raises(InvalidArgument):
            decode_page_token(token, "x")


def test_message_fields_follow_protobuf_json() -> None:
    message = Message({"step": "12", "value": "NaN", "big": "Infinity", "bad": "1.5",
                       "ids": ["a", "b"], "name": ["only"]}, endpoint="e")
    assert message.integer("step") == 12
    assert math.isnan(message.number("value")) and message.number("big") == math.inf
    assert message.strings("ids") == ["a", "b"] and message.text("name") == "only"
    with pytest.raises(InvalidArgument, match="'bad'"):
        message.integer("bad")
    with pytest.raises(InvalidArgument, match="'missing' is required"):
        message.text("missing", required=True)


def test_signatures_translate_where_loopml_has_the_types() -> None:
    columns = translate_signature({
        "inputs": '[{"type": "double", "name": "age", "required": true},'
                  ' {"type": "string", "name": "plan", "required": true}]',
        "outputs": '[{"type": "long", "required": true}]'})
    assert columns is not None and columns.outputs is not None
    assert columns.inputs.columns == (ColumnSpec("age", "float64"), ColumnSpec("plan", "string"))
    assert columns.outputs.tensors == (TensorSpec("int64", (-1,)),)
    tensors = translate_signature({
        "inputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]'})
    assert tensors is not None and tensors.inputs.tensors == (TensorSpec("float32", (-1, 4)),)
    assert translate_signature({"inputs": '[{"type": "array", "name": "x"}]'}) is None
    assert translate_signature({"inputs": "not json"}) is None
    assert translate_signature(None) is None
