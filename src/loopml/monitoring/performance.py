"""Model performance on the rows of a window whose labels arrived, against the validation
metrics of the model version.

::

    report = performance_report(predictions=window.predictions, labels=window.labels,
                                scores=window.scores, baseline={"accuracy": 0.91, "auc": 0.95})
    report.metrics     # {"accuracy": 0.87, "f1": 0.81, "auc": 0.93}
    report.degraded    # ("accuracy",): 0.87 is more than 5% below 0.91

Only rows with both a label and a prediction count. The task is inferred unless given:
classification when the labels are text or booleans, or whole numbers of at most
:data:`MAX_CLASSES` distinct values (and the predictions are not fractional); regression
otherwise. Classification gives ``accuracy``, ``f1`` (two classes: of the positive class;
more: the unweighted mean over the classes present, "macro") and, with scores of two classes,
``auc``; regression gives ``rmse``, ``mae`` and ``r2``. Labels and predictions of different
types are compared as numbers when both are numbers, else as text.

The positive class is ``positive`` when given, else 1 (or true) for 0/1 labels, else the
greater of the two classes in sorted order (as scikit-learn orders ``classes_``, so that the
``predict_proba`` column 1 a window scores with is the positive class's probability).

A metric is degraded when it is worse than its baseline by more than ``tolerance`` of the
baseline's size (direction-aware: lower is worse for accuracy, f1, auc and r2; higher for rmse
and mae). Baseline names may carry a ``val_``, ``validation_``, ``eval_`` or ``test_`` prefix
(``val_accuracy``); ``roc_auc`` and ``f1_score`` also name ``auc`` and ``f1``. With fewer than
``min_labelled`` labelled rows the metrics are given without a verdict: a few dozen labels
measure accuracy to within about ten points at best.

The metrics are plain numpy (scikit-learn is not a core dependency); the tests check them
against scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from loopml.errors import InvalidArgument
from loopml.monitoring.results import PerformanceReport

__all__ = ["HIGHER_IS_BETTER", "MAX_CLASSES", "MIN_LABELLED", "performance_report"]

Task = Literal["classification", "regression"]
Array = np.ndarray[Any, Any]

MAX_CLASSES = 50
MIN_LABELLED = 30
#: Whether a greater value of the metric is better.
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "auc": True, "r2": True, "rmse": False,
                    "mae": False}
_PREFIXES = ("", "val_", "validation_", "eval_", "test_")
_ALIASES = {"auc": ("auc", "roc_auc"), "f1": ("f1", "f1_score")}


def _arrow(values: Any, what: str) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} must be one value per row (a list, numpy array or "
                              f"Arrow array) of one type; {str(exc)[:120]}") from None


def _present(values: pa.Array) -> Array:
    """True where a value is neither null nor NaN."""
    missing = values.is_null(nan_is_null=True) if pat.is_floating(values.type) \
        else values.is_null()
    return ~np.asarray(missing.to_numpy(zero_copy_only=False), dtype=bool)


def _is_number(arrow_type: pa.DataType) -> bool:
    return bool(pat.is_integer(arrow_type) or pat.is_floating(arrow_type)
                or pat.is_boolean(arrow_type) or pat.is_decimal(arrow_type))


def _plain(values: pa.Array) -> pa.Array:
    return values.dictionary_decode() if isinstance(values, pa.DictionaryArray) else values


def _whole(values: pa.Array) -> bool:
    """Whether the values are whole numbers (integers, booleans, or integral floats)."""
    if not pat.is_floating(values.type):
        return True
    numbers = values.to_numpy(zero_copy_only=False)
    return bool(np.all(np.mod(numbers, 1.0) == 0.0))


def _infer_task(labels: pa.Array, predictions: pa.Array) -> Task:
    if not (_is_number(labels.type) and _is_number(predictions.type)):
        return "classification"
    if not (_whole(labels) and _whole(predictions)):
        return "regression"
    return "classification" if len(pc.unique(labels)) <= MAX_CLASSES else "regression"


def _comparable(labels: pa.Array, predictions: pa.Array) -> tuple[Array, Array]:
    """Both sides as numpy arrays of one type: float64 when both are numbers, else text."""
    if _is_number(labels.type) and _is_number(predictions.type):
        return (labels.cast(pa.float64()).to_numpy(zero_copy_only=False),
                predictions.cast(pa.float64()).to_numpy(zero_copy_only=False))
    try:
        return (np.asarray(labels.cast(pa.string()).to_pylist(), dtype=object),
                np.asarray(predictions.cast(pa.string()).to_pylist(), dtype=object))
    except (pa.ArrowException, TypeError, ValueError):
        raise InvalidArgument(f"labels ({labels.type}) and predictions ({predictions.type}) "
                              "cannot be compared: give labels of the type the model "
                              "predicts") from None


def _positive(classes: Array, positive: Any) -> Any:
    if positive is not None:
        if classes.dtype == object:
            return str(positive).lower() if isinstance(positive, bool) else str(positive)
        return float(positive)
    if classes.dtype != object and set(classes.tolist()) <= {0.0, 1.0}:
        return 1.0
    return classes[-1]


def _f1(truth: Array, predicted: Array, classes: Array, positive: Any) -> float | None:
    """F1 of the positive class (two classes) or the macro F1 (more); None if undefined."""
    true_index = np.searchsorted(classes, truth)
    predicted_index = np.searchsorted(classes, predicted)
    size = len(classes)
    hits = np.bincount(true_index[truth == predicted], minlength=size)
    actual = np.bincount(true_index, minlength=size)
    guessed = np.bincount(predicted_index, minlength=size)
    if size <= 2:
        where = np.flatnonzero(classes == positive)
        if not len(where) or actual[where[0]] + guessed[where[0]] == 0:
            return None
        k = where[0]
        return float(2 * hits[k] / (actual[k] + guessed[k]))
    return float(np.mean(2 * hits / (actual + guessed)))


def _auc(is_positive: Array, scores: Array) -> float | None:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half)."""
    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    # Average ranks (1-based) of tied scores.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    ranks = np.empty(len(ordered))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    rank_sum = ranks[is_positive].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def _classification(truth: Array, predicted: Array, scores: Array | None,
                    positive: Any) -> tuple[dict[str, float], list[str]]:
    notes = []
    classes = np.unique(np.concatenate([truth, predicted]))
    metrics = {"accuracy": float(np.mean(truth == predicted))}
    chosen = _positive(classes, positive)
    f1 = _f1(truth, predicted, classes, chosen)
    if f1 is None:
        notes.append(f"no f1: the positive class {chosen!r} is neither among the labels nor "
                     "the predictions")
    else:
        metrics["f1"] = f1
    if scores is not None:
        scored = ~np.isnan(scores)
        if len(np.unique(truth)) == 2 and classes.size == 2:
            auc = _auc(truth[scored] == chosen, scores[scored])
            if auc is not None:
                metrics["auc"] = auc
        if "auc" not in metrics:
            notes.append("no auc: it needs scores and labels of both of two classes")
    return metrics, notes


