"""A module still being imported by another thread is waited for, never handed out half-done."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from loopml.models.flavor import loaded_module


def test_loaded_module_waits_for_an_import_in_progress(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "slow_mod_for_test.py").write_text(
        "import time\ntime.sleep(0.5)\nREADY = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    worker = threading.Thread(target=__import__, args=("slow_mod_for_test",))
    worker.start()
    deadline = time.time() + 5
    while "slow_mod_for_test" not in sys.modules and time.time() < deadline:
        time.sleep(0.005)
    module = loaded_module("slow_mod_for_test")  # half-initialised in sys.modules right now
    assert module.READY is True
    worker.join()
    assert loaded_module("surely_not_imported_module") is None
    sys.modules.pop("slow_mod_for_test", None)
