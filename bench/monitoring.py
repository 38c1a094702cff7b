"""Monitoring: loopml and Evidently side by side on a drift and quality check of 1M rows.

Run with the loopml dev interpreter::

    .venv/bin/python bench/monitoring.py              # reference 100,000 rows, current 1,000,000
    .venv/bin/python bench/monitoring.py --quick      # reference 20,000 rows, current 100,000
    .venv/bin/python bench/monitoring.py --json       # the merged figures as JSON

The script generates the data (``tests/monitoring_data.py``: 20 numeric and 5 categorical
columns, 7 of them with real shifts and 6 with trivial ones), writes it as Parquet and measures
each check in a fresh process, so every peak RSS is that of one side alone:

* ``--side loopml`` in this interpreter: the reference profile, computed beforehand and stored
  as JSON (as a model version stores it), is loaded, then ``compare(reference, current.parquet)``
  profiles the current rows, checks their quality and their drift; a second process runs the
  streamed engine on its own (``profile_table`` with a ``QualityObserver``, then
  ``drift_report``);
* ``--side evidently`` in ``bench/.venv-evidently`` (created once from
  ``requirements-evidently.txt``): both Parquet files read into pandas, then
  ``Report([DataDriftPreset()]).run(current, reference)``.

CPU seconds are user + system time of the process (every thread) over the check itself
(imports excluded, reading the data included); peak memory is the process's peak RSS
(``VmHWM``: the whole process, interpreter and imports included). The
columns each side flags are compared with the truth at 1,000, 100,000 and 1,000,000 current
rows. This is a benchmark, not a test: it prints figures and targets and exits 0 whatever they
are (non-zero only for bad arguments).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    BenchSetupError,
    Footnotes,
    format_seconds,
    format_table,
    log,
    run_side,
    side_header,
    venv_python,
)

EVIDENTLY_REQUIREMENTS = BENCH_DIR / "requirements-evidently.txt"
EVIDENTLY_VENV = ".venv-evidently"
TESTS_DIR = BENCH_DIR.parent / "tests"
MB = 1024 * 1024
ROW_GROUP_ROWS = 64 * 1024  # bounded row groups, as loopml writes tables
TARGET_CPU_S, TARGET_RSS_MB, TARGET_RATIO = 2.0, 300, 30.0


@dataclass(frozen=True)
class Sizes:
    reference: int = 100_000
    current: tuple[int, ...] = (1_000, 100_000, 1_000_000)
    repeats: int = 3  # loopml's largest check: fresh processes, the median is shown


FULL = Sizes()
QUICK = Sizes(reference=20_000, current=(1_000, 10_000, 100_000), repeats=1)


# --- data (parent process, loopml interpreter) -------------------------------------------


def generate_data(folder: Path, sizes: Sizes) -> dict[str, Any]:
    """Reference and current tables as Parquet, the reference profile as JSON, the truth."""
    import pyarrow.parquet as pq

    sys.path.insert(0, str(TESTS_DIR))
    from monitoring_data import COLUMNS, REAL_SHIFTS, TRIVIAL_SHIFTS, Shifts, monitoring_table

    from loopml.profiling import open_table, profile_table

    shifts = Shifts(mean_shift={**REAL_SHIFTS.mean_shift, **TRIVIAL_SHIFTS.mean_shift},
                    scale=dict(REAL_SHIFTS.scale),
                    category_shift={**REAL_SHIFTS.category_shift,
                                    **TRIVIAL_SHIFTS.category_shift})
    pq.write_table(monitoring_table(sizes.reference, seed=1), folder / "reference.parquet",
                   row_group_size=ROW_GROUP_ROWS)
    current = monitoring_table(max(sizes.current), seed=2, shifts=shifts)
    for rows in sizes.current:
        pq.write_table(current.slice(0, rows), folder / f"current-{rows}.parquet",
                       row_group_size=ROW_GROUP_ROWS)
    profile = profile_table(open_table(folder / "reference.parquet"))
    (folder / "reference-profile.json").write_text(json.dumps(profile.to_dict()))
    return {"columns": list(COLUMNS), "real": sorted(REAL_SHIFTS.columns),
            "trivial": sorted(TRIVIAL_SHIFTS.columns),
            "current_mb": {rows: (folder / f"current-{rows}.parquet").stat().st_size / MB
                           for rows in sizes.current},
            "reference_profile_kb": (folder / "reference-profile.json").stat().st_size / 1024}


# --- the sides (child processes) ---------------------------------------------------------


def _usage() -> tuple[float, float]:
    """(CPU seconds of every thread of this process, wall seconds)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime, time.perf_counter()


