"""``loopml monitor``: drift, data quality and performance of deployments and tables.

Exit status: 0 when the command ran, whatever the checks found; 1 on an error (one line on
stderr); with ``--fail-on drift,quality,performance`` (or ``any``), 3 when one of those checks
failed — for scripts and CI jobs that should stop on drift.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import format_time, format_value, print_json, print_table

if TYPE_CHECKING:
    from loopml.monitoring.results import MonitorReport

__all__ = ["monitor"]

CHECKS = ("drift", "quality", "performance")
FAILED_EXIT = 3


def _fail_on(text: str | None) -> set[str]:
    if not text:
        return set()
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    if "any" in chosen:
        return set(CHECKS)
    unknown = sorted(chosen - set(CHECKS))
    if unknown:
        raise click.BadParameter(f"unknown check(s) {', '.join(unknown)}; use any or a "
                                 f"comma-separated list of {', '.join(CHECKS)}",
                                 param_hint="--fail-on")
    return chosen


fail_on_option = click.option(
    "--fail-on", "fail_on", default=None, metavar="CHECKS",
    help="Exit with status 3 when one of these checks failed: any, or a comma-separated list "
         "of drift, quality, performance.")
html_option = click.option("--html", "html", type=click.Path(dir_okay=False), default=None,
                           help="Also write the self-contained HTML report to this file.")


def _since(text: str | None) -> int | None:
    """Milliseconds since the epoch, ``text`` (a duration such as 1d) ago."""
    if text is None:
        return None
    import time

    from loopml.monitoring.run import parse_window

    return int(time.time() * 1000) - parse_window(text)


def _verdict(report: MonitorReport) -> str:
    if report.empty:
        return "no verdict (no rows)"
    failed = report.failed_checks
    return f"FAILED: {', '.join(failed)}" if failed else "all checks passed"


def _print_report(report: MonitorReport) -> None:
    click.echo(f"reference: {report.reference}")
    click.echo(f"current:   {report.current}")
    click.echo(f"rows:      {report.rows:,}; {_verdict(report)}")
    drift = report.drift
    if drift is not None:
        print_table(["column", "role", "statistic", "value", "threshold", "p (corrected)",
                     "drifted"],
                    [[c.column, c.role, c.effect, c.effect_value, c.threshold, c.p_value,
                      "DRIFTED" if c.drifted else "-"] for c in drift.columns],
                    title=f"drift: score {format_value(drift.score)} (threshold "
                          f"{format_value(drift.threshold)}): "
                          f"{'DRIFTED' if drift.drifted else 'not drifted'}")
        for column, reason in drift.skipped.items():
            click.echo(f"  not compared: {column}: {reason}")
    quality = report.quality
    if quality is not None:
        if quality.issues:
            print_table(["column", "issue", "count", "share", "severity", "detail"],
                        [[i.column, i.kind, i.count, i.share, i.severity, i.message]
                         for i in quality.issues], title="data quality")
        else:
            click.echo("data quality: no issues")
    performance = report.performance
    if performance is not None:
        if performance.metrics:
            print_table(["metric", "value", "baseline", "degraded"],
                        [[name, value, performance.baseline.get(name),
                          "DEGRADED" if name in performance.degraded else "-"]
                         for name, value in performance.metrics.items()],
                        title=f"performance ({performance.task})")
        click.echo(f"performance: {performance.message}")


def _exit(report: MonitorReport, fail_on: set[str]) -> None:
    if fail_on & set(report.failed_checks):
        sys.exit(FAILED_EXIT)


@click.group()
def monitor() -> None:
    """Monitoring: drift, data quality and performance, of a deployment or two tables."""


@monitor.command("run")
@click.argument("deployment")
@click.option("--window", default=None,
              help="The span before now to check: 30m, 1h (the default), 2d, 1w.")
@click.option("--last", type=int, default=None, help="Check the newest N requests instead.")
@html_option
@fail_on_option
@json_option
def monitor_run(deployment: str, window: str | None, last: int | None, html: str | None,
                fail_on: str | None, as_json: bool) -> None:
    """Check a window of DEPLOYMENT's payload log against its model's reference; store the
    results and send alerts for failed checks."""
    from loopml.monitoring.run import check_deployment

    failing = _fail_on(fail_on)
    done = check_deployment(deployment, window=window, last=last, html=html,
                            client=open_client())
    if as_json:
        print_json({**done.report.to_dict(), "alerts": [a.to_dict() for a in done.alerts]})
    else:
        _print_report(done.report)
        if done.alerts:
            click.echo(f"{len(done.alerts)} alert(s) sent: "
                       f"{', '.join(sorted({a.kind for a in done.alerts}))}")
        if html:
            click.echo(f"HTML report: {html}")
    _exit(done.report, failing)


@monitor.command("compare")
@click.argument("reference")
@click.argument("current")
@click.option("--columns", default=None, help="Only these columns (comma-separated).")
@click.option("--target", default=None, help="The column of true labels (target drift, and "
              "performance with --prediction).")
@click.option("--prediction", default=None, help="The column of the model's predictions.")
@html_option
@fail_on_option
@json_option
def monitor_compare(reference: str, current: str, columns: str | None, target: str | None,
                    prediction: str | None, html: str | None, fail_on: str | None,
                    as_json: bool) -> None:
    """Compare CURRENT with REFERENCE: CSV or Parquet files, directories of Parquet files or
    dataset versions (churn@3)."""
    from loopml.monitoring.comparison import compare

    failing = _fail_on(fail_on)
    chosen = None if columns is None else [c.strip() for c in columns.split(",") if c.strip()]
    report = compare(reference, current, columns=chosen, target=target,
                     prediction=prediction, html=html, client=open_client())
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
        if html:
            click.echo(f"HTML report: {html}")
    _exit(report, failing)


@monitor.command("show")
@click.argument("deployment")
@click.option("--check", "kind", default=None,
              help="drift, prediction_drift, target_drift, quality, performance or window.")
@click.option("--column", default=None, help="Only this column.")
@click.option("--statistic", default=None, help="Only this statistic (e.g. psi, p_value).")
@click.option("--since", default=None, help="Windows that ended in this span before now "
              "(e.g. 1d).")
@click.option("--all", "everything", is_flag=True,
              help="Every statistic, not only those a verdict rests on.")
@click.option("--limit", default=200, show_default=True, type=int,
              help="At most this many of the newest points.")
@json_option
def monitor_show(deployment: str, kind: str | None, column: str | None,
                 statistic: str | None, since: str | None, everything: bool, limit: int,
                 as_json: bool) -> None:
    """The stored results of DEPLOYMENT: one row per window, check, column and statistic."""
    start = _since(since)
    points = open_client().list_monitor_results(
        deployment, kind=kind, column=column, statistic=statistic, since=start,
        limit=limit if everything or statistic else limit * 20)
    if not (everything or statistic):
        points = [p for p in points if p.passed is not None or p.kind == "window"][-limit:]
    if as_json:
        print_json([p.to_dict() for p in points])
        return
    if not points:
        click.echo(f"no monitoring results for {deployment!r} (run: loopml monitor run "
                   f"{deployment})")
        return
    print_table(["window end (UTC)", "check", "column", "statistic", "value", "threshold",
                 "passed"],
                [[format_time(p.window_end), p.kind, p.column or "(all)", p.statistic, p.value,
                  p.threshold, "-" if p.passed is None else ("yes" if p.passed else "NO")]
                 for p in points], title=f"monitoring results of {deployment}")


@monitor.command("alerts")
@click.argument("deployment", required=False)
@click.option("--check", "kind", default=None,
              help="drift, prediction_drift, target_drift, quality or performance.")
@click.option("--since", default=None, help="Alerts of this span before now (e.g. 1d).")
@click.option("--limit", default=50, show_default=True, type=int)
@json_option
def monitor_alerts(deployment: str | None, kind: str | None, since: str | None, limit: int,
                   as_json: bool) -> None:
    """Alerts of failed checks (of DEPLOYMENT, or of every deployment), newest last."""
    start = _since(since)
    found = open_client().list_alerts(deployment, since=start, kind=kind, limit=limit)
    if as_json:
        print_json([a.to_dict() for a in found])
        return
    print_table(["id", "when (UTC)", "deployment", "check", "column", "value", "threshold",
                 "message", "delivered"],
                [[a.id, format_time(a.created_at), a.endpoint, a.kind, a.column, a.value,
                  a.threshold, a.message, ", ".join(f"{k}: {v}" for k, v in a.delivered.items())]
                 for a in found], title=f"{len(found)} alert(s)")


def _reference_dict(reference: Any) -> dict[str, Any]:
    return {"model_version": reference.model_version, "source": reference.source,
            "rows": reference.profile.rows, "features": reference.features,
            "prediction": reference.prediction, "target": reference.target,
            "importance": reference.importance, "stored": reference.digest is not None}


@monitor.command("reference")
@click.argument("model")
@click.argument("data", required=False)
@click.option("--target", default=None, help="The column of DATA holding the true labels.")
@click.option("--predictions", default=None,
              help="The column of DATA holding the model's predictions.")
@click.option("--predict", is_flag=True,
              help="Load the model and predict DATA (also reads its feature importances).")
@click.option("--trusted", is_flag=True,
              help="Allow model packages that run code when loaded (pickle); with --predict.")
@json_option
def monitor_reference(model: str, data: str | None, target: str | None,
                      predictions: str | None, predict: bool, trusted: bool,
                      as_json: bool) -> None:
    """Set the reference of MODEL (churn/3, churn@production) to the profile of DATA (a CSV
    or Parquet file, or a dataset version); without DATA, show the reference it has."""
    from loopml.monitoring.reference import reference_profile, set_reference

    client = open_client()
    if data is None:
        found = reference_profile(model, client=client)
    else:
        found = set_reference(model, data, predictions=predictions, target=target,
                              predict=predict, trusted=trusted, client=client)
    shown = _reference_dict(found)
    if as_json:
        print_json(shown)
        return
    verb = "set" if data is not None else "is"
    click.echo(f"the reference of {found.model_version} {verb} {found.source}: "
               f"{found.profile.rows:,} rows; features: {', '.join(found.features) or '-'}; "
               f"prediction: {found.prediction or '-'}; target: {found.target or '-'}")
    if found.importance:
        top = sorted(found.importance.items(), key=lambda item: -item[1])[:10]
        click.echo("importance: " + ", ".join(f"{k} {v:.3g}" for k, v in top))
