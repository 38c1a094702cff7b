"""Chart specifications for Plotly: plain dicts ``{"data": [...], "layout": {...}}``.

A page puts a spec in the HTML with ``{{ spec | json_script }}`` inside
``<script type="application/json" data-chart="ID">`` and ``ui.js`` draws it into the element
``ID`` with the Plotly script the server takes from the installed ``plotly`` package. Nothing
here imports plotly: the specs are data. Colours are the Okabe-Ito palette (told apart with
the common colour-vision deficiencies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

__all__ = ["PALETTE", "bars", "histogram", "iso", "lines", "parallel_coordinates",
           "timeline"]

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
Spec = dict[str, Any]
#: (x values, y values) of one line.
Series = tuple[Sequence[Any], Sequence[float | None]]


def iso(ms: int | float) -> str:
    """A time Plotly reads as a date (UTC, ms precision)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _layout(title: str, *, x_title: str = "", y_title: str = "", height: int = 300,
            **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title, "font": {"size": 14}, "x": 0.01},
            "height": height, "margin": {"l": 55, "r": 15, "t": 40, "b": 45},
            "xaxis": {"title": {"text": x_title}, "automargin": True},
            "yaxis": {"title": {"text": y_title}, "automargin": True},
            "legend": {"orientation": "h", "y": -0.25}, "paper_bgcolor": "white",
            "plot_bgcolor": "#fafafa", **extra}


def lines(series: Mapping[str, Series], *, title: str, x_title: str = "step",
          y_title: str = "", time_axis: bool = False, whole_x: bool = False,
          from_zero: bool = False, thresholds: Mapping[str, float] | None = None) -> Spec:
    """One line per entry of ``series`` (overlaid), and a dashed line per threshold.
    ``whole_x``: ticks at whole numbers only; ``from_zero``: the y axis starts at 0."""
    data: list[dict[str, Any]] = []
    for i, (name, (xs, ys)) in enumerate(series.items()):
        data.append({"type": "scatter", "mode": "lines+markers" if len(xs) < 60 else "lines",
                     "name": name, "x": list(xs), "y": list(ys),
                     "line": {"color": PALETTE[i % len(PALETTE)], "width": 2},
                     "marker": {"size": 5}})
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": value, "y1": value,
               "line": {"color": "#D55E00", "dash": "dash", "width": 1}}
              for value in (thresholds or {}).values()]
    layout = _layout(title, x_title=x_title, y_title=y_title, shapes=shapes,
                     showlegend=len(series) > 1)
    if time_axis:
        layout["xaxis"]["type"] = "date"
    if whole_x:
        layout["xaxis"].update(tickmode="linear", dtick=1)
    if from_zero:
        layout["yaxis"]["rangemode"] = "tozero"
    return {"data": data, "layout": layout}


def bars(labels: Sequence[Any], values: Sequence[float], *, title: str, x_title: str = "",
         y_title: str = "", horizontal: bool = False, colors: Sequence[str] | None = None
         ) -> Spec:
    text = [str(v) for v in labels]
    trace: dict[str, Any] = {"type": "bar", "x": list(values), "y": text,
                             "orientation": "h"} if horizontal else \
        {"type": "bar", "x": text, "y": list(values)}
    trace["marker"] = {"color": list(colors) if colors else PALETTE[0]}
    layout = _layout(title, x_title=x_title, y_title=y_title, showlegend=False,
                     height=max(220, 26 * len(text) + 80) if horizontal else 260)
    layout["xaxis" if not horizontal else "yaxis"]["type"] = "category"
    if horizontal:  # the first label on top
        layout["yaxis"]["autorange"] = "reversed"
    return {"data": [trace], "layout": layout}


def histogram(edges: Sequence[float], counts: Sequence[int], *, title: str) -> Spec:
    """Bars over equal-width bins from a profile's ``histogram`` (edges: bins + 1)."""
    centers = [(a + b) / 2 for a, b in pairwise(edges)]
    widths = [b - a for a, b in pairwise(edges)]
    trace = {"type": "bar", "x": centers, "y": list(counts), "width": widths,
             "marker": {"color": PALETTE[0], "line": {"color": "white", "width": 1}},
             "hovertemplate": "%{x:.4g}: %{y}<extra></extra>"}
    return {"data": [trace], "layout": _layout(title, y_title="rows", height=220,
                                               showlegend=False, bargap=0)}


def parallel_coordinates(rows: Sequence[Mapping[str, Any]], dimensions: Sequence[str], *,
                         color: str, title: str) -> Spec:
    """One line per row across ``dimensions`` (params and metrics), coloured by ``color``.

    Numeric dimensions keep their scale; text values become evenly spaced ticks."""
    dims = []
    for name in dimensions:
        values = [row.get(name) for row in rows]
        numbers = [_number(v) for v in values]
        if all(n is not None for n in numbers):
            dims.append({"label": name, "values": numbers})
            continue
        labels = sorted({str(v) for v in values})
        dims.append({"label": name, "values": [labels.index(str(v)) for v in values],
                     "tickvals": list(range(len(labels))), "ticktext": labels})
    shade = [_number(row.get(color)) for row in rows]
    line: dict[str, Any] = {"color": PALETTE[0]}
    if shade and all(v is not None for v in shade):
        line = {"color": shade, "colorscale": "Viridis", "showscale": True,
                "colorbar": {"title": {"text": color}}}
    return {"data": [{"type": "parcoords", "line": line, "dimensions": dims}],
            "layout": {**_layout(title, height=360), "margin": {"l": 70, "r": 70, "t": 70,
                                                                "b": 30}}}


def timeline(points: Sequence[tuple[int, str, str]], *, title: str) -> Spec:
    """Events as markers: (ms since the epoch, lane, hover text) each; one colour per lane."""
    lanes: dict[str, list[tuple[int, str]]] = {}
    for at, lane, text in points:
        lanes.setdefault(lane, []).append((at, text))
    data = [{"type": "scatter", "mode": "markers", "name": lane,
             "x": [iso(at) for at, _ in items], "y": [lane] * len(items),
             "text": [text for _, text in items], "hoverinfo": "x+text",
             "marker": {"size": 11, "color": PALETTE[i % len(PALETTE)],
                        "line": {"color": "white", "width": 1}}}
            for i, (lane, items) in enumerate(lanes.items())]
    layout = _layout(title, showlegend=False, height=max(200, 34 * len(lanes) + 90))
    layout["xaxis"]["type"] = "date"
    layout["yaxis"]["type"] = "category"
    return {"data": data, "layout": layout}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
