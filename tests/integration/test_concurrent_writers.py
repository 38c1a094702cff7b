"""Several processes write to one embedded SQLite store at once: nothing is lost or locked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import loopml
from loopml.client import Client

WRITER = """
import sys, loopml
from loopml.client import Client
client = Client(loopml.load_settings(home=sys.argv[1], metric_flush_interval=0.01,
                                     metric_buffer_size=50))
for r in range(5):
    with client.start_run("shared", name=f"w{sys.argv[2]}-{r}") as run:
        run.log_params({"worker": sys.argv[2], "r": r})
        for step in range(300):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
client.close()
"""


def test_four_processes_write_at_once(tmp_path: Path) -> None:
    home = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(i)],
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    client = Client(loopml.load_settings(home=home))
    found = client.search_runs("shared", max_results=100)
    assert len(found) == 20
    assert all(r.status.value == "FINISHED" for r in found)
    assert all(len(client.get_metric_history(r.id, "loss")) == 300 for r in found)
    client.close()


def test_buffered_metrics_are_written_at_interpreter_exit(tmp_path: Path) -> None:
    script = """
import sys, loopml
from loopml.client import Client
client = Client(loopml.load_settings(home=sys.argv[1], metric_flush_interval=3600))
run = client.start_run("exit")
for step in range(1000):
    run.log_metric("loss", step, step=step)
print(run.id)
"""  # no end of run, no flush: the atexit hook must write the points
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s")],
                         capture_output=True, text=True, check=True, timeout=60)
    client = Client(loopml.load_settings(home=tmp_path / "s"))
    assert len(client.get_metric_history(out.stdout.strip(), "loss")) == 1000
    client.close()
