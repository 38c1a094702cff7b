"""One model version made ready to serve: loaded, its validator compiled, warmed.

:func:`load_version` checks the registered package out of the blob store (once per content),
loads it with its flavor, compiles the signature into a :class:`~loopml.serving.validation.
Validator` and predicts the input example (or a synthetic row) once, so the first request
pays no lazy initialisation. :meth:`ServedVersion.run` predicts a micro-batch and splits the
output back into one result per request; a batch that fails is retried request by request,
so one bad input fails alone.

Two shortcuts for scikit-learn, whose own input checks cost more than the model (about
1 ms to check a DataFrame's column names with pandas 3, 60 µs to scan for NaN), repeat what
the server has checked already. An estimator fitted on a DataFrame whose columns are the
signature's, in order, and of one numeric dtype forgets its fitted names in the served copy
and is given a 2-D array, once warming has shown both ways predict the same; and where the
validator lets only finite numbers through, predictions run with ``assume_finite``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.errors import InvalidArgument, ModelFailed, ModelRejectedInput
from loopml.models.flavor import Flavor, get_flavor
from loopml.models.manifest import ModelManifest, read_manifest
from loopml.models.requirements import warn_on_mismatch
from loopml.serving.validation import Checked, Validator, compile_validator

__all__ = ["METHODS", "ServedVersion", "example_body", "load_version", "split_output"]

METHODS = ("predict", "predict_proba")
logger = logging.getLogger("loopml.serving")


@dataclass
class ServedVersion:
    """A loaded, warmed model version; ``run`` is called from the predict thread."""

    name: str
    version: int
    tree: str
    manifest: ModelManifest
    flavor: Flavor
    model: object
    validator: Validator
    has_proba: bool
    #: the input example as a request body (None when the package has none)
    example: Any = None
    array_input: bool = False
    #: entered around each call of the model (scikit-learn's assume_finite, or nothing)
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    warm_ms: float = 0.0
    #: the micro-batcher of each method, set by the server when it takes this version in
    batchers: dict[str, Any] = field(default_factory=dict, repr=False)
    _calls: dict[str, Callable[[object, Any], Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._calls = {"predict": self.flavor.predict, "predict_proba": self.flavor.predict_proba}

    @property
    def label(self) -> str:
        return str(self.version)

    def assemble(self, items: Sequence[Checked]) -> Any:
        if self.array_input:
            return self.validator.assemble_array(items)
        return self.validator.assemble(items)

    def run(self, method: str, items: Sequence[Checked]) -> list[Any]:
        """One result per item (predictions, or a :class:`~loopml.errors.ModelFailed`)."""
        call = self._calls[method]
        try:
            with self.context():
                output = call(self.model, self.assemble(items))
        except Exception as exc:
            if len(items) == 1:
                return [self._failure(method, exc)]
            return [self.run(method, [item])[0] for item in items]
        if len(items) == 1:
            return [output]
        parts = split_output(output, [item.rows for item in items])
        if parts is None:
            return [self.run(method, [item])[0] for item in items]
        return parts

    def _failure(self, method: str, exc: Exception) -> ModelFailed:
        logger.warning("%s/%s %s failed on a request: %s: %s", self.name, self.version, method,
                       type(exc).__name__, exc)
        if isinstance(exc, ValueError | TypeError | LookupError):
            return ModelRejectedInput(f"the model could not {method.replace('_', ' ')} this "
                                      f"input ({type(exc).__name__}); check it against the "
                                      "model's signature at /openapi.json")
        return ModelFailed(f"the model failed ({type(exc).__name__}); the server log has the "
                           "details")


def split_output(output: Any, sizes: Sequence[int]) -> list[Any] | None:
    """``output`` cut into consecutive parts of ``sizes`` rows; None when it cannot be."""
    total = sum(sizes)
    bounds = []
    start = 0
    for size in sizes:
        bounds.append((start, start + size))
        start += size
    if isinstance(output, dict):
        if not all(_length(v) == total for v in output.values()):
            return None
        return [{k: v[a:b] for k, v in output.items()} for a, b in bounds]
    if _length(output) != total:
        return None
    if hasattr(output, "iloc"):
        return [output.iloc[a:b] for a, b in bounds]
    if hasattr(output, "tolist") and getattr(output, "dtype", None) is not None \
            and output.dtype.kind in "biuf":
        # plain lists: cheaper to cut and to encode than an array view per request
        values = output.tolist()
        return [values[a:b] for a, b in bounds]
    return [output[a:b] for a, b in bounds]


def _length(value: Any) -> int | None:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else None
    return len(value) if isinstance(value, list | tuple) else None


def example_body(path: Path, manifest: ModelManifest) -> Any:
    """The package's input example as a request body, or None."""
    ref = manifest.input_example
    if ref is None or not (path / ref.path).is_file():
        return None
    if ref.type in {"dataframe", "records"}:
        return json.loads((path / ref.path).read_text())
    import numpy as np

    with open(path / ref.path, "rb") as handle:
        loaded = np.load(handle, allow_pickle=False)
        if ref.type == "tensors":
            return {"inputs": {name: loaded[name].tolist() for name in loaded.files}}
        return {"inputs": loaded.tolist()}


