"""Experiment tracking: loopml and MLflow side by side, each in-process on an SQLite file on disk.

Run with the loopml dev interpreter::

    .venv/bin/python bench/tracking.py            # full: search up to 100,000 runs (~10 min)
    .venv/bin/python bench/tracking.py --quick    # smaller: search up to 10,000 runs
    .venv/bin/python bench/tracking.py --json     # the merged figures as JSON

The parent process runs each half in its own subprocess and prints one table:

* ``--side loopml`` in this interpreter;
* ``--side mlflow`` in ``bench/.venv-mlflow``, created once from ``requirements-mlflow.txt``.

Each half prints its figures as one JSON line. This is a benchmark, not a test: it prints
figures and targets and exits 0 whatever they are (non-zero only for bad arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    BenchSetupError,
    Footnotes,
    Sections,
    format_rate,
    format_seconds,
    format_table,
    import_seconds,
    log,
    repeat_timed,
    results_at,
    run_side,
    side_header,
    venv_python,
)

MLFLOW_REQUIREMENTS = BENCH_DIR / "requirements-mlflow.txt"
MLFLOW_VENV = ".venv-mlflow"
#: MLflow 3 sends usage telemetry from a background thread; keep it (and its network) out.
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

SEARCH_FILTER = "metrics.auc > 0.9 and params.model = 'rf'"
SEARCH_ORDER = ["metrics.auc DESC"]
SEARCH_MAX_RESULTS = 100
#: What MLflow's filter language cannot say: ``or``, parentheses and ``in``.
RICH_FILTER = ("(metrics.auc > 0.9 or metrics.accuracy > 0.99) "
               "and params.model in ('rf', 'xgb')")
MODELS = ("rf", "xgb", "lr", "svm")
#: MLflow's search times over 1k / 10k / 100k runs quoted by the issue (2-core machine).
MLFLOW_SEARCH_REFERENCE = {1_000: 0.065, 10_000: 0.223, 100_000: 1.14}


@dataclass(frozen=True)
class Sizes:
    points: int = 10_000             # (a) and (b): metric points of one run
    mlflow_points: int = 1_000       # (a) MLflow: measured on this many, extrapolated to points
    mlflow_async_points: int = 1_000  # (a) MLflow with synchronous=False, likewise
    runs: int = 1_000                # (c) runs with 5 params and 5 metrics
    mlflow_runs: int = 1_000         # (c) MLflow: measured on this many, extrapolated to runs
    search: tuple[int, ...] = (1_000, 10_000, 100_000)  # (d) runs in the searched experiment


FULL = Sizes()
QUICK = Sizes(mlflow_points=300, mlflow_async_points=300, mlflow_runs=200,
              search=(1_000, 10_000))


# --- shared by both sides --------------------------------------------------------------------


def run_data(count: int, seed: int) -> list[tuple[dict[str, str], dict[str, float]]]:
    """5 params and 5 metrics per run, the same on both sides (seeded)."""
    rng = random.Random(seed)
    data = []
    for _ in range(count):
        params = {
            "model": rng.choice(MODELS),
            "learning_rate": str(rng.choice((0.01, 0.03, 0.1, 0.3))),
            "max_depth": str(rng.randint(2, 12)),
            "n_estimators": str(rng.choice((50, 100, 200, 400))),
            "seed": str(rng.randrange(10_000)),
        }
        metrics = {key: rng.random() for key in ("auc", "accuracy", "loss", "precision", "recall")}
        data.append((params, metrics))
    return data


def loss_curve(count: int) -> list[float]:
    return [1.0 / (1.0 + step) for step in range(count)]


def now_ms() -> int:
    return int(time.time() * 1000)


def count_rows(db_path: Path, sql: str, *args: Any) -> int:
    """A count read through a fresh connection: what is durably committed, not what is cached."""
    conn = sqlite3.connect(db_path, timeout=60)
    try:
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


@dataclass(frozen=True)
class Layout:
    """Where a store keeps runs: its key column and the run column of the per-run tables."""

    run_key: str
    run_ref: str
    per_run_tables: tuple[str, ...] = ("params", "tags", "metrics", "latest_metrics")


MLFLOW_LAYOUT = Layout(run_key="run_uuid", run_ref="run_uuid")
LOOPML_LAYOUT = Layout(run_key="id", run_ref="run_id")
TIME_COLUMNS = frozenset({"start_time", "end_time", "timestamp"})
CLONE_CHUNK = 10_000


def clone_runs(db_path: Path, layout: Layout, template_id: str, template_name: str,
               data: list[tuple[dict[str, str], dict[str, float]]], start: int, stop: int) -> None:
    """Bulk-insert runs ``start..stop-1`` as SQL copies of a run logged through the public API.

    Every row of the template run (in ``runs`` and the per-run tables) is copied with a new run
    id, name ``run-<i>``, times shifted by ``i`` ms and the param/metric values of ``data[i]``.
    Copying what the store itself wrote keeps this independent of each store's exact columns.
    """
    conn = sqlite3.connect(db_path, timeout=60, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        plans = [_clone_plan(conn, "runs", layout.run_key, template_id)]
        plans += [_clone_plan(conn, table, layout.run_ref, template_id)
                  for table in layout.per_run_tables]
        for chunk in range(start, stop, CLONE_CHUNK):
            batches: list[list[list[Any]]] = [[] for _ in plans]
            for index in range(chunk, min(stop, chunk + CLONE_CHUNK)):
                run_id, name = uuid.uuid4().hex, f"run-{index}"
                params, metrics = data[index]
                for (table, columns, rows, _sql), batch in zip(plans, batches, strict=True):
                    values = params if table == "params" else (
                        metrics if table in ("metrics", "latest_metrics") else {})
                    for row in rows:
                        batch.append([_cloned(column, row, template_id, template_name, run_id,
                                              name, index, values) for column in columns])
            conn.execute("BEGIN IMMEDIATE")
            for (_table, _columns, _rows, sql), batch in zip(plans, batches, strict=True):
                if batch:
                    conn.executemany(sql, batch)
            conn.execute("COMMIT")
    finally:
        conn.close()


def _clone_plan(conn: sqlite3.Connection, table: str, run_column: str,
                run_id: str) -> tuple[str, list[str], list[sqlite3.Row], str]:
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    if not info:
        raise RuntimeError(f"the store has no table {table!r}")
    names = [col["name"] for col in info]
    if run_column not in names:
        raise RuntimeError(f"table {table!r} has no column {run_column!r}: {names}")
    keys = [col for col in info if col["pk"]]
    # An INTEGER PRIMARY KEY is SQLite's rowid: leave it out so SQLite numbers the copies.
    rowid = {keys[0]["name"]} if len(keys) == 1 and keys[0]["type"].upper() == "INTEGER" else set()
    columns = [name for name in names if name not in rowid]
    rows = conn.execute(f'SELECT * FROM "{table}" WHERE "{run_column}" = ?', (run_id,)).fetchall()
    quoted = ", ".join(f'"{name}"' for name in columns)
    sql = f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(columns))})'
    return table, columns, rows, sql


def _cloned(column: str, row: sqlite3.Row, template_id: str, template_name: str, run_id: str,
            name: str, index: int, values: dict[str, Any]) -> Any:
    value = row[column]
    if column == "value" and row["key"] in values:
        return values[row["key"]]
    if isinstance(value, str):
        if value == template_name:
            return name
        return value.replace(template_id, run_id) if template_id in value else value
    if column in TIME_COLUMNS and isinstance(value, int):
        return value + index
    return value


# --- the loopml side -------------------------------------------------------------------------


def loopml_side(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    sections = Sections()
    sections.run("import", lambda: import_seconds(sys.executable, "loopml"))
    try:
        import loopml
        from loopml.client import Client
    except Exception as exc:
        sections.errors["api"] = f"{type(exc).__name__}: {exc}"
        return {**side_header("loopml", "?"), **sections.as_dict()}

    def open_client(name: str) -> tuple[Any, Path]:
        settings = loopml.load_settings(home=workdir / name)
        return Client(settings=settings), Path(settings.database_url.removeprefix("sqlite:///"))

    client, db = open_client("loopml")

    def one_at_a_time() -> dict[str, Any]:
        values = loss_curve(sizes.points)
        with client.start_run(experiment="points") as run:
            start = time.perf_counter()
            for step, value in enumerate(values):
                run.log_metric("loss", value, step=step)
            logged = time.perf_counter()
        ended = time.perf_counter()  # the end of the run flushes the buffer
        seconds = ended - start
        stored = count_rows(db, "SELECT count(*) FROM metrics WHERE run_id = ?", run.id)
        return {"points": sizes.points, "measured": sizes.points, "seconds": seconds,
                "per_s": sizes.points / seconds, "call_s": (logged - start) / sizes.points,
                "end_s": ended - logged, "stored": stored, "extrapolated": False}

    def batch() -> dict[str, Any]:
        stamp = now_ms()
        metrics = [loopml.Metric(key="loss", value=value, step=step, timestamp=stamp)
                   for step, value in enumerate(loss_curve(sizes.points))]
        with client.start_run(experiment="batch") as run:
            start = time.perf_counter()
            client.log_batch(run.id, metrics=metrics)
            seconds = time.perf_counter() - start
        stored = count_rows(db, "SELECT count(*) FROM metrics WHERE run_id = ?", run.id)
        return {"points": sizes.points, "seconds": seconds, "stored": stored}

    def many_runs() -> dict[str, Any]:
        data = run_data(sizes.runs, seed=1)
        start = time.perf_counter()
        for params, metrics in data:
            with client.start_run(experiment="runs") as run:
                run.log_params(params)
                run.log_metrics(metrics, step=0)
        seconds = time.perf_counter() - start
        stored = count_rows(db, "SELECT count(*) FROM runs r JOIN experiments e "
                            "ON r.experiment_id = e.id WHERE e.name = 'runs'")
        return {"runs": sizes.runs, "measured": sizes.runs, "seconds": seconds,
                "per_run_s": seconds / sizes.runs, "stored": stored, "extrapolated": False}

    sections.run("points_one", one_at_a_time)
    sections.run("points_batch", batch)
    sections.run("runs", many_runs)
    client.close()

    search_client, search_db = open_client("loopml-search")

    def search() -> dict[str, Any]:
        data = run_data(max(sizes.search), seed=2)
        params, metrics = data[0]
        with search_client.start_run(experiment="search", name="run-0") as run:
            run.log_params(params)
            run.log_metrics(metrics, step=0)

        def query(filter_text: str) -> Callable[[], dict[str, Any]]:
            def timed() -> dict[str, Any]:
                found = search_client.search_runs(experiment="search", filter=filter_text,
                                                  order_by=SEARCH_ORDER,
                                                  max_results=SEARCH_MAX_RESULTS)
                return {"results": len(found),
                        "top_auc": [r.metrics["auc"] for r in found[:5]]}
            return timed

        return search_sizes(sizes, search_db, LOOPML_LAYOUT, run.id, data,
                            {"search": query(SEARCH_FILTER), "search_rich": query(RICH_FILTER)})

    sections.run("search", search)
    search_client.close()
    return {**side_header("loopml", getattr(loopml, "__version__", "?")), **sections.as_dict()}


def search_sizes(sizes: Sizes, db: Path, layout: Layout, template_id: str,
                 data: list[tuple[dict[str, str], dict[str, float]]],
                 queries: dict[str, Callable[[], dict[str, Any]]]) -> dict[str, Any]:
    """Grow the experiment to each size (bulk SQL copies of run-0) and time each query there."""
    figures: dict[str, Any] = {name: {} for name in queries}
    populated = 1
    for size in sizes.search:
        start = time.perf_counter()
        clone_runs(db, layout, template_id, "run-0", data, populated, size)
        populate_s = time.perf_counter() - start
        populated = size
        log(f"    {size:,} runs (populated in {populate_s:.1f} s)")
        for name, query in queries.items():
            timed = repeat_timed(query)
            figures[name][str(size)] = {**timed.pop("result"), **timed, "populate_s": populate_s}
    return figures


# --- the MLflow side -------------------------------------------------------------------------


def mlflow_side(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    sections = Sections()
    sections.run("import", lambda: import_seconds(sys.executable, "mlflow", env=MLFLOW_ENV))
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)

    def open_client(name: str) -> tuple[Any, Path, Callable[[str], str]]:
        db = workdir / name / "mlflow.db"
        db.parent.mkdir(parents=True)
        uri = f"sqlite:///{db}"
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(tracking_uri=uri)

        def experiment(exp_name: str) -> str:
            location = (workdir / name / "artifacts" / exp_name).as_uri()
            return str(client.create_experiment(exp_name, artifact_location=location))

        return client, db, experiment

    client, db, experiment = open_client("mlflow")

    def one_at_a_time() -> dict[str, Any]:
        measured = min(sizes.mlflow_points, sizes.points)
        values = loss_curve(measured)
        run_id = client.create_run(experiment("points")).info.run_id
        start = time.perf_counter()
        for step, value in enumerate(values):
            client.log_metric(run_id, "loss", value, step=step)
        logged = time.perf_counter()
        client.set_terminated(run_id)
        ended = time.perf_counter()
        per_s = measured / (ended - start)
        stored = count_rows(db, "SELECT count(*) FROM metrics WHERE run_uuid = ?", run_id)
        return {"points": sizes.points, "measured": measured, "seconds": sizes.points / per_s,
                "per_s": per_s, "call_s": (logged - start) / measured, "end_s": ended - logged,
                "stored": stored, "extrapolated": measured < sizes.points}

    def one_at_a_time_async() -> dict[str, Any]:
        measured = min(sizes.mlflow_async_points, sizes.points)
        values = loss_curve(measured)
        mlflow.set_experiment(experiment_id=experiment("points-async"))
        with mlflow.start_run() as run:
            start = time.perf_counter()
            for step, value in enumerate(values):
                mlflow.log_metric("loss", value, step=step, synchronous=False)
            logged = time.perf_counter()
        ended = time.perf_counter()  # end_run waits for the queued points
        per_s = measured / (ended - start)
        stored = count_rows(db, "SELECT count(*) FROM metrics WHERE run_uuid = ?",
                            run.info.run_id)
        return {"points": sizes.points, "measured": measured, "seconds": sizes.points / per_s,
                "per_s": per_s, "call_s": (logged - start) / measured, "end_s": ended - logged,
                "stored": stored, "extrapolated": measured < sizes.points}

    def batch() -> dict[str, Any]:
        stamp = now_ms()
        metrics = [Metric(key="loss", value=value, timestamp=stamp, step=step)
                   for step, value in enumerate(loss_curve(sizes.points))]
        run_id = client.create_run(experiment("batch")).info.run_id
        start = time.perf_counter()
        client.log_batch(run_id, metrics=metrics)
        seconds = time.perf_counter() - start
        client.set_terminated(run_id)
        stored = count_rows(db, "SELECT count(*) FROM metrics WHERE run_uuid = ?", run_id)
        return {"points": sizes.points, "seconds": seconds, "stored": stored}

    def many_runs() -> dict[str, Any]:
        measured = min(sizes.mlflow_runs, sizes.runs)
        data = run_data(measured, seed=1)
        experiment_id = experiment("runs")
        mlflow.set_experiment(experiment_id=experiment_id)
        start = time.perf_counter()
        for params, metrics in data:
            with mlflow.start_run():
                mlflow.log_params(params)
                mlflow.log_metrics(metrics, step=0)
        per_run = (time.perf_counter() - start) / measured
        stored = count_rows(db, "SELECT count(*) FROM runs WHERE experiment_id = ?",
                            int(experiment_id))
        return {"runs": sizes.runs, "measured": measured, "seconds": per_run * sizes.runs,
                "per_run_s": per_run, "stored": stored, "extrapolated": measured < sizes.runs}

    sections.run("points_one", one_at_a_time)
    sections.run("points_async", one_at_a_time_async)
    sections.run("points_batch", batch)
    sections.run("runs", many_runs)

    search_client, search_db, search_experiment = open_client("mlflow-search")

    def search() -> dict[str, Any]:
        data = run_data(max(sizes.search), seed=2)
        params, metrics = data[0]
        experiment_id = search_experiment("search")
        run_id = search_client.create_run(experiment_id, run_name="run-0").info.run_id
        stamp = now_ms()
        search_client.log_batch(
            run_id, params=[Param(key, value) for key, value in params.items()],
            metrics=[Metric(key=key, value=value, timestamp=stamp, step=0)
                     for key, value in metrics.items()])
        search_client.set_terminated(run_id)

        def query() -> dict[str, Any]:
            found = search_client.search_runs([experiment_id], filter_string=SEARCH_FILTER,
                                              order_by=SEARCH_ORDER,
                                              max_results=SEARCH_MAX_RESULTS)
            return {"results": len(found),
                    "top_auc": [r.data.metrics["auc"] for r in found[:5]]}

        return search_sizes(sizes, search_db, MLFLOW_LAYOUT, run_id, data, {"search": query})

    sections.run("search", search)
    return {**side_header("mlflow", mlflow.__version__), **sections.as_dict()}


SIDES: dict[str, Callable[[Sizes, Path], dict[str, Any]]] = {
    "loopml": loopml_side, "mlflow": mlflow_side}


def run_one_side(name: str, sizes: Sizes, parent: str | None) -> dict[str, Any]:
    log(f"{name}: measuring…")
    with tempfile.TemporaryDirectory(prefix=f"bench-tracking-{name}-", dir=parent) as tmp:
        result = SIDES[name](sizes, Path(tmp))
    search = result.get("results", {}).pop("search", None) or {}
    result["results"].update(search)  # "search" and "search_rich" become top-level sections
    return result


# --- the parent: run both sides, merge, print ------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes: search up to 10,000 runs, fewer MLflow calls")
    parser.add_argument("--json", action="store_true", help="print the merged figures as JSON")
    parser.add_argument("--no-mlflow", action="store_true",
                        help="measure loopml only (no MLflow venv needed)")
    parser.add_argument("--dir", default=None,
                        help="parent directory of the temporary stores (default: system temp; "
                             "it should be on a real disk)")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL

    if args.side:  # a child: measure one side, print one JSON line
        print(json.dumps(run_one_side(args.side, sizes, args.dir)))
        return 0

    forwarded = [*(["--quick"] if args.quick else []), *(["--dir", args.dir] if args.dir else [])]
    script = Path(__file__).resolve()
    report: dict[str, Any] = {"sizes": asdict(sizes), "mode": "quick" if args.quick else "full"}
    report["loopml"] = {"side": "loopml",
                        **run_side(sys.executable, script, ["--side", "loopml", *forwarded])}
    if args.no_mlflow:
        report["mlflow"] = {"side": "mlflow", "skipped": True,
                            "error": "not measured (--no-mlflow)"}
    else:
        try:
            python = venv_python(MLFLOW_VENV, MLFLOW_REQUIREMENTS)
        except BenchSetupError as exc:
            report["mlflow"] = {"side": "mlflow",
                                "error": f"could not prepare bench/{MLFLOW_VENV}: {exc}"}
        else:
            report["mlflow"] = {"side": "mlflow", **run_side(
                python, script, ["--side", "mlflow", *forwarded], env=MLFLOW_ENV)}
    rows, notes = table_rows(report, sizes)
    report["table"] = [dict(zip(HEADERS, row, strict=True)) for row in rows]
    report["notes"] = notes
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report, rows, notes))
    return 0


HEADERS = ("figure", "loopml", "MLflow", "loopml/MLflow", "speed-up", "target", "met")


def table_rows(report: dict[str, Any], sizes: Sizes) -> tuple[list[list[str]], list[str]]:
    lm, ml = report["loopml"], report["mlflow"]
    rows: list[list[str]] = []
    footnotes = Footnotes()
    notes, mark = footnotes.notes, footnotes.mark

    def cell(side: dict[str, Any], section: str, value: Any, fmt: Callable[[Any], str]) -> str:
        if "error" in side:
            return "—" if side.get("skipped") else "error"
        if section in side.get("errors", {}):
            return "error " + mark(f"{side['side']} {section}: {side['errors'][section]}")
        if value is None:
            return "—"
        text = fmt(value)
        figures = side["results"].get(section, {})
        if figures.get("extrapolated"):
            what = "points" if "points" in figures else "runs"
            text += " " + mark(f"{side['side']}: measured on {figures['measured']:,} {what}, "
                               f"extrapolated to {figures[what]:,} at the measured rate")
        expected = figures.get("points", figures.get("runs"))
        measured = figures.get("measured", expected)
        if "stored" in figures and figures["stored"] != measured:
            text += " " + mark(f"{side['side']} {section}: only {figures['stored']:,} of "
                               f"{measured:,} logged rows are in the database afterwards")
        return text

    def row(label: str, section: str, path: tuple[str, ...], fmt: Callable[[Any], str],
            higher_is_better: bool, target: str = "",
            check: Callable[[float, float | None], bool] | None = None,
            mlflow_section: str | None = None, mlflow_cell: str | None = None) -> None:
        lv = results_at(lm, section, *path)
        ml_section = mlflow_section or section
        mv = results_at(ml, ml_section, *path) if mlflow_cell is None else None
        ratio = speedup = ""
        if lv and mv:
            ratio = f"{lv / mv:.3g}"
            times = lv / mv if higher_is_better else mv / lv
            factor, word = (times, "faster") if times >= 1 else (1 / times, "slower")
            speedup = f"{factor:,.0f}x {word}" if factor >= 100 else f"{factor:.3g}x {word}"
        met = ""
        if check is not None and lv is not None:
            met = "yes" if check(lv, mv) else "NO"
        rows.append([label, cell(lm, section, lv, fmt),
                     mlflow_cell or cell(ml, ml_section, mv, fmt), ratio, speedup, target, met])

    points = f"{sizes.points:,}"
    row(f"(a) {points} points, one log_metric call each", "points_one", ("per_s",),
        lambda v: format_rate(v, " points/s"), True, "≥ 5,000/s and ≥ 65x",
        lambda lv, mv: lv >= 5_000 and (mv is None or lv / mv >= 65))
    row("    time for them, end of run included", "points_one", ("seconds",), format_seconds,
        False)
    row("    mean log_metric call (loopml: buffered)", "points_one", ("call_s",), format_seconds,
        False, "< 10 µs", lambda lv, _mv: lv < 10e-6)
    row("    vs MLflow async logging (synchronous=False)", "points_one", ("per_s",),
        lambda v: format_rate(v, " points/s"), True, mlflow_section="points_async")
    row(f"(b) {points} points in one log_batch", "points_batch", ("seconds",), format_seconds,
        False, "< 100 ms", lambda lv, _mv: lv < 0.1)
    row(f"(c) {sizes.runs:,} runs, 5 params + 5 metrics each", "runs", ("seconds",),
        format_seconds, False)
    row("    per run", "runs", ("per_run_s",), format_seconds, False)
    targets = {10_000: 0.010, 100_000: 0.050}
    for number, size in enumerate(sizes.search):
        limit = targets.get(size)
        label = f"{'(d)' if number == 0 else '   '} search_runs over {size:,} runs"
        row(label, "search", (str(size), "seconds"), format_seconds, False,
            f"< {format_seconds(limit)}" if limit else "",
            (lambda lv, _mv, limit=limit: lv < limit) if limit else None)
    for size in sizes.search:
        row(f"    with or, ( ) and in, {size:,} runs", "search_rich", (str(size), "seconds"),
            format_seconds, False, mlflow_cell="unsupported")
    row("(e) import (fresh process, median of 5)", "import", ("seconds",), format_seconds, False,
        "< 300 ms", lambda lv, _mv: lv < 0.3)

    for side in (lm, ml):
        if "error" in side:
            notes.append(f"{side['side']}: {side['error']}")
        elif "api" in side.get("errors", {}):
            notes.append(f"{side['side']}: the Python API is unusable: {side['errors']['api']}")
    notes += stored_counts(lm, ml)
    notes += search_agreement(lm, ml, sizes)
    notes.append(f"Search filter: {SEARCH_FILTER!r}, order_by {SEARCH_ORDER}, max_results "
                 f"{SEARCH_MAX_RESULTS}; 'with or, ( ) and in': {RICH_FILTER!r}.")
    reference = ", ".join(f"{size:,}: {format_seconds(s)}"
                          for size, s in MLFLOW_SEARCH_REFERENCE.items())
    notes.append(f"MLflow search reference figures from the issue ({reference}).")
    for size, seconds in MLFLOW_SEARCH_REFERENCE.items():
        measured = results_at(ml, "search", str(size), "seconds")
        if size in sizes.search and measured and measured > 3 * seconds:
            notes.append(
                f"MLflow's search over {size:,} runs took {measured / seconds:.0f}x the "
                f"reference: with SQLite {ml.get('sqlite', '?')} its query scans a materialized "
                "latest_metrics subquery once per candidate run (quadratic; see bench/README.md).")
    notes.append("Search stores are grown by bulk SQL copies of one run logged through each "
                 "API; MLflow (c) uses its fluent API (start_run, log_params, log_metrics).")
    return rows, notes


def stored_counts(lm: dict[str, Any], ml: dict[str, Any]) -> list[str]:
    """Say what was verified durable: rows read back through a fresh SQLite connection."""
    checked = []
    for side in (lm, ml):
        for section, figures in side.get("results", {}).items():
            if not isinstance(figures, dict) or "stored" not in figures:
                continue
            logged = figures.get("measured", figures.get("points", figures.get("runs")))
            if figures["stored"] != logged:
                return []  # the mismatch has its own footnote on the figure
            checked.append(f"{side['side']} {section} ({figures['stored']:,})")
    if not checked:
        return []
    return ["Durable: after each measurement a fresh SQLite connection found every logged "
            "point/run in the database: " + ", ".join(checked) + "."]


def search_agreement(lm: dict[str, Any], ml: dict[str, Any], sizes: Sizes) -> list[str]:
    """Both stores hold the same runs, so both searches must find the same best auc values."""
    notes = []
    for size in sizes.search:
        ours, theirs = results_at(lm, "search", str(size)), results_at(ml, "search", str(size))
        if not ours or not theirs:
            continue
        same = (ours["results"] == theirs["results"]
                and [round(v, 9) for v in ours["top_auc"]]
                == [round(v, 9) for v in theirs["top_auc"]])
        if not same:
            notes.append(f"WARNING: search over {size:,} runs differs: loopml found "
                         f"{ours['results']} (top auc {ours['top_auc'][:3]}), MLflow "
                         f"{theirs['results']} (top auc {theirs['top_auc'][:3]})")
    if not notes and results_at(lm, "search") and results_at(ml, "search"):
        notes.append("Search results agree: both stores return the same number of runs with "
                     "the same best auc values at every size.")
    return notes


def render(report: dict[str, Any], rows: list[list[str]], notes: list[str]) -> str:
    lm, ml = report["loopml"], report["mlflow"]
    title = (f"Experiment tracking ({report['mode']}): loopml {lm.get('version', '?')} vs "
             f"MLflow {ml.get('version', '?')}, in-process, SQLite file on disk; "
             f"Python {lm.get('python', '?')}, SQLite {lm.get('sqlite', '?')}, "
             f"{lm.get('cpus', '?')} CPUs")
    table = format_table(HEADERS, rows, align="<>>>><<")
    return "\n".join([title, "", table, "", *notes])


if __name__ == "__main__":
    sys.exit(main())
