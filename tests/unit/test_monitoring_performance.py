"""Performance on delayed labels: the numpy metrics agree with scikit-learn, degradation is
judged against the baseline in the right direction, and no labels means no verdict."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from loopml.errors import InvalidArgument
from loopml.monitoring.performance import performance_report

metrics = pytest.importorskip("sklearn.metrics")


def _binary(rows: int, seed: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, rows)
    scores = 1 / (1 + np.exp(-(labels * 2 - 1 + rng.normal(0, noise, rows))))
    scores = np.round(scores, 2)  # ties, which the AUC counts half
    return labels, (scores >= 0.5).astype(np.int64), scores


@pytest.mark.parametrize("seed", range(3))
def test_classification_metrics_agree_with_scikit_learn(seed: int) -> None:
    labels, predictions, scores = _binary(500, seed)
    report = performance_report(predictions=predictions, labels=labels, scores=scores)
    assert report.task == "classification" and report.labelled == report.rows == 500
    assert report.metrics["accuracy"] == pytest.approx(metrics.accuracy_score(labels,
                                                                              predictions))
    assert report.metrics["f1"] == pytest.approx(metrics.f1_score(labels, predictions))
    assert report.metrics["auc"] == pytest.approx(metrics.roc_auc_score(labels, scores))


def test_multiclass_f1_is_macro_and_text_labels_work() -> None:
    rng = np.random.default_rng(4)
    classes = np.array(["bronze", "gold", "silver"])
    labels = classes[rng.integers(0, 3, 300)]
    predictions = np.where(rng.random(300) < 0.7, labels, classes[rng.integers(0, 3, 300)])
    predictions[:5] = "platinum"  # a class only predicted counts in the macro mean
    report = performance_report(predictions=list(predictions), labels=pa.array(labels),
                                scores=rng.random(300))
    assert report.metrics["f1"] == pytest.approx(
        metrics.f1_score(labels, predictions, average="macro"))
    assert report.metrics["accuracy"] == pytest.approx(metrics.accuracy_score(labels,
                                                                              predictions))
    assert "auc" not in report.metrics and "no auc" in report.message


def test_the_positive_class_of_text_labels() -> None:
    labels = ["no", "yes", "yes", "no", "yes"] * 10
    predictions = ["no", "yes", "no", "no", "no"] * 10
    default = performance_report(predictions=predictions, labels=labels)
    assert default.metrics["f1"] == pytest.approx(metrics.f1_score(labels, predictions,
                                                                   pos_label="yes"))
    chosen = performance_report(predictions=predictions, labels=labels, positive="no")
    assert chosen.metrics["f1"] == pytest.approx(metrics.f1_score(labels, predictions,
                                                                  pos_label="no"))


def test_regression_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(5)
    labels = rng.normal(100, 15, 400)
    predictions = labels + rng.normal(0, 5, 400)
    report = performance_report(predictions=predictions, labels=labels)
    assert report.task == "regression"
    assert report.metrics["rmse"] == pytest.approx(
        np.sqrt(metrics.mean_squared_error(labels, predictions)))
    assert report.metrics["mae"] == pytest.approx(metrics.mean_absolute_error(labels,
                                                                              predictions))
    assert report.metrics["r2"] == pytest.approx(metrics.r2_score(labels, predictions))


def test_only_labelled_rows_count() -> None:
    labels, predictions, scores = _binary(200, 6)
    partial = pa.array([int(v) if i % 4 else None for i, v in enumerate(labels)])
    report = performance_report(predictions=pa.array(predictions), labels=partial,
                                scores=pa.array(scores), rows=250)
    kept = np.arange(200) % 4 != 0
    assert (report.labelled, report.rows) == (150, 250)
    assert report.metrics["accuracy"] == pytest.approx(
        metrics.accuracy_score(labels[kept], predictions[kept]))
    assert report.metrics["auc"] == pytest.approx(metrics.roc_auc_score(labels[kept],
                                                                        scores[kept]))
    assert report.message.startswith("150 of 250 rows labelled")


def test_degradation_is_direction_aware() -> None:
    labels, predictions, scores = _binary(1_000, 7)
    report = performance_report(predictions=predictions, labels=labels, scores=scores,
                                baseline={"val_accuracy": 0.99, "auc": 0.5,
                                          "train_f1": 0.99})
    assert report.degraded == ("accuracy",)
    assert report.baseline == {"accuracy": 0.99, "auc": 0.5}  # train_ is not a baseline
    assert "accuracy" in report.message and "worse than the baseline 0.99" in report.message
    close = report.metrics["accuracy"] * 1.04  # within 5% of the baseline
    assert performance_report(predictions=predictions, labels=labels,
                              baseline={"accuracy": close}).degraded == ()

    rng = np.random.default_rng(8)
    truth = rng.normal(0, 1, 300)
    guess = truth + rng.normal(0, 1, 300)
    regression = performance_report(predictions=guess, labels=truth,
                                    baseline={"rmse": 0.5, "mae": 2.0, "r2": 0.0})
    assert regression.degraded == ("rmse",)  # lower is better for errors, not for r2
    assert performance_report(predictions=guess, labels=truth, baseline={"rmse": 0.5},
                              tolerance=2.0).degraded == ()


def test_no_labels_empty_windows_and_few_labels_give_no_verdict() -> None:
    none = performance_report(predictions=[0.5, 1.5, 2.5], labels=[None, None, None],
                              baseline={"rmse": 0.1})
    assert (none.labelled, none.rows, none.degraded, none.metrics) == (0, 3, (), {})
    assert none.task == "regression"
    assert "no labels have arrived for the 3 rows" in none.message
    empty = performance_report(predictions=pa.array([], pa.int64()),
                               labels=pa.array([], pa.int64()))
    assert empty.labelled == 0 and "the window is empty" in empty.message
    few = performance_report(predictions=[0] * 10, labels=[1] * 10, baseline={"accuracy": 0.9})
    assert few.metrics["accuracy"] == 0.0 and few.degraded == ()
    assert "too few labels for a verdict" in few.message


def test_labels_and_predictions_of_different_types_are_compared_by_value() -> None:
    report = performance_report(predictions=pa.array([1, 0, 1, 1]),
                                labels=pa.array(["1", "0", "0", "1"]))
    assert report.metrics["accuracy"] == 0.75
    floats = performance_report(predictions=[True, False, True, True],
                                labels=[1.0, 0.0, 0.0, 1.0])
    assert floats.task == "classification" and floats.metrics["accuracy"] == 0.75


def test_bad_arguments_are_named() -> None:
    with pytest.raises(InvalidArgument, match="one value per row; got 3 predictions, 2 labels"):
        performance_report(predictions=[1, 2, 3], labels=[1, 2])
    with pytest.raises(InvalidArgument, match="task must be"):
        performance_report(predictions=[1], labels=[1], task="ranking")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="tolerance"):
        performance_report(predictions=[1], labels=[1], tolerance=-1)
    with pytest.raises(InvalidArgument, match="regression needs numeric"):
        performance_report(predictions=["a"], labels=["b"], task="regression")
