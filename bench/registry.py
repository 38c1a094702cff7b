"""Model registry: loopml and MLflow side by side, each in-process on an SQLite file on disk.

Run with the loopml dev interpreter::

    .venv/bin/python bench/registry.py            # full, about 3-4 min on 2 cores
    .venv/bin/python bench/registry.py --quick    # fewer repeats, about 1.5 min
    .venv/bin/python bench/registry.py --json     # the merged figures as JSON

The parent process runs each half in its own subprocess and prints one table:

* ``--side loopml`` in this interpreter;
* ``--side mlflow`` in ``bench/.venv-mlflow``, created once from ``requirements-mlflow.txt``
  (rebuilt when that file changes).

Both sides log the same scikit-learn model (LogisticRegression on ``load_breast_cancer``)
with an input example, register 100 versions of it, move and resolve an alias, and load
``models:/bench@champion`` in fresh processes, next to a fresh process that only
deserialises the same file with the flavor's own loader (``skops.io.load``): the difference
is what the registry adds to a cold load. Each half prints its figures as one JSON line.
This is a benchmark, not a test: it prints figures and targets and exits 0 whatever they are
(non-zero only for bad arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    BenchSetupError,
    Footnotes,
    Sections,
    format_seconds,
    format_table,
    log,
    results_at,
    run_side,
    side_header,
    venv_python,
)

MLFLOW_REQUIREMENTS = BENCH_DIR / "requirements-mlflow.txt"
MLFLOW_VENV = ".venv-mlflow"
#: Telemetry off (no network beside the measurement); MLflow 3.17 refuses to deserialise any
#: model, skops included, unless MLFLOW_ALLOW_PICKLE_DESERIALIZATION is true.
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
              "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}

MODEL_NAME = "bench"
ALIAS = "champion"
MODEL_URI = f"models:/{MODEL_NAME}@{ALIAS}"
EXAMPLE_ROWS = 5
#: MLflow figures quoted by the issue: log_model with an input example, cold models:/ load.
MLFLOW_REFERENCE = {"log_model": 10.7, "cold_load": 5.9}
TARGETS = {"log_model": 0.300, "register": 0.005, "resolve": 0.002, "overhead": 0.100}


@dataclass(frozen=True)
class Sizes:
    versions: int = 100           # (b) versions registered, on both sides
    fluent_versions: int = 20     # (b) MLflow: versions through the fluent mlflow.register_model
    alias_calls: int = 200        # (c) alias moves, and resolutions, timed one by one
    log_repeats: int = 10         # (a) loopml: log_model calls after the first
    mlflow_log_repeats: int = 2   # (a) MLflow: likewise (each runs a pip-inference subprocess)
    cold_repeats: int = 5         # (d) loopml: fresh processes per kind of load
    mlflow_cold_repeats: int = 3  # (d) MLflow: likewise


FULL = Sizes()
QUICK = Sizes(fluent_versions=10, log_repeats=3, mlflow_log_repeats=1, cold_repeats=3,
              mlflow_cold_repeats=1)


# --- shared by both sides --------------------------------------------------------------------


def training_data() -> tuple[Any, Any, Any]:
    """The data frame, labels and fitted model: the same on both sides (deterministic)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    frame, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(frame, labels)
    return frame, labels, model


def timed_calls(func: Callable[[int], Any], count: int) -> tuple[list[float], Any]:
    """Call ``func(i)`` for i in 0..count-1, timing each call; the samples and last result."""
    samples, result = [], None
    for index in range(count):
        start = time.perf_counter()
        result = func(index)
        samples.append(time.perf_counter() - start)
    return samples, result


def per_call(samples: list[float]) -> dict[str, Any]:
    return {"calls": len(samples), "median_s": statistics.median(samples),
            "mean_s": statistics.fmean(samples), "max_s": max(samples),
            "total_s": sum(samples)}


def count_rows(db_path: Path, sql: str, *args: Any) -> int:
    """A count read through a fresh connection: what is durably committed, not what is cached."""
    conn = sqlite3.connect(db_path, timeout=60)
    try:
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


