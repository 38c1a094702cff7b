"""Rollouts against the real registry and deployments in a temporary store, on a fake clock:
direct, shadow (agreement), canary promoted, canary rolled back by the server's automatic
rollback, a crash between stages resumed or safely reverted; and a canary served for real
whose failing model is rolled back with no failed client request. In every test the
production alias never points at a version that failed its gate."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.automation import rollout_records
from loopml.automation.events import list_events
from loopml.automation.gate import GatePolicy, GateResult
from loopml.automation.rollout import (
    RolloutPolicy,
    advance_rollout,
    get_rollout,
    list_rollouts,
    on_candidate,
    parse_policies,
    resume_rollouts,
    start_rollout,
)
from loopml.deployments.api import Deployments
from loopml.deployments.payload import SegmentSink
from loopml.deployments.records import apply_rollback
from loopml.errors import Conflict, InvalidArgument, NotFound
from loopml.models import save_model

FEATURES = ["f0", "f1", "f2"]
T0 = 1_700_000_000_000  # the fake clock starts here (ms)
MINUTE = 60_000


class Faulty(LogisticRegression):
    """A model that fails on every prediction once told to (after it was loaded)."""

    broken: ClassVar[bool] = False

    def predict(self, X: Any) -> Any:
        if Faulty.broken:
            raise RuntimeError("broken model")
        return super().predict(X)


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    frame["label"] = (frame["f0"] + 0.5 * frame["f1"] > 0).astype(int)
    return frame


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """good (all features), weak (f2 only: a coin) and faulty packages, saved once."""
    base = tmp_path_factory.mktemp("packages")
    train = _frame(400, 1)
    made = {}
    for name, cls, columns in (("good", LogisticRegression, FEATURES),
                               ("weak", LogisticRegression, ["f2"]),
                               ("faulty", Faulty, FEATURES)):
        model = cls().fit(train[columns], train["label"])
        save_model(model, base / name, input_example=train[columns].head(2),
                   options={"serializer": "pickle"}, trusted=True)
        made[name] = base / name
    return made


def _settings(home: Path) -> loopml.Settings:
    return loopml.load_settings(home=home, progress=False, environ={},
                                config_file=home / "none.toml")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rollout") / ".loopml"


@pytest.fixture
def client(home: Path) -> Iterator[loopml.Client]:
    client = loopml.Client(_settings(home))
    yield client
    client.close()


def _model(client: loopml.Client, packages: dict[str, Path], *kinds: str) -> str:
    """A new model whose versions are ``kinds`` in order; production → 1; a deployment of
    the same name follows production."""
    name = f"m{uuid.uuid4().hex[:8]}"
    for kind in kinds:
        client.register_model(packages[kind], name)
    client.set_model_alias(name, "production", 1)
    Deployments(client.meta, actor="test").create(name, model=f"{name}@production")
    return name


def _production(client: loopml.Client, name: str) -> int:
    return client.get_model_version(f"{name}@production").version


def _assert_never_failed(client: loopml.Client, name: str) -> None:
    """The invariant: production never pointed at a version whose gate failed."""
    failed = {r.challenger for r in list_rollouts(model=name, client=client)
              if r.stage == "gate" or not (r.state.get("gate") or {"passed": True})["passed"]}
    reached = {e.to_version for e in client.model_alias_history(name, "production")}
    assert not failed & reached, (failed, reached)


def _kinds(client: loopml.Client, name: str) -> list[str]:
    return [e.kind for e in list_events(client.meta, model=name) if e.source == "automation"]


HOLDOUT = _frame(300, 2)
GATE = {"metric": "accuracy", "margin": 0.0}


def test_direct_rollout_of_a_candidate_and_rejection_of_a_worse_one(
        client: loopml.Client, packages: dict[str, Path]) -> None:
    name = _model(client, packages, "weak", "good", "weak")
    policy = {"gate": GATE, "rollout": {"mode": "direct", "deployment": name}}
    done = on_candidate(f"{name}/2", "more-data", policy=policy, client=client, data=HOLDOUT,
                        trusted=True, now=T0)
    assert (done.outcome, done.stage, done.champion) == ("promoted", "done", 1)
    assert _production(client, name) == 2
    assert done.state["gate"]["passed"] and done.state["trigger"] == "more-data"
    [move] = client.model_alias_history(name, "production")[-1:]
    assert (move.from_version, move.to_version) == (1, 2) and done.id in move.reason
    worse = on_candidate(f"{name}/3", "more-data", policy=policy, client=client,
                         data=HOLDOUT, trusted=True, now=T0 + 1)
    assert (worse.outcome, worse.stage, worse.champion) == ("rejected", "gate", 2)
    assert "accuracy" in worse.reason and "needs margin" in worse.reason
    assert _production(client, name) == 2
    assert on_candidate(f"{name}/3", "again", policy=policy, client=client,
                        data=HOLDOUT).id == worse.id  # handed twice: one decision
    assert _kinds(client, name) == ["gate_passed", "rollout_started", "promoted",
                                    "gate_failed", "rejected"]
    [failed] = [e for e in list_events(client.meta, model=name) if e.kind == "gate_failed"]
    assert failed.data["challenger_metrics"]["accuracy"] < failed.data["champion_metrics"][
        "accuracy"] and failed.version == 3
    with pytest.raises(Conflict, match="failed its gate"):
        bad = GateResult(passed=False, challenger=f"{name}/3", champion=f"{name}/2",
                         metric="accuracy", challenger_metrics={}, champion_metrics={},
                         rows=1, data="", reason="worse")
        start_rollout(f"{name}/3", policy=RolloutPolicy(), gate=bad, client=client)
    _assert_never_failed(client, name)


def test_the_first_version_creates_its_missing_deployment(
        client: loopml.Client, packages: dict[str, Path]) -> None:
    """No champion and no deployment yet: the first version goes live directly (a canary
    has nothing to share traffic with) and the deployment is created, following the alias;
    with a champion, a missing deployment is an error that says what to do (the agent
    records it and hands the candidate again)."""
    name = f"m{uuid.uuid4().hex[:8]}"
    for kind in ("good", "good"):
        client.register_model(packages[kind], name)
    policy = {"gate": GATE, "rollout": {"mode": "canary", "percent": 10, "minutes": 5,
                                        "deployment": f"{name}-api"}}
    first = on_candidate(f"{name}/1", "first", policy=policy, client=client, data=HOLDOUT,
                         trusted=True, now=T0)
    assert (first.outcome, first.mode, first.deployment) == ("promoted", "direct",
                                                             f"{name}-api")
    assert first.state["deployment_created"] is True and _production(client, name) == 1
    assert Deployments(client.meta).get(f"{name}-api").policy.model == f"{name}@production"
    events = {e.kind: e for e in list_events(client.meta, model=name)}  # (a fake clock)
    assert sorted(events) == ["deploy_created", "gate_passed", "promoted", "rollout_started"]
    assert "the first version, and deployment" in events["rollout_started"].reason
    assert "the canary needs a champion, there is none" in events["rollout_started"].reason
    assert f"the first version of {name}: deployment {name}-api created" \
        in events["deploy_created"].reason
    assert events["promoted"].reason.endswith(f"deployment {name}-api created, serving "
                                              f"{name}@production")
    with pytest.raises(NotFound, match=f"deployment '{name}-web' does not exist.*"
                                       f"{name}@production is version 1.*loopml deploy "
                                       f"create {name}-web --model {name}@production"):
        on_candidate(f"{name}/2", "next", client=client, data=HOLDOUT, trusted=True, policy={
            "gate": GATE, "rollout": {"mode": "direct", "deployment": f"{name}-web"}})
    assert [r.challenger for r in list_rollouts(model=name, client=client)] == [1]


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random forest stored with skops (it holds sklearn.tree._tree.Tree)."""
    from sklearn.ensemble import RandomForestClassifier

    train = _frame(400, 1)
    model = RandomForestClassifier(n_estimators=5, random_state=0)
    path = tmp_path_factory.mktemp("forest") / "forest"
    save_model(model.fit(train[FEATURES], train["label"]), path,
               input_example=train[FEATURES].head(2))
    return path


