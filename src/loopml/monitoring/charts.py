"""The charts of the HTML monitoring report: number formatting and SVG drawn from profiles.

Numeric columns get overlaid histograms of the reference and the current sample over the same
bins (densities; the central range when outliers would squeeze the rest, with the share left
out in the caption); categorical columns get grouped bars of the top categories, "other" last.
Every text that comes from data is HTML-escaped here. Colours are the Okabe-Ito palette.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import TYPE_CHECKING

from loopml.monitoring.results import ColumnDrift

if TYPE_CHECKING:  # the profiles' classes only name types here: no numpy import for them
    from loopml.profiling.column import ColumnProfile

__all__ = ["EXAMPLE_CHARS", "Bars", "Fmt", "Histogram", "bars_of", "bars_svg", "clip_text",
           "effect_bar", "esc", "fmt_number", "fmt_p", "fmt_share", "fmt_time", "histogram_of",
           "histogram_svg", "sparkline", "time_formatter"]

REFERENCE, CURRENT, BAD, GOOD = "#0072B2", "#E69F00", "#D55E00", "#009E73"
BINS, TOP_CATEGORIES, LABEL_CHARS, EXAMPLE_CHARS = 30, 10, 28, 80
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
Fmt = Callable[[float | int | None], str]

# -- formatting ---------------------------------------------------------------------------

def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt_number(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value == 0:
        return "0"
    if 1e3 <= abs(value) < 1e12:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) >= 1e-3 else f"{value:.2e}"


def fmt_p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return "≈ 0" if value == 0 else f"{value:.1e}" if value < 1e-4 else f"{value:.4f}"


def clip_text(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "…"


def fmt_share(share: float) -> str:
    return "0%" if share == 0 else "<0.1%" if share < 1e-3 else f"{100 * share:.1f}%"


def fmt_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def time_formatter(type_text: str | None) -> Fmt | None:
    """Axis labels as dates for date and timestamp columns (profiled as epoch integers)."""
    if not type_text:
        return None
    unit = (86400.0 if type_text.startswith("date32") else 1e-3
            if type_text.startswith("date64") else None)
    if type_text.startswith("timestamp["):
        unit = _TIME_UNITS.get(type_text[10:].split(",")[0].rstrip("]"))
    if unit is None:
        return None
    seconds = unit

    def fmt(value: float | int | None) -> str:
        if value is None or not math.isfinite(value):
            return fmt_number(value)
        try:
            moment = datetime.fromtimestamp(value * seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return fmt_number(value)
        return moment.strftime("%Y-%m-%d" if seconds >= 86400 else "%Y-%m-%d %H:%M")
    return fmt


def _ticks(low: float, high: float, count: int = 5, *, integers: bool = False) -> list[float]:
    """Round numbers ("nice" steps of 1, 2, 2.5 or 5 times a power of ten) in [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / count
    power = 10.0 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integers else (1, 2, 2.5, 5, 10)
    step = max(next(m * power for m in steps if m * power >= raw), 1.0 if integers else 0.0)
    first = math.ceil(low / step - 1e-9)
    return [round(k * step, 12) for k in range(first, math.floor(high / step + 1e-9) + 1)]


# -- what is drawn ------------------------------------------------------------------------

@dataclass(frozen=True)
class Histogram:
    """Densities of both samples over the same bins (union range, or the central range when
    outliers would squeeze the rest), with the share of each sample left outside."""

    edges: list[float]
    reference: list[float]
    current: list[float]
    means: tuple[float | None, float | None]
    outside: tuple[float, float]
    counts: tuple[int, int]
    integers: bool
    unit_bins: bool


@dataclass(frozen=True)
class Bars:
    """Shares of the most frequent categories of either sample, "other" last."""

    labels: list[str]
    reference: list[float]
    current: list[float]
    new: list[bool]
    counts: tuple[int, int]


def histogram_of(ref: ColumnProfile, cur: ColumnProfile) -> Histogram | None:
    sides = [p for p in (ref, cur) if p.count and p.min is not None and p.max is not None]
    if not sides:
        return None
    full_low = min(float(p.min) for p in sides)  # type: ignore[arg-type]
    full_high = max(float(p.max) for p in sides)  # type: ignore[arg-type]
    central = [p.quantiles([0.005, 0.995]) for p in sides]
    core_low = min(float(q[0]) for q in central if q[0] is not None)
    core_high = max(float(q[1]) for q in central if q[1] is not None)
    low, high = full_low, full_high
    if not (math.isfinite(low) and math.isfinite(high)) or \
            high - low > 4 * (core_high - core_low) > 0:
        pad = 0.05 * (core_high - core_low)
        low, high = max(core_low - pad, full_low), min(core_high + pad, full_high)
    integers = all(isinstance(p.min, int) and isinstance(p.max, int) for p in sides)
    if integers:  # whole numbers per bin: no comb of bins holding 3 and 4 values
        first, span = math.floor(low), math.ceil(high) - math.floor(low) + 1
        step = 1 if span <= 40 else math.ceil(span / BINS)
        edges = [first - 0.5 + i * step for i in range(math.ceil(span / step) + 1)]
    elif high <= low:
        edges = [low - 0.5, low + 0.5]
    else:
        edges = [low + (high - low) * i / BINS for i in range(BINS)] + [high]
    widths = [b - a for a, b in pairwise(edges)]

    def side(profile: ColumnProfile) -> tuple[list[float], float]:
        if not profile.count or profile.sketch is None:
            return [0.0] * len(widths), 0.0
        cumulative = [float(v) for v in profile.cdf(edges).tolist()]
        if edges[0] <= full_low:  # nothing below the first edge: its values belong to bin 0
            cumulative[0] = 0.0
        outside = cumulative[0] + 1.0 - cumulative[-1]
        shares = [max(b - a, 0.0) for a, b in pairwise(cumulative)]
        return [s / w for s, w in zip(shares, widths, strict=True)], max(outside, 0.0)

    (ref_density, ref_out), (cur_density, cur_out) = side(ref), side(cur)
    return Histogram(edges, ref_density, cur_density, (ref.mean, cur.mean),
                      (ref_out, cur_out), (ref.count, cur.count), integers,
                      integers and edges[1] - edges[0] == 1)


def bars_of(ref: ColumnProfile, cur: ColumnProfile, top: int = TOP_CATEGORIES) -> Bars | None:
    def shares(profile: ColumnProfile) -> tuple[dict[str, float], int]:
        counter = profile.categories
        if counter is None or counter.total == 0:
            return {}, 0
        found: dict[str, float] = {}
        for label, count in counter.items:
            key = str(label).lower() if isinstance(label, bool) else str(label)
            found[key] = found.get(key, 0.0) + count / counter.total
        return found, counter.total

    (ref_shares, ref_total), (cur_shares, cur_total) = shares(ref), shares(cur)
    if not ref_total and not cur_total:
        return None
    ranked = sorted(set(ref_shares) | set(cur_shares),
                    key=lambda k: (-max(ref_shares.get(k, 0.0), cur_shares.get(k, 0.0)), k))
    shown = ranked if len(ranked) <= top + 1 else ranked[:top]
    ref_values = [ref_shares.get(k, 0.0) for k in shown]
    cur_values = [cur_shares.get(k, 0.0) for k in shown]
    new = [bool(ref_total) and k not in ref_shares and ref.categories is not None
           and ref.categories.complete for k in shown]
    ref_other = max(1.0 - sum(ref_values), 0.0) if ref_total else 0.0
    cur_other = max(1.0 - sum(cur_values), 0.0) if cur_total else 0.0
    if ref_other > 1e-9 or cur_other > 1e-9:
        shown, new = [*shown, "(other)"], [*new, False]
        ref_values, cur_values = [*ref_values, ref_other], [*cur_values, cur_other]
    return Bars(shown, ref_values, cur_values, new, (ref_total, cur_total))


# -- SVG ----------------------------------------------------------------------------------

def _f(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _step(edges: Sequence[float], values: Sequence[float], x: Callable[[float], float],
          y: Callable[[float], float], *, closed: bool) -> str:
    base = y(0.0)
    parts = [f"M{_f(x(edges[0]))} {_f(base)}"]
    for i, value in enumerate(values):
        parts.append(f"V{_f(y(value))}H{_f(x(edges[i + 1]))}")
    parts.append(f"V{_f(base)}" + ("Z" if closed else ""))
    return "".join(parts)


def _legend(x: float, y: float, counts: tuple[int, int]) -> str:
    out = []
    for i, (name, colour) in enumerate((("reference", REFERENCE), ("current", CURRENT))):
        left = x + i * 170
        out.append(f'<rect x="{left}" y="{y - 9}" width="14" height="10" fill="{colour}" '
                   f'fill-opacity="{0.45 if i == 0 else 0.25}" stroke="{colour}" '
                   f'stroke-width="{1.5 if i == 0 else 2.5}"/>'
                   f'<text x="{left + 20}" y="{y}" font-size="12">{name} '
                   f'(n={esc(fmt_number(counts[i]))})</text>')
    return "".join(out)


def histogram_svg(hist: Histogram, label: str, fmt: Fmt) -> str:
    width, height, left, right, top, bottom = 640, 270, 58, 16, 30, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = hist.edges[0], hist.edges[-1]
    peak = max([*hist.reference, *hist.current, 0.0]) or 1.0
    y_ticks = _ticks(0.0, peak, 4)
    y_max = max(peak, y_ticks[-1] if y_ticks else peak)

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * plot_w

    def y(v: float) -> float:
        return top + plot_h - v / y_max * plot_h

    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="distribution of '
           f'{esc(label)}: reference vs current">']
    for tick in y_ticks:
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{_f(y(tick))}" '
                   f'y2="{_f(y(tick))}" stroke="#e5e9ee"/><text x="{left - 6}" '
                   f'y="{_f(y(tick) + 4)}" font-size="11" text-anchor="end" fill="#59636e">'
                   f'{esc(fmt_number(tick))}</text>')
    out.append(f'<path d="{_step(hist.edges, hist.reference, x, y, closed=True)}" '
               f'fill="{REFERENCE}" fill-opacity="0.4" stroke="{REFERENCE}" stroke-width="1.5"/>')
    out.append(f'<path d="{_step(hist.edges, hist.current, x, y, closed=True)}" '
               f'fill="{CURRENT}" fill-opacity="0.18" stroke="{CURRENT}" stroke-width="2.5" '
               f'stroke-linejoin="round"/>')
    for mean, colour in zip(hist.means, (REFERENCE, CURRENT), strict=True):
        if mean is not None and low <= mean <= high:
            out.append(f'<line x1="{_f(x(mean))}" x2="{_f(x(mean))}" y1="{top}" '
                       f'y2="{top + plot_h}" stroke="{colour}" stroke-width="2" '
                       f'stroke-dasharray="5 4"><title>mean {esc(fmt(mean))}</title></line>')
    base = top + plot_h
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{base}" y2="{base}" '
               f'stroke="#59636e"/>')
    labels = _ticks(low, high, 6, integers=hist.integers)
    if fmt is not fmt_number:
        labels = labels[::2] if len(labels) > 4 else labels
    for tick in labels:
        out.append(f'<line x1="{_f(x(tick))}" x2="{_f(x(tick))}" y1="{base}" y2="{base + 4}" '
                   f'stroke="#59636e"/><text x="{_f(x(tick))}" y="{base + 17}" font-size="11" '
                   f'text-anchor="middle" fill="#59636e">{esc(fmt(tick))}</text>')
    axis = "share of values" if hist.unit_bins else "density"
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" font-size="12" '
               f'text-anchor="middle">{esc(label)}</text><text transform="translate(14 '
               f'{top + plot_h / 2}) rotate(-90)" font-size="12" text-anchor="middle">'
               f'{axis}</text>')
    out.append(_legend(left + 4, 16, hist.counts))
    out.append(f'<text x="{width - right}" y="16" font-size="12" text-anchor="end" '
               f'fill="#59636e">dashed: means</text></svg>')
    return "".join(out)


