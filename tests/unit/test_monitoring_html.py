"""The HTML monitoring report: structure, escaping, plots, the empty window, determinism."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest
from monitoring_data import REAL_SHIFTS, monitoring_table

from loopml.errors import InvalidArgument
from loopml.monitoring.charts import histogram_of
from loopml.monitoring.html import render_html
from loopml.monitoring.results import (
    ColumnDrift,
    DriftReport,
    MonitorReport,
    PerformanceReport,
    QualityIssue,
    QualityReport,
)
from loopml.profiling import TableProfile, profile_table

EVIL = "<script>alert('x')</script>"
EVIL_LABEL = '<img src=x onerror="alert(1)">'


class Page(HTMLParser):
    """What a browser would see: tags, attributes, text, and where figures sit."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.title = ""
        self.figures: dict[str, int] = {}  # details id -> figures inside
        self.drifted: dict[str, bool] = {}  # details id -> data-drifted
        self._details: str | None = None
        self._in_title = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((tag, name, value) for name, value in attrs)
        found = dict(attrs)
        if tag == "details":
            self._details = found["id"]
            self.figures[found["id"] or ""] = 0
            self.drifted[found["id"] or ""] = found["data-drifted"] == "1"
        if tag == "figure" and self._details is not None:
            self.figures[self._details] += 1
        self._in_title = tag == "title" and not self.title

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self._details = None
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data

    def count(self, tag: str) -> int:
        return self.tags.count(tag)


def _profiles() -> tuple[TableProfile, TableProfile]:
    rng = np.random.default_rng(7)
    reference = pa.table({
        "age": rng.normal(40.0, 10.0, 3000),
        "visits": rng.poisson(3.0, 3000),
        EVIL: pa.array(rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2])),
        "score": rng.uniform(0.0, 1.0, 3000),
        "when": pa.array(1_700_000_000_000 + rng.integers(0, 86_400_000 * 30, 3000),
                         type=pa.timestamp("ms")),
    })
    current = pa.table({
        "age": rng.normal(46.0, 10.0, 1000),
        "visits": rng.poisson(3.0, 1000),
        EVIL: pa.array(rng.choice(["a", "b", EVIL_LABEL], 1000, p=[0.3, 0.3, 0.4])),
        "score": rng.uniform(0.0, 1.0, 1000),
        "when": pa.array(1_700_000_000_000 + rng.integers(0, 86_400_000 * 30, 1000),
                         type=pa.timestamp("ms")),
    })
    return profile_table(reference), profile_table(current)


def _check(column: str, kind: str, *, drifted: bool, effect: float, weight: float = 0.25,
           role: str = "feature") -> ColumnDrift:
    name = "wasserstein" if kind == "numeric" else "jensen_shannon"
    threshold = 0.1 if kind == "numeric" else 0.05
    return ColumnDrift(column, kind, role, 3000, 1000,  # type: ignore[arg-type]
                       {name: effect, "psi": effect / 2}, 1e-9 if drifted else 0.6, name,
                       effect, threshold, drifted, f"{name} {effect} vs {threshold}", weight)


def _report(rows: int = 1000) -> MonitorReport:
    checks = (_check("score", "numeric", drifted=False, effect=0.02),
              _check("age", "numeric", drifted=True, effect=0.6),
              _check(EVIL, "categorical", drifted=True, effect=0.3, weight=0.5),
              _check("visits", "numeric", drifted=False, effect=0.01, role="prediction"),
              _check("when", "numeric", drifted=False, effect=0.03))
    drift = DriftReport(checks, 0.75, 0.3, True, "p <= 0.01 and effect >= threshold", 3000, rows,
                        {"blob": "kind other"})
    quality = QualityReport(rows, (QualityIssue(
        EVIL, "unseen_category", 400, rows, f"new category {EVIL_LABEL}",
        (EVIL_LABEL, "</td></tr></table><script>alert(2)</script>", "x" * 500), (1, 4, 9)),))
    performance = PerformanceReport("classification", 800, rows, {"accuracy": 0.8, "f1": 0.7},
                                    {"accuracy": 0.9, "f1": 0.72}, ("accuracy",),
                                    "accuracy fell 0.1 below validation")
    return MonitorReport('ref "<b>"', "current.parquet", rows, drift, quality, performance,
                         window=(1_714_557_600_000, 1_714_561_200_000), deployment="churn-api",
                         model_version="churn v7")