def test_the_gate_loads_tree_models_whose_types_it_trusts(
        client: loopml.Client, forest: Path) -> None:
    name = f"m{uuid.uuid4().hex[:8]}"
    client.register_model(forest, name)
    refused = on_candidate(f"{name}/1", "t", policy={"gate": GATE}, client=client,
                           data=HOLDOUT, now=T0)
    assert (refused.outcome, refused.stage) == ("rejected", "gate")
    assert "sklearn.tree._tree.Tree" in refused.reason and "trusted_types" in refused.reason
    client.register_model(forest, name)
    trusting = {"gate": {**GATE, "trusted_types": ["sklearn.tree._tree.Tree"]}}
    done = on_candidate(f"{name}/2", "t", policy=trusting, client=client, data=HOLDOUT,
                        now=T0 + 1)
    assert done.outcome == "promoted", done.reason
    assert done.state["gate"]["challenger_metrics"]["accuracy"] > 0.8
    other = {"gate": {**GATE, "trusted_types": ["sklearn.svm.SVC"]}}  # not the forest's
    client.register_model(forest, name)
    again = on_candidate(f"{name}/3", "t", policy=other, client=client, data=HOLDOUT,
                         now=T0 + 2)
    assert again.outcome == "rejected" and "could not be evaluated" in again.reason


