"""The web UI in headless Chromium (Debian's ``chromium``, driven by Playwright; no browser
download): every page loads without console errors and draws its charts (with page-specific
checks of what they show), the runs filter, sort, columns and comparison work, and the review
queue is labelled with the keyboard.

A real uvicorn server in a thread serves the application ``loopml server`` builds, over a
store seeded by ``ui_seed`` (fixtures in ``conftest.py``). Screenshots of every page are kept in
``$LOOPML_TEST_SCREENSHOTS`` (else a temporary directory); assertion messages name them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the UI tests need playwright (pip install 'loopml[test]')")

import ui_seed  # noqa: E402  (tests/ui is on sys.path)

CHROMIUM = (os.environ.get("LOOPML_TEST_CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser"))
SCREENSHOTS = os.environ.get("LOOPML_TEST_SCREENSHOTS")

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: "
                       "apt-get install chromium, as `make test` does where apt is available)"),
]

#: Every page: (test id, path with {placeholders}, how many charts it draws at least).
PAGES = [
    ("home", "/", 0),
    ("experiments", "/ui/experiments", 0),
    ("runs", "/ui/runs", 0),
    ("run", "/ui/runs/{gb-fast}", 2),
    ("compare", "/ui/compare?run={rf-small}&run={gb-fast}&run={gb-slow}", 3),
    ("datasets", "/ui/datasets", 0),
    ("dataset", "/ui/datasets/churn", 0),
    ("dataset-version", "/ui/datasets/churn/2", 3),
    ("dataset-diff", "/ui/datasets/churn/diff?old=1&new=2", 2),
    ("models", "/ui/models", 0),
    ("model", "/ui/models/churn", 1),
    ("pipelines", "/ui/pipelines", 0),
    ("pipeline-run", "/ui/pipelines/{pipeline}", 0),
    ("pipeline-cached", "/ui/pipelines/{cached}", 0),
    ("deployments", "/ui/deployments", 0),
    ("deployment", "/ui/deployments/churn-api", 9),
    ("review-queues", "/ui/review", 0),
    ("review", "/ui/review/churn-api", 0),
    ("automation", "/ui/automation", 1),
]

_CHARTS_DRAWN = """() => [...document.querySelectorAll('script[data-chart]')].every(s => {
    const el = document.getElementById(s.dataset.chart);
    return el && el.classList.contains('js-plotly-plot') && el.querySelector('.main-svg'); })"""
_CHART_DATA = """() => [...document.querySelectorAll('.js-plotly-plot')].map(
    el => ({id: el.id, traces: el.data.length,
            points: el.data.reduce((n, t) => n + ((t.x || t.values || (t.dimensions || [])
                                                   .flatMap(d => d.values) || []).length), 0)}))"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser context for the module: its cache keeps Plotly's script across pages."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = launched.new_context(viewport={"width": 1400, "height": 900})
        yield context
        context.close()
        launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if SCREENSHOTS:
        path = Path(SCREENSHOTS)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("ui-screenshots")


@dataclass
class Visit:
    """A browser tab on the UI that records console errors, page errors and failed loads."""

    page: Any
    base: str
    shots: Path
    name: str
    errors: list[str] = field(default_factory=list)
    shot: Path | None = None

    def open(self, path: str) -> Any:
        response = self.page.goto(self.base + path, wait_until="load")
        self.wait_for_charts()
        return response

    def wait_for_charts(self) -> None:
        self.page.wait_for_function(_CHARTS_DRAWN, timeout=15_000)

    def screenshot(self, suffix: str = "") -> Path:
        self.shot = self.shots / f"{self.name}{suffix}.png"
        self.page.screenshot(path=str(self.shot), full_page=True)
        return self.shot

    def context(self) -> str:
        return f"(screenshot: {self.shot}; console: {self.errors})"


@pytest.fixture
def visit(browser: Any, base_url: str, screenshots: Path,
          request: pytest.FixtureRequest) -> Iterator[Visit]:
    page = browser.new_page()
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "_")
    tab = Visit(page, base_url, screenshots, name)
    page.on("console", lambda m: tab.errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: tab.errors.append(f"failed: {r.url} {r.failure}"))
    yield tab
    page.close()


def _path(template: str, seeded: ui_seed.Seeded) -> str:
    ids = {**seeded.run_ids, "pipeline": seeded.pipeline_run, "cached": seeded.cached_run}
    for key, value in ids.items():
        template = template.replace("{" + key + "}", value)
    return template


def _rows(page: Any, selector: str = "#runs-table tbody tr[data-run]") -> list[str]:
    return [row.inner_text().split("\t")[1].strip() for row in page.query_selector_all(selector)]


