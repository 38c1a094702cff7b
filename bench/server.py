"""Remote tracking through a server: ``loopml server`` vs ``mlflow server``, each one process
on an SQLite file on disk, each driven by its own client in its own idiom.

Run with the loopml dev interpreter::

    .venv/bin/python bench/server.py            # full (a few minutes)
    .venv/bin/python bench/server.py --quick    # smaller logging runs, fewer searches
    .venv/bin/python bench/server.py --json     # the merged figures as JSON

For each side the parent starts the server (``loopml server --workers 1`` in this
interpreter; ``mlflow server --workers 1`` in ``bench/.venv-mlflow``, created once from
``requirements-mlflow.txt``), waits until it answers, runs the client half in a subprocess of
the same interpreter (``--side loopml|mlflow``, printing one JSON line), then stops it:

* logging: metric points one call at a time (loopml: ``run.log_metric``, buffered and sent
  in batches by the ``RemoteClient``; MLflow: ``MlflowClient.log_metric``, one request a
  point, and the fluent ``log_metric(synchronous=False)``, MLflow's own batching), and the
  same points as one batch (``log_batch``);
* search: one run logged through the client, grown to 10,000 runs by bulk SQL copies of its
  rows in the server's database (as ``bench/tracking.py`` does), then the same search timed
  one request at a time: filter ``metrics.auc > 0.9 and params.model = 'rf'``, order
  ``metrics.auc DESC``, 100 results; p50 and p99 over the requests.

Targets: loopml logs at least 5x the points per second of MLflow, and its p99 search
latency at 10,000 runs is under 100 ms. This is a benchmark, not a test: it prints figures
and exits 0 whatever they are (non-zero only for bad arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import (
    BenchSetupError,
    Footnotes,
    Sections,
    format_rate,
    format_seconds,
    format_table,
    log,
    results_at,
    run_side,
    side_header,
    venv_python,
)
from tracking import (
    LOOPML_LAYOUT,
    MLFLOW_ENV,
    MLFLOW_LAYOUT,
    MLFLOW_REQUIREMENTS,
    MLFLOW_VENV,
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER,
    clone_runs,
    count_rows,
    loss_curve,
    now_ms,
    run_data,
)

SCRIPT = Path(__file__).resolve()
#: How long a server may take to answer its first request, and a side to finish.
START_TIMEOUT_S = 180.0
SIDE_TIMEOUT_S = 3600.0
#: The targets of the issue.
TARGET_RATIO = 5.0
TARGET_P99_S = 0.100


@dataclass(frozen=True)
class Sizes:
    points: int = 100_000            # loopml: points logged one call at a time, and as a batch
    mlflow_points: int = 2_000       # MLflow, one request a point: measured on this many
    mlflow_async_points: int = 5_000  # MLflow's synchronous=False: measured on this many
    batch_points: int = 100_000      # both: one log_batch call
    runs: int = 10_000               # runs in the searched experiment
    searches: int = 300              # timed search requests (after one cold one)


FULL = Sizes()
QUICK = Sizes(points=20_000, mlflow_points=300, mlflow_async_points=3_000,
              batch_points=20_000, searches=60)


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def time_searches(query: Callable[[], dict[str, Any]], count: int) -> dict[str, Any]:
    """One cold request, then ``count`` timed ones: their p50, p99 and max."""
    start = time.perf_counter()
    result = query()
    cold = time.perf_counter() - start
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        result = query()
        samples.append(time.perf_counter() - start)
    return {**result, "cold_s": cold, "p50_s": statistics.median(samples),
            "p99_s": percentile(samples, 0.99), "max_s": max(samples), "requests": count}


def rate(points: int, seconds: float, measured: int | None = None) -> dict[str, Any]:
    measured = points if measured is None else measured
    return {"points": measured, "seconds": seconds, "per_s": measured / seconds}


# --- the loopml client side --------------------------------------------------------------------


def loopml_side(sizes: Sizes, url: str, db: Path) -> dict[str, Any]:
    import loopml
    from loopml.client import RemoteClient

    sections = Sections()
    home = Path(tempfile.mkdtemp(prefix="bench-server-client-"))
    client = RemoteClient(loopml.load_settings(home=home, tracking_uri=url, progress=False))

    def one_at_a_time() -> dict[str, Any]:
        values = loss_curve(sizes.points)
        with client.start_run(experiment="points") as run:
            start = time.perf_counter()
            for step, value in enumerate(values):
                run.log_metric("loss", value, step=step)
            logged = time.perf_counter()
        seconds = time.perf_counter() - start  # the end of the run flushes the buffer
        stored = count_rows(db, "SELECT count(*) FROM metrics WHERE run_id = ?", run.id)
        return {**rate(sizes.points, seconds), "call_s": (logged - start) / sizes.points,
                "stored": stored}

    def batch() -> dict[str, Any]:
        stamp = now_ms()
        metrics = [loopml.Metric(key="loss", value=value, step=step, timestamp=stamp)
                   for step, value in enumerate(loss_curve(sizes.batch_points))]
        with client.start_run(experiment="batch") as run:
            start = time.perf_counter()
            client.log_batch(run.id, metrics=metrics)
            seconds = time.perf_counter() - start
        stored = count_rows(db, "SELECT count(*) FROM metrics WHERE run_id = ?", run.id)
        return {**rate(sizes.batch_points, seconds), "stored": stored}

    def search() -> dict[str, Any]:
        data = run_data(sizes.runs, seed=2)
        params, metrics = data[0]
        with client.start_run(experiment="search", name="run-0") as run:
            run.log_params(params)
            run.log_metrics(metrics, step=0)
        start = time.perf_counter()
        clone_runs(db, LOOPML_LAYOUT, run.id, "run-0", data, 1, sizes.runs)
        populate_s = time.perf_counter() - start

        def query() -> dict[str, Any]:
            found = client.search_runs("search", filter=SEARCH_FILTER, order_by=SEARCH_ORDER,
                                       max_results=SEARCH_MAX_RESULTS)
            return {"results": len(found), "top_auc": [r.metrics["auc"] for r in found[:5]]}

        return {**time_searches(query, sizes.searches), "runs": sizes.runs,
                "populate_s": populate_s}

    sections.run("log_one", one_at_a_time)
    sections.run("log_batch", batch)
    sections.run("search", search)
    client.close()
    return {**side_header("loopml", getattr(loopml, "__version__", "?")), **sections.as_dict()}


# --- the MLflow client side --------------------------------------------------------------------


def mlflow_side(sizes: Sizes, url: str, db: Path) -> dict[str, Any]:
    import logging

    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    sections = Sections()
    mlflow.set_tracking_uri(url)
    client = MlflowClient(tracking_uri=url)

    def one_at_a_time() -> dict[str, Any]:
        values = loss_curve(sizes.mlflow_points)
        run_id = client.create_run(client.create_experiment("points")).info.run_id
        start = time.perf_counter()
        for step, value in enumerate(values):
            client.log_metric(run_id, "loss", value, step=step)
        logged = time.perf_counter()
        client.set_terminated(run_id)
        seconds = time.perf_counter() - start
        stored = count_rows(db, "SELECT count(*) FROM metrics WHERE run_uuid = ?", run_id)
        return {**rate(sizes.mlflow_points, seconds),
                "call_s": (logged - start) / sizes.mlflow_points, "stored": stored}

    def one_at_a_time_async() -> dict[str, Any]:
        values = loss_curve(sizes.mlflow_async_points)
        mlflow.set_experiment("points-async")
        with mlflow.start_run() as run:
            start = time.perf_counter()
            for step, value in enumerate(values):
                mlflow.log_metric("loss", value, step=step, synchronous=False)
            logged = time.perf_counter()
        seconds = time.perf_counter() - start  # end_run waits for the queued points
        stored = count_rows(db, "SELECT count(*) FROM metrics WHERE run_uuid = ?",
                            run.info.run_id)
        return {**rate(sizes.mlflow_async_points, seconds),
                "call_s": (logged - start) / sizes.mlflow_async_points, "stored": stored}

    def batch() -> dict[str, Any]:
        stamp = now_ms()
        metrics = [Metric(key="loss", value=value, timestamp=stamp, step=step)
                   for step, value in enumerate(loss_curve(sizes.batch_points))]
        run_id = client.create_run(client.create_experiment("batch")).info.run_id
        start = time.perf_counter()
        client.log_batch(run_id, metrics=metrics)  # the client splits it into 1,000s
        seconds = time.perf_counter() - start
        client.set_terminated(run_id)
        stored = count_rows(db, "SELECT count(*) FROM metrics WHERE run_uuid = ?", run_id)
        return {**rate(sizes.batch_points, seconds), "stored": stored}

    def search() -> dict[str, Any]:
        data = run_data(sizes.runs, seed=2)
        params, metrics = data[0]
        experiment_id = client.create_experiment("search")
        run_id = client.create_run(experiment_id, run_name="run-0").info.run_id
        stamp = now_ms()
        client.log_batch(run_id, params=[Param(key, value) for key, value in params.items()],
                         metrics=[Metric(key=key, value=value, timestamp=stamp, step=0)
                                  for key, value in metrics.items()])
        client.set_terminated(run_id)
        start = time.perf_counter()
        clone_runs(db, MLFLOW_LAYOUT, run_id, "run-0", data, 1, sizes.runs)
        populate_s = time.perf_counter() - start

        def query() -> dict[str, Any]:
            found = client.search_runs([experiment_id], filter_string=SEARCH_FILTER,
                                       order_by=SEARCH_ORDER, max_results=SEARCH_MAX_RESULTS)
            return {"results": len(found), "top_auc": [r.data.metrics["auc"] for r in found[:5]]}

        return {**time_searches(query, sizes.searches), "runs": sizes.runs,
                "populate_s": populate_s}

    sections.run("log_one", one_at_a_time)
    sections.run("log_async", one_at_a_time_async)
    sections.run("log_batch", batch)
    sections.run("search", search)
    return {**side_header("mlflow", mlflow.__version__), **sections.as_dict()}


SIDES: dict[str, Callable[[Sizes, str, Path], dict[str, Any]]] = {
    "loopml": loopml_side, "mlflow": mlflow_side}


# --- the servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Served:
    url: str
    db: Path
    python: str


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
            raise BenchSetupError(f"the server exited with status {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status < 500:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise BenchSetupError(f"the server did not answer {url} within {START_TIMEOUT_S:.0f} s")


@contextmanager
def serving(side: str, workdir: Path) -> Iterator[Served]:
    """Start the side's server (one process) on a fresh SQLite file; stop it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    folder = workdir / side
    folder.mkdir(parents=True)
    env = dict(os.environ)
    if side == "loopml":
        import loopml

        python = sys.executable
        home = folder / "home"
        env = {k: v for k, v in env.items() if not k.startswith("LOOPML_")}
        env["LOOPML_HOME"] = str(home)
        db = Path(loopml.load_settings(home=home).database_url.removeprefix("sqlite:///"))
        command = [python, "-c", "from loopml.cli.main import main; main()", "server",
                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-auth"]
        probe = f"{url}/api/v1/experiments"
    else:
        python = str(venv_python(MLFLOW_VENV, MLFLOW_REQUIREMENTS))
        # One serving process: no background job runner beside the uvicorn worker.
        env.update(MLFLOW_ENV, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        db = folder / "mlflow.db"
        command = [python, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
                   "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
                   "--port", str(port), "--workers", "1"]
        probe = f"{url}/health"
    log_file = folder / "server.log"
    with log_file.open("wb") as out:  # its own process group: its workers stop with it
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        log(f"{side}: starting its server on {url}…")
        _wait_until_up(probe, process, log_file)
        yield Served(url, db, python)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(20)
            break
        except subprocess.TimeoutExpired:
            continue
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workers left behind by the leader


def measure(side: str, sizes: Sizes, quick: bool, workdir: Path) -> dict[str, Any]:
    """Serve, run the client half of ``side`` against the server, stop."""
    try:
        with serving(side, workdir) as served:
            args = ["--side", side, "--url", served.url, "--db", str(served.db)]
            env = MLFLOW_ENV if side == "mlflow" else {}
            return run_side(served.python, SCRIPT, [*args, *(["--quick"] if quick else [])],
                            env=env, timeout=SIDE_TIMEOUT_S)
    except BenchSetupError as exc:
        log(f"{side}: {exc}")
        return {"error": str(exc)}


# --- the parent: both sides, one table -------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller logging runs, fewer "
                        "searches (the search is still over 10,000 runs)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-mlflow", action="store_true", help="measure loopml only")
    parser.add_argument("--dir", help="parent of the temporary directory (a real disk)")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.side:
        if not args.url or not args.db:
            parser.error("--side needs --url and --db")
        print(json.dumps(SIDES[args.side](sizes, args.url, Path(args.db))), flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-server-", dir=args.dir) as tmp:
        report: dict[str, Any] = {"sizes": asdict(sizes), "load_before": os.getloadavg()[0]}
        report["loopml"] = measure("loopml", sizes, args.quick, Path(tmp))
        report["mlflow"] = ({"error": "skipped (--no-mlflow)"} if args.no_mlflow
                            else measure("mlflow", sizes, args.quick, Path(tmp)))
        report["load_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0


def _ratio(lm: float | None, ml: float | None, *, higher_is_better: bool) -> str:
    if not lm or not ml:
        return "—"
    value = lm / ml if higher_is_better else ml / lm
    return f"{value:,.1f}x"


def render(report: dict[str, Any]) -> str:
    lm, ml = report["loopml"], report["mlflow"]
    notes = Footnotes()

    def figure(side: dict[str, Any], section: str, key: str,
               fmt: Callable[[Any], str]) -> tuple[str, float | None]:
        value = results_at(side, section, key)
        if value is None:
            error = side.get("error") or side.get("errors", {}).get(section)
            return (notes.mark(str(error).splitlines()[0][:200]) if error else "—"), None
        cell = fmt(value)
        data = results_at(side, section) or {}
        if "stored" in data and data["stored"] != data.get("points"):
            cell += " " + notes.mark(f"only {data['stored']:,} of {data['points']:,} points "
                                     "were in the database afterwards")
        return cell, float(value)

    best_ml = max((results_at(ml, s, "per_s") or 0.0 for s in ("log_one", "log_async")),
                  default=0.0) or None
    lm_rate = results_at(lm, "log_one", "per_s")
    rows = []
    for label, lm_section, ml_section, target in (
            ("points one call at a time (points/s)", "log_one", "log_one",
             f">= {TARGET_RATIO:g}x MLflow"),
            ("  MLflow: log_metric(synchronous=False)", None, "log_async", ""),
            ("points in one log_batch call (points/s)", "log_batch", "log_batch", "")):
        lm_cell, lm_value = (figure(lm, lm_section, "per_s", format_rate) if lm_section
                             else ("", None))
        ml_cell, ml_value = figure(ml, ml_section, "per_s", format_rate)
        compared = lm_rate if lm_section is None else lm_value
        rows.append([label, lm_cell, ml_cell,
                     _ratio(compared, ml_value, higher_is_better=True), target])
    for label, key, target in (("search p50 at {runs} runs", "p50_s", ""),
                               ("search p99 at {runs} runs", "p99_s",
                                f"< {format_seconds(TARGET_P99_S)}"),
                               ("search, first (cold) request", "cold_s", "")):
        runs = results_at(lm, "search", "runs") or results_at(ml, "search", "runs") or 0
        lm_cell, lm_value = figure(lm, "search", key, format_seconds)
        ml_cell, ml_value = figure(ml, "search", key, format_seconds)
        rows.append([label.format(runs=f"{runs:,}"), lm_cell, ml_cell,
                     _ratio(lm_value, ml_value, higher_is_better=False), target])
    verdicts = []
    if lm_rate and best_ml:
        verdicts.append(f"logging: loopml {lm_rate / best_ml:,.1f}x MLflow's faster idiom "
                        f"(target {TARGET_RATIO:g}x): "
                        f"{'met' if lm_rate / best_ml >= TARGET_RATIO else 'NOT met'}")
    p99 = results_at(lm, "search", "p99_s")
    if p99 is not None:
        verdicts.append(f"search p99 {format_seconds(p99)} (target "
                        f"< {format_seconds(TARGET_P99_S)}): "
                        f"{'met' if p99 < TARGET_P99_S else 'NOT met'}")
    lm_found, ml_found = results_at(lm, "search", "results"), results_at(ml, "search", "results")
    if lm_found is not None and ml_found is not None:
        same = (lm_found == ml_found and results_at(lm, "search", "top_auc")
                == results_at(ml, "search", "top_auc"))
        verdicts.append(f"both searches return {lm_found} and {ml_found} runs"
                        + ("" if same else " " + notes.mark("the two searches disagree")))
    header = (f"loopml server vs mlflow server, one process each, SQLite "
              f"(load average {report['load_before']:.1f} before, "
              f"{report['load_after']:.1f} after; "
              f"{os.cpu_count()} CPUs)")
    table = format_table(["measurement", "loopml", "MLflow", "loopml speed-up", "target"],
                         rows, "<>>><")
    return "\n".join([header, "", table, "", *verdicts, *notes.notes])


if __name__ == "__main__":
    sys.exit(main())
