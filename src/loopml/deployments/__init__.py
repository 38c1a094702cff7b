"""Deployments: what serves which model versions, and the payload log servers write.

``tables`` (migration 0007) holds deployments, their audit timeline of events and the index
of the payload log. ``policy`` is a deployment's traffic policy (primary, canary, shadow,
rollback rule); ``records`` the functions over a connection that create, change and roll
them back; ``api`` the same for a caller holding a metadata store (one transaction each).
``payload`` records and reads the payload log; ``lookup`` answers which version an alias
points to, cheaply enough to poll every second.

::

    client.deployments.create("churn-api", model="churn@production", shadow="churn/7")

``Deployments`` (and the policy values) are imported on first access: the package itself
loads nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

__all__ = ["Canary", "Deployments", "RollbackRule", "TrafficPolicy"]

_EXPORTS = {"Deployments": "loopml.deployments.api", "Canary": "loopml.deployments.policy",
            "RollbackRule": "loopml.deployments.policy",
            "TrafficPolicy": "loopml.deployments.policy"}

if TYPE_CHECKING:
    from loopml.deployments.api import Deployments
    from loopml.deployments.policy import Canary, RollbackRule, TrafficPolicy

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
