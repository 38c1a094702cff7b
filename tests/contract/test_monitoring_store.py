"""Monitoring records on every metadata backend (SQLite, PostgreSQL): checked windows and
their time series, alerts polled by endpoint and id, and reference profiles of versions."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from loopml.errors import InvalidArgument
from loopml.monitoring import records
from loopml.monitoring.results import (
    ColumnDrift,
    DriftReport,
    MonitorReport,
    PerformanceReport,
    QualityIssue,
    QualityReport,
)
from loopml.registry import records as registry
from loopml.store import MetadataStore


@pytest.fixture
def meta(database_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(database_url)
    yield store
    store.close()


def _column(name: str, role: str, drifted: bool, effect: float) -> ColumnDrift:
    return ColumnDrift(column=name, kind="numeric", role=role,  # type: ignore[arg-type]
                       reference_count=1000, current_count=500,
                       statistics={"ks": 0.3, "ks_p_value": 1e-9, "wasserstein": effect,
                                   "psi": math.inf},
                       p_value=1e-8, effect="wasserstein", effect_value=effect, threshold=0.1,
                       drifted=drifted, reason="because", weight=0.5)


def _report(window: tuple[int, int], *, drifted: bool = True) -> MonitorReport:
    drift = DriftReport(columns=(_column("age", "feature", drifted, 0.6),
                                 _column("income", "feature", False, 0.01),
                                 _column("prediction", "prediction", drifted, 0.4)),
                        score=0.5 if drifted else 0.0, threshold=0.3, drifted=drifted,
                        rule="rule", reference_rows=1000, current_rows=500)
    quality = QualityReport(rows=500, issues=(QualityIssue(
        column="age", kind="invalid_value", count=3, total=500, message="3 junk values",
        examples=("abc",), rows=(1, 2, 3)),))
    performance = PerformanceReport(task="classification", labelled=200, rows=500,
                                    metrics={"accuracy": 0.7, "f1": float("nan")},
                                    baseline={"accuracy": 0.9}, degraded=("accuracy",),
                                    message="accuracy 0.7 < 0.9")
    return MonitorReport(reference="churn/3 reference", current="window", rows=500,
                         drift=drift, quality=quality, performance=performance, window=window,
                         deployment="churn-api", model_version="churn/3")


def test_reports_are_stored_as_a_queryable_time_series(meta: MetadataStore) -> None:
    with meta.write() as conn:
        first = records.record_report(conn, endpoint="churn-api",
                                      report=_report((1_000, 2_000), drifted=False),
                                      report_blob="a" * 64, profile_blob="b" * 64,
                                      reference_blob="c" * 64)
        second = records.record_report(conn, endpoint="churn-api",
                                       report=_report((2_000, 3_000)), report_blob="d" * 64)
        records.record_report(conn, endpoint="other", report=_report((2_000, 3_000)),
                              report_blob="e" * 64)
    assert (first.model, first.version, first.failed) == ("churn", 3, ("quality",
                                                                        "performance"))
    assert second.failed == ("drift", "quality", "performance")
    with meta.read() as conn:
        age = records.query_results(conn, "churn-api", kind="drift", column="age",
                                    statistic="wasserstein")
        assert [(r.window_end, r.value, r.threshold, r.passed) for r in age] == [
            (2_000, 0.6, 0.1, True), (3_000, 0.6, 0.1, False)]
        psi = records.query_results(conn, "churn-api", column="age", statistic="psi")
        assert [r.value for r in psi] == [None, None]  # infinities are stored as null
        score = records.query_results(conn, "churn-api", kind="drift", column="",
                                      statistic="score", since=2_500)
        assert [(r.value, r.passed, r.report_id) for r in score] == [(0.5, False, second.id)]
        prediction = records.query_results(conn, "churn-api", kind="prediction_drift")
        assert {r.column for r in prediction} == {"prediction"}
        junk = records.query_results(conn, "churn-api", kind="quality", column="age")
        assert [(r.statistic, r.value, r.passed) for r in junk] == [
            ("invalid_value", 3.0, False)] * 2
        accuracy = records.query_results(conn, "churn-api", kind="performance",
                                         statistic="accuracy", until=2_000)
        assert [(r.value, r.threshold, r.passed) for r in accuracy] == [(0.7, 0.9, False)]
        assert len(records.query_results(conn, "churn-api", limit=3)) == 3
        assert records.query_results(conn, "nothing") == []
        with pytest.raises(InvalidArgument, match="unknown check 'drfit'"):
            records.query_results(conn, "churn-api", kind="drfit")
        assert [r.id for r in records.list_reports(conn, "churn-api")] == [first.id,
                                                                           second.id]
        assert records.get_report(conn, first.id) == first
        assert records.get_report(conn, 10**9) is None


def test_empty_window_report_keeps_only_its_row_count(meta: MetadataStore) -> None:
    empty = MonitorReport(reference="r", current="c", rows=0, drift=None, quality=None,
                          window=(5, 6), deployment="api")
    with meta.write() as conn:
        stored = records.record_report(conn, endpoint="api", report=empty, report_blob="f" * 64)
        assert stored.failed == () and stored.drift_score is None
        points = records.query_results(conn, "api")
    assert [(p.kind, p.statistic, p.value) for p in points] == [("window", "rows", 0.0)]
    with meta.write() as conn, pytest.raises(InvalidArgument, match="time window"):
        records.record_report(conn, endpoint="api", report_blob="f" * 64,
                              report=MonitorReport(reference="r", current="c", rows=0,
                                                   drift=None, quality=None))


def test_alerts_are_polled_by_endpoint_and_cursor(meta: MetadataStore) -> None:
    with meta.write() as conn:
        made = [records.insert_alert(conn, endpoint=endpoint, kind=kind, message=f"m{i}",
                                     window=(10, 20), model="churn", version=3,
                                     column="age", statistic="wasserstein", value=0.6,
                                     threshold=0.1)
                for i, (endpoint, kind) in enumerate([("api", "drift"), ("api", "quality"),
                                                      ("other", "drift"),
                                                      ("api", "performance")])]
        records.mark_delivered(conn, [made[0].id, made[1].id], {"log": "ok",
                                                                "webhook 1 (h)": "error: x"})
        with pytest.raises(InvalidArgument, match="unknown check"):
            records.insert_alert(conn, endpoint="api", kind="bogus", message="", window=(0, 0))
    with meta.read() as conn:
        ours = records.list_alerts(conn, endpoint="api")
        assert [a.message for a in ours] == ["m0", "m1", "m3"]
        assert ours[0].delivered == {"log": "ok", "webhook 1 (h)": "error: x"}
        assert ours[2].delivered == {}
        assert (ours[0].column, ours[0].value, ours[0].version) == ("age", 0.6, 3)
        assert [a.message for a in records.list_alerts(conn, endpoint="api",
                                                       after=made[1].id)] == ["m3"]
        assert [a.message for a in records.list_alerts(conn, kind="drift")] == ["m0", "m2"]
        assert [a.message for a in records.list_alerts(conn, limit=2)] == ["m2", "m3"]
        assert records.list_alerts(conn, since=made[3].created_at + 60_000) == []


def test_reference_of_a_model_version_is_replaced(meta: MetadataStore) -> None:
    with meta.write() as conn:
        version = registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn")
        assert records.get_reference(conn, version.id) is None
        records.put_reference(conn, version.id, profile="a" * 64, roles={"p": "prediction"},
                              importance=None, source="train.parquet", created_by="ana")
        again = records.put_reference(conn, version.id, profile="b" * 64,
                                      roles={"prediction": "prediction", "y": "target"},
                                      importance={"age": 0.75, "plan": 0.25},
                                      source="churn@2")
    with meta.read() as conn:
        found = records.get_reference(conn, version.id)
    assert found == again
    assert (found.profile, found.roles, found.importance, found.source) == (
        "b" * 64, {"prediction": "prediction", "y": "target"}, {"age": 0.75, "plan": 0.25},
        "churn@2")
