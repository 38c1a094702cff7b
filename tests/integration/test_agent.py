"""``loopml agent`` as a separate process against a temporary store: a trigger fired by hand
and new data start real pipeline runs, every decision lands in the events timeline in order,
nothing fires twice, and SIGTERM stops the loop gracefully."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopml
from loopml.automation.events import list_events
from loopml.automation.lease import read_lease
from loopml.client import Client

TRAIN = '''
import pandas as pd
from loopml.pipelines import Dataset, pipeline, register, step


@step
def prepare(data: Dataset) -> pd.DataFrame:
    return data.to_pandas()


@step
def fit(df: pd.DataFrame):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(df[["a", "b"]].to_numpy(), df["y"].to_numpy())


@step
def evaluate(model, df: pd.DataFrame) -> dict:
    return {"accuracy": float(model.score(df[["a", "b"]].to_numpy(), df["y"].to_numpy()))}


@pipeline
def churn(data: Dataset = Dataset("toy@latest")):
    df = prepare(data)
    model = fit(df)
    register(model, name="toy", metrics=evaluate(model, df))


@step(cache=False)
def tick(n: int) -> int:
    return n + 1


@pipeline
def quick(n: int = 1):
    tick(n)


@step(cache=False)
def explode(n: int) -> int:
    raise ValueError(f"bad input {n}")


@pipeline
def broken(n: int = 1):
    explode(n)
'''

PROJECT = '''
defaults:
  pipeline: train.py:churn
  model: toy
  min_interval: 0
triggers:
  by-hand: {kind: manual}
  more-data: {kind: new_data, dataset: toy, min_rows: 100}
  quick: {kind: manual, pipeline: train.py:quick, model: other}
  broken: {kind: manual, pipeline: train.py:broken, model: other, max_retries: 0}
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "loopml.yaml").write_text(textwrap.dedent(PROJECT))
    return tmp_path


@pytest.fixture
def client(project: Path) -> Client:
    client = Client(loopml.load_settings(home=project / ".loopml", progress=False))
    yield client
    client.close()


def _env(project: Path) -> dict[str, str]:
    return {**os.environ, "LOOPML_HOME": str(project / ".loopml"), "LOOPML_PROGRESS": "0"}


def _loopml(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loopml.cli.main", *args], cwd=project,
                          env=_env(project), capture_output=True, text=True, timeout=120,
                          check=False)


def _table(path: Path, rows: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    pd.DataFrame({"a": a, "b": b, "y": (a + b > 0).astype(int)}).to_parquet(path)
    return path


def _kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["kind"], e["trigger"]) for e in events]


def test_agent_once_fires_runs_and_records_the_timeline(project: Path, client: Client) -> None:
    client.add_dataset(_table(project / "v1.parquet", 300, 0), "toy")
    fired = _loopml(project, "trigger", "fire", "by-hand")
    assert fired.returncode == 0, fired.stderr
    assert "will fire on the agent's next evaluation" in fired.stdout

    first = _loopml(project, "agent", "--once", "--json")
    assert first.returncode == 0, first.stderr
    events = json.loads(first.stdout)
    assert _kinds(events)[:4] == [("trigger_fired", "by-hand"), ("run_started", "by-hand"),
                                  ("run_succeeded", "by-hand"), ("candidate", "by-hand")]
    assert events[0]["reason"].startswith("fired by hand by ")
    assert events[1]["run_id"] == events[2]["run_id"]
    assert events[2]["version"] == 1 and "registered toy v1" in events[2]["reason"]
    assert events[2]["data"]["metrics"]["accuracy"] > 0.9
    assert "more-data" not in {e["trigger"] for e in events}  # its pipeline was busy

    client.append_dataset("toy", _table(project / "v2.parquet", 200, 1))
    second = _loopml(project, "agent", "--once", "--json")
    assert second.returncode == 0, second.stderr
    events = json.loads(second.stdout)
    assert _kinds(events)[:3] == [("trigger_fired", "more-data"), ("run_started", "more-data"),
                                  ("run_succeeded", "more-data")]
    assert events[0]["reason"].startswith("200 new rows in toy@2 since toy@1 (300 rows)")
    assert events[0]["data"]["new"] == 200 and events[2]["version"] == 2

    third = _loopml(project, "agent", "--once")
    assert third.returncode == 0 and "nothing fired" in third.stdout  # never twice

    timeline = _loopml(project, "events", "--model", "toy", "--json")
    assert timeline.returncode == 0, timeline.stderr
    kinds = [e["kind"] for e in json.loads(timeline.stdout)
             if e["kind"] in ("trigger_fired", "run_started", "run_succeeded")]
    assert kinds == ["trigger_fired", "run_started", "run_succeeded"] * 2
    table = _loopml(project, "events", "--since", "1h")
    assert "trigger_fired" in table.stdout and "more-data" in table.stdout
    listed = _loopml(project, "trigger", "list", "--json")
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["more-data"]["last_fired_at"] is not None and rows["quick"]["running"] is None


def test_a_retrain_that_fails_for_good_exits_1(project: Path) -> None:
    assert _loopml(project, "trigger", "fire", "broken").returncode == 0
    done = _loopml(project, "agent", "--once", "--json")
    assert done.returncode == 1
    events = json.loads(done.stdout)
    broken = [e for e in events if e["trigger"] == "broken"]
    assert [e["kind"] for e in broken] == ["trigger_fired", "run_started", "run_failed"]
    assert "attempt 1 of 1 failed: step 'explode' failed: ValueError: bad input 1" \
        in broken[-1]["reason"]
    assert "giving up" in broken[-1]["reason"]


def test_bad_project_file_is_one_line_and_exit_1(project: Path) -> None:
    (project / "loopml.yaml").write_text("triggers: {t: {kind: schedule, pipeline: train.py:quick,"
                                         " cron: '0 25 * * *'}}\n")
    done = _loopml(project, "agent", "--once")
    assert done.returncode == 1
    assert done.stderr.startswith("error: loopml.yaml: triggers.t: ")
    assert "hour 25 is outside 0-23" in done.stderr and "Traceback" not in done.stderr
    unknown = _loopml(project, "trigger", "fire", "nope", "--project", "missing.yaml")
    assert unknown.returncode == 1 and "no project file missing.yaml" in unknown.stderr


def test_sigterm_stops_the_agent_gracefully(project: Path, client: Client) -> None:
    agent = subprocess.Popen([sys.executable, "-m", "loopml.cli.main", "agent",
                              "--interval", "0.2s"], cwd=project, env=_env(project),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: any(e.kind == "agent_started" for e in list_events(client.meta)))
        assert _loopml(project, "trigger", "fire", "quick").returncode == 0
        _wait(lambda: any(e.kind == "run_succeeded" for e in list_events(client.meta)))
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, stderr
    assert "SIGTERM: stopping" in stderr
    events = list_events(client.meta, include=("automation",))
    # more-data has no dataset yet: its error is recorded once, not at every tick
    assert [e.kind for e in events] == ["agent_started", "trigger_error", "trigger_fired",
                                        "run_started", "run_succeeded", "agent_stopped"]
    assert events[1].trigger == "more-data" and "no dataset named 'toy'" in events[1].reason
    with client.meta.read() as conn:
        lease = read_lease(conn, "agent")
    assert lease is not None and lease.expires_at == 0  # released for the next agent


FOREST = '''
import pandas as pd
from loopml.pipelines import Dataset, pipeline, register, step


@step
def fit(data: Dataset):
    from sklearn.ensemble import RandomForestClassifier

    df = data.to_pandas()
    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    return forest.fit(df[["a", "b"]].to_numpy(), df["y"].to_numpy())


@pipeline
def churn(data: Dataset = Dataset("toy@latest")):
    register(fit(data), name="toy")
'''

FOREST_PROJECT = '''
defaults:
  pipeline: train.py:churn
  model: toy
  deployment: toy-api
  min_interval: 0
  policy:
    gate: {metric: accuracy, target: y}
    rollout: {mode: canary, percent: 10, minutes: 5}
triggers:
  by-hand: {kind: manual}
  settings: {kind: code_change, paths: [settings.yaml]}
'''


def test_the_agent_takes_a_forest_from_nothing_to_production_then_to_a_canary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process: a canary policy whose deployment comes from defaults loads; the first
    version (a random forest, stored with skops) passes its gate, and the deployment that
    does not exist yet is created serving it; a change of a watched file that is no
    pipeline code starts a retrain compared with the code that built production."""
    from loopml.automation import records
    from loopml.automation.agent import Agent, fire_trigger
    from loopml.automation.project import load_project
    from loopml.automation.rollout import list_rollouts
    from loopml.deployments.api import Deployments

    (tmp_path / "train.py").write_text(FOREST)
    (tmp_path / "loopml.yaml").write_text(FOREST_PROJECT)
    (tmp_path / "settings.yaml").write_text("depth: 3\n")
    monkeypatch.chdir(tmp_path)
    client = Client(loopml.load_settings(home=tmp_path / ".loopml", progress=False,
                                         environ={}, config_file=tmp_path / "none.toml"))
    try:
        client.add_dataset(_table(tmp_path / "v1.parquet", 400, 0), "toy")
        project = load_project(tmp_path / "loopml.yaml")
        fire_trigger("by-hand", project=project, client=client, by="test")
        Agent(project, client=client).run(once=True)
        assert client.get_model_version("toy@production").version == 1
        assert Deployments(client.meta).get("toy-api").policy.model == "toy@production"
        kinds = [e.kind for e in list_events(client.meta, model="toy")]
        assert sorted(kinds[-5:]) == ["candidate", "deploy_created", "gate_passed",
                                      "promoted", "rollout_started"], kinds
        with client.meta.read() as conn:
            state = records.get_state(conn, "settings")
        assert state is not None and list(state.baseline["built"]) == ["1"]

        (tmp_path / "settings.yaml").write_text("depth: 4\n")
        Agent(project, client=client).run(once=True)
        fired = [e for e in list_events(client.meta, kind="trigger_fired")][-1]
        assert fired.trigger == "settings" and fired.reason == (
            "settings.yaml changed since toy v1 (production) was built")
        [second] = [r for r in list_rollouts(model="toy", client=client) if r.challenger == 2]
        assert (second.mode, second.stage) == ("canary", "canary"), second.reason
    finally:
        client.close()


def _wait(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)
