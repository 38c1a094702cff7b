"""Pipelines on the embedded store: DAG, tracking, cache, retries, timeouts, gates, fan-out,
sample runs, resume (also after kill -9), materializers and the errors of bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopml
from loopml.client import Client
from loopml.errors import Conflict, InvalidArgument, LoopmlError, NotFound, StepFailed
from loopml.pipelines import (
    BytesMaterializer,
    Dataset,
    StepStatus,
    pipeline,
    register,
    register_materializer,
    resume,
    skip,
    step,
    when,
)
from loopml.pipelines.trace import Graph, Node


@pytest.fixture
def client(tmp_path: Path) -> Client:
    client = Client(loopml.load_settings(home=tmp_path / ".loopml", progress=False))
    yield client
    client.close()


CALLS: list[str] = []


@step
def source(n: int) -> dict[str, Any]:
    CALLS.append("source")
    print(f"making {n}")
    return {"values": list(range(n))}


@step
def scale(data: dict[str, Any], *, factor: float = 2.0) -> list[float]:
    CALLS.append("scale")
    loopml.log_metric("factor", factor)
    return [v * factor for v in data["values"]]


@step(cache=False)
def total(first: list[float], second: list[float]) -> float:
    CALLS.append("total")
    return sum(first) + sum(second)


@pipeline
def arithmetic(n: int = 4, factor: float = 3.0):
    data = source(n)
    return total(scale(data, factor=factor), scale(data))


def test_run_records_dag_child_runs_params_metrics_and_logs(client: Client) -> None:
    CALLS.clear()
    run = arithmetic.run(n=3, client=client)
    assert run.status == "FINISHED"
    assert [s.node for s in run.steps] == ["source", "scale", "scale_2", "total"]
    assert all(s.status is StepStatus.COMPLETED for s in run.steps)
    assert run.graph["nodes"][3]["deps"] == ["scale", "scale_2"]
    parent = client.get_run(run.run_id)
    assert parent.params == {"n": "3", "factor": "3.0"}
    assert parent.tags["loopml.pipeline"] == "arithmetic"
    scale_run = client.get_run(run.step("scale").child_run_id or "")
    assert scale_run.parent_run_id == run.run_id
    assert scale_run.params == {"factor": "3.0"}
    assert scale_run.metrics["factor"] == 3.0
    logs = client.download_artifacts(run.step("source").child_run_id or "", "logs/step.log")
    assert "making 3" in Path(logs).read_text()
    assert sorted(CALLS) == ["scale", "scale", "source", "total"]


def test_cache_reuses_outputs_and_invalidates_on_params(client: Client) -> None:
    arithmetic.run(n=3, client=client)
    CALLS.clear()
    again = arithmetic.run(n=3, client=client)
    assert [s.status for s in again.steps] == [StepStatus.CACHED] * 3 + [StepStatus.COMPLETED]
    assert CALLS == ["total"]  # cache=False on total
    assert again.step("source").cached_from is not None
    CALLS.clear()
    changed = arithmetic.run(n=3, factor=5.0, client=client)
    statuses = {s.node: s.status for s in changed.steps}
    assert statuses == {"source": StepStatus.CACHED, "scale": StepStatus.COMPLETED,
                        "scale_2": StepStatus.CACHED, "total": StepStatus.COMPLETED}
    no_cache = arithmetic.run(n=3, client=client, cache=False)
    assert all(s.status is StepStatus.COMPLETED for s in no_cache.steps)


def _step_from_source(body: str) -> Any:
    namespace: dict[str, Any] = {"step": step}
    exec(textwrap.dedent(body), namespace)  # a test building two versions of a step
    return namespace["produce"]


def test_changing_step_code_invalidates_its_cache(client: Client) -> None:
    first = _step_from_source("@step\ndef produce(x: int) -> int:\n    return x + 1\n")
    second = _step_from_source("@step\ndef produce(x: int) -> int:\n    return x + 2\n")

    def make(which: Any) -> Any:
        return pipeline(lambda: which(1), name="code")

    assert make(first).run(client=client).steps[0].status is StepStatus.COMPLETED
    assert make(first).run(client=client).steps[0].status is StepStatus.CACHED
    assert make(second).run(client=client).steps[0].status is StepStatus.COMPLETED
    assert first.code_hash != second.code_hash


FLAKY_FILE = "flaky-count"


@step(retries=2, retry_delay=0.01)
def flaky(until: int) -> str:
    path = Path(FLAKY_FILE)
    count = int(path.read_text()) if path.exists() else 0
    path.write_text(str(count + 1))
    if count + 1 < until:
        raise RuntimeError(f"attempt {count + 1} fails")
    return "ok"


def test_retries_with_backoff_then_success_or_failure(client: Client) -> None:
    run = pipeline(lambda: flaky(3), name="flaky").run(client=client)
    assert run.step("flaky").attempts == 3
    assert run.step("flaky").status is StepStatus.COMPLETED
    Path(FLAKY_FILE).unlink()
    with pytest.raises(StepFailed) as failure:
        pipeline(lambda: flaky(9), name="flaky").run(client=client, cache=False)
    message = str(failure.value)
    assert "step 'flaky' failed after 3 attempts: RuntimeError: attempt 3 fails" in message
    assert "logs/step.log" in message and "loopml pipelines resume" in message
    with client.meta.read() as conn:
        from loopml.pipelines import records

        failed = records.get_pipeline_run(conn, failure.value.run_id)
    assert failed.status == "FAILED"
    assert client.get_run(failed.step("flaky").child_run_id or "").status.value == "FAILED"


@step(timeout=0.3)
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_timeout_fails_the_step_without_waiting(client: Client) -> None:
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"TimeoutError: .*timeout \(0.3 s\)"):
        pipeline(lambda: sleepy(5.0), name="slow").run(client=client)
    assert time.monotonic() - started < 3


@step
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_independent_steps_run_in_parallel(client: Client) -> None:
    @pipeline
    def two_naps():
        return [nap(0.4), nap(0.41)]

    run = two_naps.run(client=client)
    first, second = run.step("nap"), run.step("nap_2")
    assert first.started_at is not None and second.started_at is not None
    assert second.started_at < (first.ended_at or 0)  # the second began before the first ended
    assert first.started_at < (second.ended_at or 0)


@step
def square(x: int) -> int:
    return x * x


@step
def gather(values: list[int]) -> list[int]:
    return values


def test_map_fans_out_and_gathers_in_order(client: Client) -> None:
    run = pipeline(lambda: gather(square.map([1, 2, 3, 4])), name="fan").run(client=client)
    assert [s.node for s in run.steps][:4] == ["square[0]", "square[1]", "square[2]",
                                               "square[3]"]
    ref = run.step("gather").outputs[0]
    assert json.loads(client.blobs.get_bytes(ref.digest)) == [1, 4, 9, 16]


@step
def is_good(score: float) -> bool:
    return score > 0.5


@step
def announce(score: float) -> str:
    return f"score {score}"


@step
def follow_up(text: str) -> str:
    return text.upper()


@step
def maybe_skip(flag: bool) -> str:
    if flag:
        skip("nothing new to train on")
    return "trained"


def test_gates_and_skips_propagate_with_reasons(client: Client) -> None:
    @pipeline
    def gated(score: float = 0.2):
        with when(is_good(score), reason="score below 0.5"):
            text = announce(score)
        follow_up(text)
        follow_up(maybe_skip(True))

    run = gated.run(client=client)
    statuses = {s.node: (s.status, s.reason) for s in run.steps}
    assert statuses["announce"] == (StepStatus.SKIPPED, "score below 0.5")
    assert statuses["follow_up"] == (StepStatus.SKIPPED,
                                     "needs the output of announce, which was skipped")
    assert statuses["maybe_skip"] == (StepStatus.SKIPPED, "nothing new to train on")
    assert statuses["follow_up_2"][0] is StepStatus.SKIPPED
    assert run.status == "FINISHED"
    assert gated.run(score=0.9, client=client).step("follow_up").status is StepStatus.COMPLETED


@pytest.fixture
def toy_dataset(client: Client, tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=600), rng.normal(size=600)
    pd.DataFrame({"a": a, "b": b, "y": (a + b > 0).astype(int)}).to_parquet(
        tmp_path / "toy.parquet")
    client.add_dataset(tmp_path / "toy.parquet", "toy")
    return "toy"


@step
def prepare(data: Dataset) -> pd.DataFrame:
    return data.to_pandas()


@step
def fit(df: pd.DataFrame, *, c: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c).fit(df[["a", "b"]].to_numpy(), df["y"].to_numpy())


@step
def evaluate(model: Any, df: pd.DataFrame) -> dict[str, float]:
    accuracy = float(model.score(df[["a", "b"]].to_numpy(), df["y"].to_numpy()))
    loopml.log_metric("accuracy", accuracy)
    return {"accuracy": accuracy, "rows": float(len(df))}


@pipeline
def train_and_register(data: Dataset = Dataset("toy@latest"), c: float = 1.0,
                       threshold: float = 0.0):
    df = prepare(data)
    model = fit(df, c=c)
    metrics = evaluate(model, df)
    register(model, name="toy-model", metrics=metrics, alias="production",
             when="metrics['accuracy'] >= champion['accuracy'] + " + repr(threshold))


def test_model_pipeline_registers_with_lineage_and_gate(client: Client,
                                                        toy_dataset: str) -> None:
    run = train_and_register.run(client=client)
    assert run.step("fit").outputs[0].materializer == "model"
    assert run.step("prepare").outputs[0].materializer == "pandas"
    version = client.get_model_version("toy-model@production")
    assert version.version == 1 and version.metrics["accuracy"] > 0.9
    assert version.datasets == ["toy@1"]
    assert run.params["data"] == "toy@1"
    lineage = client.dataset_lineage("toy@1")
    assert {r.id for r, _ in lineage} >= {run.run_id, run.step("prepare").child_run_id}
    loaded = client.load_model("models:/toy-model/1")
    assert loaded.predict(np.array([[2.0, 2.0]]))[0] == 1
    # the challenger must beat the champion by 0.5: impossible, so register is skipped
    gated = train_and_register.run(client=client, threshold=0.5)
    register_step = gated.step("register")
    assert register_step.status is StepStatus.SKIPPED
    assert "is false" in (register_step.reason or "")
    assert len(client.list_model_versions("toy-model")) == 1


def test_sample_run_reads_n_rows_and_never_registers(client: Client, toy_dataset: str) -> None:
    run = train_and_register.run(client=client, sample=50)
    ref = run.step("evaluate").outputs[0]
    assert json.loads(client.blobs.get_bytes(ref.digest))["rows"] == 50.0
    assert run.step("register").status is StepStatus.SKIPPED
    assert "sample run" in (run.step("register").reason or "")
    assert client.get_run(run.run_id).tags["loopml.pipeline.sample"] == "50"
    with pytest.raises(NotFound):
        client.get_registered_model("toy-model")


BREAK_FILE = "break-middle"


@step(cache=False)
def first_step(x: int) -> int:
    return x + 1


@step
def middle(x: int) -> int:
    if Path(BREAK_FILE).exists():
        raise ValueError("middle is broken")
    return x * 10


@step
def last(x: int) -> int:
    return x - 1


@pipeline
def chain(x: int = 1):
    return last(middle(first_step(x)))


def test_resume_reuses_succeeded_steps_even_without_cache(client: Client) -> None:
    Path(BREAK_FILE).touch()
    with pytest.raises(StepFailed) as failure:
        chain.run(client=client, cache=False)
    Path(BREAK_FILE).unlink()
    resumed = resume(failure.value.run_id, client=client, pipeline=chain)
    assert resumed.resumed_from == failure.value.run_id
    assert resumed.step("first_step").status is StepStatus.CACHED
    assert resumed.step("first_step").cached_from == failure.value.run_id
    assert resumed.step("middle").status is StepStatus.COMPLETED
    assert json.loads(client.blobs.get_bytes(resumed.step("last").outputs[0].digest)) == 19
    with pytest.raises(Conflict, match="nothing to resume"):
        resume(resumed.run_id, client=client, pipeline=chain)


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


class PointMaterializer(BytesMaterializer):
    name = "test-point"

    def handles(self, value: object) -> bool:
        return isinstance(value, Point)

    def to_bytes(self, value: Any) -> bytes:
        return f"{value.x},{value.y}".encode()

    def from_bytes(self, data: bytes) -> object:
        x, y = data.decode().split(",")
        return Point(float(x), float(y))


@step
def make_point() -> Point:
    return Point(1.5, 2.5)


@step
def norm(point: Point) -> float:
    return float(np.hypot(point.x, point.y))


def test_unmaterialisable_output_names_type_and_fix_then_custom_materializer(
        client: Client) -> None:
    pipe = pipeline(lambda: norm(make_point()), name="points")
    with pytest.raises(StepFailed, match=r"Point, which no materializer can store.*"
                       r"register_materializer"):
        pipe.run(client=client)
    register_materializer(PointMaterializer())
    run = pipe.run(client=client, executor="inline:1")
    assert run.step("make_point").outputs[0].materializer == "test-point"
    assert json.loads(client.blobs.get_bytes(run.step("norm").outputs[0].digest)) == \
        pytest.approx(2.915, abs=1e-3)


def test_bad_input_fails_before_any_step_runs(client: Client) -> None:
    CALLS.clear()
    with pytest.raises(InvalidArgument, match="has no parameter 'nn'; its parameters: n, factor"):
        arithmetic.run(nn=3, client=client)
    with pytest.raises(InvalidArgument, match="must be a int, got 'x'"):
        arithmetic.run({"n": "x"}, client=client)
    with pytest.raises(InvalidArgument, match="needs the parameter 'x'"):
        pipeline(lambda x: source(x), name="p").run(client=client)
    with pytest.raises(InvalidArgument, match="unknown executor 'k8s'; known: inline"):
        arithmetic.run(client=client, executor="k8s")
    with pytest.raises(InvalidArgument, match="argument 'n' of step 'source' is a Point"):
        pipeline(lambda: source(Point(1, 2)), name="p").run(client=client)
    with pytest.raises(InvalidArgument, match="cannot be used in 'if'"):
        pipeline(lambda: source(1) if source(2) else None, name="p").run(client=client)
    with pytest.raises(InvalidArgument, match="called with bad arguments"):
        pipeline(lambda: source(1, 2), name="p").run(client=client)
    with pytest.raises(InvalidArgument, match="unknown name 'challenger'"):
        pipeline(lambda: register(source(1), name="m", when="challenger > 1"),
                 name="p").run(client=client)
    with pytest.raises(NotFound, match="no dataset"):
        pipeline(lambda: prepare(Dataset("missing@1")), name="p").run(client=client)
    with pytest.raises(InvalidArgument, match="timeout"):
        step(timeout="soon")(lambda: 1)
    assert CALLS == []


def test_graph_rejects_a_cycle() -> None:
    graph = Graph()
    graph.nodes["a"] = Node("a", source, (), {}, ("b",))
    graph.nodes["b"] = Node("b", source, (), {}, ("a",))
    with pytest.raises(LoopmlError, match="cycle"):
        graph.check()


def test_steps_called_outside_a_pipeline_are_plain_functions() -> None:
    assert square(7) == 49


KILLABLE = textwrap.dedent("""
    import time
    from pathlib import Path
    import loopml

    @loopml.step
    def quick(x: int) -> int:
        return x + 1

    @loopml.step(cache=False)
    def hang(x: int) -> int:
        if Path("hang").exists():
            time.sleep(60)
        return x * 2

    @loopml.pipeline
    def killable(x: int = 1):
        return hang(quick(x))
