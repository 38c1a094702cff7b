"""Review items over a connection: queue, read, label, skip, commit (see
:mod:`loopml.automation.review_tables` for the life of an item).

Each function works in the caller's transaction; :class:`~loopml.automation.review.
ReviewQueue` opens one per call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from loopml.automation.review_tables import review_items
from loopml.errors import Conflict, InvalidArgument, NotFound
from loopml.store.dialect import insert_on_conflict

__all__ = ["REASONS", "STATUSES", "NewItem", "ReviewItem", "batch_items", "count_items",
           "dumps", "endpoints", "feedback_due", "find_items", "get_item", "insert_items",
           "item_id", "known_rows", "list_items", "mark_batch", "mark_committed",
           "mark_feedback", "request_labels", "set_label", "set_skipped"]

#: Why an item was queued.
REASONS = ("uncertain", "random", "manual")
#: Where an item is in its life.
STATUSES = ("pending", "labelled", "skipped", "committed")
_ORDER = sa.case((review_items.c.reason == "uncertain", 0), (review_items.c.reason == "manual",
                                                              1), else_=2)


def item_id(endpoint: str, request_id: str, row: int) -> str:
    """The id of a row of the payload log in the queue: 12 hex digits, the same each time."""
    key = f"{endpoint}\x00{request_id}\x00{row}".encode()
    return hashlib.blake2b(key, digest_size=6).hexdigest()


@dataclass(frozen=True, slots=True)
class NewItem:
    """A row chosen for review, before it is stored."""

    endpoint: str
    request_id: str
    row: int
    rows: int
    model: str
    version: int | None
    at: int
    features: dict[str, Any]
    prediction: Any
    confidence: float | None
    reason: str

    @property
    def id(self) -> str:
        return item_id(self.endpoint, self.request_id, self.row)


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One row to confirm or correct: what the model was asked and answered, how sure it was,
    and the label a person gave. Times are ms since the epoch (UTC)."""

    id: str
    endpoint: str
    request_id: str
    row: int
    rows: int
    model: str
    version: int | None
    at: int
    features: dict[str, Any]
    prediction: Any
    confidence: float | None
    reason: str
    status: str
    label: Any
    labelled_by: str
    labelled_at: int | None
    dataset_version: str | None
    committed_at: int | None
    feedback_at: int | None
    queued_at: int
    batch: str | None = None

    @property
    def labelled(self) -> bool:
        return self.status in ("labelled", "committed")

    @property
    def corrected(self) -> bool:
        """Whether the label differs from the prediction."""
        return self.labelled and self.label != self.prediction

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for ``--json`` and the web page."""
        data = asdict(self)
        data.pop("batch")
        return data


def _item(row: Any) -> ReviewItem:
    data = row._mapping
    return ReviewItem(
        id=data["id"], endpoint=data["endpoint"], request_id=data["request_id"],
        row=data["row"], rows=data["rows"], model=data["model"], version=data["version"],
        at=data["at"], features=orjson.loads(data["features"]),
        prediction=orjson.loads(data["prediction"]), confidence=data["confidence"],
        reason=data["reason"], status=data["status"],
        label=None if data["label"] is None else orjson.loads(data["label"]),
        labelled_by=data["labelled_by"], labelled_at=data["labelled_at"],
        dataset_version=data["dataset_version"], committed_at=data["committed_at"],
        feedback_at=data["feedback_at"], queued_at=data["queued_at"], batch=data["batch"])


def dumps(value: Any) -> str:
    """JSON text of a value read from the payload log or given as a label."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY
                            | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as exc:
        raise InvalidArgument(f"{value!r:.60} cannot be stored as JSON ({exc}); give a "
                              "number, text or boolean") from None


