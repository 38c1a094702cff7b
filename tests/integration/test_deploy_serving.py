"""Deployments served for real (uvicorn in a thread of the test process): a canary's share
and stickiness, a shadow that fails or stalls without the callers noticing, and an automatic
rollback that fails no request; plus ``loopml deploy`` on the command line."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from servers import ServerThread, free_port
from sklearn.linear_model import LogisticRegression
from test_serving import Client, _settings, _wait_ready

import loopml
from loopml.deployments.api import Deployments
from loopml.deployments.payload import list_segments, read_segments
from loopml.deployments.policy import RollbackRule
from loopml.models import save_model

FEATURES = ["f0", "f1", "f2"]


class Faulty(LogisticRegression):
    """Raises or stalls on predict when told to (after it was loaded and warmed)."""

    mode: ClassVar[str] = "ok"

    def predict(self, X: Any) -> Any:
        if Faulty.mode == "raise":
            raise RuntimeError("broken model")
        if Faulty.mode == "sleep":
            time.sleep(1.0)
        return super().predict(X)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """churn/1, churn/2 (plain) and churn/3 (Faulty); production → 1."""
    home = tmp_path_factory.mktemp("deploy") / ".loopml"
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(100, len(FEATURES))), columns=FEATURES)
    target = (frame["f0"] > 0).astype(int)
    client = loopml.Client(_settings(home))
    for version, cls in enumerate((LogisticRegression, LogisticRegression, Faulty), 1):
        package = home.parent / f"package-{version}"
        save_model(cls(C=version).fit(frame, target), package, input_example=frame.head(2),
                   options={"serializer": "pickle"}, trusted=True)
        client.register_model(package, "churn")
    client.set_model_alias("churn", "production", 1)
    client.close()
    return home


class DeploymentServer(ServerThread):
    def __init__(self, home: Path, name: str, **options: Any) -> None:
        from loopml.serving import ServeOptions
        from loopml.serving.server import uvicorn_config

        served = ServeOptions(deployment=name, port=free_port(), trusted=True,
                              poll_interval_s=0.2, log_flush_s=0.2, **options)
        super().__init__(uvicorn_config(served, _settings(home)), wait=False, join_s=60)
        _wait_ready(self, token=None)  # type: ignore[arg-type]


@pytest.fixture
def serve(home: Path) -> Iterator[Any]:
    running: list[DeploymentServer] = []

    def start(name: str, **options: Any) -> DeploymentServer:
        running.append(DeploymentServer(home, name, **options))
        return running[-1]

    yield start
    Faulty.mode = "ok"
    for server in running:
        server.stop()


def _deployments(home: Path) -> Deployments:
    return Deployments(loopml.Client(_settings(home)).meta, actor="test")


BODY = {"dataframe_records": [{"f0": 0.5, "f1": -1.0, "f2": 2.0}]}


def _send(port: int, count: int, answers: list[tuple[int, Any, float]],
          headers: dict[str, str] | None = None) -> None:
    client = Client(port, None)
    raw = json.dumps(BODY).encode()
    for _ in range(count):
        started = time.perf_counter()
        status, answer, _ = client.request("POST", "/predict", raw, headers)
        answers.append((status, answer, time.perf_counter() - started))


def _in_threads(port: int, threads: int, each: int) -> list[tuple[int, Any, float]]:
    answers: list[tuple[int, Any, float]] = []
    workers = [threading.Thread(target=_send, args=(port, each, answers))
               for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    return answers


def test_canary_takes_its_share_and_keys_stay_put(home: Path, serve: Any) -> None:
    _deployments(home).create("split", model="churn@production", canary="churn/2=10%")
    server = serve("split", log_sample=0)
    answers = _in_threads(server.port, 4, 250)
    assert len(answers) == 1000 and {status for status, _, _ in answers} == {200}
    to_canary = sum(answer["version"] == 2 for _, answer, _ in answers)
    assert 70 <= to_canary <= 130
    client = Client(server.port, None)
    raw = json.dumps(BODY).encode()
    seen: dict[str, set[int]] = {}
    for _ in range(3):
        for user in range(150):
            key = {"X-Loopml-Key": f"user-{user}"}
            status, answer, _ = client.request("POST", "/predict", raw, key)
            assert status == 200
            seen.setdefault(key["X-Loopml-Key"], set()).add(answer["version"])
    assert all(len(versions) == 1 for versions in seen.values())
    assert 3 <= sum(versions == {2} for versions in seen.values()) <= 40
    text = client.request("GET", "/metrics")[1]
    for version in (1, 2):
        assert f'loopml_requests_total{{route="/predict",model="churn",version="{version}"' \
            in text


def test_a_failing_or_stalled_shadow_never_reaches_the_caller(home: Path, serve: Any) -> None:
    _deployments(home).create("shadowed", model="churn/1", shadow="churn/3")
    server = serve("shadowed", shadow_max_pending=4)
    Faulty.mode = "raise"
    failing = _in_threads(server.port, 2, 20)
    Faulty.mode = "sleep"
    stalled = _in_threads(server.port, 2, 40)
    for status, answer, _ in failing + stalled:
        assert status == 200 and answer["version"] == 1
    assert max(seconds for _, _, seconds in stalled) < 0.5  # the shadow sleeps 1 s a batch
    text = Client(server.port, None).request("GET", "/metrics")[1]
    assert 'loopml_shadow_requests_total{model="churn",version="3",outcome="error"' in text
    assert 'loopml_shadow_requests_total{model="churn",version="3",outcome="dropped"' in text
    ids = {answer["request_id"] for _, answer, _ in failing}
    reader = loopml.Client(_settings(home))
    deadline = time.monotonic() + 20
    while True:
        with reader.meta.read() as conn:
            segments = list_segments(conn, endpoint="shadowed")
        rows = [r for r in read_segments(reader.blobs, segments).to_pylist()
                if r["request_id"] in ids]
        primaries = {r["request_id"] for r in rows if r["role"] == "primary"}
        shadowed = {r["request_id"] for r in rows if r["role"] == "shadow"}
        if (primaries == ids and len(shadowed) >= len(ids) // 2) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    reader.close()
    roles = {(r["role"], r["version"], r["status"]) for r in rows}
    assert roles == {("primary", 1, 200), ("shadow", 3, 500)}
    assert shadowed <= ids and len(shadowed) >= len(ids) // 2  # the rest were dropped


def test_auto_rollback_fails_no_request(home: Path, serve: Any) -> None:
    deploys = _deployments(home)
    deploys.create("guarded", model="churn@production", canary="churn/3=50%",
                   rollback=RollbackRule(max_error_rate=0.2, window_s=10, min_requests=5))
    server = serve("guarded", log_sample=0)
    Faulty.mode = "raise"
    started = time.time()
    answers = _in_threads(server.port, 4, 60)
    assert {status for status, _, _ in answers} == {200}  # the primary answered for it
    assert {answer["version"] for _, answer, _ in answers} == {1}
    [event] = [e for e in deploys.history("guarded") if e.kind == "auto-rollback"]
    assert (event.from_version, event.to_version) == (3, 1)
    assert "churn/3: error rate" in event.reason and event.actor.startswith("loopml-serve@")
    assert event.created_at / 1000 - started < 3  # 5 failures, then at most 0.1 s + a write
    assert deploys.get("guarded").policy.canary is None
    text = Client(server.port, None).request("GET", "/metrics")[1]
    assert 'loopml_auto_rollbacks_total{model="churn",version="3"' in text


def test_a_monitoring_alert_rolls_the_canary_back(home: Path, serve: Any) -> None:
    from loopml.monitoring.records import insert_alert

    deploys = _deployments(home)
    deploys.create("watched", model="churn@production", canary="churn/2=50%",
                   rollback=RollbackRule(on_alerts=("drift",), window_s=10))
    server = serve("watched", log_sample=0, alert_check_s=0.2)
    assert {a["version"] for _, a, _ in _in_threads(server.port, 2, 20)} == {1, 2}
    meta = loopml.Client(_settings(home)).meta
    with meta.write() as conn:  # not a kind the rule acts on, then an old version's drift
        insert_alert(conn, endpoint="watched", kind="quality", message="nulls", window=(0, 1),
                     model="churn", version=2)
        insert_alert(conn, endpoint="watched", kind="drift", message="old", window=(0, 1),
                     model="churn", version=1)
    time.sleep(0.8)
    assert not [e for e in deploys.history("watched") if e.kind == "auto-rollback"]
    with meta.write() as conn:
        alert = insert_alert(conn, endpoint="watched", kind="drift", window=(0, 1),
                             message="drift score 0.4 reached 0.2", model="churn", version=2)
    raised = time.time()
    deadline = raised + 10
    while not [e for e in deploys.history("watched") if e.kind == "auto-rollback"]:
        assert time.time() < deadline, "no rollback after the alert"
        time.sleep(0.05)
    [event] = [e for e in deploys.history("watched") if e.kind == "auto-rollback"]
    assert (event.from_version, event.to_version) == (2, 1)
    assert f"monitoring alert #{alert.id} (drift): drift score 0.4" in event.reason
    assert {a["version"] for _, a, _ in _in_threads(server.port, 2, 10)} == {1}
    with pytest.raises(ValueError, match="unknown alert kinds"):
        RollbackRule(on_alerts=("latency",))


def test_deploy_commands(home: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    from loopml.cli.main import main

    monkeypatch.setenv("LOOPML_HOME", str(home))
    monkeypatch.setenv("LOOPML_PROGRESS", "false")
    main(["deploy", "create", "cli-api", "--model", "churn@production", "--canary",
          "churn/2=25%", "--shadow", "churn/3", "--rollback-error-rate", "0.1",
          "--rollback-on-alert", "drift, quality"])
    assert "cli-api: churn@production + 25% churn/2, shadow churn/3" in capsys.readouterr().out
    main(["deploy", "show", "cli-api", "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert shown["policy"]["canary"]["percent"] == 25
    assert shown["policy"]["rollback"]["max_error_rate"] == 0.1
    assert shown["policy"]["rollback"]["on_alerts"] == ["drift", "quality"]
    main(["deploy", "list"])
    assert "cli-api" in capsys.readouterr().out
    main(["deploy", "rollback", "cli-api", "--reason", "bad canary"])
    assert "rollback churn 2 -> 1 (bad canary)" in capsys.readouterr().out
    main(["deploy", "history", "cli-api", "--json"])
    assert [e["kind"] for e in json.loads(capsys.readouterr().out)] == ["created", "rollback"]
    with pytest.raises(SystemExit):
        main(["deploy", "show", "nope"])
    assert "existing deployments:" in capsys.readouterr().err
