"""Converting a scikit-learn or PyTorch package to ONNX, refused when predictions change.

::

    report = convert_to_onnx("out/churn", "out/churn-onnx", sample=X_test[:200])
    report.outputs  # (OutputDifference('predict', 0.0), OutputDifference('predict_proba', 3e-7))

Both packages are asked to predict the stored input example plus ``sample`` (rows held out
from training, ideally); when any output differs by more than ``tolerance`` the conversion
is refused with :class:`~loopml.errors.InvalidArgument` and nothing is written. scikit-learn
goes through skl2onnx; PyTorch through ``torch.onnx.export(dynamo=True)`` (the torch.export
based exporter, the default since torch 2.9; it needs onnxscript and runs offline). The
result is an ``onnx`` flavor package whose metadata records the source and the differences.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.errors import InvalidArgument, MissingDependency
from loopml.models.package import LoadedModel, load_model, new_package_dir, save_model
from loopml.models.requirements import installed_version
from loopml.models.signature import Schema, dtype_kind, infer_schema

__all__ = ["ConversionReport", "OutputDifference", "convert_to_onnx"]

CONVERTIBLE = ("sklearn", "pytorch")


@dataclass(frozen=True)
class OutputDifference:
    """The largest absolute difference between the two models on one output."""

    name: str
    max_abs_diff: float


@dataclass(frozen=True)
class ConversionReport:
    """What was converted, how, and how closely the ONNX model reproduces the original."""

    source: Path
    path: Path
    source_flavor: str
    exporter: str
    tolerance: float
    rows_compared: int
    outputs: tuple[OutputDifference, ...]
    seconds: float

    @property
    def max_abs_diff(self) -> float:
        return max((o.max_abs_diff for o in self.outputs), default=0.0)


def _np() -> Any:
    import numpy

    return numpy


def _library(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency("convert_to_onnx", package=package, extra="onnx") from exc


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' own deprecation chatter and 'torchvision not installed' logs."""
    noisy = logging.getLogger("torch.onnx")
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        noisy.setLevel(level)


def _sklearn_types(schema: Schema) -> list[tuple[str, Any]]:
    types = _library("skl2onnx.common.data_types", "skl2onnx")
    by_kind = {"float": types.FloatTensorType, "int": types.Int64TensorType,
               "uint": types.Int64TensorType, "bool": types.BooleanTensorType,
               "string": types.StringTensorType}
    if schema.is_columns:
        kinds = [dtype_kind(c.dtype) for c in schema.columns]
        if set(kinds) <= {"float", "int", "uint", "bool"}:
            return [("input", types.FloatTensorType([None, len(kinds)]))]
        unknown = [c.name for c, k in zip(schema.columns, kinds, strict=True) if k not in by_kind]
        if unknown:
            raise InvalidArgument(f"columns {', '.join(unknown)} have types ONNX cannot take; "
                                  "convert them to numbers or strings before training")
        return [(c.name, by_kind[k]([None, 1]))
                for c, k in zip(schema.columns, kinds, strict=True)]
    spec = schema.tensors[0]
    tensor_type = by_kind.get(dtype_kind(spec.dtype), types.FloatTensorType)
    return [("input", tensor_type([None, *spec.shape[1:]]))]


def _export_sklearn(model: Any, schema: Schema) -> tuple[Any, str]:
    skl2onnx = _library("skl2onnx", "skl2onnx")
    is_classifier = callable(getattr(model, "predict_proba", None))
    try:
        with _quiet_exporter():
            proto = skl2onnx.to_onnx(model, initial_types=_sklearn_types(schema),
                                     options={"zipmap": False} if is_classifier else None)
    except InvalidArgument:
        raise
    except Exception as exc:  # skl2onnx raises RuntimeError, MissingShapeCalculator, …
        raise InvalidArgument(f"skl2onnx cannot convert this {type(model).__name__}: {exc}"
                              ) from exc
    return proto, f"skl2onnx {installed_version('skl2onnx')}"


def _export_torch(module: Any, example: Any) -> tuple[Any, str]:
    torch = _library("torch", "torch")
    _library("onnxscript", "onnxscript")
    first = next(iter(module.parameters()), None)
    tensor = torch.as_tensor(_np().array(example))  # a writable copy
    if first is not None and tensor.is_floating_point():
        tensor = tensor.to(first.dtype)
    dynamic = ({0: torch.export.Dim.DYNAMIC},)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(module, (tensor,), dynamo=True, input_names=["input"],
                                        dynamic_shapes=dynamic, external_data=False,
                                        verbose=False)
    except Exception as exc:  # torch.export raises many kinds of errors on unsupported code
        raise InvalidArgument(f"torch.onnx.export cannot export this {type(module).__name__}: "
                              f"{type(exc).__name__}: {exc}") from exc
    exporter = (f"torch.onnx.export(dynamo=True) torch {torch.__version__}, "
                f"onnxscript {installed_version('onnxscript')}")
    return program.model_proto, exporter


