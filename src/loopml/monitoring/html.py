"""A self-contained HTML report of a monitoring check, with a distribution plot per column.

::

    page = render_html(report, reference=reference_profile, current=current_profile)
    Path("report.html").write_text(page, encoding="utf-8")

One file that opens offline: inline CSS, SVG charts drawn here from the profiles (overlaid
histograms for numeric columns, grouped bars of the top categories for categorical ones) and
a few lines of vanilla JavaScript (filter "drifted only", expand or collapse every column),
allowed by a Content-Security-Policy that forbids anything else. Every text that comes from
data (column names, categories, example values, names of tables) is HTML-escaped. The output
depends only on the input: the same report gives the same bytes.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies); the reference is a filled area and the current sample a line, so the two stay
apart printed in grey.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from loopml.monitoring.charts import (
    EXAMPLE_CHARS,
    Bars,
    Fmt,
    Histogram,
    bars_of,
    bars_svg,
    clip_text,
    effect_bar,
    esc,
    fmt_number,
    fmt_p,
    fmt_share,
    fmt_time,
    histogram_of,
    histogram_svg,
    sparkline,
    time_formatter,
)
from loopml.monitoring.results import (
    ColumnDrift,
    DriftReport,
    MonitorReport,
    PerformanceReport,
    QualityReport,
)

if TYPE_CHECKING:  # the profiles' classes only name types here: no numpy import for them
    from loopml.profiling.column import ColumnProfile
    from loopml.profiling.table import TableProfile

__all__ = ["render_html"]

_CSS = """
:root{--ref:#0072B2;--cur:#E69F00;--bad:#D55E00;--good:#009E73;--ink:#1f2328;--muted:#59636e;
--line:#d1d9e0;--soft:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;color:var(--ink);background:#fff;font:15px/1.5 system-ui,-apple-system,"Segoe UI",
Roboto,"Helvetica Neue",Arial,sans-serif;-webkit-print-color-adjust:exact;print-color-adjust:exact}
main{max-width:1180px;margin:0 auto;padding:28px 24px 48px}
h1{font-size:26px;margin:0 0 4px;line-height:1.25}h2{font-size:20px;margin:36px 0 12px;
border-bottom:1px solid var(--line);padding-bottom:6px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
.muted{color:var(--muted)}.small{font-size:12px}.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}
.meta{display:flex;flex-wrap:wrap;gap:6px 28px;margin:10px 0 18px;padding:0}
.meta div{display:flex;gap:6px}.meta dt{color:var(--muted)}.meta dd{margin:0;font-weight:600}
.verdict{border-left:6px solid var(--good);background:#eefaf5;padding:12px 16px;
border-radius:6px;font-size:17px}.verdict.bad{border-color:var(--bad);background:#fdf1ea}
.verdict.warn{border-color:#b08800;background:#fff8e1}
.verdict.none{border-color:var(--muted);background:var(--soft)}.verdict p{margin:4px 0 0;
font-size:14px}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12.5px;font-weight:600;
border:1px solid currentColor;white-space:nowrap}.badge.bad{color:#fff;background:var(--bad);
border-color:var(--bad)}.badge.ok{color:#006b4f}.badge.off{color:var(--muted)}
.badges{margin:12px 0 0;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top;text-align:left}
th{font-size:12.5px;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);
background:var(--soft)}tr.drifted td:first-child{box-shadow:inset 3px 0 var(--bad)}
td.reason{font-size:13px;color:var(--muted);min-width:200px}.scroll{overflow-x:auto}
td svg{vertical-align:middle}
a{color:#0550ae}.controls{display:flex;gap:12px;align-items:center;margin:0 0 10px;
font-size:14px}button{font:inherit;font-size:13px;padding:2px 10px;border:1px solid var(--line);
border-radius:6px;background:var(--soft);cursor:pointer}
details.col{border:1px solid var(--line);border-radius:8px;margin:10px 0;break-inside:avoid}
details.col>summary{cursor:pointer;padding:9px 14px;display:flex;gap:10px;align-items:center;
flex-wrap:wrap}details.col[open]>summary{border-bottom:1px solid var(--line);
background:var(--soft);border-radius:8px 8px 0 0}
.body{display:grid;grid-template-columns:minmax(0,1fr) 300px;gap:18px;padding:12px 16px}
figure{margin:0}figure svg{width:100%;height:auto;display:block}
figcaption{font-size:13px;color:var(--muted);margin-top:4px}
.stats td,.stats th{padding:3px 6px;font-size:13px}.stats tr.key td{font-weight:600}
code.ex{background:var(--soft);border:1px solid var(--line);border-radius:4px;padding:0 4px;
margin:0 4px 2px 0;display:inline-block;word-break:break-all}.reason-line{margin:0 0 6px}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
.empty{font-size:20px;padding:28px;text-align:center}
footer{margin-top:40px;font-size:12px;color:var(--muted)}
@media (max-width:860px){.body{grid-template-columns:1fr}}
@media print{main{max-width:none;padding:0}.controls{display:none}h2{break-after:avoid}
details.col:not([open]){display:none}tr{break-inside:avoid}}
"""

_SCRIPT = """
(function(){var c=document.getElementById('controls');if(!c)return;c.hidden=false;
var only=document.getElementById('drifted-only');
only.addEventListener('change',function(){document.querySelectorAll('[data-drifted="0"]')
.forEach(function(e){e.hidden=only.checked;});});
function all(open){document.querySelectorAll('details.col').forEach(function(d){d.open=open;});}
document.getElementById('expand').addEventListener('click',function(){all(true);});
document.getElementById('collapse').addEventListener('click',function(){all(false);});})();
"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
_CSP = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'; "
        "img-src data:")