def _check_run(page: Any, seeded: ui_seed.Seeded) -> None:
    """The metric charts hold the logged points."""
    lines = page.eval_on_selector_all(".js-plotly-plot .scatterlayer path.js-line",
                                      "els => els.map(e => e.getAttribute('d'))")
    assert len(lines) == 2 and all(d.startswith("M") for d in lines)
    markers = page.eval_on_selector_all(".js-plotly-plot .scatterlayer .points path",
                                        "els => els.length")
    assert markers == 20  # 10 steps of auc and of loss
    auc = page.evaluate("() => document.getElementById('metric-1').data[0].y")
    history = seeded.client.get_metric_history(seeded.run_ids["gb-fast"], "auc")
    assert auc == pytest.approx([m.value for m in history])


def _nodes(page: Any) -> list[str]:
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        "svg.graph g.node", "els => els.map(e => e.getAttribute('class').split(' ')[1] + "
        "' ' + e.dataset.node)")


def _check_pipeline(page: Any, seeded: ui_seed.Seeded) -> None:
    """The DAG coloured by step status, and each step's captured output."""
    assert _nodes(page) == ["k-completed prepare", "k-completed train", "k-completed evaluate"]
    edges = page.eval_on_selector_all("svg.graph path.edge", "els => els.length")
    assert edges == 3  # prepare → train → evaluate, prepare → evaluate
    assert "preparing 30 rows" in page.text_content("#steps")


def _check_cached(page: Any, seeded: ui_seed.Seeded) -> None:
    assert _nodes(page) == ["k-cached prepare", "k-cached train", "k-cached evaluate"]
    assert page.inner_text("#steps").count("hit:") == 3


def _check_model(page: Any, seeded: ui_seed.Seeded) -> None:
    """The lineage: dataset version → run → model version → deployment."""
    kinds = sorted(node.split()[0] for node in _nodes(page))
    assert kinds == ["k-dataset", "k-dataset", "k-deployment", "k-model", "k-model", "k-run",
                     "k-run"]
    assert page.eval_on_selector_all("svg.graph path.edge", "els => els.length") == 6
    history = page.inner_text("#alias-history")
    assert "first model" in history and "candidate" in history


def _check_deployment(page: Any, seeded: ui_seed.Seeded) -> None:
    """Traffic split, and alert messages shown as text (never as markup)."""
    alerts = page.inner_text("#alerts")
    assert "<b>x1</b>" in alerts and page.query_selector("#alerts b") is None
    assert "90%" in page.inner_text("#traffic") and "10%" in page.inner_text("#traffic")


def _check_dataset_version(page: Any, seeded: ui_seed.Seeded) -> None:
    assert page.eval_on_selector_all("#columns tbody tr", "els => els.length") == 3
    assert "free" in page.inner_text("#columns")


CHECKS = {"run": _check_run, "pipeline-run": _check_pipeline, "pipeline-cached": _check_cached,
          "model": _check_model, "deployment": _check_deployment,
          "dataset-version": _check_dataset_version}


@pytest.mark.parametrize(("name", "path", "charts"), [pytest.param(*p, id=p[0]) for p in PAGES])
def test_every_page_loads_without_console_errors_and_draws_its_charts(
        visit: Visit, seeded: ui_seed.Seeded, name: str, path: str, charts: int) -> None:
    response = visit.open(_path(path, seeded))
    visit.screenshot()
    assert response is not None and response.status == 200, visit.context()
    assert response.headers["content-type"].startswith("text/html"), visit.context()
    assert "Traceback" not in visit.page.content(), visit.context()
    drawn = visit.page.evaluate(_CHART_DATA)
    assert len(drawn) >= charts, f"{drawn} {visit.context()}"
    assert all(d["traces"] > 0 and d["points"] > 0 for d in drawn), f"{drawn} {visit.context()}"
    if name in CHECKS:
        try:
            CHECKS[name](visit.page, seeded)
        except AssertionError as exc:
            raise AssertionError(f"{exc} {visit.context()}") from exc
    assert visit.errors == [], visit.context()