""")


def test_cli_run_kill_9_and_resume(client: Client, tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(KILLABLE)
    (tmp_path / "hang").touch()
    command = [sys.executable, "-m", "loopml.cli.main"]
    process = subprocess.Popen([*command, "run", "flow.py:killable", "--param", "x=4"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    from loopml.pipelines import records

    deadline = time.monotonic() + 30
    running = None
    while time.monotonic() < deadline and running is None:
        time.sleep(0.1)
        with client.meta.read() as conn:
            found = records.list_pipeline_runs(conn)
            if found:
                current = records.get_pipeline_run(conn, found[0].run_id)
                if any(s.node == "hang" for s in current.steps):
                    running = current
    assert running is not None, "the pipeline did not reach its second step"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (tmp_path / "hang").unlink()
    out = subprocess.run([*command, "pipelines", "resume", running.run_id[:8], "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    resumed = json.loads(out.stdout)
    assert [s["status"] for s in resumed["steps"]] == ["cached", "completed"]
    with client.meta.read() as conn:
        killed = records.get_pipeline_run(conn, running.run_id)
    assert killed.status == "KILLED"
    assert killed.step("hang").status is StepStatus.FAILED
    shown = subprocess.run([*command, "pipelines", "show", resumed["run_id"]],
                           capture_output=True, text=True, timeout=60)
    assert "cached" in shown.stdout and "completed" in shown.stdout
    listed = subprocess.run([*command, "pipelines", "list", "--json"], capture_output=True,
                            text=True, timeout=60)
    assert [r["status"] for r in json.loads(listed.stdout)] == ["FINISHED", "KILLED"]


def test_cli_params_file_and_errors(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(KILLABLE)
    (tmp_path / "params.yaml").write_text("x: 7\n")
    command = [sys.executable, "-m", "loopml.cli.main"]
    out = subprocess.run([*command, "run", "flow.py:killable", "--params-file", "params.yaml",
                          "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["params"] == {"x": 7}
    for args, message in (
            (["run", "nope.py:x"], "no file 'nope.py'"),
            (["run", "flow.py:missing"], "has no 'missing'"),
            (["run", "flow.py:quick"], "not a @loopml.pipeline"),
            (["run", "flow.py:killable", "--param", "y=1"], "has no parameter 'y'"),
            (["run", "flow.py:killable", "--executor", "ray://127.0.0.1:1"], "ray"),
            (["pipelines", "show", "ffffffff"], "no pipeline run")):
        bad = subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1, (args, bad.stderr)
        assert message in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)
