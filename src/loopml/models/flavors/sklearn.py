"""scikit-learn estimators, stored with skops so that loading runs no arbitrary code.

skops rebuilds objects from a JSON schema and only instantiates types on its trusted list;
a package whose model holds other types (a user's class, a function) loads only when the
caller passes ``trusted=True``, and then only the types skops reports are let through.
(skops 0.16 does not trust ``sklearn.tree._tree.Tree``: tree ensembles need ``trusted=True``
to load.) Plain pickle is written only on request (``trusted=True`` at save time, when skops cannot
store the model or ``options={'serializer': 'pickle'}``) and read only with ``trusted=True``.

Importing skops costs little once scikit-learn is loaded, but for one detour that
:func:`import_skops` takes out: see there.
"""

from __future__ import annotations

import importlib
import pickle
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopml.errors import InvalidArgument, MissingDependency, PermissionDenied
from loopml.models.flavor import Flavor, loaded_module

__all__ = ["SklearnFlavor", "import_skops"]

SERIALIZERS = ("skops", "pickle")

#: scikit-learn's array-API shims for other array libraries (none of them an estimator module)
_ARRAY_SHIMS = tuple(f"sklearn.externals.array_api_compat.{name}"
                     for name in ("torch", "cupy", "dask"))
_import_lock = threading.Lock()


def import_skops() -> Any:
    """``skops.io``, imported without importing PyTorch.

    skops lists scikit-learn's estimators when it is imported (``all_estimators``), which
    walks every scikit-learn package with ``pkgutil`` and so imports each one, the
    array-API shim ``sklearn.externals.array_api_compat.torch`` included: that imports torch
    where it is installed, seconds of a model server's cold start for a model that has
    nothing to do with torch. ``all_estimators`` skips ``externals`` anyway, so while skops
    is imported the shims not yet loaded are marked unimportable (``pkgutil`` passes over a
    package that fails to import), and unmarked afterwards.
    """
    if "skops.io" in sys.modules:  # import_module waits for a thread still importing it
        return importlib.import_module("skops.io")
    with _import_lock:
        blocked = [name for name in _ARRAY_SHIMS if name not in sys.modules]
        for name in blocked:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            return importlib.import_module("skops.io")
        finally:
            for name in blocked:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]


def _untrusted_message(directory: Path, types: list[str]) -> str:
    try:
        from skops.io.exceptions import UNTRUSTED_TYPE_REASONS as reasons
    except ImportError:
        reasons = {}
    why = "".join(f"\n- {reasons[t]}" for t in types if t in reasons)
    return (f"the model package at {directory} holds types that skops does not trust by "
            f"default: {', '.join(types)}; loading them can run their code or crash the "
            "process on crafted files, so loopml needs trusted=True for this package: pass it "
            "to load_model if you trust where the package came from" + why)


def _refuse_unimportable(names: list[str]) -> None:
    """skops (like pickle) stores functions and classes by name: some names never resolve."""
    lost = [n for n in names if "<lambda>" in n or "<locals>" in n or n.startswith("__main__.")]
    if lost:
        raise InvalidArgument(
            f"the model refers to {', '.join(lost)}, which cannot be imported where the model "
            "is loaded (a lambda, a function or class defined inside a function, or one "
            "defined in __main__ or a notebook); define it at module level in an importable "
            "module and fit the model again")


class SklearnFlavor(Flavor):
    """scikit-learn estimators and pipelines (anything with a ``predict`` method)."""

    name = "sklearn"
    packages = ("scikit-learn", "skops", "numpy", "scipy")
    extra = "models"

    def detect(self, model: object) -> bool:
        base = loaded_module("sklearn.base")
        return (base is not None and isinstance(model, base.BaseEstimator)
                and callable(getattr(model, "predict", None)))

    def requirements(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        if data.get("serializer") == "pickle":
            return tuple(p for p in self.packages if p != "skops")
        return self.packages

    def _skops(self) -> Any:
        try:
            return import_skops()
        except ImportError as exc:
            raise MissingDependency(f"the {self.name} flavor", package="skops",
                                    extra=self.extra) from exc

    def save(self, model: object, directory: Path, *, options: Mapping[str, Any],
             trusted: bool) -> dict[str, Any]:
        serializer = options.get("serializer", "skops")
        if serializer not in SERIALIZERS:
            raise InvalidArgument(f"sklearn serializer {serializer!r} is not one of "
                                  f"{', '.join(SERIALIZERS)}")
        if serializer == "pickle" and not trusted:
            raise InvalidArgument(
                "serializer 'pickle' writes a file that runs arbitrary code when loaded; pass "
                "trusted=True to save_model to choose it (or keep the default, skops)")
        data: dict[str, Any] = {"estimator": type(model).__qualname__}
        if serializer == "skops":
            sio = self._skops()
            path = directory / "model.skops"
            try:
                sio.dump(model, path)
            except Exception as exc:  # skops raises TypeError, ValueError, … per object
                path.unlink(missing_ok=True)
                if not trusted:
                    raise InvalidArgument(
                        f"skops cannot store this {type(model).__name__} ({exc}); pass "
                        "trusted=True to save_model to store it with pickle instead (loading "
                        "will then need trusted=True too)") from exc
            else:  # types outside skops' trusted list make loading need trusted=True
                untrusted = sorted(sio.get_untrusted_types(file=path))
                _refuse_unimportable(untrusted)
                return {**data, "file": path.name, "serializer": "skops",
                        "untrusted_types": untrusted}
        with (directory / "model.pkl").open("wb") as handle:
            pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
        return {**data, "file": "model.pkl", "serializer": "pickle"}

    def load(self, directory: Path, data: Mapping[str, Any], *, trusted: bool,
             device: str | None) -> object:
        path = directory / str(data.get("file", "model.skops"))
        if data.get("serializer") == "pickle":
            if not trusted:
                raise PermissionDenied(
                    f"the model package at {directory} is a pickle ({path.name}); unpickling "
                    "runs arbitrary code, so loopml loads it only when you vouch for its "
                    "source: pass trusted=True to load_model if you trust it")
            with path.open("rb") as handle:
                return pickle.load(handle)  # the caller vouched: trusted=True
        sio = self._skops()
        untrusted = sio.get_untrusted_types(file=path)
        if untrusted and not trusted:
            raise PermissionDenied(_untrusted_message(directory, sorted(untrusted)))
        return sio.load(path, trusted=untrusted or None)

    def _native_input(self, model: Any, data: Any) -> Any:
        if hasattr(data, "columns") and getattr(model, "feature_names_in_", None) is None:
            return data.to_numpy()  # fitted on an array: avoid sklearn's feature-name warning
        return data

    def predict(self, model: object, data: Any) -> Any:
        return model.predict(self._native_input(model, data))  # type: ignore[attr-defined]

    def has_predict_proba(self, model: object) -> bool:
        return callable(getattr(model, "predict_proba", None))

    def predict_proba(self, model: object, data: Any) -> Any:
        if not self.has_predict_proba(model):
            return super().predict_proba(model, data)
        return model.predict_proba(self._native_input(model, data))  # type: ignore[attr-defined]