def write_example(frame: Any, path: Path) -> None:
    """The rows every fresh process predicts after loading, to prove the model it got works."""
    rows = frame.iloc[:EXAMPLE_ROWS]
    path.write_text(json.dumps({"columns": [str(c) for c in rows.columns],
                                "data": rows.to_numpy().tolist()}))


#: A fresh process: run ``setup`` untimed, time ``load`` (imports included), then predict the
#: example rows outside the timed part and print both as one JSON line.
CHILD = """\
{setup}
import time
_start = time.perf_counter()
{load}
_loaded = time.perf_counter()
import json
import pandas
_example = json.load(open({example!r}))
_frame = pandas.DataFrame(_example["data"], columns=_example["columns"])
print(json.dumps({{"load_s": _loaded - _start,
                  "predictions": [int(p) for p in model.predict(_frame)]}}))
"""


#: Run before the clock starts in the "flavor imported first" kinds of load.
FLAVOR_SETUP = "import skops.io"


@dataclass(frozen=True)
class Load:
    """One kind of cold load: code that binds ``model``, untimed setup before it, and a
    preparation run in the parent before each of its processes."""

    code: str
    setup: str = ""
    prepare: Callable[[], None] | None = None


def fresh_load(load: Load, example: Path, env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    """Run ``load`` in a fresh interpreter (``python -I``)."""
    code = CHILD.format(setup=load.setup, load=load.code, example=str(example))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                          env=dict(env), cwd=cwd, check=False)
    process_s = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the fresh process failed (status {done.returncode}): {tail}")
    return {**json.loads(lines[-1]), "process_s": process_s}


def cold_loads(kinds: dict[str, Load], env: Mapping[str, str], repeats: int, example: Path,
               cwd: Path, expected: list[int]) -> dict[str, Any]:
    """Each kind of load ``repeats`` times, interleaved (kind A, kind B, …, A, B, …) so that a
    change in the machine's load hits every kind alike; medians of the in-process times, and
    each sample in round order (for paired differences)."""
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in kinds}
    for _ in range(repeats):
        for name, load in kinds.items():
            if load.prepare is not None:
                load.prepare()
            samples[name].append(fresh_load(load, example, env, cwd))
    figures: dict[str, Any] = {}
    for name, runs in samples.items():
        figures[name] = {
            "median_s": statistics.median(r["load_s"] for r in runs),
            "samples": [r["load_s"] for r in runs],
            "process_median_s": statistics.median(r["process_s"] for r in runs),
            "predictions_ok": all(r["predictions"] == expected for r in runs),
            "repeats": repeats,
        }
    return figures


def import_flavor() -> dict[str, Any]:
    """``import skops.io``, timed in this process (sklearn is already imported): the flavor's
    own import, which the first log_model would otherwise pay inside the call."""
    start = time.perf_counter()
    import skops.io  # noqa: F401

    return {"seconds": time.perf_counter() - start, "torch": "torch" in sys.modules}


def clean_env(drop_prefix: str, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefix)}
    return {**env, **extra}


# --- the loopml side -------------------------------------------------------------------------


