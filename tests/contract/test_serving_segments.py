"""The payload log's index and segments, on every metadata backend: what a model server
writes (through its segment sink) a reader finds by endpoint, kind and time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from loopml.blobs import BlobStore, open_backend
from loopml.deployments.payload import SegmentSink, list_segments, read_segments
from loopml.errors import InvalidArgument
from loopml.serving.payload_log import PayloadLog
from loopml.store import MetadataStore


def _request(i: int, at: int) -> tuple[object, ...]:
    return (f"r{i}", at, "churn@production", "churn", 3, "predict", 200, 1.5, 1,
            b'{"inputs": [[1.0]]}', b'{"predictions": [0]}', None, "primary")


_META = ("churn@production", "churn", 3, "predict", 200, None, "primary")


def _queue(log: PayloadLog, i: int) -> bool:
    return log.request(f"r{i}", _META, 1.5, 1, b'{"inputs": [[1.0]]}', b'{"predictions": [0]}')


def test_segments_are_written_indexed_and_read_back(database_url: str) -> None:
    meta = MetadataStore(database_url)
    blobs = BlobStore(open_backend("memory://"))
    sink = SegmentSink(blobs=blobs, meta=lambda: meta, endpoint="churn@production",
                       model="churn", row_group_rows=2)
    log = PayloadLog(sink, segment_rows=3, flush_interval_s=60)
    before = int(time.time() * 1000)
    for i in range(5):
        assert _queue(log, i)
        time.sleep(0.002)
    assert log.feedback("r1", "churn@production", "1")
    log.close()
    after = int(time.time() * 1000)
    assert (log.written, log.segments, log.dropped, log.queued) == (6, 3, 0, 0)
    with meta.read() as conn:
        segments = list_segments(conn, endpoint="churn@production")
        assert [s.rows for s in segments] == [3, 2]
        assert before <= segments[0].first_at < segments[0].last_at < segments[1].first_at
        assert segments[1].last_at <= after
        since = segments[0].last_at + 1
        assert [s.rows for s in list_segments(conn, model="churn", since=since)] == [2]
        assert list_segments(conn, endpoint="other") == []
        feedback = list_segments(conn, kind="feedback")
        with pytest.raises(InvalidArgument, match="unknown payload segment kind"):
            list_segments(conn, kind="labels")
    table = read_segments(blobs, segments)
    assert table.column("request_id").to_pylist() == [f"r{i}" for i in range(5)]
    assert table.column("request").to_pylist()[0] == '{"inputs": [[1.0]]}'
    assert set(table.column("role").to_pylist()) == {"primary"}
    assert read_segments(blobs, feedback).to_pylist()[0]["label"] == "1"
    meta.close()


def test_a_full_queue_drops_and_counts() -> None:
    written: list[int] = []
    release = threading.Event()

    def sink(kind: str, rows: Any) -> None:
        release.wait(10)  # rows being written still count against the queue's bound
        written.append(len(rows))

    log = PayloadLog(sink, max_queue_rows=2, flush_interval_s=60)
    assert [_queue(log, i) for i in range(3)] == [True, True, False]
    release.set()
    log.close()
    assert (log.dropped, sum(written)) == (1, 2)
    assert not _queue(log, 9)  # closed
    assert not log.feedback("r1", "e", "1")


def test_rows_queued_together_and_text_that_is_not_utf8(tmp_path: Path) -> None:
    """``requests`` queues what fits (one lock for all) and drops the rest; a request body
    that is not UTF-8 is stored with replacement characters rather than failing its
    segment."""
    written: list[int] = []
    release = threading.Event()

    def slow_sink(kind: str, rows: list[Any]) -> None:
        release.wait(10)  # rows being written still count against the queue's bound
        written.append(len(rows))

    log = PayloadLog(slow_sink, max_queue_rows=4, flush_interval_s=60)
    answered = [(f"r{i}", 1.5, 1, b"{}") for i in range(6)]
    assert log.requests(_META, answered[:3]) == 3
    assert log.requests(_META, answered[3:]) == 1
    release.set()
    log.close()
    assert (log.dropped, sum(written)) == (2, 4)
    meta = MetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")
    blobs = BlobStore(open_backend("memory://"))
    sink = SegmentSink(blobs=blobs, meta=lambda: meta, endpoint="e", model="churn")
    row = list(_request(0, 5))
    row[9] = b'{"inputs": "\xff"}'
    sink("requests", [tuple(row)])
    with meta.read() as conn:
        table = read_segments(blobs, list_segments(conn, endpoint="e"))
    assert table.column("request").to_pylist() == ['{"inputs": "\ufffd"}']
    meta.close()


def test_request_columns_keep_every_value_of_mixed_rows() -> None:
    """Rows of several versions and roles, with and without bodies, come out of the
    columns as they went in (the writer's shortcut for shared columns is only a
    shortcut)."""
    from loopml.deployments.payload import request_table, rows_to_queued

    rows = [
        ("a", 1_000, "e", "churn", 3, "predict", 200, 1.5, 2, b'{"inputs": [[1.0]]}',
         b'{"predictions": [0, 1]}', None, "primary"),
        ("a", 1_001, "e", "churn", 4, "predict", 200, 9.25, 2, None,
         b'{"predictions": [1, 1]}', None, "shadow"),
        ("b", 1_002, "e", "churn", None, "predict_proba", 422, 0.5, 0, b"\xff{",
         None, "column 'x' is missing", "primary"),
    ]
    table = request_table(rows_to_queued(rows))
    got = table.to_pylist()
    assert [row["request_id"] for row in got] == ["a", "a", "b"]
    assert table.column("at").cast("int64").to_pylist() == [1_000, 1_001, 1_002]
    assert [row["version"] for row in got] == [3, 4, None]
    assert [row["role"] for row in got] == ["primary", "shadow", "primary"]
    assert [row["status"] for row in got] == [200, 200, 422]
    assert [row["latency_ms"] for row in got] == [1.5, 9.25, 0.5]
    assert [row["request"] for row in got] == ['{"inputs": [[1.0]]}', None, "\ufffd{"]
    assert [row["response"] for row in got] == ['{"predictions": [0, 1]}',
                                                '{"predictions": [1, 1]}', None]
    assert [row["error"] for row in got] == [None, None, "column 'x' is missing"]
    assert request_table([]).num_rows == 0