def _sink(client: loopml.Client, name: str) -> SegmentSink:
    return SegmentSink(blobs=client.blobs, meta=lambda: client.meta, endpoint=name,
                       model=name)


def _row(rid: str, at: int, name: str, version: int, role: str, prediction: Any, *,
         status: int = 200, latency: float = 5.0) -> tuple[Any, ...]:
    answer = json.dumps({"predictions": [prediction], "model": name, "version": version,
                         "request_id": rid}) if status < 400 else None
    return (rid, at, name, name, version, "predict", status, latency, 1,
            None if role == "shadow" else "{}", answer, None, role)


def test_shadow_rollout_compares_answers(client: loopml.Client,
                                         packages: dict[str, Path]) -> None:
    name = _model(client, packages, "weak", "good", "good")
    deploys = Deployments(client.meta)
    policy = RolloutPolicy(mode="shadow", deployment=name, requests=10, min_agreement=0.8,
                           online_metric="accuracy", min_labels=5, max_error_rate=0.1)
    rollout = start_rollout(f"{name}/2", policy=policy, client=client, now=T0)
    assert (rollout.stage, rollout.deadline_at) == ("shadow", T0 + 60 * MINUTE)
    assert deploys.get(name).policy.shadow == f"{name}/2"
    assert advance_rollout(rollout.id, T0 + MINUTE, client=client).stage == "shadow"
    sink = _sink(client, name)
    rows, labels = [], []
    for i in range(12):  # the shadow agrees on 11 of 12 and is right on all 12
        rid, at = f"r{i}", T0 + MINUTE + i
        rows += [_row(rid, at, name, 1, "primary", 1 if i else 0),
                 _row(rid, at + 1, name, 2, "shadow", 1)]
        labels.append((rid, at + 2, name, "1"))
    sink("requests", rows)
    sink("feedback", labels)
    done = advance_rollout(rollout.id, T0 + 2 * MINUTE, client=client)
    assert done.outcome == "promoted", done.reason
    assert "agreement 91.7% of 12" in done.reason and "online accuracy 1.0000 vs 0.9167" \
        in done.reason
    assert done.state["evidence"]["challenger"]["requests"] == 12
    after = deploys.get(name).policy
    assert after.shadow is None and after.model == f"{name}@production"
    assert _production(client, name) == 2
    # a shadow that disagrees too often is rejected, the deployment put back as it was
    strict = RolloutPolicy(mode="shadow", deployment=name, requests=5, min_agreement=0.99)
    second = start_rollout(f"{name}/3", policy=strict, client=client, now=T0 + 3 * MINUTE)
    sink("requests", [_row(f"s{i}", T0 + 4 * MINUTE + i, name, 2, "primary", 1)
                      for i in range(6)]
         + [_row(f"s{i}", T0 + 4 * MINUTE + i, name, 3, "shadow", i % 2) for i in range(6)])
    rejected = advance_rollout(second.id, T0 + 5 * MINUTE, client=client)
    assert rejected.outcome == "rejected"
    assert "agreement with the champion 50.0% of 6 is under the minimum of 99.0%" \
        in rejected.reason
    assert deploys.get(name).policy == after and _production(client, name) == 2
    _assert_never_failed(client, name)


