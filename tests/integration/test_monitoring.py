"""Monitoring a deployment for real: a registered scikit-learn model, its reference profile,
payload log segments written by the serving code's own sink (shifted, steady, broken and
missing traffic, delayed labels), then ``monitor``: drift, quality, performance, the stored
time series, alert rows and a webhook delivered to a local HTTP server."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.deployments.api import Deployments
from loopml.deployments.payload import SegmentSink
from loopml.errors import InvalidArgument, NotFound
from loopml.monitoring.alerts import list_alerts, webhook_urls
from loopml.monitoring.comparison import compare
from loopml.monitoring.records import list_reports, query_results
from loopml.monitoring.reference import reference_profile, set_reference
from loopml.monitoring.run import check_deployment, list_results, monitor, parse_window
from loopml.profiling import profile_table

FEATURES = ["f0", "f1", "f2"]
NOW = 1_700_000_000_000
MINUTE = 60_000


def _settings(home: Path, **overrides: Any) -> loopml.Settings:
    return loopml.load_settings(home=home, progress=False, environ={},
                                config_file=home / "none.toml", **overrides)


def _frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    frame["f0"] += shift
    return frame


@dataclasses.dataclass
class Setup:
    home: Path
    model: LogisticRegression
    accuracy: float
    run_id: str

    def client(self, **overrides: Any) -> loopml.Client:
        return loopml.Client(_settings(self.home, **overrides))

    def deploy(self, name: str, model: str = "churn/1") -> None:
        client = self.client()
        Deployments(client.meta, actor="test").create(name, model=model)
        client.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """churn/1 and churn/2 trained by one run that read churn-train@1 (val_accuracy logged);
    churn/1 has a reference with predictions and target, churn/2 only its lineage."""
    home = tmp_path_factory.mktemp("monitoring") / ".loopml"
    frame = _frame(2_000, seed=1)
    frame["churned"] = (frame["f0"] + frame["f1"] > 0).astype(int)
    model = LogisticRegression().fit(frame[FEATURES], frame["churned"])
    accuracy = float((model.predict(frame[FEATURES]) == frame["churned"]).mean())
    csv = home.parent / "train.csv"
    frame.to_csv(csv, index=False)
    client = loopml.Client(_settings(home))
    client.add_dataset(csv, "churn-train")
    with client.start_run("monitoring") as run:
        client.use_dataset(run.id, "churn-train@1")
        run.log_metrics({"val_accuracy": accuracy})
        client.log_model(run.id, model, input_example=frame[FEATURES].head(2))
    for _ in range(2):
        client.register_model(f"runs:/{run.id}/model", "churn")
    set_reference("churn/1", frame, predictions=model.predict(frame[FEATURES]),
                  target="churned", client=client)
    client.close()
    return Setup(home, model, accuracy, run.id)


def _log(setup: Setup, endpoint: str, frame: pd.DataFrame, *, start: int = NOW - 50 * MINUTE,
         labels: dict[int, Any] | None = None, version: int = 1,
         role: str = "primary") -> list[str]:
    """Write ``frame`` as one-row requests (answered by churn/``version``) and ``labels`` as
    feedback, through the serving code's segment sink; the request ids."""
    client = setup.client()
    sink = SegmentSink(blobs=client.blobs, meta=lambda: client.meta, endpoint=endpoint,
                       model="churn", row_group_rows=100)
    numeric = frame.reindex(columns=FEATURES).apply(pd.to_numeric, errors="coerce")
    predictions = setup.model.predict(numeric.fillna(0.0))
    rows, ids = [], []
    for i, record in enumerate(frame.to_dict(orient="records")):
        rid = f"{endpoint}-{role}-{start}-{i}"
        ids.append(rid)
        answer = {"predictions": [int(predictions[i])], "model": "churn", "version": version,
                  "request_id": rid}
        rows.append((rid, start + i * 100, endpoint, "churn", version, "predict", 200, 1.0, 1,
                     json.dumps({"dataframe_records": [record]}), json.dumps(answer), None,
                     role))
    sink("requests", rows)
    if labels:
        sink("feedback", [(ids[i], start + 60 * MINUTE, endpoint, json.dumps(label))
                          for i, label in labels.items()])
    client.close()
    return ids


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_shifted_traffic_drifts_alerts_and_is_stored(setup: Setup, webhook: str) -> None:
    setup.deploy("shifted-api")
    traffic = _frame(600, seed=2, shift=1.5).astype(object)
    for row in (5, 17, 230):
        traffic.loc[row, "f2"] = "n/a"  # junk in a numeric column
    truth = ((traffic["f0"].apply(pd.to_numeric, errors="coerce")
              + traffic["f1"]) > 0).astype(int)
    labels = {i: int(1 - truth[i]) for i in range(0, 600, 3)}  # every third, all wrong
    _log(setup, "shifted-api", traffic, labels=labels)
    unused = f"http://127.0.0.1:{_closed_port()}/nobody"
    client = setup.client(monitor_webhooks=f"{webhook}, {unused}")
    done = check_deployment("shifted-api", window="1h", now=NOW, client=client)
    report = done.report
    assert report.rows == 600 and report.model_version == "churn/1"
    assert report.deployment == "shifted-api" and report.window == (NOW - 60 * MINUTE, NOW)
    assert "600 request(s) of churn/1" in report.current
    assert report.drift is not None and report.drift.drifted
    assert report.drift.drifted_columns[:1] == ["f0"]
    assert not report.drift["f1"].drifted and not report.drift["f2"].drifted
    assert report.drift["prediction"].role == "prediction"
    assert report.drift["prediction"].drifted  # a 1.5 SD move of f0 moves the predictions
    assert report.drift["churned"].role == "target"  # the labels, against the training target
    assert report.quality is not None
    junk = [i for i in report.quality.issues if i.kind == "invalid_value"]
    assert [(i.column, i.count, i.rows) for i in junk] == [("f2", 3, (5, 17, 230))]
    performance = report.performance
    assert performance is not None and performance.labelled == 200
    assert performance.metrics["accuracy"] < 0.1 and performance.degraded == ("accuracy",)
    assert performance.baseline == {"accuracy": pytest.approx(setup.accuracy)}
    assert report.failed_checks == ["drift", "quality", "performance"]

    kinds = sorted(a.kind for a in done.alerts)
    assert sorted(set(kinds)) == ["drift", "performance", "prediction_drift", "quality",
                                  "target_drift"]
    stored = list_alerts("shifted-api", client=client)
    assert [a.id for a in stored] == [a.id for a in done.alerts]
    assert {a.report_id for a in stored} == {done.stored.id if done.stored else -1}
    delivered = stored[0].delivered
    assert delivered["log"] == "ok" and delivered["webhook 1 (127.0.0.1)"] == "ok"
    assert delivered["webhook 2 (127.0.0.1)"].startswith("error:")
    assert len(Hook.received) == 1
    body = Hook.received[0]
    assert body["endpoint"] == "shifted-api" and body["window"] == [NOW - 60 * MINUTE, NOW]
    assert sorted(a["kind"] for a in body["alerts"]) == kinds
    quality = {(a.column, a.statistic): a.value for a in stored if a.kind == "quality"}
    assert quality[("f2", "invalid_value")] == 3.0
    assert quality[("f0", "out_of_range")] > 0  # shifted past the training range

    series = list_results("shifted-api", kind="drift", column="f0", client=client)
    judged = [p for p in series if p.passed is not None]
    assert [(p.statistic, p.passed, p.threshold) for p in judged] == [
        ("wasserstein", False, 0.1)]
    assert {p.statistic for p in series} >= {"ks", "psi", "p_value", "wasserstein"}
    assert list_results("shifted-api", kind="drift", since=NOW + 1, client=client) == []
    with client.meta.read() as conn:
        rows = query_results(conn, "shifted-api", kind="window")
        assert {p.statistic: p.value for p in rows} == {
            "rows": 600.0, "requests": 600.0, "skipped_requests": 0.0, "labelled": 200.0}
        reports = list_reports(conn, "shifted-api")
    assert [(r.rows, r.version, r.failed) for r in reports] == [
        (600, 1, ("drift", "quality", "performance"))]
    blobs = client.blobs
    assert blobs.get_json(reports[0].report)["drift"]["drifted_columns"][0] == "f0"
    assert blobs.get_json(reports[0].profile)["rows"] == 600
    assert reports[0].reference is not None and blobs.has(reports[0].reference)
    client.close()


