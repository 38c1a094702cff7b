"""What a model server imports: ``loopml serve`` of a scikit-learn model never loads PyTorch.

The cold start of a server (process start to ``/ready``) is mostly imports. skops lists
scikit-learn's estimators when imported, and that walk used to import torch through
scikit-learn's array-API shim: seconds and hundreds of megabytes for a model that has
nothing to do with torch. The check is structural (which modules the serving process holds
after answering), not a timing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from servers import free_port
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.models import save_model

#: runs ``loopml serve`` in this interpreter and, at exit, writes the modules it imported
#: (uvicorn raises SIGTERM again after its graceful shutdown: here that exits normally)
_SERVE = """
import atexit, json, signal, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
sys.argv = ["loopml", *sys.argv[2:]]
from loopml.cli.main import main
main()
"""


def _get(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch is not installed, so nothing could import it")
def test_serving_a_skops_scikit_learn_model_never_imports_torch(tmp_path: Path) -> None:
    home = tmp_path / ".loopml"
    settings = loopml.load_settings(home=home, progress=False, environ={},
                                    config_file=tmp_path / "none.toml")
    rng = np.random.default_rng(3)
    features = rng.normal(size=(60, 4))
    model = LogisticRegression().fit(features, features[:, 0] > 0)
    save_model(model, tmp_path / "package", input_example=features[:2])  # skops, the default
    client = loopml.Client(settings)
    client.register_model(tmp_path / "package", "plain")
    client.set_model_alias("plain", "production", 1)
    client.close()

    port = free_port()
    modules_file = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env.update(LOOPML_HOME=str(home), LOOPML_PROGRESS="false")
    log = tmp_path / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(modules_file), "serve", "plain@production",
             "--port", str(port), "--log-sample", "0"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if _get(f"http://127.0.0.1:{port}/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            pytest.fail(f"the server did not become ready:\n{log.read_text()}")
        status, answer = _get(f"http://127.0.0.1:{port}/invocations",
                              json.dumps({"inputs": features[:3].tolist()}).encode())
        assert status == 200, answer
        assert json.loads(answer)["predictions"] == model.predict(features[:3]).tolist()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()

    modules = set(json.loads(modules_file.read_text()))
    assert {"sklearn", "skops.io"} <= modules  # the model was loaded with skops
    assert "torch" not in modules
    assert "sklearn.externals.array_api_compat.torch" not in modules
