"""The review queue over a real payload log (written by the model server's segment sink), a
real dataset and registry: what is queued, how labels are checked, and what a commit leaves in
the dataset, the payload log's feedback and the events timeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loopml
from loopml.automation import review_commit
from loopml.automation import review_records as records
from loopml.automation.events import list_events
from loopml.automation.review import ReviewQueue, get_review_item, review_endpoints
from loopml.automation.review_select import choose, sample_key, window_rows
from loopml.deployments.api import Deployments
from loopml.deployments.payload import SegmentSink, list_segments, read_segments, request_schema
from loopml.errors import Conflict, InvalidArgument, NotFound
from loopml.monitoring.reference import set_reference
from loopml.monitoring.window import payload_window
from loopml.registry import records as registry

ENDPOINT = "churn-api"
T0 = 1_700_000_000_000
INPUTS = {"inputs": {"columns": [{"name": "x1", "dtype": "float64"},
                                 {"name": "plan", "dtype": "string"}]}}


def _request(rid: str, at: int, rows: list[dict[str, Any]], answer: Any, *,
             route: str = "predict_proba", status: int = 200, role: str = "primary",
             version: int = 1) -> tuple[Any, ...]:
    body = orjson.dumps({"dataframe_records": rows}).decode()
    response = orjson.dumps({"predictions": answer, "request_id": rid}).decode()
    return (rid, at, ENDPOINT, "churn", version, route, status, 1.0, len(rows), body,
            response, None, role)


def _proba(p: float) -> list[float]:
    return [round(1 - p, 6), p]


def _log(client: loopml.Client, requests: list[tuple[Any, ...]],
         feedback: list[tuple[Any, ...]] = ()) -> None:  # type: ignore[assignment]
    sink = SegmentSink(blobs=client.blobs, meta=lambda: client.meta, endpoint=ENDPOINT,
                       model="churn")
    sink("requests", requests)
    if feedback:
        sink("feedback", list(feedback))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[loopml.Client]:
    home = tmp_path / ".loopml"
    client = loopml.Client(loopml.load_settings(home=home, progress=False, environ={},
                                                config_file=home / "none.toml"))
    table = pa.table({"x1": [0.5, 1.5, 2.5, 3.5], "plan": ["free", "pro", "pro", "free"],
                      "customer": ["a", "b", "c", "d"], "churned": [0, 1, 1, 0]})
    pq.write_table(table, tmp_path / "train.parquet")
    client.add_dataset(tmp_path / "train.parquet", "churn")
    with client.meta.write() as conn:
        registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn",
                                datasets=["churn@1"], signature=INPUTS)
        registry.set_alias(conn, "churn", "production", 1, actor="t", reason="")
    Deployments(client.meta, actor="t").create(ENDPOINT, model="churn@production")
    set_reference("churn/1", table, target="churned", client=client)  # names the label
    # 10 single-row requests of falling confidence, one of two rows, one already labelled,
    # one that failed, one answered by /predict (no probabilities).
    probabilities = [0.99, 0.02, 0.9, 0.55, 0.48, 0.97, 0.7, 0.2, 0.6, 0.995]
    requests = [_request(f"r{i}", T0 + i, [{"x1": float(i), "plan": "pro"}], [_proba(p)])
                for i, p in enumerate(probabilities)]
    requests += [
        _request("pair", T0 + 20, [{"x1": 7.0, "plan": "free"}, {"x1": 8.0, "plan": "pro"}],
                 [_proba(0.51), _proba(0.9)]),
        _request("known", T0 + 21, [{"x1": 9.0, "plan": "pro"}], [_proba(0.5)]),
        _request("failed", T0 + 22, [{"x1": 9.0, "plan": "pro"}], [_proba(0.5)], status=400),
        _request("plain", T0 + 23, [{"x1": 4.0, "plan": "free"}], [1], route="predict"),
    ]
    _log(client, requests, [("known", T0 + 30, ENDPOINT, "1")])
    yield client
    client.close()


def _feedback(client: loopml.Client) -> dict[str, Any]:
    with client.meta.read() as conn:
        segments = list_segments(conn, endpoint=ENDPOINT, kind="feedback")
    table = read_segments(client.blobs, segments, kind="feedback")
    return {rid: orjson.loads(label) for rid, label in zip(
        table.column("request_id").to_pylist(), table.column("label").to_pylist(),
        strict=True)}


def test_the_least_confident_rows_and_a_reproducible_sample_are_queued(
        client: loopml.Client) -> None:
    queue = ReviewQueue(ENDPOINT, client=client)
    result = queue.refresh(uncertain=3, sample=0.5, max_sample=2, seed=7)
    assert (result.rows, result.uncertain, result.random, result.pending) == (13, 3, 2, 5)
    assert result.skipped == {"answered with a non-2xx status": 1}
    items = queue.list()
    uncertain = [i for i in items if i.reason == "uncertain"]
    # |p - 0.5| smallest: 0.51 (row 0 of "pair"), 0.48, 0.55
    assert [(i.request_id, i.row) for i in uncertain] == [("pair", 0), ("r4", 0), ("r3", 0)]
    assert [round(i.confidence, 3) for i in uncertain] == [0.51, 0.52, 0.55]
    assert uncertain[0].rows == 2 and uncertain[0].features == {"x1": 7.0, "plan": "free"}
    assert uncertain[0].prediction == 1 and uncertain[1].prediction == 0
    assert "known" not in {i.request_id for i in items}  # it has a label already
    drawn = [(i.request_id, i.row) for i in items if i.reason == "random"]
    # The same seed draws the same rows: the two of lowest key below the share.
    rows = [(f"r{i}", 0) for i in range(10)] + [("pair", 1), ("plain", 0)]
    keyed = sorted((sample_key(7, rid, row), (rid, row)) for rid, row in rows
                   if (rid, row) not in {(i.request_id, i.row) for i in uncertain})
    assert drawn == [pair for key, pair in keyed if key < 0.5][:2]
    again = queue.refresh(uncertain=3, sample=0.5, max_sample=2, seed=7)
    assert (again.uncertain, again.random, again.pending) == (0, 0, 5)
    assert review_endpoints(client=client)[ENDPOINT]["pending"] == 5


def test_labels_are_checked_and_commit_appends_rows_feedback_and_an_event(
        client: loopml.Client) -> None:
    queue = ReviewQueue(ENDPOINT, client=client, fill={"customer": "reviewed"})
    queue.refresh(uncertain=3, sample=0.0)
    assert queue.target.target == "churned" and queue.target.classes == (0, 1)
    first, second, third = queue.list()
    with pytest.raises(InvalidArgument, match=r"label 'maybe' is not a class .*allowed "
                                              r"values: 0, 1"):
        queue.label(first.id, "maybe")
    queue.label(first.id, "1", user="ana")        # text from a form or the CLI
    queue.label(first.id, 0, user="ana")          # a correction before commit: latest wins
    queue.confirm(second.request_id, user="bob")  # by request id: the prediction (0)
    skipped = queue.skip(third.id, user="bob")
    assert skipped.status == "skipped" and queue.counts()["labelled"] == 2
    result = queue.commit(user="ana")
    assert (result.dataset_version, result.rows, result.corrected) == ("churn@2", 2, 1)
    assert result.feedback == 2 and result.missing_columns == ()
    table = client.load_table("churn@2", output="arrow")
    added = [r for r in table.to_pylist() if r["customer"] == "reviewed"]
    assert table.num_rows == 6
    assert added == [{"x1": 4.0, "plan": "pro", "customer": "reviewed", "churned": 0},
                     {"x1": 7.0, "plan": "free", "customer": "reviewed", "churned": 0}]
    assert table.schema == client.load_table("churn@1", output="arrow").schema
    # The pair's row 1 has no label: its feedback holds one label per row.
    assert _feedback(client) == {"known": 1, "pair": [0, None], "r4": 0}
    with client.meta.read() as conn:
        requests = read_segments(client.blobs, list_segments(conn, endpoint=ENDPOINT))
        feedback = read_segments(client.blobs, list_segments(conn, endpoint=ENDPOINT,
                                                             kind="feedback"), kind="feedback")
    window = payload_window(requests, feedback=feedback)
    assert window.labelled == 3  # monitoring sees the human labels
    event = list_events(client.meta, kind="labels_added")[0]
    assert (event.model, event.version, event.deployment, event.actor) == (
        "churn", 1, ENDPOINT, "ana")
    assert event.data["dataset_version"] == "churn@2" and event.data["corrected"] == 1
    with pytest.raises(Conflict, match="committed to churn@2 .* immutable"):
        queue.label(first.id, 1)
    nothing = queue.commit()
    assert (nothing.dataset_version, nothing.rows, nothing.feedback) == (None, 0, 0)
    assert get_review_item(first.id, client=client).status == "committed"


def test_an_interrupted_commit_is_finished_not_appended_twice(
        client: loopml.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = ReviewQueue(ENDPOINT, client=client)
    queue.refresh(uncertain=2, sample=0.0)
    for item in queue.list():
        queue.label(item.id, 1)
    real = records.mark_committed

    def crash(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("killed between the append and the status change")

    monkeypatch.setattr(records, "mark_committed", crash)
    with pytest.raises(RuntimeError):
        queue.commit()
    monkeypatch.setattr(records, "mark_committed", real)
    with pytest.raises(Conflict, match="being committed"):
        queue.label(queue.list(status="labelled")[0].id, 0)
    result = queue.commit()
    assert (result.recovered, result.rows, result.dataset_version) == (2, 0, None)
    assert [v.version for v in client.list_dataset_versions("churn")] == [1, 2]
    assert client.get_dataset_version("churn@2").rows == 6
    assert queue.counts()["committed"] == 2 and len(_feedback(client)) == 3
    # A failed append leaves the items labelled, free to change.
    queue.label("r1", 1)  # not queued yet: queued as a manual item, then labelled

    def refused(*args: Any, **kwargs: Any) -> str:
        raise InvalidArgument("contract violated")

    monkeypatch.setattr(review_commit, "_append", refused)
    with pytest.raises(InvalidArgument, match="contract violated"):
        queue.commit()
    item = queue.get("r1")
    assert (item.reason, item.status, item.batch) == ("manual", "labelled", None)


def test_label_lookup_errors_and_commit_every(client: loopml.Client) -> None:
    queue = ReviewQueue(ENDPOINT, client=client, commit_every=2)
    with pytest.raises(InvalidArgument, match="request 'pair' has 2 rows .*row=..."):
        queue.label("pair", 1)
    assert queue.label("pair", 1, row=1).status == "labelled"
    with pytest.raises(NotFound, match="no review item or logged request 'nope'"):
        queue.label("nope", 1)
    with pytest.raises(InvalidArgument, match="a label cannot be empty"):
        queue.label("r2", " ")
    done = queue.label("r2", 1.0)  # the second label commits both
    assert (done.status, done.label, done.dataset_version) == ("committed", 1, "churn@2")
    with pytest.raises(NotFound, match="no requests of 'other'.*churn-api"):
        ReviewQueue("other", client=client).refresh()
    other = ReviewQueue(ENDPOINT, client=client, target="plan")
    assert other.target.classes == ("free", "pro")
    with pytest.raises(InvalidArgument, match="'x9' is not a column of churn@2"):
        _ = ReviewQueue(ENDPOINT, client=client, target="x9").target
    assert queue.target.how == "the model's monitoring reference"
    every = {"inputs": {"columns": [*INPUTS["inputs"]["columns"],
                                    {"name": "customer", "dtype": "string"}]}}
    with client.meta.write() as conn:
        registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn",
                                datasets=["churn@1"], signature=every)
        registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn")
    inferred = ReviewQueue(ENDPOINT, client=client, model="churn/2").target
    assert (inferred.target, inferred.classes) == ("churned", (0, 1))
    assert inferred.how == "the one dataset column that is not a model input"
    with pytest.raises(InvalidArgument, match="trained on no table dataset"):
        _ = ReviewQueue(ENDPOINT, client=client, model="churn/3").target
    with pytest.raises(InvalidArgument, match="signature names no input columns.*--target"):
        _ = ReviewQueue(ENDPOINT, client=client, model="churn/3", dataset="churn").target


def _table(rows: list[tuple[Any, ...]]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(request_schema().names, r, strict=True))
                                 for r in rows], schema=request_schema())


def test_confidence_for_many_classes_and_rows_without_probabilities() -> None:
    three = _table([_request("a", T0, [{"x1": 1.0}], [[0.2, 0.5, 0.3]]),
                    _request("b", T0 + 1, [{"x1": 2.0}], [[0.1, 0.1, 0.8]])])
    rows = window_rows(payload_window(three), three, endpoint=ENDPOINT,
                       classes=("bird", "cat", "dog"))
    assert [(r.prediction, r.confidence) for r in rows] == [("cat", 0.5), ("dog", 0.8)]
    # Classes unknown: class indices above 1 say there are more than two.
    rows = window_rows(payload_window(three), three, endpoint=ENDPOINT)
    assert [(r.prediction, r.confidence) for r in rows] == [(1, 0.5), (2, 0.8)]
    plain = _table([_request(f"p{i}", T0 + i, [{"x1": float(i)}], [i * 1.5], route="predict")
                    for i in range(40)])
    rows = window_rows(payload_window(plain), plain, endpoint=ENDPOINT)
    assert {r.confidence for r in rows} == {None}
    chosen = choose(rows, known={("p3", 0)}, pending={}, uncertain=5, sample=0.25,
                    max_sample=100, seed=1)
    assert chosen and {r.reason for r in chosen} == {"random"}  # regression: random only
    assert 3 <= len(chosen) <= 20 and ("p3", 0) not in {(r.request_id, r.row) for r in chosen}
    assert chosen == choose(rows, known={("p3", 0)}, pending={}, uncertain=5, sample=0.25,
                            max_sample=100, seed=1)
    assert chosen != choose(rows, known=set(), pending={}, sample=0.25, seed=2)
    with pytest.raises(InvalidArgument, match="sample is the share"):
        choose(rows, known=set(), pending={}, sample=2.0)