def bars_svg(bars: Bars, label: str) -> str:
    width, left, right, top, row = 640, 190, 70, 34, 34
    height = top + row * len(bars.labels) + 8
    plot_w = width - left - right
    peak = max([*bars.reference, *bars.current, 1e-9])
    out = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="categories of '
           f'{esc(label)}: reference vs current">',
           _legend(left, 16, bars.counts)]
    for i, name in enumerate(bars.labels):
        y0 = top + i * row
        short = clip_text(name, LABEL_CHARS)
        style = ' font-style="italic" fill="#59636e"' if name == "(other)" and i == len(
            bars.labels) - 1 else ""
        out.append(f'<text x="{left - 8}" y="{y0 + 17}" font-size="12" text-anchor="end"'
                   f'{style}><title>{esc(name)}</title>{esc(short)}'
                   f'{" (new)" if bars.new[i] else ""}</text>')
        for j, (share, colour) in enumerate(((bars.reference[i], REFERENCE),
                                             (bars.current[i], CURRENT))):
            bar_y, bar_w = y0 + 3 + j * 13, share / peak * plot_w
            out.append(f'<rect x="{left}" y="{bar_y}" width="{_f(max(bar_w, 0.5))}" '
                       f'height="12" fill="{colour}"/><text x="{_f(left + bar_w + 5)}" '
                       f'y="{bar_y + 10}" font-size="11" fill="#1f2328">{fmt_share(share)}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - 8}" '
               f'stroke="#59636e"/></svg>')
    return "".join(out)


