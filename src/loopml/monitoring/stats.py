"""Two-sample drift statistics computed from two column profiles alone (no rows re-read).

Numeric columns (:func:`numeric_statistics`) are compared on their quantile sketches. All
sketches share one bucket mapping (logarithmic buckets of about 2% relative width, see
:mod:`loopml.profiling.quantiles`), so the buckets of a reference and of a window line up: both
columns become counts over one ordered grid of cells (negative buckets, zero, positive buckets,
plus a cell at each end for infinite values). On that grid:

- ``ks``, ``ks_p_value``: the Kolmogorov–Smirnov statistic ``D = max |F_ref − F_cur|`` over the
  cell boundaries, which is exact for the bucketed values (values sharing a bucket count as
  ties, which makes the test conservative), and its p-value from the asymptotic Kolmogorov
  distribution at ``λ = (√nₑ + 0.12 + 0.11/√nₑ)·D``, ``nₑ = n·m/(n+m)`` (Stephens' small-sample
  correction);
- ``wasserstein``: the Wasserstein-1 distance (the area between the two CDFs) between the
  finite values, each bucket's count placed at its representative value, divided by the
  reference standard deviation. As ``W₁ ≥ |mean_ref − mean_cur|`` holds exactly, the exact means
  of the profiles lift the estimate where buckets are coarse (columns whose spread is small next
  to their magnitude). A constant reference is measured in the current standard deviation.
- ``psi``: the population stability index ``Σ (q − p)·ln(q/p)`` over reference deciles (bins
  of cells holding a tenth of the reference each; fewer when values repeat), with shares below
  ``PSI_EPSILON`` raised to it.

Categorical columns (:func:`categorical_statistics`) are compared on their category counts;
the values outside the labels whose counts both sides know exactly (their ``other``) form one
more cell:

- ``chi2``, ``chi2_dof``, ``chi2_p_value``: Pearson's chi-squared test of homogeneity on the
  2×K table of counts (both samples are random: neither side's frequencies are taken as exact).
  Categories whose expected count would fall below 5 are pooled into one cell first (the
  rarest first, until the pooled cell expects 5); fewer than two cells left means no test
  (``p = 1``);
- ``jensen_shannon``: the Jensen–Shannon distance (square root of the divergence, base 2, in
  [0, 1]) between the two frequency vectors;
- ``psi``: as for numbers, one bin per category.

The p-values use :func:`kolmogorov_sf` and :func:`chi2_sf`, implemented here (scipy is not a
dependency of loopml). Each function costs a few hundred microseconds, whatever the row count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from loopml.errors import InvalidArgument
from loopml.profiling.categories import CategoryCounter, Label
from loopml.profiling.column import ColumnProfile
from loopml.profiling.quantiles import MAX_BUCKETS, _bucket_value, _Store

__all__ = ["PSI_EPSILON", "bonferroni", "categorical_statistics", "chi2_sf", "holm",
           "kolmogorov_sf", "ks_p_value", "numeric_statistics"]

Array = np.ndarray[Any, Any]

PSI_EPSILON = 1e-4
PSI_BINS = 10
MIN_EXPECTED = 5.0
_TINY = 1e-300


# -- distributions ------------------------------------------------------------------------------

def kolmogorov_sf(x: float) -> float:
    """``P(K > x)`` for the Kolmogorov distribution (the limit of ``√n·D``)."""
    if not x > 0:
        return 1.0
    if x < 1.18:
        # P(K ≤ x) = √(2π)/x · Σ exp(−(2j−1)²π²/(8x²)): converges fast for small x.
        t = -math.pi**2 / (8.0 * x * x)
        total = sum(math.exp((2 * j - 1) ** 2 * t) for j in range(1, 8))
        return min(1.0, max(0.0, 1.0 - math.sqrt(2.0 * math.pi) / x * total))
    # P(K > x) = 2 Σ (−1)^(j−1) exp(−2j²x²): converges fast for large x.
    total = sum((1.0 if j % 2 else -1.0) * math.exp(-2.0 * j * j * x * x) for j in range(1, 12))
    return min(1.0, max(0.0, 2.0 * total))


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """The two-sample KS p-value of ``D = statistic`` for samples of ``n`` and ``m`` values."""
    if n <= 0 or m <= 0:
        raise InvalidArgument(f"a KS test needs values on both sides, got {n} and {m}")
    effective = math.sqrt(n * m / (n + m))
    return kolmogorov_sf((effective + 0.12 + 0.11 / effective) * statistic)


def _gamma_q(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function ``Γ(a, x)/Γ(a)``."""
    if x <= 0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        # Series for the lower function: P = x^a e^−x / Γ(a) · Σ xⁿ / (a(a+1)…(a+n)).
        term = total = 1.0 / a
        denominator = a
        for _ in range(100_000):
            denominator += 1.0
            term *= x / denominator
            total += term
            if term < total * 1e-16:
                break
        return min(1.0, max(0.0, 1.0 - math.exp(log_front) * total))
    # Continued fraction for Q (Legendre's), evaluated with the modified Lentz method.
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    result = d
    for i in range(1, 100_000):
        step = -i * (i - a)
        b += 2.0
        d = step * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + step / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        result *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, max(0.0, math.exp(log_front) * result))


