"""``loopml deploy``: deployments (model, canary, shadow, rollback rule), served and rolled back."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import format_time, print_json, print_table

if TYPE_CHECKING:
    from loopml.deployments.api import Deployments
    from loopml.deployments.policy import RollbackRule

__all__ = ["deploy"]


def _deployments() -> Deployments:
    """The client's deployments (the store's, or the server's with LOOPML_TRACKING_URI)."""
    return open_client().deployments  # type: ignore[no-any-return]


def _policy_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--model", "model", required=True,
                     help="The primary: NAME@ALIAS (followed), NAME/VERSION or NAME."),
        click.option("--canary", default=None,
                     help="MODEL=PERCENT, e.g. churn@staging=10%: that share of requests."),
        click.option("--sticky", default="header:X-Loopml-Key", show_default=True,
                     help="What keeps a caller on one side of the canary: header:NAME or "
                          "field:NAME (a top-level field of the JSON body)."),
        click.option("--shadow", default=None,
                     help="A model that sees a copy of every request and answers nobody."),
        click.option("--rollback-error-rate", type=float, default=None,
                     help="Roll back on its own when the new version fails more than this "
                          "share of requests (e.g. 0.05) over the window."),
        click.option("--rollback-p99-ms", type=float, default=None,
                     help="... or when its p99 latency is over this many ms."),
        click.option("--rollback-window", type=float, default=30.0, show_default=True,
                     help="Seconds of requests the rollback rule looks at."),
        click.option("--rollback-min-requests", type=int, default=20, show_default=True,
                     help="Requests the window must hold before the rule can fire."),
        click.option("--rollback-on-alert", default="",
                     help="... or when monitoring raises an alert of these kinds about it, "
                          "comma-separated: drift, prediction_drift, target_drift, quality, "
                          "performance."),
        click.option("--reason", default="", help="Why (kept in the audit timeline)."),
    ]

    @functools.wraps(command)
    def with_policy(name: str, rollback_error_rate: float | None,
                    rollback_p99_ms: float | None, rollback_window: float,
                    rollback_min_requests: int, rollback_on_alert: str, **policy: Any) -> Any:
        alerts = tuple(k.strip() for k in rollback_on_alert.split(",") if k.strip())
        rule = _rule(rollback_error_rate, rollback_p99_ms, rollback_window,
                     rollback_min_requests, alerts)
        return command(name, rollback=rule, **policy)

    wrapped: Callable[..., Any] = with_policy
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


def _rule(error_rate: float | None, p99_ms: float | None, window: float,
          min_requests: int, alerts: tuple[str, ...]) -> RollbackRule | None:
    if error_rate is None and p99_ms is None and not alerts:
        return None
    from loopml.deployments.policy import RollbackRule

    return RollbackRule(max_error_rate=error_rate, max_p99_ms=p99_ms, window_s=window,
                        min_requests=min_requests, on_alerts=alerts)


def _describe_rule(rule: RollbackRule) -> str:
    limits = []
    if rule.max_error_rate is not None:
        limits.append(f"error rate > {rule.max_error_rate:g}")
    if rule.max_p99_ms is not None:
        limits.append(f"p99 > {rule.max_p99_ms:g} ms")
    text = (f"{' or '.join(limits)} over {rule.window_s:g} s (at least "
            f"{rule.min_requests} requests)") if limits else ""
    if rule.on_alerts:
        text += f"{' or ' if text else ''}a monitoring alert ({', '.join(rule.on_alerts)})"
    return text


def _deployment_dict(d: Any) -> dict[str, Any]:
    return {"name": d.name, "policy": d.policy.to_dict(), "revision": d.revision,
            "created_at": format_time(d.created_at), "updated_at": format_time(d.updated_at)}


def _event_dict(e: Any) -> dict[str, Any]:
    return {"deployment": e.deployment, "kind": e.kind, "model": e.model,
            "from_version": e.from_version, "to_version": e.to_version,
            "policy": e.policy.to_dict(), "actor": e.actor, "reason": e.reason,
            "at": format_time(e.created_at)}


def _moved(e: Any) -> str:
    return (f"{e.deployment}: {e.kind} {e.model} {e.from_version or '-'} -> "
            f"{e.to_version or '-'}" + (f" ({e.reason})" if e.reason else ""))


@click.group()
def deploy() -> None:
    """Deployments: a model with a traffic policy (canary, shadow, automatic rollback)."""