def test_canary_promoted_after_its_time(client: loopml.Client,
                                       packages: dict[str, Path]) -> None:
    name = _model(client, packages, "weak", "good", "good")
    deploys = Deployments(client.meta)
    policy, = parse_policies({"gate": GATE, "rollout": {
        "mode": "canary", "deployment": name, "percent": 20, "minutes": 5,
        "max_error_rate": 0.1, "max_p99_ms": 200, "min_requests": 10}})[1:]
    rollout = start_rollout(f"{name}/2", policy=policy, client=client, now=T0)
    assert (rollout.stage, rollout.deadline_at) == ("canary", T0 + 5 * MINUTE)
    live = deploys.get(name).policy
    assert live.canary is not None and (live.canary.model, live.canary.percent) == (
        f"{name}/2", 20)
    assert live.rollback is not None and live.rollback.max_error_rate == 0.1
    sink = _sink(client, name)
    sink("requests", [_row(f"c{i}", T0 + 1000 + i, name, 2, "canary", 1) for i in range(15)]
         + [_row(f"p{i}", T0 + 1000 + i, name, 1, "primary", 1) for i in range(60)])
    assert advance_rollout(rollout.id, T0 + MINUTE, client=client).stage == "canary"
    nightly = SimpleNamespace(name="nightly", deployment=name, alias="production", policy={
        "gate": GATE, "rollout": {"mode": "canary", "minutes": 5}})  # a trigger's policy
    late = on_candidate(f"{name}/3", nightly, client=client, trusted=True, data=HOLDOUT,
                        now=T0 + 2 * MINUTE)
    assert (late.outcome, late.deployment) == ("rejected", name)
    assert late.reason == f"rollout {rollout.id} of {name}/2 (canary) is still running; " \
        "one rollout at a time"
    assert resume_rollouts(T0 + 6 * MINUTE, client=client)[0].id == rollout.id
    done = get_rollout(rollout.id, client=client)
    assert done.outcome == "promoted" and "canary 15 requests, 0 failed" in done.reason
    after = deploys.get(name).policy
    assert after.canary is None and after.rollback is None and after.pinned is None
    assert after.model == f"{name}@production" and _production(client, name) == 2
    assert _kinds(client, name) == ["rollout_started", "rejected", "promoted"]
    # again, idempotent: a finished rollout stays as it is
    assert advance_rollout(rollout.id, T0 + 7 * MINUTE, client=client) == done


