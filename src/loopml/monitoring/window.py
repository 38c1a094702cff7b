"""A window of the payload log as columns: the features sent, the predictions answered, the
labels that came back.

::

    requests = read_segments(blobs, list_segments(conn, endpoint=..., kind="requests"))
    feedback = read_segments(blobs, list_segments(conn, endpoint=..., kind="feedback"),
                             kind="feedback")
    window = payload_window(requests, feedback=feedback)
    window.features            # pyarrow.Table: one row per predicted row, columns as sent
    window.predictions, window.scores, window.labels, window.request_ids, window.versions

A logged request holds one or many rows in any of the request formats (see
:mod:`loopml.models.formats`); every row becomes one row of the window, with its request's id
and model version. Rows sent as arrays have no column names: they are named by ``columns``
(the model's input columns, e.g. the reference profile's) and else by position (``"0"``,
``"1"``, …). A request answered with a non-2xx status or whose request or response body does
not read is skipped and counted by reason in :attr:`PayloadWindow.skipped`.

Scores: on the ``predict_proba`` route the answer is one list of class probabilities per row;
the row's prediction is then the index of the most probable class and its score the
probability of class 1 (two classes) or the highest probability (more). An answer that also
holds ``"probabilities"`` next to ``"predictions"`` scores its rows the same way.

Labels come from ``feedback`` rows (``label`` is JSON text), joined on the request id, the
latest feedback of a request winning. A one-row request takes its label as it is (a list of
one value is that value); a request of n rows takes a list of n labels. Feedback that does not
fit its request is counted in :attr:`PayloadWindow.feedback_skipped`.

Cost: one ``orjson`` parse per body and a few list operations per request; the columns are
built by pyarrow from the parsed values. A column whose values have no common type (junk text
among numbers) is rebuilt as text on a slower path, so that :func:`loopml.monitoring.quality.
conform` can count the junk rather than the window failing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import InvalidArgument
from loopml.models.formats import parse_payload, request_format

__all__ = ["ROLES", "PayloadWindow", "payload_window"]

ROLES = ("primary", "canary", "shadow")
_PROBA_ROUTE = "predict_proba"
_NEEDED = ("request_id", "at", "version", "route", "status", "request", "response", "role")
_ARROW_ERRORS = (pa.ArrowException, OverflowError, TypeError, ValueError)


@dataclass(frozen=True)
class PayloadWindow:
    """The rows of a window of the payload log; all per-row columns have :attr:`rows` values.

    ``scores`` is None when no answer had probabilities, else float64 with nulls for the rows
    without. ``at`` is the (first, last) request time in ms since the epoch (None: no rows).
    ``requests`` counts the requests whose rows are here; ``skipped`` counts the others by
    reason; ``feedback_skipped`` counts the feedback that could not be joined, by reason.
    """

    features: pa.Table
    predictions: pa.Array
    scores: pa.Array | None
    labels: pa.Array
    request_ids: pa.Array
    versions: pa.Array
    at: tuple[int, int] | None
    requests: int
    skipped: dict[str, int] = field(default_factory=dict)
    feedback_skipped: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.features.num_rows)

    @property
    def labelled(self) -> int:
        """Rows with a label."""
        return len(self.labels) - int(self.labels.null_count)


def _text(value: Any) -> str | None:
    """A JSON value as text (a string stays itself): the type every value can take."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _array(values: list[Any]) -> pa.Array:
    """The values as one Arrow array; values of no common type become text."""
    try:
        return pa.array(values)
    except _ARROW_ERRORS:
        return pa.array([_text(v) for v in values], type=pa.string())


def _table(records: list[dict[str, Any]]) -> pa.Table:
    """One row per record, one column per key (in the order keys first appear)."""
    if not records:
        return pa.table({})
    try:
        struct = pa.array(records)
        if pa.types.is_struct(struct.type):
            return pa.Table.from_struct_array(struct)
    except _ARROW_ERRORS:
        pass
    # Some column's values have no common type: build the columns one by one.
    names = list(dict.fromkeys(key for record in records for key in record))
    return pa.table({name: _array([record.get(name) for record in records])
                     for name in names})


class _Names:
    """Column names for rows sent as arrays: ``columns``, then positions."""

    def __init__(self, columns: Sequence[str] | None) -> None:
        self._names = [str(c) for c in columns or ()]

    def __call__(self, width: int) -> list[str]:
        while len(self._names) < width:
            self._names.append(str(len(self._names)))
        return self._names[:width] if width < len(self._names) else self._names


