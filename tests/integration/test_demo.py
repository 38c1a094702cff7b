"""``make demo`` runs examples/demo.py: the whole loop must complete on a fresh embedded store,
print its timeline with the numbers of each decision, and exit 0 (1 when a step is missing)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def _demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DEMO), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False)


def test_demo_runs_the_whole_loop_on_a_fresh_store(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    done = _demo("--workdir", str(workspace), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    assert "Traceback" not in out + done.stderr
    assert (workspace / ".loopml" / "loopml.db").is_file()  # the embedded default store
    assert not (tmp_path / ".loopml").exists()  # nothing written outside the workspace
    report = workspace / "monitoring-week-11.html"
    assert report.is_file() and f"HTML monitoring report: {report}" in out
    # the story, in order, with the numbers that drove each decision
    timeline = out[out.index("== The timeline"):]
    kinds = re.findall(r"^\s+\d+\.\ds  (\S+)", timeline, flags=re.MULTILINE)
    timeline = " ".join(timeline.split())  # the reasons are wrapped to the terminal
    assert [k for k in kinds if k in ("promoted", "rejected", "rolled_back",
                                      "deploy_auto-rollback", "alert_drift")] == [
        "promoted", "alert_drift", "promoted", "rejected", "deploy_auto-rollback",
        "rolled_back"]
    assert re.search(r"drift score 0\.\d+ reached 0\.2; drifted: monthly_charges", timeline)
    assert re.search(r"auc 0\.\d{4} vs champion churn/1 0\.\d{4} \(\+0\.\d{4}, meets margin",
                     timeline)
    assert re.search(r"auc 0\.\d{4} vs champion churn/2 0\.\d{4} \(-0\.\d{4}, needs margin",
                     timeline)
    assert re.search(r"canary \d+ requests, 0 failed", timeline)
    assert re.search(r"error rate \d+\.\d% over the last 10 s \(\d+ requests\) is over the "
                     r"limit of 5\.0%", timeline)
    assert "churn@production is v2, the drift retrain" in out
    assert re.search(r"Client requests: [\d,]+ requests, 0 failed", out)


def test_demo_refuses_a_workspace_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    done = _demo("--workdir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {tmp_path} is not empty")
    assert (tmp_path / "keep.txt").read_text() == "mine"