def _peak_mb() -> float:
    """This process's peak RSS. Linux's ``ru_maxrss`` would do, but it starts at the RSS of
    the process that spawned this one (its peak carries over the exec): ``VmHWM`` does not."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def loopml_side(data: Path, rows: int, mode: str) -> dict[str, Any]:
    start = _usage()
    from loopml.monitoring.comparison import compare
    from loopml.monitoring.drift import drift_report
    from loopml.monitoring.quality import QualityObserver
    from loopml.profiling import TableProfile, open_table, profile_table

    imported = _usage()
    rss_before = _peak_mb()
    current = data / f"current-{rows}.parquet"
    reference = TableProfile.from_dict(json.loads((data / "reference-profile.json").read_text()))
    if mode == "compare":
        report = compare(reference, current)
        assert report.drift is not None and report.quality is not None
        flagged, issues = report.drift.drifted_columns, report.quality.issues
    else:
        observer = QualityObserver(reference)
        profile = profile_table(open_table(current), observers=[observer])
        issues = observer.report(profile.rows).issues
        flagged = drift_report(reference, profile).drifted_columns
    done = _usage()
    return {**side_header("loopml", "dev"), "mode": mode, "rows": rows,
            "cpu_s": done[0] - imported[0], "wall_s": done[1] - imported[1],
            "import_cpu_s": imported[0] - start[0], "peak_rss_mb": _peak_mb(),
            "rss_before_mb": rss_before, "flagged": sorted(flagged),
            "quality": sorted({f"{i.column}: {i.kind}" for i in issues}),
            "pandas_imported": "pandas" in sys.modules}


def _evidently_flags(result: dict[str, Any]) -> list[str]:
    """Columns whose ValueDrift metric crossed its threshold (p-values: below it)."""
    flagged = []
    for metric in result.get("metrics", []):
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        value, threshold = metric.get("value"), config.get("threshold")
        if not isinstance(value, int | float) or not isinstance(threshold, int | float):
            continue
        p_value = "p_value" in str(config.get("method", "")).lower().replace("-", "_")
        if (value < threshold) if p_value else (value >= threshold):
            flagged.append(str(config.get("column")))
    return sorted(flagged)


def evidently_side(data: Path, rows: int) -> dict[str, Any]:
    start = _usage()
    import evidently
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    imported = _usage()
    rss_before = _peak_mb()
    reference = pd.read_parquet(data / "reference.parquet")
    current = pd.read_parquet(data / f"current-{rows}.parquet")
    read = _usage()
    result = Report([DataDriftPreset()]).run(current, reference)
    done = _usage()
    methods = sorted({str(m.get("config", {}).get("method")) for m in result.dict()["metrics"]
                      if str(m.get("config", {}).get("type", "")).endswith("ValueDrift")})
    return {**side_header("evidently", evidently.__version__), "rows": rows,
            "cpu_s": done[0] - imported[0], "wall_s": done[1] - imported[1],
            "report_cpu_s": done[0] - read[0], "import_cpu_s": imported[0] - start[0],
            "peak_rss_mb": _peak_mb(), "rss_before_mb": rss_before,
            "flagged": _evidently_flags(result.dict()), "methods": methods}


def run_one_side(side: str, data: Path, rows: int, mode: str) -> dict[str, Any]:
    if side == "evidently":
        return evidently_side(data, rows)
    return loopml_side(data, rows, mode)


# --- the parent ---------------------------------------------------------------------------


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [run for run in runs if "error" not in run]
    if not good:
        return runs[0]
    middle = statistics.median_low([run["cpu_s"] for run in good])
    chosen = next(run for run in good if run["cpu_s"] == middle)
    return {**chosen, "cpu_s_runs": [round(run["cpu_s"], 3) for run in good]}


def measure(sizes: Sizes, data: Path, evidently: Path | None,
            evidently_error: str | None) -> dict[str, Any]:
    script = Path(__file__).resolve()
    largest = max(sizes.current)
    results: dict[str, Any] = {"loopml": {}, "stream": {}, "evidently": {}}
    for rows in sizes.current:
        repeats = sizes.repeats if rows == largest else 1
        log(f"loopml, compare(), {rows:,} rows ({repeats} fresh process(es))…")
        args = ["--side", "loopml", "--data", str(data), "--rows", str(rows)]
        results["loopml"][rows] = _median_run(
            [run_side(sys.executable, script, [*args, "--mode", "compare"])
             for _ in range(repeats)])
    log(f"loopml, streamed engine, {largest:,} rows…")
    results["stream"][largest] = _median_run(
        [run_side(sys.executable, script, ["--side", "loopml", "--data", str(data), "--rows",
                                           str(largest), "--mode", "stream"])
         for _ in range(sizes.repeats)])
    for rows in sizes.current:
        if evidently is None:
            results["evidently"][rows] = {"error": evidently_error or "not measured"}
            continue
        log(f"Evidently, DataDriftPreset, {rows:,} rows…")
        results["evidently"][rows] = run_side(
            evidently, script, ["--side", "evidently", "--data", str(data), "--rows", str(rows)],
            timeout=3600)
    return results


def _mb(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.0f} MB"


def _ratio(theirs: float | None, ours: float | None) -> str:
    return "—" if theirs is None or not ours else f"{theirs / ours:.1f}x"


def _verdict(flagged: list[str] | None, truth: dict[str, Any]) -> tuple[str, str, str, str]:
    if flagged is None:
        return "—", "—", "—", "—"
    real, trivial = set(truth["real"]), set(truth["trivial"])
    unshifted = set(truth["columns"]) - real - trivial
    caught, false = real & set(flagged), set(flagged) - real
    wrong = sorted(false) + [f"missed {name}" for name in sorted(real - caught)]
    return (f"{len(caught)}/{len(real)}", f"{len(trivial & set(flagged))}/{len(trivial)}",
            f"{len(unshifted & set(flagged))}/{len(unshifted)}",
            "yes" if not wrong else "no: " + ", ".join(wrong))


def render(report: dict[str, Any], sizes: Sizes) -> str:
    results, truth = report["results"], report["data"]
    largest = max(sizes.current)
    notes = Footnotes()
    ours, stream = results["loopml"][largest], results["stream"][largest]
    theirs = results["evidently"][largest]

    def figure(side: dict[str, Any], key: str) -> float | None:
        value = side.get(key)
        return float(value) if isinstance(value, int | float) else None

    def error_mark(side: dict[str, Any]) -> str:
        return f" {notes.mark(str(side['error']))}" if "error" in side else ""

    cpu, their_cpu = figure(ours, "cpu_s"), figure(theirs, "cpu_s")
    rss, their_rss = figure(ours, "peak_rss_mb"), figure(theirs, "peak_rss_mb")
    met_cpu = cpu is not None and cpu <= TARGET_CPU_S and their_cpu is not None \
        and their_cpu / cpu >= TARGET_RATIO
    cpu_text = format_seconds(cpu) + error_mark(ours)
    if len(ours.get("cpu_s_runs", [])) > 1:
        cpu_text += " " + notes.mark(f"median of {len(ours['cpu_s_runs'])} fresh processes: "
                                     f"{', '.join(f'{s:.2f}' for s in ours['cpu_s_runs'])} s")
    their_cpu_text = format_seconds(their_cpu) + error_mark(theirs)
    if "report_cpu_s" in theirs:
        their_cpu_text += " " + notes.mark(
            f"reading both Parquet files into pandas included; Report.run alone "
            f"{format_seconds(theirs['report_cpu_s'])}")
    rss_text = _mb(rss)
    if ours.get("pandas_imported"):
        rss_text += " " + notes.mark("pandas was imported during the check (pyarrow's "
                                     "conversions import it: about 50 MB and 0.3 s)")
    stream_text = f"{format_seconds(figure(stream, 'cpu_s'))}, " \
                  f"{_mb(figure(stream, 'peak_rss_mb'))}{error_mark(stream)} " + notes.mark(
                      "profile_table(open_table(current), observers=[QualityObserver("
                      "reference)]), then drift_report(reference, profile): what compare() "
                      "runs when the current table has the reference's types, alone")
    rows = [
        ["CPU seconds of the check", cpu_text, their_cpu_text, _ratio(their_cpu, cpu),
         f"≤ {TARGET_CPU_S:g} s, ≥ {TARGET_RATIO:g}x", "yes" if met_cpu else "no"],
        ["peak memory (process RSS)", rss_text, _mb(their_rss), _ratio(their_rss, rss),
         f"≤ {TARGET_RSS_MB} MB", "yes" if rss is not None and rss <= TARGET_RSS_MB else "no"],
        ["wall seconds of the check", format_seconds(figure(ours, "wall_s")),
         format_seconds(figure(theirs, "wall_s")),
         _ratio(figure(theirs, "wall_s"), figure(ours, "wall_s")), "", ""],
        ["streamed engine: CPU, peak RSS", stream_text, "", "", "", ""],
    ]
    first = format_table(("1M-row check" if largest == 1_000_000 else f"{largest:,}-row check",
                          "loopml", "Evidently", "Evidently/loopml", "target", "met"),
                         rows, align="<>>><<")
    flag_rows = []
    for count in sizes.current:
        for name, side in (("loopml", results["loopml"][count]),
                           ("Evidently", results["evidently"][count])):
            flagged = side.get("flagged") if "error" not in side else None
            flag_rows.append([f"{count:,}", name, *_verdict(flagged, truth)])
    second = format_table(("current rows", "side", "real shifts flagged", "trivial flagged",
                           "unshifted flagged", "exactly the real shifts"), flag_rows,
                          align="><>>><")
    quality = ", ".join(ours.get("quality", [])) or "none"
    lines = [first, "", second, "",
             f"real shifts: {', '.join(truth['real'])}; trivial: {', '.join(truth['trivial'])}",
             f"loopml's quality issues at {largest:,} rows: {quality}",
             f"Evidently's drift methods: {', '.join(theirs.get('methods', [])) or '—'}",
             f"reference profile: {truth['reference_profile_kb']:.0f} KB of JSON; current "
             f"table: {truth['current_mb'][largest]:.0f} MB of Parquet",
             *notes.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="reference 20,000 rows, current up to 100,000 rows, one run each")
    parser.add_argument("--json", action="store_true", help="print the merged figures as JSON")
    parser.add_argument("--no-evidently", action="store_true",
                        help="measure loopml only (no Evidently venv needed)")
    parser.add_argument("--dir", default=None,
                        help="parent directory of the temporary data (default: system temp)")
    parser.add_argument("--side", choices=("loopml", "evidently"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("compare", "stream"), default="compare",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL

    if args.side:  # a child: measure one side, print one JSON line
        print(json.dumps(run_one_side(args.side, Path(args.data), args.rows, args.mode)))
        return 0

    evidently: Path | None = None
    evidently_error = "not measured (--no-evidently)" if args.no_evidently else None
    if not args.no_evidently:
        try:
            evidently = venv_python(EVIDENTLY_VENV, EVIDENTLY_REQUIREMENTS)
        except BenchSetupError as exc:
            evidently_error = f"could not prepare bench/{EVIDENTLY_VENV}: {exc}"
            log(evidently_error)
    report: dict[str, Any] = {"sizes": asdict(sizes), "mode": "quick" if args.quick else "full"}
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-", dir=args.dir) as tmp:
        data = Path(tmp)
        log(f"generating the data in {data}…")
        report["data"] = generate_data(data, sizes)
        report["results"] = measure(sizes, data, evidently, evidently_error)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report, sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
