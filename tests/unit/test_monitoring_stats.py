"""Drift statistics from two column profiles, checked against the same statistics computed
from the raw values and against closed forms of the distributions."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from loopml.errors import InvalidArgument
from loopml.monitoring.stats import (
    bonferroni,
    categorical_statistics,
    chi2_sf,
    holm,
    kolmogorov_sf,
    ks_p_value,
    numeric_statistics,
)
from loopml.profiling import CategoryCounter, ColumnProfile, profile_table


def column(values: object) -> ColumnProfile:
    return profile_table(pa.table({"x": values}))["x"]


def raw_ks(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.union1d(a, b)
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def raw_wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.union1d(a, b)
    cdf_a = np.searchsorted(np.sort(a), grid[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid[:-1], side="right") / len(b)
    return float(np.dot(np.abs(cdf_a - cdf_b), np.diff(grid)))


# -- distributions ------------------------------------------------------------------------------

def test_kolmogorov_sf_matches_its_alternating_series_on_both_branches() -> None:
    for x in np.linspace(0.6, 3.0, 41):
        series = 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * x * x) for j in range(1, 200))
        assert kolmogorov_sf(float(x)) == pytest.approx(series, rel=1e-9, abs=1e-15)
    assert kolmogorov_sf(0.0) == 1.0 and kolmogorov_sf(0.05) == 1.0
    assert kolmogorov_sf(1.3581) == pytest.approx(0.05, abs=1e-4)  # the classic 5% point


def test_ks_p_value_applies_the_small_sample_correction() -> None:
    n = m = 50
    effective = math.sqrt(n * m / (n + m))
    assert ks_p_value(0.2, n, m) == pytest.approx(
        kolmogorov_sf((effective + 0.12 + 0.11 / effective) * 0.2))
    assert ks_p_value(0.0, 10, 10) == 1.0
    with pytest.raises(InvalidArgument, match="both sides"):
        ks_p_value(0.1, 0, 10)


@pytest.mark.parametrize("x", [0.0, 0.01, 0.5, 1.0, 3.84, 10.0, 50.0, 300.0])
def test_chi2_sf_matches_closed_forms(x: float) -> None:
    assert chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-9, abs=1e-300)
    assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-9, abs=1e-300)
    assert chi2_sf(x, 4) == pytest.approx(math.exp(-x / 2) * (1 + x / 2), rel=1e-9, abs=1e-300)


def test_chi2_sf_for_many_degrees_of_freedom_is_near_normal() -> None:
    # Wilson–Hilferty: (X/k)^(1/3) is close to normal with mean 1 − 2/(9k), var 2/(9k).
    k = 999
    for x in (900.0, 1000.0, 1100.0):
        z = ((x / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
        assert chi2_sf(x, k) == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), abs=2e-3)
    with pytest.raises(InvalidArgument, match="degree of freedom"):
        chi2_sf(1.0, 0)


def test_holm_and_bonferroni_adjustments() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert bonferroni(p) == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == []


# -- numbers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["normal", "shifted", "wider", "signed_with_zeros", "lognormal"])
def test_numeric_statistics_agree_with_the_raw_values(name: str) -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(0.0, 1.0, 20_000)
    current = {
        "normal": rng.normal(0.0, 1.0, 800),
        "shifted": rng.normal(0.5, 1.0, 800),
        "wider": rng.normal(0.0, 1.5, 800),
        "signed_with_zeros": np.where(rng.random(800) < 0.2, 0.0, rng.normal(-0.3, 1.0, 800)),
        "lognormal": rng.lognormal(0.0, 0.5, 800),
    }[name]
    statistics = numeric_statistics(column(reference), column(current))
    ks = raw_ks(reference, current)
    assert statistics["ks"] == pytest.approx(ks, abs=0.01)
    # Same statistic up to the bucketing: p-values within a factor of the KS tail's slope.
    assert statistics["ks_p_value"] == pytest.approx(ks_p_value(ks, 20_000, 800), rel=0.5,
                                                     abs=1e-3)
    wasserstein = raw_wasserstein(reference, current) / reference.std()
    assert statistics["wasserstein"] == pytest.approx(wasserstein, rel=0.03, abs=0.005)


def test_integer_ties_give_the_exact_ks_statistic() -> None:
    rng = np.random.default_rng(1)
    reference, current = rng.poisson(3, 50_000), rng.poisson(3.4, 700)
    statistics = numeric_statistics(column(reference), column(current))
    assert statistics["ks"] == pytest.approx(raw_ks(reference, current), abs=1e-12)
    same = numeric_statistics(column(reference), column(rng.poisson(3, 700)))
    assert same["ks_p_value"] > 0.01 and same["psi"] < 0.1


def test_wasserstein_is_in_reference_standard_deviations() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(50.0, 10.0, 50_000)
    moved = numeric_statistics(column(reference), column(rng.normal(55.0, 10.0, 50_000)))
    assert moved["wasserstein"] == pytest.approx(0.5, abs=0.02)
    # Coarse buckets (spread small next to magnitude): the exact means still count.
    offset = rng.normal(10_000.0, 10.0, 50_000)
    offset_moved = numeric_statistics(column(offset), column(offset + 5.0))
    assert offset_moved["wasserstein"] >= 0.49


def test_psi_uses_reference_deciles() -> None:
    rng = np.random.default_rng(3)
    reference = rng.uniform(0, 1, 100_000)
    assert numeric_statistics(column(reference), column(rng.uniform(0, 1, 100_000)))["psi"] < 0.01
    current = rng.uniform(0, 1, 100_000) ** 1.5
    edges = np.quantile(reference, np.arange(1, 10) / 10)
    p = np.bincount(np.searchsorted(edges, reference), minlength=10) / len(reference)
    q = np.bincount(np.searchsorted(edges, current), minlength=10) / len(current)
    expected = float(((q - p) * np.log(q / p)).sum())
    assert numeric_statistics(column(reference), column(current))["psi"] == pytest.approx(
        expected, rel=0.05)


def test_constant_columns() -> None:
    five = column(np.full(1000, 5.0))
    same = numeric_statistics(five, column(np.full(200, 5.0)))
    assert same == {"ks": 0.0, "ks_p_value": 1.0, "wasserstein": 0.0, "psi": 0.0}
    # 0.1 summed 1000 and 200 times: means that differ in the last bit are the same value.
    tenth = numeric_statistics(column(np.full(1000, 0.1)), column(np.full(200, 0.1)))
    assert tenth["wasserstein"] == 0.0 and tenth["ks"] == 0.0
    other = numeric_statistics(five, column(np.full(200, 6.0)))
    assert other["ks"] == 1.0 and other["ks_p_value"] < 1e-30
    assert other["wasserstein"] == math.inf
    # A constant reference is measured in the current standard deviation.
    spread = np.random.default_rng(4).normal(5.0, 2.0, 5000)
    assert numeric_statistics(five, column(spread))["wasserstein"] == pytest.approx(
        np.abs(spread - 5.0).mean() / spread.std(), rel=0.03)


def test_infinite_values_count_in_the_tails_but_not_in_the_distance() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(0, 1, 10_000)
    with_inf = np.concatenate([rng.normal(0, 1, 900), np.full(100, np.inf)])
    statistics = numeric_statistics(column(reference), column(with_inf))
    assert statistics["ks"] == pytest.approx(0.1, abs=0.03)
    assert statistics["wasserstein"] < 0.15 and math.isfinite(statistics["psi"])
    only_inf = numeric_statistics(column(reference), column(np.array([-np.inf, np.inf] * 50)))
    assert only_inf["ks"] == pytest.approx(0.5) and only_inf["wasserstein"] == math.inf
    # A reference with infinities has no finite moments: the sketch gives the scale.
    reference_inf = numeric_statistics(column(np.append(reference, np.inf)),
                                       column(reference + 1.0))
    assert reference_inf["wasserstein"] == pytest.approx(1.0, abs=0.05)


def test_statistics_need_values_on_both_sides() -> None:
    values = column(np.arange(10.0))
    nothing = column(pa.array([None, None], type=pa.float64()))
    with pytest.raises(InvalidArgument, match="the current column has none"):
        numeric_statistics(values, nothing)
    with pytest.raises(InvalidArgument, match="the reference one is categorical"):
        numeric_statistics(column(["a", "b"]), values)
    hollow = ColumnProfile("categorical", 5, 0, categories=CategoryCounter())
    with pytest.raises(InvalidArgument, match="its category counts hold"):
        categorical_statistics(categorical({"a": 3}), hollow)


# -- categories ---------------------------------------------------------------------------------

def categorical(items: dict[str, int], other: int = 0) -> ColumnProfile:
    counter = CategoryCounter(tuple(items.items()), other)
    return ColumnProfile("categorical", counter.total, 0, categories=counter)


def test_chi2_matches_the_contingency_table() -> None:
    reference = {"a": 500, "b": 300, "c": 200}
    current = {"a": 40, "b": 40, "c": 20}
    statistics = categorical_statistics(categorical(reference), categorical(current))
    observed = np.array([list(reference.values()), list(current.values())], dtype=float)
    expected = observed.sum(1, keepdims=True) * observed.sum(0) / observed.sum()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert statistics["chi2"] == pytest.approx(chi2)
    assert statistics["chi2_dof"] == 2
    assert statistics["chi2_p_value"] == pytest.approx(math.exp(-chi2 / 2))  # 2 dof


def test_jensen_shannon_distance_base_2_and_psi() -> None:
    reference, current = categorical({"a": 50, "b": 50}), categorical({"a": 90, "b": 10})
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    m = (p + q) / 2
    divergence = 0.5 * (p * np.log2(p / m)).sum() + 0.5 * (q * np.log2(q / m)).sum()
    statistics = categorical_statistics(reference, current)
    assert statistics["jensen_shannon"] == pytest.approx(math.sqrt(divergence))
    assert statistics["psi"] == pytest.approx(float(((q - p) * np.log(q / p)).sum()))
    disjoint = categorical_statistics(categorical({"a": 10}), categorical({"b": 10}))
    assert disjoint["jensen_shannon"] == pytest.approx(1.0)
    assert categorical_statistics(reference, reference)["jensen_shannon"] == 0.0


def test_rare_cells_are_pooled_until_each_expects_five() -> None:
    reference = {f"c{i}": 10_000 // (i + 1) for i in range(30)}
    current = {f"c{i}": 100 // (i + 1) for i in range(30)}
    statistics = categorical_statistics(categorical(reference), categorical(current))
    # The current window (~390 values) expects 5 only from cells of ≥ ~1.3% of the rows.
    assert 2 <= statistics["chi2_dof"] < 29
    assert statistics["chi2_p_value"] > 0.05
    tiny = categorical_statistics(categorical(reference), categorical({"c0": 3, "c1": 2}))
    assert tiny["chi2_dof"] == 0 and tiny["chi2_p_value"] == 1.0


def test_other_and_labels_an_incomplete_side_cannot_count_share_one_cell() -> None:
    # The reference counted only its top values: "z" may hide in its other.
    reference = categorical({"a": 600, "b": 300}, other=100)
    current = categorical({"a": 600, "b": 300, "z": 100})
    same = categorical_statistics(reference, current)
    assert same["chi2_dof"] == 2 and same["chi2"] == pytest.approx(0.0, abs=1e-9)
    # A complete reference has never seen "z": a cell of its own.
    unseen = categorical_statistics(categorical({"a": 600, "b": 400}), current)
    assert unseen["chi2_dof"] == 2 and unseen["chi2_p_value"] < 1e-10


def test_categorical_statistics_from_profiled_tables_with_nulls() -> None:
    reference = column(pa.array(["x", "y", None, "y"] * 500))
    current = column(pa.array(["x", "x", "x", None] * 50))
    statistics = categorical_statistics(reference, current)
    assert statistics["chi2_p_value"] < 1e-10 and statistics["jensen_shannon"] > 0.4
