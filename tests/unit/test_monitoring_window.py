"""A window of the payload log as columns: rows in every request format, written by the model
server's segment sink and read back, expanded per row and joined with delayed labels."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pytest

from loopml.blobs import BlobStore, open_backend
from loopml.deployments.payload import SegmentSink, list_segments, read_segments, request_schema
from loopml.errors import InvalidArgument
from loopml.monitoring.window import payload_window
from loopml.serving.http import encode_json
from loopml.store import MetadataStore

ENDPOINT = "churn@production"
T0 = 1_700_000_000_000


def _request(rid: str, at: int, body: Any, predictions: Any, *, route: str = "predict",
             status: int = 200, version: int = 3, role: str = "primary",
             rows: int = 1) -> tuple[Any, ...]:
    """A row as the model server logs it (see Runtime._account): raw body bytes, answer."""
    raw = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    answer = encode_json({"predictions": predictions, "model": "churn", "version": version,
                          "request_id": rid}) if status == 200 else \
        orjson.dumps({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"})
    return (rid, at, ENDPOINT, "churn", version, route, status, 1.5, rows, raw, answer,
            None if status == 200 else "bad", role)


def _logged(tmp_path: Any, requests: list[tuple[Any, ...]],
            feedback: list[tuple[Any, ...]]) -> tuple[pa.Table, pa.Table]:
    """Write the rows with the server's segment sink, then read them back by endpoint."""
    meta = MetadataStore(f"sqlite:///{tmp_path / 'meta' / 'loopml.db'}")
    blobs = BlobStore(open_backend("memory://"))
    sink = SegmentSink(blobs=blobs, meta=lambda: meta, endpoint=ENDPOINT, model="churn",
                       row_group_rows=3)
    sink("requests", requests)
    if feedback:
        sink("feedback", feedback)
    with meta.read() as conn:
        logged = read_segments(blobs, list_segments(conn, endpoint=ENDPOINT))
        labels = read_segments(blobs, list_segments(conn, endpoint=ENDPOINT, kind="feedback"),
                               kind="feedback")
    meta.close()
    return logged, labels


def test_every_request_format_becomes_rows_joined_with_their_labels(tmp_path: Any) -> None:
    requests = [
        _request("r1", T0, {"dataframe_records": [{"age": 31, "plan": "pro"},
                                                  {"age": 47, "plan": "free"}]}, [1, 0],
                 rows=2),
        _request("r2", T0 + 1, {"dataframe_split": {"columns": ["plan", "age"],
                                                    "data": [["pro", 22]]}}, [0]),
        _request("r3", T0 + 2, {"instances": [{"age": 50, "plan": "team"}]}, [1]),
        _request("r4", T0 + 3, {"inputs": {"age": [60, 61], "plan": ["free", "pro"]}},
                 [0, 1], rows=2),
        _request("r5", T0 + 4, {"instances": [[70, "pro"]]}, [[0.2, 0.8]],
                 route="predict_proba", version=4, role="canary"),
        _request("r6", T0 + 5, {"inputs": [[80, "free"], [81, "team"]]}, [[0.9, 0.1],
                                                                          [0.3, 0.7]],
                 route="predict_proba", rows=2),
        _request("r7", T0 + 6, {"dataframe_records": [{"age": 1, "plan": "x"}]}, None,
                 status=400),
        _request("r8", T0 + 7, b'{"dataframe_records": [', [1]),        # malformed body
        _request("r9", T0 + 8, {"dataframe_records": [{"age": 2, "plan": "pro"}]}, [1, 0]),
        _request("r1", T0 + 9, None, [0, 0], role="shadow", version=5, rows=2),
    ]
    feedback = [
        ("r1", T0 + 100, ENDPOINT, b"[1, 1]"),       # a list: one label per row
        ("r2", T0 + 100, ENDPOINT, b"1"),            # later feedback for r2 wins
        ("r2", T0 + 200, ENDPOINT, b"0"),
        ("r3", T0 + 100, ENDPOINT, b"[1]"),          # one row: a list of one is its value
        ("r4", T0 + 100, ENDPOINT, b"1"),            # a scalar cannot label two rows
        ("r5", T0 + 100, ENDPOINT, b"1"),
        ("r6", T0 + 100, ENDPOINT, b"[0, 1]"),
        ("zz", T0 + 100, ENDPOINT, b"1"),            # a request outside the window
    ]
    logged, labels = _logged(tmp_path, requests, feedback)
    window = payload_window(logged, feedback=labels, columns=["age", "plan"])

    assert window.features.column_names == ["age", "plan"]
    assert window.features.to_pydict() == {
        "age": [31, 47, 22, 50, 60, 61, 70, 80, 81],
        "plan": ["pro", "free", "pro", "team", "free", "pro", "pro", "free", "team"]}
    assert window.request_ids.to_pylist() == ["r1", "r1", "r2", "r3", "r4", "r4", "r5", "r6",
                                              "r6"]
    assert window.versions.to_pylist() == [3, 3, 3, 3, 3, 3, 4, 3, 3]
    # predict_proba rows: the most probable class, scored with the probability of class 1.
    assert window.predictions.to_pylist() == [1, 0, 0, 1, 0, 1, 1, 0, 1]
    assert window.scores is not None
    assert window.scores.to_pylist() == [None] * 6 + [0.8, 0.1, 0.7]
    assert window.labels.to_pylist() == [1, 1, 0, 1, None, None, 1, 0, 1]
    assert (window.rows, window.labelled, window.requests) == (9, 7, 6)
    assert window.at == (T0, T0 + 5)
    assert window.skipped == {"answered with a non-2xx status": 1,
                              "request body is not JSON": 1,
                              "predictions do not match the rows of the request": 1}
    assert window.feedback_skipped == {
        "label does not hold one value per row of its request": 1}


