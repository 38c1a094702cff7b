"""Rollouts: a version that passed its gate goes live directly, in the shadow of the
champion, or as a canary, and ends promoted (the alias moves to it), rejected or rolled back.

::

    gate, rollout = parse_policies({"gate": {"metric": "auc", "margin": 0.01},
                                    "rollout": {"mode": "canary", "percent": 10,
                                                "minutes": 30, "deployment": "churn-api"}})
    rollout = on_candidate("churn/7", "new-data", policy=(gate, rollout))
    ...                                    # the agent, every few seconds:
    resume_rollouts()                      # advances every unfinished rollout

**Modes.** ``direct``: move the alias (``production``) to the challenger and point the
deployment at it. ``shadow``: the deployment mirrors each request to the challenger, which
answers nobody; after ``requests`` mirrored requests or ``minutes``, the answers are
compared with the champion's (agreement, failures, p99 latency and, where labels arrived,
the online metric: see :mod:`.rollout_evidence`), then promote or reject. ``canary``:
``percent`` of the traffic goes to the challenger for ``minutes``, under the deployment's
automatic rollback rule built from the thresholds (the server moves all traffic back at
once on a breach, failing no request); if the server rolled back, the rollout is
``rolled_back``; else at the deadline the payload log decides: promote (alias to the
challenger, deployment primary = challenger, canary removed) or roll back (canary removed,
alias untouched).

**The first version.** With no champion yet and no deployment of the policy's name, the
version goes live directly whatever the mode (a shadow or a canary has nothing to be
compared with) and the rollout creates the deployment, serving the alias (recorded in the
deployment's log, ``deploy_created`` in the timeline). Once a version is in production, a
missing deployment is a :class:`~loopml.errors.NotFound` that says how to create it.

**Crash safety.** A rollout is a row of ``automation_rollouts`` whose stage changes in the
same transaction as the alias move, the deployment change and the event it records; a stage
changes only if the row is still at the stage its caller read. So a controller that dies
mid-rollout leaves a stage with all of its effects or none, and on restart
:func:`resume_rollouts` continues each unfinished rollout from its stored stage, or ends it
``rejected`` with the alias untouched when it cannot go on: the deployment's policy from
before the rollout is restored when a version it needs disappeared, and left alone when
someone else changed the deployment meanwhile. Times (``now``) are ms since the epoch
(UTC); tests pass a fake clock. The alias is
only moved to a version whose recorded gate passed (or that had no gate), and
:func:`start_rollout` refuses a failed gate: the production alias never points at a version
that failed its gate.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopml.automation import rollout_records as records
from loopml.automation.events import record_event
from loopml.automation.gate import GatePolicy, GateResult, evaluate_gate
from loopml.automation.rollout_evidence import read_evidence
from loopml.automation.rollout_policy import (
    RolloutPolicy,
    health,
    online_worse,
    parse_policies,
    shadow_problem,
    summary,
)
from loopml.automation.rollout_records import Rollout
from loopml.deployments import records as deployments
from loopml.deployments.policy import Canary, TrafficPolicy
from loopml.errors import BackendUnavailable, Conflict, InvalidArgument, LoopmlError, NotFound
from loopml.registry import records as registry
from loopml.registry.refs import ModelRef, parse_model_ref
from loopml.tracking.records import now_ms

if TYPE_CHECKING:
    from loopml.client.embedded import Client

__all__ = ["Rollout", "RolloutPolicy", "advance_rollout", "get_rollout", "list_rollouts",
           "on_candidate", "parse_policies", "resume_rollouts", "start_rollout"]

_MINUTE_MS = 60_000
logger = logging.getLogger("loopml.automation")


# -- the store side ------------------------------------------------------------------------
def _client(client: Client | None) -> Client:
    if client is not None:
        return client
    from loopml.client.fluent import default_client

    return default_client()


def _actor() -> str:
    return f"loopml-agent@{socket.gethostname()}"[:256]


def get_rollout(rollout_id: str, *, client: Client | None = None) -> Rollout:
    with _client(client).meta.read() as conn:
        return records.get_rollout(conn, rollout_id)


def list_rollouts(*, model: str | None = None, unfinished: bool = False,
                  client: Client | None = None) -> list[Rollout]:
    with _client(client).meta.read() as conn:
        return records.list_rollouts(conn, model=model, unfinished=unfinished)


def _alias_version(conn: sa.Connection, model: str, alias: str) -> int | None:
    try:
        return registry.resolve(conn, ModelRef(model, alias=alias)).version
    except NotFound:
        return None


def _policy(rollout: Rollout) -> RolloutPolicy:
    return RolloutPolicy(**rollout.state["policy"])


def _event(conn: sa.Connection, rollout: Rollout, kind: str, reason: str,
           data: Mapping[str, Any], now: int) -> None:
    record_event(conn, kind, trigger=rollout.state.get("trigger", ""), model=rollout.model,
                 version=rollout.challenger, deployment=rollout.deployment or "",
                 run_id=rollout.state.get("run_id"), actor=_actor(), reason=reason,
                 data={"rollout": rollout.id, "mode": rollout.mode,
                       "champion": rollout.champion, **data}, at=now)


def start_rollout(challenger: str, *, policy: RolloutPolicy, gate: GateResult | None = None,
                  trigger: str = "", client: Client | None = None,
                  now: int | None = None) -> Rollout:
    """Record a rollout of ``challenger`` (``churn/7``) under ``policy`` and take its first
    step (a direct rollout is promoted at once). :class:`Conflict` when the gate failed or
    another rollout of the model or deployment is unfinished."""
    client = _client(client)
    now = now_ms() if now is None else now
    ref = parse_model_ref(challenger)
    requested = policy.mode
    if gate is not None and not gate.passed:
        raise Conflict(f"{challenger} failed its gate ({gate.reason}); a version that failed "
                       "its gate is never rolled out")
    with client.meta.write() as conn:
        version = registry.resolve(conn, ref)
        if gate is not None and gate.challenger != version.ref:
            raise InvalidArgument(f"the gate result is about {gate.challenger}, not "
                                  f"{version.ref}; evaluate the gate of {version.ref}")
        busy = records.active_rollout(conn, model=version.model, deployment=policy.deployment)
        if busy is not None:
            raise Conflict(f"rollout {busy.id} of {busy.challenger_ref} ({busy.mode}, stage "
                           f"{busy.stage}) is not finished; one rollout at a time per model "
                           "and deployment")
        champion = _alias_version(conn, version.model, policy.alias)
        served = _served(conn, policy, version.ref, champion)
        first = policy.deployment is not None and served is None
        if first and policy.mode != "direct":  # nothing to share traffic with: go live
            policy = dataclasses.replace(policy, mode="direct")
        if policy.deployment is not None and served is not None:
            if served.primary.name != version.model:
                raise InvalidArgument(f"deployment {policy.deployment!r} serves "
                                      f"{served.model}, not model {version.model!r}; name the "
                                      "deployment of this model in rollout.deployment")
            if policy.mode == "canary" and served.canary is not None:
                raise Conflict(f"deployment {policy.deployment!r} has a canary already "
                               f"({served.canary.model}); finish it (loopml deploy update) "
                               "before a canary rollout")
        if champion == version.version:
            raise Conflict(f"{version.ref} is {version.model}@{policy.alias} already; "
                           "there is nothing to roll out")
        state = {"policy": policy.to_dict(), "trigger": trigger, "run_id": version.run_id,
                 "gate": None if gate is None else gate.to_dict(), "create_deployment": first}
        rollout = records.insert_rollout(conn, model=version.model,
                                         challenger=version.version, champion=champion,
                                         deployment=policy.deployment, mode=policy.mode,
                                         now=now, state=state)
        champ = f"{version.model}/{champion}" if champion else "no champion"
        reason = f"{_mode_words(policy)} rollout of {version.ref} against {champ}" + (
            f" on {policy.deployment}" if policy.deployment else "")
        if first:
            reason += (f" (the first version, and deployment {policy.deployment!r} does not "
                       f"exist yet: it is created serving {version.model}@{policy.alias}"
                       + (f"; the {requested} needs a champion, there is none"
                          if requested != "direct" else "") + ")")
        _event(conn, rollout, "rollout_started", reason, {"policy": policy.to_dict()}, now)
    return advance_rollout(rollout.id, now, client=client)


def _served(conn: sa.Connection, policy: RolloutPolicy, challenger: str,
            champion: int | None) -> TrafficPolicy | None:
    """What ``policy.deployment`` serves; None when it names none or, for the first
    version of a model (no champion), when the deployment does not exist yet (the rollout
    creates it). :class:`NotFound` when a model in production has no such deployment."""
    if policy.deployment is None:
        return None
    try:
        return deployments.get_deployment(conn, policy.deployment).policy
    except NotFound:
        if champion is None:
            return None
        model = parse_model_ref(challenger).name
        raise NotFound(
            f"deployment {policy.deployment!r} does not exist, so the {policy.mode} rollout "
            f"of {challenger} has nothing to go live on ({model}@{policy.alias} is version "
            f"{champion}); create it (loopml deploy create {policy.deployment} --model "
            f"{model}@{policy.alias}) or name the model's deployment in rollout.deployment"
        ) from None


def _mode_words(policy: RolloutPolicy) -> str:
    if policy.mode == "canary":
        return f"canary {policy.percent:g}% for {policy.minutes or 0:g} min"
    if policy.mode == "direct":
        return "direct"
    parts = []
    if policy.requests is not None:
        parts.append(f"{policy.requests} requests")
    if policy.minutes is not None:
        parts.append(f"{policy.minutes:g} min")
    return f"shadow ({' or '.join(parts)})"


def advance_rollout(rollout_id: str, now: int | None = None, *,
                    client: Client | None = None) -> Rollout:
    """Take the next due step of a rollout (idempotent: a rollout with nothing due, or
    finished, is returned as it is). A step that cannot be taken (a version or deployment
    gone) reverts the rollout safely and ends it ``rejected``."""
    client = _client(client)
    now = now_ms() if now is None else now
    rollout = get_rollout(rollout_id, client=client)
    if rollout.finished:
        return rollout
    step: Callable[[Client, Rollout, int], Rollout] = (
        _begin if rollout.stage == "started" else _watch)
    try:
        return step(client, rollout, now)
    except Conflict as exc:
        current = get_rollout(rollout_id, client=client)
        if current.stage != rollout.stage or current.updated_at != rollout.updated_at:
            return current  # another controller took this step
        return _finish(client, current, now, "rejected",
                       f"the rollout could not go on: {exc}", {}, restore=True)
    except BackendUnavailable:
        raise
    except LoopmlError as exc:
        current = get_rollout(rollout_id, client=client)
        if current.finished:
            return current
        return _finish(client, current, now, "rejected",
                       f"the rollout could not go on: {exc}", {}, restore=True)


def resume_rollouts(now: int | None = None, *, client: Client | None = None) -> list[Rollout]:
    """Advance every unfinished rollout once (after a restart, and on every tick of the
    agent); the rollouts as they are afterwards, oldest first."""
    client = _client(client)
    result = []
    for rollout in list_rollouts(unfinished=True, client=client):
        try:
            rollout = advance_rollout(rollout.id, now, client=client)
        except BackendUnavailable:
            raise
        except LoopmlError:  # e.g. its revert failed: the others still go on
            logger.exception("rollout %s of %s could not be advanced", rollout.id,
                             rollout.challenger_ref)
        result.append(rollout)
    return result


# -- steps -----------------------------------------------------------------------------------
def _locked(conn: sa.Connection, rollout: Rollout) -> None:
    """Lock the rollout's row and check nobody moved it since ``rollout`` was read."""
    stored = records.get_rollout(conn, rollout.id, lock=True)
    if (stored.stage, stored.updated_at, stored.outcome) != (
            rollout.stage, rollout.updated_at, rollout.outcome):
        raise Conflict(f"rollout {rollout.id} moved on meanwhile (stage {stored.stage})")


