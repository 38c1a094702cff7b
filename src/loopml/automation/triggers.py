"""Triggers: conditions that start a pipeline, each saying whether it fires and why.

::

    NewDataTrigger(name="more-data", pipeline="pipelines/train.py:churn", model="churn",
                   dataset="churn", min_rows=1000)
    ScheduleTrigger(name="nightly", pipeline=..., cron="0 3 * * *", timezone="Europe/Paris")
    DriftTrigger(name="drift", pipeline=..., model="churn", deployment="churn-api")
    DecayTrigger(name="decay", pipeline=..., deployment="churn-api", metric="auc", below=0.8)
    CodeChangeTrigger(name="code", pipeline=..., model="churn")
    ManualTrigger(name="by-hand", pipeline=...)          # loopml trigger fire by-hand

``trigger.evaluate(ctx)`` returns a :class:`Firing` (with the reason in words and the
numbers in ``data``) or None. It only reads: facts come from a :class:`TriggerContext` (the
agent's reads the metadata store; tests pass their own), and what it should remember without
firing goes through ``ctx.remember``. Debouncing (one retrain at a time per pipeline, a
minimum interval, requests to fire by hand) is the agent's, the same for every kind.
"""

from __future__ import annotations

import abc
import hashlib
import importlib.util
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from loopml.automation.schedule import CronSchedule, parse_cron
from loopml.errors import InvalidArgument

if TYPE_CHECKING:
    from loopml.automation.records import TriggerState
    from loopml.datasets.entities import DatasetVersion
    from loopml.monitoring.records import Alert, MonitorResult
    from loopml.registry.entities import ModelVersion

__all__ = ["BUILT_CODE", "CodeChangeTrigger", "DecayTrigger", "DriftTrigger", "Firing",
           "ManualTrigger", "NewDataTrigger", "ScheduleTrigger", "Trigger", "TriggerContext",
           "fingerprint_of", "source_fingerprint", "source_hashes"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
DRIFT_KINDS = ("drift", "prediction_drift", "target_drift", "quality", "performance")
#: The key of a code-change trigger's baseline under which the agent records, per version
#: of its model (``"3"``), the content hashes of the watched files the version was built
#: from: ``{"3": {"files": {path: hash}}}``.
BUILT_CODE = "built"


@dataclass(frozen=True, slots=True)
class Firing:
    """A trigger fires: why (``reason``, with the numbers), the figures (``data``), and what
    to remember with the firing (the newest alert consumed, a ``baseline``)."""

    trigger: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)
    last_alert_id: int | None = None
    baseline: dict[str, Any] | None = None
    manual: bool = False


class TriggerContext(Protocol):
    """What a trigger may read while it is evaluated."""

    @property
    def now(self) -> int:
        """The evaluation's time, ms since the epoch (UTC)."""

    @property
    def state(self) -> TriggerState:
        """What the trigger remembered (last firing, consumed alerts, baseline)."""

    def remember(self, **values: Any) -> None:
        """Merge ``values`` into the trigger's baseline, whether it fires or not."""

    def model_version(self, model: str, alias: str | None) -> ModelVersion | None:
        """The version ``alias`` points at (the newest version when None), or None."""

    def dataset_versions(self, name: str) -> Sequence[DatasetVersion]:
        """Every version of the dataset, oldest first."""

    def alerts(self, deployment: str, *, after: int | None) -> Sequence[Alert]:
        """Monitoring alerts of ``deployment`` with an id above ``after``, oldest first."""

    def performance(self, deployment: str, metric: str, *,
                    since: int | None) -> Sequence[MonitorResult]:
        """Performance results of ``metric`` for windows ending at or after ``since``."""

    def run_tags(self, run_id: str) -> Mapping[str, str]:
        """The tags of a tracked run (code version: ``loopml.git.*``)."""

    def code_hashes(self, paths: Sequence[str]) -> Mapping[str, str]:
        """The content hash of each file under ``paths`` (see :func:`source_hashes`)."""


