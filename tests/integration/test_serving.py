"""The model server as users meet it: real uvicorn on 127.0.0.1 (in a thread of the test
process, and ``loopml serve`` in a process of its own, stopped by SIGTERM) serving a
registered scikit-learn LogisticRegression to HTTP clients in threads."""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from servers import ServerThread, free_port
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.deployments.payload import list_segments, read_segments
from loopml.models import save_model

FEATURES = ["f0", "f1", "f2", "f3", "f4"]
TOKEN = "s3cret-token"
SECRET = "SECRET-VALUE-8841"  # sent in bad requests: must never come back in an answer
CS = (1.0, 0.01, 100.0)  # versions 1, 2, 3 differ by regularisation, so by probabilities


def _settings(home: Path) -> loopml.Settings:
    return loopml.load_settings(home=home, progress=False, environ={},
                                config_file=home / "none.toml")


@dataclass
class Registry:
    home: Path
    frame: pd.DataFrame
    models: dict[int, LogisticRegression]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """churn versions 1-3 (pickled: importing skops walks every scikit-learn module, half a
    second more per server process; test_serving_imports serves a skops package);
    production → 1."""
    home = tmp_path_factory.mktemp("serving") / ".loopml"
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(200, len(FEATURES))), columns=FEATURES)
    target = (frame["f0"] - frame["f1"] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    client = loopml.Client(_settings(home))
    models = {}
    for version, c in enumerate(CS, start=1):
        model = LogisticRegression(C=c).fit(frame, target)
        package = home.parent / f"package-{version}"
        save_model(model, package, input_example=frame.head(3),
                   options={"serializer": "pickle"}, trusted=True)
        assert client.register_model(package, "churn").version == version
        models[version] = model
    client.set_model_alias("churn", "production", 1)
    client.close()
    return Registry(home, frame, models)


class ProcessServer:
    """``loopml serve`` in a process of its own."""

    def __init__(self, home: Path, *args: str) -> None:
        self.port = free_port()
        self.log = home.parent / f"server-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
        env.update(LOOPML_HOME=str(home), LOOPML_PROGRESS="false")
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "loopml.cli.main", "serve", "churn@production",
                 "--port", str(self.port), "--trusted", *args],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home.parent)

    def failed(self) -> str | None:
        if self.process.poll() is None:
            return None
        return f"the server exited ({self.process.returncode}):\n{self.log.read_text()}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


class ThreadServer(ServerThread):
    """The same app under uvicorn in a thread of the test process (which has imported
    scikit-learn already, so it starts in a fraction of a second); ready once ``/ready`` says
    so (:func:`_wait_ready`)."""

    def __init__(self, home: Path, **options: Any) -> None:
        from loopml.serving import ServeOptions
        from loopml.serving.server import uvicorn_config

        served = ServeOptions(model="churn@production", port=free_port(), trusted=True,
                              **options)
        super().__init__(uvicorn_config(served, _settings(home)), wait=False, join_s=60,
                         name="uvicorn")


def _wait_ready(server: ProcessServer | ThreadServer, token: str | None = TOKEN
                ) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        failure = server.failed()
        if failure:
            pytest.fail(failure)
        with contextlib.suppress(OSError):
            status, body = Client(server.port, token).get("/ready")
            if status == 200:
                return dict(body)
        time.sleep(0.05)
    pytest.fail("the server did not become ready")


class Client:
    """One keep-alive connection (one per thread)."""

    def __init__(self, port: int, token: str | None = TOKEN) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.token = token

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        self.conn.request(method, path, body=body, headers=sent)
        response = self.conn.getresponse()
        raw = response.read()
        if response.will_close:
            self.conn.close()
        text = raw.decode()
        parsed = json.loads(text) if "json" in response.getheader("content-type", "") else text
        return response.status, parsed, dict(response.getheaders())

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, parsed, _ = self.request("POST", path, raw)
        return status, parsed

    def get(self, path: str) -> tuple[int, Any]:
        status, parsed, _ = self.request("GET", path)
        return status, parsed