def _begin(client: Client, rollout: Rollout, now: int) -> Rollout:
    policy = _policy(rollout)
    if rollout.mode == "direct":
        return _promote(client, rollout, now, f"direct rollout of {rollout.challenger_ref}",
                        {})
    assert rollout.deployment is not None
    ref = rollout.challenger_ref
    with client.meta.write() as conn:
        _locked(conn, rollout)
        original = deployments.get_deployment(conn, rollout.deployment)
        if rollout.mode == "shadow":
            trial = dataclasses.replace(original.policy, shadow=ref)
            deadline = now + _MINUTE_MS * (policy.minutes or policy.timeout_minutes)
        else:
            trial = dataclasses.replace(
                original.policy, canary=Canary(model=ref, percent=policy.percent,
                                               sticky=policy.sticky),
                rollback=policy.rollback_rule() or original.policy.rollback)
            deadline = now + int(_MINUTE_MS * (policy.minutes or 0))
        deployments.update_deployment(conn, rollout.deployment, trial, actor=_actor(),
                                      reason=f"rollout {rollout.id}: {rollout.mode} {ref}")
        seen = len(deployments.deployment_history(conn, rollout.deployment))
        revision = deployments.get_deployment(conn, rollout.deployment).revision
        state = {**rollout.state, "original": original.policy.to_json(), "revision": revision,
                 "events_seen": seen, "since": now}
        return records.move_rollout(conn, rollout, stage=rollout.mode, now=now, state=state,
                                    deadline_at=int(deadline))


