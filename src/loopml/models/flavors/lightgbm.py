"""LightGBM boosters and scikit-learn wrappers, in LightGBM's own text format (no pickle).

The wrapper is rebuilt as a :class:`LightGBMModel` around the booster: a classifier keeps its
classes, so ``predict`` returns labels and ``predict_proba`` one column per class, as the
scikit-learn wrapper did; ``LoadedModel.raw`` is the ``lightgbm.Booster``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.models.flavor import Flavor, loaded_module
from loopml.models.manifest import plain_json

__all__ = ["LightGBMFlavor", "LightGBMModel"]


@dataclass(frozen=True)
class LightGBMModel:
    """A booster, what kind of estimator it came from, and a classifier's classes."""

    booster: Any
    kind: str  # classifier | regressor | ranker | booster
    classes: tuple[Any, ...] = ()

    def proba(self, data: Any) -> Any:
        import numpy as np

        raw = np.asarray(self.booster.predict(data))
        return np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw


def _kind(lgb: Any, model: object) -> str:
    for kind, cls in (("classifier", lgb.LGBMClassifier), ("regressor", lgb.LGBMRegressor),
                      ("ranker", lgb.LGBMRanker)):
        if isinstance(model, cls):
            return kind
    return "booster"


class LightGBMFlavor(Flavor):
    """``lightgbm.Booster`` and ``lightgbm.LGBMModel`` subclasses."""

    name = "lightgbm"
    packages = ("lightgbm", "numpy", "scipy")
    extra = "lightgbm"

    def detect(self, model: object) -> bool:
        lgb = loaded_module("lightgbm")
        return lgb is not None and isinstance(model, lgb.Booster | lgb.LGBMModel)

    def save(self, model: object, directory: Path, *, options: Mapping[str, Any],
             trusted: bool) -> dict[str, Any]:
        lgb = self.import_library("lightgbm")
        kind = _kind(lgb, model)
        booster: Any = model if kind == "booster" else model.booster_  # type: ignore[attr-defined]
        booster.save_model(str(directory / "model.txt"))
        data: dict[str, Any] = {"file": "model.txt", "kind": kind}
        if kind == "classifier":
            data["classes"] = plain_json(list(model.classes_), "classes")  # type: ignore[attr-defined]
        return data

    def load(self, directory: Path, data: Mapping[str, Any], *, trusted: bool,
             device: str | None) -> object:
        lgb = self.import_library("lightgbm")
        booster = lgb.Booster(model_file=str(directory / str(data["file"])))
        return LightGBMModel(booster, str(data.get("kind", "booster")),
                             tuple(data.get("classes") or ()))

    def native(self, model: object) -> object:
        return model.booster if isinstance(model, LightGBMModel) else model

    def predict(self, model: object, data: Any) -> Any:
        assert isinstance(model, LightGBMModel)
        if model.kind != "classifier":
            return model.booster.predict(data)
        import numpy as np

        return np.asarray(model.classes)[np.argmax(model.proba(data), axis=1)]

    def has_predict_proba(self, model: object) -> bool:
        return isinstance(model, LightGBMModel) and model.kind == "classifier"

    def predict_proba(self, model: object, data: Any) -> Any:
        if not self.has_predict_proba(model):
            return super().predict_proba(model, data)
        assert isinstance(model, LightGBMModel)
        return model.proba(data)