def _records(body: Any, names: _Names) -> list[dict[str, Any]]:
    """The rows of a request body, each as {column: value}; InvalidArgument if it has none."""
    key, _ = request_format(body)
    value = parse_payload(body)
    if isinstance(value, Mapping):  # "inputs": {"column": [values, ...]} or one row
        columns = list(value)
        values = list(value.values())
        if not any(isinstance(v, list) for v in values):
            return [dict(value)]
        if not all(isinstance(v, list) and len(v) == len(values[0]) for v in values):
            raise InvalidArgument(f"{key}: columns of different lengths")
        return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
    if not isinstance(value, list) or not value:
        raise InvalidArgument(f"{key} holds no rows")
    if all(type(row) is dict for row in value):
        return value  # type: ignore[no-any-return]
    if any(isinstance(row, Mapping) for row in value):
        raise InvalidArgument(f"{key} mixes objects and arrays")
    rows = [row if type(row) is list else [row] for row in value]
    return [dict(zip(names(len(row)), row, strict=True)) for row in rows]


def _answers(response: Any, rows: int, proba: bool) -> tuple[list[Any], list[Any] | None]:
    """(one prediction per row, one list of probabilities per row or None)."""
    predictions = response.get("predictions") if isinstance(response, dict) else response
    probabilities = response.get("probabilities") if isinstance(response, dict) else None
    if rows == 1 and not isinstance(predictions, list):
        predictions = [predictions]
    if not isinstance(predictions, list) or len(predictions) != rows:
        raise InvalidArgument("the predictions do not match the rows of the request")
    if proba:
        return predictions, predictions
    if isinstance(probabilities, list) and len(probabilities) == rows:
        return predictions, probabilities
    return predictions, None


def _latest_labels(feedback: pa.Table | None) -> dict[str, str]:
    """Label JSON text by request id, the latest feedback of each request winning."""
    if feedback is None or feedback.num_rows == 0:
        return {}
    missing = [c for c in ("request_id", "at", "label") if c not in feedback.column_names]
    if missing:
        raise InvalidArgument(f"the feedback table lacks column(s) {', '.join(missing)}; "
                              "read it with read_segments(..., kind='feedback')")
    order = pc.sort_indices(feedback.select(["at"]), sort_keys=[("at", "ascending")])
    ordered = feedback.select(["request_id", "label"]).take(order)
    return dict(zip(ordered.column(0).to_pylist(), ordered.column(1).to_pylist(), strict=True))


class _Builder:
    """The per-row columns, grown request by request."""

    def __init__(self, columns: Sequence[str] | None, labels: dict[str, str]) -> None:
        self.names = _Names(columns)
        self.labels = labels
        self.records: list[dict[str, Any]] = []
        self.predictions: list[Any] = []
        self.label_values: list[Any] = []
        self.proba_rows: list[Any] = []
        self.proba_at: list[int] = []
        self.proba_route_at: list[int] = []
        self.kept: list[int] = []
        self.counts: list[int] = []
        self.skipped: Counter[str] = Counter()
        self.feedback_skipped: Counter[str] = Counter()

    def add(self, index: int, rid: str, request: str, response: str | None,
            proba: bool) -> None:
        try:
            records = _records(orjson.loads(request), self.names)
        except orjson.JSONDecodeError:
            self.skipped["request body is not JSON"] += 1
            return
        except (InvalidArgument, TypeError, ValueError):
            self.skipped["request body holds no rows in a known format"] += 1
            return
        try:
            predictions, probabilities = _answers(orjson.loads(response or b""),
                                                  len(records), proba)
        except orjson.JSONDecodeError:
            self.skipped["response body is not JSON"] += 1
            return
        except InvalidArgument:
            self.skipped["predictions do not match the rows of the request"] += 1
            return
        start, rows = len(self.records), len(records)
        if probabilities is not None:
            self.proba_rows.extend(probabilities)
            self.proba_at.extend(range(start, start + rows))
            if proba:
                self.proba_route_at.extend(range(start, start + rows))
        self.records.extend(records)
        self.predictions.extend(predictions)
        self.label_values.extend(self._label(rid, rows))
        self.kept.append(index)
        self.counts.append(rows)

    def _label(self, rid: str, rows: int) -> list[Any]:
        text = self.labels.get(rid)
        if text is None:
            return [None] * rows
        try:
            label = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.feedback_skipped["label is not JSON"] += 1
            return [None] * rows
        if rows == 1:
            return [label[0] if isinstance(label, list) and len(label) == 1 else label]
        if isinstance(label, list) and len(label) == rows:
            return label
        self.feedback_skipped["label does not hold one value per row of its request"] += 1
        return [None] * rows

    def scores(self) -> pa.Array | None:
        """Scores of the rows with probabilities (null for the others); the predict_proba
        rows' predictions become the index of their most probable class. Probabilities that
        are not one list of numbers per row (of one length) leave every score null."""
        if not self.proba_rows:
            return None
        scores = np.full(len(self.records), np.nan)
        try:
            probabilities = np.asarray(self.proba_rows, dtype=np.float64)
        except (ValueError, TypeError):
            return pa.array(scores, from_pandas=True)
        if probabilities.ndim == 1:  # one probability per row: that of class 1
            probabilities = np.stack([1.0 - probabilities, probabilities], axis=1)
        if probabilities.ndim != 2 or probabilities.shape[1] == 0:
            return pa.array(scores, from_pandas=True)
        where = np.asarray(self.proba_at, dtype=np.intp)
        scores[where] = probabilities[:, 1] if probabilities.shape[1] == 2 \
            else probabilities.max(axis=1)
        if self.proba_route_at:
            on_route = np.isin(where, np.asarray(self.proba_route_at, dtype=np.intp))
            best = probabilities.argmax(axis=1)
            for row, label in zip(where[on_route].tolist(), best[on_route].tolist(),
                                  strict=True):
                self.predictions[row] = label
        return pa.array(scores, from_pandas=True)


