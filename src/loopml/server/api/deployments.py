"""``/api/v1`` deployment endpoints: what ``loopml deploy`` and ``client.deployments`` do.

======  ==========================================  =========================================
GET     /api/v1/deployments                         every deployment
POST    /api/v1/deployments                         create ``{name, model, canary, shadow,
                                                    sticky, rollback, reason}`` (201)
GET     /api/v1/deployments/{name}                  one deployment
PUT     /api/v1/deployments/{name}                  replace its policy (the body of POST
                                                    without ``name``); its event
POST    /api/v1/deployments/{name}/rollback         back to its last safe version
                                                    ``{reason}``; its event
GET     /api/v1/deployments/{name}/history          its audit timeline
======  ==========================================  =========================================

``canary`` is ``"MODEL=PERCENT"`` (with ``sticky``) or ``{model, percent, sticky}``;
``rollback`` is ``{max_error_rate, max_p99_ms, window_s, min_requests, ...}`` (the fields
of :class:`~loopml.deployments.policy.RollbackRule`). Every change
records who made it: the token's name when auth is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.errors import InvalidArgument
from loopml.server.api.common import API, actor, body_object, call, client, get_str, json_response

if TYPE_CHECKING:
    from loopml.deployments.api import Deployments
    from loopml.deployments.policy import Canary, RollbackRule
    from loopml.deployments.records import Deployment, DeploymentEvent

__all__ = ["deployment_out", "event_out", "routes"]


def deployment_out(found: Deployment) -> dict[str, Any]:
    return {"id": found.id, "name": found.name, "policy": found.policy.to_dict(),
            "revision": found.revision, "created_at": found.created_at,
            "updated_at": found.updated_at}


def event_out(event: DeploymentEvent) -> dict[str, Any]:
    return {"deployment": event.deployment, "kind": event.kind, "model": event.model,
            "from_version": event.from_version, "to_version": event.to_version,
            "policy": event.policy.to_dict(), "actor": event.actor, "reason": event.reason,
            "created_at": event.created_at}


def _deployments(request: Request, claimed: str | None = None) -> Deployments:
    from loopml.deployments.api import Deployments

    return Deployments(client(request).meta, actor=actor(request, claimed))


def _name(request: Request) -> str:
    """The deployment named in the path (an unknown or malformed one: NotFound, as on the
    embedded client)."""
    return str(request.path_params["name"])


def _value(cls: type, body: dict[str, Any], field: str) -> Any:
    """``cls(**body[field])`` (None when absent), its keys checked against ``cls``'s fields."""
    import dataclasses

    allowed = tuple(f.name for f in dataclasses.fields(cls))
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument(f"field {field!r} must be an object of {', '.join(allowed)}, "
                              f"got {value!r:.80}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise InvalidArgument(f"field {field!r} has unknown key(s) {', '.join(unknown)}; "
                              f"use {', '.join(allowed)}")
    try:
        return cls(**value)
    except TypeError as exc:  # a required key is missing
        raise InvalidArgument(f"field {field!r} is incomplete ({exc}); give "
                              f"{', '.join(allowed)}") from None


def _number_fields(value: Any, field: str, names: tuple[str, ...]) -> None:
    for name in names:
        got = value.get(name) if isinstance(value, dict) else None
        if got is not None and (isinstance(got, bool) or not isinstance(got, int | float)):
            raise InvalidArgument(f"field {field}.{name} must be a number, got {got!r:.80}")


def _policy(body: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``Deployments.create`` / ``update`` from a request body."""
    from loopml.deployments.policy import DEFAULT_STICKY, Canary, RollbackRule

    canary: str | Canary | None
    raw = body.get("canary")
    if raw is None or isinstance(raw, str):
        canary = raw
    else:
        _number_fields(raw, "canary", ("percent",))
        canary = _value(Canary, body, "canary")
    _number_fields(body.get("rollback"), "rollback",
                   ("max_error_rate", "max_p99_ms", "window_s", "min_requests"))
    rollback: RollbackRule | None = _value(RollbackRule, body, "rollback")
    return {"model": get_str(body, "model"), "canary": canary,
            "shadow": get_str(body, "shadow", None),
            "sticky": get_str(body, "sticky", DEFAULT_STICKY), "rollback": rollback,
            "reason": get_str(body, "reason", "")}


async def list_deployments(request: Request) -> Response:
    """Every deployment, by name."""
    found = await call(_deployments(request).list)
    return json_response({"deployments": [deployment_out(d) for d in found]})


async def create_deployment(request: Request) -> Response:
    """Record a deployment serving ``model`` (with a ``canary`` share and a ``shadow``)."""
    body = await body_object(request)
    name = get_str(body, "name")
    policy = _policy(body)
    deploys = _deployments(request, get_str(body, "actor", None))
    created = await call(deploys.create, name, **policy)
    return json_response(deployment_out(created), status=201)


async def get_deployment(request: Request) -> Response:
    """One deployment: its policy and revision."""
    found = await call(_deployments(request).get, _name(request))
    return json_response(deployment_out(found))


async def update_deployment(request: Request) -> Response:
    """Replace the policy of a deployment (lifting a rollback's pin)."""
    name = _name(request)
    body = await body_object(request)
    policy = _policy(body)
    deploys = _deployments(request, get_str(body, "actor", None))
    return json_response(event_out(await call(deploys.update, name, **policy)))


async def rollback_deployment(request: Request) -> Response:
    """Route all traffic back to the last safe version and pin it there: ``{reason}``."""
    name = _name(request)
    body = await body_object(request)
    deploys = _deployments(request, get_str(body, "actor", None))
    event = await call(deploys.rollback, name, reason=get_str(body, "reason", ""))
    return json_response(event_out(event))


async def deployment_history(request: Request) -> Response:
    """The audit timeline of a deployment, oldest first."""
    found = await call(_deployments(request).history, _name(request))
    return json_response({"events": [event_out(e) for e in found]})


def routes() -> list[BaseRoute]:
    one = f"{API}/deployments/{{name}}"
    return [
        Route(f"{API}/deployments", list_deployments, methods=["GET"]),
        Route(f"{API}/deployments", create_deployment, methods=["POST"]),
        Route(one, get_deployment, methods=["GET"]),
        Route(one, update_deployment, methods=["PUT"]),
        Route(f"{one}/rollback", rollback_deployment, methods=["POST"]),
        Route(f"{one}/history", deployment_history, methods=["GET"]),
    ]
