"""Comparing two tables, no deployment needed: drift, data quality and, with labels,
performance.

::

    report = compare("data/train.parquet", "data/this_week.csv")      # MonitorReport
    report = compare("churn@3", "churn@latest", target="churned", prediction="score",
                     html="report.html")
    report.drift.drifted_columns, report.quality.issues

Each side is a CSV or Parquet file (or a directory of Parquet files), a dataset version
(``churn@3``), a pandas DataFrame, a pyarrow Table or a :class:`~loopml.profiling.TableProfile`.
The reference is used as a profile (a dataset version's stored profile is never recomputed);
the current table is read once: cast to the reference's types
(:func:`~loopml.monitoring.conform.conform`) and profiled with the quality checks in the same
pass (:class:`~loopml.monitoring.quality.QualityObserver`). A current table whose columns and
types already match the reference's is streamed batch by batch; one that needs casting is read
into memory first. A current *profile* gets the drift checks only (quality needs the rows).

:func:`check_table` is that step on its own, which :func:`loopml.monitoring.run.monitor`
shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidArgument
from loopml.monitoring.reference import TableInput, open_input, profile_of, read_all
from loopml.monitoring.results import (
    ColumnRole,
    DriftReport,
    MonitorReport,
    PerformanceReport,
    QualityReport,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.client.base import ClientBase
    from loopml.monitoring.drift import DriftRules
    from loopml.profiling import TableProfile, TableSource

__all__ = ["TableCheck", "check_table", "compare", "subset_profile", "write_html"]


@dataclass(frozen=True, eq=False)
class TableCheck:
    """The checks of one table against a reference, and the table's profile (None when the
    table came as a profile of nothing)."""

    rows: int
    drift: DriftReport | None
    quality: QualityReport | None
    current: TableProfile | None


def subset_profile(profile: TableProfile, columns: Sequence[str]) -> TableProfile:
    """``profile`` restricted to ``columns`` (in the profile's order)."""
    from loopml.profiling import TableProfile

    wanted = set(columns)
    schema = tuple(c for c in profile.schema if c.name in wanted)
    return TableProfile(profile.rows, {c.name: profile.columns[c.name] for c in schema}, schema)


def _contract(contract: Mapping[str, Any] | None, columns: Sequence[str]) -> Any:
    """The contract's rules of ``columns`` (a window has no other columns to check)."""
    if not contract:
        return None
    from loopml.datasets.contract import Contract

    rules = Contract.from_dict(contract).columns
    kept = {name: rule for name, rule in rules.items() if name in set(columns)}
    return Contract(kept) if kept else None


def _matches(source: TableSource, reference: TableProfile) -> bool:
    """Whether ``source`` needs no casting: the reference's columns, its types, in order."""
    from loopml.monitoring.conform import conform

    if source.schema.names != reference.column_names:
        return False
    first = next(iter(source.batches()), None)
    if first is None:
        return True
    import pyarrow as pa

    sample = pa.Table.from_batches([first.slice(0, 1000)])
    conformed, issues = conform(sample, reference)
    return not issues and conformed.schema == sample.schema


def _scan(reference: TableProfile, source: TableSource, contract: Any
          ) -> tuple[TableProfile, QualityReport]:
    from loopml.monitoring.conform import conform
    from loopml.monitoring.quality import QualityObserver
    from loopml.profiling import profile_table

    if _matches(source, reference):
        observer = QualityObserver(reference, contract=contract)
        profile = profile_table(source, observers=[observer])
    else:
        table, issues = conform(read_all(TableInput("", source=source)), reference)
        observer = QualityObserver(reference, contract=contract, schema_issues=issues)
        profile = profile_table(table, observers=[observer])
    return profile, observer.report(profile.rows)


def check_table(reference: TableProfile, current: TableInput | pa.Table, *,
                roles: Mapping[str, ColumnRole] | None = None,
                importance: Mapping[str, float] | None = None,
                rules: DriftRules | None = None,
                contract: Mapping[str, Any] | None = None) -> TableCheck:
    """Drift and quality of ``current`` against ``reference`` (already restricted to the
    columns to check); an empty ``current`` gets no verdict."""
    from loopml.monitoring.drift import drift_report
    from loopml.profiling.sources import ArrowSource

    given = current if isinstance(current, TableInput) \
        else TableInput("", source=ArrowSource(current))
    checked = _contract(contract, reference.column_names)
    if given.source is None:  # a profile: drift only
        assert given.profile is not None
        profile, quality = given.profile, None
    else:
        profile, found = _scan(reference, given.source, checked)
        quality = found
    if profile.rows == 0:
        return TableCheck(0, None, None, profile)
    drift = drift_report(reference, profile, rules=rules, roles=roles, importance=importance,
                         columns=reference.column_names)
    return TableCheck(profile.rows, drift, quality, profile)


def write_html(path: str | Path, report: MonitorReport, *, reference: TableProfile | None,
               current: TableProfile | None, title: str | None = None) -> Path:
    """Write the self-contained HTML report of ``report`` to ``path``."""
    from loopml.monitoring.html import render_html

    target = Path(path).expanduser()
    if target.is_dir():
        raise InvalidArgument(f"{path} is a directory; give the HTML report a file name, "
                              "e.g. report.html")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(render_html(report, reference=reference, current=current,
                                     title=title), encoding="utf-8")
    temporary.replace(target)
    return target


def _performance(given: TableInput, target: str | None,
                 prediction: str | None) -> PerformanceReport | None:
    """Metrics of the ``prediction`` column against the ``target`` column of the rows."""
    if target is None or prediction is None or given.source is None:
        return None
    import pyarrow as pa

    from loopml.monitoring.performance import performance_report

    source = given.source
    missing = [c for c in (target, prediction) if c not in source.schema.names]
    if missing:
        raise InvalidArgument(f"the current table has no column {', '.join(map(repr, missing))}"
                              f"; its columns: {', '.join(source.schema.names)}")
    parts = [batch.select([prediction, target]) for batch in source.batches()]
    if not parts:
        return None
    columns = pa.Table.from_batches(parts)
    return performance_report(predictions=columns.column(0).combine_chunks(),
                              labels=columns.column(1).combine_chunks())


def compare(reference: Any, current: Any, *, columns: Sequence[str] | None = None,
            rules: DriftRules | None = None, target: str | None = None,
            prediction: str | None = None, importance: Mapping[str, float] | None = None,
            html: str | Path | None = None,
            client: ClientBase | None = None) -> MonitorReport:
    """Drift and quality of ``current`` against ``reference`` (see the module's docstring),
    and performance when the current table has both ``target`` (labels) and ``prediction``.

    ``columns`` restricts the checks (default: every column of the reference); ``target`` and
    ``prediction`` name the columns tested as target and prediction drift (they weigh nothing
    in the dataset verdict); ``importance`` weighs the features; ``rules`` overrides the drift
    rule (:class:`~loopml.monitoring.drift.DriftRules`); ``html`` writes the HTML report there.
    Dataset versions are read through ``client`` (default: the module-level client).
    """
    if columns is not None and isinstance(columns, str):
        raise InvalidArgument(f"columns must be a list of column names, got the string "
                              f"{columns!r}; write [{columns!r}]")
    before = open_input(reference, client=client, rows=False, what="reference")
    after = open_input(current, client=client, rows=True, what="current table")
    full = profile_of(before)
    names = full.column_names if columns is None else list(dict.fromkeys(columns))
    unknown = [name for name in names if name not in full.columns]
    if unknown:
        raise InvalidArgument(f"no column {', '.join(map(repr, unknown))} in the reference "
                              f"{before.name}; its columns: {', '.join(full.column_names)}")
    roles: dict[str, ColumnRole] = {}
    for column, role in ((target, "target"), (prediction, "prediction")):
        if column is not None:
            if column not in full.columns:
                raise InvalidArgument(f"the {role} column {column!r} is not in the reference "
                                      f"{before.name}; its columns: "
                                      f"{', '.join(full.column_names)}")
            roles[column] = role  # type: ignore[assignment]
            if column not in names:
                names.append(column)
    base = subset_profile(full, names)
    checked = check_table(base, after, roles=roles, importance=importance, rules=rules,
                          contract=before.contract)
    report = MonitorReport(reference=before.name, current=after.name, rows=checked.rows,
                           drift=checked.drift, quality=checked.quality,
                           performance=_performance(after, target, prediction)
                           if checked.rows else None)
    if html is not None:
        write_html(html, report, reference=base, current=checked.current)
    return report