@pytest.fixture(scope="module")
def server(registry: Registry) -> Iterator[ThreadServer]:
    running = ThreadServer(registry.home, token=TOKEN, max_wait_ms=5, max_body_bytes=65536,
                           poll_interval_s=0.2, log_flush_s=0.5)
    try:
        _wait_ready(running)
        yield running
    finally:
        running.stop()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: float(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def test_every_request_format_gets_the_model_s_predictions(server: ThreadServer,
                                                           registry: Registry) -> None:
    rows = registry.frame.iloc[:7]
    want = registry.models[1].predict(rows).tolist()
    records = _records(rows)
    permuted = ["f3", "f0", "f4", "f2", "f1"]
    bodies = [
        {"dataframe_records": records},
        {"dataframe_split": {"columns": FEATURES, "data": rows.to_numpy().tolist()}},
        {"dataframe_split": {"columns": permuted, "data": rows[permuted].to_numpy().tolist()}},
        {"instances": records},
        {"instances": rows.to_numpy().tolist()},
        {"inputs": {c: rows[c].tolist() for c in FEATURES}},
        {"inputs": rows.to_numpy().tolist()},
    ]
    client = Client(server.port)
    for body in bodies:
        status, answer = client.post("/invocations", body)
        assert status == 200, (body, answer)
        assert answer["predictions"] == want
        assert (answer["model"], answer["version"]) == ("churn", 1)
        assert re.fullmatch(r"[0-9a-f]{32}", answer["request_id"])
    status, answer, headers = client.request(
        "POST", "/predict", json.dumps({"dataframe_records": records[:1]}).encode(),
        {"X-Request-ID": "client-id-1"})
    assert status == 200 and answer["request_id"] == "client-id-1"
    assert headers["x-request-id"] == "client-id-1"


def test_predict_proba(server: ThreadServer, registry: Registry) -> None:
    rows = registry.frame.iloc[:4]
    status, answer = Client(server.port).post("/predict_proba",
                                              {"dataframe_records": _records(rows)})
    assert status == 200
    np.testing.assert_allclose(answer["predictions"], registry.models[1].predict_proba(rows))


def _bad(client: Client, body: Any, status: int) -> dict[str, Any]:
    got, answer = client.post("/invocations", body)
    assert got == status, answer
    assert SECRET not in json.dumps(answer)
    assert answer["error_code"] and answer["message"] and answer["request_id"]
    return dict(answer)


def test_bad_input_is_refused_naming_field_and_row_without_echoing(server: ThreadServer,
                                                                   registry: Registry) -> None:
    client = Client(server.port)
    good = _records(registry.frame.iloc[:3])

    missing = [*good[:2], {k: v for k, v in good[2].items() if k != "f2"}]
    answer = _bad(client, {"dataframe_records": missing}, 422)
    assert (answer["field"], answer["row"]) == ("f2", 2)
    assert "missing column 'f2'" in answer["message"]

    extra = [good[0], {**good[1], "f9": SECRET}]
    answer = _bad(client, {"dataframe_records": extra}, 422)
    assert (answer["field"], answer["row"]) == ("f9", 1)
    assert "unexpected column 'f9'" in answer["message"]

    wrong_type = [good[0], good[1], {**good[2], "f3": SECRET}]
    answer = _bad(client, {"dataframe_records": wrong_type}, 422)
    assert (answer["field"], answer["row"]) == ("f3", 2)
    assert "expected a number (float64), got a string" in answer["message"]

    short_row = [[1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, SECRET]]
    answer = _bad(client, {"instances": short_row}, 422)
    assert answer["row"] == 1 and "has 3 values; the model takes 5 columns" in answer["message"]

    not_finite = json.dumps({"dataframe_records": [good[0], {**good[1], "f4": math.nan}]})
    assert "NaN" in not_finite  # the standard library writes NaN, as many clients do
    answer = _bad(client, not_finite.encode(), 422)
    assert (answer["field"], answer["row"]) == ("f4", 1) and "not finite" in answer["message"]
    answer = _bad(client, {"inputs": {**{c: [1.0] for c in FEATURES}, "f0": [None]}}, 422)
    assert answer["field"] == "f0" and "null" in answer["message"]

    answer = _bad(client, b'{"dataframe_records": [{"f0": "' + SECRET.encode() + b'"', 400)
    assert "not valid JSON" in answer["message"]
    answer = _bad(client, {"rows": [SECRET]}, 400)
    assert "dataframe_records" in answer["message"]
    big = {"dataframe_records": [{**good[0], "pad": SECRET * 10}] * 600}
    answer = _bad(client, big, 413)
    assert "over the limit of 65536" in answer["message"]

    status, answer = Client(server.port).post("/invocations", {"dataframe_records": good})
    assert status == 200 and len(answer["predictions"]) == 3  # the server is still up


def test_health_ready_metrics_and_docs(server: ThreadServer) -> None:
    client = Client(server.port)
    assert client.get("/health") == (200, {"status": "ok"})
    status, ready = client.get("/ready")
    assert status == 200 and ready["status"] == "ready" and ready["flavor"] == "sklearn"
    client.post("/invocations", {"inputs": [[0.0] * 5]})
    status, text = client.get("/metrics")
    assert status == 200
    assert re.search(r'loopml_requests_total\{route="/invocations",model="churn",version="\d",'
                     r'status="200",worker="\d+"\} \d+', text)
    assert 'loopml_request_duration_seconds_bucket{route="/invocations"' in text
    assert "# TYPE loopml_batch_size histogram" in text
    assert 'loopml_payload_log_rows{outcome="dropped"' in text
    status, document = client.get("/openapi.json")
    assert status == 200 and "/predict_proba" in document["paths"]
    assert "f0 (float64)" in document["info"]["description"]
    status, page = client.get("/docs")
    assert status == 200 and "/invocations" in page
    assert client.get("/nowhere")[0] == 404


def test_the_token_is_required(server: ThreadServer) -> None:
    body = json.dumps({"inputs": [[0.0] * 5]}).encode()
    for token in (None, "wrong"):
        status, answer, headers = Client(server.port, token).request("POST", "/predict", body)
        assert status == 401 and answer["error_code"] == "UNAUTHENTICATED"
        assert headers["www-authenticate"].startswith("Bearer")
        assert Client(server.port, token).get("/metrics")[0] == 401
        assert Client(server.port, token).post("/feedback", {"request_id": "x",
                                                             "label": 1})[0] == 401
    assert Client(server.port, None).get("/health")[0] == 200
    assert Client(server.port, None).get("/ready")[0] == 200


def _hammer(port: int, stop: threading.Event, path: str, body: Any,
            answers: list[tuple[int, Any]], *, limit: int | None = None) -> None:
    client = Client(port)
    sent = 0
    while not stop.is_set() and (limit is None or sent < limit):
        answers.append(client.post(path, body))
        sent += 1


def test_concurrent_single_rows_are_micro_batched(server: ThreadServer, registry: Registry) -> None:
    body = {"dataframe_records": _records(registry.frame.iloc[:1])}
    answers: list[tuple[int, Any]] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_hammer, args=(server.port, stop, "/predict", body,
                                                      answers), kwargs={"limit": 25})
               for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 300 and {status for status, _ in answers} == {200}
    text = Client(server.port).get("/metrics")[1]
    series = 'model="churn",version="1",method="predict",worker="\\d+"'
    single = re.search(r'loopml_batch_size_bucket\{' + series + r',le="1"\} (\d+)', text)
    total = re.search(r'loopml_batch_size_count\{' + series + r'\} (\d+)', text)
    assert single and total
    assert int(total.group(1)) > int(single.group(1)), "no batch held more than one request"


