"""``make demo`` runs examples/demo.py: it must complete on a fresh embedded store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_demo_runs_the_loop_on_a_fresh_store(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(DEMO)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "models:/breast-cancer@production is breast-cancer/" in done.stdout
    assert "models trained on breast-cancer@1" in done.stdout
    assert (tmp_path / ".loopml" / "loopml.db").is_file()
