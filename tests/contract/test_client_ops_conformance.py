"""Deployments, events, pipeline runs and monitoring through the client: every test runs on the
embedded ``Client`` and on a ``RemoteClient`` talking to a real uvicorn server (the module
server of ``test_client_conformance.py``) over a temporary store; the CLI prints the same rows
through a server as on the store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_client_conformance import _store, server  # noqa: F401 - the module's server fixture

import loopml
from loopml.automation.events import record_event
from loopml.client import Client
from loopml.client.remote import RemoteClient
from loopml.deployments.policy import Canary, RollbackRule
from loopml.errors import AlreadyExists, InvalidArgument, NotFound
from loopml.monitoring import records as monitoring
from loopml.monitoring.records import ResultPoint
from loopml.monitoring.results import MonitorReport
from loopml.pipelines import records as pipelines
from loopml.pipelines.entities import StepStatus
from loopml.pipelines.materializers import OutputRef
from loopml.registry import records as registry
from loopml.tracking import RunStatus
from loopml.tracking.context import current_user

pytest.importorskip("uvicorn")


def _seed(store: Client) -> str:
    """Model versions with aliases, an automation event, a pipeline run with two steps, a
    monitored window and an alert; the pipeline run's id."""
    with store.meta.write() as conn:
        for _ in range(3):
            registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn")
        registry.set_alias(conn, "churn", "production", 1, actor="t", reason="")
        registry.set_alias(conn, "churn", "staging", 2, actor="t", reason="")
    record_event(store.meta, "promoted", model="churn", version=2, reason="auc 0.91 > 0.88",
                 data={"auc": 0.91})
    experiment = store.create_experiment("train")
    with store.start_run("train") as run:
        pass
    with store.meta.write() as conn:
        pipelines.insert_pipeline_run(conn, run_id=run.id, pipeline="train", source="p.py",
                                      params={"lr": 0.1}, executor="inline", sample=None,
                                      resumed_from=None, host="h", pid=1, graph={"nodes": [
                                          {"id": "prepare"}, {"id": "fit"}]})
        child = pipelines.start_step(conn, pipeline_run_id=run.id, experiment_id=experiment.id,
                                     node="prepare", step="prepare", cache_key="k",
                                     params={}, user="u", run_name="prepare")
        pipelines.finish_step(conn, pipeline_run_id=run.id, node="prepare",
                              status=StepStatus.COMPLETED, child_run_id=child.id,
                              outputs=[OutputRef("json", "a" * 64, "blob", "dict")])
        pipelines.record_steps(conn, run.id, [{"node": "fit", "step": "fit",
                                               "status": "skipped", "reason": "upstream"}])
        pipelines.finish_pipeline_run(conn, run.id, RunStatus.FINISHED)
        report = MonitorReport(reference="r", current="c", rows=10, drift=None, quality=None,
                               window=(1_000, 2_000), deployment="churn-api")
        monitoring.record_report(conn, endpoint="churn-api", report=report,
                                 report_blob="f" * 64, points=[
                                     ResultPoint("window", "", "rows", 10.0),
                                     ResultPoint("drift", "age", "psi", 0.4, 0.2, False)])
        monitoring.insert_alert(conn, endpoint="churn-api", kind="drift", column="age",
                                statistic="psi", message="age drifted", value=0.4,
                                threshold=0.2, window=(1_000, 2_000), model="churn", version=1)
    return run.id


@pytest.fixture(params=["embedded", "remote"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Client, Client]]:
    """(the client under test, the store it reaches)."""
    store = _store(tmp_path / "server")
    if request.param == "embedded":
        yield store, store
        store.close()
        return
    app, url = request.getfixturevalue("server")
    app.state.client = store
    remote = RemoteClient(loopml.load_settings(home=tmp_path / "client", tracking_uri=url,
                                               progress=False))
    yield remote, store
    remote.close()
    store.close()
    assert not (tmp_path / "client" / "loopml.db").exists()


