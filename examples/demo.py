"""The loopml demo: train a few scikit-learn models on the bundled breast-cancer data, track
every run (params, metric curves, artifacts, code and environment), then compare them with
the CLI. Runs on the embedded default store (./.loopml) with no configuration.

    make demo          # or: python examples/demo.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import loopml

EXPERIMENT = "breast-cancer"

CANDIDATES = {
    "logreg": (lambda p: make_pipeline(StandardScaler(), LogisticRegression(**p)),
               {"C": 1.0, "max_iter": 500}),
    "knn": (lambda p: make_pipeline(StandardScaler(), KNeighborsClassifier(**p)),
            {"n_neighbors": 7}),
    "rf": (lambda p: RandomForestClassifier(**p), {"n_estimators": 200, "max_depth": 6,
                                                   "random_state": 0}),
    "gb": (lambda p: GradientBoostingClassifier(**p), {"n_estimators": 150,
                                                       "learning_rate": 0.1,
                                                       "random_state": 0}),
}


def train_one(name: str, data: tuple, workdir: Path) -> str:
    build, params = CANDIDATES[name]
    x_train, x_test, y_train, y_test = data
    with loopml.start_run(EXPERIMENT, name=f"{name}-{int(time.time()) % 100000}") as run:
        run.log_params({"model": name, **params, "train_rows": len(x_train)})
        model = build(params).fit(x_train, y_train)
        if name == "gb":  # a learning curve: one point per boosting stage
            for step, proba in enumerate(model.staged_predict_proba(x_test)):
                run.log_metric("test_auc_curve", roc_auc_score(y_test, proba[:, 1]), step=step)
        proba = model.predict_proba(x_test)[:, 1]
        predicted = (proba >= 0.5).astype(int)
        run.log_metrics({"auc": roc_auc_score(y_test, proba),
                         "accuracy": accuracy_score(y_test, predicted),
                         "f1": f1_score(y_test, predicted)})
        report = workdir / name / "predictions.json"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps({"proba": proba.round(4).tolist()}))
        run.log_artifact(report.parent, "evaluation")
        return run.id


def main() -> int:
    x, y = load_breast_cancer(return_X_y=True)
    data = train_test_split(x, y, test_size=0.25, random_state=42, stratify=y)
    with tempfile.TemporaryDirectory() as tmp:
        run_ids = [train_one(name, data, Path(tmp)) for name in CANDIDATES]
    print(f"tracked {len(run_ids)} runs in experiment {EXPERIMENT!r} "
          f"(store: {loopml.load_settings().home.resolve()})\n")
    best = loopml.search_runs(EXPERIMENT, filter="metrics.auc > 0.9",
                              order_by=["metrics.auc desc"], max_results=1)
    if not best:
        print("no run reached AUC 0.9: something is wrong", file=sys.stderr)
        return 1
    print(f"best run: {best[0].name} auc={best[0].metrics['auc']:.4f}\n")
    command = [sys.executable, "-m", "loopml.cli.main", "runs", "compare", *run_ids]
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
