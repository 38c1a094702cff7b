"""Tracking conformance suite: runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import loopml
from loopml.client import Client
from loopml.errors import Conflict, InvalidArgument, NotFound
from loopml.tracking import Metric, RunStatus


@pytest.fixture
def client(database_url: str, tmp_path: Path):
    settings = loopml.load_settings(home=tmp_path / "home", database_url=database_url,
                                    blob_url=f"file://{tmp_path / 'blobs'}")
    client = Client(settings)
    yield client
    client.close()


def test_run_records_params_metrics_tags_and_wall_time(client: Client) -> None:
    with client.start_run("churn", name="first", tags={"team": "risk"}) as run:
        run.log_params({"model": "rf", "depth": 6})
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.set_tag("stage", "dev")
    stored = client.get_run(run.id)
    assert stored.status is RunStatus.FINISHED
    assert stored.name == "first"
    assert stored.params == {"model": "rf", "depth": "6"}
    assert stored.metrics == {"loss": pytest.approx(0.2)}
    assert stored.tags["team"] == "risk" and stored.tags["stage"] == "dev"
    assert stored.tags["loopml.env.python"].count(".") == 2
    assert "loopml.env.cpu" in stored.tags and "loopml.env.host" in stored.tags
    assert stored.duration_s is not None and stored.duration_s >= 0
    history = client.get_metric_history(run.id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert history[-1].value == pytest.approx(0.2)


def test_exception_marks_failed_and_keeps_what_was_logged(client: Client) -> None:
    with pytest.raises(RuntimeError), client.start_run("churn") as run:
        run.log_param("lr", 0.1)
        run.log_metric("loss", 0.5)
        raise RuntimeError("diverged")
    stored = client.get_run(run.id)
    assert stored.status is RunStatus.FAILED
    assert stored.params == {"lr": "0.1"} and stored.metrics == {"loss": 0.5}


def test_keyboard_interrupt_marks_killed(client: Client) -> None:
    with pytest.raises(KeyboardInterrupt), client.start_run("churn") as run:
        raise KeyboardInterrupt
    assert client.get_run(run.id).status is RunStatus.KILLED


def test_param_cannot_change(client: Client) -> None:
    with client.start_run("churn") as run:
        run.log_param("lr", 0.1)
        run.log_param("lr", 0.1)  # same value: fine
        with pytest.raises(Conflict, match="param 'lr' .* already '0.1' .* '0.2'"):
            run.log_params({"other": "x", "lr": 0.2})
    assert client.get_run(run.id).params == {"lr": "0.1"}


def test_non_finite_metrics_are_stored_and_read_back(client: Client) -> None:
    with client.start_run("churn") as run:
        run.log_metrics({"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "ok": 1})
    stored = client.get_run(run.id)
    assert math.isnan(stored.metrics["nan"])
    assert stored.metrics["inf"] == math.inf and stored.metrics["ninf"] == -math.inf
    assert math.isnan(client.get_metric_history(run.id, "nan")[0].value)
    found = client.search_runs("churn", filter="metrics.inf > 1e300")
    assert [r.id for r in found] == [run.id]


def test_latest_metric_is_highest_step_not_last_logged(client: Client) -> None:
    with client.start_run("churn") as run:
        run.log_metric("acc", 0.9, step=10)
        run.log_metric("acc", 0.5, step=3)
    assert client.get_run(run.id).metrics["acc"] == 0.9


def test_bad_metric_and_key_values_raise_clear_errors(client: Client) -> None:
    with client.start_run("churn") as run:
        with pytest.raises(InvalidArgument, match="must be a number"):
            run.log_metric("loss", "high")
        with pytest.raises(InvalidArgument, match="invalid metric name"):
            run.log_metric("bad\nkey", 1.0)
        with pytest.raises(InvalidArgument, match="'..'"):
            run.log_param("../escape", 1)


def test_log_batch_writes_ten_thousand_points(client: Client) -> None:
    with client.start_run("churn") as run:
        client.log_batch(run.id, metrics=[Metric("x", float(i), i, 1000 + i)
                                          for i in range(10_000)],
                         params={"p": 1}, tags={"t": "v"})
    history = client.get_metric_history(run.id, "x")
    assert len(history) == 10_000 and history[-1].value == 9999.0
    assert client.get_run(run.id).metrics["x"] == 9999.0


def test_unknown_ids_name_what_was_looked_for(client: Client) -> None:
    client.create_experiment("known")
    with pytest.raises(NotFound, match="'nope'.*known"):
        client.get_experiment("nope")
    with pytest.raises(NotFound, match="no run with id 'abc123'"):
        client.get_run("abc123")
    with pytest.raises(NotFound, match="abc123"):
        client.log_params("abc123", {"a": 1})
    with pytest.raises(NotFound, match="nope"):
        client.search_runs("nope")


def test_duplicate_experiment_is_rejected(client: Client) -> None:
    client.create_experiment("dup")
    with pytest.raises(loopml.LoopmlError, match="exists already"):
        client.create_experiment("dup")
    assert [e.name for e in client.list_experiments()] == ["dup"]


def test_artifacts_files_and_directories(client: Client, tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "a.txt").write_text("alpha")
    (plots / "sub" / "b.txt").write_text("beta")
    single = tmp_path / "model.bin"
    single.write_bytes(b"\x00" * 1000)
    with client.start_run("churn") as run:
        run.log_artifact(plots)
        run.log_artifact(single, "weights")
        run.log_dict({"b": 1, "a": [1, 2]}, "config/params.json")
        run.log_text("hello", "notes.txt")
    paths = [a.path for a in client.list_artifacts(run.id)]
    assert paths == ["config/params.json", "notes.txt", "plots/a.txt", "plots/sub/b.txt",
                     "weights/model.bin"]
    out = client.download_artifacts(run.id, "plots", tmp_path / "out")
    assert (out / "sub" / "b.txt").read_text() == "beta"
    one = client.download_artifacts(run.id, "weights/model.bin", tmp_path / "out2")
    assert one.read_bytes() == b"\x00" * 1000
    with pytest.raises(InvalidArgument, match="escapes"):
        run.log_artifact(single, "../../etc")
    with pytest.raises(NotFound, match="no artifact"):
        client.download_artifacts(run.id, "missing", tmp_path / "out3")


def test_search_with_or_parentheses_in_and_pandas(client: Client) -> None:
    for i, model in enumerate(["rf", "gb", "rf", "lr"]):
        with client.start_run("search") as run:
            run.log_param("model", model)
            run.log_metric("auc", 0.8 + i * 0.05)
    found = client.search_runs("search", filter="metrics.auc > 0.82 and "
                               "(params.model = 'rf' or params.model in ('lr'))",
                               order_by=["metrics.auc desc"])
    assert [(r.params["model"], round(r.metrics["auc"], 2)) for r in found] == [
        ("lr", 0.95), ("rf", 0.9)]
    frame = client.search_runs("search", order_by=["metrics.auc asc"], output_format="pandas")
    assert list(frame["params.model"]) == ["rf", "gb", "rf", "lr"]
    assert "metrics.auc" in frame.columns and "duration_s" in frame.columns


def test_nested_runs_with_module_api(client: Client) -> None:
    loopml.client.set_default_client(client)
    try:
        with loopml.start_run("nest") as parent:
            loopml.log_param("outer", 1)
            with pytest.raises(Conflict, match="still active"):
                loopml.start_run("nest")
            with loopml.start_run(nested=True) as child:
                loopml.log_metric("inner", 2.0)
                assert loopml.active_run() is child
            assert loopml.active_run() is parent
        assert loopml.active_run() is None
        stored = client.get_run(child.id)
        assert stored.parent_run_id == parent.id and stored.metrics == {"inner": 2.0}
        assert stored.experiment_id == parent.experiment_id
        with pytest.raises(Conflict, match="no active run"):
            loopml.log_metric("x", 1)
    finally:
        loopml.client.set_default_client(None)


def test_deleted_runs_are_hidden_from_search(client: Client) -> None:
    with client.start_run("gone") as run:
        pass
    client.delete_run(run.id)
    assert client.search_runs("gone") == []
    assert [r.id for r in client.search_runs("gone", include_deleted=True)] == [run.id]


@pytest.mark.s3
def test_artifacts_on_s3_blob_store(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    settings = loopml.load_settings(home=tmp_path / "home", blob_url=f"s3://{s3_bucket}/blobs",
                                    s3_endpoint_url=s3_endpoint, progress=False)
    client = Client(settings)
    (tmp_path / "out").mkdir()
    (tmp_path / "report.txt").write_text("on s3")
    with client.start_run("s3") as run:
        run.log_artifact(tmp_path / "report.txt")
    path = client.download_artifacts(run.id, "report.txt", tmp_path / "out")
    assert path.read_text() == "on s3"
    client.close()
