"""Each kind of trigger against a fake context with a fixed clock: whether it fires, the
reason with its numbers, and what it remembers."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loopml.automation.records import StoreContext, TriggerState
from loopml.automation.triggers import (
    CodeChangeTrigger,
    DecayTrigger,
    DriftTrigger,
    ManualTrigger,
    NewDataTrigger,
    ScheduleTrigger,
    fingerprint_of,
    source_fingerprint,
    source_hashes,
)
from loopml.datasets.entities import DatasetKind, DatasetVersion
from loopml.errors import InvalidArgument
from loopml.monitoring.records import Alert, MonitorResult
from loopml.registry.entities import ModelVersion

PIPE = "pipelines/train.py:churn"
T0 = int(datetime(2025, 3, 29, 12, 0, tzinfo=UTC).timestamp() * 1000)


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def _model(version: int, *, datasets: list[str] | None = None,
           metrics: dict[str, float] | None = None, run_id: str | None = "r1") -> ModelVersion:
    return ModelVersion(id=f"v{version}", model="churn", version=version, tree="0" * 64,
                        flavor="sklearn", run_id=run_id, source_version_id=None,
                        status="active", description="", signature=None,
                        metrics=metrics or {}, params={}, datasets=datasets or [],
                        created_at=T0, created_by="")


def _dataset(version: int, rows: int, new_rows: int | None) -> DatasetVersion:
    return DatasetVersion(id=f"d{version}", dataset="churn", version=version,
                          kind=DatasetKind.TABLE, tree="0" * 64, files=1, bytes=1, rows=rows,
                          new_files=0, new_rows=new_rows, schema=None, profile=None,
                          validation=None, parent_version=version - 1 or None, message="",
                          created_at=T0, created_by="")


def _alert(alert_id: int, kind: str = "drift", version: int | None = 3) -> Alert:
    return Alert(id=alert_id, endpoint="churn-api", report_id=None, model="churn",
                 version=version, kind=kind, column="age", statistic="psi",
                 message=f"age drifted (psi 0.3{alert_id} > 0.2)", value=0.3, threshold=0.2,
                 window_start=T0, window_end=T0, created_at=T0)


def _result(window_end: int, value: float | None) -> MonitorResult:
    return MonitorResult(report_id=1, endpoint="churn-api", window_start=window_end - 60_000,
                         window_end=window_end, kind="performance", column="",
                         statistic="auc", value=value, threshold=None, passed=None)


@dataclass
class FakeContext:
    now: int = T0
    state: TriggerState = field(default_factory=lambda: TriggerState(name="t", created_at=T0))
    versions: dict[str | None, ModelVersion] = field(default_factory=dict)
    datasets: list[DatasetVersion] = field(default_factory=list)
    alert_list: list[Alert] = field(default_factory=list)
    results: list[MonitorResult] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=lambda: {"pipelines/train.py": "a" * 32})
    remembered: dict[str, Any] = field(default_factory=dict)

    def remember(self, **values: Any) -> None:
        self.remembered.update(values)

    def model_version(self, model: str, alias: str | None) -> ModelVersion | None:
        return self.versions.get(alias)

    def dataset_versions(self, name: str) -> Sequence[DatasetVersion]:
        return self.datasets

    def alerts(self, deployment: str, *, after: int | None) -> Sequence[Alert]:
        return [a for a in self.alert_list if after is None or a.id > after]

    def performance(self, deployment: str, metric: str, *,
                    since: int | None) -> Sequence[MonitorResult]:
        return [r for r in self.results if since is None or r.window_end >= since]

    def run_tags(self, run_id: str) -> Mapping[str, str]:
        return self.tags

    def code_hashes(self, paths: Sequence[str]) -> Mapping[str, str]:
        return self.files


def _state(**values: Any) -> TriggerState:
    return TriggerState(name="t", created_at=values.pop("created_at", T0), **values)


# -- new data --------------------------------------------------------------------------------
def test_new_data_counts_rows_since_the_production_lineage() -> None:
    trigger = NewDataTrigger(name="t", pipeline=PIPE, model="churn", dataset="churn",
                             min_rows=1000)
    ctx = FakeContext(versions={"production": _model(3, datasets=["churn@2"])},
                      datasets=[_dataset(1, 4000, 4000), _dataset(2, 5000, 1000),
                                _dataset(3, 5600, 600)])
    assert trigger.evaluate(ctx) is None  # 600 new rows < 1000
    ctx.datasets.append(_dataset(4, 6200, 600))
    firing = trigger.evaluate(ctx)
    assert firing is not None
    assert firing.reason.startswith("1,200 new rows in churn@4 since churn@2 (5,000 rows), "
                                    "+24.0% (>= 1,000); churn v3 (production) was trained on "
                                    "churn@2")
    assert firing.data["new"] == 1200 and firing.data["base_version"] == 2
    assert firing.baseline == {"dataset_version": 4}


def test_new_data_fraction_and_the_newest_baseline_wins() -> None:
    trigger = NewDataTrigger(name="t", pipeline=PIPE, model="churn", dataset="churn",
                             min_fraction=0.1)
    datasets = [_dataset(1, 1000, 1000), _dataset(2, 1050, 50), _dataset(3, 1200, 150)]
    ctx = FakeContext(versions={"production": _model(1, datasets=["churn@1"])},
                      datasets=datasets)
    firing = trigger.evaluate(ctx)
    assert firing is not None and firing.data["fraction"] == pytest.approx(0.2)
    assert "(>= 10%)" in firing.reason
    # a newer (rejected) version was trained on churn@3 already: nothing new since
    ctx.versions[None] = _model(2, datasets=["churn@3"])
    assert NewDataTrigger(name="t", pipeline=PIPE, model="churn", dataset="churn",
                          min_fraction=0.1).evaluate(ctx) is None
    # the last firing's dataset version counts the same way
    ctx = FakeContext(versions={"production": _model(1, datasets=["churn@1"])},
                      datasets=datasets, state=_state(baseline={"dataset_version": 3}))
    assert trigger.evaluate(ctx) is None


def test_new_data_without_any_model_yet() -> None:
    trigger = NewDataTrigger(name="t", pipeline=PIPE, model="churn", dataset="churn",
                             min_rows=100)
    firing = trigger.evaluate(FakeContext(datasets=[_dataset(1, 500, None)]))
    assert firing is not None
    assert "500 new rows in churn@1 since nothing" in firing.reason
    assert "no version of churn was trained on churn yet" in firing.reason


# -- schedule --------------------------------------------------------------------------------
def test_schedule_fires_when_due_and_once_for_missed_times() -> None:
    trigger = ScheduleTrigger(name="t", pipeline=PIPE, cron="0 3 * * *",
                              timezone="Europe/Paris")
    created = _ms(2025, 3, 29, 12, 0)
    ctx = FakeContext(now=_ms(2025, 3, 30, 0, 59), state=_state(created_at=created))
    assert trigger.evaluate(ctx) is None  # 03:00 CEST is 01:00 UTC that day
    ctx.now = _ms(2025, 3, 30, 1, 0)
    firing = trigger.evaluate(ctx)
    assert firing is not None
    assert firing.reason == ("cron '0 3 * * *' (Europe/Paris) was due at "
                             "2025-03-30 03:00 CEST")
    fired = FakeContext(now=_ms(2025, 3, 30, 1, 5),
                        state=_state(created_at=created, last_fired_at=_ms(2025, 3, 30, 1, 0)))
    assert trigger.evaluate(fired) is None
    # an agent down for three days fires once, saying what it missed
    late = FakeContext(now=_ms(2025, 4, 2, 12, 0), state=_state(created_at=created))
    firing = trigger.evaluate(late)
    assert firing is not None and firing.data["missed"] == 3
    assert "3 later time(s) passed while no agent ran" in firing.reason


# -- drift -----------------------------------------------------------------------------------
def test_drift_consumes_alerts_once_and_ignores_stale_versions() -> None:
    trigger = DriftTrigger(name="t", pipeline=PIPE, model="churn", deployment="churn-api",
                           kinds=("drift", "prediction_drift"))
    ctx = FakeContext(versions={"production": _model(3)},
                      alert_list=[_alert(1, version=2), _alert(2, "quality"), _alert(3)])
    firing = trigger.evaluate(ctx)
    assert firing is not None
    assert firing.reason == ("1 new alert(s) on churn-api (1 drift); latest: age drifted "
                             "(psi 0.33 > 0.2)")
    assert firing.last_alert_id == 3 and firing.data["alerts"] == [3]
    # the same alerts again: consumed
    assert trigger.evaluate(FakeContext(versions=ctx.versions, alert_list=ctx.alert_list,
                                        state=_state(last_alert_id=3))) is None
    # alerts about version 2 only (the model in production is 3): stale, no storm
    stale = FakeContext(versions=ctx.versions, alert_list=[_alert(4, version=2)] * 5,
                        state=_state(last_alert_id=3))
    assert trigger.evaluate(stale) is None


def test_drift_needs_min_alerts() -> None:
    trigger = DriftTrigger(name="t", pipeline=PIPE, deployment="churn-api", min_alerts=2)
    assert trigger.evaluate(FakeContext(alert_list=[_alert(1)])) is None
    firing = trigger.evaluate(FakeContext(alert_list=[_alert(1), _alert(2, "quality")]))
    assert firing is not None and firing.data["kinds"] == {"drift": 1, "quality": 1}


# -- decay -----------------------------------------------------------------------------------
def test_decay_below_threshold_and_each_window_judged_once() -> None:
    trigger = DecayTrigger(name="t", pipeline=PIPE, deployment="churn-api", metric="auc",
                           below=0.8)
    ctx = FakeContext(results=[_result(_ms(2025, 3, 29, 10, 0), 0.85),
                               _result(_ms(2025, 3, 29, 11, 0), None)])
    assert trigger.evaluate(ctx) is None
    assert ctx.remembered == {"window_end": _ms(2025, 3, 29, 10, 0)}
    ctx.results.append(_result(_ms(2025, 3, 29, 11, 30), 0.74))
    firing = trigger.evaluate(ctx)
    assert firing is not None
    assert firing.reason == ("auc 0.74 < 0.8 on churn-api (window ending 2025-03-29 11:30 UTC)")
    assert firing.baseline == {"window_end": _ms(2025, 3, 29, 11, 30)}
    judged = FakeContext(results=ctx.results,
                         state=_state(baseline={"window_end": _ms(2025, 3, 29, 11, 30)}))
    assert trigger.evaluate(judged) is None


def test_decay_relative_drop_from_the_production_metric() -> None:
    trigger = DecayTrigger(name="t", pipeline=PIPE, model="churn", deployment="churn-api",
                           metric="auc", drop=0.05)
    ctx = FakeContext(versions={"production": _model(3, metrics={"auc": 0.9})},
                      results=[_result(T0, 0.87)])
    assert trigger.evaluate(ctx) is None  # 3.3% worse
    ctx = FakeContext(versions=ctx.versions, results=[_result(T0, 0.84)])
    firing = trigger.evaluate(ctx)
    assert firing is not None
    assert "auc 0.84 is 6.7% worse than 0.9, the value of churn v3 (production) (>= 5%)" \
        in firing.reason
    assert firing.data["relative_drop"] == pytest.approx(0.0667, abs=1e-3)
    lower_better = DecayTrigger(name="t", pipeline=PIPE, deployment="d", metric="rmse",
                                above=2.0)
    rmse = FakeContext(results=[_result(T0, 2.5)])
    assert "rmse 2.5 > 2" in lower_better.evaluate(rmse).reason  # type: ignore[union-attr]


# -- code change -----------------------------------------------------------------------------
def test_code_change_against_the_code_that_built_production() -> None:
    trigger = CodeChangeTrigger(name="t", pipeline=PIPE, model="churn")
    built = {"built": {"3": {"files": {"pipelines/train.py": "a" * 32}}}}
    ctx = FakeContext(versions={"production": _model(3)}, state=_state(baseline=built),
                      tags={"loopml.git.commit": "0123456789abcdef"})
    assert trigger.evaluate(ctx) is None
    assert ctx.remembered == {"code_hash": fingerprint_of(ctx.files)}
    ctx.files = {"pipelines/train.py": "b" * 32, "pipelines/util.py": "c" * 32}
    firing = trigger.evaluate(ctx)
    assert firing is not None
    assert firing.reason == ("pipelines/train.py, pipelines/util.py changed since churn v3 "
                             "(production) was built at commit 0123456789")
    assert firing.data["changed"] == ["pipelines/train.py", "pipelines/util.py"]
    assert firing.data["built_version"] == 3
    # the same code fired already (e.g. its retrain was rejected): no second retrain
    again = FakeContext(versions=ctx.versions, tags=ctx.tags, files=ctx.files,
                        state=_state(baseline={**built, **(firing.baseline or {})}))
    assert trigger.evaluate(again) is None


def test_code_change_without_a_record_compares_with_the_first_look() -> None:
    trigger = CodeChangeTrigger(name="t", pipeline=PIPE, paths=("pipelines/",))
    first = FakeContext()
    assert trigger.evaluate(first) is None
    seen = fingerprint_of(first.files)
    assert first.remembered == {"code_hash": seen}
    changed = FakeContext(files={"pipelines/train.py": "b" * 32},
                          state=_state(baseline={"code_hash": seen}))
    firing = trigger.evaluate(changed)
    assert firing is not None
    now = fingerprint_of(changed.files)
    assert firing.reason == f"pipelines/ changed (contents {seen[:10]} -> {now[:10]})"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   cwd=cwd, check=True, capture_output=True)


class _Facts(StoreContext):
    """The agent's context, with the production version given instead of read."""

    def __init__(self, state: TriggerState, production: ModelVersion, commit: str) -> None:
        super().__init__(None, state, T0)  # type: ignore[arg-type]
        self.production, self.commit = production, commit

    def model_version(self, model: str, alias: str | None) -> ModelVersion | None:
        return self.production

    def run_tags(self, run_id: str) -> Mapping[str, str]:
        return {"loopml.git.commit": self.commit} if self.commit else {}


