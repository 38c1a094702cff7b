"""One client contract, two implementations: every test runs on the embedded ``Client`` and on
a ``RemoteClient`` talking to a real uvicorn server (in a thread) over a temporary store.

The server is started once for the module; each test gives it a fresh store
(``app.state.client``), so tests are as isolated as on the embedded client.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from servers import ServerThread
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.client import Client
from loopml.client.remote import RemoteClient
from loopml.errors import AlreadyExists, Conflict, InvalidArgument, LoopmlError, NotFound
from loopml.tracking import Metric, RunStatus

pytest.importorskip("uvicorn")


def _store(home: Path) -> Client:
    return Client(loopml.load_settings(home=home, progress=False))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    from loopml.server.app import ServerOptions, create_app

    placeholder = _store(tmp_path_factory.mktemp("placeholder"))
    app = create_app(client=placeholder, options=ServerOptions(auth=False))
    with ServerThread.for_app(app, lifespan="on") as runner:
        yield app, runner.url
    placeholder.close()


@pytest.fixture(params=["embedded", "remote"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    store = _store(tmp_path / "server")
    if request.param == "embedded":
        yield store
        store.close()
        return
    app, url = request.getfixturevalue("server")
    app.state.client = store  # type: ignore[attr-defined]
    remote = RemoteClient(loopml.load_settings(home=tmp_path / "client", tracking_uri=url,
                                               progress=False))
    yield remote
    remote.close()
    store.close()
    assert not (tmp_path / "client" / "loopml.db").exists()  # it never opened a local store


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    return x, (x[:, 0] + x[:, 1] > 0).astype(int)


# -- tracking ------------------------------------------------------------------------------
def test_run_logs_params_metrics_tags_and_history(client: Client) -> None:
    with client.start_run("churn", name="first", tags={"team": "risk"}) as run:
        run.log_params({"model": "rf", "depth": 6})
        for step in range(50):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"nan": math.nan, "inf": math.inf, "ninf": -math.inf})
        run.set_tag("stage", "dev")
    stored = client.get_run(run.id)
    assert stored.status is RunStatus.FINISHED and stored.name == "first"
    assert stored.params == {"model": "rf", "depth": "6"}
    assert stored.metrics["loss"] == pytest.approx(0.02) and math.isnan(stored.metrics["nan"])
    assert stored.metrics["inf"] == math.inf and stored.metrics["ninf"] == -math.inf
    assert stored.tags["team"] == "risk" and stored.tags["stage"] == "dev"
    assert "loopml.env.python" in stored.tags and stored.user
    history = client.get_metric_history(run.id, "loss")
    assert [m.step for m in history] == list(range(50)) and history[0].value == 1.0
    assert math.isnan(client.get_metric_history(run.id, "nan")[0].value)
    assert client.resolve_run_id(run.id[:8]) == run.id


def test_failures_and_statuses(client: Client) -> None:
    with pytest.raises(RuntimeError), client.start_run("churn") as run:
        run.log_param("lr", 0.1)
        raise RuntimeError("diverged")
    assert client.get_run(run.id).status is RunStatus.FAILED
    assert client.get_run(run.id).params == {"lr": "0.1"}
    with pytest.raises(InvalidArgument, match="unknown run status"):
        client.end_run(run.id, "DONE")
    client.end_run(run.id, "KILLED")
    assert client.get_run(run.id).status is RunStatus.KILLED


def test_errors_arrive_as_the_same_classes(client: Client) -> None:
    client.create_experiment("known", description="d")
    with pytest.raises(AlreadyExists, match="exists already"):
        client.create_experiment("known")
    with pytest.raises(NotFound, match="'nope'.*known"):
        client.get_experiment("nope")
    with pytest.raises(NotFound, match="no run with id 'abc123'"):
        client.get_run("abc123")
    with pytest.raises(NotFound, match="abc123"):
        client.log_params("abc123", {"a": 1})
    with pytest.raises(NotFound, match="abc123"):
        client.log_batch("abc123", metrics=[Metric("m", 1.0, 0, 1)])
    with client.start_run("known") as run:
        run.log_param("lr", 0.1)
        with pytest.raises(Conflict, match="param 'lr' .* already '0.1' .* '0.2'"):
            run.log_params({"lr": 0.2})
        with pytest.raises(InvalidArgument, match="must be a number"):
            run.log_metric("loss", "high")
    with pytest.raises(InvalidArgument, match="position|expected"):
        client.search_runs("known", filter="metrics.auc >>> 1")
    with pytest.raises(InvalidArgument, match="max_results"):
        client.search_runs("known", max_results=0)
    with pytest.raises(NotFound, match="nope"):
        client.search_runs("nope")
    assert client.get_experiment("known").description == "d"
    assert [e.name for e in client.list_experiments()] == ["known"]


def test_log_batch_and_buffered_points_of_several_runs(client: Client) -> None:
    with client.start_run("batch") as one, client.start_run("batch") as two:
        client.log_batch(one.id, metrics=[Metric("x", float(i), i, 1000 + i)
                                          for i in range(5000)], params={"p": 1},
                         tags={"t": "v"})
        for step in range(300):
            one.log_metric("y", step, step=step)
            two.log_metric("y", -step, step=step)
    assert len(client.get_metric_history(one.id, "x")) == 5000
    first, second = client.get_run(one.id), client.get_run(two.id)
    assert first.metrics == {"x": 4999.0, "y": 299.0} and second.metrics == {"y": -299.0}
    assert first.params == {"p": "1"} and first.tags["t"] == "v"


def test_artifacts_upload_list_download(client: Client, tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "a.txt").write_text("alpha")
    (plots / "sub" / "b.txt").write_text("beta")
    big = tmp_path / "weights.bin"
    big.write_bytes(np.random.default_rng(1).bytes(5 * 1024 * 1024 + 7))  # > one piece
    with client.start_run("art") as run:
        run.log_artifact(plots)
        run.log_artifact(big, "weights")
        run.log_dict({"b": 1, "a": [1, 2]}, "config/params.json")
        run.log_text("hello", "notes.txt")
        with pytest.raises(InvalidArgument, match="escapes"):
            run.log_artifact(big, "../../etc")
    assert [a.path for a in client.list_artifacts(run.id)] == [
        "config/params.json", "notes.txt", "plots/a.txt", "plots/sub/b.txt",
        "weights/weights.bin"]
    assert [a.path for a in client.list_artifacts(run.id, "plots/sub")] == ["plots/sub/b.txt"]
    out = client.download_artifacts(run.id, "plots", tmp_path / "out")
    assert (out / "sub" / "b.txt").read_text() == "beta" and (out / "a.txt").is_file()
    one = client.download_artifacts(run.id, "weights/weights.bin", tmp_path / "out2")
    assert one.read_bytes() == big.read_bytes()
    everything = client.download_artifacts(run.id, "", tmp_path / "all")
    assert (everything / "config" / "params.json").is_file()
    with pytest.raises(NotFound, match="no artifact"):
        client.download_artifacts(run.id, "missing", tmp_path / "out3")
    with pytest.raises(NotFound, match="no run"):
        client.log_artifact("abc123", big)


def test_search_filters_order_pagination_and_deleted(client: Client) -> None:
    for i, model in enumerate(["rf", "gb", "rf", "lr", "gb", "rf"]):
        with client.start_run("search") as run:
            run.log_param("model", model)
            run.log_metric("auc", 0.8 + i * 0.02)
    found = client.search_runs("search", filter="metrics.auc > 0.82 and "
                               "(params.model = 'rf' or params.model in ('lr'))",
                               order_by=["metrics.auc desc"])
    assert [(r.params["model"], round(r.metrics["auc"], 2)) for r in found] == [
        ("rf", 0.9), ("lr", 0.86), ("rf", 0.84)]
    ordered = client.search_runs("search", order_by=["metrics.auc asc"])
    pages = [r.id for offset in (0, 4) for r in
             client.search_runs("search", order_by=["metrics.auc asc"], max_results=4,
                                offset=offset)]
    assert pages == [r.id for r in ordered] and len(pages) == 6
    frame = client.search_runs(["search"], order_by=["metrics.auc asc"],
                               output_format="pandas")
    assert list(frame["params.model"]) == ["rf", "gb", "rf", "lr", "gb", "rf"]
    client.delete_run(ordered[0].id)
    assert len(client.search_runs("search")) == 5
    assert len(client.search_runs(None, include_deleted=True)) == 6


def test_nested_runs_with_the_module_api(client: Client) -> None:
    loopml.client.set_default_client(client)
    try:
        with loopml.start_run("nest") as parent:
            loopml.log_param("outer", 1)
            with loopml.start_run(nested=True) as child:
                loopml.log_metric("inner", 2.0)
        stored = client.get_run(child.id)
        assert stored.parent_run_id == parent.id and stored.metrics == {"inner": 2.0}
        assert stored.experiment_id == parent.experiment_id
    finally:
        loopml.client.set_default_client(None)


# -- registry and models -------------------------------------------------------------------
def _train(client: Client, data: tuple[np.ndarray, np.ndarray], c: float,
           name: str = "churn") -> loopml.ModelInfo:
    x, y = data
    with client.start_run("registry") as run:
        run.log_params({"C": c})
        run.log_metric("auc", 0.9 + c / 100)
        model = LogisticRegression(C=c, max_iter=200).fit(x, y)
        return client.log_model(run.id, model, input_example=x[:3],
                                registered_model_name=name)


def test_versions_aliases_history_rollback_and_status(client: Client, data) -> None:
    infos = [_train(client, data, c) for c in (1.0, 2.0, 3.0)]
    version = infos[0].registered_version
    assert version is not None and version.version == 1 and version.flavor == "sklearn"
    assert version.params == {"C": "1.0"} and version.metrics["auc"] == pytest.approx(0.91)
    assert [v.version for v in client.list_model_versions("churn")] == [1, 2, 3]
    assert [m.name for m in client.list_registered_models()] == ["churn"]
    client.set_model_alias("churn", "production", 1, reason="launch")
    client.set_model_alias("churn", "production", 2, reason="better auc")
    client.set_model_alias("churn", "staging", 3)
    assert client.get_registered_model("churn").aliases == {"production": 2, "staging": 3}
    assert client.get_model_version("churn@production").version == 2
    assert client.get_model_version("models:/churn/1").aliases == ()
    assert client.get_model_version("churn").version == 3
    history = client.model_alias_history("churn", "production")
    assert [(e.from_version, e.to_version, e.reason) for e in history] == [
        (None, 1, "launch"), (1, 2, "better auc")]
    assert all(e.actor for e in history)
    assert len(client.model_alias_history("churn")) == 3
    assert client.rollback_model_alias("churn", "production", reason="bad").to_version == 1
    with pytest.raises(Conflict, match="no earlier version"):
        client.rollback_model_alias("churn", "production")
    with pytest.raises(NotFound, match="no alias 'prod'.*existing aliases: production, staging"):
        client.get_model_version("churn@prod")
    with pytest.raises(NotFound, match="no registered model named 'nope'"):
        client.get_model_version("nope@production")
    with pytest.raises(InvalidArgument, match="invalid alias"):
        client.set_model_alias("churn", "latest", 2)
    with pytest.raises(Conflict, match="carries the alias"):
        client.set_model_version_status("churn/3", "archived")
    assert client.set_model_version_status("churn/2", "archived").status == "archived"
    with pytest.raises(Conflict, match="archived version cannot receive aliases"):
        client.set_model_alias("churn", "staging", 2)
    event = client.delete_model_alias("churn", "staging", reason="retired")
    assert event.from_version == 3 and event.to_version is None
    client.delete_model_version("churn/3")
    assert [v.version for v in client.list_model_versions("churn")] == [1, 2]
    best = client.best_model_version("churn", metric="auc")
    assert best is not None and best.version == 1  # version 2 is archived
    card = client.model_card("churn/1")
    assert "## Metrics" in card and "launch" in card


def test_load_model_and_register_errors(client: Client, data) -> None:
    x, y = data
    info = _train(client, data, 1.0)
    client.set_model_alias("churn", "production", 1)
    expected = list(LogisticRegression(C=1.0, max_iter=200).fit(x, y).predict(x[:20]))
    loaded = client.load_model("models:/churn@production")
    assert list(loaded.predict(x[:20])) == expected
    assert client.load_model("models:/churn/1").flavor == "sklearn"
    assert list(client.load_model(info.uri).predict(x[:20])) == expected
    with client.start_run("registry") as run:
        run.log_text("hi", "notes/a.txt")
    with pytest.raises(NotFound, match="no model at runs:/"):
        client.register_model(f"runs:/{run.id}/notes", "other")
    with pytest.raises(InvalidArgument, match="invalid model name"):
        client.get_model_version("bad name")
    assert [m.name for m in client.list_registered_models()] == ["churn"]


def test_remote_client_never_opens_local_stores(tmp_path: Path) -> None:
    remote = RemoteClient(loopml.load_settings(home=tmp_path, tracking_uri="http://127.0.0.1:9"))
    try:
        with pytest.raises(Conflict, match="needs direct access to the store"):
            remote.meta  # noqa: B018
        with pytest.raises(LoopmlError, match="cannot reach the loopml server"):
            remote.list_experiments()
    finally:
        remote.close()
    assert not (tmp_path / "loopml.db").exists()
