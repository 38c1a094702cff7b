"""Loading runs no code the caller did not vouch for: pickle and untrusted types need
``trusted=True``, and import paths in a manifest must name classes of the expected kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from loopml.errors import InvalidArgument, PermissionDenied
from loopml.models import MANIFEST_NAME, load_model, save_model


def double(values: np.ndarray) -> np.ndarray:
    """A module-level function: skops stores it by name, but does not trust it."""
    return values * 2


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(50, 3))
    return features, (features[:, 0] > 0).astype("int64")


def _pipeline(func: object, data: tuple[np.ndarray, np.ndarray]) -> object:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    return make_pipeline(FunctionTransformer(func), LogisticRegression()).fit(*data)


def test_untrusted_types_need_trusted_at_load(data, tmp_path: Path) -> None:
    model = _pipeline(double, data)
    package = save_model(model, tmp_path / "pkg", input_example=data[0][:3])
    assert package.manifest.flavor_data["serializer"] == "skops"
    untrusted = package.manifest.flavor_data["untrusted_types"]
    assert any("double" in t for t in untrusted)
    with pytest.raises(PermissionDenied, match=r"skops does not trust.*double.*trusted=True"):
        load_model(tmp_path / "pkg")
    loaded = load_model(tmp_path / "pkg", trusted=True)
    np.testing.assert_array_equal(loaded.predict(data[0]), model.predict(data[0]))


def test_lambdas_and_main_functions_are_refused(data, tmp_path: Path) -> None:
    model = _pipeline(lambda values: values * 2, data)
    with pytest.raises(InvalidArgument, match=r"<lambda>, which cannot be imported.*module level"):
        save_model(model, tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


def test_a_model_skops_cannot_store_needs_trusted_to_fall_back_to_pickle(
        data, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(*data)
    model.note_ = complex(1, 2)  # skops has no loader for complex numbers; pickle has
    with pytest.raises(InvalidArgument, match="skops cannot store.*trusted=True.*pickle"):
        save_model(model, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    package = save_model(model, tmp_path / "pkg", trusted=True)
    assert package.manifest.flavor_data["serializer"] == "pickle"
    assert "skops" not in " ".join(package.manifest.requirements)


def test_loading_a_pickle_without_trusted_is_refused(data, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(*data)
    save_model(model, tmp_path / "pkg", options={"serializer": "pickle"}, trusted=True)
    with pytest.raises(PermissionDenied) as refused:
        load_model(tmp_path / "pkg")
    message = str(refused.value)
    assert str(tmp_path / "pkg") in message
    assert "runs arbitrary code" in message
    assert "trusted=True" in message
    assert refused.value.http_status == 403
    loaded = load_model(tmp_path / "pkg", trusted=True)
    np.testing.assert_array_equal(loaded.predict(data[0]), model.predict(data[0]))


def test_choosing_pickle_needs_trusted_at_save(data, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(InvalidArgument, match="serializer 'pickle'.*trusted=True"):
        save_model(LogisticRegression().fit(*data), tmp_path / "pkg",
                   options={"serializer": "pickle"})


def test_a_tampered_import_path_is_refused_before_anything_runs(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    save_model(torch.nn.Linear(3, 1), tmp_path / "pkg",
               options={"module": "torch.nn:Linear",
                        "init_kwargs": {"in_features": 3, "out_features": 1}})
    manifest_path = tmp_path / "pkg" / MANIFEST_NAME
    manifest = yaml.safe_load(manifest_path.read_text())
    manifest["flavor_data"]["module"] = "subprocess:Popen"
    manifest["flavor_data"]["init_kwargs"] = {"args": ["touch", str(tmp_path / "pwned")]}
    manifest_path.write_text(yaml.safe_dump(manifest))
    with pytest.raises(InvalidArgument, match="subprocess:Popen is not a subclass of torch"):
        load_model(tmp_path / "pkg")
    assert not (tmp_path / "pwned").exists()


def test_torchscript_needs_trusted_to_save_and_to_load(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    with pytest.warns(DeprecationWarning):
        scripted = torch.jit.script(torch.nn.Linear(3, 1))
    with pytest.raises(InvalidArgument, match="unpickled when loaded.*trusted=True"):
        save_model(scripted, tmp_path / "refused")
    save_model(scripted, tmp_path / "pkg", trusted=True)
    with pytest.raises(PermissionDenied, match="torchscript archive.*trusted=True"):
        load_model(tmp_path / "pkg")
    loaded = load_model(tmp_path / "pkg", trusted=True)
    assert loaded.predict(np.ones((2, 3), "float32")).shape == (2, 1)