def test_canary_rolled_back_by_the_server_or_by_its_numbers(
        client: loopml.Client, packages: dict[str, Path]) -> None:
    name = _model(client, packages, "weak", "good", "good")
    deploys = Deployments(client.meta)
    policy = RolloutPolicy(mode="canary", deployment=name, minutes=10, max_error_rate=0.2,
                           min_requests=5)
    rollout = start_rollout(f"{name}/2", policy=policy, client=client, now=T0)
    revision = deploys.get(name).revision
    with client.meta.write() as conn:  # what a server does on a breach of the rule
        apply_rollback(conn, name, 1, kind="auto-rollback", actor="loopml-serve@host:1",
                       reason=f"{name}/2: error rate 60.0% over the last 30 s (10 requests) "
                              "is over the limit of 20.0%", revision=revision)
    done = advance_rollout(rollout.id, T0 + MINUTE, client=client)
    assert done.outcome == "rolled_back"
    assert "error rate 60.0%" in done.reason and "auto-rollback by loopml-serve" in done.reason
    restored = deploys.get(name).policy
    assert restored.canary is None and restored.pinned is None
    assert restored.model == f"{name}@production" and _production(client, name) == 1
    [event] = [e for e in list_events(client.meta, model=name) if e.kind == "rolled_back"]
    assert event.data["deployment_event"]["kind"] == "auto-rollback"
    # the payload log shows the canary failing: rolled back before its time is up
    second = start_rollout(f"{name}/3", policy=policy, client=client, now=T0 + 2 * MINUTE)
    _sink(client, name)("requests", [
        _row(f"x{i}", T0 + 2 * MINUTE + i, name, 3, "canary", 1, status=500 if i % 2 else 200)
        for i in range(8)])
    failed = advance_rollout(second.id, T0 + 3 * MINUTE, client=client)
    assert failed.outcome == "rolled_back"
    assert failed.reason == "canary error rate 50.0% (4 of 8) is over the limit of 20.0%"
    assert failed.state["evidence"]["challenger"]["errors"] == 4
    assert deploys.get(name).policy.canary is None and _production(client, name) == 1
    _assert_never_failed(client, name)


def test_a_crash_between_stages_is_resumed_or_safely_reverted(
        client: loopml.Client, packages: dict[str, Path]) -> None:
    name = _model(client, packages, "weak", "good", "good")
    deploys = Deployments(client.meta)
    policy = RolloutPolicy(mode="canary", deployment=name, minutes=5, min_requests=1)
    state = {"policy": policy.to_dict(), "trigger": "t", "gate": {"passed": True}}
    with client.meta.write() as conn:  # the agent died right after recording the rollout
        crashed = rollout_records.insert_rollout(
            conn, model=name, challenger=2, champion=1, deployment=name, mode="canary",
            now=T0, state=state)
    assert deploys.get(name).policy.canary is None  # nothing applied yet
    [resumed] = resume_rollouts(T0 + 1000, client=client)
    assert (resumed.id, resumed.stage) == (crashed.id, "canary")
    assert deploys.get(name).policy.canary is not None
    stale = resumed
    _sink(client, name)("requests", [_row("a", T0 + 2000, name, 2, "canary", 1)])
    done = advance_rollout(crashed.id, T0 + 6 * MINUTE, client=client)
    assert done.outcome == "promoted" and _production(client, name) == 2
    with client.meta.write() as conn, pytest.raises(Conflict, match="moved on meanwhile"):
        # a second controller holding the old row changes nothing
        rollout_records.move_rollout(conn, stale, stage="done", now=T0, outcome="rejected")
    assert get_rollout(crashed.id, client=client) == done
    # the challenger was deleted while the agent was down: reverted, nothing promoted
    with client.meta.write() as conn:
        gone = rollout_records.insert_rollout(
            conn, model=name, challenger=3, champion=2, deployment=name, mode="canary",
            now=T0, state=state)
    client.delete_model_version(f"{name}/3")
    before = deploys.get(name)
    [reverted] = resume_rollouts(T0 + 7 * MINUTE, client=client)
    assert (reverted.id, reverted.outcome) == (gone.id, "rejected")
    assert "could not go on" in reverted.reason and "no version 3" in reverted.reason
    assert deploys.get(name) == before and _production(client, name) == 2
    # a human changed the deployment mid-canary: the rollout ends and leaves it alone
    newest = client.register_model(packages["good"], name).ref
    third = start_rollout(newest, policy=policy, client=client, now=T0 + 8 * MINUTE)
    deploys.update(name, model=f"{name}/2", reason="hotfix")
    left = advance_rollout(third.id, T0 + 9 * MINUTE, client=client)
    assert left.outcome == "rejected" and "changed outside the rollout" in left.reason
    assert deploys.get(name).policy.model == f"{name}/2" and _production(client, name) == 2
    assert list_rollouts(unfinished=True, client=client) == []
    _assert_never_failed(client, name)