def insert_items(conn: sa.Connection, items: Sequence[NewItem], *, now: int) -> int:
    """Queue ``items`` (a row already queued stays as it is); how many were new."""
    if not items:
        return 0
    before = _count(conn, items[0].endpoint)
    stmt = insert_on_conflict(conn, review_items).on_conflict_do_nothing(
        index_elements=["id"])
    conn.execute(stmt, [
        {"id": item.id, "endpoint": item.endpoint, "request_id": item.request_id,
         "row": item.row, "rows": item.rows, "model": item.model, "version": item.version,
         "at": item.at, "features": dumps(item.features), "prediction": dumps(item.prediction),
         "confidence": item.confidence, "reason": item.reason, "status": "pending",
         "labelled_by": "", "queued_at": now}
        for item in items])
    return _count(conn, items[0].endpoint) - before


def _count(conn: sa.Connection, endpoint: str) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(review_items)
                            .where(review_items.c.endpoint == endpoint)).scalar_one())


def get_item(conn: sa.Connection, item: str) -> ReviewItem:
    row = conn.execute(sa.select(review_items).where(review_items.c.id == item)).first()
    if row is None:
        raise NotFound(f"no review item {item!r}; list them with 'loopml review list "
                       "DEPLOYMENT'")
    return _item(row)


def find_items(conn: sa.Connection, endpoint: str, request_id: str) -> list[ReviewItem]:
    """The queued rows of one request, in row order."""
    table = review_items
    rows = conn.execute(sa.select(table).where(table.c.endpoint == endpoint,
                                               table.c.request_id == request_id)
                        .order_by(table.c.row)).all()
    return [_item(r) for r in rows]


def list_items(conn: sa.Connection, *, endpoint: str | None = None,
               status: str | Sequence[str] | None = "pending", limit: int = 20,
               offset: int = 0) -> list[ReviewItem]:
    """Items of ``status`` (None: any): the uncertain ones first, least confident first, then
    the manual ones, then the random sample, in the order they were queued."""
    table = review_items
    query = sa.select(table)
    if endpoint is not None:
        query = query.where(table.c.endpoint == endpoint)
    statuses = _statuses(status)
    if statuses is not None:
        query = query.where(table.c.status.in_(statuses))
    query = query.order_by(_ORDER, table.c.confidence.is_(None), table.c.confidence,
                           table.c.queued_at, table.c.at, table.c.request_id, table.c.row)
    return [_item(r) for r in conn.execute(query.limit(limit).offset(offset))]


def _statuses(status: str | Sequence[str] | None) -> list[str] | None:
    if status is None:
        return None
    chosen = [status] if isinstance(status, str) else list(status)
    unknown = [s for s in chosen if s not in STATUSES]
    if unknown:
        raise InvalidArgument(f"unknown review status {unknown[0]!r}; use one of "
                              f"{', '.join(STATUSES)}")
    return chosen


def count_items(conn: sa.Connection, *, endpoint: str | None = None) -> dict[str, int]:
    """How many items there are of each status."""
    table = review_items
    query = sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
    if endpoint is not None:
        query = query.where(table.c.endpoint == endpoint)
    found = {status: int(n) for status, n in conn.execute(query)}
    return {status: found.get(status, 0) for status in STATUSES}


def known_rows(conn: sa.Connection, endpoint: str) -> tuple[set[tuple[str, int]],
                                                              dict[str, int]]:
    """(the queued (request id, row) pairs, pending items by reason) of ``endpoint``."""
    table = review_items
    rows = conn.execute(sa.select(table.c.request_id, table.c.row, table.c.reason,
                                  table.c.status).where(table.c.endpoint == endpoint)).all()
    pending = {reason: 0 for reason in REASONS}
    for row in rows:
        if row.status == "pending":
            pending[row.reason] += 1
    return {(r.request_id, r.row) for r in rows}, pending


def _check_open(item: ReviewItem, what: str) -> None:
    if item.status == "committed":
        raise Conflict(f"review item {item.id} was committed to {item.dataset_version} with "
                       f"label {item.label!r}; dataset versions are immutable, so it cannot "
                       f"be {what}: fix the row in a new full version ('loopml data add')")
    if item.batch is not None:
        raise Conflict(f"review item {item.id} is being committed (batch {item.batch}); run "
                       "'loopml review commit' to finish, then review it again if needed")


