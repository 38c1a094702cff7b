"""Saving a model as a package directory and loading it back, whatever its flavor.

::

    package = save_model(model, "out/churn", input_example=frame.head(5))
    model = load_model("out/churn")
    model.predict(frame)                 # also numpy arrays and lists of dicts
    model.predict_proba(frame)           # where the flavor has it
    model.signature, model.manifest, model.raw

A package is written under a temporary name next to ``path`` and renamed when complete, so
an interrupted save never leaves a half package. When an input example is given and no
signature, the package is loaded back and asked to predict the example: the signature then
describes what :meth:`LoadedModel.predict` really returns, and a package that cannot be
loaded (a constructor argument missing, a class that is not importable) fails at save time.
"""

from __future__ import annotations

import platform
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loopml
from loopml.errors import AlreadyExists, InvalidArgument, LoopmlError
from loopml.models.example import read_example, write_example
from loopml.models.flavor import Flavor, detect_flavor, get_flavor
from loopml.models.inputs import prepare_input
from loopml.models.manifest import ModelManifest, plain_json, read_manifest, write_manifest
from loopml.models.requirements import pin_requirements, warn_on_mismatch
from loopml.models.signature import Signature, infer_schema

__all__ = ["LoadedModel", "ModelPackage", "load_model", "save_model"]


class LoadedModel:
    """A model ready to predict: inputs are checked against the signature and converted."""

    def __init__(self, path: Path, manifest: ModelManifest, flavor: Flavor, model: object
                 ) -> None:
        self.path = path
        self.manifest = manifest
        self._flavor = flavor
        self._model = model

    @property
    def signature(self) -> Signature | None:
        return self.manifest.signature

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def raw(self) -> object:
        """The library's own model object (estimator, ``nn.Module``, inference session, …)."""
        return self._flavor.native(self._model)

    @property
    def has_predict_proba(self) -> bool:
        return self._flavor.has_predict_proba(self._model)

    def _prepare(self, data: Any) -> Any:
        return prepare_input(data, self.signature.inputs if self.signature else None)

    def predict(self, data: Any) -> Any:
        """Predictions for a DataFrame, an array or a list of dicts (records)."""
        return self._flavor.predict(self._model, self._prepare(data))

    def predict_proba(self, data: Any) -> Any:
        """Class probabilities; :class:`InvalidArgument` for models without them."""
        return self._flavor.predict_proba(self._model, self._prepare(data))

    def input_example(self) -> Any:
        """The example stored with the model, or None."""
        ref = self.manifest.input_example
        return read_example(self.path, ref) if ref else None

    def __repr__(self) -> str:
        return f"LoadedModel(flavor={self.flavor!r}, path='{self.path}')"


@dataclass(frozen=True)
class ModelPackage:
    """A model package on disk: its directory and manifest (nothing loaded)."""

    path: Path
    manifest: ModelManifest

    @classmethod
    def open(cls, path: str | Path) -> ModelPackage:
        """The package at ``path``; :class:`~loopml.errors.NotFound` when there is none."""
        return cls(Path(path), read_manifest(path))

    def load(self, *, trusted: bool = False, device: str | None = None) -> LoadedModel:
        return load_model(self.path, trusted=trusted, device=device)

    def files(self) -> list[str]:
        """Relative paths of every file in the package, sorted."""
        return sorted(p.relative_to(self.path).as_posix()
                      for p in self.path.rglob("*") if p.is_file())

    def input_example(self) -> Any:
        ref = self.manifest.input_example
        return read_example(self.path, ref) if ref else None

    def update_metadata(self, metadata: Mapping[str, Any]) -> ModelPackage:
        """Merge ``metadata`` into the manifest on disk (the registry adds metrics, lineage)."""
        manifest = self.manifest.with_metadata(metadata)
        write_manifest(self.path, manifest)
        return ModelPackage(self.path, manifest)