def test_policies_parse_with_clear_errors() -> None:
    gate, rollout = parse_policies({"gate": {"metric": "auc", "margin": "2%",
                                             "slices": "region"},
                                    "rollout": {"mode": "shadow", "requests": 100,
                                                "deployment": "api"}})
    assert (gate.margin, gate.margin_relative, gate.slices) == (0.02, True, ("region",))
    assert (rollout.mode, rollout.requests, rollout.alias) == ("shadow", 100, "production")
    assert parse_policies({"gate": {"metric": "rmse"}})[1].mode == "direct"
    for mapping, message in (
            (None, "needs a gate"), ({"gate": {}}, "needs a metric"),
            ({"gate": {"metric": "auc", "colour": 1}}, "unknown option.*colour.*policy.gate"),
            ({"gate": GATE, "extra": {}}, "unknown section"),
            ({"gate": {"metric": "auc", "margin": "lots"}}, "margin 'lots' is not a number"),
            ({"gate": GATE, "rollout": {"mode": "blue-green"}}, "unknown rollout mode"),
            ({"gate": GATE, "rollout": {"mode": "canary", "deployment": "a"}},
             "rollout.minutes"),
            ({"gate": GATE, "rollout": {"mode": "canary", "minutes": 5}}, "needs the deploy"),
            ({"gate": GATE, "rollout": {"mode": "shadow", "deployment": "a"}},
             "rollout.requests"),
            ({"gate": GATE, "rollout": {"mode": "canary", "deployment": "a", "minutes": 5,
                                        "percent": 150}}, "between 0 and 100")):
        with pytest.raises(InvalidArgument, match=message):
            parse_policies(mapping)  # type: ignore[arg-type]
    assert GatePolicy(metric="auc").higher_is_better


# -- served for real ---------------------------------------------------------------------------
def test_a_failing_canary_is_rolled_back_with_no_failed_request(
        client: loopml.Client, packages: dict[str, Path], home: Path) -> None:
    from servers import ServerThread, free_port
    from test_serving import Client as HttpClient
    from test_serving import _wait_ready

    from loopml.serving import ServeOptions
    from loopml.serving.server import uvicorn_config

    name = _model(client, packages, "good", "faulty")
    port = free_port()
    options = ServeOptions(deployment=name, port=port, trusted=True, poll_interval_s=0.1,
                           log_flush_s=0.2)
    server = ServerThread(uvicorn_config(options, _settings(home)), wait=False)
    try:
        _wait_ready(server, token=None)  # type: ignore[arg-type]
        policy = RolloutPolicy(mode="canary", deployment=name, percent=50, minutes=10,
                               max_error_rate=0.2, min_requests=5, window_s=10)
        rollout = start_rollout(f"{name}/2", policy=policy, client=client)
        body = json.dumps({"dataframe_records": [{"f0": 0.5, "f1": -1.0, "f2": 2.0}]}).encode()
        http = HttpClient(port, None)
        deadline = time.monotonic() + 20
        while http.request("POST", "/predict", body)[1]["version"] != 2:  # canary loaded
            assert time.monotonic() < deadline, "the canary was never served"
            time.sleep(0.02)
        Faulty.broken = True
        answers: list[tuple[int, Any]] = []

        def send(stop: float) -> None:
            http = HttpClient(port, None)
            while time.monotonic() < stop:
                status, answer, _ = http.request("POST", "/predict", body)
                answers.append((status, answer))

        stop = time.monotonic() + 15
        for _ in itertools.count():
            workers = [threading.Thread(target=send, args=(time.monotonic() + 0.3,))
                       for _ in range(2)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            rollout = advance_rollout(rollout.id, client=client)
            if rollout.finished or time.monotonic() > stop:
                break
        assert rollout.outcome == "rolled_back", rollout.reason
        assert "auto-rollback" in rollout.reason and "error rate" in rollout.reason
        assert answers and {status for status, _ in answers} == {200}
        assert {answer["version"] for _, answer in answers} == {1}
        assert _production(client, name) == 1
        assert Deployments(client.meta).get(name).policy.canary is None
    finally:
        Faulty.broken = False
        server.stop()
    _assert_never_failed(client, name)
