"""Monitoring: drift, data quality and delayed-label performance of a window against a
reference profile, stored as time series, with alerts and reports.

::

    report = loopml.monitoring.compare("train.parquet", "this_week.csv", html="report.html")
    report = loopml.monitoring.monitor("churn-api", window="1h")   # from the payload log
    report.drift.drifted_columns, report.quality.issues, report.performance

Pure statistics (``stats``, ``drift``, ``quality``, ``conform``, ``performance``, ``window``)
are kept apart from persistence (``tables``, ``records``, ``reference``, ``alerts``) and from
running a check (``comparison``, ``run``, ``parallel``). Names are imported on first access,
so ``import loopml.monitoring`` loads neither numpy nor pyarrow. The functions ``compare`` and
``monitor`` live in ``comparison`` and ``run``: a submodule of the same name would replace the
function on this package as soon as something imported it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

__all__ = ["Alert", "ColumnDrift", "DriftReport", "DriftRule", "DriftRules", "MonitorReport",
           "MonitorRun", "PerformanceReport", "QualityIssue", "QualityReport", "Reference",
           "check_deployment", "compare", "drift_report", "list_alerts", "list_results",
           "monitor", "performance_report", "profile_parts", "quality_report", "reference_profile",
           "render_html", "set_reference"]

_EXPORTS = {
    **{name: "loopml.monitoring.results" for name in (
        "ColumnDrift", "DriftReport", "MonitorReport", "PerformanceReport", "QualityIssue",
        "QualityReport")},
    **{name: "loopml.monitoring.drift" for name in ("DriftRule", "DriftRules", "drift_report")},
    **{name: "loopml.monitoring.run" for name in ("MonitorRun", "check_deployment",
                                                  "list_results", "monitor")},
    **{name: "loopml.monitoring.reference" for name in ("Reference", "reference_profile",
                                                        "set_reference")},
    "Alert": "loopml.monitoring.records",
    "compare": "loopml.monitoring.comparison",
    "list_alerts": "loopml.monitoring.alerts",
    "performance_report": "loopml.monitoring.performance",
    "profile_parts": "loopml.monitoring.parallel",
    "quality_report": "loopml.monitoring.quality",
    "render_html": "loopml.monitoring.html",
}

if TYPE_CHECKING:
    from loopml.monitoring.alerts import list_alerts
    from loopml.monitoring.comparison import compare
    from loopml.monitoring.drift import DriftRule, DriftRules, drift_report
    from loopml.monitoring.html import render_html
    from loopml.monitoring.parallel import profile_parts
    from loopml.monitoring.performance import performance_report
    from loopml.monitoring.quality import quality_report
    from loopml.monitoring.records import Alert
    from loopml.monitoring.reference import Reference, reference_profile, set_reference
    from loopml.monitoring.results import (
        ColumnDrift,
        DriftReport,
        MonitorReport,
        PerformanceReport,
        QualityIssue,
        QualityReport,
    )
    from loopml.monitoring.run import MonitorRun, check_deployment, list_results, monitor


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
