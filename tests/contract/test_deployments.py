"""Deployment records on every metadata backend (SQLite, PostgreSQL): create, change, the
audit timeline, and which version a rollback returns to."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from loopml.deployments import records
from loopml.deployments.api import Deployments
from loopml.deployments.policy import RollbackRule, TrafficPolicy, parse_canary
from loopml.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from loopml.registry import records as registry
from loopml.store import MetadataStore


@pytest.fixture
def meta(database_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(database_url)
    with store.write() as conn:
        for _ in range(4):
            registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn")
        registry.set_alias(conn, "churn", "production", 2, actor="t", reason="")
        registry.set_alias(conn, "churn", "staging", 3, actor="t", reason="")
    yield store
    store.close()


def _move(meta: MetadataStore, alias: str, version: int) -> None:
    time.sleep(0.002)  # events a millisecond apart keep their order on every backend
    with meta.write() as conn:
        registry.set_alias(conn, "churn", alias, version, actor="t", reason="")


def test_create_read_list_and_errors(meta: MetadataStore) -> None:
    deploys = Deployments(meta, actor="ana")
    rule = RollbackRule(max_error_rate=0.05, window_s=10)
    created = deploys.create("churn-api", model="churn@production",
                             canary="churn@staging=10%", shadow="churn/4", rollback=rule)
    assert created.revision == 1
    assert created.policy == TrafficPolicy(model="churn@production",
                                           canary=parse_canary("churn@staging=10%"),
                                           shadow="churn/4", rollback=rule)
    assert created.policy.describe() == "churn@production + 10% churn@staging, shadow churn/4"
    assert deploys.get("churn-api") == created
    deploys.create("other", model="churn/1")
    assert [d.name for d in deploys.list()] == ["churn-api", "other"]
    with pytest.raises(AlreadyExists, match="loopml deploy update churn-api"):
        deploys.create("churn-api", model="churn/1")
    with pytest.raises(NotFound, match="existing deployments: churn-api, other"):
        deploys.get("nope")
    with pytest.raises(NotFound, match="no alias 'gone'"):
        deploys.create("bad", model="churn@gone")
    with pytest.raises(InvalidArgument, match="churn@staging=10%"):
        deploys.create("bad", model="churn/1", canary="churn@staging")
    with pytest.raises(InvalidArgument, match="between 0 and 100"):
        deploys.create("bad", model="churn/1", canary="churn@staging=150%")
    with pytest.raises(InvalidArgument, match="header:NAME"):
        deploys.create("bad", model="churn/1", canary="churn/2=5", sticky="cookie:x")
    [event] = deploys.history("churn-api")
    assert (event.kind, event.model, event.from_version, event.to_version, event.actor) == (
        "created", "churn", None, 2, "ana")


def test_rollback_of_a_canary_pins_the_primary(meta: MetadataStore) -> None:
    deploys = Deployments(meta, actor="ana")
    deploys.create("api", model="churn@production", canary="churn@staging=10%",
                   shadow="churn/4")
    event = deploys.rollback("api", reason="conversion dropped")
    assert (event.kind, event.from_version, event.to_version) == ("rollback", 3, 2)
    assert event.reason == "conversion dropped"
    policy = deploys.get("api").policy
    assert (policy.canary, policy.pinned, policy.shadow) == (None, 2, "churn/4")
    assert deploys.get("api").revision == 2
    _move(meta, "production", 4)  # the pin holds while the alias moves on
    with meta.read() as conn:
        assert registry.resolve(conn, deploys.get("api").policy.primary).version == 2


def test_rollback_follows_the_alias_and_deployment_timeline(meta: MetadataStore) -> None:
    deploys = Deployments(meta, actor="ana")
    deploys.create("api", model="churn@production")
    with pytest.raises(Conflict, match="no earlier version of churn"):
        deploys.rollback("api")
    _move(meta, "production", 3)
    _move(meta, "production", 4)
    event = deploys.rollback("api")
    assert (event.from_version, event.to_version) == (4, 3)
    assert "the move of churn@production to version 4" in event.reason
    event = deploys.rollback("api")  # again: one step further back
    assert (event.from_version, event.to_version) == (3, 2)
    time.sleep(0.002)
    changed = deploys.update("api", model="churn/1", reason="back to basics")
    assert (changed.kind, changed.from_version, changed.to_version) == ("updated", 2, 1)
    assert deploys.get("api").policy.pinned is None
    event = deploys.rollback("api")
    assert (event.from_version, event.to_version) == (1, 2)
    kinds = [e.kind for e in deploys.history("api")]
    assert kinds == ["created", "rollback", "rollback", "updated", "rollback"]


def test_a_server_s_rollback_applies_only_to_the_revision_it_saw(meta: MetadataStore) -> None:
    deploys = Deployments(meta)
    created = deploys.create("api", model="churn@production", canary="churn/3=50")
    with meta.write() as conn:
        first = records.apply_rollback(conn, "api", 2, kind="auto-rollback", actor="server-a",
                                       reason="error rate", revision=created.revision)
        second = records.apply_rollback(conn, "api", 2, kind="auto-rollback",
                                        actor="server-b", reason="error rate",
                                        revision=created.revision)
    assert first is not None and second is None
    assert (first.from_version, first.to_version) == (3, 2)
    assert [e.kind for e in deploys.history("api")] == ["created", "auto-rollback"]


def test_the_embedded_client_manages_deployments(tmp_path) -> None:
    """``client.deployments``: create, update, roll back and read without the CLI."""
    import loopml
    from loopml.deployments import Deployments as Exported

    client = loopml.Client(loopml.load_settings(home=tmp_path / ".loopml", environ={},
                                                config_file=tmp_path / "none.toml"))
    try:
        with client.meta.write() as conn:
            for _ in range(3):
                registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn")
            registry.set_alias(conn, "churn", "production", 2, actor="t", reason="")
        assert isinstance(client.deployments, Exported)
        client.deployments.create("api", model="churn@production", canary="churn/3=10%",
                       rollback=RollbackRule(max_error_rate=0.1))
        event = client.deployments.rollback("api", reason="drift")
        assert (event.kind, event.from_version, event.to_version, event.reason) == (
            "rollback", 3, 2, "drift")
        assert client.deployments.get("api").policy.pinned == 2
        client.deployments.update("api", model="churn@production", shadow="churn/1")
        assert [e.kind for e in client.deployments.history("api")] == [
            "created", "rollback", "updated"]
        [found] = client.deployments.list()
        assert (found.name, found.policy.pinned, found.policy.shadow) == ("api", None,
                                                                         "churn/1")
    finally:
        client.close()