@pytest.mark.parametrize("in_git", [True, False], ids=["git", "no-git"])
def test_code_change_counts_every_file_the_same_in_git_or_not(tmp_path: Path,
                                                              in_git: bool) -> None:
    """Ignored, untracked and tracked files all compare by contents with the code that
    built production: an ignored file's change fires, an untracked file present when
    production was built is no change."""
    code = tmp_path / "project"
    code.mkdir()
    (code / "train.py").write_text("def train(): ...\n")
    (code / "settings.yaml").write_text("depth: 3\n")
    commit = ""
    if in_git:
        (code / ".gitignore").write_text("settings.yaml\n")
        _git(code, "init", "-q")
        _git(code, "add", ".")
        _git(code, "commit", "-q", "-m", "first")
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=code, check=True,
                                capture_output=True, text=True).stdout.strip()
    trigger = CodeChangeTrigger(name="t", pipeline=PIPE, model="churn", paths=(str(code),))

    def facts(version: int) -> _Facts:
        built = {"built": {str(version): {"files": source_hashes([str(code)])}}}
        return _Facts(_state(baseline=built), _model(version), commit)

    ctx = facts(1)
    assert trigger.evaluate(ctx) is None
    (code / "settings.yaml").write_text("depth: 4\n")  # ignored by git
    firing = trigger.evaluate(ctx)
    assert firing is not None and firing.data["changed"] == [str(code / "settings.yaml")]
    assert firing.reason.startswith(f"{code / 'settings.yaml'} changed since churn v1 "
                                    "(production) was built")
    assert firing.reason.endswith(f" at commit {commit[:10]}" if in_git else "was built")
    (code / "notes.py").write_text("x = 1\n")  # untracked, not ignored
    assert trigger.evaluate(facts(2)) is None  # v2 was built with it: nothing changed