def _outside_change(conn: sa.Connection, rollout: Rollout
                    ) -> tuple[str, deployments.DeploymentEvent] | None:
    """("rolled_back" | "changed", the event) when the deployment changed since the
    rollout's own change; None when it did not."""
    assert rollout.deployment is not None
    history = deployments.deployment_history(conn, rollout.deployment)
    later = history[int(rollout.state["events_seen"]):]
    for event in later:
        if event.kind in ("auto-rollback", "rollback"):
            return "rolled_back", event
    return ("changed", later[0]) if later else None


def _watch(client: Client, rollout: Rollout, now: int) -> Rollout:
    policy = _policy(rollout)
    assert rollout.deployment is not None
    with client.meta.read() as conn:
        changed = _outside_change(conn, rollout)
    if changed is not None:
        kind, event = changed
        if kind == "rolled_back":
            return _finish(client, rollout, now, "rolled_back",
                           f"the server rolled {rollout.challenger_ref} back ({event.kind} by "
                           f"{event.actor}: {event.reason})",
                           {"deployment_event": {"kind": event.kind, "reason": event.reason,
                                                 "at": event.created_at}}, restore=True)
        return _finish(client, rollout, now, "rejected",
                       f"deployment {rollout.deployment} was changed outside the rollout "
                       f"({event.kind} by {event.actor}: {event.reason or 'no reason'}); "
                       "left as it is, alias untouched", {}, restore=False)
    evidence = read_evidence(client.meta, client.blobs, deployment=rollout.deployment,
                             since=int(rollout.state["since"]), role=rollout.mode,
                             challenger=rollout.challenger, metric=policy.online_metric,
                             tolerance=policy.agreement_tolerance)
    numbers = {"evidence": evidence.to_dict()}
    due = rollout.deadline_at is not None and now >= rollout.deadline_at
    if rollout.mode == "canary":
        breach = health(policy, evidence) if evidence.challenger.requests \
            >= policy.min_requests else None
        if breach is not None:
            return _finish(client, rollout, now, "rolled_back", f"canary {breach}", numbers,
                           restore=True)
        if not due:
            return rollout
        if evidence.challenger.requests < policy.min_requests:
            return _finish(client, rollout, now, "rejected",
                           f"the canary answered {evidence.challenger.requests} requests in "
                           f"{policy.minutes:g} min, fewer than the {policy.min_requests} "
                           "needed to judge it", numbers, restore=True)
        worse = online_worse(policy, evidence)
        if worse is not None:
            return _finish(client, rollout, now, "rolled_back", f"canary {worse}", numbers,
                           restore=True)
        return _promote(client, rollout, now, f"canary {summary(evidence)}", numbers)
    enough = policy.requests is not None and evidence.challenger.requests >= policy.requests
    timed = policy.minutes is not None and due
    if not (enough or timed):
        if due:  # a shadow by requests that ran out of time
            return _finish(client, rollout, now, "rejected",
                           f"the shadow answered {evidence.challenger.requests} of the "
                           f"{policy.requests} requests in {policy.timeout_minutes:g} min",
                           numbers, restore=True)
        return rollout
    problem = shadow_problem(policy, evidence)
    if problem is not None:
        return _finish(client, rollout, now, "rejected", f"shadow {problem}", numbers,
                       restore=True)
    return _promote(client, rollout, now, f"shadow {summary(evidence)}", numbers)