# -- the page -----------------------------------------------------------------------------

def _ratio(check: ColumnDrift) -> float:
    value = check.effect_value
    if value is None or math.isnan(value):
        return -1.0
    return value / check.threshold if check.threshold > 0 else math.inf


def _ordered(columns: Sequence[ColumnDrift]) -> list[ColumnDrift]:
    """Drifted columns first (heaviest, then largest effect), then the rest by effect."""
    return sorted(columns, key=lambda c: (not c.drifted, -c.weight if c.drifted else 0.0,
                                          -_ratio(c), c.column))


def _pair(check: ColumnDrift, reference: TableProfile | None,
          current: TableProfile | None) -> tuple[ColumnProfile, ColumnProfile] | str:
    """Both profiles of a column, or why there is nothing to draw."""
    if reference is None or current is None:
        return "no profiles given: distributions not drawn"
    ref, cur = reference.columns.get(check.column), current.columns.get(check.column)
    if ref is None or cur is None:
        return f"not in the {'reference' if ref is None else 'current'} profile"
    if ref.kind != check.kind or cur.kind != check.kind:
        return f"profiled as {ref.kind} / {cur.kind}, checked as {check.kind}"
    return ref, cur


def _shape(pair: tuple[ColumnProfile, ColumnProfile] | str) -> Histogram | Bars | None:
    if isinstance(pair, str):
        return None
    return histogram_of(*pair) if pair[0].kind == "numeric" else bars_of(*pair)


def _badge(drifted: bool) -> str:
    return '<span class="badge bad">drifted</span>' if drifted else \
        '<span class="badge ok">no drift</span>'


