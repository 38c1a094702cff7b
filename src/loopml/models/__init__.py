"""Model packages: a directory with ``loopml-model.yaml``, the model's files, its signature,
an input example and the pinned requirements; saved and loaded the same way for every flavor.

::

    from loopml.models import save_model, load_model

    save_model(clf, "out/churn", input_example=X.head())
    model = load_model("out/churn")
    model.predict(X)

Flavors: sklearn (skops), pytorch, onnx, xgboost, lightgbm, python_function; each is imported
only when a model of its kind is seen. Also :func:`convert_to_onnx` (with a prediction check)
and :func:`build_bundle` (a self-contained serving directory with a Dockerfile).

Errors: :class:`~loopml.errors.NotFound` (no package at a path), :class:`~loopml.errors.
InvalidArgument` (unknown flavor, input that does not fit the signature, conversion that
changes predictions), :class:`~loopml.errors.PermissionDenied` (a package that runs code when
loaded, without ``trusted=True``); warning: :class:`RequirementsMismatchWarning`.
"""

from loopml.models.bundle import build_bundle, docker_build
from loopml.models.example import ExampleRef
from loopml.models.flavor import Flavor, detect_flavor, get_flavor, known_flavors, register_flavor
from loopml.models.flavors.pyfunc import PythonModel, PythonModelContext
from loopml.models.manifest import MANIFEST_NAME, ModelManifest, read_manifest
from loopml.models.onnx_convert import ConversionReport, OutputDifference, convert_to_onnx
from loopml.models.package import LoadedModel, ModelPackage, load_model, save_model
from loopml.models.requirements import Mismatch, RequirementsMismatchWarning, check_requirements
from loopml.models.signature import (
    ColumnSpec,
    Schema,
    Signature,
    TensorSpec,
    infer_signature,
)

__all__ = [
    "MANIFEST_NAME",
    "ColumnSpec",
    "ConversionReport",
    "ExampleRef",
    "Flavor",
    "LoadedModel",
    "Mismatch",
    "ModelManifest",
    "ModelPackage",
    "OutputDifference",
    "PythonModel",
    "PythonModelContext",
    "RequirementsMismatchWarning",
    "Schema",
    "Signature",
    "TensorSpec",
    "build_bundle",
    "check_requirements",
    "convert_to_onnx",
    "detect_flavor",
    "docker_build",
    "get_flavor",
    "infer_signature",
    "known_flavors",
    "load_model",
    "read_manifest",
    "register_flavor",
    "save_model",
]
