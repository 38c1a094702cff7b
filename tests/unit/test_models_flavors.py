"""The flavor conformance suite: every flavor obeys one contract (like sklearn's
``estimator_checks``). A flavor added to the table without a case here fails
``test_every_flavor_has_a_case``.

Contract: the flavor detects its models; save → load → predict equals the original model's
predictions (and predict_proba where the flavor has it); the signature is inferred from the
input example; the manifest records flavor, versions, time, requirements and metadata; the
input example comes back as it was given; ``raw`` is the library's own object.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidArgument
from loopml.models import (
    detect_flavor,
    get_flavor,
    infer_signature,
    known_flavors,
    load_model,
    save_model,
)

TORCH_MODULE = '''
import torch


class TinyMLP(torch.nn.Module):
    def __init__(self, n_in: int = 4, hidden: int = 8, n_out: int = 2) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, n_out))

    def forward(self, x):
        return self.net(x)
'''

PYFUNC_MODULE = '''
import json
from pathlib import Path

import numpy as np


class LinearScorer:
    """y = x @ w + b, with w and b read from a JSON artifact."""

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = threshold

    def load_context(self, context):
        weights = json.loads(Path(context.artifacts["weights"]).read_text())
        self.w = np.asarray(weights["w"])
        self.b = float(weights["b"]) + float(context.model_config.get("shift", 0.0))

    def predict(self, context, model_input):
        scores = np.asarray(model_input, dtype="float64") @ self.w + self.b
        return (scores > self.threshold).astype("int64")

    def predict_proba(self, context, model_input):
        scores = np.asarray(model_input, dtype="float64") @ self.w + self.b
        p = 1.0 / (1.0 + np.exp(-scores))
        return np.column_stack([1.0 - p, p])
'''


@pytest.fixture(scope="session")
def user_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """User code (a torch module class, a pyfunc class) in an importable module of its own."""
    root = tmp_path_factory.mktemp("user_code")
    (root / "loopml_test_torch_models.py").write_text(textwrap.dedent(TORCH_MODULE))
    (root / "loopml_test_pyfunc_models.py").write_text(textwrap.dedent(PYFUNC_MODULE))
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


def _data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 4)), columns=["a", "b", "c", "d"])
    target = (frame["a"] + 0.5 * frame["b"] - frame["c"] > 0).astype("int64").to_numpy()
    return frame, target


@dataclass
class Case:
    """A model of one flavor, the example it is saved with and the truth to compare to."""

    flavor: str
    model: Any
    example: Any
    data: Any
    predict: Callable[[Any], Any]
    predict_proba: Callable[[Any], Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    trusted: bool = False


def _sklearn() -> Case:
    from sklearn.linear_model import LogisticRegression

    frame, target = _data()
    model = LogisticRegression().fit(frame, target)
    return Case("sklearn", model, frame.head(5), frame, model.predict, model.predict_proba)


def _sklearn_array() -> Case:
    from sklearn.ensemble import RandomForestRegressor

    frame, target = _data()
    array = frame.to_numpy()
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(array, target)
    # skops does not trust sklearn.tree._tree.Tree: tree ensembles load with trusted=True
    return Case("sklearn", model, array[:5], array, model.predict, trusted=True)


def _torch_case(kind: str) -> Case:
    import torch
    from loopml_test_torch_models import TinyMLP

    torch.manual_seed(0)
    module = TinyMLP().eval()
    array = _data()[0].to_numpy(dtype="float32").copy()

    def expected(x: Any) -> Any:
        with torch.no_grad():
            return module(torch.as_tensor(np.asarray(x, dtype="float32"))).numpy()

    model: Any = module
    if kind == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.script(module)
    elif kind == "exported":
        batch = torch.export.Dim("batch")
        model = torch.export.export(module, (torch.as_tensor(array[:5]),),
                                    dynamic_shapes=({0: batch},))
    # TorchScript and torch.export archives are unpickled by torch: they need trusted=True
    return Case("pytorch", model, array[:5], array, expected, trusted=kind != "state_dict")


def _onnx() -> Case:
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    frame, target = _data()
    array = frame.to_numpy(dtype="float32")
    proto = to_onnx(LogisticRegression().fit(array, target),
                    initial_types=[("input", FloatTensorType([None, 4]))],
                    options={"zipmap": False})
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return Case("onnx", proto, array[:5], array,
                lambda x: session.run(None, {"input": x})[0],
                lambda x: session.run(None, {"input": x})[1])


def _xgboost() -> Case:
    xgb = pytest.importorskip("xgboost")
    frame, target = _data()
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(frame, target)
    return Case("xgboost", model, frame.head(5), frame, model.predict, model.predict_proba)


def _lightgbm() -> Case:
    lgb = pytest.importorskip("lightgbm")
    frame, target = _data()
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(frame, target)
    return Case("lightgbm", model, frame.head(5), frame, model.predict, model.predict_proba)


def _pyfunc(tmp_path: Path) -> Case:
    from loopml_test_pyfunc_models import LinearScorer

    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"w": [1.0, 0.5, -1.0, 0.0], "b": 0.1}))
    array = _data()[0].to_numpy()
    model = LinearScorer(threshold=0.2)
    w, b = np.array([1.0, 0.5, -1.0, 0.0]), 0.1 + 0.05

    def scores(x: Any) -> Any:
        return np.asarray(x) @ w + b

    return Case("python_function", model, array[:5], array,
                lambda x: (scores(x) > 0.2).astype("int64"),
                lambda x: np.column_stack([1 - 1 / (1 + np.exp(-scores(x))),
                                           1 / (1 + np.exp(-scores(x)))]),
                options={"artifacts": {"weights": str(weights)},
                         "init_kwargs": {"threshold": 0.2}, "model_config": {"shift": 0.05}})


CASES: dict[str, Callable[[Path], Case]] = {
    "sklearn-dataframe": lambda _: _sklearn(),
    "sklearn-array": lambda _: _sklearn_array(),
    "pytorch-state_dict": lambda _: _torch_case("state_dict"),
    "pytorch-torchscript": lambda _: _torch_case("torchscript"),
    "pytorch-exported": lambda _: _torch_case("exported"),
    "onnx": lambda _: _onnx(),
    "xgboost": lambda _: _xgboost(),
    "lightgbm": lambda _: _lightgbm(),
    "python_function": _pyfunc,
}
CASE_FLAVORS = {"sklearn-dataframe": "sklearn", "sklearn-array": "sklearn",
                "pytorch-state_dict": "pytorch", "pytorch-torchscript": "pytorch",
                "pytorch-exported": "pytorch", "onnx": "onnx", "xgboost": "xgboost",
                "lightgbm": "lightgbm", "python_function": "python_function"}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, user_modules: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Case:
    return CASES[request.param](tmp_path_factory.mktemp("case"))


@pytest.fixture
def saved(case: Case, tmp_path: Path) -> tuple[Case, Path]:
    save_model(case.model, tmp_path / "pkg", input_example=case.example, options=case.options,
               trusted=case.trusted, metadata={"metrics": {"auc": 0.9}, "run_id": "r1"})
    return case, tmp_path / "pkg"


def _assert_close(got: Any, want: Any) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    if want.dtype.kind in "biuf":
        np.testing.assert_allclose(got.astype("float64"), want.astype("float64"), rtol=1e-5,
                                   atol=1e-6)
    else:
        assert (got == want).all()


def test_every_flavor_has_a_case() -> None:
    assert set(CASE_FLAVORS.values()) == set(known_flavors())
    assert set(CASE_FLAVORS) == set(CASES)


def test_detects_its_models(case: Case) -> None:
    assert detect_flavor(case.model).name == case.flavor
    assert get_flavor(case.flavor).detect(case.model)


def test_round_trip_predicts_like_the_original(saved: tuple[Case, Path]) -> None:
    case, path = saved
    loaded = load_model(path, trusted=case.trusted)
    assert loaded.flavor == case.flavor
    _assert_close(loaded.predict(case.data), case.predict(case.data))


def test_predict_proba_where_the_flavor_has_it(saved: tuple[Case, Path]) -> None:
    case, path = saved
    loaded = load_model(path, trusted=case.trusted)
    if case.predict_proba is None:
        assert not loaded.has_predict_proba
        with pytest.raises(InvalidArgument, match="no predict_proba"):
            loaded.predict_proba(case.data)
    else:
        assert loaded.has_predict_proba
        _assert_close(loaded.predict_proba(case.data), case.predict_proba(case.data))


def test_signature_is_inferred_from_the_example(saved: tuple[Case, Path]) -> None:
    case, path = saved
    signature = load_model(path, trusted=case.trusted).signature
    assert signature is not None
    assert signature.inputs == infer_signature(case.example).inputs
    assert signature.outputs is not None
    expected_output = infer_signature(case.example, case.predict(case.example)).outputs
    assert signature.outputs == expected_output


def test_manifest_records_versions_requirements_and_metadata(saved: tuple[Case, Path]) -> None:
    case, path = saved
    manifest = load_model(path, trusted=case.trusted).manifest
    assert manifest.flavor == case.flavor
    assert manifest.python_version == ".".join(map(str, sys.version_info[:3]))
    assert manifest.loopml_version == importlib.metadata.version("loopml")
    assert abs((datetime.now(UTC) - manifest.created).total_seconds()) < 600
    assert manifest.metadata == {"metrics": {"auc": 0.9}, "run_id": "r1"}
    pins = dict(r.split("==") for r in manifest.requirements)
    for package in get_flavor(case.flavor).requirements(manifest.flavor_data):
        assert pins[package] == importlib.metadata.version(package)
    assert pins["numpy"] == np.__version__


def test_input_example_comes_back_as_given(saved: tuple[Case, Path]) -> None:
    case, path = saved
    example = load_model(path, trusted=case.trusted).input_example()
    if isinstance(case.example, pd.DataFrame):
        pd.testing.assert_frame_equal(example, case.example.reset_index(drop=True))
    else:
        np.testing.assert_array_equal(example, case.example)


def test_accepts_records_lists_and_arrays(saved: tuple[Case, Path]) -> None:
    case, path = saved
    loaded = load_model(path, trusted=case.trusted)
    want = case.predict(case.data[:7])
    if isinstance(case.example, pd.DataFrame):
        _assert_close(loaded.predict(case.data.head(7).to_dict(orient="records")), want)
        _assert_close(loaded.predict(case.data.head(7).to_numpy()), want)
    else:
        _assert_close(loaded.predict(np.asarray(case.data[:7]).tolist()), want)


def test_raw_is_the_native_model(saved: tuple[Case, Path]) -> None:
    case, path = saved
    raw = load_model(path, trusted=case.trusted).raw
    if case.flavor in {"sklearn", "xgboost"}:
        assert type(raw) is type(case.model)
    elif case.flavor == "onnx":
        assert type(raw).__name__ == "InferenceSession"
    elif case.flavor == "lightgbm":
        assert type(raw).__name__ == "Booster"
    elif case.flavor == "python_function":
        assert type(raw) is type(case.model)
    else:
        import torch

        assert isinstance(raw, torch.nn.Module)