def _summary_table(checks: list[ColumnDrift], shapes: dict[str, Histogram | Bars | None],
                   anchors: dict[str, str]) -> str:
    rows = []
    for check in checks:
        effect = (f'{esc(fmt_number(check.effect_value))} <span class="muted">/ '
                  f'{esc(fmt_number(check.threshold))}</span> {effect_bar(check)}<br><span '
                  f'class="muted small">{esc(check.effect)}</span>')
        rows.append(
            f'<tr class="{"drifted" if check.drifted else "ok"}" '
            f'data-drifted="{int(check.drifted)}"><td><a href="#{anchors[check.column]}">'
            f'<code>{esc(check.column)}</code></a></td><td>{esc(check.role)}</td>'
            f'<td>{esc(check.kind)}</td><td>{_badge(check.drifted)}</td>'
            f'<td class="num">{fmt_p(check.p_value)}</td><td class="num">{effect}</td>'
            f'<td class="num">{esc(fmt_number(check.weight))}</td>'
            f'<td>{sparkline(shapes.get(check.column))}</td>'
            f'<td class="reason">{esc(check.reason)}</td></tr>')
    return ('<div class="scroll"><table class="summary"><thead><tr><th>Column</th><th>Role'
            '</th><th>Kind</th><th>Verdict</th><th class="num">p-value</th><th class="num">'
            'Effect / threshold</th><th class="num">Weight</th><th>Distribution</th>'
            '<th>Reason</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _profile_rows(ref: ColumnProfile, cur: ColumnProfile, fmt: Fmt) -> list[tuple[str, str, str]]:
    def missing(p: ColumnProfile) -> str:
        total = p.count + p.nulls
        return fmt_share(p.nulls / total) if total else "—"

    rows = [("values", fmt_number(ref.count), fmt_number(cur.count)),
            ("missing", missing(ref), missing(cur))]
    if ref.kind == "numeric":
        qs = (0.05, 0.5, 0.95)
        ref_q, cur_q = ref.quantiles(qs), cur.quantiles(qs)
        rows += [("mean", fmt(ref.mean), fmt(cur.mean)),
                 ("std", fmt_number(ref.std), fmt_number(cur.std)),
                 ("min", fmt(ref.min), fmt(cur.min))]
        rows += [(name, fmt(a), fmt(b))
                 for name, a, b in zip(("p5", "median", "p95"), ref_q, cur_q, strict=True)]
        rows.append(("max", fmt(ref.max), fmt(cur.max)))
    else:
        rows.append(("distinct", fmt_number(ref.distinct), fmt_number(cur.distinct)))
    return rows


def _column_section(check: ColumnDrift, anchor: str, pair: tuple[ColumnProfile, ColumnProfile]
                    | str, shape: Histogram | Bars | None, fmt: Fmt) -> str:
    stats = [f'<tr class="key"><td>effect: {esc(check.effect)}</td><td class="num">'
             f'{esc(fmt_number(check.effect_value))} <span class="muted">/ threshold '
             f'{esc(fmt_number(check.threshold))}</span></td></tr>',
             f'<tr class="key"><td>p-value (corrected)</td><td class="num">{fmt_p(check.p_value)}'
             f'</td></tr>']
    stats += [f'<tr><td>{esc(name)}</td><td class="num">'
              f'{fmt_p(value) if name.endswith("p_value") else esc(fmt_number(value))}</td></tr>'
              for name, value in sorted(check.statistics.items())]
    compare = ""
    if not isinstance(pair, str):
        compare = ('<table class="stats"><thead><tr><th></th><th class="num">reference</th>'
                   '<th class="num">current</th></tr></thead><tbody>' + "".join(
                       f'<tr><td>{name}</td><td class="num">{esc(a)}</td><td class="num">'
                       f'{esc(b)}</td></tr>' for name, a, b in _profile_rows(*pair, fmt))
                   + "</tbody></table><br>")
    if isinstance(shape, Histogram):
        caption = "Densities over the same bins"
        if max(shape.outside) > 1e-4:
            caption += (f"; the x axis leaves out outliers ({fmt_share(shape.outside[0])} of the "
                        f"reference, {fmt_share(shape.outside[1])} of the current values)")
        figure = f"<figure>{histogram_svg(shape, check.column, fmt)}" \
                 f"<figcaption>{esc(caption)}.</figcaption></figure>"
    elif isinstance(shape, Bars):
        figure = (f"<figure>{bars_svg(shape, check.column)}<figcaption>Share of non-missing "
                  f"values per category, most frequent first.</figcaption></figure>")
    else:
        figure = f'<p class="muted">{esc(pair if isinstance(pair, str) else "no values")}</p>'
    return (f'<details class="col" id="{anchor}" data-drifted="{int(check.drifted)}"'
            f'{" open" if check.drifted else ""}><summary>{_badge(check.drifted)} '
            f'<code>{esc(check.column)}</code><span class="muted">{esc(check.kind)} · '
            f'{esc(check.role)} · {esc(check.effect)} {esc(fmt_number(check.effect_value))} / '
            f'{esc(fmt_number(check.threshold))} · p {fmt_p(check.p_value)}</span></summary>'
            f'<div class="body"><div><p class="reason-line">{esc(check.reason)}</p>{figure}'
            f'</div><div>{compare}<table class="stats"><tbody>{"".join(stats)}</tbody></table>'
            f'</div></div></details>')


_SECTIONS = (("prediction", "Prediction drift"), ("target", "Target drift"),
             ("feature", "Feature drift"))


def _drift_sections(drift: DriftReport, reference: TableProfile | None,
                    current: TableProfile | None) -> str:
    checks = _ordered(drift.columns)
    anchors = {c.column: f"col-{i}" for i, c in enumerate(checks)}
    pairs = {c.column: _pair(c, reference, current) for c in checks}
    shapes = {name: _shape(pair) for name, pair in pairs.items()}
    types = {c.name: c.type for c in reference.schema} if reference is not None else {}
    out = ['<section id="columns"><h2>Columns</h2><div class="controls" id="controls" hidden>'
           '<label><input type="checkbox" id="drifted-only"> drifted only</label>'
           '<button type="button" id="expand">expand all</button><button type="button" '
           'id="collapse">collapse all</button></div>',
           _summary_table(checks, shapes, anchors)]
    if drift.skipped:
        out.append('<p class="muted">Not compared: ' + "; ".join(
            f"<code>{esc(name)}</code> ({esc(why)})" for name, why in sorted(drift.skipped.items()))
                   + "</p>")
    out.append("</section>")
    for role, heading in _SECTIONS:
        group = [c for c in checks if c.role == role]
        if not group:
            continue
        drifted = sum(c.drifted for c in group)
        out.append(f'<section id="{role}-drift"><h2>{heading} <span class="muted">'
                   f'({drifted} of {len(group)} drifted)</span></h2>')
        out.extend(_column_section(c, anchors[c.column], pairs[c.column], shapes[c.column],
                                   time_formatter(types.get(c.column)) or fmt_number)
                   for c in group)
        out.append("</section>")
    return "".join(out)


def _verdict(report: MonitorReport) -> str:
    drift = report.drift
    if drift is None:
        return ('<div class="verdict none"><strong>Drift not checked</strong></div>')
    features = [c for c in drift.columns if c.role == "feature"]
    drifted = [c for c in features if c.drifted]
    head = "Dataset drift detected" if drift.drifted else "No dataset drift"
    words = (f"{len(drifted)} of {len(features)} feature columns drifted; weighted drift score "
             f"{fmt_number(drift.score)} {'≥' if drift.drifted else '<'} threshold "
             f"{fmt_number(drift.threshold)}.")
    also = [f"the {c.role} <code>{esc(c.column)}</code> drifted" for c in drift.columns
            if c.role != "feature" and c.drifted]
    extra = (" Also: " + ", ".join(also) + ".") if also else ""
    tone = " bad" if drift.drifted or also else " warn" if drifted else ""
    return (f'<div class="verdict{tone}"><strong>{head}'
            f'</strong> — {esc(words)}{extra}<p class="muted">Rule: {esc(drift.rule)}</p></div>')


def _header(report: MonitorReport, title: str, reference_rows: int | None) -> str:
    meta = [("Reference", f"{report.reference}"
             + (f" ({fmt_number(reference_rows)} rows)" if reference_rows is not None else "")),
            ("Current", f"{report.current} ({fmt_number(report.rows)} rows)")]
    if report.window is not None:
        start, end = report.window
        meta.append(("Window", f"{fmt_time(start)} – {fmt_time(end)} UTC"))
    if report.deployment:
        meta.append(("Deployment", report.deployment))
    if report.model_version:
        meta.append(("Model version", report.model_version))
    failed = report.failed_checks
    badges = "".join(f'<span class="badge bad">{esc(name)}</span>' for name in failed) or \
        '<span class="badge ok">all checks passed</span>'
    return (f"<header><h1>{esc(title)}</h1><dl class=\"meta\">" + "".join(
        f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in meta) + "</dl>"
        + ("" if report.empty else _verdict(report))
        + ("" if report.empty else f'<div class="badges"><span class="muted">Failed checks:'
                                     f'</span>{badges}</div>')
        + "</header>")


def _quality_section(quality: QualityReport | None) -> str:
    out = ['<section id="quality"><h2>Data quality</h2>']
    if quality is None:
        out.append('<p class="muted">Not checked.</p>')
    elif not quality.issues:
        out.append(f"<p>No issues in {esc(fmt_number(quality.rows))} rows.</p>")
    else:
        out.append(f"<p>{len(quality.issues)} issue(s) in {esc(fmt_number(quality.rows))} rows.</p>"
                   '<table><thead><tr><th>Column</th><th>Issue</th><th class="num">Count</th>'
                   '<th class="num">Share</th><th>What</th><th>Examples</th></tr></thead><tbody>')
        for issue in quality.issues:
            examples = " ".join(f'<code class="ex">{esc(clip_text(v, EXAMPLE_CHARS))}</code>'
                                for v in issue.examples)
            if issue.rows:
                examples += (f'<br><span class="muted">rows {esc(", ".join(map(str, issue.rows)))}'
                             "</span>")
            out.append(f'<tr class="drifted"><td><code>{esc(issue.column)}</code></td>'
                       f'<td>{esc(issue.kind.replace("_", " "))}</td>'
                       f'<td class="num">{esc(fmt_number(issue.count))}</td>'
                       f'<td class="num">{fmt_share(issue.share)}</td><td>{esc(issue.message)}</td>'
                       f"<td>{examples}</td></tr>")
        out.append("</tbody></table>")
    return "".join(out) + "</section>"


def _performance_section(performance: PerformanceReport | None) -> str:
    if performance is None:
        return ('<section id="performance"><h2>Performance</h2><p class="muted">Not measured: '
                'no labels joined for this window.</p></section>')
    coverage = performance.labelled / performance.rows if performance.rows else 0.0
    rows = []
    for name in sorted(set(performance.metrics) | set(performance.baseline)):
        value, base = performance.metrics.get(name), performance.baseline.get(name)
        change = "—" if value is None or base is None else f"{value - base:+.3g}"
        status = '<span class="badge bad">degraded</span>' if name in performance.degraded \
            else '<span class="badge ok">ok</span>' if value is not None else ""
        rows.append(f'<tr class="{"drifted" if name in performance.degraded else "ok"}"><td>'
                    f'{esc(name)}</td><td class="num">{esc(fmt_number(value))}</td><td class="num">'
                    f'{esc(fmt_number(base))}</td><td class="num">{esc(change)}</td>'
                    f"<td>{status}</td></tr>")
    return (f'<section id="performance"><h2>Performance</h2><p>{esc(performance.task)} on '
            f"{esc(fmt_number(performance.labelled))} labelled of "
            f"{esc(fmt_number(performance.rows))} rows "
            f"({fmt_share(coverage)}). {esc(performance.message)}</p><table><thead><tr><th>Metric"
            '</th><th class="num">Window</th><th class="num">Baseline</th><th class="num">'
            f"Change</th><th>Status</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "</section>")


def render_html(report: MonitorReport, *, reference: TableProfile | None = None,
                current: TableProfile | None = None, title: str | None = None) -> str:
    """The report as one self-contained HTML page (a ``str``; write it as UTF-8).

    ``reference`` and ``current`` are the profiles the report compared; with them every column
    gets its distribution plot (drifted columns shown open, the others on demand), without them
    the page has the figures of the checks only. An empty window gives a page that says there
    is no verdict, with no plots.
    """
    if not isinstance(report, MonitorReport):
        from loopml.errors import InvalidArgument

        raise InvalidArgument(f"render_html() takes a MonitorReport, got "
                              f"{type(report).__name__}; build one with the monitoring API")
    title = title or f"Monitoring report: {report.current} vs {report.reference}"
    reference_rows = (report.drift.reference_rows if report.drift is not None
                      else reference.rows if reference is not None else None)
    parts = [_header(report, title, reference_rows)]
    if report.empty:
        parts.append('<section class="verdict none empty"><strong>No rows in the current '
                     "window — no verdict.</strong><p>The current sample holds no rows, so no "
                     "drift, quality or performance verdict is given.</p></section>")
        if report.quality is not None and report.quality.issues:
            parts.append(_quality_section(report.quality))
    else:
        if report.drift is not None:
            parts.append(_drift_sections(report.drift, reference, current))
        parts.append(_quality_section(report.quality))
        parts.append(_performance_section(report.performance))
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>"
            + "".join(parts) + "<footer>Generated by loopml.</footer></main>"
            f"<script>{_SCRIPT}</script></body></html>\n")
