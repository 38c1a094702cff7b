"""loopml.yaml: triggers and agent options from the project file, and the one-line errors of
bad files (naming the key, the value and the fix; never a traceback)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from loopml.automation.project import load_project
from loopml.automation.triggers import (
    CodeChangeTrigger,
    DecayTrigger,
    DriftTrigger,
    ManualTrigger,
    NewDataTrigger,
    ScheduleTrigger,
)
from loopml.durations import parse_duration
from loopml.errors import InvalidArgument, NotFound

GOOD = """
agent:
  interval: 45s
  executor: processes:2
  lease_ttl: 20
defaults:
  pipeline: pipelines/train.py:churn
  model: churn
  deployment: churn-api
  min_interval: 10m
triggers:
  more-data: {kind: new_data, dataset: churn, min_rows: 1000, min_fraction: 10%}
  nightly: {kind: schedule, cron: "0 3 * * *", timezone: Europe/Paris, min_interval: 0}
  drift: {kind: drift, kinds: [drift, prediction_drift], min_alerts: 2}
  decay: {kind: decay, metric: auc, drop: 5%, retry_delay: 1m, max_retries: 3}
  code: {kind: code_change, paths: [pipelines/]}
  by-hand:
    kind: manual
    pipeline: other.py:tune
    params: {lr: 0.05}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "loopml.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_full_project_file(tmp_path: Path) -> None:
    project = load_project(_write(tmp_path, GOOD))
    assert project.agent.interval == 45 and project.agent.executor == "processes:2"
    assert project.agent.lease_ttl == 20
    kinds = [type(t) for t in project.triggers]
    assert kinds == [NewDataTrigger, ScheduleTrigger, DriftTrigger, DecayTrigger,
                     CodeChangeTrigger, ManualTrigger]
    more = project.trigger("more-data")
    assert isinstance(more, NewDataTrigger)
    assert (more.min_rows, more.min_fraction, more.min_interval) == (1000, 0.1, 600)
    assert more.pipeline == f"{tmp_path}/pipelines/train.py:churn"  # relative to the file
    assert more.model == "churn" and more.deployment == "churn-api"
    assert project.trigger("nightly").min_interval == 0
    drift = project.trigger("drift")
    assert isinstance(drift, DriftTrigger) and drift.kinds == ("drift", "prediction_drift")
    decay = project.trigger("decay")
    assert isinstance(decay, DecayTrigger)
    assert (decay.drop, decay.retry_delay, decay.max_retries) == (0.05, 60, 3)
    by_hand = project.trigger("by-hand")
    assert by_hand.pipeline == f"{tmp_path}/other.py:tune" and by_hand.params == {"lr": 0.05}
    with pytest.raises(NotFound, match="no trigger named 'nope'.*triggers: more-data, "):
        project.trigger("nope")


def test_durations() -> None:
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2h") == 7200 and parse_duration(" 1.5 m ") == 90
    assert parse_duration(12) == 12
    with pytest.raises(InvalidArgument, match="'soon' is not a duration"):
        parse_duration("soon")


@pytest.mark.parametrize(("text", "match"), [
    ("triggers: [a, b]", "triggers must be a mapping"),
    ("triggers: {t: {kind: sometimes, pipeline: p.py:x}}",
     r"triggers\.t\.kind is 'sometimes'; use one of new_data, schedule"),
    ("triggers: {t: {kind: manual}}", r"triggers\.t\.pipeline is missing"),
    ("triggers: {t: {kind: schedule, pipeline: p.py:x, cron: '0 25 * * *'}}",
     r"triggers\.t: .*hour 25 is outside 0-23"),
    ("triggers: {t: {kind: schedule, pipeline: p.py:x, cron: '0 3 * * *', tz: UTC}}",
     r"triggers\.t\.tz is not a key of a schedule trigger; its keys: cron, timezone"),
    ("triggers: {t: {kind: manual, pipeline: p.py:x, min_interval: soon}}",
     r"triggers\.t\.min_interval: 'soon' is not a duration"),
    ("triggers: {t: {kind: new_data, pipeline: p.py:x, model: m, dataset: d, "
     "min_fraction: lots}}", r"triggers\.t\.min_fraction: 'lots' is not a fraction"),
    ("triggers: {t: {kind: new_data, pipeline: p.py:x, model: m, dataset: d, "
     "min_rows: many}}", r"triggers\.t: .*min_rows must be a whole number"),
    ("agent: {interval: fast}", r"agent\.interval: 'fast' is not a duration"),
    ("agent: {speed: 3}", r"agent\.speed is not an agent option"),
    ("trigers: {}", "unknown top-level key 'trigers'"),
    ("triggers:\n  t: {kind: manual, pipeline: a.py:x}\n  t: {kind: manual, pipeline: b.py:y}",
     "line 3: the key 't' appears twice"),
    ("triggers: {t: {kind: manual, pipeline: a.py:x", "is not valid YAML"),
    ("- just\n- a list", "must be a mapping"),
])
def test_bad_project_files_name_the_key_and_the_fix(tmp_path: Path, text: str,
                                                    match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        load_project(_write(tmp_path, text))


def test_missing_project_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no project file .*--project FILE"):
        load_project(tmp_path / "nope.yaml")


def test_empty_file_is_a_project_without_triggers(tmp_path: Path) -> None:
    assert load_project(_write(tmp_path, "")).triggers == ()


def test_a_policy_is_checked_with_the_trigger_defaults(tmp_path: Path) -> None:
    """A canary rollout takes its deployment from defaults (as the rollout does when it
    runs); one with no deployment anywhere is refused, naming the key."""
    canary = "{gate: {metric: auc}, rollout: {mode: canary, percent: 10, minutes: 30}}"
    project = load_project(_write(tmp_path, f"""
        defaults:
          pipeline: p.py:x
          deployment: churn-api
          policy: {canary}
        triggers:
          nightly: {{kind: schedule, cron: "0 3 * * *"}}
          staged: {{kind: manual, alias: staging, deployment: churn-staging}}
    """))
    assert project.trigger("nightly").policy["rollout"]["mode"] == "canary"
    assert project.trigger("staged").deployment == "churn-staging"
    with pytest.raises(InvalidArgument, match=r"triggers\.t\.policy: a canary rollout needs "
                                              "the deployment"):
        load_project(_write(tmp_path, f"""
            triggers:
              t: {{kind: manual, pipeline: p.py:x, policy: {canary}}}
        """))
    with pytest.raises(InvalidArgument, match=r"triggers\.t\.policy: invalid alias"):
        load_project(_write(tmp_path, f"""
            defaults: {{deployment: api, alias: "bad alias!"}}
            triggers:
              t: {{kind: manual, pipeline: p.py:x, policy: {canary}}}
        """))
