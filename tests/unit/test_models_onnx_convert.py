"""ONNX conversion: accepted when the ONNX model predicts like the original, refused (and
nothing written) when it does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidArgument
from loopml.models import PythonModel, convert_to_onnx, load_model, read_manifest, save_model

pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    return features, target


def _scaled_logistic() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))


@pytest.fixture
def sklearn_package(cancer, tmp_path: Path) -> Path:
    features, target = cancer
    model = _scaled_logistic().fit(features[:400], target[:400])
    save_model(model, tmp_path / "sk", input_example=features.head(5))
    return tmp_path / "sk"


def test_sklearn_conversion_is_accepted(sklearn_package: Path, cancer, tmp_path: Path) -> None:
    features, _ = cancer
    held_out = features[400:]
    report = convert_to_onnx(sklearn_package, tmp_path / "onnx", sample=held_out)
    assert report.source_flavor == "sklearn"
    assert report.exporter.startswith("skl2onnx ")
    assert report.rows_compared == 5 + len(held_out)
    assert [o.name for o in report.outputs] == ["predict", "predict_proba"]
    assert report.max_abs_diff <= 1e-4
    converted = load_model(tmp_path / "onnx")
    original = load_model(sklearn_package)
    assert converted.flavor == "onnx"
    np.testing.assert_array_equal(converted.predict(held_out), original.predict(held_out))
    np.testing.assert_allclose(converted.predict_proba(held_out),
                               original.predict_proba(held_out), atol=1e-4)
    metadata = read_manifest(tmp_path / "onnx").metadata["converted_from"]
    assert metadata["flavor"] == "sklearn"
    assert set(metadata["max_abs_diff"]) == {"predict", "predict_proba"}


def test_a_tiny_tolerance_refuses(sklearn_package: Path, cancer, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"'predict_proba' differs by up to .* more than "
                       r"the tolerance 1e-12.*nothing was written"):
        convert_to_onnx(sklearn_package, tmp_path / "onnx", sample=cancer[0][400:],
                        tolerance=1e-12)
    assert not (tmp_path / "onnx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["sk"]


def test_a_broken_conversion_refuses(sklearn_package: Path, cancer, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An exporter that produces a different model (here: one fitted on flipped labels)."""
    import loopml.models.onnx_convert as onnx_convert

    features, target = cancer
    impostor = _scaled_logistic().fit(features, 1 - target)
    real_export = onnx_convert._export_sklearn
    monkeypatch.setattr(onnx_convert, "_export_sklearn",
                        lambda model, schema: real_export(impostor, schema))
    with pytest.raises(InvalidArgument, match=r"'predict' differs by up to 1"):
        convert_to_onnx(sklearn_package, tmp_path / "onnx", tolerance=1e-3)
    assert not (tmp_path / "onnx").exists()


def test_only_sklearn_and_pytorch_convert(tmp_path: Path) -> None:
    save_model(Echo(), tmp_path / "pyfunc", input_example=np.zeros((2, 2)))
    with pytest.raises(InvalidArgument, match="converts sklearn and pytorch packages; the "
                       "package at .* is python_function"):
        convert_to_onnx(tmp_path / "pyfunc", tmp_path / "onnx")


def test_a_package_without_example_needs_a_sample(cancer, tmp_path: Path) -> None:
    features, target = cancer
    save_model(_scaled_logistic().fit(features, target), tmp_path / "sk")
    with pytest.raises(InvalidArgument, match="no input example; pass sample="):
        convert_to_onnx(tmp_path / "sk", tmp_path / "onnx")


TORCH_NET = """
import torch


class TorchNet(torch.nn.Module):
    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Tanh(),
                                          torch.nn.Linear(hidden, 3))

    def forward(self, x):
        return self.layers(x)
"""


@pytest.mark.slow
def test_pytorch_conversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    (tmp_path / "loopml_test_torchnet.py").write_text(TORCH_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    from loopml_test_torchnet import TorchNet

    torch.manual_seed(0)
    module = TorchNet(hidden=16).eval()
    rng = np.random.default_rng(0)
    example = rng.normal(size=(5, 4)).astype("float32")
    save_model(module, tmp_path / "torch", input_example=example,
               options={"init_kwargs": {"hidden": 16}})
    sample = rng.normal(size=(64, 4)).astype("float32")
    report = convert_to_onnx(tmp_path / "torch", tmp_path / "onnx", sample=sample)
    assert report.exporter.startswith("torch.onnx.export(dynamo=True)")
    assert report.rows_compared == 69
    assert report.max_abs_diff <= 1e-4
    with torch.no_grad():
        want = module(torch.as_tensor(sample)).numpy()
    np.testing.assert_allclose(load_model(tmp_path / "onnx").predict(sample), want, atol=1e-4)


class Echo(PythonModel):
    def predict(self, context: object, model_input: np.ndarray) -> np.ndarray:
        return model_input