def test_steady_traffic_passes_and_last_n_requests(setup: Setup, tmp_path: Path) -> None:
    setup.deploy("steady-api")
    _log(setup, "steady-api", _frame(400, seed=3))
    client = setup.client()
    report = monitor("steady-api", window="2h", now=NOW, client=client,
                     html=tmp_path / "steady.html")
    assert report.rows == 400 and report.failed_checks == []
    assert report.drift is not None and report.drift.drifted_columns == []
    assert report.performance is None  # no labels arrived
    assert list_alerts("steady-api", client=client) == []
    assert "<html" in (tmp_path / "steady.html").read_text()[:200].lower()
    last = monitor("steady-api", last=150, now=NOW, client=client, store=False)
    assert last.rows == 150
    assert last.window is not None and last.window[0] == NOW - 50 * MINUTE + 250 * 100
    with client.meta.read() as conn:
        assert len(list_reports(conn, "steady-api")) == 1  # store=False stored nothing
    client.close()


def test_missing_and_retyped_columns_are_named(setup: Setup) -> None:
    setup.deploy("broken-api")
    broken = _frame(300, seed=4).drop(columns=["f1"])
    broken["f2"] = [f"plan-{i % 3}" for i in range(300)]  # text where numbers were
    _log(setup, "broken-api", broken)
    client = setup.client()
    report = monitor("broken-api", now=NOW, client=client)
    assert report.quality is not None
    issues = {(i.column, i.kind) for i in report.quality.issues}
    assert {("f1", "missing_column"), ("f2", "retyped_column")} <= issues
    assert report.drift is not None and "f1" in report.drift.skipped
    alerts = list_alerts("broken-api", kind="quality", client=client)
    assert {(a.column, a.statistic) for a in alerts} >= {("f1", "missing_column"),
                                                          ("f2", "retyped_column")}
    client.close()


