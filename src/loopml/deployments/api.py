"""Deployments for a caller holding a metadata store: each method is one transaction.

::

    deploys = Deployments(client.meta)
    deploys.create("churn-api", model="churn@production", canary="churn@staging=10%",
                   shadow="churn/7")
    deploys.rollback("churn-api", reason="conversion dropped")
    for event in deploys.history("churn-api"):
        print(event.kind, event.from_version, event.to_version, event.reason)
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from loopml.deployments import records
from loopml.deployments.policy import (
    DEFAULT_STICKY,
    Canary,
    RollbackRule,
    TrafficPolicy,
    parse_canary,
)
from loopml.deployments.records import Deployment, DeploymentEvent
from loopml.tracking.context import current_user

if TYPE_CHECKING:
    from loopml.store import MetadataStore

__all__ = ["Deployments", "build_policy"]


def build_policy(*, model: str, canary: str | Canary | None = None,
                 shadow: str | None = None, sticky: str = DEFAULT_STICKY,
                 rollback: RollbackRule | None = None) -> TrafficPolicy:
    """A policy from the words of the CLI (``canary="churn@staging=10%"``)."""
    if isinstance(canary, str):
        canary = parse_canary(canary, sticky=sticky)
    return TrafficPolicy(model=model, canary=canary, shadow=shadow, rollback=rollback)


class Deployments:
    """Create, change, roll back and read deployments."""

    def __init__(self, meta: MetadataStore, *, actor: str | None = None) -> None:
        self.meta = meta
        self.actor = current_user() if actor is None else actor

    def create(self, name: str, *, model: str, canary: str | Canary | None = None,
               shadow: str | None = None, sticky: str = DEFAULT_STICKY,
               rollback: RollbackRule | None = None, reason: str = "") -> Deployment:
        policy = build_policy(model=model, canary=canary, shadow=shadow, sticky=sticky,
                              rollback=rollback)
        with self.meta.write() as conn:
            return records.create_deployment(conn, name, policy, actor=self.actor,
                                             reason=reason)

    def update(self, name: str, *, model: str, canary: str | Canary | None = None,
               shadow: str | None = None, sticky: str = DEFAULT_STICKY,
               rollback: RollbackRule | None = None, reason: str = "") -> DeploymentEvent:
        """Replace the policy of ``name`` (lifting a rollback's pin)."""
        policy = build_policy(model=model, canary=canary, shadow=shadow, sticky=sticky,
                              rollback=rollback)
        with self.meta.write() as conn:
            return records.update_deployment(conn, name, policy, actor=self.actor,
                                             reason=reason)

    def get(self, name: str) -> Deployment:
        with self.meta.read() as conn:
            return records.get_deployment(conn, name)

    def list(self) -> list[Deployment]:
        with self.meta.read() as conn:
            return records.list_deployments(conn)

    def history(self, name: str) -> builtins.list[DeploymentEvent]:
        with self.meta.read() as conn:
            return records.deployment_history(conn, name)

    def rollback(self, name: str, *, reason: str = "") -> DeploymentEvent:
        """Route all traffic of ``name`` back to its last safe version and pin it there."""
        with self.meta.write() as conn:
            return records.rollback_deployment(conn, name, actor=self.actor, reason=reason)
