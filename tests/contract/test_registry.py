"""Model registry conformance: every metadata backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.client import Client
from loopml.errors import Conflict, InvalidArgument, NotFound


@pytest.fixture
def client(database_url: str, tmp_path: Path):
    settings = loopml.load_settings(home=tmp_path / "home", database_url=database_url,
                                    blob_url=f"file://{tmp_path / 'blobs'}", progress=False)
    client = Client(settings)
    yield client
    client.close()


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return x[:, :5], y


def _train(client: Client, data, c: float, name: str = "churn") -> loopml.ModelInfo:
    x, y = data
    with client.start_run("registry") as run:
        model = LogisticRegression(C=c, max_iter=500).fit(x, y)
        run.log_params({"C": c})
        run.log_metrics({"auc": 0.9 + c / 100, "auc/segment:smb": 0.8 + c / 100})
        info = client.log_model(run.id, model, input_example=x[:5],
                                registered_model_name=name)
    return info


def test_log_register_and_load_by_alias(client: Client, data) -> None:
    x, _ = data
    info = _train(client, data, 1.0)
    version = info.registered_version
    assert version is not None and version.version == 1 and version.flavor == "sklearn"
    assert version.params == {"C": "1.0"} and version.metrics["auc"] == pytest.approx(0.91)
    assert version.run_id == info.run_id and version.signature is not None
    client.set_model_alias("churn", "production", 1, reason="first model")
    loaded = client.load_model("models:/churn@production")
    expected = LogisticRegression(C=1.0, max_iter=500).fit(*data).predict(x[:20])
    assert list(loaded.predict(x[:20])) == list(expected)
    assert client.load_model("models:/churn/1").flavor == "sklearn"
    assert client.load_model(info.uri).flavor == "sklearn"


def test_versions_aliases_and_audit_log(client: Client, data) -> None:
    for c in (1.0, 2.0, 3.0):
        _train(client, data, c)
    client.set_model_alias("churn", "production", 1, reason="launch")
    client.set_model_alias("churn", "staging", 1)
    client.set_model_alias("churn", "production", 2, reason="better auc")
    assert client.get_model_version("churn@production").version == 2
    assert client.get_model_version("churn/1").aliases == ("staging",)
    history = client.model_alias_history("churn", "production")
    assert [(e.from_version, e.to_version, e.reason) for e in history] == [
        (None, 1, "launch"), (1, 2, "better auc")]
    assert all(e.actor for e in history) and history[0].created_at <= history[1].created_at
    with pytest.raises(NotFound, match="no alias 'prod'.*existing aliases: production, staging"):
        client.get_model_version("churn@prod")
    with pytest.raises(NotFound, match="no registered model named 'nope'"):
        client.get_model_version("nope@production")


def test_rollback_goes_back_through_history(client: Client, data) -> None:
    for c in (1.0, 2.0, 3.0):
        _train(client, data, c)
    for version in (1, 2, 3):
        client.set_model_alias("churn", "production", version)
    assert client.rollback_model_alias("churn", "production").to_version == 2
    assert client.rollback_model_alias("churn", "production").to_version == 1
    with pytest.raises(Conflict, match="no earlier version"):
        client.rollback_model_alias("churn", "production")
    assert client.get_model_version("churn@production").version == 1


def test_archived_versions_take_no_alias(client: Client, data) -> None:
    _train(client, data, 1.0)
    _train(client, data, 2.0)
    client.set_model_alias("churn", "production", 2)
    with pytest.raises(Conflict, match="carries the alias"):
        client.set_model_version_status("churn/2", "archived")
    client.set_model_version_status("churn/1", "archived")
    with pytest.raises(Conflict, match="archived version cannot receive aliases"):
        client.set_model_alias("churn", "staging", 1)
    assert client.get_model_version("churn").version == 2
    with pytest.raises(InvalidArgument, match="invalid alias"):
        client.set_model_alias("churn", "latest", 2)


def test_best_version_and_card(client: Client, data) -> None:
    for c in (1.0, 5.0, 3.0):
        _train(client, data, c)
    best = client.best_model_version("churn", metric="auc", where="params.C != '5.0'")
    assert best is not None and best.version == 3
    assert client.best_model_version("churn", metric="auc", mode="min").version == 1
    client.set_model_alias("churn", "champion", 3, reason="best without C=5")
    card = client.model_card("churn/3")
    for section in ("## Metrics", "## Metrics per data slice", "segment:smb", "## Parameters",
                    "## Signature", "## Lineage", "## Alias history", "best without C=5"):
        assert section in card
    page = client.model_card("churn@champion", output="html")
    assert page.startswith("<!doctype html>") and "segment:smb" in page


def test_dataset_lineage_reaches_models(client: Client, data, tmp_path: Path) -> None:
    x, y = data
    (tmp_path / "train.csv").write_text("a,b\n1,2\n3,4\n")
    client.add_dataset(tmp_path / "train.csv", "train")
    with client.start_run("registry") as run:
        client.load_table("train@1", run_id=run.id)
        client.log_model(run.id, LogisticRegression(max_iter=300).fit(x, y),
                         input_example=x[:3], registered_model_name="fed")
    assert client.get_model_version("fed/1").datasets == ["train@1"]
    assert [m.ref for m in client.dataset_consumers("train@1")] == ["fed/1"]


def test_register_a_path_without_model(client: Client, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("x")
    with pytest.raises(NotFound, match="no model package"):
        client.register_model(tmp_path / "empty", "x")
    with client.start_run("registry") as run:
        run.log_text("hi", "notes/a.txt")
    with pytest.raises(NotFound, match="no model at runs:/"):
        client.register_model(f"runs:/{run.id}/notes", "x")
    assert client.list_registered_models() == []


def test_concurrent_alias_moves_keep_one_target_and_a_consistent_log(client: Client,
                                                                     data) -> None:
    for c in (1.0, 2.0, 3.0, 4.0):
        _train(client, data, c)
    errors: list[BaseException] = []

    def mover(offset: int) -> None:
        try:
            for i in range(15):
                client.set_model_alias("churn", "production", (offset + i) % 4 + 1,
                                       reason=f"worker {offset}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=mover, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    events = client.model_alias_history("churn", "production")
    assert len(events) == 90
    assert events[0].from_version is None
    for before, after in itertools.pairwise(events):
        assert after.from_version == before.to_version  # each move starts where the last ended
    assert client.get_model_version("churn@production").version == events[-1].to_version


def test_quick_model_lookup_agrees_with_the_client(client: Client, data) -> None:
    from loopml.registry.quick_lookup import model_tree_quickly

    _train(client, data, 1.0)
    _train(client, data, 2.0)
    client.set_model_alias("churn", "champion", 1)
    client.set_model_version_status("churn/2", "archived")
    cases = {"models:/churn@champion": "churn@champion", "models:/churn/2": "churn/2",
             "models:/churn": "churn"}
    for uri, ref in cases.items():
        expected = client.get_model_version(ref).tree if client.settings.is_embedded else None
        assert model_tree_quickly(client.settings, uri) == expected
    assert model_tree_quickly(client.settings, "models:/churn@nope") is None
    assert model_tree_quickly(client.settings, "models:/bad name") is None


def test_cold_load_by_alias_skips_the_metadata_layer(tmp_path: Path, data) -> None:
    import subprocess
    import sys

    settings = loopml.load_settings(home=tmp_path / "cold", progress=False)
    client = Client(settings)
    _train(client, data, 1.0)
    client.set_model_alias("churn", "production", 1)
    client.close()
    code = ("import sys, numpy as np, loopml\n"
            "m = loopml.load_model('models:/churn@production')\n"
            "print(m.predict(np.ones((1, 5))).shape, 'sqlalchemy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**__import__("os").environ,
                                           "LOOPML_HOME": str(tmp_path / "cold")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(1,)", "False"]