def test_deployments_create_update_rollback_history(pair: tuple[Client, Client]) -> None:
    client, store = pair
    _seed(store)
    deploys = client.deployments
    rule = RollbackRule(max_error_rate=0.05, window_s=10)
    created = deploys.create("churn-api", model="churn@production",
                             canary="churn@staging=10%", shadow="churn/3", rollback=rule,
                             reason="first")
    assert created.revision == 1 and created.policy.rollback == rule
    assert created.policy.describe() == "churn@production + 10% churn@staging, shadow churn/3"
    assert deploys.get("churn-api") == created == deploys.list()[0]
    event = deploys.update("churn-api", model="churn@staging",
                           canary=Canary(model="churn/3", percent=5), reason="move")
    assert (event.kind, event.from_version, event.to_version) == ("updated", 1, 2)
    assert event.policy.canary == Canary(model="churn/3", percent=5)
    time.sleep(0.002)
    back = deploys.rollback("churn-api", reason="errors")
    assert back.kind == "rollback" and back.policy.pinned == back.to_version == 2
    history = deploys.history("churn-api")
    assert [e.kind for e in history] == ["created", "updated", "rollback"]
    assert [e.reason for e in history] == ["first", "move", "errors"]
    assert {e.actor for e in history} == {current_user()}
    with pytest.raises(NotFound, match="existing deployments: churn-api"):
        deploys.get("nope")
    with pytest.raises(NotFound, match="no deployment named 'nope'"):
        deploys.rollback("nope")
    with pytest.raises(AlreadyExists):
        deploys.create("churn-api", model="churn/1")
    with pytest.raises(InvalidArgument, match="churn@staging=10%"):
        deploys.create("bad", model="churn/1", canary="churn@staging")
    with pytest.raises(NotFound, match="no alias 'gone'"):
        deploys.create("bad", model="churn@gone")
    assert [d.name for d in deploys.list()] == ["churn-api"]  # nothing half written


def test_events_pipeline_runs_monitor_results_and_alerts(pair: tuple[Client, Client]) -> None:
    client, store = pair
    run_id = _seed(store)
    client.deployments.create("churn-api", model="churn@production")
    found = client.list_events()
    assert sorted((e.source, e.kind) for e in found) == [
        ("automation", "promoted"), ("deployments", "deploy_created"),
        ("monitoring", "alert_drift")]
    assert found == store.list_events()
    promoted = client.list_events(kind="promoted")
    assert [(e.model, e.version, e.data) for e in promoted] == [("churn", 2, {"auc": 0.91})]
    assert client.list_events(include=("automation",), limit=1) == promoted
    assert client.list_events(include=()) == []
    with pytest.raises(InvalidArgument, match="unknown event source"):
        client.list_events(include=("nope",))

    runs = client.list_pipeline_runs()
    assert [(r.run_id, r.pipeline, r.status, r.steps) for r in runs] == [
        (run_id, "train", "FINISHED", ())]
    assert client.list_pipeline_runs(pipeline="other") == []
    shown = client.get_pipeline_run(run_id[:8])
    assert shown == store.get_pipeline_run(run_id)
    assert [(s.node, s.status) for s in shown.steps] == [("prepare", StepStatus.COMPLETED),
                                                         ("fit", StepStatus.SKIPPED)]
    assert shown.steps[0].outputs[0].digest == "a" * 64 and shown.params == {"lr": 0.1}
    with pytest.raises(NotFound, match="no pipeline run 'zzzz'"):
        client.get_pipeline_run("zzzz")

    results = client.list_monitor_results("churn-api")
    assert [(r.kind, r.column, r.value, r.passed) for r in results] == [
        ("window", "", 10.0, None), ("drift", "age", 0.4, False)]
    assert client.list_monitor_results("churn-api", kind="drift", column="age") == results[1:]
    assert client.list_monitor_results("churn-api", since=2_001) == []
    with pytest.raises(InvalidArgument, match="unknown check"):
        client.list_monitor_results("churn-api", kind="nope")

    alerts = client.list_alerts("churn-api")
    assert [(a.kind, a.column, a.message, a.value) for a in alerts] == [
        ("drift", "age", "age drifted", 0.4)]
    assert client.list_alerts() == alerts == store.list_alerts(kind="drift")
    assert client.list_alerts(after=alerts[0].id) == client.list_alerts("other") == []


