"""The loop end to end, shortened: ``loopml agent`` runs as a separate process against
PostgreSQL (blobs in a temporary directory) with the demo's churn stream and pipeline, while
this process plays the world around it (new data, a teammate, a code change, a model server
and its clients). The timeline must show, in order:

- new data -> retrain -> gate passed -> promoted (twice: the first model, then the retrain);
- a deliberately worse challenger, fired by hand -> gate failed -> rejected;
- a code change whose model fails on live requests -> canary -> the server's automatic
  rollback -> rolled back, with no failed client request (the stable version answers).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from servers import ServerThread, free_port

import loopml
from loopml.automation import records
from loopml.automation.agent import fire_trigger
from loopml.automation.events import Event, list_events
from loopml.automation.project import load_project
from loopml.automation.rollout import list_rollouts
from loopml.deployments.api import Deployments

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEED = 7  # the stream is deterministic: with it each gate decides as the test expects
POLICY = "{metric: auc, target: churned, margin: 0.0, slices: [region], slice_tolerance: 0.05}"
PROJECT = f"""
defaults:
  pipeline: churn_pipeline.py:retrain
  model: churn
  min_interval: 0
  max_retries: 0
  policy: {{gate: {POLICY}, rollout: {{mode: direct}}}}
triggers:
  more-data: {{kind: new_data, dataset: churn, min_rows: 500}}
  small-model: {{kind: manual, params: {{features: small}}}}
  code:
    kind: code_change
    policy:
      gate: {POLICY}
      rollout: {{mode: canary, deployment: churn-api, percent: 50, minutes: 5,
                max_error_rate: 0.05, window_s: 10, min_requests: 5}}
