"""The table of the human review queue (to be created by a migration after 0010).

``review_items`` holds one row per predicted row a person is asked to confirm or correct:
where it came from in the payload log (endpoint, request id, the row's index within its
request and the request's row count, the model version that answered, the request's time),
what was asked and answered (``features`` and ``prediction``, JSON), how sure the model was
(``confidence``: the probability of the predicted class; NULL without probabilities) and why
it was queued (``reason``: ``uncertain``, ``random`` or ``manual``).

Its life: ``pending`` → ``labelled`` (``label`` JSON, by whom, when; labelling again
replaces it) or ``skipped`` → ``committed`` (appended to ``dataset_version``). ``batch`` is
set just before the rows are appended, so that a commit interrupted between the append and
the status change is finished, not appended twice. ``feedback_at`` says when the label was
written to the payload log's ``feedback`` segments (NULL: still to write).

The id is derived from (endpoint, request id, row), so queueing a row twice is a no-op.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopml.store.schema import Millis, metadata

__all__ = ["review_items"]

review_items = sa.Table(
    "review_items", metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("endpoint", sa.String(256), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("at", Millis, nullable=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("prediction", sa.Text, nullable=False),
    sa.Column("confidence", sa.Float, nullable=True),
    # uncertain | random | manual
    sa.Column("reason", sa.String(16), nullable=False),
    # pending | labelled | skipped | committed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("labelled_by", sa.String(256), nullable=False, server_default=""),
    sa.Column("labelled_at", Millis, nullable=True),
    sa.Column("batch", sa.String(32), nullable=True),
    sa.Column("dataset_version", sa.String(300), nullable=True),
    sa.Column("committed_at", Millis, nullable=True),
    sa.Column("feedback_at", Millis, nullable=True),
    sa.Column("queued_at", Millis, nullable=False),
    sa.UniqueConstraint("endpoint", "request_id", "row"),
    sa.Index(None, "endpoint", "status"),
)