def _final_policy(rollout: Rollout, original: TrafficPolicy, alias: str) -> TrafficPolicy:
    """The deployment after a promotion: its primary on the challenger (following the alias
    if it did), the rollout's canary or shadow gone (its own shadow back), no pin."""
    followed = parse_model_ref(original.model)
    model = original.model if followed.alias == alias \
        else f"{rollout.model}/{rollout.challenger}"
    canary = None if rollout.mode == "canary" else original.canary
    return dataclasses.replace(original, model=model, canary=canary, pinned=None)


def _promote(client: Client, rollout: Rollout, now: int, reason: str,
             data: dict[str, Any]) -> Rollout:
    policy = _policy(rollout)
    gate = rollout.state.get("gate")
    ref = rollout.challenger_ref
    with client.meta.write() as conn:
        _locked(conn, rollout)
        if gate is not None and not gate.get("passed"):  # the invariant, checked once more
            raise Conflict(f"{ref} failed its gate; it is never promoted")
        current = _alias_version(conn, rollout.model, policy.alias)
        if current != rollout.champion:
            where = f"version {current}" if current else "nowhere"
            raise Conflict(f"{rollout.model}@{policy.alias} moved to {where} during the "
                           f"rollout (it was {rollout.champion}); not promoting {ref}")
        if rollout.deployment is not None and rollout.mode != "direct":
            change = _outside_change(conn, rollout)
            if change is not None:
                raise Conflict(f"deployment {rollout.deployment} changed during the rollout "
                               f"({change[1].kind})")
        why = f"rollout {rollout.id}: {reason}"
        registry.set_alias(conn, rollout.model, policy.alias, rollout.challenger,
                           actor=_actor(), reason=why)
        if rollout.deployment is not None and _create_deployment(conn, rollout, policy, why):
            reason += (f"; deployment {rollout.deployment} created, serving "
                       f"{rollout.model}@{policy.alias}")
            data = {**data, "deployment_created": True}
        elif rollout.deployment is not None:
            served = deployments.get_deployment(conn, rollout.deployment).policy
            original = TrafficPolicy.from_json(rollout.state.get("original")
                                               or served.to_json())
            final = _final_policy(rollout, original, policy.alias)
            if final != served:
                deployments.update_deployment(conn, rollout.deployment, final,
                                              actor=_actor(), reason=why)
        moved = records.move_rollout(conn, rollout, stage="done", now=now,
                                     outcome="promoted", reason=reason,
                                     state={**rollout.state, **data})
        _event(conn, moved, "promoted",
               f"{ref} is {rollout.model}@{policy.alias} (was "
               f"{rollout.champion or 'unset'}): {reason}", data, now)
        return moved


