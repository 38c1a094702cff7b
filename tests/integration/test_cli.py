"""The ``loopml`` command, run as a user would: real processes, embedded store in the cwd."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import loopml
from loopml.client import Client


def loopml_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loopml.cli.main", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def tracked_runs() -> list[str]:
    client = Client(loopml.load_settings())
    ids = []
    for model, auc in (("rf", 0.91), ("gb", 0.95), ("lr", 0.85)):
        with client.start_run("cli", name=f"run-{model}") as run:
            run.log_params({"model": model})
            run.log_metrics({"auc": auc, "loss": 1 - auc})
            ids.append(run.id)
    client.close()
    return ids


def test_runs_list_table_and_json(tracked_runs: list[str]) -> None:
    table = loopml_cli("runs", "list", "-e", "cli", "-o", "metrics.auc desc")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert "3 run(s)" in lines[0]
    order = [line for line in lines if "run-" in line]
    assert [line.split()[1] for line in order] == ["run-gb", "run-rf", "run-lr"]
    data = json.loads(loopml_cli("runs", "list", "-e", "cli", "--json",
                                 "-f", "params.model in ('rf', 'lr')").stdout)
    assert sorted(r["params"]["model"] for r in data) == ["lr", "rf"]


def test_runs_show_accepts_prefix(tracked_runs: list[str]) -> None:
    shown = loopml_cli("runs", "show", tracked_runs[0][:8])
    assert shown.returncode == 0, shown.stderr
    assert "run-rf" in shown.stdout and "params" in shown.stdout
    data = json.loads(loopml_cli("runs", "show", tracked_runs[0], "--json").stdout)
    assert data["metrics"]["auc"] == 0.91 and data["status"] == "FINISHED"


def test_runs_compare_marks_best(tracked_runs: list[str]) -> None:
    out = loopml_cli("runs", "compare", "-e", "cli")
    assert out.returncode == 0, out.stderr
    auc_row = next(line for line in out.stdout.splitlines() if "metrics.auc" in line)
    assert "0.95 *" in auc_row
    loss_row = next(line for line in out.stdout.splitlines() if "metrics.loss" in line)
    assert "0.05 *" in loss_row  # lower is better for a loss


def test_experiments_list_json(tracked_runs: list[str]) -> None:
    data = json.loads(loopml_cli("experiments", "list", "--json").stdout)
    assert [e["name"] for e in data] == ["cli"]


@pytest.mark.parametrize(("args", "message"), [
    (["runs", "list", "-f", "metrics.auc >"], "position"),
    (["runs", "show", "ffffffff"], "no run with id 'ffffffff'"),
    (["runs", "list", "-e", "missing"], "no experiment named or with id 'missing'"),
])
def test_user_errors_are_one_line(tracked_runs: list[str], args: list[str],
                                  message: str) -> None:
    out = loopml_cli(*args)
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and message in out.stderr
    assert "Traceback" not in out.stderr


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    from loopml.store.migrate import SCHEMA_HEAD

    assert f"-> {SCHEMA_HEAD}" in loopml_cli("db", "upgrade").stdout
    assert f"revision {SCHEMA_HEAD}" in loopml_cli("db", "current").stdout


def test_unreachable_database_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    out = loopml_cli("runs", "list")
    assert out.returncode == 1 and out.stderr.startswith("error: the metadata store")
    assert "Traceback" not in out.stderr