def test_shadow_rows_take_the_body_of_their_request() -> None:
    rows = [_request("a", T0, {"dataframe_records": [{"x": 1.5}]}, [1]),
            _request("a", T0 + 1, None, [0], role="shadow", version=9)]
    table = _table(rows)
    shadow = payload_window(table, roles=["shadow"])
    assert shadow.features.to_pydict() == {"x": [1.5]}
    assert (shadow.predictions.to_pylist(), shadow.versions.to_pylist()) == ([0], [9])
    assert payload_window(table).versions.to_pylist() == [3]
    with pytest.raises(InvalidArgument, match="unknown role"):
        payload_window(table, roles=["champion"])


def _table(rows: list[tuple[Any, ...]]) -> pa.Table:
    schema = request_schema()
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays([pa.array([v.decode() if isinstance(v, bytes) else v
                                           for v in values], type=field.type)
                                 for field, values in zip(schema, columns, strict=True)],
                                schema=schema)


def test_junk_in_a_numeric_column_becomes_text_not_an_error() -> None:
    rows = [_request(f"r{i}", T0 + i, {"dataframe_records": [{"age": age, "n": i}]}, [0])
            for i, age in enumerate([31, "abc", 40.5, None, True])]
    window = payload_window(_table(rows))
    assert window.features.schema.field("age").type == pa.string()
    assert window.features.column("age").to_pylist() == ["31", "abc", "40.5", None, "true"]
    assert window.features.column("n").to_pylist() == [0, 1, 2, 3, 4]


def test_arrays_without_column_names_are_named_by_position() -> None:
    rows = [_request("a", T0, {"instances": [[1, 2], [3, 4]]}, [0, 1], rows=2),
            _request("b", T0 + 1, {"inputs": [5, 6]}, [1, 1], rows=2)]
    window = payload_window(_table(rows))
    assert window.features.to_pydict() == {"0": [1, 3, 5, 6], "1": [2, 4, None, None]}
    assert window.scores is None
    assert window.labels.to_pylist() == [None] * 4


def test_an_empty_log_is_an_empty_window() -> None:
    window = payload_window(request_schema().empty_table())
    assert (window.rows, window.requests, window.at, window.skipped) == (0, 0, None, {})
    assert len(window.predictions) == len(window.request_ids) == len(window.labels) == 0


def test_bodies_that_do_not_read_are_skipped_and_counted() -> None:
    rows = [_request("a", T0, {"records": [{"x": 1}]}, [0]),               # unknown format
            _request("b", T0 + 1, {"dataframe_records": []}, []),          # no rows
            _request("c", T0 + 2, {"dataframe_split": {"columns": ["x"], "data": [[1, 2]]}},
                     [0]),                                                 # ragged split
            _request("d", T0 + 3, [1, 2], [0]),                            # not an object
            _request("e", T0 + 4, {"inputs": 5}, [0]),                     # not rows
            _request("f", T0 + 5, {"dataframe_records": [{"x": 1}]}, [0], status=503),
            _request("g", T0 + 6, {"dataframe_records": [{"x": 1}]}, [0]),
            _request("h", T0 + 7, {"dataframe_records": [{"x": 1}]}, [0])]
    table = _table(rows)
    broken = table.set_column(10, "response", pa.array(["{", None, "", "[", "{}", "{}", "{",
                                                        None]))
    window = payload_window(broken)
    assert window.rows == 0
    assert window.skipped == {"request body holds no rows in a known format": 5,
                              "answered with a non-2xx status": 1,
                              "response body is not JSON": 2}
    with pytest.raises(InvalidArgument, match="lacks column"):
        payload_window(table.drop_columns(["response"]))