def _figure(raw: str, column: str) -> str:
    """The first figure after the column's section heading (past the summary table)."""
    escaped = column.replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#x27;")
    start = raw.index(f"<code>{escaped}</code><span", raw.index('id="prediction-drift"'))
    return raw[raw.index("<figure>", start):raw.index("</figure>", start)]


@pytest.fixture(scope="module")
def profiles() -> tuple[TableProfile, TableProfile]:
    return _profiles()


def test_structure_title_and_one_figure_per_drifted_column(profiles) -> None:
    page = Page(render_html(_report(), reference=profiles[0], current=profiles[1],
                            title="Churn <weekly> check"))
    assert page.title == "Churn <weekly> check"
    drifted = [name for name, is_drifted in page.drifted.items() if is_drifted]
    assert len(drifted) == 2
    assert all(page.figures[name] == 1 for name in drifted)
    # Every other compared column has its plot too, on demand (closed details).
    assert sum(page.figures.values()) == 5
    assert page.count("h1") == 1 and page.count("table") >= 3
    text = "".join(page.text)
    for words in ("Dataset drift detected", "weighted drift score 0.75", "Rule: p <= 0.01",
                  "churn-api", "churn v7", "2024-05-01 10:00:00", "Prediction drift",
                  "Feature drift", "blob", "Data quality", "Performance", "degraded"):
        assert words in text, words


def test_no_external_resources(profiles) -> None:
    page = Page(render_html(_report(), reference=profiles[0], current=profiles[1]))
    for tag, name, value in page.attributes:
        if name in ("src", "href", "xlink:href", "action", "srcset"):
            assert not re.match(r"\s*(https?:)?//", value or ""), (tag, name, value)
    assert page.count("link") == 0 and page.count("img") == 0 and page.count("iframe") == 0
    assert page.count("script") == 1  # the page's own few lines
    assert all(name != "src" for tag, name, _ in page.attributes if tag == "script")


def test_data_is_escaped_everywhere(profiles) -> None:
    raw = render_html(_report(), reference=profiles[0], current=profiles[1],
                      title="<i>t</i>")
    assert EVIL not in raw and EVIL_LABEL not in raw and "<script>alert(2)" not in raw
    page = Page(raw)
    assert page.count("script") == 1 and page.count("img") == 0 and page.count("i") == 0
    assert not any(name.startswith("on") for _, name, _ in page.attributes)
    text = "".join(page.text)
    assert EVIL in text  # shown as text: column name, quality issue
    assert EVIL_LABEL[:26] in text  # category label in the bar chart (clipped)
    assert 'ref "<b>"' in text
    assert "x" * 79 + "…" in text and "x" * 81 not in text  # long examples are clipped


def test_empty_window_says_no_verdict_and_draws_nothing(profiles) -> None:
    empty = MonitorReport("train.parquet", "window", 0, None, None)
    raw = render_html(empty, reference=profiles[0], current=profiles[1])
    page = Page(raw)
    text = "".join(page.text)
    assert "No rows in the current window — no verdict" in text
    assert page.count("svg") == 0 and page.count("figure") == 0
    assert "drift detected" not in text.lower() and "No dataset drift" not in text
    assert "Failed checks" not in text


def test_numeric_plot_overlays_histograms_with_legend_axes_and_means(profiles) -> None:
    raw = render_html(_report(), reference=profiles[0], current=profiles[1])
    figure = _figure(raw, "age")
    assert figure.count("<path") == 2  # reference and current
    assert "#0072B2" in figure and "#E69F00" in figure
    assert "reference (n=3,000)" in figure and "current (n=1,000)" in figure
    assert ">density</text>" in figure and ">age</text>" in figure
    assert figure.count('stroke-dasharray="5 4"') == 2  # the two means
    assert "<title>mean 4" in figure  # means of ~40 and ~46