def loopml_side(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    sections = Sections()
    try:
        import loopml
        from loopml.client import Client
        from loopml.models import read_manifest
    except Exception as exc:
        sections.errors["api"] = f"{type(exc).__name__}: {exc}"
        return {**side_header("loopml", "?"), **sections.as_dict()}

    frame, _labels, model = training_data()
    expected = [int(p) for p in model.predict(frame.iloc[:EXAMPLE_ROWS])]
    example_file = workdir / "example.json"
    write_example(frame, example_file)
    home = workdir / "loopml"
    settings = loopml.load_settings(home=home)
    db = Path(settings.database_url.removeprefix("sqlite:///"))
    client = Client(settings=settings)
    state: dict[str, Any] = {}

    with client.start_run(experiment="models") as run:  # creates the database first

        def log_models() -> dict[str, Any]:
            example = frame.iloc[:EXAMPLE_ROWS]
            flavor = import_flavor()
            start = time.perf_counter()
            info = client.log_model(run.id, model, input_example=example)
            first = time.perf_counter() - start
            samples, _ = timed_calls(lambda i: client.log_model(
                run.id, model, f"model-{i + 1}", input_example=example), sizes.log_repeats)
            state["info"] = info
            manifest = read_manifest(client.model_path(info.uri))
            return {"first_s": first, "import_s": flavor["seconds"],
                    "with_import_s": flavor["seconds"] + first, "torch": flavor["torch"],
                    "warm_s": statistics.median(samples),
                    "warm_samples": samples, "uri": info.uri,
                    "requirements": list(manifest.requirements),
                    "pins": sum("==" in r for r in manifest.requirements),
                    "signature": manifest.signature is not None,
                    "input_example": manifest.input_example is not None}

        sections.run("log_model", log_models)

    def register() -> dict[str, Any]:
        uri = state["info"].uri
        samples, last = timed_calls(lambda _i: client.register_model(uri, MODEL_NAME),
                                    sizes.versions)
        stored = count_rows(db, "SELECT count(*) FROM model_versions v JOIN registered_models m "
                            "ON v.model_id = m.id WHERE m.name = ?", MODEL_NAME)
        return {**per_call(samples), "versions": sizes.versions, "last_version": last.version,
                "stored": stored}

    def aliases_set() -> dict[str, Any]:
        samples, _ = timed_calls(lambda i: client.set_model_alias(
            MODEL_NAME, ALIAS, 1 + i % sizes.versions), sizes.alias_calls)
        client.set_model_alias(MODEL_NAME, ALIAS, sizes.versions)
        return per_call(samples)

    def aliases_get() -> dict[str, Any]:
        samples, last = timed_calls(
            lambda _i: client.get_model_version(f"{MODEL_NAME}@{ALIAS}"), sizes.alias_calls)
        return {**per_call(samples), "version": last.version,
                "correct": last.version == sizes.versions}

    sections.run("register", register)
    sections.run("alias_set", aliases_set)
    sections.run("alias_get", aliases_get)

    def cold() -> dict[str, Any]:
        path = client.model_path(MODEL_URI)
        manifest = read_manifest(path)
        data = manifest.flavor_data
        if manifest.flavor != "sklearn" or data.get("serializer") != "skops":
            raise RuntimeError(f"expected an sklearn/skops package, got {manifest.flavor} "
                               f"{dict(data)}")
        client.close()  # the fresh processes have the database to themselves
        trusted = list(data.get("untrusted_types") or []) or None
        env = clean_env("LOOPML_", {"LOOPML_HOME": str(home)})
        cache = home / "cache" / "models"
        load = f"import loopml\nmodel = loopml.load_model({MODEL_URI!r})"
        bare = ("import skops.io\n"
                f"model = skops.io.load({str(path / str(data['file']))!r}, trusted={trusted!r})")

        def uncache() -> None:
            shutil.rmtree(cache, ignore_errors=True)

        kinds = {"first": Load(load, prepare=uncache), "cached": Load(load),
                 "flavor": Load(bare),
                 "first_pre": Load(load, FLAVOR_SETUP, uncache),
                 "cached_pre": Load(load, FLAVOR_SETUP), "flavor_pre": Load(bare, FLAVOR_SETUP)}
        figures = cold_loads(kinds, env, sizes.cold_repeats, example_file, workdir, expected)
        figures["file"] = str(data["file"])
        figures["trusted"] = trusted
        return figures

    sections.run("cold", cold)
    client.close()
    return {**side_header("loopml", getattr(loopml, "__version__", "?")), **sections.as_dict(),
            "load_after": os.getloadavg()[0]}


# --- the MLflow side -------------------------------------------------------------------------


def mlflow_side(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    sections = Sections()
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="mlflow")  # integer-column hint, pickle notes

    frame, _labels, model = training_data()
    expected = [int(p) for p in model.predict(frame.iloc[:EXAMPLE_ROWS])]
    example_file = workdir / "example.json"
    write_example(frame, example_file)
    root = workdir / "mlflow"
    root.mkdir()
    db = root / "mlflow.db"
    uri = f"sqlite:///{db}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(
        "models", artifact_location=(root / "artifacts").as_uri())  # creates the database
    mlflow.set_experiment(experiment_id=experiment_id)
    state: dict[str, Any] = {}

    def artifact_dir(model_id: str) -> Path:
        location = client.get_logged_model(model_id).artifact_location
        return Path(location.removeprefix("file://"))

    with mlflow.start_run() as run:

        def log_models() -> dict[str, Any]:
            example = frame.iloc[:EXAMPLE_ROWS]
            flavor = import_flavor()
            start = time.perf_counter()
            info = mlflow.sklearn.log_model(model, name="model", input_example=example)
            first = time.perf_counter() - start
            samples, _ = timed_calls(lambda i: mlflow.sklearn.log_model(
                model, name=f"model-{i + 1}", input_example=example), sizes.mlflow_log_repeats)
            state["info"] = info
            directory = artifact_dir(info.model_id)
            requirements = [line.strip() for line in
                            (directory / "requirements.txt").read_text().splitlines()
                            if line.strip() and not line.startswith("#")]
            state["requirements"] = requirements
            return {"first_s": first, "import_s": flavor["seconds"],
                    "with_import_s": flavor["seconds"] + first, "torch": flavor["torch"],
                    "warm_s": statistics.median(samples) if samples else None,
                    "warm_samples": samples, "uri": info.model_uri,
                    "requirements": requirements,
                    "pins": sum("==" in r for r in requirements),
                    "signature": info.signature is not None,
                    "input_example": (directory / "input_example.json").is_file()}

        def log_pinned() -> dict[str, Any]:
            """The same call with pip_requirements given: no inference subprocess."""
            start = time.perf_counter()
            mlflow.sklearn.log_model(model, name="model-pinned",
                                     input_example=frame.iloc[:EXAMPLE_ROWS],
                                     pip_requirements=state["requirements"])
            return {"seconds": time.perf_counter() - start}

        sections.run("log_model", log_models)
        sections.run("log_model_pinned", log_pinned)

    def register() -> dict[str, Any]:
        source = state["info"].model_uri
        client.create_registered_model(MODEL_NAME)
        samples, last = timed_calls(lambda _i: client.create_model_version(
            MODEL_NAME, source, run_id=run.info.run_id), sizes.versions)
        stored = count_rows(db, "SELECT count(*) FROM model_versions WHERE name = ?",
                            MODEL_NAME)
        return {**per_call(samples), "versions": sizes.versions,
                "last_version": int(last.version), "stored": stored}

    def register_fluent() -> dict[str, Any]:
        source = state["info"].model_uri
        with contextlib.redirect_stderr(io.StringIO()):  # "Created version '3' of model …"
            samples, _ = timed_calls(
                lambda _i: mlflow.register_model(source, f"{MODEL_NAME}-fluent"),
                sizes.fluent_versions)
        return per_call(samples[1:] or samples)  # the first call also creates the model

    def aliases_set() -> dict[str, Any]:
        samples, _ = timed_calls(lambda i: client.set_registered_model_alias(
            MODEL_NAME, ALIAS, 1 + i % sizes.versions), sizes.alias_calls)
        client.set_registered_model_alias(MODEL_NAME, ALIAS, sizes.versions)
        return per_call(samples)

    def aliases_get() -> dict[str, Any]:
        samples, last = timed_calls(
            lambda _i: client.get_model_version_by_alias(MODEL_NAME, ALIAS), sizes.alias_calls)
        return {**per_call(samples), "version": int(last.version),
                "correct": int(last.version) == sizes.versions}

    sections.run("register", register)
    sections.run("register_fluent", register_fluent)
    sections.run("alias_set", aliases_set)
    sections.run("alias_get", aliases_get)

    def cold() -> dict[str, Any]:
        directory = artifact_dir(state["info"].model_id)
        flavor = mlflow.models.Model.load(str(directory / "MLmodel")).flavors["sklearn"]
        if flavor.get("serialization_format") != "skops":
            raise RuntimeError(f"expected a skops sklearn model, got {flavor}")
        trusted = flavor.get("skops_trusted_types") or None
        env = clean_env("MLFLOW_", {**MLFLOW_ENV, "MLFLOW_TRACKING_URI": uri})
        pyfunc = f"import mlflow.pyfunc\nmodel = mlflow.pyfunc.load_model({MODEL_URI!r})"
        bare = ("import skops.io\nmodel = skops.io.load("
                f"{str(directory / flavor['pickled_model'])!r}, trusted={trusted!r})")
        kinds = {"pyfunc": Load(pyfunc),
                 "sklearn": Load("import mlflow.sklearn\n"
                                 f"model = mlflow.sklearn.load_model({MODEL_URI!r})"),
                 "flavor": Load(bare), "pyfunc_pre": Load(pyfunc, FLAVOR_SETUP),
                 "flavor_pre": Load(bare, FLAVOR_SETUP)}
        figures = cold_loads(kinds, env, sizes.mlflow_cold_repeats, example_file, workdir,
                             expected)
        figures["file"] = str(flavor["pickled_model"])
        figures["trusted"] = trusted
        return figures

    sections.run("cold", cold)
    return {**side_header("mlflow", mlflow.__version__), **sections.as_dict(),
            "load_after": os.getloadavg()[0]}


