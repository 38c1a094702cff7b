"""Pipelines: loopml side by side with Metaflow and ZenML; tuning and Ray task overheads.

Run with the loopml dev interpreter::

    .venv/bin/python bench/pipelines.py               # full: 2/10/20 steps (12-25 min, 2 cores)
    .venv/bin/python bench/pipelines.py --quick       # 2/10 steps, fewer repeats (2.5-4 min)
    .venv/bin/python bench/pipelines.py --no-anchors  # loopml only
    .venv/bin/python bench/pipelines.py --json        # the merged figures as JSON
    .venv/bin/python bench/pipelines.py --profile     # where loopml's in-process run spends

Every tool runs the same linear pipeline: step 1 makes a 1 KB dict from the parameter ``n``,
each later step returns its input unchanged; pipelines of 2, 10 and 20 steps are generated
as source files in a fresh temporary directory. The parent runs each tool in its own
subprocess and interpreter (``--side loopml`` here, ``--side metaflow`` and ``--side zenml``
in ``bench/.venv-metaflow`` / ``bench/.venv-zenml``, created once from their requirements
files), each printing one JSON line, and prints one table. This is a benchmark, not a test:
it exits 0 whatever the figures are (non-zero only for bad arguments).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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
    import_seconds,
    log,
    results_at,
    run_side,
    side_header,
    venv_python,
)

ANCHORS = {"metaflow": ("Metaflow", ".venv-metaflow", BENCH_DIR / "requirements-metaflow.txt"),
           "zenml": ("ZenML", ".venv-zenml", BENCH_DIR / "requirements-zenml.txt")}
FAIL_STEP = 9       # the step that fails on the first run of the resume measurement
RESUME_STEPS = 10   # ... of this pipeline; resume re-runs steps FAIL_STEP..RESUME_STEPS
FAIL_ENV = "BENCH_FAIL_FLAG"  # a path: while the file exists, step FAIL_STEP raises
#: 32 keys of 21 characters: json.dumps of it is exactly 1,024 bytes.
PAYLOAD_EXPR = '{f"k{i:02d}": "x" * 21 for i in range(32)}'


@dataclass(frozen=True)
class Sizes:
    steps: tuple[int, ...] = (2, 10, 20)  # pipeline lengths for the per-step slope
    repeats: int = 5          # in-process runs per length (ZenML); CLI runs (Metaflow)
    loopml_repeats: int = 20  # in-process runs per length (loopml: milliseconds each)
    fresh_repeats: int = 5    # (a) runs of the 10-step pipeline from a fresh process
    cached_repeats: int = 10  # (c) cached re-runs
    resume_repeats: int = 3   # (d) fail-then-resume cycles
    import_repeats: int = 5   # (e) fresh interpreters importing the package
    ray_tasks: int = 1_000    # (g) no-op tasks per round
    ray_rounds: int = 5


FULL = Sizes()
QUICK = Sizes(steps=(2, 10), repeats=2, fresh_repeats=2, cached_repeats=3, resume_repeats=1,
              import_repeats=3, ray_rounds=2, loopml_repeats=5)


# --- the pipelines, as source code -----------------------------------------------------------

def step_name(index: int, count: int, *, metaflow: bool = False) -> str:
    if metaflow and index == 1:
        return "start"
    if metaflow and index == count:
        return "end"
    return f"step{index:02d}"


FAIL_CHECK = (f"    if os.path.exists(os.environ.get({FAIL_ENV!r}) or ''):\n"
              f"        raise RuntimeError('step {FAIL_STEP} fails on purpose')\n")


def function_flow(sizes: Sizes, decorators: str) -> str:
    """loopml or ZenML: steps step01..stepNN and one pipeline ``linear_<k>`` per length."""
    most = max(*sizes.steps, RESUME_STEPS)
    lines = ["import os", decorators, "", f"PAYLOAD = {PAYLOAD_EXPR}", "", "",
             "@step", "def step01(n: int) -> dict:", '    return dict(PAYLOAD, k00=f"{n:021d}")']
    for index in range(2, most + 1):
        body = FAIL_CHECK if index == FAIL_STEP else ""
        lines += ["", "", "@step", f"def {step_name(index, most)}(d: dict) -> dict:",
                  body + "    return d" if body else "    return d"]
    for count in sorted({*sizes.steps, RESUME_STEPS}):
        calls = ["    d = step01(n)"] + [f"    d = {step_name(i, most)}(d)"
                                          for i in range(2, count + 1)]
        lines += ["", "", "@pipeline", f"def linear_{count}(n: int = 0):", *calls, "    return d"]
    return "\n".join(lines) + "\n"


def metaflow_flow(count: int) -> str:
    """Metaflow: one FlowSpec per file; ``start`` makes the dict, ``end`` is the last step."""
    lines = ["import os", "from metaflow import FlowSpec, Parameter, step", "",
             f"PAYLOAD = {PAYLOAD_EXPR}", "", "", f"class Linear{count}(FlowSpec):",
             "    n = Parameter('n', default=0, type=int)"]
    for index in range(1, count + 1):
        name = step_name(index, count, metaflow=True)
        lines += ["", "    @step", f"    def {name}(self):"]
        if index == 1:
            lines.append('        self.d = dict(PAYLOAD, k00=f"{self.n:021d}")')
        else:
            if index == FAIL_STEP:
                lines += ["    " + line for line in FAIL_CHECK.splitlines()]
            lines.append("        self.d = self.d")
        if index < count:
            lines.append(f"        self.next(self.{step_name(index + 1, count, metaflow=True)})")
    lines += ["", "", "if __name__ == '__main__':", f"    Linear{count}()"]
    return "\n".join(lines) + "\n"


# --- small helpers ---------------------------------------------------------------------------

def fit_line(points: dict[int, float]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of seconds over steps."""
    xs, ys = list(points), list(points.values())
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / \
        sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def summary(samples: list[float]) -> dict[str, Any]:
    return {"seconds": statistics.median(samples), "min_s": min(samples), "samples": samples}