def test_categorical_plot_groups_bars_with_percentages(profiles) -> None:
    raw = render_html(_report(), reference=profiles[0], current=profiles[1])
    figure = _figure(raw, EVIL)
    assert figure.count("<rect") == 2 + 2 * 4  # legend + (a, b, c, new label) x 2 samples
    assert re.search(r">\d+\.\d%</text>", figure)
    assert "(new)" in figure  # the injected label is a category unseen in the reference


def test_temporal_axis_labelled_with_dates(profiles) -> None:
    raw = render_html(_report(), reference=profiles[0], current=profiles[1])
    figure = _figure(raw, "when")
    assert re.search(r">2023-11-\d\d \d\d:\d\d</text>", figure)


def test_summary_lists_drifted_first_by_weight(profiles) -> None:
    raw = render_html(_report(), reference=profiles[0], current=profiles[1])
    table = raw[raw.index('<table class="summary">'):]
    table = table[:table.index("</table>")]
    order = re.findall(r'href="#col-\d+"><code>([^<]*)</code>', table)
    assert order == [EVIL.replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#x27;"),
                     "age", "when", "score", "visits"]
    assert table.count('data-drifted="1"') == 2


def test_same_input_same_output(profiles) -> None:
    report = _report()
    first = render_html(report, reference=profiles[0], current=profiles[1])
    again = render_html(report, reference=TableProfile.from_dict(profiles[0].to_dict()),
                        current=TableProfile.from_dict(profiles[1].to_dict()))
    assert first == again


def test_without_profiles_the_checks_are_listed_without_plots() -> None:
    page = Page(render_html(_report()))
    assert page.count("figure") == 0
    assert "no profiles given" in "".join(page.text)
    assert len(page.drifted) == 5


def test_missing_statistics_and_no_quality_or_performance(profiles) -> None:
    report = _report()
    assert report.drift is not None
    odd = replace(report.drift.columns[0], p_value=None, effect_value=float("nan"),
                  statistics={"ks": float("inf")})
    report = replace(report, drift=replace(report.drift, columns=(odd,)), quality=None,
                     performance=None)
    text = "".join(Page(render_html(report, reference=profiles[0],
                                    current=profiles[1])).text)
    assert "∞" in text and "—" in text
    assert "Not checked" in text and "Not measured" in text


def test_histogram_shares_bins_over_the_union_range(profiles) -> None:
    reference, current = profiles
    hist = histogram_of(reference["age"], current["age"])
    assert hist is not None
    low = min(reference["age"].min, current["age"].min)
    high = max(reference["age"].max, current["age"].max)
    assert hist.edges[0] == pytest.approx(low) and hist.edges[-1] == pytest.approx(high)
    widths = np.diff(hist.edges)
    for density in (hist.reference, hist.current):
        assert float(np.dot(density, widths)) == pytest.approx(1.0, abs=0.01)
    counts = histogram_of(reference["visits"], current["visits"])
    assert counts is not None and counts.unit_bins
    assert all(edge % 1 == 0.5 for edge in counts.edges)


def test_outliers_do_not_squeeze_the_plot() -> None:
    values = np.concatenate([np.random.default_rng(1).normal(0, 1, 5000), [1e9]])
    reference, current = profile_table(pa.table({"x": values})), profile_table(
        pa.table({"x": values[:-1] + 0.5}))
    hist = histogram_of(reference["x"], current["x"])
    assert hist is not None and hist.edges[-1] < 10 and hist.outside[0] > 0


def test_a_real_report_of_25_columns_stays_small() -> None:
    from loopml.monitoring.drift import drift_report

    reference = profile_table(monitoring_table(2000, seed=1))
    current = profile_table(monitoring_table(2000, seed=2, shifts=REAL_SHIFTS))
    drift = drift_report(reference, current)
    report = MonitorReport("reference", "current", current.rows, drift, None)
    raw = render_html(report, reference=reference, current=current)
    page = Page(raw)
    assert len(raw.encode()) < 1_000_000
    assert sum(page.drifted.values()) == len(drift.drifted_columns) > 0
    assert all(page.figures[name] == 1 for name in page.drifted)


def test_rejects_anything_but_a_report() -> None:
    with pytest.raises(InvalidArgument, match="MonitorReport"):
        render_html({"rows": 0})  # type: ignore[arg-type]
