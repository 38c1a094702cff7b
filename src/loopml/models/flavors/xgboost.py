"""XGBoost boosters and scikit-learn wrappers, in XGBoost's own UBJSON format (no pickle)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopml.errors import InvalidArgument
from loopml.models.flavor import Flavor, loaded_module

__all__ = ["XGBoostFlavor"]

#: the classes a package may name: the manifest never makes loopml instantiate anything else
CLASSES = ("Booster", "XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier",
           "XGBRFRegressor")


class XGBoostFlavor(Flavor):
    """``xgboost.Booster`` and ``xgboost.XGBModel`` subclasses."""

    name = "xgboost"
    packages = ("xgboost", "numpy", "scipy")
    extra = "xgboost"

    def detect(self, model: object) -> bool:
        xgb = loaded_module("xgboost")
        return xgb is not None and isinstance(model, xgb.Booster | xgb.XGBModel)

    def requirements(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        if data.get("class") == "Booster":
            return self.packages
        return (*self.packages, "scikit-learn")

    def save(self, model: object, directory: Path, *, options: Mapping[str, Any],
             trusted: bool) -> dict[str, Any]:
        name = type(model).__name__
        if name not in CLASSES:
            raise InvalidArgument(f"xgboost model class {name} is not one of "
                                  f"{', '.join(CLASSES)}; save it with flavor='python_function'")
        model.save_model(str(directory / "model.ubj"))  # type: ignore[attr-defined]
        return {"file": "model.ubj", "class": name}

    def load(self, directory: Path, data: Mapping[str, Any], *, trusted: bool,
             device: str | None) -> object:
        xgb = self.import_library("xgboost")
        name = str(data.get("class", "Booster"))
        if name not in CLASSES:
            raise InvalidArgument(f"xgboost class {name!r} in the package at {directory} is not "
                                  f"one of {', '.join(CLASSES)}")
        model = getattr(xgb, name)()
        model.load_model(str(directory / str(data["file"])))
        if device and name == "Booster":
            model.set_param({"device": device})
        elif device:
            model.set_params(device=device)
        return model

    def predict(self, model: object, data: Any) -> Any:
        xgb = self.import_library("xgboost")
        if isinstance(model, xgb.Booster):
            return model.predict(xgb.DMatrix(data))
        return model.predict(data)  # type: ignore[attr-defined]

    def has_predict_proba(self, model: object) -> bool:
        return callable(getattr(model, "predict_proba", None))

    def predict_proba(self, model: object, data: Any) -> Any:
        if not self.has_predict_proba(model):
            return super().predict_proba(model, data)
        return model.predict_proba(data)  # type: ignore[attr-defined]