def _wait_for_version(port: int, version: int) -> None:
    deadline = time.monotonic() + 30
    while Client(port).get("/ready")[1].get("version") != version:
        assert time.monotonic() < deadline, f"the server never switched to version {version}"
        time.sleep(0.05)


def test_hot_swap_under_load_fails_no_request(server: ThreadServer, registry: Registry) -> None:
    rows = registry.frame.iloc[:2]
    body = {"dataframe_records": _records(rows)}
    expected = {v: m.predict_proba(rows) for v, m in registry.models.items()}
    answers: list[tuple[int, Any]] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_hammer, args=(server.port, stop, "/predict_proba",
                                                      body, answers)) for _ in range(8)]
    for thread in threads:
        thread.start()
    client = loopml.Client(_settings(registry.home))
    try:
        for version in (2, 3, 1, 3, 1):
            client.set_model_alias("churn", "production", version)
            _wait_for_version(server.port, version)
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        client.set_model_alias("churn", "production", 1)
        client.close()
    _wait_for_version(server.port, 1)
    failures = [answer for status, answer in answers if status != 200]
    assert not failures and len(answers) > 50
    seen = {answer["version"] for _, answer in answers}
    assert seen <= {1, 2, 3} and len(seen) >= 2
    for _, answer in answers:  # each answer came from the version it names
        np.testing.assert_allclose(answer["predictions"], expected[answer["version"]])


