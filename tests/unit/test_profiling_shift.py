"""Value skew between a parent version's profile and a child's."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pyarrow as pa
import pytest

from loopml.errors import InvalidArgument
from loopml.profiling import profile_shift, profile_table


def _profile(seed: int, *, mean: float = 0.0, std: float = 1.0, weights: tuple[float, ...] = (
        0.5, 0.3, 0.2), null_share: float = 0.0, rows: int = 20_000):
    rng = np.random.default_rng(seed)
    return profile_table(pa.table({
        "x": pa.array(rng.normal(mean, std, rows), mask=rng.random(rows) < null_share),
        "c": pa.array(rng.choice(["a", "b", "c"], size=rows, p=list(weights))),
        "constant": pa.array([1.0] * rows),
    }))


def test_no_shift_between_samples_of_one_distribution() -> None:
    assert profile_shift(_profile(1), _profile(2)) == []


def test_mean_shift_in_parent_standard_deviations() -> None:
    shifts = profile_shift(_profile(1), _profile(2, mean=0.8))
    assert [(s.column, s.kind) for s in shifts] == [("x", "mean_shift")]
    shift = shifts[0]
    assert shift.value == pytest.approx(0.8, abs=0.05) and shift.threshold == 0.5
    assert shift.message.startswith("column 'x': mean moved from ")
    assert profile_shift(_profile(1), _profile(2, mean=0.8), mean_shift=1.0) == []


def test_variance_ratio_either_way() -> None:
    wider = profile_shift(_profile(1), _profile(2, std=1.6))
    assert [(s.kind, round(s.value, 1)) for s in wider] == [("variance_ratio", 2.6)]
    narrower = profile_shift(_profile(1), _profile(2, std=0.6))
    assert narrower[0].kind == "variance_ratio" and "shrank" in narrower[0].message


def test_category_shift_by_total_variation() -> None:
    shifts = profile_shift(_profile(1), _profile(2, weights=(0.2, 0.3, 0.5)))
    assert [(s.column, s.kind) for s in shifts] == [("c", "category_shift")]
    assert shifts[0].value == pytest.approx(0.3, abs=0.02)
    assert re.search(r"largest changes: 'a' 49\.\d% → 20\.\d%, 'c' 20\.\d% → 49\.\d%",
                     shifts[0].message)


def test_null_share_and_constant_columns() -> None:
    shifts = profile_shift(_profile(1), _profile(2, null_share=0.3))
    assert [s.kind for s in shifts] == ["null_shift"]
    rng = np.random.default_rng(0)
    parent = profile_table(pa.table({"k": pa.array([1.0] * 100)}))
    child = profile_table(pa.table({"k": pa.array(rng.normal(2.0, 1.0, 100))}))
    kinds = {s.kind: s.value for s in profile_shift(parent, child)}
    assert kinds["variance_ratio"] == math.inf and kinds["mean_shift"] > 0.5


def test_shifts_are_plain_values_and_thresholds_are_checked() -> None:
    shift = profile_shift(_profile(1), _profile(2, mean=3.0))[0]
    assert json.loads(json.dumps(dataclasses.asdict(shift)))["kind"] == "mean_shift"
    with pytest.raises(InvalidArgument, match="variance_ratio >= 1"):
        profile_shift(_profile(1), _profile(2), variance_ratio=0.5)


def test_columns_added_or_retyped_are_not_shifts() -> None:
    parent = profile_table(pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]}))
    child = profile_table(pa.table({"a": ["1", "2", "3"], "c": [1.0, 2.0, 3.0]}))
    assert profile_shift(parent, child) == []