def set_label(conn: sa.Connection, item: ReviewItem, label: Any, *, user: str,
              now: int) -> ReviewItem:
    """Give ``item`` the ``label`` (replacing an earlier one)."""
    _check_open(item, "relabelled")
    conn.execute(review_items.update().where(review_items.c.id == item.id).values(
        status="labelled", label=dumps(label), labelled_by=user, labelled_at=now))
    return get_item(conn, item.id)


def set_skipped(conn: sa.Connection, item: ReviewItem, *, user: str, now: int) -> ReviewItem:
    """Leave ``item`` out: it is not offered again (labelling it later still works)."""
    _check_open(item, "skipped")
    conn.execute(review_items.update().where(review_items.c.id == item.id).values(
        status="skipped", label=None, labelled_by=user, labelled_at=now))
    return get_item(conn, item.id)


def mark_batch(conn: sa.Connection, ids: Iterable[str], batch: str | None) -> None:
    """Set (or, with None, clear) the commit batch of the labelled items ``ids``."""
    conn.execute(review_items.update().where(review_items.c.id.in_(list(ids)),
                                             review_items.c.status == "labelled")
                 .values(batch=batch))


def batch_items(conn: sa.Connection, batch: str) -> list[ReviewItem]:
    """The labelled items of a commit batch, in queue order."""
    table = review_items
    rows = conn.execute(sa.select(table).where(table.c.batch == batch,
                                               table.c.status == "labelled")
                        .order_by(table.c.at, table.c.request_id, table.c.row))
    return [_item(r) for r in rows]


def feedback_due(conn: sa.Connection, endpoint: str) -> list[ReviewItem]:
    """Committed items whose label is not in the payload log's feedback yet."""
    table = review_items
    rows = conn.execute(sa.select(table).where(table.c.endpoint == endpoint,
                                               table.c.status == "committed",
                                               table.c.feedback_at.is_(None))
                        .order_by(table.c.request_id, table.c.row))
    return [_item(r) for r in rows]


def mark_committed(conn: sa.Connection, batch: str, *, dataset_version: str,
                   now: int) -> int:
    """Mark the items of ``batch`` committed to ``dataset_version``; how many."""
    result = conn.execute(review_items.update().where(review_items.c.batch == batch,
                                                      review_items.c.status == "labelled")
                          .values(status="committed", dataset_version=dataset_version,
                                  committed_at=now))
    return int(result.rowcount)


def mark_feedback(conn: sa.Connection, ids: Iterable[str], *, now: int) -> None:
    conn.execute(review_items.update().where(review_items.c.id.in_(list(ids)))
                 .values(feedback_at=now))


def request_labels(conn: sa.Connection, endpoint: str,
                   request_ids: Iterable[str]) -> dict[str, dict[int, Any]]:
    """The committed labels of each request, by row."""
    table = review_items
    wanted = list(dict.fromkeys(request_ids))
    found: dict[str, dict[int, Any]] = {rid: {} for rid in wanted}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(sa.select(table.c.request_id, table.c.row, table.c.label).where(
            table.c.endpoint == endpoint, table.c.status == "committed",
            table.c.request_id.in_(wanted[start:start + 500])))
        for row in rows:
            found[row.request_id][row.row] = orjson.loads(row.label)
    return found


def endpoints(conn: sa.Connection) -> dict[str, dict[str, int]]:
    """Every endpoint with review items, and how many it has of each status."""
    table = review_items
    found: dict[str, dict[str, int]] = {}
    query = sa.select(table.c.endpoint, table.c.status, sa.func.count()).group_by(
        table.c.endpoint, table.c.status).order_by(table.c.endpoint)
    for endpoint, status, n in conn.execute(query):
        found.setdefault(endpoint, dict.fromkeys(STATUSES, 0))[status] = int(n)
    return found
