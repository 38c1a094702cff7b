"""Rollout records on every metadata backend (SQLite, PostgreSQL): written, read, listed,
moved only from the stage the caller saw; and whole rollouts whose steps change the alias,
the deployment, the rollout and the timeline in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import loopml
from loopml.automation import rollout_records as records
from loopml.automation.events import list_events
from loopml.automation.rollout import RolloutPolicy, advance_rollout, start_rollout
from loopml.deployments.api import Deployments
from loopml.errors import Conflict, InvalidArgument, NotFound
from loopml.registry import records as registry

T0 = 1_700_000_000_000


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[loopml.Client]:
    home = tmp_path / ".loopml"
    client = loopml.Client(loopml.load_settings(home=home, database_url=database_url,
                                                progress=False, environ={},
                                                config_file=home / "none.toml"))
    with client.meta.write() as conn:
        for _ in range(3):
            registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn")
        registry.set_alias(conn, "churn", "production", 1, actor="t", reason="")
    Deployments(client.meta, actor="t").create("churn-api", model="churn@production")
    yield client
    client.close()


def test_records_round_trip_list_and_compare_and_set(client: loopml.Client) -> None:
    state = {"policy": {"mode": "canary"}, "numbers": [1.5, None], "text": "é"}
    with client.meta.write() as conn:
        first = records.insert_rollout(conn, model="churn", challenger=2, champion=1,
                                       deployment="churn-api", mode="canary", now=T0,
                                       state=state)
        second = records.insert_rollout(conn, model="churn", challenger=3, champion=1,
                                        deployment=None, mode="direct", now=T0 + 5,
                                        stage="gate", outcome="rejected", reason="worse")
    with client.meta.read() as conn:
        assert records.get_rollout(conn, first.id) == first
        assert first.state == state and first.outcome is None and not first.finished
        assert [r.id for r in records.list_rollouts(conn)] == [second.id, first.id]
        assert [r.id for r in records.list_rollouts(conn, unfinished=True)] == [first.id]
        assert records.list_rollouts(conn, model="other") == []
        assert records.active_rollout(conn, model="churn", deployment=None) == first
        assert records.active_rollout(conn, model="x", deployment="churn-api") == first
        assert records.active_rollout(conn, model="x", deployment="y") is None
        with pytest.raises(NotFound, match="no rollout with id 'nope'"):
            records.get_rollout(conn, "nope")
    with client.meta.write() as conn:
        moved = records.move_rollout(conn, first, stage="canary", now=T0 + 10,
                                     deadline_at=T0 + 100, state={**state, "since": T0})
        assert (moved.stage, moved.deadline_at, moved.updated_at) == ("canary", T0 + 100,
                                                                       T0 + 10)
        with pytest.raises(Conflict, match="moved on meanwhile"):
            records.move_rollout(conn, first, stage="done", now=T0 + 20, outcome="rejected")
        with pytest.raises(InvalidArgument, match="outcome exactly when"):
            records.move_rollout(conn, moved, stage="done", now=T0 + 20)
        with pytest.raises(InvalidArgument, match="unknown rollout mode"):
            records.insert_rollout(conn, model="churn", challenger=2, champion=1,
                                   deployment=None, mode="blue", now=T0)
        done = records.move_rollout(conn, moved, stage="done", now=T0 + 30,
                                    outcome="promoted", reason="fine")
    with client.meta.read() as conn:
        assert records.get_rollout(conn, first.id) == done and done.finished
        assert records.list_rollouts(conn, unfinished=True) == []


def test_rollouts_change_alias_deployment_and_timeline_together(
        client: loopml.Client) -> None:
    direct = start_rollout("churn/2", policy=RolloutPolicy(deployment="churn-api"),
                           client=client, now=T0)
    assert direct.outcome == "promoted"
    assert client.get_model_version("churn@production").version == 2
    canary = RolloutPolicy(mode="canary", deployment="churn-api", minutes=1, min_requests=3)
    rollout = start_rollout("churn/3", policy=canary, client=client, now=T0 + 10)
    assert Deployments(client.meta).get("churn-api").policy.canary is not None
    with pytest.raises(Conflict, match="is not finished"):
        start_rollout("churn/3", policy=canary, client=client, now=T0 + 20)
    ended = advance_rollout(rollout.id, T0 + 10 + 60_000, client=client)
    assert ended.outcome == "rejected" and "fewer than the 3 needed" in ended.reason
    assert Deployments(client.meta).get("churn-api").policy.canary is None
    assert client.get_model_version("churn@production").version == 2
    kinds = [(e.kind, e.version) for e in list_events(client.meta, model="churn",
                                                      include=("automation",))]
    assert kinds == [("rollout_started", 2), ("promoted", 2), ("rollout_started", 3),
                     ("rejected", 3)]
