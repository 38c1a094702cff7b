"""``loopml models`` as a user runs it, over a registry filled through the Python API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.client import Client


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loopml.cli.main", *args],
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "LOOPML_PROGRESS": "false"})


@pytest.fixture
def registry() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    client = Client(loopml.load_settings(progress=False))
    for c in (0.5, 2.0):
        with client.start_run("cli-models") as run:
            run.log_metric("auc", 0.9 + c / 100)
            client.log_model(run.id, LogisticRegression(C=c, max_iter=2000).fit(x[:, :4], y),
                             input_example=x[:3, :4], registered_model_name="churn")
    client.close()


def test_aliases_history_rollback_and_card(registry: None, tmp_path: Path) -> None:
    assert "churn@production: - -> 1 (launch)" in cli(
        "models", "set-alias", "churn", "production", "1", "--reason", "launch").stdout
    assert cli("models", "set-alias", "churn", "production", "2").returncode == 0
    listing = json.loads(cli("models", "list", "--json").stdout)
    assert listing == [{"name": "churn", "latest_version": 2, "aliases": {"production": 2},
                        "description": ""}]
    versions = cli("models", "versions", "churn")
    assert "production" in versions.stdout and "auc" in versions.stdout
    rolled = cli("models", "rollback", "churn", "--alias", "production")
    assert "2 -> 1" in rolled.stdout
    history = json.loads(cli("models", "history", "churn", "--json").stdout)
    assert [(e["from_version"], e["to_version"]) for e in history] == [(None, 1), (1, 2), (2, 1)]
    assert history[-1]["reason"].startswith("rollback")
    card = cli("models", "card", "churn@production", "--html", str(tmp_path / "card.html"))
    assert "# Model card: churn version 1" in card.stdout
    assert (tmp_path / "card.html").read_text().startswith("<!doctype html>")
    assert "churn/2 (auc=0.92)" in cli("models", "best", "churn", "--metric", "auc").stdout


def test_convert_to_onnx_and_build_bundle(registry: None, tmp_path: Path) -> None:
    converted = cli("models", "convert", "churn/2", "--to", "onnx")
    assert converted.returncode == 0, converted.stderr
    assert "registered churn/3 (onnx)" in converted.stdout
    shown = json.loads(cli("models", "show", "churn/3", "--json").stdout)
    assert shown["flavor"] == "onnx" and shown["metrics"]["auc"] == pytest.approx(0.92)
    built = cli("models", "build", "churn/3", "--out", str(tmp_path / "bundle"))
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "bundle" / "Dockerfile").is_file()


def test_bad_input_is_one_line(registry: None) -> None:
    for args, message in (
        (["models", "show", "churn@nope"], "no alias 'nope' on model 'churn'"),
        (["models", "set-alias", "churn", "production", "9"], "no version 9"),
        (["models", "rollback", "missing"], "no registered model named 'missing'"),
        (["models", "convert", "churn/1", "--to", "tflite"], "unknown conversion target"),
    ):
        out = cli(*args)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert out.stderr.startswith("error: ") and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