def _regression(truth: Array, predicted: Array) -> tuple[dict[str, float], list[str]]:
    error = predicted - truth
    metrics = {"rmse": float(np.sqrt(np.mean(error * error))),
               "mae": float(np.mean(np.abs(error)))}
    spread = float(np.sum((truth - truth.mean()) ** 2))
    if spread > 0:
        metrics["r2"] = 1.0 - float(np.sum(error * error)) / spread
        return metrics, []
    return metrics, ["no r2: every label is the same"]


def _baseline(baseline: Mapping[str, float], metric: str) -> float | None:
    for name in _ALIASES.get(metric, (metric,)):
        for prefix in _PREFIXES:
            value = baseline.get(prefix + name)
            if isinstance(value, int | float) and not isinstance(value, bool) \
                    and math.isfinite(value):
                return float(value)
    return None


def _degraded(metrics: Mapping[str, float], baseline: Mapping[str, float],
              tolerance: float) -> tuple[dict[str, float], list[str], list[str]]:
    """(the baseline used per metric, the degraded metrics, a line for each)."""
    used, degraded, lines = {}, [], []
    for name, value in metrics.items():
        reference = _baseline(baseline, name)
        if reference is None:
            continue
        used[name] = reference
        allowed = tolerance * abs(reference)
        worse = value < reference - allowed if HIGHER_IS_BETTER[name] \
            else value > reference + allowed
        if worse:
            degraded.append(name)
            lines.append(f"{name} {value:.4g} is worse than the baseline {reference:.4g} by "
                         f"more than {tolerance:.0%}")
    return used, degraded, lines