def test_empty_window_says_so_and_gives_no_verdict(setup: Setup) -> None:
    setup.deploy("quiet-api")
    _log(setup, "quiet-api", _frame(50, seed=5), start=NOW - 5 * 60 * MINUTE)
    client = setup.client()
    report = monitor("quiet-api", window="1h", now=NOW, client=client)
    assert report.empty and report.drift is None and report.quality is None
    assert report.failed_checks == []
    assert report.current.startswith("no requests in the window quiet-api")
    assert list_alerts("quiet-api", client=client) == []
    with client.meta.read() as conn:
        assert [(p.statistic, p.value) for p in query_results(conn, "quiet-api")
                if p.statistic == "rows"] == [("rows", 0.0)]
    client.close()


def test_canary_and_other_versions_are_left_out(setup: Setup) -> None:
    setup.deploy("mixed-api", model="churn/2")
    _log(setup, "mixed-api", _frame(200, seed=6), version=1, start=NOW - 50 * MINUTE)
    _log(setup, "mixed-api", _frame(300, seed=7), version=2, start=NOW - 20 * MINUTE)
    _log(setup, "mixed-api", _frame(40, seed=8), version=1, role="canary",
         start=NOW - 10 * MINUTE)
    client = setup.client()
    report = monitor("mixed-api", now=NOW, client=client)
    assert report.model_version == "churn/2" and report.rows == 300
    assert "200 request(s) answered by churn/1 not checked" in report.current
    assert "40 canary request(s) not checked" in report.current
    # churn/2 has no reference of its own: its training data (lineage) stands in, so there
    # is no prediction column to compare.
    assert report.reference == "churn/2 reference (training data churn-train@1)"
    assert report.drift is not None
    assert [c.column for c in report.drift.columns] == FEATURES
    client.close()


def test_live_server_traffic_and_feedback(setup: Setup) -> None:
    """The payload log a real server writes (uvicorn in a thread): requests of several rows,
    feedback by request id, then the window checked."""
    from test_deploy_serving import DeploymentServer
    from test_serving import Client as HttpClient

    setup.deploy("live-api")
    server = DeploymentServer(setup.home, "live-api")
    try:
        http = HttpClient(server.port, None)
        traffic = _frame(240, seed=9, shift=2.0)
        for start in range(0, 240, 4):
            records = traffic.iloc[start:start + 4].to_dict(orient="records")
            status, answer = http.post("/predict", {"dataframe_records": records})
            assert status == 200, answer
            if start % 8 == 0:
                status, _ = http.post("/feedback", {"request_id": answer["request_id"],
                                                    "label": [1, 1, 1, 1]})
                assert status == 202
    finally:
        server.stop()  # writes the payload log
    client = setup.client()
    report = monitor("live-api", window="10m", client=client)
    assert report.rows == 240 and report.model_version == "churn/1"
    assert report.drift is not None and "f0" in report.drift.drifted_columns
    assert report.performance is not None and report.performance.labelled == 120
    client.close()


