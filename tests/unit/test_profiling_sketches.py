"""The sketches under column profiles: quantiles, distinct counts, categories, stable hashes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from loopml.errors import InvalidArgument
from loopml.profiling.categories import CategoryCounter
from loopml.profiling.distinct import HyperLogLog
from loopml.profiling.duplicates import DuplicateFinder
from loopml.profiling.hashing import hash_array, hash_numbers, hash_strings
from loopml.profiling.quantiles import MAX_BUCKETS, RELATIVE_ACCURACY, QuantileSketch

QS = np.array([0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0])


def _samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "normal": rng.normal(3.0, 2.0, 200_000),
        "lognormal": rng.lognormal(0.0, 2.5, 200_000),
        "negatives and zeros": np.concatenate([rng.normal(0, 1000, 100_000), np.zeros(7_000),
                                               -rng.lognormal(0, 1, 20_000)]),
        "integers": rng.integers(-500, 100_000, 150_000).astype(np.float64),
    }


@pytest.mark.parametrize("name", list(_samples()))
def test_quantiles_are_within_the_relative_accuracy(name: str) -> None:
    values = _samples()[name]
    sketch = QuantileSketch.from_values(values)
    estimated = sketch.quantiles(QS)
    exact = np.quantile(values, QS, method="lower")
    error = np.abs(estimated - exact) <= RELATIVE_ACCURACY * np.abs(exact) + 1e-12
    assert error.all(), list(zip(QS, estimated, exact, strict=True))
    assert RELATIVE_ACCURACY < 0.01
    assert sketch.count == len(values)


def test_cdf_matches_the_empirical_distribution() -> None:
    values = _samples()["negatives and zeros"]
    sketch = QuantileSketch.from_values(values)
    points = np.quantile(values, [0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98])
    empirical = np.searchsorted(np.sort(values), points, side="right") / len(values)
    assert np.abs(sketch.cdf(points) - empirical).max() < 0.01
    assert sketch.cdf(np.array([-1e300, 1e300])).tolist() == [0.0, 1.0]


def test_merging_sketches_gives_exactly_the_sketch_of_all_values() -> None:
    values = _samples()["negatives and zeros"]
    whole = QuantileSketch.from_values(values)
    parts = [QuantileSketch.from_values(part) for part in np.array_split(values, 7)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    assert merged == whole
    assert parts[3].merge(parts[1]) == parts[1].merge(parts[3])


def test_weighted_values_equal_repeated_values() -> None:
    values = np.array([-3.0, 0.0, 2.5, 1e6])
    counts = np.array([2, 3, 1, 4])
    assert QuantileSketch.from_values(values, counts) == \
        QuantileSketch.from_values(np.repeat(values, counts))


def test_collapsing_keeps_the_bucket_count_bounded_and_the_merge_exact() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(0.0, 20.0, 50_000)  # 230 octaves: more than the buckets cover
    whole = QuantileSketch.from_values(values)
    assert len(whole.positive.counts) == MAX_BUCKETS
    merged = QuantileSketch.from_values(values[:1000]).merge(
        QuantileSketch.from_values(values[1000:]))
    assert merged == whole
    # The upper quantiles keep their accuracy; only the lowest buckets were collapsed.
    exact = np.quantile(values, 0.99, method="lower")
    assert abs(whole.quantiles(np.array([0.99]))[0] - exact) <= RELATIVE_ACCURACY * exact


def test_infinities_are_left_out_and_subnormals_count_as_zero() -> None:
    sketch = QuantileSketch.from_values(np.array([np.inf, -np.inf, 5e-324, 0.0, -0.0, 1.0]))
    assert (sketch.count, sketch.zeros) == (4, 3)


def test_sketch_serialisation_round_trips_and_rejects_garbage() -> None:
    sketch = QuantileSketch.from_values(_samples()["negatives and zeros"])
    text = json.dumps(sketch.to_dict())
    assert QuantileSketch.from_dict(json.loads(text)) == sketch
    assert len(text) < 8_000
    with pytest.raises(InvalidArgument, match="buckets per octave"):
        QuantileSketch.from_dict({**sketch.to_dict(), "buckets_per_octave": 10})
    with pytest.raises(InvalidArgument, match="not a valid encoded array"):
        QuantileSketch.from_dict({**sketch.to_dict(), "positive": [0, "%%%"]})
    empty = QuantileSketch()
    assert QuantileSketch.from_dict(empty.to_dict()) == empty
    assert np.isnan(empty.quantiles(np.array([0.5]))).all()


@pytest.mark.parametrize("distinct", [0, 1, 100, 5_000, 100_000, 1_000_000])
def test_hyperloglog_estimates_distinct_counts(distinct: int) -> None:
    values = np.arange(distinct, dtype=np.int64) * 7919
    sketch = HyperLogLog()
    for part in np.array_split(np.concatenate([values, values[: distinct // 2]]), 9):
        sketch = sketch.with_hashes(hash_numbers(part))
    estimate = sketch.estimate()
    assert abs(estimate - distinct) <= max(0.03 * distinct, 1.0), estimate


def test_hyperloglog_merge_is_exact_and_serialises() -> None:
    hashes = hash_numbers(np.arange(300_000, dtype=np.int64))
    whole = HyperLogLog().with_hashes(hashes)
    merged = HyperLogLog().with_hashes(hashes[:100_000]).merge(
        HyperLogLog().with_hashes(hashes[100_000:]))
    assert merged == whole
    assert HyperLogLog.from_dict(json.loads(json.dumps(whole.to_dict()))) == whole
    assert len(json.dumps(whole.to_dict())) < 6_000
    with pytest.raises(InvalidArgument, match="precision"):
        HyperLogLog.from_dict({**whole.to_dict(), "precision": 14})


def test_hashes_are_stable_across_processes() -> None:
    code = ("import numpy as np, pyarrow as pa; from loopml.profiling.hashing import hash_array;"
            "print(hash_array(pa.array(['a', 'bc', ''])).tolist(),"
            " hash_array(pa.array([1.5, -0.0])).tolist())")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)}
    assert len(runs) == 1
    here = f"{hash_array(pa.array(['a', 'bc', ''])).tolist()} " \
           f"{hash_array(pa.array([1.5, -0.0])).tolist()}"
    assert runs == {here + "\n"}


def test_hashes_identify_values_not_their_layout() -> None:
    strings = pa.array(["apple", None, "", "apple", "pear" * 50])
    assert hash_strings(strings.slice(1)).tolist() == hash_strings(strings).tolist()[1:]
    assert hash_strings(strings.cast(pa.large_string())).tolist() == \
        hash_strings(strings).tolist()
    present = strings.drop_null()
    assert hash_array(present.dictionary_encode()).tolist() == hash_strings(present).tolist()
    assert hash_numbers(np.array([0.0])).tolist() == hash_numbers(np.array([-0.0])).tolist()
    distinct = hash_array(pa.array([f"value {i}" for i in range(50_000)]))
    assert len(np.unique(distinct)) == 50_000
    with pytest.raises(InvalidArgument, match="cannot hash"):
        hash_array(pa.array([[1, 2]]))


def test_category_counter_is_exact_under_capacity_and_merges() -> None:
    array = pa.array(["b", "a", None, "b", "c", "b", "a"])
    counter = CategoryCounter.from_arrow(array)
    assert counter.items == (("b", 3), ("a", 2), ("c", 1))
    assert counter.complete and counter.total == 6
    merged = counter.merge(CategoryCounter.from_arrow(pa.array(["c", "d"]).dictionary_encode()))
    assert merged.counts() == {"b": 3, "a": 2, "c": 2, "d": 1}
    assert CategoryCounter.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged


def test_category_counter_keeps_the_top_values_past_its_capacity() -> None:
    values = ["common"] * 50 + ["rare"] * 2 + [f"once {i}" for i in range(20)]
    counter = CategoryCounter.from_arrow(pa.array(values), capacity=2)
    assert counter.items == (("common", 50), ("rare", 2))
    assert counter.other == 20 and not counter.complete
    merged = counter.merge(CategoryCounter.from_arrow(pa.array(["rare"] * 60), capacity=2))
    assert merged.items == (("rare", 62), ("common", 50)) and merged.other == 20


def test_duplicate_finder_is_exact_across_batches() -> None:
    finder = DuplicateFinder()
    rng = np.random.default_rng(5)
    values = rng.permutation(100_000)
    for start in range(0, 100_000, 7_000):
        finder.add(pa.array(values[start:start + 7_000]), first_row=start)
    assert finder.duplicates == 0
    finder.add(pa.array([values[10], None, values[99_999], values[10]]), first_row=100_000)
    assert finder.duplicates == 3
    assert finder.examples == [int(values[10]), int(values[99_999])]
    assert finder.rows == [100_000, 100_002]
