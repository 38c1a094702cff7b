"""``loopml review`` as a person uses it, over the payload log of a deployment served for
real (uvicorn in a thread): list the least confident predictions, label one, review others
interactively, commit; then the dataset has a new version with the labelled rows, the payload
log has their feedback and the timeline a ``labels_added`` event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from sklearn.linear_model import LogisticRegression
from test_deploy_serving import DeploymentServer
from test_serving import Client as HttpClient

import loopml
from loopml.automation.events import list_events
from loopml.deployments.api import Deployments
from loopml.deployments.payload import list_segments, read_segments

FEATURES = ["f0", "f1"]


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loopml.cli.main", "review", *args],
                          capture_output=True, text=True, timeout=120, input=stdin,
                          env={**os.environ, "LOOPML_PROGRESS": "false"})


def _train(home: Path, tmp_path: Path) -> None:
    """churn@1 (f0, f1, churned); churn/1 trained on it (the lineage); churn-api serves it."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=FEATURES)
    frame["churned"] = (frame["f0"] + 0.5 * rng.normal(size=200) > 0).astype(int)
    frame.to_csv(tmp_path / "churn.csv", index=False)
    client = loopml.Client(loopml.load_settings(home=home, progress=False))
    client.add_dataset(tmp_path / "churn.csv", "churn")
    run = client.start_run("train")
    table = client.load_table("churn@1", run_id=run.id)
    model = LogisticRegression().fit(table[FEATURES], table["churned"])
    client.log_model(run.id, model, input_example=table[FEATURES].head(2),
                     registered_model_name="churn")
    client.end_run(run.id)
    client.set_model_alias("churn", "production", 1)
    Deployments(client.meta, actor="test").create("churn-api", model="churn@production")
    client.close()


def _serve(home: Path) -> None:
    server = DeploymentServer(home, "churn-api")
    http = HttpClient(server.port, None)
    try:
        for x in np.linspace(-2.0, 2.0, 21):
            body = orjson.dumps({"dataframe_records": [{"f0": float(x), "f1": 0.0}]})
            status, _, _ = http.request("POST", "/predict_proba", body)
            assert status == 200
        status, _, _ = http.request("POST", "/predict", orjson.dumps(
            {"dataframe_records": [{"f0": 3.0, "f1": 1.0}]}))
        assert status == 200
    finally:
        server.stop()  # writes the payload log


def test_review_list_label_interactive_and_commit(tmp_path: Path) -> None:
    home = tmp_path / ".loopml"  # the CLI's default home in the test's working directory
    _train(home, tmp_path)
    _serve(home)
    listed = cli("list", "churn-api", "--uncertain", "4", "--sample", "0", "--json")
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert [i["reason"] for i in items] == ["uncertain"] * 4
    confidences = [i["confidence"] for i in items]
    assert confidences == sorted(confidences) and confidences[0] < 0.6
    assert all(abs(i["features"]["f0"]) <= 0.6 for i in items)  # near the boundary
    table = cli("list", "churn-api", "--no-refresh")
    assert "4 pending item(s) of churn-api" in table.stdout and "f0=" in table.stdout
    wrong = cli("label", items[0]["id"], "maybe")
    assert wrong.returncode == 1 and "allowed values: 0, 1" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    right = cli("label", items[0]["id"], "1")
    assert right.returncode == 0 and f"labelled {items[0]['id']}" in right.stdout
    # Enter confirms, "s" skips, a value corrects (after a wrong one is refused), q quits.
    session = cli("label", "--interactive", stdin="\ns\nmaybe\n0\nq\n")
    assert session.returncode == 0, session.stderr
    assert "2 labelled, 1 skipped" in session.stdout and "allowed values" in session.stderr
    committed = cli("commit")
    assert committed.returncode == 0, committed.stderr
    assert "churn-api: added churn@2 with 3 labelled row(s)" in committed.stdout
    client = loopml.Client(loopml.load_settings(home=home, progress=False))
    try:
        new = client.load_table("churn@2")
        assert len(new) == 203 and list(new.columns) == ["f0", "f1", "churned"]
        with client.meta.read() as conn:
            segments = list_segments(conn, endpoint="churn-api", kind="feedback")
        feedback = read_segments(client.blobs, segments, kind="feedback").to_pylist()
        assert len(feedback) == 3
        labels = {row["request_id"]: orjson.loads(row["label"]) for row in feedback}
        by_id = {i["request_id"]: i for i in items}
        assert labels[items[0]["request_id"]] == 1
        assert labels[items[1]["request_id"]] == by_id[items[1]["request_id"]]["prediction"]
        assert labels[items[3]["request_id"]] == 0
        event = list_events(client.meta, kind="labels_added")[0]
        assert (event.deployment, event.model, event.version) == ("churn-api", "churn", 1)
        assert event.data["rows"] == 3 and event.data["dataset_version"] == "churn@2"
    finally:
        client.close()
    assert "nothing to commit" in cli("commit", "churn-api").stdout