def test_reference_profiles_and_their_errors(setup: Setup, tmp_path: Path) -> None:
    client = setup.client()
    stored = reference_profile("churn/1", client=client)
    assert (stored.prediction, stored.target, stored.features) == ("prediction", "churned",
                                                                    FEATURES)
    assert stored.digest is not None and stored.source == "a table of 2000 rows"
    fallback = reference_profile("churn@latest", client=client)
    assert fallback.source == "training data churn-train@1" and fallback.digest is None
    assert fallback.features == [*FEATURES, "churned"]

    fresh = client.register_model(f"runs:/{setup.run_id}/model", "churn")
    computed = set_reference(fresh.ref, "churn-train@1", predict=True, target="churned",
                             trusted=True, client=client)
    assert computed.prediction == "prediction" and computed.source == "churn-train@1"
    assert computed.importance is not None and set(computed.importance) == set(FEATURES)
    assert computed.importance["f2"] < computed.importance["f0"]  # f2 plays no part
    assert sum(computed.importance.values()) == pytest.approx(1.0)

    package = tmp_path / "loner"
    loopml.models.save_model(setup.model, package, input_example=_frame(2, seed=0))
    client.register_model(package, "loner")
    with pytest.raises(NotFound, match="loopml monitor reference loner/1 DATA"):
        reference_profile("loner/1", client=client)
    with pytest.raises(NotFound, match="neither a file or directory nor a dataset"):
        set_reference("loner/1", "missing.csv", client=client)
    with pytest.raises(InvalidArgument, match="no column nope"):
        set_reference("loner/1", _frame(10, seed=0), target="nope", client=client)
    with pytest.raises(InvalidArgument, match="3 values for 10 rows"):
        set_reference("loner/1", _frame(10, seed=0), predictions=[1, 2, 3], client=client)
    with pytest.raises(InvalidArgument, match="not features"):
        set_reference("loner/1", _frame(10, seed=0), importance={"zz": 1.0}, client=client)
    with pytest.raises(NotFound, match="no deployment named 'ghost'"):
        monitor("ghost", client=client)
    with pytest.raises(InvalidArgument, match="not both"):
        monitor("shifted-api", window="1h", last=5, client=client)
    client.close()


def test_compare_tables_profiles_and_labels(setup: Setup) -> None:
    reference = _frame(1_000, seed=20)
    reference["y"] = (reference["f0"] > 0).astype(int)
    reference["p"] = setup.model.predict(reference[FEATURES])
    current = _frame(500, seed=21, shift=1.0)
    current["y"] = (current["f0"] > 0).astype(int)
    current["p"] = 1 - current["y"]  # every prediction wrong
    report = compare(reference, pa.Table.from_pandas(current), target="y", prediction="p")
    assert report.drift is not None and report.drift["y"].role == "target"
    assert report.drift["p"].role == "prediction" and report.drift.drifted_columns[0] == "f0"
    assert report.performance is not None and report.performance.metrics["accuracy"] == 0.0
    only = compare(profile_table(pa.Table.from_pandas(reference)),
                   profile_table(pa.Table.from_pandas(current)), columns=["f1", "f2"])
    assert only.quality is None  # a profile has no rows to check
    assert only.drift is not None and only.drift.drifted_columns == []
    with pytest.raises(InvalidArgument, match=r"write \['f1'\]"):
        compare(reference, current, columns="f1")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="the target column 'zz'"):
        compare(reference, current, target="zz")
    with pytest.raises(InvalidArgument, match="must be a pyarrow Table"):
        compare(reference, 42)


def test_parse_window_and_the_webhook_setting(tmp_path: Path) -> None:
    assert [parse_window(w) for w in ("1h", "30m", "2d", "90s", "1w", 5)] == [
        3_600_000, 1_800_000, 172_800_000, 90_000, 604_800_000, 5_000]
    for bad in ("5x", "", "-1h", "0m"):
        with pytest.raises(InvalidArgument, match="window"):
            parse_window(bad)
    settings = _settings(tmp_path, monitor_webhooks=" https://a.example/x ,http://b:8080/ ")
    assert webhook_urls(settings) == ["https://a.example/x", "http://b:8080/"]
    with pytest.raises(InvalidArgument, match="LOOPML_MONITOR_WEBHOOKS"):
        webhook_urls(_settings(tmp_path, monitor_webhooks="file:///etc/passwd"))