def sparkline(shape: Histogram | Bars | None) -> str:
    width, height = 90, 24
    if isinstance(shape, Histogram):
        peak = max([*shape.reference, *shape.current]) or 1.0
        low, high = shape.edges[0], shape.edges[-1]

        def x(v: float) -> float:
            return (v - low) / (high - low) * width

        def y(v: float) -> float:
            return height - 1 - v / peak * (height - 2)

        body = (f'<path d="{_step(shape.edges, shape.reference, x, y, closed=True)}" '
                f'fill="{REFERENCE}" fill-opacity="0.45" stroke="none"/><path d="'
                f'{_step(shape.edges, shape.current, x, y, closed=False)}" fill="none" '
                f'stroke="{CURRENT}" stroke-width="1.5"/>')
    elif isinstance(shape, Bars):
        count = min(len(shape.labels), 6)
        peak = max([*shape.reference[:count], *shape.current[:count], 1e-9])
        slot = width / count
        body = "".join(
            f'<rect x="{_f(i * slot + j * slot * 0.4 + 1)}" y="{_f(height - v / peak * height)}"'
            f' width="{_f(slot * 0.38)}" height="{_f(v / peak * height)}" fill="{c}"/>'
            for i in range(count)
            for j, (v, c) in enumerate(((shape.reference[i], REFERENCE),
                                        (shape.current[i], CURRENT))))
    else:
        return ""
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'aria-hidden="true">{body}</svg>')


def effect_bar(check: ColumnDrift) -> str:
    value, threshold = check.effect_value, check.threshold
    if value is None or math.isnan(value) or threshold <= 0:
        return ""
    width = min(value / threshold, 2.0) / 2.0 * 80
    colour = BAD if check.drifted else "#8c959f"
    return (f'<svg viewBox="0 0 80 8" width="80" height="8" aria-hidden="true">'
            f'<rect width="80" height="8" fill="#eaeef2"/>'
            f'<rect width="{_f(width)}" height="8" fill="{colour}"/><line x1="40" x2="40" '
            f'y1="0" y2="8" stroke="#1f2328" stroke-width="1.5"/></svg>')
