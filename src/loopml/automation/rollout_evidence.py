"""What a shadow or a canary showed, read from a deployment's payload log.

Since the rollout's stage began, the server logged every answer of the deployment (see
:mod:`loopml.deployments.payload`): the primary's rows (role ``primary``), the canary's
(``canary``) and the shadow's (``shadow``, with the request id of the primary's answer to
the same request). :func:`read_evidence` counts, for the challenger and for the version in
place, the requests, the failures (5xx) and the 99th percentile latency; for a shadow, the
share of requests where both answered the same (``agreement``, predictions equal within
``tolerance``); and where feedback labels arrived for answered requests, the online
``metric`` of each side on its labelled requests.

A canary request that failed was answered by the safe version and logged as the primary's;
the server counts such failures toward the deployment's rollback rule, whose automatic
rollback the rollout reads from the deployment's events (see :mod:`.rollout`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from loopml.automation.slices import Predictions, score
from loopml.deployments.payload import list_segments, read_segments

if TYPE_CHECKING:
    from loopml.blobs import BlobStore
    from loopml.store import MetadataStore

__all__ = ["Evidence", "TrafficStats", "read_evidence"]


@dataclass(frozen=True, slots=True)
class TrafficStats:
    """One side's answers: how many, how many failed (5xx), and the p99 latency."""

    requests: int
    errors: int
    p99_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        rate = self.error_rate
        return {"requests": self.requests, "errors": self.errors,
                "error_rate": None if rate is None else round(rate, 6),
                "p99_ms": None if self.p99_ms is None else round(self.p99_ms, 3)}


@dataclass(frozen=True, slots=True)
class Evidence:
    """The challenger's and the champion's traffic, their agreement (shadow) and the online
    metric on labelled requests (None where there was nothing to compare)."""

    challenger: TrafficStats
    champion: TrafficStats
    compared: int = 0
    agreement: float | None = None
    labels: int = 0
    metric: str | None = None
    challenger_metric: float | None = None
    champion_metric: float | None = None

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 6)

        return {"challenger": self.challenger.to_dict(), "champion": self.champion.to_dict(),
                "compared": self.compared, "agreement": rounded(self.agreement),
                "labels": self.labels, "metric": self.metric,
                "challenger_metric": rounded(self.challenger_metric),
                "champion_metric": rounded(self.champion_metric)}


def _stats(rows: list[dict[str, Any]]) -> TrafficStats:
    import numpy as np

    latencies = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
    return TrafficStats(requests=len(rows),
                        errors=sum(1 for r in rows if (r["status"] or 0) >= 500),
                        p99_ms=float(np.percentile(latencies, 99)) if latencies else None)


def _predictions(row: dict[str, Any]) -> list[Any] | None:
    if (row["status"] or 0) >= 400 or not row["response"]:
        return None
    try:
        answer = orjson.loads(row["response"])
    except orjson.JSONDecodeError:
        return None
    found = answer.get("predictions") if isinstance(answer, dict) else None
    return found if isinstance(found, list) else None


def _same(a: list[Any], b: list[Any], tolerance: float) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, list) and isinstance(y, list):
            if not _same(x, y, tolerance):
                return False
        elif isinstance(x, int | float) and isinstance(y, int | float) \
                and not isinstance(x, bool):
            if not math.isclose(x, y, rel_tol=0.0, abs_tol=tolerance):
                return False
        elif x != y:
            return False
    return True


def _agreement(primary: list[dict[str, Any]], shadow: list[dict[str, Any]],
               tolerance: float) -> tuple[int, float | None]:
    answered = {r["request_id"]: p for r in primary
                if (p := _predictions(r)) is not None}
    pairs = [(answered[r["request_id"]], p) for r in shadow
             if r["request_id"] in answered and (p := _predictions(r)) is not None]
    if not pairs:
        return 0, None
    return len(pairs), sum(_same(a, b, tolerance) for a, b in pairs) / len(pairs)


def _labelled(rows: list[dict[str, Any]], labels: dict[str, Any]
              ) -> tuple[list[Any], list[Any]]:
    truth: list[Any] = []
    predicted: list[Any] = []
    for row in rows:
        label = labels.get(row["request_id"])
        answer = _predictions(row)
        if label is None or answer is None or row["route"] != "predict":
            continue
        values = label if isinstance(label, list) else [label]
        if len(values) == len(answer):
            truth += values
            predicted += answer
    return truth, predicted


def _online(metric: str, rows: list[dict[str, Any]], labels: dict[str, Any]
            ) -> tuple[int, float | None]:
    import numpy as np

    truth, predicted = _labelled(rows, labels)
    if not truth:
        return 0, None
    value = score(metric, np.asarray(truth), Predictions(labels=np.asarray(predicted)))
    return len(truth), None if math.isnan(value) else value


def read_evidence(meta: MetadataStore, blobs: BlobStore, *, deployment: str, since: int,
                  role: str, challenger: int, metric: str | None = None,
                  tolerance: float = 0.0) -> Evidence:
    """The evidence of ``deployment`` since ``since`` (ms) for the challenger version
    ``challenger`` serving as ``role`` (``shadow`` or ``canary``)."""
    with meta.read() as conn:
        requests = list_segments(conn, endpoint=deployment, kind="requests", since=since)
        feedback = list_segments(conn, endpoint=deployment, kind="feedback",
                                 since=since) if metric else []
    rows = [r for r in read_segments(blobs, requests).to_pylist()
            if r["at"] is not None and r["at"].timestamp() * 1000 >= since]
    ours = [r for r in rows if r["role"] == role and r["version"] == challenger]
    theirs = [r for r in rows if r["role"] == "primary"]
    compared, agreement = (_agreement(theirs, ours, tolerance) if role == "shadow"
                           else (0, None))
    evidence = Evidence(challenger=_stats(ours), champion=_stats(theirs), compared=compared,
                        agreement=agreement)
    if not metric:
        return evidence
    labels: dict[str, Any] = {}
    for row in read_segments(blobs, feedback, kind="feedback").to_pylist():
        try:
            labels[row["request_id"]] = orjson.loads(row["label"])
        except orjson.JSONDecodeError:
            continue
    count, ours_value = _online(metric, ours, labels)
    other, theirs_value = _online(metric, theirs, labels)
    return Evidence(challenger=evidence.challenger, champion=evidence.champion,
                    compared=compared, agreement=agreement, labels=min(count, other),
                    metric=metric, challenger_metric=ours_value,
                    champion_metric=theirs_value)
