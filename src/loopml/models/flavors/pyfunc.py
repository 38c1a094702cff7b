"""python_function: any model, as a user class with MLflow's pyfunc shape.

::

    class Churn(PythonModel):                      # or any class with these two methods
        def load_context(self, context):
            self.table = json.loads(Path(context.artifacts["table"]).read_text())
        def predict(self, context, model_input):
            return model_input["plan"].map(self.table)

    save_model(Churn(), "churn", flavor="python_function",
               options={"artifacts": {"table": "table.json"}})

The instance is not pickled: it is rebuilt at load time as ``Class(**init_kwargs)`` from its
import path, then ``load_context`` reads its state from the artifacts (files or directories
copied into the package). Options: ``artifacts`` (name → path), ``init_kwargs`` and
``model_config`` (JSON values, the latter passed as ``context.model_config``), ``module``
(the class's import path, default the instance's own class).
"""

from __future__ import annotations

import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.errors import InvalidArgument, NotFound
from loopml.models.flavor import Flavor
from loopml.models.flavors.importpath import import_path_of, resolve_class
from loopml.models.manifest import plain_json

__all__ = ["PythonFunctionFlavor", "PythonFunctionModel", "PythonModel", "PythonModelContext"]

_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class PythonModelContext:
    """What ``load_context`` and ``predict`` receive: artifact paths and the model config."""

    artifacts: Mapping[str, str] = field(default_factory=dict)
    model_config: Mapping[str, Any] = field(default_factory=dict)


class PythonModel(ABC):
    """A convenient base for python_function models (any class with the two methods works);
    a subclass that lacks ``predict`` cannot be instantiated."""

    def load_context(self, context: PythonModelContext) -> None:  # noqa: B027 (optional hook)
        """Read state from ``context.artifacts``; called once after the model is rebuilt."""

    @abstractmethod
    def predict(self, context: PythonModelContext, model_input: Any) -> Any:
        """The model's predictions for ``model_input``."""


@dataclass(frozen=True)
class PythonFunctionModel:
    """A rebuilt user model and the context it was loaded with."""

    python_model: Any
    context: PythonModelContext


def _copy_artifacts(artifacts: Mapping[str, Any], directory: Path) -> dict[str, str]:
    stored: dict[str, str] = {}
    for name, source in artifacts.items():
        if not _ARTIFACT_NAME.match(str(name)):
            raise InvalidArgument(f"artifact name {name!r} must be a plain file name (letters, "
                                  "digits, '_', '-', '.')")
        path = Path(source)
        target = directory / "artifacts" / str(name)
        target.parent.mkdir(exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, target)
        elif path.is_file():
            shutil.copy2(path, target)
        else:
            raise NotFound(f"artifact {name!r}: no file or directory at {path}")
        stored[str(name)] = f"artifacts/{name}"
    return stored


class PythonFunctionFlavor(Flavor):
    """User classes with ``load_context(context)`` and ``predict(context, model_input)``."""

    name = "python_function"
    packages = ("numpy",)
    extra = None

    def detect(self, model: object) -> bool:
        return (not isinstance(model, type) and callable(getattr(model, "load_context", None))
                and callable(getattr(model, "predict", None)))

    def save(self, model: object, directory: Path, *, options: Mapping[str, Any],
             trusted: bool) -> dict[str, Any]:
        if not self.detect(model):
            raise InvalidArgument(
                f"a python_function model needs load_context(context) and predict(context, "
                f"model_input) methods; {type(model).__qualname__} lacks them (subclass "
                "loopml.models.PythonModel)")
        class_path = str(options.get("module") or import_path_of(type(model)))
        resolve_class(class_path, needs=("load_context", "predict"))
        return {
            "module": class_path,
            "init_kwargs": plain_json(dict(options.get("init_kwargs") or {}), "init_kwargs"),
            "model_config": plain_json(dict(options.get("model_config") or {}), "model_config"),
            "artifacts": _copy_artifacts(dict(options.get("artifacts") or {}), directory),
        }

    def load(self, directory: Path, data: Mapping[str, Any], *, trusted: bool,
             device: str | None) -> object:
        cls = resolve_class(str(data["module"]), needs=("load_context", "predict"))
        instance = cls(**dict(data.get("init_kwargs") or {}))
        artifacts = {name: str(directory / rel)
                     for name, rel in dict(data.get("artifacts") or {}).items()}
        context = PythonModelContext(artifacts, dict(data.get("model_config") or {}))
        instance.load_context(context)
        return PythonFunctionModel(instance, context)

    def native(self, model: object) -> object:
        return model.python_model if isinstance(model, PythonFunctionModel) else model

    def predict(self, model: object, data: Any) -> Any:
        assert isinstance(model, PythonFunctionModel)
        return model.python_model.predict(model.context, data)

    def has_predict_proba(self, model: object) -> bool:
        return (isinstance(model, PythonFunctionModel)
                and callable(getattr(model.python_model, "predict_proba", None)))

    def predict_proba(self, model: object, data: Any) -> Any:
        if not self.has_predict_proba(model):
            return super().predict_proba(model, data)
        assert isinstance(model, PythonFunctionModel)
        return model.python_model.predict_proba(model.context, data)