def _create_deployment(conn: sa.Connection, rollout: Rollout, policy: RolloutPolicy,
                       why: str) -> bool:
    """Create the rollout's deployment, serving the alias, when the rollout of the first
    version (no champion) found none; False when it exists (or others are to create it)."""
    assert rollout.deployment is not None
    if rollout.champion is not None or not rollout.state.get("create_deployment"):
        return False
    try:
        deployments.get_deployment(conn, rollout.deployment)
        return False  # someone created it meanwhile: it is updated as any other
    except NotFound:
        pass
    deployments.create_deployment(
        conn, rollout.deployment, TrafficPolicy(model=f"{rollout.model}@{policy.alias}"),
        actor=_actor(), reason=f"{why}; the first version of {rollout.model}: deployment "
                               f"{rollout.deployment} created to serve it")
    return True


def _finish(client: Client, rollout: Rollout, now: int, outcome: str, reason: str,
            data: dict[str, Any], *, restore: bool) -> Rollout:
    """End ``rollout`` with ``outcome`` (the alias untouched); with ``restore``, put the
    deployment's policy back as it was before the rollout."""
    with client.meta.write() as conn:
        _locked(conn, rollout)
        original = rollout.state.get("original")
        if original is not None and restore and rollout.deployment is not None \
                and (_outside_change(conn, rollout) or ("",))[0] != "changed":
            before = TrafficPolicy.from_json(original)
            if deployments.get_deployment(conn, rollout.deployment).policy != before:
                deployments.update_deployment(
                    conn, rollout.deployment, before, actor=_actor(),
                    reason=f"rollout {rollout.id} {outcome.replace('_', ' ')}: {reason}")
        moved = records.move_rollout(conn, rollout, stage="done", now=now, outcome=outcome,
                                     reason=reason, state={**rollout.state, **data})
        _event(conn, moved, outcome, f"{rollout.challenger_ref} {outcome.replace('_', ' ')}: "
               f"{reason}", data, now)
        return moved


# -- the hook the agent calls ----------------------------------------------------------------
def _lent_options(trigger: Any) -> dict[str, str]:
    """The rollout options a trigger lends its policy: its ``deployment`` and ``alias``."""
    return {key: getattr(trigger, key) for key in ("deployment", "alias")
            if isinstance(getattr(trigger, key, None), str)}


