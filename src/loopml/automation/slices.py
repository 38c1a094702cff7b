"""Metrics of a model's predictions on held-out rows, overall and per data slice.

A gate compares two models on the same rows. Each model predicts once
(:class:`Predictions`: labels or values, and class probabilities when it has them); every
metric is then computed on any subset of the rows by index, so the per-slice table (one row
per value of a declared categorical column) costs no further predictions::

    challenger = Predictions.of(model, features)
    score("auc", labels, challenger)                       # all rows
    slice_table("region", frame["region"], labels, challenger, champion, metric="auc")

Known metrics and their direction (``higher_is_better``): classification ``accuracy``,
``balanced_accuracy``, ``f1``, ``precision``, ``recall`` (binary when the labels are 0/1 or
booleans, else macro-averaged), ``auc`` (``roc_auc``; one-vs-rest for several classes),
``log_loss`` and ``brier`` (lower is better; these and ``auc`` need ``predict_proba``);
regression ``rmse``, ``mae``, ``mse`` (lower is better) and ``r2``. A metric that is not
defined on a subset (one class only, no rows) is NaN: reported, never judged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loopml.errors import InvalidArgument, MissingDependency

__all__ = ["CLASSIFICATION", "KNOWN_METRICS", "REGRESSION", "Predictions", "SliceResult",
           "higher_is_better", "needs_proba", "report_metrics", "score", "slice_table", "worst"]

#: metric → True when higher is better
KNOWN_METRICS: dict[str, bool] = {
    "accuracy": True, "balanced_accuracy": True, "f1": True, "precision": True,
    "recall": True, "auc": True, "roc_auc": True, "log_loss": False, "brier": False,
    "rmse": False, "mae": False, "mse": False, "r2": True,
}
REGRESSION = ("rmse", "mae", "mse", "r2")
CLASSIFICATION = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "auc",
                  "roc_auc", "log_loss", "brier")
_PROBA = frozenset({"auc", "roc_auc", "log_loss", "brier"})


def _check_metric(metric: str) -> str:
    if metric not in KNOWN_METRICS:
        raise InvalidArgument(f"unknown gate metric {metric!r}; use one of "
                              f"{', '.join(KNOWN_METRICS)}")
    return metric


def higher_is_better(metric: str) -> bool:
    return KNOWN_METRICS[_check_metric(metric)]


def needs_proba(metric: str) -> bool:
    return _check_metric(metric) in _PROBA


def _sklearn_metrics() -> Any:
    try:
        from sklearn import metrics
    except ImportError:
        raise MissingDependency("the gate's metrics", package="scikit-learn",
                                extra="models") from None
    return metrics


@dataclass(frozen=True, slots=True)
class Predictions:
    """One model's answers on the evaluated rows: ``labels`` (1-D), and ``proba`` (rows ×
    classes, columns in the order of ``classes``) when the model has ``predict_proba``."""

    labels: Any
    proba: Any = None
    classes: Any = None

    @classmethod
    def of(cls, model: Any, features: Any, *, with_proba: bool) -> Predictions:
        """Predict ``features`` with a loaded model (``LoadedModel`` or an estimator)."""
        import numpy as np

        labels = np.asarray(_flat(model.predict(features)))
        if len(labels) != len(features):
            raise InvalidArgument(f"the model answered {len(labels)} predictions for "
                                  f"{len(features)} rows; a gate needs one per row")
        if not with_proba or not getattr(model, "has_predict_proba", True):
            return cls(labels=labels)
        proba = np.asarray(_frame_values(model.predict_proba(features)), dtype=float)
        raw = getattr(model, "raw", model)
        classes = getattr(raw, "classes_", None)
        return cls(labels=labels, proba=proba, classes=None if classes is None
                   else np.asarray(classes))

    def take(self, index: Any) -> Predictions:
        return Predictions(labels=self.labels[index],
                           proba=None if self.proba is None else self.proba[index],
                           classes=self.classes)


def _frame_values(value: Any) -> Any:
    return value.to_numpy() if hasattr(value, "to_numpy") else value


def _flat(value: Any) -> Any:
    import numpy as np

    array = np.asarray(_frame_values(value))
    if array.ndim == 2 and array.shape[1] == 1:
        return array[:, 0]
    if array.ndim != 1:
        raise InvalidArgument(f"the model's predictions have shape {array.shape}; a gate "
                              "compares one label or value per row")
    return array


def _is_binary(truth: Any) -> bool:
    import numpy as np

    values = set(np.unique(truth).tolist())
    return values <= {0, 1} or values <= {False, True}


def _proba_columns(truth: Any, predictions: Predictions, metric: str) -> tuple[Any, Any]:
    """(probabilities, class labels of their columns)."""
    import numpy as np

    proba = predictions.proba
    if proba is None:
        raise InvalidArgument(f"the metric {metric!r} needs class probabilities, and the "
                              "model has no predict_proba; choose accuracy or f1 instead")
    classes = predictions.classes
    if classes is None or len(classes) != proba.shape[1]:
        classes = np.unique(truth)
        if len(classes) != proba.shape[1]:
            raise InvalidArgument(f"the model answers {proba.shape[1]} class probabilities "
                                  f"but the labels hold {len(classes)} classes; {metric!r} "
                                  "cannot match them: evaluate on rows with every class")
    return proba, classes


def score(metric: str, truth: Any, predictions: Predictions) -> float:
    """``metric`` of ``predictions`` against ``truth``; NaN where it is not defined."""
    import numpy as np

    _check_metric(metric)
    if len(truth) == 0:
        return math.nan
    m = _sklearn_metrics()
    labels = predictions.labels
    try:
        if metric in REGRESSION:
            values = np.asarray(labels, dtype=float)
            target = np.asarray(truth, dtype=float)
            if metric == "r2":
                return math.nan if len(target) < 2 else float(m.r2_score(target, values))
            error = {"rmse": m.root_mean_squared_error, "mae": m.mean_absolute_error,
                     "mse": m.mean_squared_error}[metric](target, values)
            return float(error)
        if metric == "accuracy":
            return float(m.accuracy_score(truth, labels))
        if metric == "balanced_accuracy":
            return float(m.balanced_accuracy_score(truth, labels))
        if metric in ("f1", "precision", "recall"):
            average = "binary" if _is_binary(truth) and _is_binary(labels) else "macro"
            scorer = {"f1": m.f1_score, "precision": m.precision_score,
                      "recall": m.recall_score}[metric]
            return float(scorer(truth, labels, average=average, zero_division=0))
        proba, classes = _proba_columns(truth, predictions, metric)
        if len(np.unique(truth)) < 2:
            return math.nan  # not defined on one class
        if metric in ("auc", "roc_auc"):
            if proba.shape[1] == 2:
                return float(m.roc_auc_score(truth == classes[1], proba[:, 1]))
            return float(m.roc_auc_score(truth, proba, multi_class="ovr", labels=classes))
        if metric == "log_loss":
            return float(m.log_loss(truth, proba, labels=classes))
        onehot = (np.asarray(truth)[:, None] == classes[None, :]).astype(float)
        return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))  # brier
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidArgument):
            raise
        raise InvalidArgument(f"cannot compute {metric!r} on these labels and predictions "
                              f"({exc}); check the gate's target column and metric") from None


def report_metrics(metric: str, truth: Any, predictions: Predictions) -> dict[str, float]:
    """The gate's ``metric`` and the usual companions of its kind (NaN dropped)."""
    names = ["rmse", "mae", "r2"] if metric in REGRESSION else ["accuracy", "f1"]
    if metric not in REGRESSION and predictions.proba is not None:
        names += ["auc", "log_loss"]
    result = {metric: score(metric, truth, predictions)}
    for name in names:
        if name in result or (name == "auc" and metric == "roc_auc"):
            continue
        try:
            value = score(name, truth, predictions)
        except InvalidArgument:
            continue
        if not math.isnan(value):
            result[name] = value
    return result


