"""``loopml.register`` of a PyTorch module from a pipeline: a module whose class cannot be
imported again (defined in ``__main__`` or a function, as in a script) is kept as TorchScript,
also when it comes back from the step cache, and ``input_example`` gives the package a
signature (which ``loopml serve`` needs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import loopml
from loopml.client import Client
from loopml.errors import PermissionDenied
from loopml.pipelines import StepStatus, pipeline, register, step


@pytest.fixture
def client(tmp_path: Path) -> Client:
    client = Client(loopml.load_settings(home=tmp_path / ".loopml", progress=False))
    yield client
    client.close()


def test_register_keeps_a_script_defined_module_as_torchscript(client: Client) -> None:
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):  # a class in a function: not importable by path
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # TorchScript reads these
            return self.linear(x)

    @step
    def fit() -> Any:
        torch.manual_seed(0)
        return Tiny()

    @step
    def rows() -> np.ndarray:
        return np.ones((2, 3), dtype=np.float32)

    @pipeline
    def flow() -> None:
        register(fit(), name="tiny", alias="production", input_example=rows())

    first = flow.run(client=client)
    again = flow.run(client=client)  # the module comes back from the cache as TorchScript
    assert again.step("fit").status is StepStatus.CACHED
    assert again.step("register").status is StepStatus.COMPLETED
    sample = np.arange(6, dtype=np.float32).reshape(2, 3)
    torch.manual_seed(0)
    expected = Tiny()(torch.from_numpy(sample)).detach().numpy()
    for run, version in ((first, 1), (again, 2)):
        record = client.get_model_version(f"tiny/{version}")
        assert record.run_id == run.run_id
        with pytest.raises(PermissionDenied, match="trusted=True"):
            client.load_model(f"models:/tiny/{version}")
        loaded = client.load_model(f"models:/tiny/{version}", trusted=True)
        assert loaded.manifest.flavor_data["format"] == "torchscript"
        assert loaded.signature is not None
        assert [tuple(t.shape) for t in loaded.signature.inputs.tensors] == [(-1, 3)]
        np.testing.assert_allclose(loaded.predict(sample), expected, rtol=1e-6)
    assert client.get_model_version("tiny@production").version == 2
