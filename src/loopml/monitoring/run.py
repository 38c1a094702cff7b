"""Checking a deployment's recent traffic: a window of its payload log against the reference
of the model version that answered.

::

    report = monitor("churn-api", window="1h")          # the last hour
    report = monitor("churn-api", last=10_000)          # the last 10,000 requests
    report.failed_checks, report.drift.drifted_columns, report.quality.issues

Steps: find the endpoint (a deployment's name; also a model reference such as
``churn@production`` that ``loopml serve`` filed its payload log under), read the ``requests``
segments overlapping the window and keep the primary's answered requests in it (``last=N``:
the newest N primary requests). When several versions of the primary answered (an alias moved
during the window), the one that answered last is checked and the report's ``current`` says
how many requests of the others were left out; a canary's requests are never mixed in (monitor
the canary's version through its own reference). The rows become a table
(:func:`~loopml.monitoring.window.payload_window`) with the answers as the ``prediction``
column when the reference has one, and are checked against the version's reference
(:func:`~loopml.monitoring.reference.reference_of`): cast and profiled with the quality checks
in one pass, then drift (prediction drift included; target drift when labels arrived and the
reference names a target). Labels sent to ``POST /feedback`` since the window began are joined
on the request id and give the performance metrics, compared with the version's registered
validation metrics (``val_…``, ``validation_…``, ``eval_…``, ``test_…``; all its metrics when
none is named so).

The report is stored (``monitor_reports`` plus its time series in ``monitor_results``; the
report, the window's profile and the reference as blobs) and every failed check becomes an
alert sent to the sinks (:mod:`loopml.monitoring.alerts`). A window without requests gives a
report of 0 rows and no verdict, stored too: silence is worth a point of the time series.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.durations import epoch_ms, parse_duration
from loopml.errors import InvalidArgument, NotFound
from loopml.monitoring.comparison import check_table, subset_profile, write_html
from loopml.monitoring.reference import Reference, reference_of, use_client
from loopml.monitoring.results import ColumnRole, DriftReport, MonitorReport
from loopml.tracking.records import now_ms

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.client.base import ClientBase
    from loopml.monitoring.drift import DriftRules
    from loopml.monitoring.records import Alert, MonitorResult, ResultPoint, StoredReport
    from loopml.monitoring.window import PayloadWindow
    from loopml.profiling import TableProfile
    from loopml.registry.entities import ModelVersion
    from loopml.registry.refs import ModelRef

__all__ = ["DEFAULT_WINDOW", "MonitorRun", "check_deployment", "list_results", "monitor",
           "parse_window"]

DEFAULT_WINDOW = "1h"


def parse_window(value: str | float | timedelta) -> int:
    """``"1h"``, ``"30m"``, ``"2d"``, ``"90s"``, ``"1w"``, a number of seconds or a timedelta →
    milliseconds (positive)."""
    return max(1, int(parse_duration(value, what="window") * 1000))


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, eq=False)
class MonitorRun:
    """What :func:`check_deployment` did: the report, the profiles it compared, the stored
    record (None with ``store=False``) and the alerts it fired."""

    report: MonitorReport
    reference: TableProfile | None
    current: TableProfile | None
    stored: StoredReport | None
    alerts: tuple[Alert, ...]


# -- the endpoint and its requests -----------------------------------------------------------
def _endpoint(stores: ClientBase, name: str) -> tuple[str, ModelRef]:
    """(the endpoint the payload log files ``name``'s traffic under, its primary)."""
    import sqlalchemy as sa

    from loopml.deployments.records import get_deployment
    from loopml.deployments.tables import payload_segments
    from loopml.registry.refs import parse_model_ref

    with stores.meta.read() as conn:
        try:
            return name, get_deployment(conn, name).policy.primary
        except NotFound as missing:
            try:
                ref = parse_model_ref(name)
            except InvalidArgument:
                raise missing from None
            endpoint = str(ref)
            logged = conn.execute(sa.select(payload_segments.c.id)
                                  .where(payload_segments.c.endpoint == endpoint)
                                  .limit(1)).first()
            if logged is None and ref.version is None and ref.alias is None:
                raise NotFound(f"{missing}; nor has a server logged requests under the "
                               f"endpoint {name!r}") from None
            return endpoint, ref


def _read(stores: ClientBase, endpoint: str, since: int | None, until: int) -> pa.Table:
    """The requests of ``endpoint`` logged in [since, until] (all roles)."""
    import pyarrow.compute as pc

    from loopml.deployments.payload import list_segments, read_segments

    with stores.meta.read() as conn:
        segments = list_segments(conn, endpoint=endpoint, kind="requests", since=since,
                                 until=until)
    table = read_segments(stores.blobs, segments)
    at = table.column("at").cast("int64")
    keep = pc.less_equal(at, until)
    if since is not None:
        keep = pc.and_(keep, pc.greater_equal(at, since))
    return table.filter(keep)


def _newest(stores: ClientBase, endpoint: str, last: int, until: int) -> pa.Table:
    """The newest ``last`` primary requests of ``endpoint`` up to ``until``, with the other
    roles' requests of the same span; segments are read newest first until enough."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from loopml.deployments.payload import list_segments, read_segments

    with stores.meta.read() as conn:
        segments = list_segments(conn, endpoint=endpoint, kind="requests", until=until)
    parts: list[pa.Table] = []
    primaries = 0
    for segment in reversed(segments):
        part = read_segments(stores.blobs, [segment])
        part = part.filter(pc.less_equal(part.column("at").cast("int64"), until))
        parts.append(part)
        primaries += pc.sum(pc.equal(part.column("role"), "primary")).as_py() or 0
        if primaries >= last:
            break
    table = pa.concat_tables(parts[::-1]) if parts else read_segments(stores.blobs, [])
    primary = table.filter(pc.equal(table.column("role"), "primary"))
    if primary.num_rows > last:
        times = pc.array_sort_indices(primary.column("at"))
        cutoff = primary.column("at").take(times)[primary.num_rows - last]
        table = table.filter(pc.greater_equal(table.column("at"), cutoff))
    return table


def _served(requests: pa.Table) -> tuple[pa.Table, str | None, int | None, list[str]]:
    """The primary's answered requests of the version that answered last, that version's
    (model, number), and notes on the requests left out."""
    import pyarrow.compute as pc

    roles = Counter(requests.column("role").to_pylist())
    notes = [f"{count:,} {role} request(s) not checked" for role, count in sorted(roles.items())
             if role != "primary"]
    primary = requests.filter(pc.equal(requests.column("role"), "primary"))
    answered = primary.filter(pc.is_valid(primary.column("version")))
    if answered.num_rows == 0:
        return primary, None, None, notes
    order = pc.array_sort_indices(answered.column("at"))
    newest = answered.take(order.slice(answered.num_rows - 1)).to_pylist()[0]
    model, version = newest["model"], newest["version"]
    others = Counter((r["model"], r["version"]) for r in answered.select(
        ["model", "version"]).to_pylist() if (r["model"], r["version"]) != (model, version))
    notes += [f"{count:,} request(s) answered by {m}/{v} not checked (version {version} "
              "answered last)" for (m, v), count in sorted(others.items())]
    mine = pc.and_(pc.equal(primary.column("model"), model),
                   pc.equal(primary.column("version"), version))
    return primary.filter(pc.fill_null(mine, True)), model, version, notes


def _feedback(stores: ClientBase, endpoint: str, since: int) -> pa.Table:
    from loopml.deployments.payload import list_segments, read_segments

    with stores.meta.read() as conn:
        segments = list_segments(conn, endpoint=endpoint, kind="feedback", since=since)
    return read_segments(stores.blobs, segments, kind="feedback")


# -- checking the rows ------------------------------------------------------------------------
def _expected(version: ModelVersion, reference: Reference) -> list[str]:
    """The model's input columns: its signature's, else the reference's features."""
    signature = version.signature or {}
    columns = (signature.get("inputs") or {}).get("columns")
    if isinstance(columns, list) and columns:
        return [str(c["name"]) for c in columns if isinstance(c, Mapping) and "name" in c]
    return reference.features


_VALIDATION = ("val_", "validation_", "eval_", "test_")


def _validation_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The version's validation metrics (``val_…``, ``validation_…``, ``eval_…``,
    ``test_…``), or all its metrics when none is named so (a training ``accuracy`` must not
    stand in for the validation one)."""
    held_out = {k: v for k, v in metrics.items() if k.startswith(_VALIDATION)}
    return held_out or dict(metrics)


def _current_table(window: PayloadWindow, prediction: str | None) -> pa.Table:
    table = window.features
    if prediction is None:
        return table
    if prediction in table.column_names:
        table = table.drop_columns([prediction])
    return table.append_column(prediction, window.predictions)


def _target_drift(reference: Reference, window: PayloadWindow, drift: DriftReport | None,
                  rules: DriftRules | None) -> DriftReport | None:
    """``drift`` with the target column's drift added (labels against the reference's)."""
    target = reference.target
    if drift is None or target is None or window.labelled == 0:
        return drift
    import pyarrow as pa
    import pyarrow.compute as pc

    from loopml.monitoring.conform import conform
    from loopml.monitoring.drift import drift_report
    from loopml.profiling import profile_table

    base = subset_profile(reference.profile, [target])
    labels = window.labels.filter(pc.is_valid(window.labels))
    table, _ = conform(pa.table({target: labels}), base)
    found = drift_report(base, profile_table(table), rules=rules, roles={target: "target"})
    return DriftReport(columns=drift.columns + found.columns, score=drift.score,
                       threshold=drift.threshold, drifted=drift.drifted, rule=drift.rule,
                       reference_rows=drift.reference_rows, current_rows=drift.current_rows,
                       skipped={**drift.skipped, **found.skipped})


def _window_points(window: PayloadWindow | None, requests: int) -> list[ResultPoint]:
    from loopml.monitoring.records import ResultPoint

    skipped = 0 if window is None else sum(window.skipped.values())
    labelled = 0 if window is None else window.labelled
    return [ResultPoint("window", "", "requests", float(requests)),
            ResultPoint("window", "", "skipped_requests", float(skipped)),
            ResultPoint("window", "", "labelled", float(labelled))]


def check_deployment(deployment: str, *, window: str | float | timedelta | None = None,
                     last: int | None = None, now: int | datetime | None = None,
                     rules: DriftRules | None = None, tolerance: float = 0.05,
                     store: bool = True, alert: bool = True, html: str | Path | None = None,
                     client: ClientBase | None = None) -> MonitorRun:
    """:func:`monitor`, returning the profiles compared, the stored record and the alerts."""
    import pyarrow.compute as pc

    from loopml.monitoring.window import payload_window
    from loopml.registry import records as registry
    from loopml.registry.refs import ModelRef

    if window is not None and last is not None:
        raise InvalidArgument("give window (a duration such as '1h') or last (a number of "
                              "requests), not both")
    if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 1):
        raise InvalidArgument(f"last must be a number of requests >= 1, got {last!r}")
    stores = use_client(client)
    endpoint, primary = _endpoint(stores, deployment)
    until = epoch_ms(now, what="now") if now is not None else now_ms()
    if last is None:
        since: int = until - parse_window(window or DEFAULT_WINDOW)
        requests = _read(stores, endpoint, since, until)
    else:
        requests = _newest(stores, endpoint, last, until)
        times = requests.column("at").cast("int64")
        since = pc.min(times).as_py() if requests.num_rows else until
    chosen, model, number, notes = _served(requests)
    span = f"{endpoint} {_clock(since)} to {_clock(until)} UTC"
    if model is None or number is None:
        why = "no requests" if requests.num_rows == 0 else \
            f"no answered requests of the primary ({requests.num_rows:,} logged)"
        report = MonitorReport(reference=f"{primary} reference",
                               current=f"{why} in the window {span}: no verdict", rows=0,
                               drift=None, quality=None, window=(since, until),
                               deployment=deployment)
        return _finish(stores, report, endpoint, None, None, None, _window_points(None, 0),
                       store=store, alert=alert, html=html)
    with stores.meta.read() as conn:
        version = registry.resolve(conn, ModelRef(model, version=number))
    reference = reference_of(stores, version)
    expected = _expected(version, reference)
    rows = payload_window(chosen, feedback=_feedback(stores, endpoint, since),
                          roles=("primary",), columns=expected)
    prediction = reference.prediction
    names = [c for c in expected if c in reference.profile.columns]
    base = subset_profile(reference.profile, names + ([prediction] if prediction else []))
    roles: dict[str, ColumnRole] = {prediction: "prediction"} if prediction else {}
    checked = check_table(base, _current_table(rows, prediction), roles=roles,
                          importance=reference.importance, rules=rules,
                          contract=reference.contract)
    performance = None
    if rows.labelled:
        from loopml.monitoring.performance import performance_report

        performance = performance_report(predictions=rows.predictions, labels=rows.labels,
                                         scores=rows.scores,
                                         baseline=_validation_metrics(version.metrics),
                                         tolerance=tolerance, rows=rows.rows)
    skipped = [f"{count:,} request(s) skipped: {why}" for why, count in rows.skipped.items()]
    described = f"{rows.requests:,} request(s) of {version.ref} in the window {span}"
    if not rows.rows:
        described += ": no rows, no verdict"
    report = MonitorReport(
        reference=f"{version.ref} reference ({reference.source})",
        current="; ".join([described, *notes, *skipped]), rows=checked.rows,
        drift=_target_drift(reference, rows, checked.drift, rules), quality=checked.quality,
        performance=performance, window=(since, until), deployment=deployment,
        model_version=version.ref)
    return _finish(stores, report, endpoint, reference, base, checked.current,
                   _window_points(rows, rows.requests), store=store, alert=alert, html=html)


def _finish(stores: ClientBase, report: MonitorReport, endpoint: str,
            reference: Reference | None, base: TableProfile | None,
            current: TableProfile | None, extra: Sequence[ResultPoint], *, store: bool,
            alert: bool, html: str | Path | None) -> MonitorRun:
    """Store the report and its time series, fire the alerts, write the HTML report."""
    from loopml.monitoring.alerts import fire_alerts, webhook_urls
    from loopml.monitoring.records import record_report, result_points

    stored, alerts = None, []
    if store:
        blobs = stores.blobs
        reference_blob = None
        if reference is not None:
            reference_blob = reference.digest or (
                None if base is None else blobs.put_json(base.to_dict()))
        profile_blob = None if current is None else blobs.put_json(current.to_dict())
        report_blob = blobs.put_json(report.to_dict())
        with stores.meta.write() as conn:
            stored = record_report(conn, endpoint=endpoint, report=report,
                                   report_blob=report_blob, profile_blob=profile_blob,
                                   reference_blob=reference_blob,
                                   points=[*result_points(report), *extra])
        if alert:
            alerts = fire_alerts(stores.meta, report, endpoint=endpoint, report_id=stored.id,
                                 webhooks=webhook_urls(stores.settings))
    if html is not None:
        write_html(html, report, reference=base, current=current,
                   title=f"monitoring {report.deployment}")
    return MonitorRun(report, base, current, stored, tuple(alerts))


def monitor(deployment: str, *, window: str | float | timedelta | None = None,
            last: int | None = None, now: int | datetime | None = None,
            rules: DriftRules | None = None, tolerance: float = 0.05, store: bool = True,
            alert: bool = True, html: str | Path | None = None,
            client: ClientBase | None = None) -> MonitorReport:
    """Check a window of ``deployment``'s payload log (see the module's docstring).

    ``window``: the span before ``now`` (``"1h"``, the default; ``"30m"``, ``"2d"``, a number
    of seconds or a timedelta); or ``last``: the newest N requests. ``now`` (ms since the
    epoch or an aware datetime; default: now) ends the window. ``rules`` overrides the drift
    rule, ``tolerance`` the allowed performance loss (a share of the baseline). ``store=False``
    records nothing (and fires no alert); ``alert=False`` stores without alerting; ``html``
    writes the HTML report there.
    """
    return check_deployment(deployment, window=window, last=last, now=now, rules=rules,
                            tolerance=tolerance, store=store, alert=alert, html=html,
                            client=client).report



def list_results(deployment: str, *, kind: str | None = None, column: str | None = None,
                 statistic: str | None = None, since: int | datetime | None = None,
                 until: int | datetime | None = None, limit: int = 1000,
                 client: ClientBase | None = None) -> list[MonitorResult]:
    """The stored time series of ``deployment``, oldest window first: the newest ``limit``
    points of one ``kind`` of check (``drift``, ``prediction_drift``, ``target_drift``,
    ``quality``, ``performance``, ``window``), ``column`` (``""``: the whole window) and
    ``statistic``, of windows ending in [since, until] (ms since the epoch or aware
    datetimes)."""
    from loopml.monitoring.records import query_results

    stores = use_client(client)
    with stores.meta.read() as conn:
        return query_results(conn, deployment, kind=kind, column=column, statistic=statistic,
                             since=epoch_ms(since, what="since"),
                             until=epoch_ms(until, what="until"), limit=limit)