def per_length(samples: dict[int, list[float]]) -> dict[str, Any]:
    """Median and minimum per pipeline length, and the lines fitted through each.

    ``per_step_s``/``fixed_s`` come from the minimums: on a shared machine noise only adds
    time, and a single stall (seconds, seen here) drags a median of 5 far more than the cost
    of a 1 ms step; the median-based line is kept beside it."""
    medians = {k: statistics.median(v) for k, v in samples.items()}
    minimums = {k: min(v) for k, v in samples.items()}
    slope, intercept = fit_line(minimums)
    median_slope, median_intercept = fit_line(medians)
    return {"per_step_s": slope, "fixed_s": intercept, "per_step_median_s": median_slope,
            "fixed_median_s": median_intercept,
            "median_s": {str(k): v for k, v in medians.items()},
            "min_s": {str(k): v for k, v in minimums.items()},
            "samples": {str(k): v for k, v in samples.items()}}


def command(argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None,
            ok: bool = True) -> tuple[float, str]:
    """Wall seconds of one command (a fresh process) and its stdout; checks the exit status."""
    start = time.perf_counter()
    done = subprocess.run(list(argv), cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if (done.returncode == 0) != ok:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
        raise RuntimeError(f"`{' '.join(argv)}` exited with {done.returncode}: {tail}")
    return seconds, done.stdout


class FailFlag:
    """While inside ``with``, step FAIL_STEP raises (the flag file exists)."""

    def __init__(self, work: Path) -> None:
        self.path = work / "fail-flag"
        os.environ[FAIL_ENV] = str(self.path)

    def __enter__(self) -> FailFlag:
        self.path.touch()
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def finish_side(name: str, version: str, sections: Sections) -> dict[str, Any]:
    return {**side_header(name, version), "load_after": os.getloadavg()[0],
            **sections.as_dict()}


# --- loopml ----------------------------------------------------------------------------------

def loopml_side(sizes: Sizes, work: Path) -> dict[str, Any]:
    import loopml
    from loopml.errors import StepFailed
    from loopml.pipelines import StepStatus, resume

    sections = Sections()
    sections.run("import", lambda: import_seconds(sys.executable, "loopml",
                                                         sizes.import_repeats))
    (work / "lflow.py").write_text(function_flow(sizes, "from loopml import pipeline, step"))
    sys.path.insert(0, str(work))
    flow = importlib.import_module("lflow")
    client = loopml.Client(loopml.load_settings(home=work / ".loopml", progress=False))
    counter = iter(range(1, 1_000_000))

    def run(count: int, **options: Any) -> Any:
        return getattr(flow, f"linear_{count}").run(client=client, executor="inline",
                                                    progress=False, **options)

    def in_process() -> dict[str, Any]:
        run(2, n=0, cache=False)  # warm-up: schema, imports, first connection
        samples: dict[bool, dict[int, list[float]]] = {c: {k: [] for k in sizes.steps}
                                                       for c in (True, False)}
        for _ in range(sizes.loopml_repeats):
            for count in sizes.steps:
                for cache in (True, False):  # on: new params, so every step misses
                    start = time.perf_counter()
                    done = run(count, n=next(counter), cache=cache)
                    samples[cache][count].append(time.perf_counter() - start)
                    assert all(s.status is StepStatus.COMPLETED for s in done.steps)
        return {**per_length(samples[True]), "no_cache": per_length(samples[False])}

    def cached() -> dict[str, Any]:
        run(RESUME_STEPS, n=-1)
        samples, statuses = [], set()
        for _ in range(sizes.cached_repeats):
            start = time.perf_counter()
            done = run(RESUME_STEPS, n=-1)
            samples.append(time.perf_counter() - start)
            statuses |= {s.status.value for s in done.steps}
        return {**summary(samples), "statuses": sorted(statuses)}

    def resumed() -> dict[str, Any]:
        pipe = getattr(flow, f"linear_{RESUME_STEPS}")
        samples, statuses = [], []
        for _ in range(sizes.resume_repeats):
            with FailFlag(work):
                try:
                    run(RESUME_STEPS, n=next(counter))
                    raise RuntimeError(f"step {FAIL_STEP} did not fail")
                except StepFailed as exc:
                    failed = exc.run_id
            start = time.perf_counter()
            done = resume(failed, client=client, pipeline=pipe, progress=False)
            samples.append(time.perf_counter() - start)
            statuses.append([s.status.value for s in done.steps])
        return {**summary(samples), "statuses": statuses[-1]}

    def fresh_process() -> dict[str, Any]:
        cli = str(Path(sys.executable).parent / "loopml")
        env = {"LOOPML_HOME": str(work / ".loopml-cli"), "LOOPML_PROGRESS": "false"}
        target = f"lflow.py:linear_{RESUME_STEPS}"
        command([cli, "run", target, "--no-cache", "--param", "n=0"], cwd=work, env=env)
        runs = [command([cli, "run", target, "--no-cache", "--param", f"n={next(counter)}"],
                        cwd=work, env=env)[0] for _ in range(sizes.fresh_repeats)]
        _, out = command([cli, "run", target, "--param", "n=0", "--json"], cwd=work, env=env)
        code = code_version_cost(work / ".loopml-cli", json.loads(out)["run_id"], cli)
        resumes = []
        for _ in range(sizes.resume_repeats):
            with FailFlag(work):
                _, out = command([cli, "run", target, "--param", f"n={next(counter)}",
                                  "--json"], cwd=work, env=env, ok=False)
            run_id = json.loads(out)["run_id"]
            resumes.append(command([cli, "pipelines", "resume", run_id], cwd=work, env=env)[0])
        return {"run": summary(runs), "resume": summary(resumes), "code_version": code,
                "help": summary([command([cli, "--help"], cwd=work)[0] for _ in range(3)])}

    sections.run("in_process", in_process)
    sections.run("cached", cached)
    sections.run("resume", resumed)
    sections.run("fresh", fresh_process)
    client.close()
    return finish_side("loopml", loopml.__version__, sections)


def ray_side(sizes: Sizes, work: Path) -> dict[str, Any]:
    """(g) on its own, after the anchors: Ray's processes must not load their measurements."""
    import loopml

    sections = Sections()
    sections.run("ray", lambda: ray_overhead(sizes))
    return finish_side("ray", loopml.__version__, sections)


def code_version_cost(home: Path, run_id: str, cli: str) -> dict[str, Any]:
    """Which git checkout the CLI run was tagged with, and what reading it costs: the run
    records the code version of the directory of ``__main__`` (for the CLI, its script)."""
    import loopml
    from loopml.tracking.context import code_version_tags

    client = loopml.Client(loopml.load_settings(home=home, progress=False))
    try:
        repo = client.get_run(run_id).tags.get("loopml.git.repo")
    finally:
        client.close()
    start = time.perf_counter()
    code_version_tags.__wrapped__(Path(cli).parent)
    return {"repo": repo, "seconds": time.perf_counter() - start}


def hpo_figures(quick: bool, parent: str | None) -> dict[str, Any]:
    """(f) Tuning is measured by bench/hpo.py (loopml.tune vs raw Optuna); run it, keep its JSON."""
    script = BENCH_DIR / "hpo.py"
    if not script.exists():
        return {"skipped": "bench/hpo.py is not there yet"}
    args = ["--json", *(["--quick"] if quick else []), *(["--dir", parent] if parent else [])]
    log(f"hpo: bench/hpo.py {' '.join(args)}…")
    try:
        done = subprocess.run([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                              text=True, check=False, timeout=1800)
        report: dict[str, Any] = json.loads(done.stdout)
    except subprocess.TimeoutExpired:
        return {"skipped": "bench/hpo.py ran longer than 30 minutes"}
    except json.JSONDecodeError:
        return {"skipped": f"bench/hpo.py exited {done.returncode} without a JSON report"}
    return report


def _noop() -> None:
    return None


def ray_overhead(sizes: Sizes) -> dict[str, Any]:
    """(g) ``sizes.ray_tasks`` no-op tasks: loopml's RayExecutor vs a plain ``@ray.remote``."""
    try:
        from loopml.pipelines.executors.base import open_executor, wait

        importlib.import_module("loopml.pipelines.executors.ray")
        import ray
    except ImportError as exc:
        return {"skipped": f"Ray or loopml's Ray executor is not available ({exc})"}
    start = time.perf_counter()
    executor = open_executor("ray-local")
    started = time.perf_counter() - start
    raw_noop = ray.remote(_noop)
    count = sizes.ray_tasks

    def raw() -> float:
        start = time.perf_counter()
        ray.get([raw_noop.remote() for _ in range(count)])
        return time.perf_counter() - start

    def ours() -> float:
        start = time.perf_counter()
        futures = [executor.submit(_noop) for _ in range(count)]
        wait(futures, return_when="ALL_COMPLETED")
        for future in futures:
            future.result()
        return time.perf_counter() - start

    try:
        raw(), ours()  # warm-up: workers started, functions exported
        raws, loopmls = [], []
        for round_ in range(sizes.ray_rounds):  # interleaved, alternating which goes first
            pair = (raw, ours) if round_ % 2 == 0 else (ours, raw)
            times = {f: f() for f in pair}
            raws.append(times[raw] / count)
            loopmls.append(times[ours] / count)
    finally:
        executor.close()
    overheads = [b - a for a, b in zip(raws, loopmls, strict=True)]
    return {"tasks": count, "start_s": started, "raw_per_task_s": statistics.median(raws),
            "loopml_per_task_s": statistics.median(loopmls),
            "overhead_s": statistics.median(overheads), "overhead_samples": overheads,
            "ray": ray.__version__, "cpus": executor.max_parallel}


# --- Metaflow --------------------------------------------------------------------------------

METAFLOW_ENV = {"METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DEFAULT_METADATA": "local",
                "USER": os.environ.get("USER") or "bench"}


def metaflow_side(sizes: Sizes, work: Path) -> dict[str, Any]:
    import metaflow

    env = {**METAFLOW_ENV, "METAFLOW_HOME": str(work / "metaflow-home")}
    sections = Sections()
    sections.run("import", lambda: import_seconds(sys.executable, "metaflow",
                                                           sizes.import_repeats, env=env))
    for count in {*sizes.steps, RESUME_STEPS}:
        (work / f"flow{count}.py").write_text(metaflow_flow(count))
    counter = iter(range(1, 1_000_000))

    def flow(count: int, verb: str, *args: str, ok: bool = True) -> float:
        return command([sys.executable, f"flow{count}.py", "--quiet", "--no-pylint", verb,
                        *args], cwd=work, env=env, ok=ok)[0]

    def runs() -> dict[str, Any]:
        flow(2, "run", "--n", "0")  # warm-up: the local datastore is created
        samples: dict[int, list[float]] = {k: [] for k in sizes.steps}
        for _ in range(sizes.repeats):
            for count in sizes.steps:
                samples[count].append(flow(count, "run", "--n", str(next(counter))))
        return per_length(samples)

    def resumed() -> dict[str, Any]:
        samples = []
        for _ in range(sizes.resume_repeats):
            with FailFlag(work):
                flow(RESUME_STEPS, "run", "--n", str(next(counter)), ok=False)
            samples.append(flow(RESUME_STEPS, "resume"))
        return summary(samples)

    sections.run("cli", runs)
    sections.run("resume", resumed)
    return finish_side("metaflow", metaflow.__version__, sections)


# --- ZenML -----------------------------------------------------------------------------------

ZENML_ENV = {"ZENML_ANALYTICS_OPT_IN": "false", "ZENML_LOGGING_VERBOSITY": "WARN",
             "ZENML_ENABLE_RICH_TRACEBACK": "false", "ZENML_AUTO_OPEN_DASHBOARD": "false",
             "ZENML_DISABLE_INTERACTIVE_INPUT": "true", "AUTO_OPEN_DASHBOARD": "false"}
ZENML_RUN = """import sys
import zflow
getattr(zflow, "linear_" + sys.argv[1]).with_options(enable_cache=False)(n=int(sys.argv[2]))
"""


def zenml_side(sizes: Sizes, work: Path) -> dict[str, Any]:
    env = {**ZENML_ENV, "ZENML_CONFIG_PATH": str(work / "zenml-config")}
    os.environ.update(env)  # before zenml is imported: it reads them once
    os.chdir(work)
    sections = Sections()
    sections.run("import", lambda: import_seconds(sys.executable, "zenml",
                                                        sizes.import_repeats, env=env))
    (work / "zflow.py").write_text(function_flow(sizes, "from zenml import pipeline, step"))
    (work / "zrun.py").write_text(ZENML_RUN)
    command([str(Path(sys.executable).parent / "zenml"), "init"], cwd=work, env=env)
    sys.path.insert(0, str(work))
    import zenml
    from zenml.client import Client

    flow = importlib.import_module("zflow")
    counter = iter(range(1, 1_000_000))

    def pipe(count: int, cache: bool = True) -> Any:
        found = getattr(flow, f"linear_{count}")
        return found if cache else found.with_options(enable_cache=False)

    def statuses(run: Any) -> list[str]:
        steps = Client().get_pipeline_run(run.id).steps
        return sorted({str(getattr(s.status, "value", s.status)) for s in steps.values()})

    def in_process() -> dict[str, Any]:
        pipe(2, cache=False)(n=0)  # warm-up: database, default stack, imports
        samples: dict[bool, dict[int, list[float]]] = {c: {k: [] for k in sizes.steps}
                                                       for c in (True, False)}
        for _ in range(sizes.repeats):
            for count in sizes.steps:
                for cache in (True, False):  # on: new params, so every step misses
                    start = time.perf_counter()
                    pipe(count, cache=cache)(n=next(counter))
                    samples[cache][count].append(time.perf_counter() - start)
        return {**per_length(samples[True]), "no_cache": per_length(samples[False])}

    def cached() -> dict[str, Any]:
        pipe(RESUME_STEPS)(n=-1)
        samples, run = [], None
        for _ in range(sizes.cached_repeats):
            start = time.perf_counter()
            run = pipe(RESUME_STEPS)(n=-1)
            samples.append(time.perf_counter() - start)
        return {**summary(samples), "statuses": statuses(run)}

    def resumed() -> dict[str, Any]:
        """ZenML's resume analogues: ``replay(skip_successful_steps=True)`` of the failed
        run, and running it again with the step cache on (steps 1-8 cached)."""
        replays, reruns, replayed, rerun = [], [], None, None
        for _ in range(sizes.resume_repeats):
            n = next(counter)
            with FailFlag(work):
                try:
                    pipe(RESUME_STEPS)(n=n)
                    raise RuntimeError(f"step {FAIL_STEP} did not fail")
                except RuntimeError as exc:  # "Pipeline run has failed due to … step09"
                    if f"step{FAIL_STEP:02d}" not in str(exc):
                        raise
            failed = Client().list_pipeline_runs(sort_by="desc:created", size=1).items[0]
            start = time.perf_counter()
            replayed = pipe(RESUME_STEPS).replay(pipeline_run=failed.id,
                                                 skip_successful_steps=True)
            replays.append(time.perf_counter() - start)
            with FailFlag(work):
                try:
                    pipe(RESUME_STEPS)(n=n + 100_000)
                except RuntimeError as exc:
                    if f"step{FAIL_STEP:02d}" not in str(exc):
                        raise
            start = time.perf_counter()
            rerun = pipe(RESUME_STEPS)(n=n + 100_000)
            reruns.append(time.perf_counter() - start)
        return {**summary(replays), "statuses": statuses(replayed),
                "cached_rerun": {**summary(reruns), "statuses": statuses(rerun)}}

    def fresh_process() -> dict[str, Any]:  # the store and stack exist already
        argv = [sys.executable, "zrun.py", str(RESUME_STEPS)]
        return summary([command([*argv, str(next(counter))], cwd=work, env=env)[0]
                        for _ in range(sizes.fresh_repeats)])

    sections.run("in_process", in_process)
    sections.run("cached", cached)
    sections.run("resume", resumed)
    sections.run("fresh", fresh_process)
    return finish_side("zenml", zenml.__version__, sections)


SIDES: dict[str, Callable[[Sizes, Path], dict[str, Any]]] = {
    "loopml": loopml_side, "metaflow": metaflow_side, "zenml": zenml_side, "ray": ray_side}


def run_one_side(name: str, sizes: Sizes, parent: str | None) -> dict[str, Any]:
    log(f"{name}: measuring…")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix=f"bench-pipelines-{name}-", dir=parent) as tmp:
        cwd = os.getcwd()
        try:
            return {**SIDES[name](sizes, Path(tmp)), "load_before": load}
        finally:
            os.chdir(cwd)


# --- profile ---------------------------------------------------------------------------------

def profile(sizes: Sizes, parent: str | None, runs: int = 30) -> str:
    """Where loopml's in-process 10-step run (cache off) spends: first the wall-clock split
    between the driver and the steps' own task (``execute_step``, on the executor's thread),
    then cProfile of both (the driver's thread and the step threads profiled separately)."""
    import cProfile
    import io
    import pstats

    import loopml
    from loopml.pipelines import runner as runner_module

    original = getattr(runner_module, "execute_step")  # noqa: B009 - swapped for a wrapper
    worker = cProfile.Profile()
    state = {"seconds": 0.0, "profiled": False}

    def wrapped(task: Any) -> Any:  # steps of a linear pipeline run one at a time
        start = time.perf_counter()
        if state["profiled"]:
            worker.enable()
        try:
            return original(task)
        finally:
            if state["profiled"]:
                worker.disable()
            state["seconds"] += time.perf_counter() - start

    driver = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="bench-pipelines-profile-", dir=parent) as tmp:
        work = Path(tmp)
        (work / "lflow.py").write_text(function_flow(sizes, "from loopml import pipeline, step"))
        sys.path.insert(0, tmp)
        pipe = importlib.import_module("lflow").linear_10
        client = loopml.Client(loopml.load_settings(home=work / ".loopml", progress=False))
        setattr(runner_module, "execute_step", wrapped)  # noqa: B010
        try:
            pipe.run(n=0, client=client, cache=False, progress=False)
            state["seconds"] = 0.0
            start = time.perf_counter()
            for n in range(1, runs + 1):
                pipe.run(n=n, client=client, cache=False, progress=False)
            wall = (time.perf_counter() - start) / runs
            in_steps = float(state["seconds"]) / runs
            state["profiled"] = True
            driver.enable()
            for n in range(runs + 1, 2 * runs + 1):
                pipe.run(n=n, client=client, cache=False, progress=False)
            driver.disable()
        finally:
            setattr(runner_module, "execute_step", original)  # noqa: B010
            client.close()
    out = io.StringIO()
    print(f"{runs} in-process runs of the 10-step pipeline, cache off, no profiler: "
          f"{format_seconds(wall)} per run, of which {format_seconds(in_steps / 10)} per step "
          f"inside execute_step (the step's task) and {format_seconds((wall - in_steps) / 10)} "
          "per step in the driver (records, cache key, hand-off between threads).\n"
          f"Below: cProfile of {runs} more runs (times are totals; divide by {runs * 10} "
          "for per step; cProfile inflates them several times).", file=out)
    for title, profiler in (("DRIVER (main thread)", driver), ("STEPS (execute_step)", worker)):
        print(f"\n===== {title} =====", file=out)
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


