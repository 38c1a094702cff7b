"""The churn model's retraining pipeline: what the demo's agent runs when a trigger fires.

::

    prepare (the newest version of the ``churn`` dataset)
      -> train (on its training rows: the gate's held-out rows are left out)
      -> evaluate (AUC on the held-out rows)
      -> register (a new version of the ``churn`` model)

The pipeline only registers: whether a version goes live is decided afterwards by the gate
and the rollout policy of the trigger that started the run (see ``loopml.yaml`` in the
demo's workspace). The demo copies this file into its workspace and edits it there once (a
code change); ``features="small"`` gives the deliberately weaker model of the demo.
"""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler

import loopml
from loopml.automation.gate import split_holdout

MODEL = "churn"
TARGET = "churned"
NUMERIC = ["tenure_months", "monthly_charges", "support_calls"]
CATEGORICAL = ["contract", "region"]
FEATURES = NUMERIC + CATEGORICAL


@loopml.step
def prepare(data: loopml.Dataset) -> pd.DataFrame:
    return data.to_pandas()


@loopml.step
def train(frame: pd.DataFrame, *, features: str) -> Pipeline:
    rows, _ = split_holdout(frame)  # the rows the gate holds out are never trained on
    if features == "small":  # two features only: the cheap model someone wants to try
        columns = [("numeric", StandardScaler(), ["tenure_months", "support_calls"])]
    else:
        columns = [("numeric", StandardScaler(), NUMERIC),
                   ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)]
    region_x_contract = False
    if region_x_contract and features != "small":
        # Products of the region and contract indicators. The demo's bad version: unlike
        # the encoder above, this one refuses a category it never saw (handle_unknown
        # defaults to "error"), which the held-out rows of the gate cannot show.
        crossed = make_pipeline(OneHotEncoder(sparse_output=False), PolynomialFeatures(
            2, interaction_only=True, include_bias=False))
        columns.append(("region_x_contract", crossed, CATEGORICAL))
    model = make_pipeline(ColumnTransformer(columns), LogisticRegression(max_iter=1000))
    return model.fit(rows[FEATURES], rows[TARGET])


@loopml.step
def evaluate(model: Pipeline, frame: pd.DataFrame) -> dict[str, float]:
    rows, held_out = split_holdout(frame)
    scores = model.predict_proba(held_out[FEATURES])[:, 1]
    return {"val_auc": float(roc_auc_score(held_out[TARGET], scores)),
            "train_rows": float(len(rows))}


@loopml.step
def input_example(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[FEATURES].head(5)


@loopml.pipeline
def retrain(data: loopml.Dataset = loopml.Dataset("churn@latest"),
            features: str = "all") -> None:
    frame = prepare(data)
    model = train(frame, features=features)
    loopml.register(model, name=MODEL, metrics=evaluate(model, frame),
                    input_example=input_example(frame))