def chi2_sf(statistic: float, dof: int) -> float:
    """``P(X > statistic)`` for a chi-squared variable with ``dof`` degrees of freedom."""
    if dof < 1:
        raise InvalidArgument(f"a chi-squared distribution needs at least 1 degree of freedom, "
                              f"got {dof}")
    return _gamma_q(dof / 2.0, statistic / 2.0)


def bonferroni(p_values: Sequence[float]) -> list[float]:
    """Bonferroni-adjusted p-values: each multiplied by the number of tests, at most 1."""
    return [min(1.0, p * len(p_values)) for p in p_values]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (in the order given): reject where adjusted ≤ α."""
    count = len(p_values)
    adjusted = [1.0] * count
    running = 0.0
    for rank, index in enumerate(sorted(range(count), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (count - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _psi(reference: Array, current: Array) -> float:
    p = np.maximum(reference, PSI_EPSILON)
    q = np.maximum(current, PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


# -- numbers ------------------------------------------------------------------------------------

def _dense(first: _Store, second: _Store) -> tuple[Array, Array, Array]:
    """Keys and both stores' counts over the union of their keys (float counts).

    A store at its bucket limit has collapsed its lowest buckets into one; counts below the
    highest such collapsed bucket are folded into it on both sides, so the cells still match.
    """
    stores = [store for store in (first, second) if len(store.counts)]
    if not stores:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    low = min(store.offset for store in stores)
    high = max(store.offset + len(store.counts) for store in stores)
    low = max([low] + [s.offset for s in stores if len(s.counts) >= MAX_BUCKETS])
    dense: list[Array] = []
    for store in (first, second):
        if len(store.counts):
            index = np.maximum(store.keys(), low) - low
            dense.append(np.bincount(index, weights=store.counts, minlength=high - low))
        else:
            dense.append(np.zeros(high - low))
    return np.arange(low, high, dtype=np.int64), dense[0], dense[1]


def _infinities(profile: ColumnProfile) -> tuple[float, float]:
    """How many values are −inf and +inf (the sketch leaves them out; the extremes say which;
    with both present they are split evenly, the profile holds no more)."""
    assert profile.sketch is not None
    infinite = profile.count - profile.sketch.count
    if infinite <= 0:
        return 0.0, 0.0
    negative = profile.min is not None and profile.min == -math.inf
    positive = profile.max is not None and profile.max == math.inf
    if negative and positive:
        return infinite / 2, infinite / 2
    return (float(infinite), 0.0) if negative else (0.0, float(infinite))


def _grid(reference: ColumnProfile, current: ColumnProfile) -> tuple[Array, Array, Array]:
    """Cell values (increasing, ±inf at the ends) and both columns' counts per cell."""
    assert reference.sketch is not None and current.sketch is not None
    ref, cur = reference.sketch, current.sketch
    negative_keys, negative_ref, negative_cur = _dense(ref.negative, cur.negative)
    positive_keys, positive_ref, positive_cur = _dense(ref.positive, cur.positive)
    values = np.concatenate([[-math.inf], -_bucket_value(negative_keys)[::-1], [0.0],
                             _bucket_value(positive_keys), [math.inf]])
    counts = []
    for profile, sketch, negative, positive in ((reference, ref, negative_ref, positive_ref),
                                                (current, cur, negative_cur, positive_cur)):
        low, high = _infinities(profile)
        counts.append(np.concatenate([[low], negative[::-1], [float(sketch.zeros)], positive,
                                      [high]]))
    used = (counts[0] + counts[1]) > 0
    return values[used], counts[0][used], counts[1][used]