def _seconds(value: Any, name: str, trigger: str) -> None:
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)
                              or value < 0 or not math.isfinite(value)):
        raise InvalidArgument(f"trigger {trigger!r}: {name} must be a number of seconds >= 0, "
                              f"got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Trigger(abc.ABC):
    """What every trigger has: a ``name``, the ``pipeline`` it starts (``FILE.py:NAME``,
    ``MODULE:NAME`` or a :class:`~loopml.pipelines.Pipeline`) with ``params``, the ``model``
    it retrains (its ``alias`` names the version in production) and ``deployment`` serving
    it, ``min_interval`` seconds between firings (None: the setting
    ``trigger_min_interval``), the retry policy of a failed run (``max_retries`` more
    attempts, ``retry_delay`` seconds apart), the ``executor`` of its runs (None: the
    agent's), and the promotion ``policy`` (``{gate: …, rollout: …}``, see
    :mod:`loopml.automation.rollout`) applied to the versions its runs register."""

    kind: ClassVar[str] = ""

    name: str
    pipeline: Any
    params: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    alias: str = "production"
    deployment: str | None = None
    min_interval: float | None = None
    max_retries: int = 1
    retry_delay: float = 5.0
    executor: str | None = None
    policy: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidArgument(f"invalid trigger name {self.name!r}: use 1-128 letters, "
                                  "digits, '_', '-' or '.', starting with a letter or digit")
        if not self.pipeline_ref:
            raise InvalidArgument(f"trigger {self.name!r}: pipeline must name one, e.g. "
                                  "pipelines/train.py:churn_pipeline")
        if not isinstance(self.params, Mapping):
            raise InvalidArgument(f"trigger {self.name!r}: params must map names to values, "
                                  f"got {self.params!r}")
        for name in ("model", "deployment", "executor"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidArgument(f"trigger {self.name!r}: {name} must be a non-empty "
                                      f"text, got {value!r}")
        if not isinstance(self.alias, str) or not self.alias:
            raise InvalidArgument(f"trigger {self.name!r}: alias must be a text such as "
                                  f"production, got {self.alias!r}")
        _seconds(self.min_interval, "min_interval", self.name)
        _seconds(self.retry_delay, "retry_delay", self.name)
        if not isinstance(self.max_retries, int) or isinstance(self.max_retries, bool) \
                or self.max_retries < 0:
            raise InvalidArgument(f"trigger {self.name!r}: max_retries must be a whole number "
                                  f">= 0, got {self.max_retries!r}")

    @property
    def pipeline_ref(self) -> str:
        """The pipeline as text: the target given, or a Pipeline object's source."""
        if isinstance(self.pipeline, str):
            return self.pipeline.strip()
        return str(getattr(self.pipeline, "source", "") or "")

    def _require(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not value:
                raise InvalidArgument(f"trigger {self.name!r} ({self.kind}) needs {name}; "
                                      f"add it, e.g. {name}: {_EXAMPLES.get(name, '...')}")
            if not isinstance(value, str):
                raise InvalidArgument(f"trigger {self.name!r}: {name} must be a text, e.g. "
                                      f"{name}: {_EXAMPLES.get(name, '...')}; got {value!r}")

    @abc.abstractmethod
    def evaluate(self, ctx: TriggerContext) -> Firing | None:
        """A firing when the condition holds now, else None."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The condition in words."""

    def _fire(self, reason: str, **extra: Any) -> Firing:
        return Firing(trigger=self.name, reason=reason, **extra)


_EXAMPLES = {"model": "churn", "deployment": "churn-api", "dataset": "churn", "metric": "auc",
             "cron": "'0 3 * * *'"}


def _dataset_number(version: ModelVersion | None, dataset: str) -> int | None:
    """The version of ``dataset`` that a model version was trained on (its lineage)."""
    for ref in version.datasets if version is not None else ():
        name, _, number = ref.rpartition("@")
        if name == dataset and number.isdigit():
            return int(number)
    return None


@dataclass(frozen=True, kw_only=True)
class NewDataTrigger(Trigger):
    """Fires when ``dataset`` has ``min_rows`` new rows (files, for a dataset of files) or
    grew by ``min_fraction`` (0.1 = 10%) since the version the production model was trained
    on (its lineage; the newest model version's when it is newer, or the version of the last
    firing, so one batch of data never starts two retrains)."""

    kind: ClassVar[str] = "new_data"
    dataset: str = ""
    min_rows: int | None = None
    min_fraction: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require("dataset", "model")
        if self.min_rows is None and self.min_fraction is None:
            raise InvalidArgument(f"trigger {self.name!r} (new_data) needs min_rows or "
                                  "min_fraction; add e.g. min_rows: 1000 or min_fraction: 10%")
        if self.min_rows is not None and (not isinstance(self.min_rows, int)
                                          or isinstance(self.min_rows, bool)
                                          or self.min_rows < 1):
            raise InvalidArgument(f"trigger {self.name!r}: min_rows must be a whole number "
                                  f">= 1, got {self.min_rows!r}")
        if self.min_fraction is not None and (
                not isinstance(self.min_fraction, int | float) or not self.min_fraction > 0):
            raise InvalidArgument(f"trigger {self.name!r}: min_fraction must be > 0 (0.1 or "
                                  f"10% for a tenth), got {self.min_fraction!r}")

    def describe(self) -> str:
        parts = ([f">= {self.min_rows:,} new rows"] if self.min_rows else []) + (
            [f">= {self.min_fraction:.0%} growth"] if self.min_fraction else [])
        return f"dataset {self.dataset}: {' or '.join(parts)}"

    def _baseline(self, ctx: TriggerContext) -> tuple[int | None, str]:
        assert self.model is not None
        candidates: list[tuple[int, str]] = []
        production = ctx.model_version(self.model, self.alias)
        number = _dataset_number(production, self.dataset)
        if production is not None and number is not None:
            candidates.append((number, f"{self.model} v{production.version} ({self.alias}) "
                                       f"was trained on {self.dataset}@{number}"))
        newest = ctx.model_version(self.model, None)
        number = _dataset_number(newest, self.dataset)
        if newest is not None and number is not None:
            candidates.append((number, f"{self.model} v{newest.version} (newest) was trained "
                                       f"on {self.dataset}@{number}"))
        fired = ctx.state.baseline.get("dataset_version")
        if isinstance(fired, int):
            candidates.append((fired, f"the last firing was for {self.dataset}@{fired}"))
        if not candidates:
            return None, f"no version of {self.model} was trained on {self.dataset} yet"
        return max(candidates, key=lambda c: c[0])

    def evaluate(self, ctx: TriggerContext) -> Firing | None:
        versions = list(ctx.dataset_versions(self.dataset))
        if not versions:
            return None
        latest = versions[-1]
        base_number, why = self._baseline(ctx)
        if base_number is not None and latest.version <= base_number:
            return None
        base = next((v for v in versions if v.version == base_number), None)
        unit = "rows" if latest.rows is not None else "files"

        def size(version: DatasetVersion) -> int:
            return (version.rows or 0) if unit == "rows" else version.files

        newer = [v for v in versions if base_number is None or v.version > base_number]
        counts = [v.new_rows if unit == "rows" else v.new_files for v in newer]
        if all(c is not None for c in counts):
            new = sum(int(c or 0) for c in counts)
        else:
            new = size(latest) - (size(base) if base is not None else 0)
        base_size = size(base) if base is not None else 0
        fraction = new / base_size if base_size else math.inf
        by_rows = self.min_rows is not None and new >= self.min_rows
        by_fraction = self.min_fraction is not None and new > 0 and fraction >= self.min_fraction
        if not (by_rows or by_fraction):
            return None
        against = (f"{self.dataset}@{base_number} ({base_size:,} {unit})"
                   if base_number is not None else "nothing")
        rule = (f">= {self.min_rows:,}" if by_rows else f">= {self.min_fraction:.0%}")
        growth = f", +{fraction:.1%}" if math.isfinite(fraction) else ""
        reason = (f"{new:,} new {unit} in {self.dataset}@{latest.version} since {against}"
                  f"{growth} ({rule}); {why}")
        data = {"dataset": self.dataset, "version": latest.version, "base_version": base_number,
                "new": new, "unit": unit, "base_size": base_size,
                "fraction": fraction if math.isfinite(fraction) else None,
                "min_rows": self.min_rows, "min_fraction": self.min_fraction}
        return self._fire(reason, data=data, baseline={"dataset_version": latest.version})


def _local(ms: int, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


@dataclass(frozen=True, kw_only=True)
class ScheduleTrigger(Trigger):
    """Fires at the times of a cron expression in ``timezone`` (see
    :mod:`loopml.automation.schedule`). Times missed while no agent ran fire once."""

    kind: ClassVar[str] = "schedule"
    cron: str = ""
    timezone: str = "UTC"
    schedule: CronSchedule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require("cron")
        if not isinstance(self.timezone, str):
            raise InvalidArgument(f"trigger {self.name!r}: timezone must be a text such as "
                                  f"Europe/Paris, got {self.timezone!r}")
        object.__setattr__(self, "schedule", parse_cron(self.cron, timezone=self.timezone))

    def describe(self) -> str:
        return self.schedule.describe()

    def next_time(self, after_ms: int) -> int:
        after = datetime.fromtimestamp(after_ms / 1000, tz=UTC)
        return int(self.schedule.next_after(after).timestamp() * 1000)

    def evaluate(self, ctx: TriggerContext) -> Firing | None:
        state = ctx.state
        anchor = max(state.last_fired_at or 0, state.created_at)
        due = self.next_time(anchor)
        if due > ctx.now:
            return None
        missed, moment = 0, due
        while missed < 1000:
            moment = self.next_time(moment)
            if moment > ctx.now:
                break
            missed += 1
        reason = f"{self.describe()} was due at {_local(due, self.timezone)}"
        if missed:
            reason += f" ({missed} later time(s) passed while no agent ran; fired once)"
        return self._fire(reason, data={"due_at": due, "missed": missed,
                                        "next_at": moment})


def _served(ctx: TriggerContext, trigger: Trigger) -> int | None:
    if not trigger.model:
        return None
    version = ctx.model_version(trigger.model, trigger.alias)
    return None if version is None else version.version


@dataclass(frozen=True, kw_only=True)
class DriftTrigger(Trigger):
    """Fires on new monitoring alerts of ``deployment`` of the given ``kinds`` (at least
    ``min_alerts`` of them). Each alert is consumed once: the newest id seen is remembered.
    Alerts about a model version other than the one in production (``model``/``alias``)
    are stale — the version they judged is gone — and are ignored, so alerts that keep
    coming for a replaced model start no retrain storm."""

    kind: ClassVar[str] = "drift"
    kinds: tuple[str, ...] = ("drift", "prediction_drift", "quality")
    min_alerts: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require("deployment")
        kinds = (self.kinds,) if isinstance(self.kinds, str) else tuple(self.kinds)
        unknown = sorted(set(kinds) - set(DRIFT_KINDS))
        if not kinds or unknown:
            raise InvalidArgument(f"trigger {self.name!r}: unknown alert kind(s) "
                                  f"{', '.join(unknown) or '(none given)'}; use some of "
                                  f"{', '.join(DRIFT_KINDS)}")
        object.__setattr__(self, "kinds", kinds)
        if not isinstance(self.min_alerts, int) or self.min_alerts < 1:
            raise InvalidArgument(f"trigger {self.name!r}: min_alerts must be >= 1, got "
                                  f"{self.min_alerts!r}")

    def describe(self) -> str:
        return f"{'/'.join(self.kinds)} alerts on {self.deployment}"

    def evaluate(self, ctx: TriggerContext) -> Firing | None:
        assert self.deployment is not None
        alerts = list(ctx.alerts(self.deployment, after=ctx.state.last_alert_id))
        if not alerts:
            return None
        served = _served(ctx, self)
        relevant = [a for a in alerts if a.kind in self.kinds and not (
            served is not None and a.version is not None and a.model == self.model
            and a.version != served)]
        if len(relevant) < self.min_alerts:
            return None
        counts: dict[str, int] = {}
        for alert in relevant:
            counts[alert.kind] = counts.get(alert.kind, 0) + 1
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        reason = (f"{len(relevant)} new alert(s) on {self.deployment} ({summary}); "
                  f"latest: {relevant[-1].message}")
        data = {"alerts": [a.id for a in relevant], "kinds": counts,
                "served_version": served, "min_alerts": self.min_alerts}
        return self._fire(reason, data=data, last_alert_id=max(a.id for a in alerts))


@dataclass(frozen=True, kw_only=True)
class DecayTrigger(Trigger):
    """Fires when the newest value of a performance ``metric`` on delayed labels (from
    monitoring, per window of ``deployment``) is ``below`` a threshold (``above`` for a
    metric where lower is better, e.g. rmse) or ``drop``-ped by a relative amount (0.05 =
    5%) from the production version's own recorded value of that metric. Each window is
    judged once."""

    kind: ClassVar[str] = "decay"
    metric: str = ""
    below: float | None = None
    above: float | None = None
    drop: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require("deployment", "metric")
        if self.below is None and self.above is None and self.drop is None:
            raise InvalidArgument(f"trigger {self.name!r} (decay) needs below, above or drop; "
                                  "add e.g. below: 0.8 or drop: 5%")
        if self.below is not None and self.above is not None:
            raise InvalidArgument(f"trigger {self.name!r}: give below (higher is better) or "
                                  "above (lower is better), not both")
        if self.drop is not None and (not isinstance(self.drop, int | float)
                                      or not 0 < self.drop < 1):
            raise InvalidArgument(f"trigger {self.name!r}: drop must be a fraction between 0 "
                                  f"and 1 (0.05 or 5%), got {self.drop!r}")
        if self.drop is not None and not self.model:
            self._require("model")

    @property
    def higher_is_better(self) -> bool:
        return self.above is None

    def describe(self) -> str:
        rules = ([f"< {self.below:g}"] if self.below is not None else []) + (
            [f"> {self.above:g}"] if self.above is not None else []) + (
            [f"drops {self.drop:.0%}"] if self.drop is not None else [])
        return f"{self.metric} on {self.deployment} {' or '.join(rules)}"

    def evaluate(self, ctx: TriggerContext) -> Firing | None:
        assert self.deployment is not None
        seen = ctx.state.baseline.get("window_end")
        since = seen + 1 if isinstance(seen, int) else None
        results = [r for r in ctx.performance(self.deployment, self.metric, since=since)
                   if r.value is not None and r.column == ""]
        if not results:
            return None
        newest = results[-1]
        value = float(newest.value)  # type: ignore[arg-type]
        ctx.remember(window_end=newest.window_end)
        reasons: list[str] = []
        data: dict[str, Any] = {"metric": self.metric, "value": value,
                                "window_end": newest.window_end}
        if self.below is not None and value < self.below:
            reasons.append(f"{self.metric} {value:.4g} < {self.below:g}")
        if self.above is not None and value > self.above:
            reasons.append(f"{self.metric} {value:.4g} > {self.above:g}")
        if self.drop is not None:
            reasons += self._dropped(ctx, value, data)
        if not reasons:
            return None
        reason = (f"{' and '.join(reasons)} on {self.deployment} (window ending "
                  f"{_local(newest.window_end, 'UTC')})")
        return self._fire(reason, data=data, baseline={"window_end": newest.window_end})

    def _dropped(self, ctx: TriggerContext, value: float, data: dict[str, Any]) -> list[str]:
        assert self.model is not None and self.drop is not None
        version = ctx.model_version(self.model, self.alias)
        base = None if version is None else version.metrics.get(self.metric)
        if base is None or base == 0:
            return []
        change = (base - value) / abs(base) if self.higher_is_better else \
            (value - base) / abs(base)
        data.update(baseline=base, baseline_version=version.version if version else None,
                    relative_drop=change, drop=self.drop)
        if change < self.drop:
            return []
        return [f"{self.metric} {value:.4g} is {change:.1%} worse than {base:.4g}, the value "
                f"of {self.model} v{version.version if version else '?'} ({self.alias}) "
                f"(>= {self.drop:.0%})"]


def _pipeline_paths(trigger: Trigger) -> tuple[str, ...]:
    """The file of the trigger's pipeline (``FILE.py:NAME``, or the module's file)."""
    target = trigger.pipeline_ref.rpartition(":")[0]
    if target.endswith(".py"):
        return (target,)
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        raise InvalidArgument(f"trigger {trigger.name!r}: cannot find the file of "
                              f"{trigger.pipeline_ref!r}; list the code to watch in paths")
    return (spec.origin,)


def _changed_files(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """The files added, removed or changed between two sets of content hashes, sorted."""
    return sorted(path for path in set(before) | set(after)
                  if before.get(path) != after.get(path))


def _some(paths: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


@dataclass(frozen=True, kw_only=True)
class CodeChangeTrigger(Trigger):
    """Fires when the pipeline's code (its file, or ``paths``: files and directories)
    differs from the code that built the production version of ``model``.

    The agent records the content hashes of the watched files when it fires a retrain of
    the model, and keeps them with the version that retrain registers; the trigger compares
    the files now with those of the version in production, so every file counts the same,
    whether git tracks it, ignores it, has never seen it, or there is no repository at all
    (git only names the commit the production version was built at, in the reason). For a
    production version the agent did not build (or without ``model``), it compares with
    the contents seen at its first evaluation. One change starts one retrain (the contents
    it fired for are remembered)."""

    kind: ClassVar[str] = "code_change"
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "paths", (self.paths,) if isinstance(self.paths, str)
                           else tuple(self.paths))

    def watched(self) -> tuple[str, ...]:
        return self.paths or _pipeline_paths(self)

    def describe(self) -> str:
        return f"code of {', '.join(self.paths) if self.paths else self.pipeline_ref} changes"

    def _built(self, ctx: TriggerContext) -> tuple[ModelVersion, Mapping[str, str]] | None:
        """The production version and the hashes of the code it was built from, when the
        agent recorded them."""
        production = ctx.model_version(self.model, self.alias) if self.model else None
        if production is None:
            return None
        record = (ctx.state.baseline.get(BUILT_CODE) or {}).get(str(production.version))
        files = record.get("files") if isinstance(record, Mapping) else None
        return (production, files) if isinstance(files, Mapping) else None

    def evaluate(self, ctx: TriggerContext) -> Firing | None:
        paths = self.watched()
        files = dict(ctx.code_hashes(paths))
        fingerprint = fingerprint_of(files)
        fired = {"code_hash": fingerprint, "fired_code_hash": fingerprint}
        if ctx.state.baseline.get("fired_code_hash") == fingerprint:
            return None  # this very code was retrained already
        built = self._built(ctx)
        if built is not None:
            production, before = built
            changed = _changed_files(before, files)
            if not changed:
                if ctx.state.baseline.get("code_hash") != fingerprint:
                    ctx.remember(code_hash=fingerprint)
                return None
            commit = ctx.run_tags(production.run_id).get("loopml.git.commit") \
                if production.run_id else None
            at = f" at commit {commit[:10]}" if commit else ""
            reason = (f"{_some(changed)} changed since {self.model} v{production.version} "
                      f"({self.alias}) was built{at}")
            return self._fire(reason, data={"paths": list(paths), "changed": changed[:100],
                                            "built_version": production.version,
                                            "commit": commit, "code_hash": fingerprint},
                              baseline=fired)
        seen = ctx.state.baseline.get("code_hash")
        if seen is None:
            ctx.remember(code_hash=fingerprint)
            return None
        if seen == fingerprint:
            return None
        reason = (f"{', '.join(paths)} changed (contents {seen[:10]} -> {fingerprint[:10]})")
        return self._fire(reason, data={"paths": list(paths), "code_hash": fingerprint,
                                        "previous_hash": seen}, baseline=fired)


@dataclass(frozen=True, kw_only=True)
class ManualTrigger(Trigger):
    """Fires only when asked: ``loopml trigger fire NAME`` (any trigger can be fired so)."""

    kind: ClassVar[str] = "manual"

    def describe(self) -> str:
        return "fired by hand (loopml trigger fire)"

    def evaluate(self, ctx: TriggerContext) -> Firing | None:
        return None


TRIGGER_KINDS: dict[str, type[Trigger]] = {
    cls.kind: cls for cls in (NewDataTrigger, ScheduleTrigger, DriftTrigger, DecayTrigger,
                              CodeChangeTrigger, ManualTrigger)}


# -- facts about code -------------------------------------------------------------------------
def _files(paths: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part == "__pycache__" or part.startswith(".")
                for part in p.relative_to(path).parts))
        elif path.is_file():
            found.append(path)
    return found


def source_hashes(paths: Sequence[str]) -> dict[str, str]:
    """The content hash of each file under ``paths`` (files, or directories walked without
    their hidden entries and ``__pycache__``), by path as found; a missing path gives
    nothing. Git plays no part: tracked, untracked and ignored files count the same."""
    return {os.fsdecode(path): hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
            for path in _files(paths)}


def fingerprint_of(hashes: Mapping[str, str]) -> str:
    """One hash over the names and content hashes of a set of files."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(hashes):
        digest.update(os.fsencode(path) + b"\0" + hashes[path].encode() + b"\0")
    return digest.hexdigest()


def source_fingerprint(paths: Sequence[str]) -> str:
    """A hash over the names and contents of the files under ``paths`` (missing: nothing)."""
    return fingerprint_of(source_hashes(paths))
