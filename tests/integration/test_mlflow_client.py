"""The stock ``mlflow`` client (mlflow-skinny, pinned in the test extra) against loopml's
MLflow-compatible API, served by a real uvicorn in a thread of the test process over a
temporary store: the usual script runs unchanged and everything it logs is loopml's own data
(Python API and CLI). Then, with raw HTTP, what the client must never cause: 500s, path
escapes, fetched URLs, pickles registered by a non-admin, SQL run from a filter."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
import urllib3
from click.testing import CliRunner
from servers import ServerThread, call_json

import loopml
from loopml.client import Client
from loopml.errors import PermissionDenied
from loopml.server.app import ServerOptions, create_app

pytest.importorskip("uvicorn")
mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

# The client's own warnings (pandas deprecations inside mlflow, its type-hint notices) are not
# loopml's to fix; everything else still fails the test.
pytestmark = pytest.mark.filterwarnings(r"ignore::Warning:mlflow(\..*)?$")

API = "/api/2.0/mlflow"


class Server:
    """``create_app`` over a store in ``home``, under uvicorn in a thread."""

    def __init__(self, home: Path, *, auth: bool, database_url: str = "") -> None:
        self.home = home
        self.settings = loopml.load_settings(home=home, progress=False,
                                             database_url=database_url)
        self.client = Client(self.settings)
        self.app = create_app(client=self.client, options=ServerOptions(auth=auth))
        self.server = ServerThread.for_app(self.app)
        self.url = self.server.url
        self.pool = urllib3.PoolManager(retries=False)

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             fields: dict[str, str] | None = None, token: str = "") -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status, decoded, _ = call_json(self.pool, method, self.url + path, body, raw=raw,
                                       headers=headers, fields=fields)
        return status, decoded

    def close(self) -> None:
        self.server.stop()
        self.client.close()


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Server]]:
    """Start a server; the mlflow client is pointed at it, quiet and without retries."""
    started: list[Server] = []
    for key, value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                       "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(key, value)

    def start(*, auth: bool = False, database_url: str = "") -> Server:
        server = Server(tmp_path / f"server{len(started)}", auth=auth,
                        database_url=database_url)
        started.append(server)
        mlflow.set_tracking_uri(server.url)
        return server

    yield start
    if mlflow.active_run() is not None:  # a test that failed inside a run
        mlflow.end_run("KILLED")
    mlflow.set_tracking_uri("")
    for server in started:
        server.close()


def _data() -> tuple[pd.DataFrame, pd.Series[int]]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.normal(40, 10, 200), "spend": rng.normal(100, 20, 200)})
    return frame, (frame["age"] + rng.normal(0, 5, 200) > 40).astype(int)


def _log_model(model: object, name: str, **options: Any) -> Any:
    # pip_requirements given: the client otherwise infers them in a subprocess (30 s here)
    return mlflow.sklearn.log_model(model, name=name, pip_requirements=["scikit-learn"],
                                    **options)


def test_the_stock_client_runs_unchanged_and_loopml_sees_its_data(
        serve: Callable[..., Server], tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    server = serve()
    frame, labels = _data()
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "roc.csv").write_text("fpr,tpr\n0,0\n1,1\n")

    mlflow.set_experiment("churn-exp")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("C", 0.5)
        mlflow.log_params({"penalty": "l2", "solver": "lbfgs"})
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step,
                              timestamp=1_700_000_000_000 + step)
        mlflow.log_metric("auc", 0.91)
        mlflow.log_metric("unstable", float("nan"))
        mlflow.set_tag("team", "growth")
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_artifacts(str(tmp_path / "plots"), artifact_path="plots")
        model = LogisticRegression(C=0.5).fit(frame, labels)
        info = _log_model(model, "model", registered_model_name="churn",
                          input_example=frame.head(3))
        mlflow.log_metric("after_model", 1.0)  # the client links it to the logged model
    with mlflow.start_run(run_name="second"):
        mlflow.log_param("C", 2.0)
        mlflow.log_metric("auc", 0.7)
    run_id = run.info.run_id
    client = MlflowClient()
    client.set_registered_model_alias("churn", "production", 1)

    found = mlflow.search_runs(filter_string="metrics.auc > 0.9 and params.C = '0.5'")
    assert list(found["run_id"]) == [run_id]
    assert found["params.penalty"][0] == "l2" and found["tags.team"][0] == "growth"
    ordered = mlflow.search_runs(order_by=["metrics.auc ASC"])
    assert list(ordered["tags.mlflow.runName"]) == ["second", "first"]
    assert str(info.registered_model_version) == "1"
    loaded = mlflow.sklearn.load_model("models:/churn@production")
    assert (loaded.predict(frame) == model.predict(frame)).all()
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.timestamp, m.value) for m in history] == [
        (s, 1_700_000_000_000 + s, 1.0 / (s + 1)) for s in range(3)]
    assert math.isnan(client.get_run(run_id).data.metrics["unstable"])
    logged = client.get_logged_model(info.model_id)
    assert logged.source_run_id == run_id and logged.status == "READY"
    assert {m.key for m in logged.metrics} >= {"auc", "after_model"}
    assert client.get_model_version_by_alias("churn", "production").version == "1"
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="plots",
                                                dst_path=str(tmp_path / "back"))
    assert (Path(local) / "roc.csv").read_text() == "fpr,tpr\n0,0\n1,1\n"
    assert mlflow.get_run(run_id).info.status == "FINISHED"

    # The same store through loopml's own API: run, params, metrics, artifacts, registry.
    own = Client(server.settings)
    stored = own.get_run(run_id)
    assert stored.name == "first" and stored.status.value == "FINISHED"
    assert stored.params == {"C": "0.5", "penalty": "l2", "solver": "lbfgs"}
    assert stored.metrics["auc"] == 0.91 and math.isnan(stored.metrics["unstable"])
    assert [p.step for p in own.get_metric_history(run_id, "loss")] == [0, 1, 2]
    assert len(own.get_metric_history(run_id, "auc")) == 1  # log_model's copies not doubled
    assert stored.metrics["after_model"] == 1.0
    paths = {a.path for a in own.list_artifacts(run_id)}
    assert {"notes.txt", "plots/roc.csv", "model/MLmodel", "model/model.skops"} <= paths
    version = own.get_model_version("churn@production")
    assert (version.version, version.run_id, version.flavor) == (1, run_id, "sklearn")
    assert version.metrics["auc"] == 0.91 and version.params["C"] == "0.5"
    assert version.signature is not None
    assert [c["name"] for c in version.signature["inputs"]["columns"]] == ["age", "spend"]
    events = own.model_alias_history("churn", "production")
    assert [(e.from_version, e.to_version) for e in events] == [(None, 1)]
    ours = own.load_model("models:/churn@production")
    assert (ours.predict(frame) == model.predict(frame)).all()
    own.close()

    # ... and through the CLI.
    from loopml.cli.main import cli

    runner = CliRunner()
    env = {"LOOPML_HOME": str(server.home)}
    shown = runner.invoke(cli, ["runs", "show", run_id, "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["params"]["C"] == "0.5"
    listed = runner.invoke(cli, ["models", "history", "churn", "--json"],
                           env=env)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0]["to_version"] == 1


def test_sklearn_autologging_is_recorded(serve: Callable[..., Server]) -> None:
    from sklearn.linear_model import LogisticRegression

    server = serve()
    frame, labels = _data()
    mlflow.set_experiment("autolog")
    mlflow.sklearn.autolog(log_models=False)
    try:
        with mlflow.start_run() as run:
            LogisticRegression(C=0.3).fit(frame, labels)
    finally:
        mlflow.sklearn.autolog(disable=True)
    stored = server.client.get_run(run.info.run_id)
    assert stored.params["C"] == "0.3" and 0.5 < stored.metrics["training_score"] <= 1
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert [i.dataset.source_type for i in inputs] == ["code"]


def test_errors_have_mlflow_s_shape_and_status(serve: Callable[..., Server]) -> None:
    server = serve()
    status, body = server.call("GET", f"{API}/experiments/get-by-name?experiment_name=nope")
    assert status == 404 and body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "nope" in body["message"]
    status, body = server.call("GET", f"{API}/runs/get?run_id=0123456789abcdef")
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    status, body = server.call("POST", f"{API}/experiments/unknown-call", {})
    assert (status, body["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
    status, body = server.call("POST", f"{API}/runs/create", raw=b"{not json")
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    status, body = server.call("POST", f"{API}/runs/create", {"start_time": "soon"})
    assert status == 400 and "start_time" in body["message"]
    status, body = server.call("POST", f"{API}/experiments/create", {"name": "e"})
    assert status == 200
    experiment_id = body["experiment_id"]
    status, body = server.call("POST", f"{API}/experiments/create", {"name": "e"})
    assert (status, body["error_code"]) == (409, "RESOURCE_ALREADY_EXISTS")
    status, body = server.call("POST", f"{API}/runs/create", {"experiment_id": experiment_id})
    run_id = body["run"]["info"]["run_id"]
    assert body["run"]["info"]["artifact_uri"].startswith("mlflow-artifacts:/")
    for value, expected in (("1", 200), ("2", 409)):
        status, body = server.call("POST", f"{API}/runs/log-parameter",
                                   {"run_id": run_id, "key": "p", "value": value})
        assert status == expected
    status, body = server.call("POST", f"{API}/runs/log-metric",
                               {"run_id": run_id, "key": "m", "value": "many"})
    assert status == 400 and "number" in body["message"]
    status, body = server.call("POST", f"{API}/runs/set-tag", {
        "run_id": run_id, "key": "loopml.mlflow.logged_model.m-0", "value": "{}"})
    assert status == 400
    status, body = server.call("POST", f"{API}/runs/log-batch", {
        "run_id": run_id, "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": 0}] * 1001})
    assert status == 400 and "1001" in body["message"]
    server.call("POST", f"{API}/runs/set-tag", {"run_id": run_id, "key": "t", "value": "v"})
    status, _ = server.call("POST", f"{API}/runs/delete-tag", {"run_id": run_id, "key": "t"})
    assert status == 200 and "t" not in server.client.get_run(run_id).tags
    status, body = server.call("POST", f"{API}/runs/delete-tag", {"run_id": run_id, "key": "t"})
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    status, body = server.call("POST", f"{API}/runs/update", {"run_id": run_id,
                                                                "run_name": "renamed"})
    assert status == 200 and body["run_info"]["run_name"] == "renamed"
    server.call("POST", f"{API}/runs/set-tag", {"run_id": run_id, "key": "mlflow.runName",
                                                "value": "again"})
    assert server.client.get_run(run_id).name == "again"
    status, body = server.call("POST", f"{API}/runs/update", {"run_id": run_id,
                                                                "status": "SCHEDULED"})
    assert status == 400 and "SCHEDULED" in body["message"]
    status, body = server.call("POST", f"{API}/logged-models", {"experiment_id": experiment_id,
                                                                 "name": "m"})
    assert status == 400 and "start_run" in body["message"]
    status, body = server.call("POST", f"{API}/logged-models", {
        "experiment_id": experiment_id, "name": "../m", "source_run_id": run_id})
    assert status == 400
    status, body = server.call("GET", f"{API}/logged-models/m-{'0' * 32}")
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    status, body = server.call("GET", "/api/3.0/mlflow/server-info")
    assert status == 200 and body["multipart_uploads_enabled"] is False


def _search(server: Server, body: dict[str, Any]) -> tuple[int, Any]:
    return server.call("POST", f"{API}/runs/search", body)


def test_search_filters_are_translated_or_refused_and_never_run_as_sql(
        serve: Callable[..., Server], database_url: str) -> None:
    server = serve(database_url=database_url)
    _, body = server.call("POST", f"{API}/experiments/create", {"name": "search"})
    experiment = body["experiment_id"]
    ids = []
    for number in range(5):
        _, body = server.call("POST", f"{API}/runs/create", {
            "experiment_id": experiment, "run_name": f"run-{number}",
            "start_time": 1_700_000_000_000 + number})
        run_id = body["run"]["info"]["run_id"]
        ids.append(run_id)
        server.call("POST", f"{API}/runs/log-batch", {
            "run_id": run_id, "metrics": [{"key": "auc", "value": number / 10, "step": 0,
                                           "timestamp": 1}],
            "params": [{"key": "model", "value": "rf" if number % 2 else "gb"}],
            "tags": [{"key": "team", "value": "growth"}]})

    def matching(text: str, **options: Any) -> list[str]:
        status, body = _search(server, {"experiment_ids": [experiment], "filter": text,
                                        **options})
        assert status == 200, body
        return [run["info"]["run_id"] for run in body.get("runs", [])]

    assert matching("metrics.auc >= 0.3") == [ids[4], ids[3]]
    assert matching("parameters.model = 'rf' and attr.run_name != 'run-1'") == [ids[3]]
    assert matching("run.status = 'RUNNING' and params.`model` LIKE 'g%'") == [
        ids[4], ids[2], ids[0]]
    assert matching(f"attributes.run_id IN ('{ids[1]}', '{ids[2]}')") == [ids[2], ids[1]]
    assert matching("", order_by=["metrics.auc ASC"], max_results=2) == [ids[0], ids[1]]
    # pages: a token per page, the last page without one
    pages, token = [], ""
    while True:
        status, body = _search(server, {"experiment_ids": [experiment], "max_results": 2,
                                        "page_token": token})
        pages.append([run["info"]["run_id"] for run in body["runs"]])
        token = body.get("next_page_token", "")
        if not token:
            break
    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]

    refused = [
        "datasets.name = 'train'",                       # not kept by loopml
        "attributes.artifact_uri = 'x'",
        "metrics.auc > ",                                 # syntax
        "metrics.auc = 'high'",                           # type
        "(" * 1000 + "metrics.auc > 0" + ")" * 1000,      # nesting
        "not " * 2000 + "metrics.auc > 0",
        "x" * 30_000,
        # injection attempts: refused by the parser, never spliced into SQL
        "params.model = 'rf' OR 1=1 --",
        "params.model = 'rf'; DROP TABLE runs; --",
        "params.model = 'rf' UNION SELECT id FROM runs",
    ]
    for text in refused:
        status, body = _search(server, {"experiment_ids": [experiment], "filter": text})
        assert status == 400, (text[:40], body)
        assert body["error_code"] == "INVALID_PARAMETER_VALUE" and body["message"]
    # quoted values and keys are data, whatever they hold
    assert matching("params.model = 'rf'' OR ''1''=''1'") == []
    assert matching("params.`model' OR '1'='1` = 'rf'") == []
    assert matching("tags.team = 'growth\\' OR 1=1 --'") == []
    for options in ({"page_token": "not-a-token"}, {"run_view_type": "DELETED_ONLY"},
                    {"max_results": 50_001}, {"order_by": ["metrics.auc sideways"]}):
        status, body = _search(server, {"experiment_ids": [experiment], **options})
        assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), options
    assert len(matching("")) == 5  # nothing was dropped or changed


def _run(server: Server) -> tuple[str, str]:
    _, body = server.call("POST", f"{API}/runs/create", {"experiment_id": "0"})
    info = body["run"]["info"]
    return info["experiment_id"], info["run_id"]


def test_artifact_paths_cannot_escape_and_uploads_are_bounded(
        serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    from loopml.server.mlflow import artifacts

    server = serve()
    experiment, run_id = _run(server)
    base = f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run_id}/artifacts"
    status, _ = server.call("PUT", f"{base}/ok.txt", raw=b"fine")
    assert status == 200
    status, body = server.call("GET", f"{base}/ok.txt")
    assert (status, body) == (200, b"fine")
    monkeypatch.setattr(artifacts, "_IN_MEMORY_BYTES", 1)  # larger files: a verified copy
    status, body = server.call("GET", f"{base}/ok.txt")
    assert (status, body) == (200, b"fine")
    escapes = ["../../other/x", "%2e%2e/%2e%2e/x", "a/..%2f..%2f..%2fx", "..%5c..%5cx",
               "a//b", "%2e/x", "a/%00b"]
    for path in escapes:
        for method in ("PUT", "GET"):
            status, body = server.call(method, f"{base}/{path}", raw=b"x")
            assert status in (400, 404), (method, path, status)
            assert body["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
        status, body = server.call("GET", "/api/2.0/mlflow-artifacts/artifacts", fields={
            "path": f"{experiment}/{run_id}/artifacts/{unquote(path)}"})
        assert status in (400, 404), (path, status)
    status, body = server.call("GET", "/api/2.0/mlflow-artifacts/artifacts",
                               fields={"path": "/etc"})
    assert status == 404
    status, body = server.call("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/"
                               f"{'0' * 32}/artifacts/x", raw=b"x")
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    monkeypatch.setattr(server.app.state, "options",
                        dataclasses.replace(server.app.state.options, max_upload_bytes=1000))
    status, body = server.call("PUT", f"{base}/big.bin", raw=b"x" * 5000)
    assert status == 413 and "1,000" in body["message"]
    status, body = server.call("GET", "/api/2.0/mlflow-artifacts/artifacts",
                               fields={"path": f"{experiment}/{run_id}/artifacts"})
    assert body == {"files": [{"path": "ok.txt", "is_dir": False, "file_size": 4}]}


def test_model_versions_come_only_from_stored_files(serve: Callable[..., Server]) -> None:
    server = serve()
    server.call("POST", f"{API}/registered-models/create", {"name": "churn"})
    for source in ("s3://bucket/model", "http://169.254.169.254/latest/meta-data",
                   "file:///etc", "/etc", "mlflow-artifacts:/registry/churn/1",
                   "models:/churn/1", "models:/m-0123"):
        status, body = server.call("POST", f"{API}/model-versions/create",
                                   {"name": "churn", "source": source})
        assert status in (400, 404), (source, body)
    _, run_id = _run(server)
    status, body = server.call("POST", f"{API}/model-versions/create",
                               {"name": "churn", "source": f"runs:/{run_id}/model"})
    assert status == 404 and "MLmodel" in body["message"]
    status, body = server.call("POST", f"{API}/model-versions/create",
                               {"name": "nobody", "source": f"runs:/{run_id}/model"})
    assert (status, body["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    status, body = server.call("GET", f"{API}/model-versions/search?filter=name%3D%27churn%27")
    assert (status, body) == (200, {"model_versions": []})


def test_a_pickled_model_is_registered_only_by_an_admin(
        serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    from mlflow.exceptions import MlflowException
    from sklearn.linear_model import LogisticRegression

    from loopml.server.tokens import create_token

    server = serve(auth=True, database_url=database_url)
    editor = create_token(server.client.meta, "alice", role="editor").secret
    admin = create_token(server.client.meta, "root", role="admin").secret
    frame, labels = _data()
    model = LogisticRegression().fit(frame, labels)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", editor)
    mlflow.set_experiment("pickles")
    with mlflow.start_run() as run, pytest.raises(MlflowException) as refused:
        _log_model(model, "model", registered_model_name="pickled",
                   serialization_format="cloudpickle")
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert "admin" in refused.value.message
    assert server.client.list_model_versions("pickled") == []
    assert server.client.get_run(run.info.run_id).user == "alice"

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", admin)
    with mlflow.start_run():
        _log_model(model, "model", registered_model_name="pickled",
                   serialization_format="cloudpickle")
        _log_model(model, "model", registered_model_name="pickled")  # skops, same name
    versions = server.client.list_model_versions("pickled")
    assert [v.version for v in versions] == [1, 2]
    with pytest.raises(PermissionDenied):
        server.client.load_model("models:/pickled/1")
    trusted = server.client.load_model("models:/pickled/1", trusted=True)
    assert (trusted.predict(frame) == model.predict(frame)).all()
    assert (server.client.load_model("models:/pickled/2").predict(frame)
            == model.predict(frame)).all()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "")
    status, _ = server.call("POST", f"{API}/runs/create", {"experiment_id": "0"})
    assert status == 401