def _rows(data: Any) -> int:
    return len(data) if hasattr(data, "__len__") else 1


def _outputs(method: str, predictions: Any) -> dict[str, Any]:
    """One entry per output: ``predict``, or ``predict[name]`` for several named outputs."""
    if isinstance(predictions, dict):
        return {f"{method}[{k}]": v for k, v in predictions.items()}
    if isinstance(predictions, tuple):
        return {f"{method}[{i}]": v for i, v in enumerate(predictions)}
    return {method: predictions}


def _difference(expected: Any, got: Any) -> float:
    np = _np()
    left, right = np.asarray(expected), np.asarray(got)
    if left.shape != right.shape:
        return float("inf")
    if left.size == 0:
        return 0.0
    if left.dtype.kind in "biuf" and right.dtype.kind in "biuf":
        return float(np.max(np.abs(left.astype("float64") - right.astype("float64"))))
    return 0.0 if bool(np.all(left == right)) else float("inf")


def _compare(source: LoadedModel, converted: LoadedModel, batches: list[Any]
             ) -> tuple[OutputDifference, ...]:
    methods = ["predict"]
    if source.has_predict_proba and converted.has_predict_proba:
        methods.append("predict_proba")
    worst: dict[str, float] = {}
    for batch in batches:
        for method in methods:
            want = _outputs(method, getattr(source, method)(batch))
            got = _outputs(method, getattr(converted, method)(batch))
            for name in want.keys() | got.keys():
                diff = (_difference(want[name], got[name]) if name in want and name in got
                        else float("inf"))
                worst[name] = max(worst.get(name, 0.0), diff)
    return tuple(OutputDifference(name, worst[name]) for name in sorted(worst))


def _export(source: LoadedModel, schema: Schema, example: Any) -> tuple[Any, str]:
    if source.flavor == "sklearn":
        return _export_sklearn(source.raw, schema)
    from loopml.models.inputs import prepare_input

    return _export_torch(source.raw, prepare_input(example, schema))


def convert_to_onnx(package_path: str | Path, out_path: str | Path, *, sample: Any = None,
                    tolerance: float = 1e-4, trusted: bool = False) -> ConversionReport:
    """Write an ONNX package at ``out_path`` that predicts like the package at ``package_path``.

    ``sample``: more input rows to compare on (the stored input example is always used).
    Refused (:class:`InvalidArgument`, nothing written) when an output differs by more than
    ``tolerance``, or when the flavor has no converter (only sklearn and pytorch have one).
    """
    started = time.perf_counter()
    if tolerance < 0:
        raise InvalidArgument(f"tolerance must be >= 0; got {tolerance}")
    source = load_model(package_path, trusted=trusted)
    if source.flavor not in CONVERTIBLE:
        raise InvalidArgument(f"convert_to_onnx converts {' and '.join(CONVERTIBLE)} packages; "
                              f"the package at {package_path} is {source.flavor}")
    example = source.input_example()
    if example is None and sample is None:
        raise InvalidArgument(f"the package at {package_path} has no input example; pass "
                              "sample= (input rows) so the conversion can be checked")
    template = example if example is not None else sample
    schema = source.signature.inputs if source.signature else infer_schema(template)
    proto, exporter = _export(source, schema, template)
    target = new_package_dir(out_path)
    staging = target.parent / f".{target.name}.converting-{uuid.uuid4().hex[:8]}"
    try:
        package = save_model(proto, staging, flavor="onnx", input_example=example,
                             signature=None if example is not None else source.signature)
        converted = load_model(staging)
        batches = [b for b in (example, sample) if b is not None]
        outputs = _compare(source, converted, batches)
        worst = max(outputs, key=lambda o: o.max_abs_diff)
        if worst.max_abs_diff > tolerance:
            raise InvalidArgument(
                f"the ONNX conversion changes predictions: '{worst.name}' differs by up to "
                f"{worst.max_abs_diff:.3g}, more than the tolerance {tolerance:g} (over "
                f"{sum(_rows(b) for b in batches)} rows); nothing was written. Pass a larger "
                "tolerance= if the difference is acceptable")
        package.update_metadata({"converted_from": {
            "path": str(Path(package_path).resolve()), "flavor": source.flavor,
            "exporter": exporter, "tolerance": tolerance,
            "max_abs_diff": {o.name: o.max_abs_diff for o in outputs}}})
        if target.is_dir():
            target.rmdir()
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ConversionReport(Path(package_path), target, source.flavor, exporter, tolerance,
                            sum(_rows(b) for b in batches), outputs,
                            time.perf_counter() - started)