def _selected(requests: pa.Table, roles: Iterable[str]) -> tuple[pa.Table, Counter[str]]:
    """The requests of ``roles``, answered with a 2xx status; the others counted by reason."""
    roles = list(roles)
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InvalidArgument(f"unknown role(s) {', '.join(map(repr, unknown))}; roles are "
                              f"{', '.join(ROLES)}")
    missing = [c for c in _NEEDED if c not in requests.column_names]
    if missing:
        raise InvalidArgument(f"the requests table lacks column(s) {', '.join(missing)}; read "
                              "it with read_segments(..., kind='requests')")
    requests = requests.filter(pc.is_in(requests.column("role"), pa.array(roles, pa.string())))
    status = requests.column("status").to_numpy(zero_copy_only=False)
    answered = (status >= 200) & (status < 300)
    skipped: Counter[str] = Counter()
    failed = int(np.count_nonzero(~answered))
    if failed:
        skipped["answered with a non-2xx status"] = failed
    return requests.filter(pa.array(answered)), skipped


def _bodies(requests: pa.Table, roles: Sequence[str], everything: pa.Table) -> list[Any]:
    """The request body of each row; a shadow's row takes its request's body."""
    bodies: list[Any] = requests.column("request").to_pylist()
    if "shadow" not in roles:
        return bodies
    sent = everything.filter(pc.is_valid(everything.column("request")))
    by_id = dict(zip(sent.column("request_id").to_pylist(), sent.column("request").to_pylist(),
                     strict=True))
    ids = requests.column("request_id").to_pylist()
    return [by_id.get(rid) if body is None else body
            for rid, body in zip(ids, bodies, strict=True)]


def payload_window(requests: pa.Table, *, feedback: pa.Table | None = None,
                   roles: Sequence[str] = ("primary", "canary"),
                   columns: Sequence[str] | None = None) -> PayloadWindow:
    """The rows of the logged ``requests`` of ``roles``, with labels joined from ``feedback``.

    ``requests`` and ``feedback`` are tables of the payload log's ``requests`` and
    ``feedback`` segments (see :func:`loopml.deployments.payload.read_segments`). ``columns``
    names the columns of rows sent as arrays (by position).
    """
    roles = tuple(roles)
    chosen, skipped = _selected(requests, roles)
    builder = _Builder(columns, _latest_labels(feedback))
    builder.skipped.update(skipped)
    ids = chosen.column("request_id").to_pylist()
    responses = chosen.column("response").to_pylist()
    routes = chosen.column("route").to_pylist()
    for index, (rid, request, response, route) in enumerate(zip(
            ids, _bodies(chosen, roles, requests), responses, routes, strict=True)):
        if request is None:
            builder.skipped["no request body"] += 1
            continue
        builder.add(index, rid, request, response, route == _PROBA_ROUTE)
    scores = builder.scores()
    origin = pa.array(np.repeat(np.asarray(builder.kept, dtype=np.int64),
                                np.asarray(builder.counts, dtype=np.int64)))
    at = None
    if builder.kept:
        times = chosen.column("at").take(pa.array(builder.kept, pa.int64()))
        span = pc.min_max(times.cast(pa.int64()))
        at = (span["min"].as_py(), span["max"].as_py())
    return PayloadWindow(
        features=_table(builder.records), predictions=_array(builder.predictions),
        scores=scores, labels=_array(builder.label_values),
        request_ids=chosen.column("request_id").take(origin).combine_chunks(),
        versions=chosen.column("version").take(origin).combine_chunks(), at=at,
        requests=len(builder.kept), skipped=dict(builder.skipped),
        feedback_skipped=dict(builder.feedback_skipped))
