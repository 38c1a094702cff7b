"""The rollout policy: how a version that passed its gate goes live, parsed from the
``policy`` of a trigger (``{gate: {...}, rollout: {...}}`` in ``loopml.yaml``), and what it
says of the evidence a shadow or a canary gathered.

.. code-block:: yaml

    policy:
      gate:    {metric: auc, margin: 1%, slices: [region], max_latency_ms: 50}
      rollout: {mode: canary, percent: 10, minutes: 30, deployment: churn-api,
                max_error_rate: 0.02, max_p99_ms: 250, online_metric: accuracy}

``mode`` is ``direct``, ``shadow`` (for ``requests`` mirrored requests or ``minutes``) or
``canary`` (``percent`` of the traffic for ``minutes``); see :mod:`.rollout` for what each
does. :func:`health`, :func:`online_worse` and :func:`shadow_problem` word why evidence
fails the policy (None when it does not).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loopml.automation.gate import GatePolicy
from loopml.automation.rollout_evidence import Evidence
from loopml.automation.rollout_records import MODES
from loopml.automation.slices import KNOWN_METRICS, higher_is_better
from loopml.deployments.policy import DEFAULT_STICKY, RollbackRule
from loopml.deployments.records import check_deployment_name
from loopml.errors import InvalidArgument
from loopml.registry.refs import check_alias

__all__ = ["RolloutPolicy", "health", "online_worse", "parse_policies", "shadow_problem",
           "summary"]


@dataclass(frozen=True, kw_only=True)
class RolloutPolicy:
    """How a version that passed its gate goes live (see :mod:`.rollout`).

    ``max_error_rate`` / ``max_p99_ms`` (over ``window_s`` s and at least ``min_requests``
    requests) are the canary's automatic rollback rule and the limits a shadow must keep;
    ``online_metric`` (with ``min_labels`` labelled requests on each side) may not fall
    below the champion's by more than ``online_tolerance``; a shadow's ``agreement`` with
    the champion must reach ``min_agreement`` when set. A shadow by ``requests`` gives up
    after ``timeout_minutes``."""

    mode: str = "direct"
    alias: str = "production"
    deployment: str | None = None
    requests: int | None = None
    minutes: float | None = None
    percent: float = 10.0
    sticky: str = DEFAULT_STICKY
    max_error_rate: float | None = 0.05
    max_p99_ms: float | None = None
    window_s: float = 30.0
    min_requests: int = 20
    online_metric: str | None = None
    online_tolerance: float = 0.0
    min_labels: int = 20
    min_agreement: float | None = None
    agreement_tolerance: float = 0.0
    timeout_minutes: float = 60.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidArgument(f"unknown rollout mode {self.mode!r}; use one of "
                                  f"{', '.join(MODES)}")
        check_alias(self.alias)
        if self.mode != "direct" and not self.deployment:
            raise InvalidArgument(f"a {self.mode} rollout needs the deployment that serves "
                                  f"the model; set rollout.deployment (e.g. churn-api)")
        if self.deployment is not None:
            check_deployment_name(self.deployment)
        if self.mode == "shadow" and self.requests is None and self.minutes is None:
            raise InvalidArgument("a shadow rollout runs for a number of requests or minutes; "
                                  "set rollout.requests (e.g. 500) or rollout.minutes")
        if self.mode == "canary" and self.minutes is None:
            raise InvalidArgument("a canary rollout runs for some minutes; set "
                                  "rollout.minutes (e.g. 30)")
        if self.requests is not None and (not isinstance(self.requests, int)
                                          or self.requests < 1):
            raise InvalidArgument(f"rollout.requests must be a whole number >= 1, got "
                                  f"{self.requests!r}")
        for name in ("minutes", "timeout_minutes", "max_p99_ms", "window_s"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float)
                                      or not 0 < value < math.inf):
                raise InvalidArgument(f"rollout.{name} must be a number > 0, got {value!r}")
        if not isinstance(self.percent, int | float) or not 0 < self.percent < 100:
            raise InvalidArgument(f"rollout.percent is the canary's share of the traffic, "
                                  f"between 0 and 100 (exclusive); got {self.percent!r}")
        for name in ("max_error_rate", "min_agreement"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise InvalidArgument(f"rollout.{name} is a share between 0 and 1, got "
                                      f"{value!r}")
        if self.online_metric is not None and self.online_metric not in KNOWN_METRICS:
            raise InvalidArgument(f"unknown online metric {self.online_metric!r}; use one of "
                                  f"{', '.join(KNOWN_METRICS)}")
        if self.min_requests < 1 or self.min_labels < 1:
            raise InvalidArgument(f"rollout.min_requests and min_labels must be >= 1; got "
                                  f"{self.min_requests}, {self.min_labels}")
        if self.online_tolerance < 0 or self.agreement_tolerance < 0:
            raise InvalidArgument("rollout.online_tolerance and agreement_tolerance must "
                                  "be >= 0")

    def rollback_rule(self) -> RollbackRule | None:
        """The deployment's automatic rollback rule during a canary (None: no limits)."""
        if self.max_error_rate is None and self.max_p99_ms is None:
            return None
        rate = None if self.max_error_rate is None else min(self.max_error_rate, 0.999)
        return RollbackRule(max_error_rate=rate, max_p99_ms=self.max_p99_ms,
                            window_s=self.window_s, min_requests=self.min_requests)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _fields(cls: type, mapping: Mapping[str, Any], section: str) -> dict[str, Any]:
    if not isinstance(mapping, Mapping):
        raise InvalidArgument(f"policy.{section} must be a mapping of options, got "
                              f"{type(mapping).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, mapping)) - known)
    if unknown:
        raise InvalidArgument(f"unknown option(s) {', '.join(unknown)} in policy.{section}; "
                              f"known: {', '.join(sorted(known))}")
    return dict(mapping)


def parse_policies(mapping: Mapping[str, Any] | None, *,
                   defaults: Mapping[str, Any] | None = None
                   ) -> tuple[GatePolicy, RolloutPolicy]:
    """``{gate: {...}, rollout: {...}}`` (from ``loopml.yaml`` or Python) as policies.

    ``gate.margin`` may be written ``"2%"`` (relative) and ``gate.slices`` as one column
    name; ``rollout`` may be omitted (a direct rollout to ``production``). ``defaults``
    (a trigger's ``deployment`` and ``alias``) fill the rollout options it does not set."""
    if mapping is None or not isinstance(mapping, Mapping) or "gate" not in mapping:
        raise InvalidArgument("a promotion policy needs a gate, e.g. policy: {gate: {metric: "
                              "auc, margin: 0.01}, rollout: {mode: canary, percent: 10, "
                              f"minutes: 30, deployment: churn-api}}}}; got {mapping!r}")
    unknown = sorted(set(map(str, mapping)) - {"gate", "rollout"})
    if unknown:
        raise InvalidArgument(f"unknown section(s) {', '.join(unknown)} in the policy; use "
                              "gate and rollout")
    gate = _fields(GatePolicy, mapping["gate"] or {}, "gate")
    margin = gate.get("margin")
    if isinstance(margin, str):
        text = margin.strip()
        try:
            value = float(text.removesuffix("%"))
        except ValueError:
            raise InvalidArgument(f"policy.gate.margin {margin!r} is not a number; write "
                                  "0.01 (absolute) or '1%' (relative)") from None
        gate["margin"] = value / 100 if text.endswith("%") else value
        gate["margin_relative"] = text.endswith("%") or gate.get("margin_relative", False)
    if isinstance(gate.get("slices"), list | str):
        slices = gate["slices"]
        gate["slices"] = (slices,) if isinstance(slices, str) else tuple(slices)
    if "metric" not in gate:
        raise InvalidArgument(f"policy.gate needs a metric; use one of "
                              f"{', '.join(KNOWN_METRICS)}")
    rollout = _fields(RolloutPolicy, mapping.get("rollout") or {}, "rollout")
    rollout = {**{k: v for k, v in (defaults or {}).items() if v is not None}, **rollout}
    try:
        return GatePolicy(**gate), RolloutPolicy(**rollout)
    except TypeError as exc:
        raise InvalidArgument(f"invalid policy: {exc}") from None


def health(policy: RolloutPolicy, evidence: Evidence) -> str | None:
    ours = evidence.challenger
    rate = ours.error_rate
    if policy.max_error_rate is not None and rate is not None and rate > policy.max_error_rate:
        return (f"error rate {rate:.1%} ({ours.errors} of {ours.requests}) is over the limit "
                f"of {policy.max_error_rate:.1%}")
    if policy.max_p99_ms is not None and ours.p99_ms is not None \
            and ours.p99_ms > policy.max_p99_ms:
        return (f"p99 latency {ours.p99_ms:.1f} ms is over the limit of "
                f"{policy.max_p99_ms:g} ms")
    return None


def online_worse(policy: RolloutPolicy, evidence: Evidence) -> str | None:
    ours, theirs = evidence.challenger_metric, evidence.champion_metric
    metric = policy.online_metric
    if metric is None or ours is None or theirs is None or evidence.labels < policy.min_labels:
        return None
    change = (ours - theirs) * (1 if higher_is_better(metric) else -1)
    if change >= -policy.online_tolerance:
        return None
    return (f"online {metric} {ours:.4f} vs champion {theirs:.4f} ({change:+.4f}, tolerance "
            f"{policy.online_tolerance:g}, {evidence.labels} labels)")


def shadow_problem(policy: RolloutPolicy, evidence: Evidence) -> str | None:
    if evidence.challenger.requests == 0:
        return "answered no request"
    unhealthy = health(policy, evidence)
    if unhealthy is not None:
        return unhealthy
    if policy.min_agreement is not None and (evidence.agreement is None
                                             or evidence.agreement < policy.min_agreement):
        agreement = "none compared" if evidence.agreement is None \
            else f"{evidence.agreement:.1%} of {evidence.compared}"
        return (f"agreement with the champion {agreement} is under the minimum of "
                f"{policy.min_agreement:.1%}")
    return online_worse(policy, evidence)


def summary(evidence: Evidence) -> str:
    ours, theirs = evidence.challenger, evidence.champion
    text = f"{ours.requests} requests, {ours.errors} failed"
    if ours.p99_ms is not None:
        text += f", p99 {ours.p99_ms:.1f} ms"
        if theirs.p99_ms is not None:
            text += f" (champion {theirs.p99_ms:.1f} ms)"
    if evidence.agreement is not None:
        text += f", agreement {evidence.agreement:.1%} of {evidence.compared}"
    if evidence.metric and evidence.challenger_metric is not None \
            and evidence.champion_metric is not None:
        text += (f", online {evidence.metric} {evidence.challenger_metric:.4f} vs "
                 f"{evidence.champion_metric:.4f} ({evidence.labels} labels)")
    return text
