"""Pages of the dataset registry: datasets, a dataset's versions, one version's schema and
column statistics (histograms drawn from the stored profile, never from the rows), and the
diff between two versions (files, rows, schema, shifted statistics, overlaid distributions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import InvalidArgument
from loopml.ui import charts
from loopml.ui.render import client_of, page, render

if TYPE_CHECKING:
    from loopml.profiling import ColumnProfile

__all__ = ["dataset_page", "datasets_page", "diff_page", "version_page"]

MAX_COLUMN_CHARTS, BINS = 60, 20


def _ref(request: Request, version: str | int) -> str:
    return f"{request.path_params['name']}@{version}"


@page
def datasets_page(request: Request) -> Response:
    found = client_of(request).list_datasets()
    return render(request, "datasets.html", section="datasets", datasets=found)


@page
def dataset_page(request: Request) -> Response:
    client = client_of(request)
    name = request.path_params["name"]
    versions = client.list_dataset_versions(name)
    return render(request, "dataset.html", section="datasets", name=name,
                  versions=list(reversed(versions)))


def column_chart(name: str, column: ColumnProfile) -> dict[str, Any] | None:
    """A histogram of a numeric column, bars of a categorical column's top values."""
    if column.kind == "numeric" and column.count:
        edges, counts = column.histogram(BINS)
        return charts.histogram(edges, counts, title=name)
    top = column.top(10)
    if top:
        return charts.bars([label for label, _ in top], [count for _, count in top],
                           title=name, horizontal=True)
    return None


@page
def version_page(request: Request) -> Response:
    client = client_of(request)
    ref = _ref(request, request.path_params["version"])
    version = client.get_dataset_version(ref)
    profile = client.dataset_profile(version.ref)
    stats, figures = {}, {}
    if profile is not None:
        for index, name in enumerate(profile.column_names):
            stats[name] = profile[name].summary()
            if index < MAX_COLUMN_CHARTS:
                figures[name] = column_chart(name, profile[name])
    lineage = client.dataset_lineage(version.ref)
    consumers = client.dataset_consumers(version.ref)
    others = [v.version for v in client.list_dataset_versions(version.dataset)]
    return render(request, "dataset_version.html", section="datasets", version=version,
                  profile=profile, stats=stats, figures=figures, lineage=lineage,
                  consumers=consumers, others=others)


def overlaid(name: str, old: ColumnProfile, new: ColumnProfile, labels: tuple[str, str]
             ) -> dict[str, Any] | None:
    """The share of rows per bin of both versions over the same bins."""
    import numpy as np

    if old.kind != "numeric" or new.kind != "numeric" or not old.count or not new.count:
        return None
    bounds = [float(b) for b in (old.min, old.max, new.min, new.max) if b is not None]
    if len(bounds) < 4:
        return None
    low, high = min(bounds), max(bounds)
    if low == high:
        return None
    edges = np.linspace(low, high, BINS + 1)
    centers = ((edges[:-1] + edges[1:]) / 2).tolist()
    series = {}
    for label, column in zip(labels, (old, new), strict=True):
        cdf = np.concatenate([[0.0], column.cdf(edges[1:-1]), [1.0]])
        series[label] = (centers, np.diff(np.maximum.accumulate(cdf)).tolist())
    return charts.lines(series, title=name, x_title=name, y_title="share of rows")


@page
def diff_page(request: Request) -> Response:
    client = client_of(request)
    name = request.path_params["name"]
    versions = client.list_dataset_versions(name)
    if len(versions) < 1:
        raise InvalidArgument(f"dataset {name!r} has no versions to compare")
    numbers = [v.version for v in versions]
    old_text = request.query_params.get("old") or str(numbers[-2] if len(numbers) > 1
                                                      else numbers[-1])
    new_text = request.query_params.get("new") or str(numbers[-1])
    old_ref, new_ref = _ref(request, old_text), _ref(request, new_text)
    diff = client.diff_datasets(old_ref, new_ref)
    old_profile, new_profile = client.dataset_profile(old_ref), client.dataset_profile(new_ref)
    figures = {}
    if old_profile is not None and new_profile is not None:
        shared = [c for c in new_profile.column_names if c in old_profile.columns]
        for column in shared[:MAX_COLUMN_CHARTS]:
            figure = overlaid(column, old_profile[column], new_profile[column],
                              (diff.old, diff.new))
            if figure is not None:
                figures[column] = figure
    return render(request, "dataset_diff.html", section="datasets", name=name, diff=diff,
                  numbers=numbers, old=diff.old, new=diff.new, figures=figures)
