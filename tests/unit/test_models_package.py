"""The package format around the flavors: paths, errors, manifest, requirements, atomicity."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import loopml.models
from loopml.errors import AlreadyExists, CorruptData, InvalidArgument, NotFound
from loopml.models import (
    MANIFEST_NAME,
    ColumnSpec,
    Flavor,
    ModelPackage,
    RequirementsMismatchWarning,
    Schema,
    Signature,
    check_requirements,
    known_flavors,
    load_model,
    read_manifest,
    register_flavor,
    save_model,
)
from loopml.models.requirements import pin_requirements

EXPORTED = [
    "MANIFEST_NAME", "ColumnSpec", "ConversionReport", "ExampleRef", "Flavor", "LoadedModel",
    "Mismatch", "ModelManifest", "ModelPackage", "OutputDifference", "PythonModel",
    "PythonModelContext", "RequirementsMismatchWarning", "Schema", "Signature", "TensorSpec",
    "build_bundle", "check_requirements", "convert_to_onnx", "detect_flavor", "docker_build",
    "get_flavor", "infer_signature", "known_flavors", "load_model", "read_manifest",
    "register_flavor", "save_model",
]


@pytest.fixture(scope="module")
def trained() -> tuple[object, pd.DataFrame]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["age", "income", "tenure"])
    target = (frame["age"] > 0).astype("int64")
    return LogisticRegression().fit(frame, target), frame


def test_exported_members() -> None:
    assert sorted(loopml.models.__all__) == sorted(EXPORTED)


def test_import_is_light() -> None:
    code = ("import sys, loopml.models; heavy = [m for m in ('numpy', 'pandas', 'torch', "
            "'sklearn', 'skops', 'onnx', 'onnxruntime', 'xgboost', 'lightgbm', 'yaml', "
            "'http.server') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_a_path_without_a_package_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=f"no model package at {tmp_path}.*loopml-model.yaml"):
        load_model(tmp_path)
    with pytest.raises(NotFound, match="no such directory"):
        load_model(tmp_path / "missing")


def test_unknown_flavor_lists_the_known_ones(trained, tmp_path: Path) -> None:
    model, _ = trained
    with pytest.raises(InvalidArgument, match="unknown flavor 'keras'; known flavors: "
                       "python_function, xgboost, lightgbm, pytorch, onnx, sklearn"):
        save_model(model, tmp_path / "pkg", flavor="keras")


def test_unknown_flavor_in_a_manifest(trained, tmp_path: Path) -> None:
    model, _ = trained
    save_model(model, tmp_path / "pkg")
    manifest = tmp_path / "pkg" / MANIFEST_NAME
    manifest.write_text(manifest.read_text().replace("flavor: sklearn", "flavor: keras"))
    with pytest.raises(InvalidArgument, match="unknown flavor 'keras'"):
        load_model(tmp_path / "pkg")


def test_a_model_no_flavor_knows_points_to_python_function(tmp_path: Path) -> None:
    class Opaque:
        def predict(self, data: object) -> object:
            return data

    with pytest.raises(InvalidArgument, match="no flavor recognises.*Opaque.*python_function"):
        save_model(Opaque(), tmp_path / "pkg")


def test_an_existing_package_is_not_overwritten(trained, tmp_path: Path) -> None:
    model, _ = trained
    save_model(model, tmp_path / "pkg")
    with pytest.raises(AlreadyExists, match="not an empty directory"):
        save_model(model, tmp_path / "pkg")
    (tmp_path / "empty").mkdir()
    save_model(model, tmp_path / "empty")  # an empty directory is fine
    assert (tmp_path / "empty" / MANIFEST_NAME).is_file()


def test_a_failed_save_leaves_nothing(trained, tmp_path: Path) -> None:
    model, frame = trained
    bad_example = frame.assign(extra=1.0)  # predict fails: the model has 3 features
    with pytest.raises(InvalidArgument, match="failed to predict its input example"):
        save_model(model, tmp_path / "pkg", input_example=bad_example)
    assert list(tmp_path.iterdir()) == []


def test_manifest_is_readable_yaml(trained, tmp_path: Path) -> None:
    model, frame = trained
    package = save_model(model, tmp_path / "pkg", input_example=frame.head(3),
                         metadata={"metrics": {"auc": np.float64(0.93)}, "tags": ("a", "b")})
    data = yaml.safe_load((tmp_path / "pkg" / MANIFEST_NAME).read_text())
    assert data["flavor"] == "sklearn"
    assert data["flavor_data"]["serializer"] == "skops"
    assert data["signature"]["inputs"]["columns"][0] == {"name": "age", "dtype": "float64"}
    assert data["signature"]["outputs"]["tensors"] == [
        {"name": None, "dtype": "int64", "shape": [-1]}]
    assert data["input_example"] == {"path": "input_example.json", "type": "dataframe"}
    assert data["metadata"] == {"metrics": {"auc": 0.93}, "tags": ["a", "b"]}
    assert read_manifest(tmp_path / "pkg") == package.manifest
    assert package.files() == ["input_example.json", MANIFEST_NAME, "model.skops"]


def test_metadata_must_be_json(trained, tmp_path: Path) -> None:
    model, _ = trained
    with pytest.raises(InvalidArgument, match="metadata must hold JSON values"):
        save_model(model, tmp_path / "pkg", metadata={"model": object()})


def test_update_metadata_merges(trained, tmp_path: Path) -> None:
    model, _ = trained
    package = save_model(model, tmp_path / "pkg", metadata={"run_id": "r1"})
    updated = ModelPackage.open(tmp_path / "pkg").update_metadata({"version": 3})
    assert updated.manifest.metadata == {"run_id": "r1", "version": 3}
    assert read_manifest(package.path).metadata == {"run_id": "r1", "version": 3}


def test_corrupt_manifest(trained, tmp_path: Path) -> None:
    model, _ = trained
    save_model(model, tmp_path / "pkg")
    (tmp_path / "pkg" / MANIFEST_NAME).write_text("flavor: sklearn\n")
    with pytest.raises(CorruptData, match="lacks requirements"):
        load_model(tmp_path / "pkg")


def test_a_given_signature_is_kept_and_checked(trained, tmp_path: Path) -> None:
    model, frame = trained
    signature = Signature(Schema(columns=tuple(ColumnSpec(c, "float64") for c in frame.columns)))
    package = save_model(model, tmp_path / "pkg", signature=signature.to_dict(),
                         input_example=frame.head(2))
    assert package.manifest.signature == signature
    with pytest.raises(InvalidArgument, match="missing column 'tenure'"):
        save_model(model, tmp_path / "other", signature=signature,
                   input_example=frame.drop(columns="tenure").head(2))


def test_requirements_are_pinned_from_the_environment(trained, tmp_path: Path) -> None:
    import sklearn
    import skops

    model, _ = trained
    package = save_model(model, tmp_path / "pkg", requirements=["pyyaml", "requests>=2"])
    pins = package.manifest.requirements
    assert f"scikit-learn=={sklearn.__version__}" in pins
    assert f"skops=={skops.__version__}" in pins
    assert f"pyyaml=={yaml.__version__}" in pins
    assert "requests>=2" in pins
    with pytest.raises(InvalidArgument, match="'no-such-package-x' is not installed"):
        pin_requirements([], ["no-such-package-x"])


def test_a_version_mismatch_warns_with_the_exact_versions(trained, tmp_path: Path) -> None:
    import sklearn

    model, frame = trained
    save_model(model, tmp_path / "pkg")
    manifest = tmp_path / "pkg" / MANIFEST_NAME
    text = manifest.read_text().replace(f"scikit-learn=={sklearn.__version__}",
                                        "scikit-learn==0.0.1")
    manifest.write_text(text + "")
    expected = f"scikit-learn: saved with 0.0.1, running {sklearn.__version__}"
    with pytest.warns(RequirementsMismatchWarning, match=expected):
        loaded = load_model(tmp_path / "pkg")
    assert loaded.predict(frame).shape == (60,)


def test_no_warning_in_the_same_environment(trained, tmp_path: Path) -> None:
    model, _ = trained
    save_model(model, tmp_path / "pkg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(tmp_path / "pkg")


def test_check_requirements_lists_missing_packages_and_python() -> None:
    mismatches = check_requirements(["no-such-package-x==1.0", "numpy>=1"], "2.7.18")
    assert [str(m) for m in mismatches] == [
        f"python: saved with 2.7.18, running {sys.version.split()[0]}",
        "no-such-package-x: saved with 1.0, but not installed",
    ]


class Doubler:
    """A model no built-in flavor knows."""

    factor = 2.0


class DoublerFlavor(Flavor):
    name = "doubler"

    def detect(self, model: object) -> bool:
        return isinstance(model, Doubler)

    def save(self, model: object, directory: Path, *, options: Mapping[str, Any],
             trusted: bool) -> dict[str, Any]:
        return {"factor": 2.0}

    def load(self, directory: Path, data: Mapping[str, Any], *, trusted: bool,
             device: str | None) -> object:
        return Doubler()

    def predict(self, model: object, data: Any) -> Any:
        return np.asarray(data) * 2.0


def test_a_registered_flavor_is_detected_and_round_trips(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import loopml.models.flavor as flavor_table

    monkeypatch.setattr(flavor_table, "_FLAVORS", dict(flavor_table._FLAVORS))
    register_flavor("doubler", f"{__name__}:DoublerFlavor")
    assert known_flavors()[-2:] == ["doubler", "sklearn"]
    package = save_model(Doubler(), tmp_path / "pkg", input_example=np.ones((2, 2)))
    assert package.manifest.flavor == "doubler"
    np.testing.assert_array_equal(load_model(tmp_path / "pkg").predict([[1.0, 2.0]]),
                                  [[2.0, 4.0]])


def test_a_flavor_must_implement_the_whole_interface() -> None:
    class Partial(Flavor):
        name = "partial"

        def detect(self, model: object) -> bool:
            return False

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]