def _finite_std(values: Array, counts: Array) -> float:
    total = counts.sum()
    if np.count_nonzero(counts) < 2:
        return 0.0
    mean = float(np.dot(values, counts) / total)
    return math.sqrt(max(float(np.dot((values - mean) ** 2, counts) / total), 0.0))


def _scale(profile: ColumnProfile, values: Array, counts: Array) -> float:
    """The standard deviation of a column: exact from the profile when finite, else from the
    finite values of the sketch; 0 for a constant column (rounding of its mean aside)."""
    std, mean = profile.std, profile.mean
    if std is not None and mean is not None and math.isfinite(std) and math.isfinite(mean):
        return std if std > 1e-12 * abs(mean) else 0.0
    return _finite_std(values, counts)


def _wasserstein(reference: ColumnProfile, current: ColumnProfile, values: Array,
                 ref_counts: Array, cur_counts: Array) -> float:
    """Wasserstein-1 distance between the finite values, in reference standard deviations."""
    finite = np.isfinite(values)
    values, ref_counts, cur_counts = values[finite], ref_counts[finite], cur_counts[finite]
    ref_total, cur_total = ref_counts.sum(), cur_counts.sum()
    if ref_total <= 0 or cur_total <= 0:
        return 0.0 if ref_total == cur_total else math.inf
    gaps = np.diff(values)
    difference = np.cumsum(ref_counts)[:-1] / ref_total - np.cumsum(cur_counts)[:-1] / cur_total
    distance = float(np.dot(np.abs(difference), gaps))
    if reference.mean is not None and current.mean is not None and \
            math.isfinite(reference.mean) and math.isfinite(current.mean):
        moved = abs(reference.mean - current.mean)
        # Means summed in different orders differ by rounding: that is no distance.
        if moved > 1e-12 * max(abs(reference.mean), abs(current.mean)):
            distance = max(distance, moved)
    scale = _scale(reference, values, ref_counts) or _scale(current, values, cur_counts)
    if scale > 0:
        return distance / scale
    return 0.0 if distance == 0 else math.inf


def _decile_psi(ref_counts: Array, cur_counts: Array) -> float:
    """PSI over bins of cells that each hold about a tenth of the reference."""
    ref_share = ref_counts / ref_counts.sum()
    cur_share = cur_counts / cur_counts.sum()
    cumulative = np.cumsum(ref_share)
    edges = np.searchsorted(cumulative, np.arange(1, PSI_BINS) / PSI_BINS - 1e-12)
    starts = np.unique(np.concatenate([[0], edges + 1]))
    starts = starts[starts < len(ref_share)]
    return _psi(np.add.reduceat(ref_share, starts), np.add.reduceat(cur_share, starts))


def _require_values(reference: ColumnProfile, current: ColumnProfile, kind: str) -> None:
    for side, profile in (("reference", reference), ("current", current)):
        if profile.kind != kind:
            raise InvalidArgument(f"{kind} drift statistics need two {kind} column profiles; "
                                  f"the {side} one is {profile.kind}")
        if profile.count == 0:
            raise InvalidArgument(f"drift statistics need values on both sides; the {side} "
                                  f"column has none (only {profile.nulls} nulls)")


def _require_counted(reference: float, current: float, what: str) -> None:
    """Profiles whose summaries hold no values although their counts say otherwise (built or
    edited by hand) are refused rather than compared."""
    for side, total in (("reference", reference), ("current", current)):
        if total <= 0:
            raise InvalidArgument(f"the {side} column profile counts values but its {what} "
                                  f"hold(s) none; profile the table again with profile_table()")