SIDES: dict[str, Callable[[Sizes, Path], dict[str, Any]]] = {
    "loopml": loopml_side, "mlflow": mlflow_side}


def run_one_side(name: str, sizes: Sizes, parent: str | None) -> dict[str, Any]:
    log(f"{name}: measuring…")
    with tempfile.TemporaryDirectory(prefix=f"bench-registry-{name}-", dir=parent) as tmp:
        return SIDES[name](sizes, Path(tmp))


# --- the parent: run both sides, merge, print ------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats of the slow measurements (log_model, cold loads)")
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
    derive(report)
    rows, notes = table_rows(report, sizes)
    report["table"] = [dict(zip(HEADERS, row, strict=True)) for row in rows]
    report["notes"] = notes
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report, rows, notes))
    return 0


HEADERS = ("figure", "loopml", "MLflow", "loopml/MLflow", "speed-up", "target", "met")


#: Registry overhead of a cold load: (load, bare deserialisation) for each figure.
OVERHEADS = {
    "loopml": {"first": ("first", "flavor"), "cached": ("cached", "flavor"),
               "first_pre": ("first_pre", "flavor_pre"),
               "cached_pre": ("cached_pre", "flavor_pre")},
    "mlflow": {"first": ("pyfunc", "flavor"), "cached": ("pyfunc", "flavor"),
               "sklearn": ("sklearn", "flavor"), "first_pre": ("pyfunc_pre", "flavor_pre"),
               "cached_pre": ("pyfunc_pre", "flavor_pre")},
}


