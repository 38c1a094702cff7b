"""Human in the loop: a review queue of served predictions that a person confirms or corrects.

::

    queue = ReviewQueue("churn-api")            # a deployment (or a served NAME@ALIAS)
    queue.refresh(uncertain=20, sample=0.05)    # queue the least confident rows + a sample
    for item in queue.list(limit=20):           # pending items, least confident first
        print(item.id, item.confidence, item.prediction, item.features)
    queue.label(item.id, 1, user="ana")         # or queue.confirm(item.id), queue.skip(...)
    queue.commit()                              # a new dataset version + feedback + event

Where items come from (:mod:`~loopml.automation.review_select`): the endpoint's payload log,
read as a window (:func:`loopml.monitoring.window.payload_window`); the rows the model was
least sure of, and a reproducible random sample of the others, never a row queued before nor
a request that has feedback already. A request not in the queue can still be labelled by its
request id: its rows are queued (reason ``manual``) on the spot.

Labels are checked against the model's classes when they are known, else converted to the
label column's type (:mod:`~loopml.automation.review_target`, which also says how the dataset
and its label column are found). Labelling an item again replaces its label until it is
committed: one row per item reaches the dataset, with the latest label. A committed item
cannot be relabelled (:class:`~loopml.errors.Conflict`): its row is in an immutable dataset
version, so a correction is a new full version (``loopml data add``). ``commit_every=N``
commits on its own once N items wait.

:meth:`ReviewQueue.commit` (:mod:`~loopml.automation.review_commit`) appends the labelled rows
to the dataset as a new version (what the new-data trigger watches), writes the labels as
payload log feedback (what performance monitoring reads) and records a ``labels_added`` event.

The methods return frozen values with ``to_dict()``: a web page lists pending items, shows
one with its features, prediction and confidence, and posts a label through the same calls.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml.automation import review_records as records
from loopml.automation.review_commit import CommitResult, commit_labels
from loopml.automation.review_records import ReviewItem
from loopml.automation.review_target import ReviewTarget, coerce_label, model_of, resolve_target
from loopml.errors import InvalidArgument, LoopmlError, NotFound
from loopml.tracking.records import now_ms

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.client.base import ClientBase
    from loopml.registry.entities import ModelVersion

__all__ = ["CommitResult", "RefreshResult", "ReviewItem", "ReviewQueue", "ReviewTarget",
           "get_review_item", "review_endpoints"]


@dataclass(frozen=True)
class RefreshResult:
    """What :meth:`ReviewQueue.refresh` read and queued: the unlabelled rows it considered,
    the items it added by reason, the items now pending, and the logged requests the window
    skipped, by reason."""

    rows: int
    uncertain: int
    random: int
    pending: int
    skipped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "uncertain": self.uncertain, "random": self.random,
                "pending": self.pending, "skipped": dict(self.skipped)}


def _stores(client: ClientBase | None) -> ClientBase:
    from loopml.monitoring.reference import use_client

    return use_client(client)


def _user(user: str | None) -> str:
    from loopml.identity import current_user

    return current_user() if user is None else user


class ReviewQueue:
    """The review queue of one endpoint of the payload log (a deployment's name, or the
    ``NAME@ALIAS`` a plain ``loopml serve`` logs under).

    ``model``, ``dataset``, ``target`` and ``classes`` override what is otherwise read from
    the served model version and its lineage; ``fill`` gives values for dataset columns the
    requests do not hold (e.g. ``{"split": "train"}``); ``commit_every`` commits once that
    many labelled items wait (0: only on :meth:`commit`).
    """

    def __init__(self, endpoint: str, *, client: ClientBase | None = None,
                 model: str | None = None, dataset: str | None = None,
                 target: str | None = None, classes: Sequence[Any] | None = None,
                 fill: Mapping[str, Any] | None = None, commit_every: int = 0) -> None:
        if not isinstance(endpoint, str) or not endpoint:
            raise InvalidArgument(f"the endpoint is a deployment's name or a served model "
                                  f"reference such as churn@production; got {endpoint!r}")
        if commit_every < 0:
            raise InvalidArgument(f"commit_every must be >= 0 (0: commit by hand), got "
                                  f"{commit_every}")
        self.endpoint = endpoint
        self.stores = _stores(client)
        self._model, self._dataset, self._target = model, dataset, target
        self._classes = None if classes is None else tuple(classes)
        self.fill = dict(fill or {})
        self.commit_every = commit_every

    # -- what the labels become ---------------------------------------------------------
    @functools.cached_property
    def model_version(self) -> ModelVersion:
        """The model version the endpoint serves (or ``model``)."""
        return model_of(self.stores, self.endpoint, self._model)

    @functools.cached_property
    def target(self) -> ReviewTarget:
        """The dataset, label column and classes labels go to; InvalidArgument saying what
        to pass when they cannot be found."""
        return resolve_target(self.stores, self.model_version, dataset=self._dataset,
                              target=self._target, classes=self._classes)

    def _known_target(self) -> ReviewTarget | None:
        try:
            return self.target
        except LoopmlError:
            return None

    def _input_columns(self) -> list[str] | None:
        try:
            signature = self.model_version.signature or {}
        except LoopmlError:
            return None
        columns = (signature.get("inputs") or {}).get("columns") or ()
        return [str(c.get("name")) for c in columns] or None

    # -- filling the queue --------------------------------------------------------------
    def _log(self, since: int | None) -> tuple[pa.Table, pa.Table]:
        from loopml.deployments.payload import list_segments, read_segments

        with self.stores.meta.read() as conn:
            requests = list_segments(conn, endpoint=self.endpoint, since=since)
            feedback = list_segments(conn, endpoint=self.endpoint, kind="feedback",
                                     since=since)
            if not requests and since is None and not records.count_items(
                    conn, endpoint=self.endpoint)["pending"]:
                self._no_log(conn)
        return (read_segments(self.stores.blobs, requests),
                read_segments(self.stores.blobs, feedback, kind="feedback"))

    def _no_log(self, conn: Any) -> None:
        import sqlalchemy as sa

        from loopml.deployments.tables import payload_segments

        names = conn.execute(sa.select(payload_segments.c.endpoint).distinct()
                             .order_by(payload_segments.c.endpoint).limit(20)).scalars().all()
        raise NotFound(f"the payload log has no requests of {self.endpoint!r}; endpoints "
                       f"with a log: {', '.join(names) or 'none yet (serve a model first)'}")

    def _candidates(self, since: int | None) -> tuple[list[records.NewItem], dict[str, int]]:
        from loopml.automation.review_select import window_rows
        from loopml.monitoring.window import payload_window

        requests, feedback = self._log(since)
        window = payload_window(requests, feedback=feedback, columns=self._input_columns())
        known = self._known_target()
        rows = window_rows(window, requests, endpoint=self.endpoint,
                           classes=None if known is None else known.classes)
        return rows, window.skipped

    def refresh(self, *, uncertain: int = 20, sample: float = 0.05, max_sample: int = 100,
                seed: int = 0, since: int | None = None) -> RefreshResult:
        """Queue the least confident rows until ``uncertain`` uncertain items are pending,
        and rows drawn with probability ``sample`` (reproducibly, by ``seed``) until
        ``max_sample`` random ones are; from the requests logged since ``since`` (ms since
        the epoch; None: the whole log)."""
        from loopml.automation.review_select import choose

        rows, skipped = self._candidates(since)
        with self.stores.meta.write() as conn:
            known, pending = records.known_rows(conn, self.endpoint)
            chosen = choose(rows, known=known, pending=pending, uncertain=uncertain,
                            sample=sample, max_sample=max_sample, seed=seed)
            records.insert_items(conn, chosen, now=now_ms())
            waiting = records.count_items(conn, endpoint=self.endpoint)["pending"]
        return RefreshResult(rows=len(rows),
                             uncertain=sum(1 for r in chosen if r.reason == "uncertain"),
                             random=sum(1 for r in chosen if r.reason == "random"),
                             pending=waiting, skipped=skipped)

    # -- reading ------------------------------------------------------------------------
    def list(self, *, status: str | Sequence[str] | None = "pending", limit: int = 20,
             offset: int = 0) -> list[ReviewItem]:
        """Items of ``status`` (None: all), uncertain first (least confident first), then
        manual, then the random sample."""
        if limit < 1 or offset < 0:
            raise InvalidArgument(f"limit must be >= 1 and offset >= 0; got {limit}, {offset}")
        with self.stores.meta.read() as conn:
            return records.list_items(conn, endpoint=self.endpoint, status=status,
                                      limit=limit, offset=offset)

    def counts(self) -> dict[str, int]:
        """How many items there are of each status."""
        with self.stores.meta.read() as conn:
            return records.count_items(conn, endpoint=self.endpoint)

    def get(self, item: str, *, row: int | None = None) -> ReviewItem:
        """An item by its id, or by the request id of its row (``row``: which row of a
        request of several); a logged request not in the queue is queued first."""
        with self.stores.meta.read() as conn:
            try:
                found = records.get_item(conn, item)
            except NotFound:
                found = None
            if found is not None:
                if found.endpoint != self.endpoint:
                    raise NotFound(f"review item {item} belongs to {found.endpoint!r}, not "
                                   f"{self.endpoint!r}")
                return found
            rows = records.find_items(conn, self.endpoint, item)
        if not rows:
            rows = self._enqueue(item)
        return self._pick(item, rows, row)

    def _pick(self, request_id: str, rows: Sequence[ReviewItem], row: int | None
              ) -> ReviewItem:
        if row is None and len(rows) == 1:
            return rows[0]
        chosen = [r for r in rows if r.row == row]
        if row is not None and chosen:
            return chosen[0]
        there = ", ".join(f"row {r.row}: item {r.id}" for r in rows)
        raise InvalidArgument(f"request {request_id!r} has {rows[0].rows} rows ({there}); "
                              "give the item id, or the row (row=..., --row N)")

    def _enqueue(self, request_id: str) -> builtins.list[ReviewItem]:
        import dataclasses

        rows, _ = self._candidates(None)
        mine = [dataclasses.replace(r, reason="manual") for r in rows
                if r.request_id == request_id]
        if not mine:
            raise NotFound(f"no review item or logged request {request_id!r} of "
                           f"{self.endpoint!r} without a label; list the items with "
                           f"'loopml review list {self.endpoint}'")
        with self.stores.meta.write() as conn:
            records.insert_items(conn, mine, now=now_ms())
            return records.find_items(conn, self.endpoint, request_id)

    # -- labelling ----------------------------------------------------------------------
    def label(self, item: str, label: Any, *, row: int | None = None,
              user: str | None = None) -> ReviewItem:
        """Give an item (by id, or by request id and ``row``) its true ``label``: checked
        against the classes when known, else converted to the label column's type."""
        found = self.get(item, row=row)
        value = coerce_label(label, self._known_target())
        with self.stores.meta.write() as conn:
            labelled = records.set_label(conn, found, value, user=_user(user), now=now_ms())
        if self.commit_every and self.counts()["labelled"] >= self.commit_every:
            self.commit(user=user)
            return self.get(labelled.id)
        return labelled

    def confirm(self, item: str, *, row: int | None = None,
                user: str | None = None) -> ReviewItem:
        """Label an item with its prediction."""
        found = self.get(item, row=row)
        return self.label(found.id, found.prediction, user=user)

    def skip(self, item: str, *, row: int | None = None, user: str | None = None
             ) -> ReviewItem:
        """Leave an item out: it is not offered again."""
        found = self.get(item, row=row)
        with self.stores.meta.write() as conn:
            return records.set_skipped(conn, found, user=_user(user), now=now_ms())

    def commit(self, *, user: str | None = None) -> CommitResult:
        """Append the labelled items to the dataset as a new version, write their labels as
        feedback and record a ``labels_added`` event (see
        :mod:`~loopml.automation.review_commit`)."""
        return commit_labels(self.stores, self.endpoint, self.target,
                             model=self.model_version, user=_user(user), fill=self.fill)


def get_review_item(item: str, *, client: ClientBase | None = None) -> ReviewItem:
    """A review item by id, whatever its endpoint."""
    with _stores(client).meta.read() as conn:
        return records.get_item(conn, item)


def review_endpoints(*, client: ClientBase | None = None) -> dict[str, dict[str, int]]:
    """The endpoints with review items, and their counts of items by status."""
    with _stores(client).meta.read() as conn:
        return records.endpoints(conn)
