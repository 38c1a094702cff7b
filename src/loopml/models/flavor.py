"""The flavor interface: how one kind of model is saved, loaded and asked for predictions.

A flavor is small and stateless; the package format around it (manifest, signature, input
example, requirements) is written once in :mod:`loopml.models.package`. Flavors live in a
table of import paths so that none is imported before it is needed, and none imports its ML
library before a model of its kind is seen: :meth:`Flavor.detect` looks at
``sys.modules`` (a model of a library exists only once that library is imported).

Every flavor passes the same conformance suite (``tests/unit/test_models_flavors.py``).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from loopml._lazy import loaded_module
from loopml.errors import InvalidArgument, MissingDependency

__all__ = ["Flavor", "detect_flavor", "get_flavor", "known_flavors", "loaded_module",
           "register_flavor"]



class Flavor(ABC):
    """Save, load and predict for one kind of model. Subclasses implement the four methods."""

    #: the name written in the manifest (``sklearn``, ``pytorch``, …)
    name: ClassVar[str]
    #: distributions (pip names) the flavor needs to load a model: pinned at save time
    packages: ClassVar[tuple[str, ...]] = ()
    #: the optional-dependency group of loopml that installs them
    extra: ClassVar[str | None] = None

    @abstractmethod
    def detect(self, model: object) -> bool:
        """Whether ``model`` is of this flavor (without importing anything heavy)."""

    @abstractmethod
    def save(self, model: object, directory: Path, *, options: Mapping[str, Any],
             trusted: bool) -> dict[str, Any]:
        """Write the model's files into ``directory``; return the manifest's ``flavor_data``."""

    @abstractmethod
    def load(self, directory: Path, data: Mapping[str, Any], *, trusted: bool,
             device: str | None) -> object:
        """The native model from ``directory`` (``data`` is what :meth:`save` returned)."""

    @abstractmethod
    def predict(self, model: object, data: Any) -> Any:
        """Predictions for ``data``, already shaped by the signature (DataFrame or array)."""

    def native(self, model: object) -> object:
        """The library's own object behind what :meth:`load` returned (``LoadedModel.raw``)."""
        return model

    def has_predict_proba(self, model: object) -> bool:
        """Whether :meth:`predict_proba` works for this model."""
        return False

    def predict_proba(self, model: object, data: Any) -> Any:
        """Class probabilities, for the flavors and models that have them."""
        raise InvalidArgument(f"a {self.name} model of type {type(model).__name__} has no "
                              "predict_proba; use predict")

    def requirements(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        """Distributions to pin for a model saved with ``data`` (default: :attr:`packages`)."""
        return self.packages

    def import_library(self, module: str, *, package: str | None = None) -> Any:
        """Import the flavor's library, or say which package (and loopml extra) installs it."""
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependency(f"the {self.name} flavor", package=package or module,
                                    extra=self.extra) from exc


#: name → "module:Class"; the order is the detection order (most specific first: an
#: XGBClassifier is also a scikit-learn estimator, a python_function model may wrap anything).
_FLAVORS: dict[str, str] = {
    "python_function": "loopml.models.flavors.pyfunc:PythonFunctionFlavor",
    "xgboost": "loopml.models.flavors.xgboost:XGBoostFlavor",
    "lightgbm": "loopml.models.flavors.lightgbm:LightGBMFlavor",
    "pytorch": "loopml.models.flavors.pytorch:PyTorchFlavor",
    "onnx": "loopml.models.flavors.onnx:ONNXFlavor",
    "sklearn": "loopml.models.flavors.sklearn:SklearnFlavor",
}
_INSTANCES: dict[str, Flavor] = {}


def known_flavors() -> list[str]:
    """The names of every registered flavor, in detection order."""
    return list(_FLAVORS)


def register_flavor(name: str, import_path: str) -> None:
    """Add a flavor (``"package.module:FlavorClass"``) before the built-in ``sklearn`` one."""
    if ":" not in import_path:
        raise InvalidArgument(f"flavor import path {import_path!r} must read 'module:Class'")
    items = [(k, v) for k, v in _FLAVORS.items() if k != name]
    position = next((i for i, (k, _) in enumerate(items) if k == "sklearn"), len(items))
    items.insert(position, (name, import_path))
    _FLAVORS.clear()
    _FLAVORS.update(items)
    _INSTANCES.pop(name, None)


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``; :class:`InvalidArgument` listing the known ones otherwise."""
    if name not in _FLAVORS:
        raise InvalidArgument(f"unknown flavor {name!r}; known flavors: "
                              f"{', '.join(_FLAVORS)}")
    if name not in _INSTANCES:
        module_name, _, class_name = _FLAVORS[name].partition(":")
        flavor_class = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(flavor_class, type) and issubclass(flavor_class, Flavor)):
            raise InvalidArgument(f"flavor {name!r} points to {_FLAVORS[name]}, which is not a "
                                  "loopml.models.Flavor subclass")
        _INSTANCES[name] = flavor_class()
    return _INSTANCES[name]


def detect_flavor(model: object) -> Flavor:
    """The first flavor that recognises ``model``."""
    for name in _FLAVORS:
        flavor = get_flavor(name)
        if flavor.detect(model):
            return flavor
    raise InvalidArgument(
        f"no flavor recognises a model of type {type(model).__module__}."
        f"{type(model).__qualname__} (known flavors: {', '.join(_FLAVORS)}); wrap it in a "
        "class with load_context(context) and predict(context, model_input) and save that "
        "with flavor='python_function'")
