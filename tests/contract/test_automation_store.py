"""Automation on every metadata backend (SQLite, PostgreSQL): the events timeline, trigger
state and firings claimed once, the leader lease with two contenders, two agents of which
exactly one acts, retries, hand-off of candidates, and recovery after a dead agent."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import loopml
from loopml.automation import records
from loopml.automation.agent import Agent, fire_trigger
from loopml.automation.events import list_events, record_event
from loopml.automation.lease import Lease, LeaseKeeper
from loopml.automation.project import AgentOptions, Project
from loopml.automation.triggers import ManualTrigger
from loopml.client import Client
from loopml.deployments.api import Deployments
from loopml.errors import InvalidArgument
from loopml.monitoring import records as monitoring
from loopml.pipelines import pipeline, step
from loopml.pipelines.context import current_step
from loopml.registry import records as registry
from loopml.store import MetadataStore

CALLS = {"flaky": 0}


@step(cache=False)
def flaky(fail_times: int) -> int:
    CALLS["flaky"] += 1
    if CALLS["flaky"] <= fail_times:
        raise RuntimeError(f"boom {CALLS['flaky']}")
    return CALLS["flaky"]


@step(cache=False)
def publish(value: int) -> int:
    context = current_step()
    assert context is not None
    with context.client.meta.write() as conn:  # a registration without a package
        registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn",
                                run_id=context.pipeline_run_id, metrics={"auc": 0.9})
    return value


@pipeline
def retrain(fail_times: int = 0):
    publish(flaky(fail_times))


@pytest.fixture
def meta(database_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(database_url)
    yield store
    store.close()


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[Client]:
    CALLS["flaky"] = 0
    client = Client(loopml.load_settings(home=tmp_path / ".loopml", database_url=database_url,
                                         progress=False))
    yield client
    client.close()


def _project(*, fail_times: int = 0, max_retries: int = 1, min_interval: float = 0.0,
             ttl: float | None = None) -> Project:
    trigger = ManualTrigger(name="by-hand", pipeline=retrain, model="churn",
                            params={"fail_times": fail_times}, max_retries=max_retries,
                            retry_delay=0.0, min_interval=min_interval)
    return Project(triggers=(trigger,), agent=AgentOptions(lease_ttl=ttl, stop_timeout=30))


def _kinds(meta: MetadataStore) -> list[str]:
    return [e.kind for e in list_events(meta, include=("automation",))]


# -- the timeline ----------------------------------------------------------------------------
def test_events_record_list_filter_and_merge(meta: MetadataStore) -> None:
    with meta.write() as conn:
        registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn")
    first = record_event(meta, "trigger_fired", trigger="t", model="churn",
                         reason="1,200 new rows", data={"new": 1200, "ratio": 0.25})
    time.sleep(0.003)
    Deployments(meta, actor="ana").create("churn-api", model="churn/1", reason="first")
    time.sleep(0.003)
    with meta.write() as conn:
        monitoring.insert_alert(conn, endpoint="churn-api", kind="drift", model="churn",
                                version=1, message="age drifted", window=(1, 2), value=0.4,
                                threshold=0.2)
    time.sleep(0.003)
    with meta.write() as conn:
        last = record_event(conn, "promoted", model="churn", version=2, deployment="churn-api")
    timeline = list_events(meta)
    assert [(e.kind, e.source) for e in timeline] == [
        ("trigger_fired", "automation"), ("deploy_created", "deployments"),
        ("alert_drift", "monitoring"), ("promoted", "automation")]
    assert timeline[0] == first and first.data == {"new": 1200, "ratio": 0.25}
    assert timeline[1].reason == "first" and timeline[1].deployment == "churn-api"
    assert timeline[2].reason == "age drifted" and timeline[2].data["value"] == 0.4
    assert timeline[-1] == last
    assert [e.kind for e in list_events(meta, since=last.at)] == ["promoted"]
    assert [e.kind for e in list_events(meta, kind="alert_drift")] == ["alert_drift"]
    assert [e.kind for e in list_events(meta, deployment="churn-api")] == [
        "deploy_created", "alert_drift", "promoted"]
    assert [e.kind for e in list_events(meta, limit=2)] == ["alert_drift", "promoted"]
    assert list_events(meta, model="other") == []
    with pytest.raises(InvalidArgument, match="invalid event kind 'Not A Kind'"):
        record_event(meta, "Not A Kind")
    with pytest.raises(InvalidArgument, match="unknown event source"):
        list_events(meta, include=("nope",))


# -- trigger state ---------------------------------------------------------------------------
def test_firing_is_claimed_once_and_one_retrain_runs_per_pipeline(meta: MetadataStore) -> None:
    with meta.write() as conn:
        state = records.load_state(conn, "a", now=1000)
        records.load_state(conn, "b", now=1000)
        records.request_fire(conn, "a", by="ana")
    with meta.write() as conn:
        run = records.claim_firing(conn, state, pipeline="p.py:x", holder="agent-1",
                                   max_attempts=2, now=2000, manual=True, last_alert_id=7,
                                   baseline={"dataset_version": 3})
    assert run is not None and run.status == "running" and run.attempt == 1
    with meta.write() as conn:  # the same state read again: someone fired it already
        assert records.claim_firing(conn, state, pipeline="q.py:y", holder="agent-2",
                                    max_attempts=1) is None
        other = records.get_state(conn, "b")
        assert other is not None  # another trigger of the same pipeline waits
        assert records.claim_firing(conn, other, pipeline="p.py:x", holder="agent-1",
                                    max_attempts=1) is None
        saved = records.get_state(conn, "a")
    assert saved is not None and saved.last_fired_at == 2000 and saved.last_alert_id == 7
    assert saved.fire_requested_at is None and saved.baseline == {"dataset_version": 3}
    with meta.write() as conn:
        assert not records.finish_run(conn, run, holder="agent-2", succeeded=True, run_id="r")
        assert records.take_over_run(conn, run, holder="agent-2")
        assert not records.take_over_run(conn, run, holder="agent-3")  # agent-1 is gone
        assert records.finish_run(conn, run, holder="agent-2", succeeded=True, run_id="r",
                                  model="churn", version=4)
        done = records.get_run(conn, run.id)
        assert (done.status, done.candidate, done.version) == ("succeeded", "pending", 4)
        assert records.take_candidate(conn, done)
        assert not records.take_candidate(conn, done)
        assert records.running_run(conn, "p.py:x") is None
        assert records.set_error(conn, "b", "boom") and not records.set_error(conn, "b", "boom")


# -- the lease -------------------------------------------------------------------------------
def test_lease_has_one_holder_and_passes_on_after_expiry_or_release(
        meta: MetadataStore) -> None:
    first, second = (Lease(meta, name="leader", holder=h, ttl=1.0) for h in ("a", "b"))
    wins: list[str] = []
    barrier = threading.Barrier(2)

    def contend(lease: Lease) -> None:
        barrier.wait()
        if lease.acquire():
            wins.append(lease.holder)

    threads = [threading.Thread(target=contend, args=(lease,)) for lease in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    leader, other = (first, second) if wins == ["a"] else (second, first)
    assert leader.held and not other.held
    renewed = time.monotonic()
    assert leader.acquire() and not other.acquire()  # renewal by the holder only
    # the leader stops renewing (a crash): the other takes over only after expiry
    while not other.acquire():
        time.sleep(0.02)
    assert time.monotonic() - renewed >= 0.95
    assert other.held
    assert not leader.acquire() and not leader.held
    info = other.info()
    assert info is not None and info.holder == other.holder
    # a release hands it over at once
    other.release()
    assert leader.acquire()


def test_lease_keeper_renews_in_the_background(meta: MetadataStore) -> None:
    changes: list[bool] = []
    keeper = LeaseKeeper(Lease(meta, name="kept", holder="a", ttl=0.9), on_change=changes.append)
    keeper.start()
    try:
        time.sleep(1.2)  # longer than the time to live: renewals keep it
        assert keeper.lease.held
        assert not Lease(meta, name="kept", holder="b", ttl=0.9).acquire()
    finally:
        keeper.stop()
    assert changes == [True]
    assert Lease(meta, name="kept", holder="b", ttl=0.9).acquire()  # released on stop


# -- agents ----------------------------------------------------------------------------------
def test_agent_retries_a_failed_run_and_hands_the_candidate(client: Client) -> None:
    handed: list[tuple[Any, Any]] = []
    agent = Agent(_project(fail_times=1), client=client,
                  on_candidate=lambda version, trigger: handed.append((version, trigger)))
    fire_trigger("by-hand", project=agent.project, client=client, by="ana")
    agent.run(once=True)
    meta = client.meta
    assert _kinds(meta) == ["trigger_fired", "run_started", "run_failed", "run_started",
                            "run_succeeded", "candidate"]
    timeline = list_events(meta)
    failed, resumed, succeeded, candidate = timeline[2:6]
    assert "attempt 1 of 2 failed: step 'flaky' failed" in failed.reason
    assert "RuntimeError: boom 1" in failed.reason and failed.data["retry"] is True
    assert "resumed as attempt 2" in resumed.reason and resumed.run_id != failed.run_id
    assert succeeded.version == 1 and "registered churn v1" in succeeded.reason
    assert candidate.version == 1 and candidate.run_id == succeeded.run_id
    assert [(v.model, v.version) for v, _ in handed] == [("churn", 1)]
    assert handed[0][1].name == "by-hand"
    with meta.read() as conn:
        assert records.list_runs(conn, candidate="handed")[0].attempt == 2
    agent.run(once=True)  # nothing requested: nothing fires, nothing is handed twice
    assert len(handed) == 1 and _kinds(meta)[-1] == "candidate"


def test_a_failing_hand_off_is_recorded_and_retried_then_given_up(client: Client) -> None:
    """The rollout policy failing on a candidate never drops it silently: each failure is
    an event with the reason, the candidate is handed again on the next evaluation, up to
    three attempts; a later success ends the retries."""
    failures = {"left": 2}
    handed: list[int] = []

    def hook(version: Any, trigger: Any) -> None:
        handed.append(version.version)
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError(f"deployment away ({failures['left']} more)")

    agent = Agent(_project(), client=client, on_candidate=hook)
    fire_trigger("by-hand", project=agent.project, client=client)
    agent.run(once=True)
    agent.run(once=True)
    agent.run(once=True)
    agent.run(once=True)  # handed: nothing more to do
    assert handed == [1, 1, 1]
    failed = [e for e in list_events(client.meta) if e.kind == "candidate_failed"]
    assert [e.data["attempt"] for e in failed] == [1, 2]
    assert failed[0].reason == (
        "the rollout policy failed on churn v1 (attempt 1 of 3): RuntimeError: deployment "
        "away (1 more); handing it again on the next evaluation")
    assert failed[0].trigger == "by-hand" and failed[0].version == 1
    assert _kinds(client.meta).count("candidate") == 1
    with client.meta.read() as conn:
        assert records.list_runs(conn)[0].candidate == "handed"

    failures["left"] = 99  # the second retrain's candidate fails every time
    fire_trigger("by-hand", project=agent.project, client=client)
    for _ in range(4):
        agent.run(once=True)
    assert handed == [1, 1, 1, 2, 2, 2]
    last = [e for e in list_events(client.meta) if e.kind == "candidate_failed"][-1]
    assert last.version == 2 and last.data["gave_up"] is True
    assert "(attempt 3 of 3)" in last.reason and "giving up: nothing was promoted; hand it " \
        "again with loopml.automation.on_candidate('churn/2', 'by-hand')" in last.reason
    with client.meta.read() as conn:
        assert records.list_runs(conn)[0].candidate == "failed"
        assert records.waiting_candidates(conn) == []


def test_rollouts_advance_with_a_hook_of_the_caller(client: Client) -> None:
    """``run(once=True)`` with a custom ``on_candidate`` still advances unfinished
    rollouts (here one an agent left recorded but not taken: it is promoted)."""
    from loopml.automation import rollout_records
    from loopml.automation.rollout import RolloutPolicy, get_rollout

    with client.meta.write() as conn:
        registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn")
        left = rollout_records.insert_rollout(
            conn, model="churn", challenger=1, champion=None, deployment=None,
            mode="direct", now=1000, state={"policy": RolloutPolicy().to_dict(),
                                            "trigger": "by-hand", "gate": {"passed": True}})
    Agent(_project(), client=client, on_candidate=lambda version, trigger: None).run(
        once=True)
    assert get_rollout(left.id, client=client).outcome == "promoted"
    assert client.get_model_version("churn@production").version == 1


def test_agent_gives_up_after_its_retries(client: Client) -> None:
    agent = Agent(_project(fail_times=5, max_retries=1), client=client,
                  on_candidate=lambda version, trigger: None)
    fire_trigger("by-hand", project=agent.project, client=client)
    agent.run(once=True)
    last = list_events(client.meta)[-1]
    assert last.kind == "run_failed" and "attempt 2 of 2 failed" in last.reason
    assert "giving up" in last.reason and CALLS["flaky"] == 2


def test_debounce_minimum_interval_and_a_request_by_hand(client: Client) -> None:
    clock = {"now": 1_000_000}
    agent = Agent(_project(min_interval=600), client=client, clock=lambda: clock["now"],
                  on_candidate=lambda version, trigger: None)
    agent.lease.acquire()
    fire_trigger("by-hand", project=agent.project, client=client)
    assert [f.trigger for f in agent.tick().fired] == ["by-hand"]
    agent.wait_for_runs()
    # a request by hand bypasses the minimum interval; a second one waits for the first run
    fire_trigger("by-hand", project=agent.project, client=client)
    clock["now"] += 1000
    assert len(agent.tick().fired) == 1
    fire_trigger("by-hand", project=agent.project, client=client)
    # (the retrain may still run: then it waits, else it fires: either way, never twice)
    agent.wait_for_runs()
    agent.tick()
    agent.wait_for_runs()
    assert _kinds(client.meta).count("trigger_fired") == 3
    assert agent.tick().fired == ()


def test_two_agents_exactly_one_acts_and_the_other_takes_over(client: Client) -> None:
    project = _project(ttl=2.0)
    logs: list[str] = []
    agents = [Agent(project, client=client, interval=0.05, holder=name,
                    on_candidate=lambda version, trigger: None, log=logs.append)
              for name in ("one", "two")]
    threads = [threading.Thread(target=a.run) for a in agents]
    for thread in threads:
        thread.start()
    try:
        _wait(lambda: sum(a.lease.held for a in agents) == 1)
        fire_trigger("by-hand", project=project, client=client)
        _wait(lambda: "run_succeeded" in _kinds(client.meta))
        fired = [e for e in list_events(client.meta) if e.kind == "trigger_fired"]
        leader = next(a for a in agents if a.lease.held)
        follower = next(a for a in agents if a is not leader)
        assert [e.actor for e in fired] == [leader.holder]
        leader.stop()  # a graceful stop releases the lease: the other leads at once
        threads[agents.index(leader)].join(10)
        _wait(lambda: follower.lease.held)
        fire_trigger("by-hand", project=project, client=client)
        _wait(lambda: _kinds(client.meta).count("run_succeeded") == 2)
        fired = [e for e in list_events(client.meta) if e.kind == "trigger_fired"]
        assert [e.actor for e in fired] == [leader.holder, follower.holder]
    finally:
        for agent in agents:
            agent.stop()
        for thread in threads:
            thread.join(10)
    kinds = _kinds(client.meta)
    assert kinds.count("agent_started") == 2 and kinds.count("agent_stopped") == 2


def test_restart_resumes_a_retrain_whose_agent_died(client: Client) -> None:
    meta = client.meta
    from loopml.errors import StepFailed

    with pytest.raises(StepFailed) as failed:
        retrain.run(fail_times=1, client=client, progress=False)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    with meta.write() as conn:  # what an agent killed mid-run leaves behind
        state = records.load_state(conn, "by-hand")
        run = records.claim_firing(conn, state, pipeline=retrain.source, holder="dead-agent",
                                   max_attempts=2, model="churn")
        assert run is not None
        records.set_run_attempt(conn, run, holder="dead-agent", attempt=1,
                                run_id=failed.value.run_id)
        conn.execute(records.automation_runs.update().values(pid=int(dead.stdout)))
    agent = Agent(_project(), client=client, on_candidate=lambda version, trigger: None)
    agent.run(once=True)
    kinds = _kinds(meta)
    assert kinds == ["run_failed", "run_started", "run_succeeded", "candidate"]
    interrupted = list_events(meta)[0]
    assert "the agent driving this retrain (dead-agent) is gone" in interrupted.reason
    assert "resuming it" in interrupted.reason
    with meta.read() as conn:
        done = records.get_run(conn, run.id)
    assert (done.status, done.attempt, done.holder) == ("succeeded", 2, agent.holder)
    agent.run(once=True)  # nothing left to recover, nothing fires twice
    assert _kinds(meta) == kinds


def _wait(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