def test_the_cli_prints_the_same_rows_through_a_server(server, tmp_path: Path,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from loopml.cli.main import cli

    app, url = server
    store = _store(tmp_path / "server")
    _seed(store)
    store.deployments.create("churn-api", model="churn@production", canary="churn@staging=10%")
    app.state.client = store
    commands = [["deploy", "list", "--json"], ["deploy", "history", "churn-api", "--json"],
                ["events", "--json"], ["pipelines", "list", "--json"],
                ["monitor", "alerts", "--json"], ["monitor", "show", "churn-api", "--json"],
                ["deploy", "list"], ["monitor", "alerts"]]
    outputs = {}
    for where in ("embedded", "remote"):
        monkeypatch.setenv("LOOPML_HOME", str(tmp_path / ("server" if where == "embedded"
                                                          else "cli")))
        if where == "remote":
            monkeypatch.setenv("LOOPML_TRACKING_URI", url)
        for args in commands:
            result = CliRunner().invoke(cli, args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            outputs[where, tuple(args)] = result.output
    for args in commands:
        assert outputs["remote", tuple(args)] == outputs["embedded", tuple(args)], args
    assert "churn-api" in outputs["remote", ("deploy", "list")]
    assert "age drifted" in outputs["remote", ("monitor", "alerts", "--json")]
    store.close()
    assert not (tmp_path / "cli" / "loopml.db").exists()


def test_with_auth_writes_need_an_editor_and_record_the_token(tmp_path: Path) -> None:
    import orjson
    from servers import ServerThread
    from servers import request as http_request

    from loopml.server.app import ServerOptions, create_app
    from loopml.server.tokens import create_token

    store = _store(tmp_path / "server")
    _seed(store)
    tokens = {role: create_token(store.meta, f"{role}-token", role=role).secret
              for role in ("viewer", "editor")}
    body = orjson.dumps({"name": "churn-api", "model": "churn@production", "actor": "spoof"})
    app = create_app(client=store, options=ServerOptions(auth=True))
    with ServerThread.for_app(app, lifespan="on") as running:
        def send(method: str, path: str, role: str, data: bytes | None = None) -> Any:
            return http_request(running.port, method, f"/api/v1{path}", body=data, headers={
                "Authorization": f"Bearer {tokens[role]}", "Content-Type": "application/json"})

        assert send("POST", "/deployments", "viewer", body).status == 403
        assert send("POST", "/deployments/churn-api/rollback", "viewer", b"{}").status == 403
        assert send("GET", "/deployments", "viewer").json() == {"deployments": []}
        for bad in (b"{nope", b"[1]", b'{"name": "x"}', b'{"name": "x", "model": 3}',
                    b'{"name": "x", "model": "churn/1", "canary": 5}',
                    b'{"name": "x", "model": "churn/1", "rollback": {"max_p99_ms": "fast"}}',
                    b'{"name": "x", "model": "churn/1", "rollback": {"nope": 1}}',
                    b'{"name": "x", "model": "churn/1", "canary": {"model": "churn/2"}}'):
            answer = send("POST", "/deployments", "editor", bad)
            assert answer.status == 400 and answer.json()["message"], bad
        created = send("POST", "/deployments", "editor", body)
        assert created.status == 201 and created.json()["revision"] == 1
        missing = send("GET", "/deployments/nope", "viewer")
        assert missing.status == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert send("GET", "/events?limit=0", "viewer").status == 400
        assert send("GET", "/monitoring/results", "viewer").status == 400
        assert send("GET", "/alerts?since=yesterday", "viewer").status == 400
        history = send("GET", "/deployments/churn-api/history", "viewer").json()["events"]
    assert [(e["kind"], e["actor"]) for e in history] == [("created", "editor-token")]
    assert [d.name for d in store.deployments.list()] == ["churn-api"]
    store.close()