def _policies(policy: Any, trigger: Any) -> tuple[GatePolicy, RolloutPolicy]:
    """The policies given, else the trigger's; a mapping's rollout takes the trigger's
    deployment and alias unless it names its own."""
    found = policy if policy is not None else getattr(trigger, "policy", None)
    if isinstance(found, tuple) and len(found) == 2 and isinstance(found[0], GatePolicy) \
            and isinstance(found[1], RolloutPolicy):
        return found
    if isinstance(found, GatePolicy):
        return found, RolloutPolicy()
    if found is None:
        name = getattr(trigger, "name", trigger)
        raise InvalidArgument(f"no promotion policy for the candidate of trigger {name!r}; "
                              "declare policy: {gate: {metric: auc}, rollout: {mode: direct}} "
                              "in loopml.yaml or pass policy=")
    return parse_policies(found, defaults=_lent_options(trigger))


def on_candidate(version: Any, trigger: Any = "", *, policy: Any = None,
                 client: Client | None = None, data: Any = None, trusted: bool = False,
                 now: int | None = None) -> Rollout:
    """What happens to a model version a pipeline registered: its gate against the
    version the alias points to, then a rollout (passed) or a recorded rejection (failed).

    ``version`` is ``churn/7`` or a :class:`~loopml.registry.entities.ModelVersion`;
    ``trigger`` a trigger's name or object (its ``policy`` is used when ``policy`` is not
    given); ``policy`` a mapping ``{gate, rollout}``, a ``(GatePolicy, RolloutPolicy)``
    pair or a ``GatePolicy``. Called twice for one version, it returns the first rollout."""
    client = _client(client)
    gate_policy, rollout_policy = _policies(policy, trigger)
    trigger_name = str(getattr(trigger, "name", trigger) or "")
    ref = version.ref if hasattr(version, "ref") else str(version)
    now = now_ms() if now is None else now
    with client.meta.read() as conn:
        found = registry.resolve(conn, parse_model_ref(ref))
        for earlier in records.list_rollouts(conn, model=found.model):
            if earlier.challenger == found.version:
                return earlier
        champion = _alias_version(conn, found.model, rollout_policy.alias)
        busy = records.active_rollout(conn, model=found.model,
                                      deployment=rollout_policy.deployment)
    candidate = (found.model, found.version, champion, rollout_policy, trigger_name, now)
    if busy is not None:  # its gate would compare with a champion that may change
        return _reject(client, *candidate, f"rollout {busy.id} of {busy.challenger_ref} "
                       f"({busy.mode}) is still running; one rollout at a time", None)
    champion_ref = None if champion is None else f"{found.model}/{champion}"
    try:
        result = evaluate_gate(found.ref, champion_ref, data=data, policy=gate_policy,
                               client=client, trusted=trusted)
    except BackendUnavailable:
        raise
    except LoopmlError as exc:
        return _reject(client, *candidate, f"the gate could not be evaluated: {exc}", {})
    if not result.passed:
        return _reject(client, *candidate, f"gate {result.reason}", result.to_dict())
    with client.meta.write() as conn:
        record_event(conn, "gate_passed", trigger=trigger_name, model=found.model,
                     version=found.version, run_id=found.run_id, actor=_actor(),
                     reason=f"gate {result.reason}", data=result.to_dict(), at=now)
    return start_rollout(found.ref, policy=rollout_policy, gate=result, trigger=trigger_name,
                         client=client, now=now)


def _reject(client: Client, model: str, version: int, champion: int | None,
            policy: RolloutPolicy, trigger: str, now: int, reason: str,
            gate: dict[str, Any] | None) -> Rollout:
    """Record a candidate that is not rolled out: its gate failed (``gate`` is its result,
    ``{}`` when it could not be evaluated; stage ``gate``) or another rollout runs (None)."""
    with client.meta.write() as conn:
        rollout = records.insert_rollout(
            conn, model=model, challenger=version, champion=champion,
            deployment=policy.deployment, mode=policy.mode, now=now,
            stage="done" if gate is None else "gate", outcome="rejected", reason=reason,
            state={"policy": policy.to_dict(), "trigger": trigger,
                   "gate": gate or None})
        if gate is not None:
            record_event(conn, "gate_failed", trigger=trigger, model=model, version=version,
                         actor=_actor(), reason=reason, data=gate, at=now)
        _event(conn, rollout, "rejected", f"{model}/{version} rejected: {reason}", {}, now)
    return rollout
