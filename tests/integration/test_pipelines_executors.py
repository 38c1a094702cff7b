"""The same pipeline on the process pool and on a real local Ray cluster: outputs exchanged
through the blob store, step runs logged from the workers, a failure on a worker, resume."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import loopml
from loopml.client import Client
from loopml.errors import StepFailed
from loopml.pipelines import StepStatus, resume
from loopml.pipelines.loading import load_object

FLOW = textwrap.dedent("""
    import os
    from pathlib import Path
    import numpy as np
    import loopml

    @loopml.step
    def make(n: int) -> np.ndarray:
        return np.arange(n, dtype=float)

    @loopml.step
    def double(values: np.ndarray) -> np.ndarray:
        loopml.log_metric("worker_pid", os.getpid())
        print("doubling", len(values))
        return values * 2

    @loopml.step
    def fragile(values: np.ndarray, flag: str) -> float:
        if Path(flag).exists():
            raise RuntimeError("fragile step broke on a worker")
        return float(values.sum())

    @loopml.pipeline
    def flow(n: int = 5, flag: str = "broken"):
        values = make(n)
        return fragile(double(values), flag)
""")


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / f"flow_{tmp_path.name}.py"
    path.write_text(FLOW)
    return path


@pytest.fixture
def client(tmp_path: Path) -> Client:
    client = Client(loopml.load_settings(home=tmp_path / ".loopml", progress=False))
    yield client
    client.close()


def _check_run(client: Client, run: loopml.pipelines.PipelineRun, n: int) -> None:
    assert run.status == "FINISHED"
    total = json.loads(client.blobs.get_bytes(run.step("fragile").outputs[0].digest))
    assert total == float(sum(range(n)) * 2)
    double_run = client.get_run(run.step("double").child_run_id or "")
    assert "worker_pid" in double_run.metrics
    assert run.step("double").device == "cpu"


def _fail_then_resume(client: Client, flow_file: Path, executor: str) -> None:
    pipe = load_object(f"{flow_file}:flow")
    flag = flow_file.parent / "broken"
    flag.touch()
    with pytest.raises(StepFailed, match="fragile step broke on a worker") as failure:
        pipe.run(n=6, flag=str(flag), client=client, executor=executor)
    flag.unlink()
    resumed = resume(failure.value.run_id, client=client, executor=executor)
    assert [s.status for s in resumed.steps] == [StepStatus.CACHED, StepStatus.CACHED,
                                                 StepStatus.COMPLETED]
    assert resumed.status == "FINISHED"
    total = json.loads(client.blobs.get_bytes(resumed.step("fragile").outputs[0].digest))
    assert total == float(sum(range(6)) * 2)


def test_process_pool_runs_a_pipeline_from_a_file(client: Client, flow_file: Path) -> None:
    pipe = load_object(f"{flow_file}:flow")
    run = pipe.run(n=4, client=client, executor="processes:2")
    _check_run(client, run, 4)
    _fail_then_resume(client, flow_file, "processes:2")


def test_ray_cluster_runs_fails_and_resumes(client: Client, flow_file: Path,
                                            ray_address: str) -> None:
    from loopml.pipelines.executors import ray as ray_module

    pipe = load_object(f"{flow_file}:flow")
    try:
        run = pipe.run(n=4, client=client, executor=ray_address)
        assert run.executor == ray_address
        _check_run(client, run, 4)
        _fail_then_resume(client, flow_file, ray_address)
    finally:  # loopml keeps the connection for later runs; this test is the last one here
        ray_module._disconnect_at_exit()