"""


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import churn_stream

    return churn_stream


@pytest.fixture
def world(tmp_path: Path, postgres_url: str) -> Iterator[tuple[loopml.Client, dict[str, str]]]:
    """The project directory, a client of its stores, and the environment of its agent."""
    shutil.copy(EXAMPLES / "churn_pipeline.py", tmp_path / "churn_pipeline.py")
    (tmp_path / "loopml.yaml").write_text(PROJECT)
    blobs = f"file://{tmp_path / 'blobs'}"
    settings = loopml.load_settings(environ={}, config_file=tmp_path / "none.toml",
                                    database_url=postgres_url, blob_url=blobs, progress=False)
    client = loopml.Client(settings)
    env = {**os.environ, "LOOPML_DATABASE_URL": postgres_url, "LOOPML_BLOB_URL": blobs,
           "LOOPML_PROGRESS": "0"}
    yield client, env
    client.close()


AGENT_LOG: list[Path] = []  # the running agent's log, shown when a wait times out


def _wait(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            log = AGENT_LOG[-1].read_text()[-3000:] if AGENT_LOG else ""
            raise AssertionError(f"timed out waiting for {what}; the agent's log:\n{log}")
        time.sleep(0.1)
    return found


def _timeline(client: loopml.Client, version: int) -> list[str]:
    events = list_events(client.meta, model="churn", include=("automation",), limit=1000)
    return [e.kind for e in events if e.version == version or (
        e.version is None and e.kind in ("trigger_fired", "run_started")
        and e.data.get("retrain") in _retrains(events, version))]


def _retrains(events: list[Event], version: int) -> set[str]:
    return {e.data["retrain"] for e in events if e.version == version and "retrain" in e.data}


def _outcome(client: loopml.Client, version: int) -> str | None:
    for rollout in list_rollouts(model="churn", client=client):
        if rollout.challenger == version:
            return rollout.outcome
    return None


def _production(client: loopml.Client) -> int:
    return client.get_model_version("churn@production").version


def _table(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_parquet(path)
    return path


RETRAIN = ["trigger_fired", "run_started", "run_succeeded", "candidate", "gate_passed",
           "rollout_started", "promoted"]


def test_the_agent_process_retrains_gates_promotes_rejects_and_rolls_back(
        tmp_path: Path, world: tuple[loopml.Client, dict[str, str]], stream: Any) -> None:
    client, env = world
    history = stream.history(range(1, stream.DRIFT_WEEK), 150, seed=SEED)
    client.add_dataset(_table(tmp_path / "history.parquet", history), "churn")
    AGENT_LOG.append(tmp_path / "agent.log")
    log = AGENT_LOG[-1].open("w")
    agent = subprocess.Popen([sys.executable, "-m", "loopml.cli.main", "agent", "--interval",
                              "0.2s"], cwd=tmp_path, env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    server = None
    warming = threading.Thread(target=_import_server)  # while the agent trains churn v1
    warming.start()
    try:
        # new data (the first version of the dataset) -> the first model, promoted directly
        _wait(lambda: _outcome(client, 1), "churn v1's rollout")
        warming.join()
        assert _timeline(client, 1) == RETRAIN and _production(client) == 1
        Deployments(client.meta, actor="test").create("churn-api", model="churn@production")
        server = _Server(client.settings)

        # new data -> retrain -> gate (against v1, on the newest data's holdout) -> promoted
        fresh = stream.history(range(stream.DRIFT_WEEK, stream.DRIFT_WEEK + 3), 700, seed=SEED)
        client.append_dataset("churn", _table(tmp_path / "fresh.parquet", fresh))
        assert _wait(lambda: _outcome(client, 2), "churn v2's rollout") == "promoted"
        assert _timeline(client, 2) == RETRAIN and _production(client) == 2
        events = list_events(client.meta, model="churn", include=("automation",), limit=1000)
        fired = next(e for e in events if e.kind == "trigger_fired"
                     and e.data.get("retrain") in _retrains(events, 2))
        assert fired.trigger == "more-data" and fired.reason.startswith(
            f"{len(fresh):,} new rows in churn@2 since churn@1")
        passed = next(e for e in events if e.kind == "gate_passed" and e.version == 2)
        assert passed.data["champion"] == "churn/1"
        assert passed.data["challenger_metrics"]["auc"] > passed.data["champion_metrics"]["auc"]

        # a deliberately worse challenger, fired by hand -> gate failed -> rejected
        fire_trigger("small-model", project=load_project(tmp_path / "loopml.yaml"),
                     client=client, by="test")
        assert _wait(lambda: _outcome(client, 3), "churn v3's rollout") == "rejected"
        assert _timeline(client, 3) == ["trigger_fired", "run_started", "run_succeeded",
                                        "candidate", "gate_failed", "rejected"]
        failed = next(e for e in list_events(client.meta, kind="gate_failed"))
        assert failed.data["challenger_metrics"]["auc"] < failed.data["champion_metrics"]["auc"]
        assert "needs margin" in failed.reason and _production(client) == 2

        # a code change -> canary of a model that fails on live requests -> rolled back by
        # the server; every client request answered by the stable version meanwhile
        def code_seen() -> bool:
            with client.meta.read() as conn:
                state = records.get_state(conn, "code")
            return state is not None and "code_hash" in state.baseline

        _wait(code_seen, "the code trigger's first look at the pipeline")
        pipeline = tmp_path / "churn_pipeline.py"
        pipeline.write_text(pipeline.read_text().replace("region_x_contract = False",
                                                         "region_x_contract = True"))
        _wait(lambda: Deployments(client.meta).get("churn-api").policy.canary, "the canary")
        requests = stream.requests(stream.NEW_REGION_WEEK, 200, seed=SEED,
                                   new_region_share=0.5)

        def rolled_back() -> bool:
            # the agent may already have ended the rollout (restoring the policy) after it
            return any(e.kind == "auto-rollback"
                       for e in Deployments(client.meta).history("churn-api"))

        answers = server.send(requests, until=rolled_back, timeout=30)
        assert rolled_back(), answers
        answers += server.send(requests[:40])
        assert _wait(lambda: _outcome(client, 4), "churn v4's rollout") == "rolled_back"
        assert {status for status, _ in answers} == {200}, answers  # no client saw a failure
        # the stable v2 answered the rest, and every request the canary failed on
        assert answers[(200, 2)] > 0 and set(answers) <= {(200, 2), (200, 4)}
        assert _timeline(client, 4) == ["trigger_fired", "run_started", "run_succeeded",
                                        "candidate", "gate_passed", "rollout_started",
                                        "rolled_back"]
        [back] = list_events(client.meta, kind="rolled_back")
        assert "auto-rollback" in back.reason and "error rate" in back.reason
        assert _production(client) == 2
        assert Deployments(client.meta).get("churn-api").policy.canary is None
        assert [e.kind for e in list_events(client.meta, model="churn", limit=1000)
                if e.kind in ("promoted", "rejected", "deploy_auto-rollback", "rolled_back")
                ] == ["promoted", "promoted", "rejected", "deploy_auto-rollback",
                      "rolled_back"]
    finally:
        if server is not None:
            server.stop()
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=60)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            log.close()
    assert agent.returncode == 0, (tmp_path / "agent.log").read_text()[-3000:]


def _import_server() -> None:
    """What the model server imports first (skops takes seconds: it lists every estimator)."""
    from loopml.models.flavors.sklearn import import_skops
    from loopml.serving.app import ServingApp  # noqa: F401

    import_skops()


class _Server(ServerThread):
    """The deployment served by uvicorn in a thread of this process."""

    def __init__(self, settings: loopml.Settings) -> None:
        from loopml.serving import ServeOptions
        from loopml.serving.server import uvicorn_config

        options = ServeOptions(deployment="churn-api", port=free_port(), poll_interval_s=0.1,
                               log_flush_s=0.2)
        super().__init__(uvicorn_config(options, settings), wait=False)
        try:
            _wait(lambda: self._get("/ready") == 200, "the model server")
        except BaseException:
            self.stop()
            raise

    def _get(self, path: str) -> int | None:
        import http.client

        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            return None

    def send(self, rows: list[dict[str, Any]], *, until: Callable[[], bool] | None = None,
             timeout: float = 30) -> Counter[tuple[int, int | None]]:
        """POST the rows one by one from two clients (cycling until ``until()``, when
        given); counts of (status, version that answered)."""
        from demo_loop import send

        return send(self.port, rows, threads=2, until=until,
                    seconds=timeout if until is not None else None)