def derive(report: dict[str, Any]) -> None:
    """Registry overhead of a cold load: the median, over rounds, of the load's time minus the
    bare deserialisation's time in the same round (both processes ran one after the other)."""
    for side_name, pairs in OVERHEADS.items():
        cold = results_at(report[side_name], "cold")
        if not cold:
            continue
        cold["overhead"] = {
            label: statistics.median(a - b for a, b in zip(cold[load]["samples"],
                                                           cold[base]["samples"], strict=True))
            for label, (load, base) in pairs.items() if load in cold and base in cold}


def format_signed(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return ("-" if seconds < 0 else "") + format_seconds(abs(seconds))


def table_rows(report: dict[str, Any], sizes: Sizes) -> tuple[list[list[str]], list[str]]:
    lm, ml = report["loopml"], report["mlflow"]
    rows: list[list[str]] = []
    footnotes = Footnotes()
    notes, mark = footnotes.notes, footnotes.mark

    def cell(side: dict[str, Any], path: tuple[str, ...], fmt: Callable[[Any], str]) -> str:
        if "error" in side:
            return "—" if side.get("skipped") else "error"
        section = path[0]
        if section in side.get("errors", {}):
            return "error " + mark(f"{side['side']} {section}: {side['errors'][section]}")
        value = results_at(side, *path)
        if value is None:
            return "—"
        text = fmt(value)
        figures = results_at(side, section) or {}
        if "stored" in figures and figures["stored"] != figures.get("versions"):
            text += " " + mark(f"{side['side']} {section}: only {figures['stored']:,} of "
                               f"{figures.get('versions')} versions are in the database")
        if figures.get("correct") is False:
            text += " " + mark(f"{side['side']} {section}: the alias resolved to version "
                               f"{figures.get('version')}, not {sizes.versions}")
        if section == "cold" and len(path) > 1:
            kind = cold_kind(side, path)
            if kind and results_at(side, "cold", kind, "predictions_ok") is False:
                text += " " + mark(f"{side['side']} cold {kind}: the loaded model's predictions "
                                   "differ from the fitted model's")
        return text

    def row(label: str, lm_path: tuple[str, ...] | None, ml_path: tuple[str, ...] | None,
            fmt: Callable[[Any], str] = format_seconds, target: float | None = None,
            ml_note: str = "") -> None:
        lv = results_at(lm, *lm_path) if lm_path else None
        mv = results_at(ml, *ml_path) if ml_path else None
        ratio = speedup = ""
        if isinstance(lv, float) and isinstance(mv, float) and lv > 0 and mv > 0:
            ratio = f"{lv / mv:.3g}"
            factor, word = (mv / lv, "faster") if mv >= lv else (lv / mv, "slower")
            speedup = f"{factor:,.0f}x {word}" if factor >= 100 else f"{factor:.3g}x {word}"
        met = ""
        if target is not None and isinstance(lv, float):
            met = "yes" if lv < target else "NO"
        lm_cell = cell(lm, lm_path, fmt) if lm_path else "—"
        ml_cell = cell(ml, ml_path, fmt) if ml_path else "—"
        if ml_note and mv is not None:
            ml_cell += " " + mark(ml_note)
        rows.append([label, lm_cell, ml_cell, ratio, speedup,
                     f"< {format_seconds(target)}" if target is not None else "", met])

    def pins(value: list[str]) -> str:
        return f"{sum('==' in r for r in value)} pins"

    target = TARGETS["log_model"]
    row("(a) log_model, small sklearn model, first call", ("log_model", "with_import_s"),
        ("log_model", "with_import_s"), target=target)
    row("    of which import skops.io (sklearn imported)", ("log_model", "import_s"),
        ("log_model", "import_s"))
    row("    first call after that import", ("log_model", "first_s"), ("log_model", "first_s"),
        target=target)
    warm_lm = f"median of {sizes.log_repeats}"
    warm_ml = f"median of {sizes.mlflow_log_repeats}"
    row(f"    later calls (loopml {warm_lm}, MLflow {warm_ml})", ("log_model", "warm_s"),
        ("log_model", "warm_s"), target=target)
    row("    MLflow with pip_requirements given", None, ("log_model_pinned", "seconds"))
    row("    requirements recorded", ("log_model", "requirements"),
        ("log_model", "requirements"), fmt=pins)
    row(f"(b) register {sizes.versions} versions, total", ("register", "total_s"),
        ("register", "total_s"))
    row("    per version (mean)", ("register", "mean_s"), ("register", "mean_s"),
        target=TARGETS["register"])
    row("    per version (median)", ("register", "median_s"), ("register", "median_s"),
        target=TARGETS["register"])
    row(f"    MLflow fluent register_model (median of {sizes.fluent_versions - 1})", None,
        ("register_fluent", "median_s"))
    row(f"(c) set alias (median of {sizes.alias_calls})", ("alias_set", "median_s"),
        ("alias_set", "median_s"))
    row(f"    resolve {MODEL_NAME}@{ALIAS} (median of {sizes.alias_calls})",
        ("alias_get", "median_s"), ("alias_get", "median_s"), target=TARGETS["resolve"])
    same = ("MLflow keeps no cache of downloaded models: every load copies the artifacts "
            "again, so its first and second loads are the same measurement")
    row(f"(d) cold load {MODEL_URI}, fresh process, first", ("cold", "first", "median_s"),
        ("cold", "pyfunc", "median_s"))
    row("    second (loopml: package cached)", ("cold", "cached", "median_s"),
        ("cold", "pyfunc", "median_s"), ml_note=same)
    row("    MLflow mlflow.sklearn.load_model", None, ("cold", "sklearn", "median_s"))
    row("    flavor's own: import skops.io; skops.io.load", ("cold", "flavor", "median_s"),
        ("cold", "flavor", "median_s"))
    overhead = TARGETS["overhead"]
    row("    registry overhead, first load", ("cold", "overhead", "first"),
        ("cold", "overhead", "first"), fmt=format_signed, target=overhead)
    row("    registry overhead, second load", ("cold", "overhead", "cached"),
        ("cold", "overhead", "cached"), fmt=format_signed, target=overhead, ml_note=same)
    row("    with skops.io imported before the clock: load, first",
        ("cold", "first_pre", "median_s"), ("cold", "pyfunc_pre", "median_s"))
    row("    load, second", ("cold", "cached_pre", "median_s"),
        ("cold", "pyfunc_pre", "median_s"), ml_note=same)
    row("    skops.io.load alone", ("cold", "flavor_pre", "median_s"),
        ("cold", "flavor_pre", "median_s"))
    row("    registry overhead, first load", ("cold", "overhead", "first_pre"),
        ("cold", "overhead", "first_pre"), fmt=format_signed, target=overhead)
    row("    registry overhead, second load", ("cold", "overhead", "cached_pre"),
        ("cold", "overhead", "cached_pre"), fmt=format_signed, target=overhead, ml_note=same)

    for side in (lm, ml):
        if "error" in side:
            notes.append(f"{side['side']}: {side['error']}")
        elif "api" in side.get("errors", {}):
            notes.append(f"{side['side']}: the Python API is unusable: {side['errors']['api']}")
    notes += describe(lm, ml, sizes)
    return rows, notes


def cold_kind(side: dict[str, Any], path: tuple[str, ...]) -> str | None:
    """The kind of fresh-process load a cold-load figure stands on."""
    if path[1] != "overhead":
        return path[1]
    return OVERHEADS.get(side["side"], {}).get(path[2], (None, None))[0]


def describe(lm: dict[str, Any], ml: dict[str, Any], sizes: Sizes) -> list[str]:
    notes = []
    for side in (lm, ml):
        reqs = results_at(side, "log_model", "requirements")
        if reqs:
            notes.append(f"{side['side']} recorded requirements: {', '.join(reqs)}.")
    for side in (lm, ml):
        cold = results_at(side, "cold")
        if cold:
            kinds = [k for k in cold if isinstance(cold[k], dict) and "predictions_ok" in cold[k]]
            ok = all(cold[k]["predictions_ok"] for k in kinds)
            process = ", ".join(f"{k} {format_seconds(cold[k]['process_median_s'])}"
                                for k in kinds)
            repeats = cold[kinds[0]]["repeats"]
            notes.append(f"{side['side']} cold loads: {repeats} fresh "
                         f"process{'es' if repeats > 1 else ''} per kind, interleaved; "
                         f"{'every' if ok else 'NOT every'} loaded model predicted the "
                         f"example rows as the fitted model does. Whole-process wall times "
                         f"(interpreter start included): {process}.")
    torch = [s["side"] for s in (lm, ml) if results_at(s, "log_model", "torch")]
    if torch:
        notes.append(f"`import skops.io` imports torch in the {' and '.join(torch)} "
                     "environment (skops builds its trusted-type list with sklearn's "
                     "all_estimators(), which imports every sklearn module, among them "
                     "sklearn.externals.array_api_compat.torch, which imports torch when it is "
                     "installed): that is part of the flavor's own "
                     "import, paid by the first log_model and by every cold load, and of the "
                     "bare deserialisation it is compared with.")
    loads = [f"{s['side']} {s['load_before']:.1f} → {s.get('load_after', 0):.1f}"
             for s in (lm, ml) if "load_before" in s]
    if loads:
        cpus = lm.get("cpus") or ml.get("cpus") or 1
        busy = any(s.get("load_before", 0) > cpus or s.get("load_after", 0) > cpus
                   for s in (lm, ml))
        notes.append(f"1-minute load average before → after each side: {'; '.join(loads)} "
                     f"({cpus} CPUs){': the machine was busy, figures are noisy' if busy else ''}"
                     ".")
    notes.append(
        f"(a) logs LogisticRegression fitted on load_breast_cancer with the first "
        f"{EXAMPLE_ROWS} rows as input example (signature inferred). sklearn is imported and "
        "the model fitted beforehand; the flavor's own import (skops.io, which either call "
        "would do inside) is timed just before the first call and added to it in the first "
        "row. MLflow: mlflow.sklearn.log_model with defaults "
        "(skops serialisation; pip requirements inferred in a subprocess). loopml: "
        "client.log_model(run_id, model, input_example=...); its pins are read back from the "
        "manifest (loopml.models.read_manifest).")
    notes.append(
        f"(b) loopml: client.register_model('runs:/RUN/model', ...) {sizes.versions} times; "
        "MLflow: MlflowClient.create_model_version(name, 'models:/m-…', run_id) after "
        "create_registered_model. A fresh SQLite connection counts the versions afterwards. "
        "(c) loopml: set_model_alias (audited move) / get_model_version('bench@champion'); "
        "MLflow: set_registered_model_alias / get_model_version_by_alias.")
    notes.append(
        "(d) times are measured inside a fresh `python -I` process from its first statement "
        "(imports included) to a loaded model: loopml.load_model with LOOPML_HOME set "
        "('first': its cache of materialised packages emptied before each process), "
        "mlflow.pyfunc.load_model / mlflow.sklearn.load_model with MLFLOW_TRACKING_URI set; "
        "'flavor's own deserialisation' is `import skops.io; skops.io.load(file, trusted=…)` "
        "on the same file. Registry overhead = load − deserialisation, the median over rounds "
        "of the difference between two processes run one after the other; loopml's includes "
        "its own trust check (skops.io.get_untrusted_types). 'With skops.io imported before "
        "the clock' runs `import skops.io` untimed first in each process: the flavor's import "
        "(seconds, and noisy) is then out of both figures and the overhead is measured on "
        "small numbers. The OS page cache is warm in every case.")
    refs = ", ".join(f"{k.replace('_', ' ')} {format_seconds(v)}"
                     for k, v in MLFLOW_REFERENCE.items())
    notes.append(f"MLflow reference figures from the issue: {refs}.")
    return notes


def render(report: dict[str, Any], rows: list[list[str]], notes: list[str]) -> str:
    lm, ml = report["loopml"], report["mlflow"]
    title = (f"Model registry ({report['mode']}): loopml {lm.get('version', '?')} vs "
             f"MLflow {ml.get('version', '?')}, in-process, SQLite file on disk, local file "
             f"artifact/blob store; Python {lm.get('python', '?')}, SQLite "
             f"{lm.get('sqlite', '?')}, {lm.get('cpus', '?')} CPUs")
    table = format_table(HEADERS, rows, align="<>>>><<")
    return "\n".join([title, "", table, "", *notes])


if __name__ == "__main__":
    sys.exit(main())
