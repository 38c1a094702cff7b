"""The loopml demo, on the embedded default store (./.loopml), with no configuration:

1. the bundled breast-cancer data becomes a dataset version (schema + statistics);
2. four scikit-learn models train on it, each a tracked run (params, metric curves,
   artifacts, code and environment; the dataset version recorded as the run's input);
3. every model is logged and registered; the best by AUC gets the ``production`` alias
   (an audited move);
4. ``models:/breast-cancer@production`` is loaded back and scores the holdout rows;
5. a retraining pipeline (prepare → train → evaluate → register if it beats the champion)
   runs twice: the second run is served from the step cache, and its register step is
   skipped because the challenger does not beat the champion;
6. the CLI prints the comparison table, the registry, the pipeline's DAG and the lineage.

    make demo          # or: python examples/demo.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
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
DATASET = "breast-cancer"
MODEL = "breast-cancer"

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


def cli(*args: str) -> int:
    print(f"\n$ loopml {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "loopml.cli.main", *args])


def register_data(workdir: Path) -> str:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    path = workdir / "breast_cancer.csv"
    frame.to_csv(path, index=False)
    version = loopml.datasets.add(path, DATASET, message="scikit-learn's bundled data")
    state = "unchanged" if version.unchanged else "new"
    print(f"dataset {version.ref} ({state}): {version.rows} rows, "
          f"{len(version.schema or [])} columns")
    return version.ref


def train_one(name: str, data_ref: str) -> str:
    build, params = CANDIDATES[name]
    with loopml.start_run(EXPERIMENT, name=name) as run:
        frame = loopml.datasets.load_table(data_ref)  # recorded as this run's input
        x, y = frame.drop(columns="target"), frame["target"]
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=0.25, random_state=42, stratify=y)
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
        run.log_dict({"holdout_rows": len(x_test)}, "evaluation/summary.json")
        info = loopml.log_model(model, input_example=x_train.head(5),
                                registered_model_name=MODEL)
        assert info.registered_version is not None
        print(f"  {name:7s} auc={roc_auc_score(y_test, proba):.4f} -> "
              f"registered {info.registered_version.ref}")
        return run.id


@loopml.step
def prepare(data: loopml.Dataset) -> pd.DataFrame:
    return data.to_pandas()


@loopml.step
def train(frame: pd.DataFrame, *, learning_rate: float) -> GradientBoostingClassifier:
    x_train, _, y_train, _ = _split(frame)
    return GradientBoostingClassifier(learning_rate=learning_rate, random_state=0).fit(
        x_train, y_train)


@loopml.step
def evaluate(model: GradientBoostingClassifier, frame: pd.DataFrame) -> dict[str, float]:
    _, x_test, _, y_test = _split(frame)
    auc = float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))
    loopml.log_metric("auc", auc)
    return {"auc": auc}


def _split(frame: pd.DataFrame) -> list[pd.DataFrame]:
    return train_test_split(frame.drop(columns="target"), frame["target"], test_size=0.25,
                            random_state=42, stratify=frame["target"])


@loopml.pipeline
def retrain(data: loopml.Dataset = loopml.Dataset(f"{DATASET}@latest"),
            learning_rate: float = 0.1):
    frame = prepare(data)
    model = train(frame, learning_rate=learning_rate)
    metrics = evaluate(model, frame)
    loopml.register(model, name=MODEL, metrics=metrics, alias="production",
                    when="metrics['auc'] > champion['auc']")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        data_ref = register_data(Path(tmp))
    run_ids = [train_one(name, data_ref) for name in CANDIDATES]
    client = loopml.client.default_client()
    best = client.best_model_version(MODEL, metric="auc", where=f"attributes.run_id IN "
                                     f"({', '.join(repr(r) for r in run_ids)})")
    if best is None or best.metrics["auc"] < 0.9:
        print("no model reached AUC 0.9: something is wrong", file=sys.stderr)
        return 1
    client.set_model_alias(MODEL, "production", best.version,
                           reason=f"best auc of this demo run ({best.metrics['auc']:.4f})")
    # Tree models are stored with skops, which asks for trust before loading some of their
    # types: these are our own models, trained a moment ago.
    production = loopml.load_model(f"models:/{MODEL}@production", trusted=True)
    frame = loopml.datasets.load_table(data_ref)
    sample = frame.drop(columns="target").sample(50, random_state=1)
    accuracy = (production.predict(sample) == frame.loc[sample.index, "target"]).mean()
    print(f"\nmodels:/{MODEL}@production is {best.ref} ({best.flavor}); "
          f"accuracy on 50 rows: {accuracy:.2f}")
    if accuracy < 0.8:
        return 1
    print("\nretraining pipeline, twice (the second run reuses every cached step):")
    first = retrain.run(progress=True)
    again = retrain.run(progress=True)
    if again.step("train").status.value != "cached":
        return 1
    codes = [cli("runs", "compare", *run_ids),
             cli("models", "versions", MODEL),
             cli("models", "history", MODEL, "--alias", "production"),
             cli("pipelines", "show", first.run_id),
             cli("data", "lineage", data_ref)]
    return 1 if any(codes) else 0


if __name__ == "__main__":
    sys.exit(main())
