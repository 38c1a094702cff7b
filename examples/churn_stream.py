"""A synthetic but realistic stream of telecom customers for the demo, with known changes.

Each customer has five features and, once a month has passed, a label (``churned``):

- ``tenure_months`` (months as a customer), ``monthly_charges`` (what the plan costs),
  ``support_calls`` (in the last quarter), ``contract`` (month-to-month, one-year,
  two-year) and ``region`` (north, south, east, west).

The world changes at known weeks:

- before week :data:`DRIFT_WEEK`, churn follows contracts, support calls, tenure and, mildly,
  price;
- from week :data:`DRIFT_WEEK` (a concept drift, with covariate shift): prices rise by
  about 12 a month and customers become much more price-sensitive, and a competitor opens in
  the south that wins month-to-month customers there;
- from week :data:`NEW_REGION_WEEK` the company also sells in a new region, ``central``: live
  traffic has such customers at once, labelled data only a month later.

``customers(week, rows, seed=...)`` draws one week's customers (with their labels drawn from
the week's true churn probability); ``requests(...)`` the same rows as prediction requests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DRIFT_WEEK", "FEATURES", "NEW_REGION_WEEK", "TARGET", "customers", "history",
           "requests"]

DRIFT_WEEK = 11
NEW_REGION_WEEK = 15
FEATURES = ["tenure_months", "monthly_charges", "support_calls", "contract", "region"]
TARGET = "churned"
CONTRACTS = ("month-to-month", "one-year", "two-year")
REGIONS = ("north", "south", "east", "west")


def _features(rng: np.random.Generator, week: int, rows: int, *,
              new_region_share: float) -> pd.DataFrame:
    drifted = week >= DRIFT_WEEK
    tenure = np.minimum(72.0, 1.0 + rng.gamma(1.3, 16.0, rows)).round(1)
    charges = rng.normal(64.0 + (12.0 if drifted else 0.0), 18.0, rows).clip(18, 150).round(2)
    calls = rng.poisson(1.6 if drifted else 1.2, rows)
    contract = rng.choice(CONTRACTS, rows, p=[0.58, 0.26, 0.16] if drifted
                          else [0.5, 0.3, 0.2])
    region = rng.choice(REGIONS, rows)
    if new_region_share > 0 and week >= NEW_REGION_WEEK:
        region = np.where(rng.random(rows) < new_region_share, "central", region)
    return pd.DataFrame({"tenure_months": tenure, "monthly_charges": charges,
                         "support_calls": calls.astype("int64"), "contract": contract,
                         "region": region})


def churn_probability(frame: pd.DataFrame, week: int) -> np.ndarray:
    """The true probability that each customer of ``frame`` leaves, in ``week``."""
    m2m = (frame["contract"] == "month-to-month").to_numpy()
    two_year = (frame["contract"] == "two-year").to_numpy()
    south = (frame["region"] == "south").to_numpy()
    calls = frame["support_calls"].to_numpy()
    tenure = frame["tenure_months"].to_numpy()
    price = frame["monthly_charges"].to_numpy() - 64.0
    if week < DRIFT_WEEK:  # unhappy customers leave: support calls, short contracts
        logit = -1.8 + 1.3 * m2m - 0.9 * two_year + 0.5 * calls - 0.03 * tenure + 0.005 * price
    else:  # a cheaper competitor: the price decides, and the south's month-to-month go
        logit = (-1.9 + 0.5 * m2m - 0.4 * two_year + 0.05 * calls - 0.015 * tenure
                 + 0.06 * price + 2.6 * (south & m2m) - 1.0 * south)
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=float)


def customers(week: int, rows: int, *, seed: int) -> pd.DataFrame:
    """``rows`` labelled customers of ``week`` (labels: what they did a month later)."""
    rng = np.random.default_rng([seed, week])
    frame = _features(rng, week, rows, new_region_share=0.0)
    frame[TARGET] = (rng.random(rows) < churn_probability(frame, week)).astype("int64")
    return frame


def history(weeks: range, rows_per_week: int, *, seed: int) -> pd.DataFrame:
    """Labelled customers of several weeks, oldest first."""
    return pd.concat([customers(week, rows_per_week, seed=seed) for week in weeks],
                     ignore_index=True)


def requests(week: int, rows: int, *, seed: int,
             new_region_share: float = 0.2) -> list[dict[str, Any]]:
    """``rows`` prediction requests of ``week`` (one customer each, no label); from
    :data:`NEW_REGION_WEEK` on, ``new_region_share`` of them come from ``central``."""
    rng = np.random.default_rng([seed, week, 1])
    frame = _features(rng, week, rows, new_region_share=new_region_share)
    return [{key: value.item() if hasattr(value, "item") else value
             for key, value in row.items()} for row in frame.to_dict("records")]
