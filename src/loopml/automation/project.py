"""The project file, ``loopml.yaml``: the triggers of a project and how its agent runs.

.. code-block:: yaml

    agent:
      interval: 30s            # between two evaluations of the triggers
      executor: processes:2    # where the pipelines it starts run
    defaults:                  # merged into every trigger
      pipeline: pipelines/train.py:churn_pipeline
      model: churn
      deployment: churn-api
      min_interval: 10m
    triggers:
      more-data:   {kind: new_data, dataset: churn, min_rows: 1000}
      nightly:     {kind: schedule, cron: "0 3 * * *", timezone: Europe/Paris}
      drift:       {kind: drift, kinds: [drift, prediction_drift]}
      decay:       {kind: decay, metric: auc, below: 0.8}
      code:        {kind: code_change, paths: [pipelines/]}
      by-hand:     {kind: manual, params: {lr: 0.05}}

Each trigger (or ``defaults``) may carry the promotion ``policy`` of the versions its runs
register (``{gate: {metric: auc, margin: 0.01}, rollout: {mode: canary, ...}}``, see
:mod:`loopml.automation.rollout`); its rollout takes the trigger's ``deployment`` and
``alias`` unless it names its own, and is checked so when the file is read. A gate that
must load tree models stored with skops that the agent did not build lists their types:
``gate: {metric: auc, trusted_types: [sklearn.tree._tree.Tree]}`` (see
:mod:`loopml.automation.gate_trust`).

Durations are seconds or text with a unit (``500ms``, ``30s``, ``10m``, ``2h``, ``1d``);
fractions are numbers or percentages (``0.1``, ``10%``). A relative pipeline file is relative
to the project file. Any mistake is an :class:`~loopml.errors.InvalidArgument` that names the
key (``triggers.nightly.cron``), the value and the fix — never a traceback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.automation.triggers import TRIGGER_KINDS, Trigger
from loopml.durations import parse_duration
from loopml.errors import InvalidArgument, NotFound

__all__ = ["PROJECT_FILE", "AgentOptions", "Project", "load_project", "parse_project"]

PROJECT_FILE = "loopml.yaml"
_DURATION_KEYS = ("min_interval", "retry_delay")
_FRACTION_KEYS = ("min_fraction", "drop")
_COMMON_KEYS = {f.name for f in dataclasses.fields(Trigger)}


def _fraction(value: Any, key: str) -> float:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise InvalidArgument(f"{key}: {value!r} is not a fraction; write 0.1 or 10%")


@dataclass(frozen=True, kw_only=True)
class AgentOptions:
    """How ``loopml agent`` runs (None: the setting of the same purpose)."""

    interval: float | None = None
    executor: str | None = None
    lease_ttl: float | None = None
    lease: str = "agent"
    #: Seconds a stopping agent waits for its running pipelines before leaving them to be
    #: resumed by the next agent.
    stop_timeout: float = 300.0


@dataclass(frozen=True, kw_only=True)
class Project:
    """Triggers (by name, in declaration order) and agent options; ``path`` is the file."""

    triggers: tuple[Trigger, ...] = ()
    agent: AgentOptions = AgentOptions()
    path: Path | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for trigger in self.triggers:
            if trigger.name in seen:
                raise InvalidArgument(f"two triggers are named {trigger.name!r}; rename one")
            seen.add(trigger.name)

    def trigger(self, name: str) -> Trigger:
        for trigger in self.triggers:
            if trigger.name == name:
                return trigger
        where = f" in {self.path}" if self.path else ""
        names = ", ".join(t.name for t in self.triggers) or "none"
        raise NotFound(f"no trigger named {name!r}{where}; triggers: {names}")


def _mapping(value: Any, key: str, example: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{key} must be a mapping of keys to values, got "
                              f"{type(value).__name__} {value!r}; e.g. {example}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise InvalidArgument(f"{key}: key {bad[0]!r} must be text")
    return dict(value)


def _agent_options(raw: Any, source: str) -> AgentOptions:
    values = _mapping(raw, f"{source}: agent", "agent: {interval: 30s}")
    known = {f.name for f in dataclasses.fields(AgentOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InvalidArgument(f"{source}: agent.{unknown[0]} is not an agent option; known: "
                              f"{', '.join(sorted(known))}")
    for key in ("interval", "lease_ttl", "stop_timeout"):
        if key in values:
            values[key] = parse_duration(values[key], allow_zero=True,
                                         what=f"{source}: agent.{key}")
            if key != "stop_timeout" and values[key] <= 0:
                raise InvalidArgument(f"{source}: agent.{key} must be > 0")
    for key in ("executor", "lease"):
        if key in values and not isinstance(values[key], str):
            raise InvalidArgument(f"{source}: agent.{key} must be text, got {values[key]!r}")
    return AgentOptions(**values)


def _resolve_pipeline(target: Any, base: Path | None) -> Any:
    if not isinstance(target, str) or base is None:
        return target
    file, sep, name = target.rpartition(":")
    if sep and file.endswith(".py") and not Path(file).is_absolute():
        candidate = base / file
        if candidate.is_file() or not Path(file).is_file():
            return f"{candidate}:{name}"
    return target


def _check_policy(policy: Any, key: str, defaults: Mapping[str, Any]) -> None:
    """The promotion policy parses, with the trigger's ``deployment`` and ``alias`` filled
    in as the rollout fills them in when it runs."""
    try:
        from loopml.automation.rollout_policy import parse_policies
    except ImportError:  # pragma: no cover - part of loopml
        return
    if not isinstance(policy, Mapping):
        raise InvalidArgument(f"{key} must be a mapping, e.g. policy: {{gate: {{metric: auc}}, "
                              "rollout: {mode: direct}}")
    lent = {k: defaults[k] for k in ("deployment", "alias") if isinstance(defaults.get(k), str)}
    try:
        parse_policies(policy, defaults=lent)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{key}: {exc}") from None


def _trigger(name: Any, raw: Any, defaults: dict[str, Any], source: str,
             base: Path | None) -> Trigger:
    key = f"{source}: triggers.{name}"
    values = {**defaults, **_mapping(raw, key, "{kind: schedule, cron: '0 3 * * *'}")}
    kind = values.pop("kind", None)
    if kind not in TRIGGER_KINDS:
        raise InvalidArgument(f"{key}.kind is {kind!r}; use one of "
                              f"{', '.join(TRIGGER_KINDS)}")
    cls = TRIGGER_KINDS[kind]
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        extra = sorted(known - _COMMON_KEYS)
        raise InvalidArgument(f"{key}.{unknown[0]} is not a key of a {kind} trigger; its "
                              f"keys: {', '.join(extra) or 'none'}; every trigger also has: "
                              f"{', '.join(sorted(_COMMON_KEYS))}")
    if "pipeline" not in values:
        raise InvalidArgument(f"{key}.pipeline is missing; name the pipeline to run, e.g. "
                              "pipeline: pipelines/train.py:churn_pipeline (or set it under "
                              "defaults)")
    values["pipeline"] = _resolve_pipeline(values["pipeline"], base)
    for field_name in _DURATION_KEYS:
        if values.get(field_name) is not None:
            values[field_name] = parse_duration(values[field_name], allow_zero=True,
                                                what=f"{key}.{field_name}")
    for field_name in _FRACTION_KEYS:
        if values.get(field_name) is not None:
            values[field_name] = _fraction(values[field_name], f"{key}.{field_name}")
    for field_name in ("kinds", "paths"):
        if isinstance(values.get(field_name), list):
            values[field_name] = tuple(values[field_name])
    if values.get("policy") is not None:
        _check_policy(values["policy"], f"{key}.policy", values)
    try:
        return cls(name=str(name), **values)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{key}: {exc}") from None
    except TypeError as exc:  # a value of the wrong type reached a comparison
        raise InvalidArgument(f"{key}: a value has the wrong type ({exc}); check the "
                              "numbers and texts of this trigger") from None


def parse_project(data: Any, *, source: str = PROJECT_FILE, base: Path | None = None) -> Project:
    """A :class:`Project` from the parsed YAML of a project file."""
    document = _mapping(data, source, "triggers: {nightly: {kind: schedule, ...}}")
    unknown = sorted(set(document) - {"agent", "defaults", "triggers"})
    if unknown:
        raise InvalidArgument(f"{source}: unknown top-level key {unknown[0]!r}; a project file "
                              "has agent, defaults and triggers")
    defaults = _mapping(document.get("defaults"), f"{source}: defaults",
                        "defaults: {model: churn}")
    if "name" in defaults:
        raise InvalidArgument(f"{source}: defaults.name: a name is each trigger's own key")
    triggers = _mapping(document.get("triggers"), f"{source}: triggers",
                        "triggers: {nightly: {kind: schedule, cron: '0 3 * * *'}}")
    built = tuple(_trigger(name, raw, defaults, source, base) for name, raw in triggers.items())
    return Project(triggers=built, agent=_agent_options(document.get("agent"), source),
                   path=None)


def _duplicate_checking_loader() -> Any:
    import yaml

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        pass

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        keys: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in keys:
                raise InvalidArgument(f"line {key_node.start_mark.line + 1}: the key {key!r} "
                                      "appears twice in one mapping; keep one")
            keys.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader


def load_project(path: str | Path | None = None) -> Project:
    """Read ``path`` (default: ``loopml.yaml`` in the working directory)."""
    import yaml

    file = Path(path) if path is not None else Path(PROJECT_FILE)
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise NotFound(f"no project file {file}; write one (see 'loopml agent --help') or "
                       "pass --project FILE") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read the project file {file} ({exc}); check it") \
            from None
    try:
        data = yaml.load(text, Loader=_duplicate_checking_loader())  # a SafeLoader
    except InvalidArgument as exc:
        raise InvalidArgument(f"{file}: {exc}") from None
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{file} is not valid YAML: {' '.join(str(exc).split())}; "
                              "fix it") from None
    project = parse_project(data, source=str(file), base=file.resolve().parent)
    return dataclasses.replace(project, path=file)