def test_payload_log_and_feedback_are_written_by_shutdown(registry: Registry) -> None:
    running = ProcessServer(registry.home, "--log-flush", "600")  # only the shutdown writes
    try:
        _wait_ready(running, token=None)
        client = Client(running.port, None)
        ids = []
        for i in range(5):
            rows = _records(registry.frame.iloc[i:i + 2])
            status, answer = client.post("/invocations", {"dataframe_records": rows})
            assert status == 200
            ids.append(answer["request_id"])
        status, refused = client.post("/invocations", {"dataframe_records": [{"f0": SECRET}]})
        assert status == 422
        for rid, label in zip(ids[:2], (1, 0), strict=True):
            assert client.post("/feedback", {"request_id": rid, "label": label}) == (
                202, {"request_id": rid, "status": "accepted"})
        assert client.post("/feedback", {"label": 1})[0] == 400
    finally:
        # uvicorn ends by re-raising the signal it handled
        assert running.stop() in (0, -signal.SIGTERM), running.log.read_text()
    assert "Application shutdown complete" in running.log.read_text()
    reader = loopml.Client(_settings(registry.home))
    with reader.meta.read() as conn:
        requests = list_segments(conn, endpoint="churn@production", kind="requests")
        feedback = list_segments(conn, endpoint="churn@production", kind="feedback")
    logged = read_segments(reader.blobs, requests).to_pylist()
    mine = [row for row in logged if row["request_id"] in {*ids, refused["request_id"]}]
    assert [row["request_id"] for row in mine] == [*ids, refused["request_id"]]
    assert all(row["model"] == "churn" and row["version"] == 1 for row in mine)
    assert [row["status"] for row in mine] == [200] * 5 + [422]
    assert json.loads(mine[0]["request"])["dataframe_records"][0]["f0"] == pytest.approx(
        registry.frame["f0"].iloc[0])
    assert json.loads(mine[0]["response"])["predictions"] == registry.models[1].predict(
        registry.frame.iloc[:2]).tolist()
    assert mine[-1]["error"] and SECRET not in mine[-1]["error"]
    assert all(row["latency_ms"] > 0 for row in mine)
    labels = read_segments(reader.blobs, feedback).to_pylist()
    assert {(row["request_id"], json.loads(row["label"])) for row in labels} >= {
        (ids[0], 1), (ids[1], 0)}
    reader.close()
