"""``loopml monitor`` on the command line (in-process): compare two tables (files and dataset
versions) to JSON, tables and HTML; set a reference, run a deployment's window, show the
stored time series and the alerts; exit codes and one-line errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from sklearn.linear_model import LogisticRegression
from test_monitoring import FEATURES, Setup, _frame, _log

import loopml
from loopml.cli.main import cli, main
from loopml.deployments.api import Deployments
from loopml.models import save_model

MINUTE = 60_000


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["monitor", *args], catch_exceptions=False)


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stopped:
        main(["monitor", *args])
    return int(str(stopped.value.code)), capsys.readouterr().err


@pytest.fixture
def tables(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"a": rng.normal(size=2_000), "b": rng.normal(size=2_000),
                              "plan": rng.choice(["basic", "pro", "team"], size=2_000)})
    current = pd.DataFrame({"a": rng.normal(1.0, 1.0, size=1_000),
                            "b": rng.normal(size=1_000),
                            "plan": rng.choice(["basic", "pro", "team"], size=1_000)})
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_parquet(tmp_path / "current.parquet", index=False)
    return tmp_path / "reference.csv", tmp_path / "current.parquet"


def test_compare_files_json_html_and_exit_codes(tables: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    reference, current = (str(p) for p in tables)
    html = tmp_path / "out" / "report.html"
    result = _invoke("compare", reference, current, "--json", "--html", str(html))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["drift"]["drifted_columns"] == ["a"]
    assert report["rows"] == 1_000 and report["failed_checks"] == ["drift"]
    assert report["quality"]["issues"] == []
    page = html.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html") and "plan" in page

    table = _invoke("compare", reference, current)
    assert table.exit_code == 0 and "DRIFTED" in table.output
    assert "FAILED: drift" in table.output
    assert _invoke("compare", reference, current, "--fail-on", "drift").exit_code == 3
    assert _invoke("compare", reference, current, "--fail-on", "quality").exit_code == 0
    only = json.loads(_invoke("compare", reference, current, "--columns", "b,plan",
                              "--json").output)
    assert [c["column"] for c in only["drift"]["columns"]] == ["b", "plan"]
    assert only["failed_checks"] == []


def test_compare_dataset_versions_and_bad_input(tables: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    reference, current = tables
    client = loopml.Client()
    client.add_dataset(reference, "customers")
    client.close()
    report = json.loads(_invoke("compare", "customers@1", str(current), "--json").output)
    assert report["reference"] == "customers@1"
    assert report["drift"]["drifted_columns"] == ["a"]

    code, err = _error(capsys, "compare", str(reference), "nope.csv")
    assert code == 1 and err.startswith("error: current table 'nope.csv' is neither")
    code, err = _error(capsys, "compare", str(reference), str(current), "--columns", "a,zz")
    assert code == 1 and "no column 'zz' in the reference" in err
    code, err = _error(capsys, "compare", str(reference), str(current), "--fail-on", "bogus")
    assert code == 2 and "unknown check(s) bogus" in err
    assert "Traceback" not in err  # a usage message, never a traceback

    broken = pd.read_parquet(current).drop(columns=["b"]).astype({"a": str})
    broken.loc[0, "a"] = "oops"
    broken.to_csv(tmp_path / "broken.csv", index=False)
    found = json.loads(_invoke("compare", str(reference), str(tmp_path / "broken.csv"),
                               "--json").output)
    issues = {(i["column"], i["kind"]): i for i in found["quality"]["issues"]}
    assert issues[("b", "missing_column")]["count"] == 1_000
    assert issues[("a", "invalid_value")]["examples"] == ["oops"]
    assert found["drift"]["skipped"]["b"] == "missing in the current window"


@pytest.fixture
def deployed(tmp_path: Path) -> Setup:
    """churn/1 (registered from a package) deployed as churn-api; train.csv holds its
    training data with its predictions and the labels."""
    frame = _frame(1_500, seed=11)
    frame["churned"] = (frame["f0"] - frame["f2"] > 0).astype(int)
    model = LogisticRegression().fit(frame[FEATURES], frame["churned"])
    frame["prediction"] = model.predict(frame[FEATURES])
    frame.to_csv(tmp_path / "train.csv", index=False)
    save_model(model, tmp_path / "package", input_example=frame[FEATURES].head(2))
    client = loopml.Client()
    client.register_model(tmp_path / "package", "churn")
    Deployments(client.meta, actor="test").create("churn-api", model="churn/1")
    client.close()
    return Setup(Path(".loopml").absolute(), model, 1.0, "")


def test_reference_run_show_and_alerts(deployed: Setup, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _error(capsys, "reference", "churn/1")
    assert code == 1 and "loopml monitor reference churn/1 DATA" in err
    set_it = _invoke("reference", "churn/1", str(tmp_path / "train.csv"), "--predictions",
                     "prediction", "--target", "churned")
    assert set_it.exit_code == 0, set_it.output
    assert "features: f0, f1, f2; prediction: prediction; target: churned" in set_it.output
    shown = json.loads(_invoke("reference", "churn@latest", "--json").output)
    assert shown["rows"] == 1_500 and shown["stored"] and shown["features"] == FEATURES

    now = int(time.time() * 1000)
    _log(deployed, "churn-api", _frame(300, seed=12, shift=2.0), start=now - 20 * MINUTE)
    ran = _invoke("run", "churn-api", "--window", "1h", "--json")
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.output)
    assert report["rows"] == 300 and report["model_version"] == "churn/1"
    assert "f0" in report["drift"]["drifted_columns"]
    assert {a["kind"] for a in report["alerts"]} >= {"drift", "prediction_drift"}

    html = tmp_path / "run.html"
    again = _invoke("run", "churn-api", "--last", "100", "--html", str(html), "--fail-on",
                    "any")
    assert again.exit_code == 3 and "rows:      100; FAILED: drift" in again.output
    assert html.is_file()

    series = json.loads(_invoke("show", "churn-api", "--check", "drift", "--column", "f0",
                                "--json").output)
    assert [p["passed"] for p in series] == [False, False]
    assert {p["statistic"] for p in series} == {"wasserstein"}
    everything = json.loads(_invoke("show", "churn-api", "--column", "f0", "--all",
                                    "--json").output)
    assert {"ks", "psi", "p_value"} <= {p["statistic"] for p in everything}
    table = _invoke("show", "churn-api", "--check", "window")
    assert table.exit_code == 0 and "rows" in table.output and "300" in table.output
    assert "no monitoring results" in _invoke("show", "nothing").output

    alerts = json.loads(_invoke("alerts", "churn-api", "--json").output)
    assert {a["kind"] for a in alerts} >= {"drift", "prediction_drift"}
    assert all(a["delivered"] == {"log": "ok"} for a in alerts)
    listing = _invoke("alerts", "--since", "1h")
    assert listing.exit_code == 0 and f"{len(alerts)} alert(s)" in listing.output
    assert json.loads(_invoke("alerts", "churn-api", "--check", "performance",
                              "--json").output) == []

    quiet = _invoke("run", "churn-api", "--window", "1m")
    assert quiet.exit_code == 0 and "no verdict" in quiet.output
    code, err = _error(capsys, "run", "ghost")
    assert code == 1 and "no deployment named 'ghost'" in err
    code, err = _error(capsys, "run", "churn-api", "--window", "5x")
    assert code == 1 and "window: '5x' is not a duration" in err
