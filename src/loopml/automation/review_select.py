"""Which rows of the payload log a person should label: the least confident predictions and a
small, reproducible random sample of the rest.

::

    rows = window_rows(payload_window(requests, feedback=feedback), requests,
                       endpoint="churn-api", classes=(0, 1))
    chosen = choose(rows, known=set(), pending={}, uncertain=20, sample=0.05, seed=0)

Confidence is the probability of the predicted class, from the probabilities the server
logged (``/predict_proba``, or an answer that carries ``probabilities``): with two classes
``max(p, 1 - p)`` of the class-1 probability (so ranking by it ranks by ``|p - 0.5|``, the
margin between the two classes); with more, the top probability (the payload window keeps
only that one, so the margin between the top two is not available). Whether a model has two
classes is known from its classes when given; otherwise the rows say it: on the
predict_proba route every prediction (a class index there) is 0 or 1, and 1 exactly when
the score is above 0.5; on other routes the scored rows predict at most two values. Rows
without a
probability (regression, or a server that logged none) have no confidence and are only
ever sampled at random.

The random sample draws each row with probability ``sample`` by a hash of (seed, request id,
row): the same seed picks the same rows every time, and a row passed over stays passed over
as the log grows. Rows already queued, and rows of requests that already have feedback (a
label), are never chosen.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopml.automation.review_records import NewItem
from loopml.errors import InvalidArgument

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.monitoring.window import PayloadWindow

__all__ = ["choose", "sample_key", "window_rows"]

_PROBA_ROUTE = "predict_proba"


def _requests_by_id(requests: pa.Table) -> dict[str, tuple[str, str, int]]:
    """(route, model, time in ms) of each answered request id (primary and canary rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chosen = requests.filter(pc.is_in(requests.column("role"),
                                      pa.array(["primary", "canary"], pa.string())))
    times = chosen.column("at").cast(pa.int64()).to_pylist()
    return {rid: (route, model, at) for rid, route, model, at in zip(
        chosen.column("request_id").to_pylist(), chosen.column("route").to_pylist(),
        chosen.column("model").to_pylist(), times, strict=True)}


def _two_classes(predictions: Sequence[Any], scores: Sequence[float | None],
                 proba: Sequence[bool], classes: Sequence[Any] | None) -> bool:
    if classes is not None:
        return len(classes) == 2
    answered: set[str] = set()
    for prediction, score, on_route in zip(predictions, scores, proba, strict=True):
        if score is None:
            continue
        if on_route and (isinstance(prediction, bool) or prediction not in (0, 1)
                         or (prediction == 1) != (score > 0.5)):
            return False
        if not on_route:
            answered.add(repr(prediction))
    return len(answered) <= 2


def _score(value: Any) -> float | None:
    if value is None or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def window_rows(window: PayloadWindow, requests: pa.Table, *, endpoint: str,
                classes: Sequence[Any] | None = None) -> list[NewItem]:
    """Every row of ``window`` that has no label yet, as an item to queue (``reason`` is
    left empty). ``requests`` is the table the window was built from (for each request's
    route, model and time); ``classes`` (in the model's order) turn a predict_proba row's
    class index into its class."""
    by_id = _requests_by_id(requests)
    ids: list[str] = window.request_ids.to_pylist()
    predictions = window.predictions.to_pylist()
    scores = ([_score(s) for s in window.scores.to_pylist()] if window.scores is not None
              else [None] * len(ids))
    proba = [by_id.get(rid, ("", "", 0))[0] == _PROBA_ROUTE for rid in ids]
    two = _two_classes(predictions, scores, proba, classes)
    counts: dict[str, int] = {}
    for rid in ids:
        counts[rid] = counts.get(rid, 0) + 1
    features = window.features.to_pylist()
    items: list[NewItem] = []
    seen: dict[str, int] = {}
    for i, (rid, version, label) in enumerate(zip(ids, window.versions.to_pylist(),
                                                  window.labels.to_pylist(), strict=True)):
        row = seen.get(rid, 0)
        seen[rid] = row + 1
        if label is not None:
            continue
        _, model, at = by_id.get(rid, ("", "", 0))
        prediction = predictions[i]
        if proba[i] and classes is not None and isinstance(prediction, int) \
                and 0 <= prediction < len(classes):
            prediction = classes[prediction]
        score = scores[i]
        confidence = None if score is None else (max(score, 1.0 - score) if two else score)
        items.append(NewItem(endpoint=endpoint, request_id=rid, row=row, rows=counts[rid],
                             model=model, version=version, at=at, features=features[i],
                             prediction=prediction, confidence=confidence, reason=""))
    return items


def sample_key(seed: int, request_id: str, row: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, request id, row)."""
    digest = hashlib.blake2b(f"{seed}\x00{request_id}\x00{row}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") / 2.0**64


def _check(uncertain: int, sample: float, max_sample: int) -> None:
    if uncertain < 0 or max_sample < 0:
        raise InvalidArgument(f"uncertain and max_sample are counts of items (>= 0); got "
                              f"{uncertain} and {max_sample}")
    if not 0.0 <= sample <= 1.0:
        raise InvalidArgument(f"sample is the share of the other rows drawn at random, "
                              f"between 0 and 1; got {sample}")


def choose(rows: Sequence[NewItem], *, known: set[tuple[str, int]],
           pending: Mapping[str, int], uncertain: int = 20, sample: float = 0.05,
           max_sample: int = 100, seed: int = 0) -> list[NewItem]:
    """The rows to queue: the least confident until ``uncertain`` uncertain items are
    pending, then rows drawn with probability ``sample`` (by :func:`sample_key`) until
    ``max_sample`` random items are pending. ``known`` holds the (request id, row) pairs
    queued already and ``pending`` the pending items by reason."""
    import dataclasses

    _check(uncertain, sample, max_sample)
    fresh = [r for r in rows if (r.request_id, r.row) not in known]
    scored = sorted((r for r in fresh if r.confidence is not None),
                    key=lambda r: (r.confidence, r.at, r.request_id, r.row))
    room = max(0, uncertain - pending.get("uncertain", 0))
    least = [dataclasses.replace(r, reason="uncertain") for r in scored[:room]]
    taken = {(r.request_id, r.row) for r in least}
    keyed = sorted(((sample_key(seed, r.request_id, r.row), r) for r in fresh
                    if (r.request_id, r.row) not in taken),
                   key=lambda pair: (pair[0], pair[1].request_id, pair[1].row))
    room = max(0, max_sample - pending.get("random", 0))
    drawn = [dataclasses.replace(r, reason="random") for key, r in keyed if key < sample]
    return least + drawn[:room]
