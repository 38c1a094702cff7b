"""Serving bundles: the bundle's own ``serve.py``, started as a real process on 127.0.0.1,
serves the predictions of the model package it carries."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from servers import free_port

from loopml.errors import AlreadyExists, BackendUnavailable, NotFound, PermissionDenied
from loopml.models import build_bundle, docker_build, load_model, save_model


def _request(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


@pytest.fixture(scope="module")
def package(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = frame.drop(columns="target")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(features, frame["target"])
    path = tmp_path_factory.mktemp("package") / "pkg"
    save_model(model, path, input_example=features.head(3))
    return path


@pytest.fixture(scope="module")
def bundle(package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(package, tmp_path_factory.mktemp("bundle") / "bundle")


@contextlib.contextmanager
def _serve(bundle: Path, backend: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "serve.py", "--host", "127.0.0.1", "--port", str(port),
         "--backend", backend], cwd=bundle, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _request(f"{url}/health")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"serve.py did not come up (exit {process.poll()}):\n{output}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


@pytest.fixture(scope="module", params=["stdlib", "starlette"])
def server(request: pytest.FixtureRequest, bundle: Path) -> Iterator[str]:
    if request.param == "starlette":
        pytest.importorskip("starlette")
        pytest.importorskip("uvicorn")
    with _serve(bundle, request.param) as url:
        yield url


def test_bundle_layout(bundle: Path, package: Path) -> None:
    assert sorted(p.name for p in bundle.iterdir()) == [
        "Dockerfile", "model", "requirements.txt", "serve.py"]
    assert sorted(p.name for p in (bundle / "model").iterdir()) == sorted(
        p.name for p in package.iterdir())
    requirements = (bundle / "requirements.txt").read_text().splitlines()
    assert requirements[0].startswith("loopml==")
    assert all("==" in line for line in requirements)
    assert any(line.startswith("scikit-learn==") for line in requirements)
    dockerfile = (bundle / "Dockerfile").read_text()
    python = ".".join(map(str, sys.version_info[:2]))
    assert f"FROM python:{python}-slim" in dockerfile
    assert "\nUSER loopml\n" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    assert dockerfile.index("USER loopml") < dockerfile.index("CMD [")


def test_the_bundle_serves_the_model_s_predictions(server: str, package: Path,
                                                   frame: pd.DataFrame) -> None:
    features = frame.drop(columns="target").iloc[::37]
    want = load_model(package).predict(features).tolist()
    records = json.loads(features.to_json(orient="records"))
    status, body = _request(f"{server}/invocations", {"dataframe_records": records})
    assert (status, body) == (200, {"predictions": want})
    split = json.loads(features.to_json(orient="split", index=False))
    assert _request(f"{server}/predict", {"dataframe_split": split}) == (
        200, {"predictions": want})
    assert _request(f"{server}/invocations", {"instances": records})[1] == {"predictions": want}
    assert _request(f"{server}/invocations", {"inputs": split["data"]})[1] == {
        "predictions": want}
    assert _request(f"{server}/health")[1]["status"] == "ok"


def test_bad_requests_get_a_4xx_that_says_why(server: str, frame: pd.DataFrame) -> None:
    record = frame.drop(columns=["target", "mean radius"]).iloc[0].to_dict()
    status, body = _request(f"{server}/invocations", {"dataframe_records": [record]})
    assert status == 400
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "missing column 'mean radius'" in body["message"]
    status, body = _request(f"{server}/invocations", {"rows": []})
    assert status == 400 and "dataframe_records" in body["message"]


def test_a_tensor_model_is_served(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 3)).astype("float32")
    model = Ridge().fit(features, features @ np.array([1.0, -2.0, 0.5]))
    save_model(model, tmp_path / "pkg", input_example=features[:2])
    bundle = build_bundle(tmp_path / "pkg", tmp_path / "bundle")
    with _serve(bundle, "stdlib") as url:
        status, body = _request(f"{url}/invocations", {"inputs": features[:4].tolist()})
    assert status == 200
    np.testing.assert_allclose(body["predictions"], model.predict(features[:4]), rtol=1e-6)


def test_build_bundle_refuses_what_could_not_serve(package: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        build_bundle(tmp_path / "nothing", tmp_path / "b1")
    build_bundle(package, tmp_path / "b2")
    with pytest.raises(AlreadyExists):
        build_bundle(package, tmp_path / "b2")


def test_a_pickle_bundle_needs_trusted_and_passes_it_on(frame: pd.DataFrame,
                                                        tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    features = frame.drop(columns="target")
    model = DecisionTreeClassifier(max_depth=3).fit(features, frame["target"])
    save_model(model, tmp_path / "pkg", options={"serializer": "pickle"}, trusted=True)
    with pytest.raises(PermissionDenied):
        build_bundle(tmp_path / "pkg", tmp_path / "bundle")
    bundle = build_bundle(tmp_path / "pkg", tmp_path / "bundle", trusted=True)
    assert '"--trusted"]' in (bundle / "Dockerfile").read_text()


def test_docker_build_without_an_engine(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BackendUnavailable, match="no docker engine was found"):
        docker_build(bundle, "loopml-test:latest")


def test_docker_build_with_a_stopped_engine(bundle: Path) -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker command")
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    if info.returncode == 0:
        pytest.skip("a docker engine is running; building an image needs the network")
    with pytest.raises(BackendUnavailable, match="no docker engine was found.*docker info"):
        docker_build(bundle, "loopml-test:latest")
