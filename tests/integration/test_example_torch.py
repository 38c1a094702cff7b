"""examples/torch_digits.py (the PyTorch example) completes on a fresh store, and again on the
same store with everything reused: unchanged dataset, cached steps, register skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "torch_digits.py"


def _run(store: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-W", "error", str(EXAMPLE), "--store", str(store),
                           "--epochs", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_torch_example_trains_registers_serves_and_reuses_its_cache(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    store = tmp_path / "store"
    first = _run(store).stdout
    assert "device: cpu" in first or "device: cuda" in first
    assert "dataset digits@1 (new)" in first
    assert "epoch 2/2:" in first
    assert "train cached" in first  # the example's own second pipeline run
    assert "models:/torch-digits@production is torch-digits/1 (pytorch)" in first
    assert "served torch-digits/1 at http://127.0.0.1:" in first
    assert "done: data → pipeline → registry → serving" in first
    again = _run(store).stdout
    assert "dataset digits@1 (unchanged)" in again
    assert "epoch 1/2" not in again and "register completed" not in again
    assert (store / "loopml.db").is_file()
