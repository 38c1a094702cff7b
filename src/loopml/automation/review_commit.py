"""Committing a review queue: labelled rows become a new version of the model's dataset and
feedback in the payload log.

::

    result = commit_labels(client, "churn-api", target, model=version, user="ana")
    result.dataset_version      # "churn@5": churn@4 plus the labelled rows
    result.feedback             # labels written to the payload log's feedback segments

The rows appended hold the request's features in the dataset's columns (a column the request
did not send is ``fill``'s value for it, else null, and is named in ``missing_columns``) and
the label in the target column, each converted to the column's type; they go through the
datasets ``append`` (so the dataset's data contract checks them, and the new-data trigger
sees them). The items of a commit carry a batch token, also written in the new version's
message, before the append: a commit interrupted after the append finds its version on the
next commit and marks the items, rather than appending them twice.

Feedback: one row per request, written by the model server's payload log writer (the label;
a request of several rows gets a list with a label per row, null where none was given), so
monitoring's performance metrics count human labels like any other delayed label. Feedback
that failed to write is retried by the next commit.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.automation import review_records as records
from loopml.errors import InvalidArgument
from loopml.tracking.records import now_ms

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.automation.review_records import ReviewItem
    from loopml.automation.review_target import ReviewTarget
    from loopml.client.base import ClientBase
    from loopml.registry.entities import ModelVersion

__all__ = ["CommitResult", "commit_labels", "labelled_table"]

_TIMESTAMP = re.compile(r"timestamp\[(\w+)(?:, tz=(.+))?\]")
_BATCH = re.compile(r"\(review batch ([0-9a-f]{16})\)")


@dataclass(frozen=True)
class CommitResult:
    """What a commit did: the dataset version it added (None: nothing to append), the rows
    in it and how many corrected the prediction, the feedback rows written, the dataset
    columns the requests did not hold, and the rows of an interrupted commit it finished."""

    dataset_version: str | None
    rows: int
    corrected: int
    feedback: int
    missing_columns: tuple[str, ...] = ()
    recovered: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"dataset_version": self.dataset_version, "rows": self.rows,
                "corrected": self.corrected, "feedback": self.feedback,
                "missing_columns": list(self.missing_columns), "recovered": self.recovered}


def _arrow_type(text: str) -> pa.DataType:
    import pyarrow as pa

    if match := _TIMESTAMP.fullmatch(text):
        return pa.timestamp(match.group(1), match.group(2))
    try:
        return pa.type_for_alias(text)
    except ValueError:
        raise InvalidArgument(f"cannot append review rows to a column of type {text}; "
                              "append them with 'loopml data append' instead") from None


def labelled_table(items: Sequence[ReviewItem], target: ReviewTarget, *,
                   fill: Mapping[str, Any] | None = None) -> tuple[pa.Table, tuple[str, ...]]:
    """The rows of ``items`` in the dataset's columns and types, and the columns that were
    neither sent with the requests nor in ``fill`` (left null)."""
    import pyarrow as pa

    fill = dict(fill or {})
    unknown = sorted(set(fill) - {c.name for c in target.columns})
    if unknown:
        raise InvalidArgument(f"fill names column(s) {', '.join(unknown)} that {target.dataset}"
                              f" does not have; its columns: "
                              f"{', '.join(c.name for c in target.columns)}")
    arrays: list[pa.Array] = []
    missing: list[str] = []
    for column in target.columns:
        if column.name == target.target:
            values = [item.label for item in items]
        elif any(column.name in item.features for item in items):
            values = [item.features.get(column.name) for item in items]
        elif column.name in fill:
            values = [fill[column.name]] * len(items)
        else:
            values = [None] * len(items)
            missing.append(column.name)
        try:
            arrays.append(pa.array(values, type=_arrow_type(column.type)))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            bad = next((v for v in values if v is not None), None)
            raise InvalidArgument(f"column {column.name!r} of {target.dataset} is "
                                  f"{column.type}, but a reviewed row holds {bad!r:.60} there;"
                                  " relabel the item or fix the request's column") from None
    return pa.Table.from_arrays(arrays, names=[c.name for c in target.columns]), \
        tuple(missing)


def _batch_version(stores: ClientBase, dataset: str, batch: str) -> str | None:
    """The version an interrupted commit of ``batch`` added, if it got that far."""
    from loopml.datasets.records import list_versions

    with stores.meta.read() as conn:
        for version in reversed(list_versions(conn, dataset)):
            found = _BATCH.search(version.message or "")
            if found and found.group(1) == batch:
                return version.ref
    return None


def _append(stores: ClientBase, target: ReviewTarget, table: pa.Table, *, endpoint: str,
            batch: str) -> str:
    import pyarrow.parquet as pq

    from loopml.datasets.ingest import IngestOptions, append

    message = (f"{table.num_rows} human-reviewed row(s) from {endpoint} "
               f"(review batch {batch})")
    with tempfile.TemporaryDirectory(prefix="loopml-review-") as tmp:
        path = Path(tmp) / f"review-{batch}.parquet"
        pq.write_table(table, path)
        version = append(stores.meta, stores.blobs, None, name=target.dataset, path=path,
                         options=IngestOptions(message=message))
    return version.ref


def _recover(stores: ClientBase, target: ReviewTarget, pending: Sequence[ReviewItem], *,
             endpoint: str, model: ModelVersion, user: str, now: int) -> int:
    """Finish the commits that appended their rows but did not mark their items."""
    done = 0
    for batch in sorted({i.batch for i in pending if i.batch is not None}):
        ref = _batch_version(stores, target.dataset, batch)
        if ref is None:
            continue
        with stores.meta.write() as conn:
            marked = records.mark_committed(conn, batch, dataset_version=ref, now=now)
            _event(conn, endpoint=endpoint, model=model, user=user, now=now, rows=marked,
                   corrected=None, ref=ref, target=target, batch=batch, missing=())
        done += marked
    return done


def _event(conn: Any, *, endpoint: str, model: ModelVersion, user: str, now: int, rows: int,
           corrected: int | None, ref: str, target: ReviewTarget, batch: str,
           missing: Sequence[str]) -> None:
    from loopml.automation.events import record_event

    how = "" if corrected is None else f" ({corrected} corrected the prediction)"
    record_event(conn, "labels_added", model=model.model, version=model.version,
                 deployment=endpoint, actor=user, at=now,
                 reason=f"{rows} human label(s) from the review of {endpoint} appended to "
                        f"{ref}{how}",
                 data={"rows": rows, "corrected": corrected, "dataset_version": ref,
                       "target": target.target, "batch": batch,
                       "missing_columns": list(missing)})


def _write_feedback(stores: ClientBase, endpoint: str, now: int) -> int:
    """Write the labels of committed items not yet in the payload log; how many requests."""
    from loopml.deployments.payload import SegmentSink

    with stores.meta.read() as conn:
        due = records.feedback_due(conn, endpoint)
        labels = records.request_labels(conn, endpoint, (i.request_id for i in due))
    by_model: dict[str, dict[str, ReviewItem]] = {}
    for item in due:
        by_model.setdefault(item.model, {})[item.request_id] = item
    written = 0
    for model, requests in by_model.items():
        rows = []
        for rid, item in requests.items():
            given = labels[rid]
            label = given.get(0) if item.rows == 1 else [given.get(r) for r in range(item.rows)]
            rows.append((rid, now, endpoint, records.dumps(label)))
        SegmentSink(blobs=stores.blobs, meta=lambda: stores.meta, endpoint=endpoint,
                    model=model)("feedback", rows)
        written += len(rows)
        with stores.meta.write() as conn:
            records.mark_feedback(conn, (i.id for i in due if i.model == model), now=now)
    return written


def commit_labels(stores: ClientBase, endpoint: str, target: ReviewTarget, *,
                  model: ModelVersion, user: str,
                  fill: Mapping[str, Any] | None = None) -> CommitResult:
    """Append the labelled items of ``endpoint`` to ``target``'s dataset, record a
    ``labels_added`` event, and write their labels as feedback (see the module's docstring)."""
    now = now_ms()
    with stores.meta.read() as conn:
        pending = records.list_items(conn, endpoint=endpoint, status="labelled",
                                     limit=1_000_000)
    recovered = _recover(stores, target, pending, endpoint=endpoint, model=model, user=user,
                         now=now)
    ref, rows, corrected = None, 0, 0
    missing: tuple[str, ...] = ()
    with stores.meta.read() as conn:
        left = records.list_items(conn, endpoint=endpoint, status="labelled", limit=1_000_000)
    if left:
        batch = uuid.uuid4().hex[:16]
        with stores.meta.write() as conn:
            records.mark_batch(conn, [i.id for i in left], batch)
            items = records.batch_items(conn, batch)
        try:
            table, missing = labelled_table(items, target, fill=fill)
            ref = _append(stores, target, table, endpoint=endpoint, batch=batch)
        except BaseException:
            with stores.meta.write() as conn:
                records.mark_batch(conn, [i.id for i in items], None)
            raise
        rows, corrected = len(items), sum(1 for i in items if i.corrected)
        with stores.meta.write() as conn:
            records.mark_committed(conn, batch, dataset_version=ref, now=now)
            _event(conn, endpoint=endpoint, model=model, user=user, now=now, rows=rows,
                   corrected=corrected, ref=ref, target=target, batch=batch, missing=missing)
    feedback = _write_feedback(stores, endpoint, now)
    return CommitResult(ref, rows, corrected, feedback, tuple(missing), recovered)