def load_version(path: Path, *, name: str, version: int, tree: str, trusted: bool = False,
                 allow_non_finite: bool = False) -> ServedVersion:
    """The package at ``path`` (version ``version`` of ``name``), loaded and warmed."""
    import time

    started = time.perf_counter()
    manifest = read_manifest(path)
    flavor = get_flavor(manifest.flavor)
    warn_on_mismatch(manifest.requirements, manifest.python_version,
                     model=f"{name}/{version}", stacklevel=2)
    model = flavor.load(path, manifest.flavor_data, trusted=trusted, device=None)
    example = example_body(path, manifest)
    signature = manifest.signature
    validator = compile_validator(signature.inputs if signature else None, example=example,
                                  allow_non_finite=allow_non_finite)
    served = ServedVersion(name=name, version=version, tree=tree, manifest=manifest,
                           flavor=flavor, model=model, validator=validator,
                           has_proba=flavor.has_predict_proba(model), example=example)
    _warm(served, example)
    served.warm_ms = (time.perf_counter() - started) * 1000
    return served


def _warm(served: ServedVersion, example: Any) -> None:
    """Predict once (the example, else a synthetic row); choose array input if it agrees."""
    validator = served.validator
    try:
        item = validator.check(example) if example is not None else validator.synthetic()
    except InvalidArgument:  # an example the served checks refuse: warm with zeros
        item = validator.synthetic()
    reference = served.run("predict", [item])[0]
    if isinstance(reference, ModelFailed):
        raise reference
    if served.has_proba:
        served.run("predict_proba", [item])
    if served.flavor.name != "sklearn":
        return
    if validator.finite:
        from functools import partial

        from sklearn import config_context

        served.context = partial(config_context, assume_finite=True)
    if validator.array_dtype is None:
        return
    restore = _forget_feature_names(served.model, validator.names)
    if restore is None:
        return
    try:
        with served.context():
            probe = served.flavor.predict(served.model, validator.assemble_array([item]))
    except Exception:  # e.g. a ColumnTransformer that selects columns by name
        probe = None
    if _same(reference, probe):
        served.array_input = True
    else:
        restore()


def _forget_feature_names(model: object, names: Sequence[str]) -> Callable[[], None] | None:
    """Remove ``feature_names_in_`` (equal to ``names``) from the estimator that holds it."""
    owner: Any = model
    while type(owner).__name__ == "Pipeline" and getattr(owner, "steps", None):
        owner = owner.steps[0][1]
    fitted = vars(owner).get("feature_names_in_") if hasattr(owner, "__dict__") else None
    if fitted is None or [str(n) for n in fitted] != list(names):
        return None
    del owner.feature_names_in_

    def restore() -> None:
        owner.feature_names_in_ = fitted

    return restore


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if a is None or b is None or isinstance(a, BaseException) or isinstance(b, BaseException):
        return False
    try:
        left, right = np.asarray(a), np.asarray(b)
        if left.shape != right.shape:
            return False
        if left.dtype.kind in "fc":
            return bool(np.allclose(left, right, equal_nan=True))
        return bool(np.array_equal(left, right))
    except (TypeError, ValueError):
        return False
