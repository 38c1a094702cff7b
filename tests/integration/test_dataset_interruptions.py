"""kill -9 during ``loopml data add``: no half version, and the next add reuses what was stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import loopml
from loopml.client import Client


def _make_files(root: Path, count: int) -> None:
    for i in range(count):
        path = root / f"dir{i % 10}" / f"file{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(2048) + str(i).encode())


def test_kill_during_add_leaves_no_half_version(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _make_files(data, 4000)
    env = {**os.environ, "LOOPML_HOME": str(tmp_path / "home"), "LOOPML_PROGRESS": "false"}
    command = [sys.executable, "-m", "loopml.cli.main", "data", "add", str(data), "--name", "d"]
    for delay in (0.05, 0.3, 0.8):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        client = Client(loopml.load_settings(home=tmp_path / "home"))
        found = client.list_datasets() if (tmp_path / "home" / "loopml.db").exists() else []
        for _, version in found:  # a version that exists must be whole
            if version is not None:
                out = tmp_path / f"check-{delay}"
                client.get_dataset(version.ref, out)
                assert len(list(out.rglob("*.bin"))) == 4000
        client.close()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    client = Client(loopml.load_settings(home=tmp_path / "home", progress=False))
    versions = client.list_dataset_versions("d")
    assert [v.files for v in versions][-1] == 4000
    out = tmp_path / "out"
    client.get_dataset("d", out)
    for original in data.rglob("*.bin"):
        assert (out / original.relative_to(data)).read_bytes() == original.read_bytes()
    client.close()