# --- the parent: run the sides, merge, print -------------------------------------------------

QUIET_WAIT_S = 30.0
#: ``ray.init`` was seen hanging for minutes in CoreWorker start-up on the loaded 2-core machine.
RAY_TIMEOUT_S = 240.0


def run_side_in_group(python: str, script: Path, args: Sequence[str], *,
                      timeout: float) -> dict[str, Any]:
    """Like ``_common.run_side``, but in a process group of its own that is stopped afterwards:
    Ray's gcs_server, raylet and workers are its children, and a timed-out or crashed side
    must not leave them running."""
    process = subprocess.Popen([python, str(script), *args], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, error = "", f"timed out after {timeout:.0f} s; its processes were stopped"
    else:
        error = "" if process.returncode == 0 else \
            f"exited with status {process.returncode} (see its output above)"
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(process.pid, sig)  # the group's id is the side's pid (new session)
        except ProcessLookupError:
            break
        time.sleep(grace)
    process.wait()
    lines = out.strip().splitlines()
    if error or not lines:
        return {"error": error or "printed nothing"}
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": f"printed no JSON result; last line: {lines[-1][:200]!r}"}
    return result


def wait_for_quiet(limit_s: float) -> None:
    """Wait up to ``limit_s`` for the 1-minute load average to drop below the CPU count, so a
    side does not start in the wake of the previous one (Ray's and ZenML's processes linger)."""
    cpus = os.cpu_count() or 1
    deadline = time.monotonic() + limit_s
    if os.getloadavg()[0] >= cpus and limit_s > 0:
        log(f"load average {os.getloadavg()[0]:.1f} on {cpus} CPUs: waiting up to "
            f"{limit_s:.0f} s for it to drop…")
    while os.getloadavg()[0] >= cpus and time.monotonic() < deadline:
        time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2- and 10-step pipelines, fewer repeats (2.5-4 minutes)")
    parser.add_argument("--json", action="store_true", help="print the merged figures as JSON")
    parser.add_argument("--no-anchors", action="store_true",
                        help="measure loopml only (no Metaflow or ZenML venv needed)")
    parser.add_argument("--profile", action="store_true",
                        help="profile loopml's in-process 10-step run and print the top costs")
    parser.add_argument("--dir", default=None,
                        help="parent directory of the temporary stores (default: system temp)")
    parser.add_argument("--side", choices=sorted(SIDES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL

    if args.profile:
        print(profile(sizes, args.dir))
        return 0
    if args.side:  # a child: measure one side, print one JSON line
        print(json.dumps(run_one_side(args.side, sizes, args.dir)))
        return 0

    forwarded = [*(["--quick"] if args.quick else []), *(["--dir", args.dir] if args.dir else [])]
    script = Path(__file__).resolve()
    report: dict[str, Any] = {"sizes": asdict(sizes), "mode": "quick" if args.quick else "full",
                              "load_start": list(os.getloadavg())}
    quiet = 0.0 if args.quick else QUIET_WAIT_S
    wait_for_quiet(quiet)
    report["loopml"] = {"side": "loopml",
                        **run_side(sys.executable, script, ["--side", "loopml", *forwarded])}
    for name, (_title, venv, requirements) in ANCHORS.items():
        if args.no_anchors:
            report[name] = {"side": name, "skipped": True, "error": "not measured (--no-anchors)"}
            continue
        try:
            python = venv_python(venv, requirements)
        except BenchSetupError as exc:
            report[name] = {"side": name, "error": f"could not prepare bench/{venv}: {exc}"}
            continue
        wait_for_quiet(quiet)
        report[name] = {"side": name, **run_side(python, script, ["--side", name, *forwarded])}
    wait_for_quiet(quiet)
    report["hpo"] = hpo_figures(args.quick, args.dir)
    wait_for_quiet(quiet)
    ray = run_side_in_group(sys.executable, script, ["--side", "ray", *forwarded],
                            timeout=RAY_TIMEOUT_S)
    report["ray"] = {key: ray.get(key) for key in ("load_before", "load_after", "error")}
    if "results" in report["loopml"]:
        report["loopml"]["results"]["ray"] = results_at(ray, "ray") or {
            "skipped": ray.get("error") or "; ".join(ray.get("errors", {}).values())}
    report["load_end"] = list(os.getloadavg())
    rows, notes = table_rows(report)
    report["table"] = [dict(zip(HEADERS, row, strict=True)) for row in rows]
    report["notes"] = notes
    print(json.dumps(report, indent=2) if args.json else render(report, rows, notes))
    return 0


HEADERS = ("figure", "loopml", "Metaflow", "ZenML", "anchor/loopml", "target", "met")


def table_rows(report: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    lm, mf, zm = report["loopml"], report["metaflow"], report["zenml"]
    rows: list[list[str]] = []
    footnotes = Footnotes()
    notes, mark = footnotes.notes, footnotes.mark

    def cell(side: dict[str, Any], path: tuple[str, ...] | None, fixed: str | None = None) -> str:
        if fixed is not None:
            return fixed
        if "error" in side:
            return "—" if side.get("skipped") else "error"
        assert path is not None
        if path[0] in side.get("errors", {}):
            return "error " + mark(f"{side['side']} {path[0]}: {side['errors'][path[0]]}")
        value = results_at(side, *path)
        return "—" if value is None else signed_seconds(value)

    def row(label: str, path: tuple[str, ...] | None, *, target: float | None = None,
            lm_value: float | None = None, metaflow: str | tuple[str, ...] | None = None,
            zenml: str | tuple[str, ...] | None = None) -> None:
        lv = lm_value if lm_value is not None else (results_at(lm, *path) if path else None)
        cells, ratios = [], []
        for side, spec in ((mf, metaflow), (zm, zenml)):
            anchor_path = spec if isinstance(spec, tuple) else (path if spec is None else None)
            cells.append(cell(side, anchor_path, spec if isinstance(spec, str) else None))
            value = results_at(side, *anchor_path) if anchor_path else None
            if lv and value and lv > 0 and value > 0:
                times = value / lv
                ratios.append(f"{times:,.0f}x" if times >= 100 else f"{times:.3g}x")
            else:
                ratios.append("—")
        loopml_cell = signed_seconds(lv) if lm_value is not None else cell(lm, path)
        met = "" if target is None or lv is None else ("yes" if lv <= target else "NO")
        rows.append([label, loopml_cell, *cells,
                     " / ".join(ratios) if any(r != "—" for r in ratios) else "",
                     f"≤ {format_seconds(target)}" if target is not None else "", met])

    steps = report["sizes"]["steps"]
    lengths = "/".join(map(str, steps))
    row(f"(a) {RESUME_STEPS}-step run, fresh process (CLI)", ("fresh", "run", "seconds"),
        target=0.5, metaflow=("cli", "median_s", str(RESUME_STEPS)), zenml=("fresh", "seconds"))
    row(f"(b) extra per step (slope, {lengths} steps, minimums)", ("in_process", "per_step_s"),
        target=0.005, metaflow=("cli", "per_step_s"))
    row("    fixed per run (intercept)", ("in_process", "fixed_s"), target=0.020,
        metaflow=("cli", "fixed_s"))
    row(f"    {RESUME_STEPS}-step run in-process (median)",
        ("in_process", "median_s", str(RESUME_STEPS)), metaflow="n/a")
    row("    extra per step, cache off", ("in_process", "no_cache", "per_step_s"),
        target=0.005, metaflow=("cli", "per_step_s"))
    row("    fixed per run, cache off", ("in_process", "no_cache", "fixed_s"), target=0.020,
        metaflow=("cli", "fixed_s"))
    row(f"(c) fully cached re-run of {RESUME_STEPS} steps, in-process", ("cached", "seconds"),
        target=0.020, metaflow="n/a")
    lm_step, mf_step, zm_step = (results_at(s, *p, "per_step_s") for s, p in
                                 ((lm, ("in_process",)), (mf, ("cli",)), (zm, ("in_process",))))
    rerun = RESUME_STEPS - FAIL_STEP + 1
    row(f"(d) resume after step {FAIL_STEP} failed, in-process", ("resume", "seconds"),
        metaflow="n/a")
    overhead = _minus(results_at(lm, "resume", "seconds"), lm_step, rerun)
    for side, section, step_cost in ((mf, "resume", mf_step), (zm, "resume", zm_step)):
        if "results" in side and section in side["results"]:
            value = _minus(results_at(side, section, "seconds"), step_cost, rerun)
            side["results"][section]["overhead_s"] = value
    row(f"    less {rerun} steps' cost (b) = resume overhead", None, target=0.100,
        lm_value=overhead, metaflow=("resume", "overhead_s"), zenml=("resume", "overhead_s"))
    row("    resume from a fresh process (CLI)", ("fresh", "resume", "seconds"),
        metaflow=("resume", "seconds"), zenml="n/a")
    row(f"(e) import (fresh process, median of {report['sizes']['import_repeats']})",
        ("import", "seconds"), target=0.2)
    _hpo_rows(report.get("hpo") or {}, rows, mark)
    ray = results_at(lm, "ray") or {}
    if "skipped" in ray:
        rows.append(["(g) Ray: loopml overhead per task", "skipped " + mark(ray["skipped"]),
                     "", "", "", "≤ 1 ms", ""])
    else:
        tasks = f"{ray['tasks']:,}" if ray else "1,000"
        row(f"(g) Ray, {tasks} no-op tasks: raw Ray per task", ("ray", "raw_per_task_s"),
            metaflow="", zenml="")
        row("    loopml RayExecutor per task", ("ray", "loopml_per_task_s"), metaflow="",
            zenml="")
        row("    loopml overhead per task", ("ray", "overhead_s"), target=0.001, metaflow="",
            zenml="")

    ray = report.get("ray") or {}
    if ray.get("load_before") is not None:
        notes.append(f"ray side: load average {ray['load_before']:.2f} before, "
                     f"{ray.get('load_after') or 0:.2f} after.")
    notes += _side_notes(report)
    return rows, notes


def signed_seconds(seconds: float | None) -> str:
    if seconds is not None and seconds < 0:
        return "-" + format_seconds(-seconds)
    return format_seconds(seconds)


def _minus(total: float | None, per_step: float | None, steps: int) -> float | None:
    return None if total is None or per_step is None else total - steps * per_step


HPO_TUNE = "loopml.tune (SQLite)"
HPO_TARGET_S = 12.0  # for 1,000 trials


def _hpo_rows(hpo: dict[str, Any], rows: list[list[str]], mark: Callable[[str], str]) -> None:
    """One row per variant of bench/hpo.py; raw Optuna variants are references, not loopml."""
    results = hpo.get("results") or {}
    if not results:
        reason = hpo.get("skipped") or "; ".join(hpo.get("errors", {}).values()) or "no figures"
        rows.append(["(f) HPO: 1,000 TPE trials", "see bench/hpo.py " + mark(reason), "", "",
                     "", f"≤ {HPO_TARGET_S:g} s", ""])
        return
    trials = hpo.get("trials", 1_000)
    floor = (results.get("optuna in memory") or {}).get("seconds")
    rows.append([f"(f) {trials:,} TPE trials of a trivial objective (bench/hpo.py)", "", "", "",
                 "", "", ""])
    for name, figures in results.items():
        label = "    " + (f"reference: raw {name.replace('optuna', 'Optuna')}"
                          if name.startswith("optuna") else name)
        value = format_seconds(figures.get("seconds"))
        if figures.get("extrapolated"):
            value += " " + mark(f"hpo {name}: measured on {figures.get('measured')} trials, "
                                f"extrapolated to {figures.get('trials'):,} at that rate")
        ratio = (f"{figures['seconds'] / floor:.3g}x in-memory Optuna"
                 if floor and figures.get("seconds") and name != "optuna in memory" else "")
        target = met = ""
        if name == HPO_TUNE and figures.get("seconds"):
            limit = HPO_TARGET_S * trials / 1_000
            target = f"≤ {format_seconds(limit)}"
            met = "yes" if figures["seconds"] <= limit else "NO"
        rows.append([label, value, "", "", ratio, target, met])
    for name, error in (hpo.get("errors") or {}).items():
        rows.append([f"    {name}", "error " + mark(f"hpo {name}: {error}"), "", "", "", "", ""])


def _side_notes(report: dict[str, Any]) -> list[str]:
    notes = []
    for name in ("loopml", "metaflow", "zenml"):
        side = report[name]
        if "error" in side:
            notes.append(f"{name}: {side['error']}")
            continue
        notes.append(f"{name} {side.get('version', '?')}: Python {side.get('python', '?')}, "
                     f"load average {side.get('load_before', 0):.2f} before, "
                     f"{side.get('load_after', 0):.2f} after its measurements "
                     f"({side.get('cpus', '?')} CPUs).")
    lm, zm = report["loopml"], report["zenml"]
    for side in (lm, zm):
        found = results_at(side, "cached", "statuses")
        if found and found != ["cached"]:
            notes.append(f"WARNING: {side['side']}'s re-run was not fully cached: {found}")
    resumed = results_at(lm, "resume", "statuses")
    if resumed:
        notes.append(f"loopml resume step statuses: {', '.join(resumed)}.")
    cpus = lm.get("cpus") or os.cpu_count() or 1
    loads = [report["load_start"][0], *(report[n].get("load_before") or 0
                                        for n in ("loopml", *ANCHORS))]
    if max(loads) > cpus:
        notes.append(f"The load average was above the CPU count ({cpus}): figures are noisy; "
                     "the JSON has every sample.")
    medians = ", ".join(
        f"{side['side']} "
        f"{format_seconds(results_at(side, section, 'per_step_median_s'))} per step, "
        f"{signed_seconds(results_at(side, section, 'fixed_median_s'))} fixed"
        for side, section in ((lm, "in_process"), (report["metaflow"], "cli"), (zm, "in_process"))
        if results_at(side, section, "per_step_median_s") is not None)
    if medians:
        notes.append(f"(b) fitted through the medians instead of the minimums: {medians}.")
    notes.append(f"Pipelines: step 1 makes a 1,024-byte dict, every later step returns its "
                 f"input; every run gets a new parameter, so with the cache on (the default) "
                 f"every step misses; 'cache off' is loopml cache=False / ZenML "
                 f"enable_cache=False. "
                 f"(a) loopml: `loopml run FILE:linear_{RESUME_STEPS} --no-cache`; Metaflow: "
                 "`python flow.py run` (a subprocess per step, so its (b) is the slope of "
                 "fresh-process runs and its intercept includes interpreter start-up); "
                 "ZenML: `python zrun.py` running the pipeline once.")
    notes.append(f"(d) step {FAIL_STEP} of {RESUME_STEPS} raises on the first run; then loopml "
                 "`pipelines.resume(run_id)` / `loopml pipelines resume`, Metaflow `python "
                 "flow.py resume`, ZenML `pipeline.replay(run, skip_successful_steps=True)`; "
                 "the overhead row subtracts each tool's own per-step cost (b) for the "
                 f"{RESUME_STEPS - FAIL_STEP + 1} re-run steps.")
    rerun = results_at(zm, "resume", "cached_rerun", "seconds")
    if rerun is not None:
        notes.append(f"ZenML's other resume analogue, running the failed pipeline again with "
                     f"the cache on (steps 1-{FAIL_STEP - 1} cached): {format_seconds(rerun)}.")
    code = results_at(lm, "fresh", "code_version") or {}
    if code.get("repo"):
        notes.append(f"The CLI runs of (a) were tagged with the git state of {code['repo']}, the "
                     "checkout holding the `loopml` script (the directory of __main__), not the "
                     f"pipeline file's; reading it (rev-parse, diff, ls-files) took "
                     f"{format_seconds(code['seconds'])} of each run here.")
    help_s = results_at(lm, "fresh", "help", "seconds")
    if help_s is not None:
        notes.append(f"`loopml --help` from a fresh process: {format_seconds(help_s)} "
                     "(interpreter and CLI start-up inside (a)).")
    ray = results_at(lm, "ray") or {}
    if "overhead_s" in ray:
        notes.append(f"(g) Ray {ray['ray']} started locally by loopml's executor in "
                     f"{format_seconds(ray['start_s'])}, {ray['cpus']} CPUs; raw Ray runs a "
                     "@ray.remote function; loopml ships the function with each task through "
                     "one trampoline and wraps Ray's future; overhead = median over interleaved "
                     "rounds of the paired difference.")
    return notes


def render(report: dict[str, Any], rows: list[list[str]], notes: list[str]) -> str:
    lm = report["loopml"]
    versions = ", ".join(f"{ANCHORS[n][0] if n in ANCHORS else n} "
                         f"{report[n].get('version', '—')}" for n in ("loopml", *ANCHORS))
    title = (f"Pipelines ({report['mode']}): {versions}; Python {lm.get('python', '?')}, "
             f"{lm.get('cpus', '?')} CPUs; times are medians of repeats, (b) is fitted through "
             "minimums; anchor/loopml = how many times longer the anchor takes "
             "(Metaflow / ZenML)")
    table = format_table(HEADERS, rows, align="<>>>><<")
    return "\n".join([title, "", table, "", *notes])


if __name__ == "__main__":
    sys.exit(main())
