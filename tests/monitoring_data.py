"""A deterministic synthetic table for drift tests and the monitoring benchmark.

25 columns: 20 numeric (normal, lognormal, integer counts, uniform, bimodal, exponential; one
with nulls) and 5 categorical (3 to 30 categories with Zipf-like frequencies; one with nulls).
The same ``seed`` always gives the same table. Shifts are applied per column:

- ``mean_shift[name] = d``: the values move by ``d`` population standard deviations;
- ``scale[name] = f``: deviations from the population mean are multiplied by ``f``
  (the standard deviation grows ``f`` times);
- ``category_shift[name] = d``: the second most frequent category gains ``d`` (a share, 0.1 is
  ten points), taken from the others in proportion.

Integer columns stay integers: shifted values are rounded stochastically, which keeps the mean
shift exact. ``REAL_SHIFTS`` and ``TRIVIAL_SHIFTS`` are the standard scenario: changes that a
drift rule must flag and changes too small to matter.

Import it from tests as ``monitoring_data`` (``tests/`` is on ``sys.path`` under pytest) or from a
script after adding the ``tests`` directory to ``sys.path``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = [
    "CATEGORICAL_COLUMNS",
    "COLUMNS",
    "NO_SHIFTS",
    "NUMERIC_COLUMNS",
    "REAL_SHIFTS",
    "TRIVIAL_SHIFTS",
    "Shifts",
    "monitoring_table",
]

Array = np.ndarray[Any, Any]
Sampler = Callable[[np.random.Generator, int], Array]


@dataclass(frozen=True)
class _Numeric:
    sample: Sampler
    mean: float
    std: float
    integer: bool = False
    null_share: float = 0.0


def _lognormal(mu: float, sigma: float) -> _Numeric:
    mean = math.exp(mu + sigma**2 / 2)
    std = math.sqrt((math.exp(sigma**2) - 1) * math.exp(2 * mu + sigma**2))
    return _Numeric(lambda rng, n: rng.lognormal(mu, sigma, n), mean, std)


def _uniform(low: float, high: float) -> _Numeric:
    return _Numeric(lambda rng, n: rng.uniform(low, high, n), (low + high) / 2,
                    (high - low) / math.sqrt(12))


def _mixture(weight: float, first: tuple[float, float], second: tuple[float, float]) -> _Numeric:
    (m1, s1), (m2, s2) = first, second
    mean = weight * m1 + (1 - weight) * m2
    second_moment = weight * (s1**2 + m1**2) + (1 - weight) * (s2**2 + m2**2)

    def sample(rng: np.random.Generator, n: int) -> Array:
        pick = rng.random(n) < weight
        return np.where(pick, rng.normal(m1, s1, n), rng.normal(m2, s2, n))

    return _Numeric(sample, mean, math.sqrt(second_moment - mean**2))


def _poisson(lam: float) -> _Numeric:
    return _Numeric(lambda rng, n: rng.poisson(lam, n), lam, math.sqrt(lam), integer=True)


NUMERIC: dict[str, _Numeric] = {
    "normal_a": _Numeric(lambda rng, n: rng.normal(0.0, 1.0, n), 0.0, 1.0),
    "normal_b": _Numeric(lambda rng, n: rng.normal(50.0, 10.0, n), 50.0, 10.0),
    "normal_c": _Numeric(lambda rng, n: rng.normal(-20.0, 5.0, n), -20.0, 5.0),
    "normal_d": _Numeric(lambda rng, n: rng.normal(1000.0, 100.0, n), 1000.0, 100.0),
    "normal_nulls": _Numeric(lambda rng, n: rng.normal(5.0, 2.0, n), 5.0, 2.0, null_share=0.05),
    "lognormal_a": _lognormal(0.0, 0.5),
    "lognormal_b": _lognormal(3.0, 1.0),
    "lognormal_c": _lognormal(1.0, 0.25),
    "exponential": _Numeric(lambda rng, n: rng.exponential(2.0, n), 2.0, 2.0),
    "count_a": _poisson(0.5),
    "count_b": _poisson(3.0),
    "count_c": _poisson(20.0),
    "count_d": _Numeric(lambda rng, n: rng.negative_binomial(2, 0.2, n), 8.0, math.sqrt(40.0),
                        integer=True),
    "int_uniform": _Numeric(lambda rng, n: rng.integers(0, 100, n), 49.5,
                            math.sqrt((100**2 - 1) / 12), integer=True),
    "uniform_a": _uniform(0.0, 1.0),
    "uniform_b": _uniform(-5.0, 5.0),
    "uniform_c": _uniform(100.0, 200.0),
    "bimodal_a": _mixture(0.5, (-2.0, 1.0), (2.0, 1.0)),
    "bimodal_b": _mixture(0.3, (0.0, 1.0), (5.0, 0.5)),
    "bimodal_c": _mixture(0.5, (10.0, 1.0), (20.0, 2.0)),
}

# name: (number of categories, share of nulls)
CATEGORICAL: dict[str, tuple[int, float]] = {
    "cat_3": (3, 0.0), "cat_5": (5, 0.02), "cat_10": (10, 0.0), "cat_20": (20, 0.0),
    "cat_30": (30, 0.0),
}

NUMERIC_COLUMNS = tuple(NUMERIC)
CATEGORICAL_COLUMNS = tuple(CATEGORICAL)
COLUMNS = NUMERIC_COLUMNS + CATEGORICAL_COLUMNS


@dataclass(frozen=True)
class Shifts:
    """Changes applied to the generated columns (see the module docstring)."""

    mean_shift: Mapping[str, float] = field(default_factory=dict)
    scale: Mapping[str, float] = field(default_factory=dict)
    category_shift: Mapping[str, float] = field(default_factory=dict)

    @property
    def columns(self) -> set[str]:
        return {*self.mean_shift, *self.scale, *self.category_shift}


NO_SHIFTS = Shifts()
REAL_SHIFTS = Shifts(
    mean_shift={"normal_b": 0.5, "lognormal_a": 0.5, "count_b": 0.5},
    scale={"uniform_b": 1.5, "bimodal_a": 1.5},
    category_shift={"cat_3": 0.10, "cat_10": 0.10})
TRIVIAL_SHIFTS = Shifts(
    mean_shift={"normal_a": 0.02, "normal_d": 0.02, "count_c": 0.02, "exponential": 0.02},
    category_shift={"cat_5": 0.005, "cat_20": 0.005})


def _stochastic_round(rng: np.random.Generator, values: Array) -> Array:
    return np.floor(values + rng.random(len(values))).astype(np.int64)


def _numeric(rng: np.random.Generator, spec: _Numeric, rows: int, shift: float,
             scale: float) -> pa.Array:
    values = spec.sample(rng, rows)
    if shift or scale != 1.0:
        moved = spec.mean + scale * (values - spec.mean) + shift * spec.std
        values = _stochastic_round(rng, moved) if spec.integer else moved
    nulls = rng.random(rows) < spec.null_share if spec.null_share else None
    return pa.array(values, mask=nulls)


def _probabilities(categories: int, shift: float) -> Array:
    weights = 1.0 / np.arange(1, categories + 1)
    p = weights / weights.sum()
    if shift:
        gained = p[1] + shift
        p = p * (1.0 - gained) / (1.0 - p[1])
        p[1] = gained
    return np.asarray(p)


def _categorical(rng: np.random.Generator, categories: int, null_share: float, rows: int,
                 shift: float) -> pa.Array:
    p = _probabilities(categories, shift)
    indices = rng.choice(categories, size=rows, p=p).astype(np.int32)
    labels = pa.array([f"{chr(ord('a') + i // 26)}{chr(ord('a') + i % 26)}"
                       for i in range(categories)])
    mask = rng.random(rows) < null_share if null_share else None
    return pa.DictionaryArray.from_arrays(pa.array(indices, mask=mask), labels)


def monitoring_table(rows: int, *, seed: int, shifts: Shifts = NO_SHIFTS) -> pa.Table:
    """``rows`` rows of the 25 columns, generated from ``seed``, with ``shifts`` applied."""
    unknown = shifts.columns - set(COLUMNS)
    if unknown:
        raise ValueError(f"no generated column(s) {sorted(unknown)}; columns: {COLUMNS}")
    # One independent stream per column, so that shifting a column changes no other column.
    streams = np.random.SeedSequence(seed).spawn(len(COLUMNS))
    arrays: dict[str, pa.Array] = {}
    for stream, name in zip(streams, COLUMNS, strict=True):
        rng = np.random.default_rng(stream)
        if name in NUMERIC:
            arrays[name] = _numeric(rng, NUMERIC[name], rows, shifts.mean_shift.get(name, 0.0),
                                    shifts.scale.get(name, 1.0))
        else:
            categories, null_share = CATEGORICAL[name]
            arrays[name] = _categorical(rng, categories, null_share, rows,
                                        shifts.category_shift.get(name, 0.0))
    return pa.table(arrays)