@deploy.command("create")
@click.argument("name")
@_policy_options
def deploy_create(name: str, **policy: Any) -> None:
    """Record deployment NAME serving --model (with a --canary share and a --shadow)."""
    created = _deployments().create(name, **policy)
    click.echo(f"deployment {created.name}: {created.policy.describe()}")


@deploy.command("update")
@click.argument("name")
@_policy_options
def deploy_update(name: str, **policy: Any) -> None:
    """Replace the policy of NAME (this also lifts the pin a rollback left)."""
    event = _deployments().update(name, **policy)
    click.echo(f"{_moved(event)}; now {event.policy.describe()}")


@deploy.command("list")
@json_option
def deploy_list(as_json: bool) -> None:
    """List deployments and what they serve."""
    found = _deployments().list()
    if as_json:
        print_json([_deployment_dict(d) for d in found])
        return
    print_table(["deployment", "serves", "revision", "updated (UTC)"],
                [[d.name, d.policy.describe(), d.revision, format_time(d.updated_at)]
                 for d in found], title=f"{len(found)} deployment(s)")


@deploy.command("show")
@click.argument("name")
@json_option
def deploy_show(name: str, as_json: bool) -> None:
    """Show deployment NAME: its policy and revision."""
    found = _deployments().get(name)
    if as_json:
        print_json(_deployment_dict(found))
        return
    policy = found.policy
    canary = policy.canary
    rule = policy.rollback
    print_table(["field", "value"], [
        ["model", policy.model], ["pinned to", policy.pinned],
        ["canary", f"{canary.model} ({canary.percent:g}%, sticky by {canary.sticky})"
         if canary else None],
        ["shadow", policy.shadow],
        ["rollback rule", None if rule is None else _describe_rule(rule)],
        ["revision", found.revision], ["created (UTC)", format_time(found.created_at)],
        ["updated (UTC)", format_time(found.updated_at)]], title=f"deployment {name}")


@deploy.command("rollback")
@click.argument("name")
@click.option("--reason", default="", help="Why (kept in the audit timeline).")
def deploy_rollback(name: str, reason: str) -> None:
    """Route all traffic of NAME back to its last safe version and pin it there."""
    click.echo(_moved(_deployments().rollback(name, reason=reason)))


@deploy.command("history")
@click.argument("name")
@json_option
def deploy_history(name: str, as_json: bool) -> None:
    """The audit timeline of NAME: created, updated, rollbacks; who, when, why."""
    events = _deployments().history(name)
    if as_json:
        print_json([_event_dict(e) for e in events])
        return
    print_table(["when (UTC)", "event", "model", "from", "to", "who", "why"],
                [[format_time(e.created_at), e.kind, e.model, e.from_version, e.to_version,
                  e.actor, e.reason] for e in events], title=f"history of deployment {name}")


@deploy.command("serve")
@click.argument("name")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="Server processes sharing the port.")
@click.option("--token", default=None,
              help="Bearer token requests must carry (default: the serve_token setting, "
                   "$LOOPML_SERVE_TOKEN; none).")
@click.option("--poll-interval", default=1.0, show_default=True, type=float,
              help="Seconds between looks at the deployment and its aliases.")
@click.option("--log-sample", default=1.0, show_default=True, type=float,
              help="Share of requests written to the payload log (0: no payload log).")
@click.option("--trusted", is_flag=True,
              help="Allow model packages that run code when loaded (pickle).")
def deploy_serve(name: str, host: str, port: int, workers: int, token: str | None,
                 poll_interval: float, log_sample: float, trusted: bool) -> None:
    """Serve deployment NAME over HTTP, following its policy as it changes."""
    from loopml.deployments.api import Deployments
    from loopml.serving.options import ServeOptions
    from loopml.serving.server import serve as run_server

    client = open_client()
    found = Deployments(client.meta).get(name)  # NotFound (listing the deployments) before binding
    if token is None:
        token = client.settings.serve_token or None
    options = ServeOptions(deployment=name, host=host, port=port, workers=workers,
                           token=token, poll_interval_s=poll_interval, log_sample=log_sample,
                           trusted=trusted)
    click.echo(f"serving deployment {name} ({found.policy.describe()}) on http://{host}:"
               f"{port} with {workers} worker(s); GET /ready answers 200 once it is warm",
               err=True)
    run_server(options, client.settings)