def test_the_runs_filter_sort_and_columns_change_the_table(
        visit: Visit, seeded: ui_seed.Seeded) -> None:
    page = visit.page
    visit.open("/ui/runs")
    everything = _rows(page)
    expected = {r.name for r in seeded.client.search_runs(filter="metrics.auc > 0.8")}
    assert expected == {"rf-deep", "gb-fast"}
    page.fill("#filter", "metrics.auc > 0.8")
    with page.expect_navigation():
        page.press("#filter", "Enter")
    visit.screenshot("-filtered")
    assert set(_rows(page)) == expected and len(everything) > len(expected), visit.context()
    assert "filter=metrics.auc" in page.url and page.input_value("#filter") == \
        "metrics.auc > 0.8", visit.context()
    with page.expect_navigation():  # sort by the metric: descending first
        page.click("#runs-table thead a:has-text('metrics.auc')")
    assert _rows(page) == ["gb-fast", "rf-deep"], visit.context()
    with page.expect_navigation():
        page.click("#runs-table thead a:has-text('metrics.auc')")
    assert _rows(page) == ["rf-deep", "gb-fast"], visit.context()
    headers = page.inner_text("#runs-table thead")
    assert "params.depth" in headers
    page.click("details.columns summary")
    with page.expect_navigation():  # a column unticked: the page reloads without it
        page.uncheck("input[name=col][value='params.depth']")
    visit.screenshot("-columns")
    headers = page.inner_text("#runs-table thead")
    assert "params.depth" not in headers and "metrics.auc" in headers, visit.context()
    assert _rows(page) == ["rf-deep", "gb-fast"], visit.context()  # filter and sort kept
    assert visit.errors == [], visit.context()


def test_a_bad_filter_is_shown_above_an_empty_table(visit: Visit) -> None:
    page = visit.page
    visit.open("/ui/runs")
    page.fill("#filter", "metrics.auc >> 1 or drop table runs")
    with page.expect_navigation() as navigation:
        page.press("#filter", "Enter")
    visit.screenshot()
    assert navigation.value.status == 400, visit.context()
    message = page.inner_text("#filter-error")
    assert "metrics.auc" in message or ">>" in message, message
    assert _rows(page) == [] and "Traceback" not in page.content(), visit.context()


def test_ticked_runs_are_compared(visit: Visit, seeded: ui_seed.Seeded) -> None:
    page = visit.page
    visit.open(f"/ui/runs?experiment={seeded.client.get_experiment('churn').id}")
    for name in ("rf-small", "gb-fast"):
        page.check(f"tr[data-run='{seeded.run_ids[name]}'] input[name=run]")
    with page.expect_navigation():
        page.click("#compare")
    visit.wait_for_charts()
    visit.screenshot()
    kinds = page.evaluate("() => document.getElementById('parallel').data.map(t => t.type)")
    assert kinds == ["parcoords"], visit.context()
    dims = page.evaluate(
        "() => document.getElementById('parallel').data[0].dimensions.map(d => d.label)")
    assert dims == ["params.depth", "params.lr", "params.model", "metrics.auc"], dims
    assert page.query_selector("#parallel .parcoords") is not None, visit.context()
    traces = page.evaluate("() => document.getElementById('curve-1').data.map(t => t.name)")
    assert sorted(traces) == ["gb-fast", "rf-small"], visit.context()
    assert visit.errors == [], visit.context()


def test_the_review_queue_is_labelled_with_the_keyboard(
        visit: Visit, seeded: ui_seed.Seeded) -> None:
    from loopml.automation.review import ReviewQueue

    queue = ReviewQueue(ui_seed.ENDPOINT, client=seeded.client)
    before = queue.counts()
    page = visit.page
    visit.open(f"/ui/review/{ui_seed.ENDPOINT}")
    visit.screenshot("-start")

    def item() -> str:
        return str(page.get_attribute("#review-form", "data-item"))

    first = item()
    with page.expect_navigation():
        page.keyboard.press("Enter")  # confirm the prediction
    assert first in page.inner_text("#review-done"), visit.context()
    second = item()
    with page.expect_navigation():
        page.keyboard.press("1")  # the first class: 0
    third = item()
    page.keyboard.press("c")
    page.keyboard.type("maybe")
    with page.expect_navigation() as navigation:
        page.keyboard.press("Enter")
    visit.screenshot("-error")
    assert navigation.value.status == 400, visit.context()
    assert "maybe" in page.inner_text("#review-error") and item() == third, visit.context()
    page.keyboard.press("c")
    page.keyboard.type("1")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    fourth = item()
    with page.expect_navigation():
        page.keyboard.press("s")
    visit.screenshot("-done")
    assert len({first, second, third, fourth}) == 4
    assert queue.get(first).status == "labelled"
    assert queue.get(first).label == queue.get(first).prediction
    assert (queue.get(second).label, queue.get(third).label) == (0, 1)
    assert queue.get(fourth).status == "skipped"
    after = queue.counts()
    assert after["labelled"] == before["labelled"] + 3
    assert after["pending"] == before["pending"] - 4
    with page.expect_navigation():  # the labels become the dataset's next version
        page.click("#commit")
    visit.screenshot("-committed")
    versions = seeded.client.list_dataset_versions("churn")
    assert f"as {versions[-1].ref}" in page.inner_text("main"), visit.context()
    assert queue.get(first).status == "committed" and queue.counts()["labelled"] == 0
    assert [e for e in visit.errors if "400" not in e] == [], visit.context()