@dataclass(frozen=True, slots=True)
class SliceResult:
    """The metric on the rows where ``column == value``: both models and the change
    (challenger − champion, signed so that positive is better). ``judged`` is False when the
    slice is too small or the metric is undefined there."""

    column: str
    value: str
    rows: int
    challenger: float
    champion: float | None
    change: float | None
    judged: bool
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "value": self.value, "rows": self.rows,
                "challenger": _json_float(self.challenger),
                "champion": _json_float(self.champion), "change": _json_float(self.change),
                "judged": self.judged, "passed": self.passed}


def _json_float(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 6)


def slice_table(column: str, values: Any, truth: Any, challenger: Predictions,
                champion: Predictions | None, *, metric: str, tolerance: float,
                min_rows: int) -> list[SliceResult]:
    """One :class:`SliceResult` per distinct value of ``values`` (most rows first); a
    judged slice passes when the challenger is not worse than the champion by more than
    ``tolerance`` (in the metric's units)."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(pd.Series(values), use_na_sentinel=False)
    sign = 1.0 if higher_is_better(metric) else -1.0
    results = []
    for code in np.argsort(-np.bincount(codes, minlength=len(uniques)), kind="stable"):
        index = np.flatnonzero(codes == code)
        ours = score(metric, truth[index], challenger.take(index))
        theirs = None if champion is None else score(metric, truth[index],
                                                     champion.take(index))
        change = None if theirs is None else sign * (ours - theirs)
        judged = (change is not None and len(index) >= min_rows and not math.isnan(change))
        passed = not judged or change is None or change >= -tolerance
        results.append(SliceResult(column=column, value=str(uniques[code]), rows=len(index),
                                   challenger=ours, champion=theirs, change=change,
                                   judged=judged, passed=passed))
    return results


def worst(slices: Sequence[SliceResult]) -> SliceResult | None:
    """The judged slice that changed most for the worse."""
    judged = [s for s in slices if s.judged and s.change is not None]
    return min(judged, key=lambda s: s.change or 0.0) if judged else None