def new_package_dir(path: str | Path) -> Path:
    target = Path(path)
    if target.is_file() or (target.is_dir() and any(target.iterdir())):
        raise AlreadyExists(f"{target} exists and is not an empty directory; choose a new path "
                            "or delete it first")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _infer_signature(flavor: Flavor, directory: Path, data: Mapping[str, Any], example: Any
                     ) -> Signature:
    inputs = infer_schema(example)
    prepared = prepare_input(example, inputs)
    try:
        # trusted: these files were written a moment ago from the caller's own model
        loaded = flavor.load(directory, data, trusted=True, device=None)
    except LoopmlError:
        raise
    except Exception as exc:
        raise InvalidArgument(
            f"the {flavor.name} package cannot be loaded back ({type(exc).__name__}: {exc}); "
            "the model refers to something that cannot be stored or imported again") from exc
    try:
        output = flavor.predict(loaded, prepared)
    except LoopmlError:
        raise
    except Exception as exc:  # the user's model failing on the user's example
        raise InvalidArgument(
            f"the saved model failed to predict its input example ({type(exc).__name__}: "
            f"{exc}); pass an example the model accepts, or signature= to skip inference"
        ) from exc
    try:
        outputs = infer_schema(output)
    except InvalidArgument:
        outputs = None  # an output loopml cannot describe (e.g. a list of objects)
    return Signature(inputs, outputs)


def save_model(
    model: object,
    path: str | Path,
    *,
    flavor: str | None = None,
    input_example: Any = None,
    signature: Signature | Mapping[str, Any] | None = None,
    requirements: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    trusted: bool = False,
) -> ModelPackage:
    """Write ``model`` as a package directory at ``path`` (which must not exist or be empty).

    ``flavor`` defaults to the one that recognises the model; ``signature`` to one inferred
    from ``input_example`` and the model's prediction on it; ``requirements`` adds pins to
    those of the flavor (a bare name is pinned to the installed version); ``options`` are
    flavor-specific (see each flavor); ``trusted=True`` allows formats that run code when
    loaded (pickle), which loading will then need too.
    """
    chosen = get_flavor(flavor) if flavor is not None else detect_flavor(model)
    if isinstance(signature, Mapping):
        signature = Signature.from_dict(signature)
    if signature is not None and not isinstance(signature, Signature):
        raise InvalidArgument(f"signature must be a Signature or a dict; got a "
                              f"{type(signature).__name__}")
    extra_metadata = plain_json(dict(metadata or {}), "metadata")
    target = new_package_dir(path)
    staging = target.parent / f".{target.name}.saving-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        data = chosen.save(model, staging, options=dict(options or {}), trusted=trusted)
        example = write_example(input_example, staging) if input_example is not None else None
        if signature is None and input_example is not None:
            signature = _infer_signature(chosen, staging, data, input_example)
        elif signature is not None and input_example is not None:
            prepare_input(input_example, signature.inputs)  # the example must fit the signature
        manifest = ModelManifest(
            flavor=chosen.name, flavor_data=plain_json(data, "flavor data"),
            requirements=pin_requirements(chosen.requirements(data), requirements or ()),
            python_version=platform.python_version(), loopml_version=loopml.__version__,
            created_at=ModelManifest.now(), signature=signature, input_example=example,
            metadata=extra_metadata)
        write_manifest(staging, manifest)
        if target.is_dir():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ModelPackage(target, manifest)


def load_model(path: str | Path, *, trusted: bool = False, device: str | None = None
               ) -> LoadedModel:
    """Load the package at ``path``.

    Warns (:class:`~loopml.models.RequirementsMismatchWarning`) when the recorded package
    versions differ from the running ones. ``trusted=True`` allows formats that run code
    when loaded (pickle, types outside skops' trusted list); ``device`` places the model
    (``"cuda:0"``) for the flavors that have devices (pytorch, onnx, xgboost).
    """
    directory = Path(path)
    manifest = read_manifest(directory)
    flavor = get_flavor(manifest.flavor)
    warn_on_mismatch(manifest.requirements, manifest.python_version,
                     model=f"at {directory}", stacklevel=3)
    model = flavor.load(directory, manifest.flavor_data, trusted=trusted, device=device)
    return LoadedModel(directory, manifest, flavor, model)