def numeric_statistics(reference: ColumnProfile, current: ColumnProfile) -> dict[str, float]:
    """``ks``, ``ks_p_value``, ``wasserstein`` (in reference SDs) and ``psi`` of two numeric
    column profiles (see the module docstring); both need at least one value."""
    _require_values(reference, current, "numeric")
    values, ref_counts, cur_counts = _grid(reference, current)
    ref_total, cur_total = ref_counts.sum(), cur_counts.sum()
    _require_counted(ref_total, cur_total, "quantile sketch")
    gap = np.abs(np.cumsum(ref_counts) / ref_total - np.cumsum(cur_counts) / cur_total)
    ks = float(min(gap.max(), 1.0))
    return {"ks": ks, "ks_p_value": ks_p_value(ks, reference.count, current.count),
            "wasserstein": _wasserstein(reference, current, values, ref_counts, cur_counts),
            "psi": _decile_psi(ref_counts, cur_counts)}


# -- categories ---------------------------------------------------------------------------------

def _cells(reference: CategoryCounter, current: CategoryCounter) -> tuple[Array, Array]:
    """Counts per label known exactly on both sides, then one cell for all other values."""
    ref, cur = reference.counts(), current.counts()
    labels: list[Label] = list(ref) + [label for label in cur if label not in ref]
    known = [label for label in labels if (label in ref or reference.complete)
             and (label in cur or current.complete)]
    ref_counts = [ref.get(label, 0) for label in known]
    cur_counts = [cur.get(label, 0) for label in known]
    ref_other, cur_other = reference.total - sum(ref_counts), current.total - sum(cur_counts)
    if ref_other or cur_other:
        ref_counts.append(ref_other)
        cur_counts.append(cur_other)
    return np.asarray(ref_counts, dtype=np.float64), np.asarray(cur_counts, dtype=np.float64)


def _pooled(ref_counts: Array, cur_counts: Array) -> tuple[Array, Array]:
    """Cells whose smaller expected count is below 5 pooled into one, rarest first."""
    totals = ref_counts + cur_counts
    grand = totals.sum()
    needed = MIN_EXPECTED * grand / min(ref_counts.sum(), cur_counts.sum())
    order = np.argsort(totals, kind="stable")
    pooled = 0.0
    cut = 0
    # Pool the rarest cells while any of them (or the pool itself) expects fewer than 5.
    while cut < len(order) and (totals[order[cut]] < needed or 0 < pooled < needed):
        pooled += totals[order[cut]]
        cut += 1
    kept = order[cut:]
    if cut == 0:
        return ref_counts, cur_counts
    ref = np.append(ref_counts[kept], ref_counts[order[:cut]].sum())
    cur = np.append(cur_counts[kept], cur_counts[order[:cut]].sum())
    return ref, cur


def _chi2(ref_counts: Array, cur_counts: Array) -> tuple[float, int, float]:
    ref, cur = _pooled(ref_counts, cur_counts)
    if len(ref) < 2:
        return 0.0, 0, 1.0
    observed = np.stack([ref, cur])
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0) / observed.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    dof = len(ref) - 1
    return statistic, dof, chi2_sf(statistic, dof)


def _jensen_shannon(p: Array, q: Array) -> float:
    middle = (p + q) / 2
    divergence = 0.0
    for side in (p, q):
        present = side > 0
        divergence += 0.5 * float(np.sum(side[present] * np.log2(side[present] /
                                                                 middle[present])))
    return math.sqrt(min(max(divergence, 0.0), 1.0))


def categorical_statistics(reference: ColumnProfile,
                           current: ColumnProfile) -> dict[str, float]:
    """``chi2``, ``chi2_dof``, ``chi2_p_value``, ``jensen_shannon`` and ``psi`` of two
    categorical column profiles (see the module docstring); both need at least one value."""
    _require_values(reference, current, "categorical")
    assert reference.categories is not None and current.categories is not None
    ref_counts, cur_counts = _cells(reference.categories, current.categories)
    _require_counted(ref_counts.sum(), cur_counts.sum(), "category counts")
    statistic, dof, p_value = _chi2(ref_counts, cur_counts)
    ref_share, cur_share = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    return {"chi2": statistic, "chi2_dof": float(dof), "chi2_p_value": p_value,
            "jensen_shannon": _jensen_shannon(ref_share, cur_share),
            "psi": _psi(ref_share, cur_share)}