def _check_options(task: str | None, tolerance: float, min_labelled: int) -> None:
    if task not in (None, "classification", "regression"):
        raise InvalidArgument(f"task must be 'classification' or 'regression' (or None to "
                              f"infer it), got {task!r}")
    if not (isinstance(tolerance, int | float) and 0.0 <= tolerance < math.inf):
        raise InvalidArgument(f"tolerance must be a number >= 0 (a share of the baseline, "
                              f"0.05 is 5%), got {tolerance!r}")
    if min_labelled < 1:
        raise InvalidArgument(f"min_labelled must be at least 1, got {min_labelled!r}")


def performance_report(*, predictions: Any, labels: Any, scores: Any = None,
                       task: Task | None = None, baseline: Mapping[str, float] | None = None,
                       tolerance: float = 0.05, rows: int | None = None,
                       positive: Any = None,
                       min_labelled: int = MIN_LABELLED) -> PerformanceReport:
    """The metrics of ``predictions`` on the rows that have ``labels``, compared with
    ``baseline`` (see the module's documentation). ``rows`` is the window's row count
    (default: the number of predictions)."""
    _check_options(task, tolerance, min_labelled)
    predicted_all = _plain(_arrow(predictions, "predictions"))
    labels_all = _plain(_arrow(labels, "labels"))
    scores_all = None if scores is None else _arrow(scores, "scores")
    lengths = {len(predicted_all), len(labels_all)} | (
        set() if scores_all is None else {len(scores_all)})
    if len(lengths) > 1:
        raise InvalidArgument(f"predictions, labels and scores need one value per row; got "
                              f"{len(predicted_all)} predictions, {len(labels_all)} labels"
                              + ("" if scores_all is None else f", {len(scores_all)} scores"))
    total = len(predicted_all) if rows is None else rows
    usable = _present(labels_all) & _present(predicted_all)
    labelled = int(usable.sum())
    mask = pa.array(usable)
    label_values, predicted = labels_all.filter(mask), predicted_all.filter(mask)
    if task is not None:
        kind: Task = task
    elif labelled:
        kind = _infer_task(label_values, predicted)
    else:  # from the predictions alone: fractional numbers are a regression's
        answered = predicted_all.filter(pa.array(_present(predicted_all)))
        kind = "regression" if _is_number(answered.type) and not _whole(answered) \
            else "classification"
    if labelled == 0:
        why = "the window is empty" if total == 0 else \
            f"no labels have arrived for the {total:,} rows of this window"
        return PerformanceReport(kind, 0, total, {}, dict(baseline or {}), (),
                                 f"{why}: no performance verdict")
    truth, guess = _comparable(label_values, predicted)
    if kind == "classification":
        score_values = None if scores_all is None else \
            scores_all.filter(mask).cast(pa.float64()).to_numpy(zero_copy_only=False)
        metrics, notes = _classification(truth, guess, score_values, positive)
    else:
        if truth.dtype == object:
            raise InvalidArgument("regression needs numeric labels and predictions; got "
                                  f"{labels_all.type} labels and {predicted_all.type} "
                                  "predictions")
        metrics, notes = _regression(truth, guess)
    used, degraded, lines = _degraded(metrics, baseline or {}, tolerance)
    figures = ", ".join(f"{name} {value:.4g}" for name, value in metrics.items())
    head = f"{labelled:,} of {total:,} rows labelled: {figures}"
    if labelled < min_labelled:
        message = f"{head}; too few labels for a verdict (at least {min_labelled} needed)"
        degraded, lines = [], []
    elif not used:
        message = f"{head}; no baseline metric to compare with"
    elif degraded:
        message = f"{head}; degraded: " + "; ".join(lines)
    else:
        message = f"{head}; within {tolerance:.0%} of the baseline"
    if notes:
        message += " (" + "; ".join(notes) + ")"
    return PerformanceReport(kind, labelled, total, metrics, used, tuple(degraded), message)