def test_source_fingerprint_follows_contents(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    before = source_fingerprint([str(tmp_path)])
    assert source_fingerprint([str(tmp_path)]) == before
    (tmp_path / "a.py").write_text("x = 2\n")
    assert source_fingerprint([str(tmp_path)]) != before
    inside = tmp_path / ".work" / "code"  # a watched directory inside a hidden one
    (inside / "__pycache__").mkdir(parents=True)
    (inside / "b.py").write_text("y = 1\n")
    (inside / "__pycache__" / "b.pyc").write_bytes(b"\0")
    (inside / ".env").write_text("SECRET=1\n")
    assert list(source_hashes([str(inside)])) == [str(inside / "b.py")]


def test_manual_trigger_never_fires_by_itself() -> None:
    assert ManualTrigger(name="t", pipeline=PIPE).evaluate(FakeContext()) is None


@pytest.mark.parametrize(("build", "match"), [
    (lambda: NewDataTrigger(name="t", pipeline=PIPE, model="churn", dataset="churn"),
     "needs min_rows or min_fraction"),
    (lambda: NewDataTrigger(name="t", pipeline=PIPE, dataset="churn", min_rows=5),
     "needs model"),
    (lambda: DriftTrigger(name="t", pipeline=PIPE), "needs deployment"),
    (lambda: DriftTrigger(name="t", pipeline=PIPE, deployment="d", kinds=("nope",)),
     "unknown alert kind"),
    (lambda: DecayTrigger(name="t", pipeline=PIPE, deployment="d", metric="auc"),
     "needs below, above or drop"),
    (lambda: DecayTrigger(name="t", pipeline=PIPE, deployment="d", metric="auc", drop=5),
     "between 0 and 1"),
    (lambda: ScheduleTrigger(name="t", pipeline=PIPE, cron="0 99 * * *"), "hour 99"),
    (lambda: ManualTrigger(name="bad name", pipeline=PIPE), "invalid trigger name"),
    (lambda: ManualTrigger(name="t", pipeline=""), "pipeline must name one"),
    (lambda: ManualTrigger(name="t", pipeline=PIPE, max_retries=-1), "max_retries"),
    (lambda: ManualTrigger(name="t", pipeline=PIPE, model=3), "model must be a non-empty"),
])
def test_bad_triggers_say_what_and_how(build: Any, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        build()
