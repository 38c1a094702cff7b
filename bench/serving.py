"""Model serving: loopml, MLflow and BentoML side by side, each serving the same model over HTTP.

Run with the loopml dev interpreter from the repository root::

    .venv/bin/python bench/serving.py            # full: 15 s runs, 200 swaps; about 7 min
    .venv/bin/python bench/serving.py --quick    # 4 s runs, 40 swaps; about 2.5 min
    .venv/bin/python bench/serving.py --json     # the figures as JSON

One scikit-learn LogisticRegression on 20 features, fitted on the same seeded data on every
side, is served by one worker of each server on 127.0.0.1:

* loopml: ``loopml serve bench@prod`` (this interpreter);
* MLflow: ``mlflow models serve --env-manager local -w 1`` in ``bench/.venv-mlflow``
  (``requirements-mlflow.txt``), the model saved with ``mlflow.sklearn.save_model`` and an
  input example (so MLflow checks the schema, as loopml does);
* BentoML: ``bentoml serve`` of a ``@bentoml.service(workers=1)`` in ``bench/.venv-bentoml``
  (``requirements-bentoml.txt``), the model saved with ``bentoml.sklearn.save_model``.

Every side gets the same single-row body ``{"dataframe_records": [{"f0": ..., ...}]}`` from
``wrk`` (one thread, 16 keep-alive connections, 15 s after a 2 s warm-up); without ``wrk`` on
the PATH (``apt-get install wrk``) a Python asyncio generator of the same shape runs instead.
Figures: requests/s, p50, p99, failed requests, CPU time per request (utime + stime of the
server's process tree from ``/proc``, before and after the run), peak RSS (VmHWM summed over
the tree) and cold start (process start to the readiness route answering 200). Then loopml
alone: 200 alias moves (hot swaps) under load, a shadow version's cost, an automatic rollback
when a canary starts failing, the payload log's cost (on vs off, and the per-request
accounting measured in-process), and the raw in-process ``predict``.

A benchmark, not a test: it prints figures and targets and exits 0 whatever they are
(non-zero only for bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
    run_side,
    venv_python,
)

MLFLOW_VENV, BENTOML_VENV = ".venv-mlflow", ".venv-bentoml"
MLFLOW_REQUIREMENTS = BENCH_DIR / "requirements-mlflow.txt"
BENTOML_REQUIREMENTS = BENCH_DIR / "requirements-bentoml.txt"
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
              "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
BENTOML_ENV = {"BENTOML_DO_NOT_TRACK": "True", "DO_NOT_TRACK": "true"}

FEATURES = [f"f{i}" for i in range(20)]
TRAIN_ROWS, SEED = 500, 0
MODEL, ALIAS = "bench", "prod"
TARGETS = {"vs_mlflow": 15.0, "vs_bentoml": 8.0, "cpu_per_request_s": 350e-6,
           "cold_start_s": 3.0, "swap_p99_ratio": 1.5, "shadow_cost": 0.10,
           "rollback_s": 1.0, "log_overhead": 0.05}


@dataclass(frozen=True)
class Sizes:
    duration_s: float = 15.0      # each measured load run
    warmup_s: float = 2.0         # load before each measured run (not counted)
    connections: int = 16
    swaps: int = 200              # alias moves under load
    swap_extra_s: float = 10.0    # swaps and their baseline each last duration_s + this
    swap_rounds: int = 3          # ... split in this many (without, with) pairs
    shadow_rounds: int = 3        # (without, with) shadow, interleaved, duration_s*2/3 each
    log_rounds: int = 3           # (on, off) payload log, likewise
    account_rounds: int = 3       # (with, without) payload log, in-process
    rollback_run_s: float = 8.0   # load while the canary breaks (after break_after_s)
    break_after_s: float = 3.0
    predict_calls: int = 3000     # in-process predict timings
    account_calls: int = 20000    # in-process metrics + payload log accounting


FULL = Sizes()
QUICK = Sizes(duration_s=4.0, warmup_s=1.0, swaps=40, swap_extra_s=2.0, swap_rounds=2,
              shadow_rounds=2, log_rounds=2, account_rounds=2,
              rollback_run_s=5.0, break_after_s=2.0, predict_calls=1000,
              account_calls=5000)


# --- data and models ------------------------------------------------------------------------


def training_data(work: Path) -> tuple[Any, Any]:
    """The features and labels every side fits on (written once by the parent)."""
    import numpy as np

    return np.load(work / "X.npy"), np.load(work / "y.npy")


def write_training_data(work: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(SEED)
    features = rng.normal(size=(TRAIN_ROWS, len(FEATURES)))
    weights = rng.normal(size=len(FEATURES))
    labels = (features @ weights + rng.normal(scale=0.5, size=TRAIN_ROWS) > 0).astype(int)
    np.save(work / "X.npy", features.round(6))
    np.save(work / "y.npy", labels)


def records(rows: Any) -> dict[str, Any]:
    """The request body of ``rows`` (2-D): ``{"dataframe_records": [{"f0": ..}, ..]}``."""
    return {"dataframe_records": [dict(zip(FEATURES, map(float, row), strict=True))
                                  for row in rows]}


def predictions(answer: Any) -> list[Any]:
    """Predictions out of any side's answer (loopml/MLflow wrap them, BentoML does not)."""
    return list(answer["predictions"] if isinstance(answer, dict) else answer)


#: A canary that predicts like LogisticRegression until the file named by $BENCH_BREAK_FLAG
#: exists, then raises RuntimeError on every call (a 5xx in the server).
BREAKABLE_MODULE = '''\
import os

from sklearn.linear_model import LogisticRegression


class BreakableLogisticRegression(LogisticRegression):
    def _check_broken(self):
        flag = os.environ.get("BENCH_BREAK_FLAG")
        if flag and os.path.exists(flag):
            raise RuntimeError("this canary was broken on purpose by bench/serving.py")

    def predict(self, X):
        self._check_broken()
        return super().predict(X)

    def predict_proba(self, X):
        self._check_broken()
        return super().predict_proba(X)
'''

BENTOML_SERVICE = '''\
import bentoml
import numpy as np

NAMES = {names!r}


@bentoml.service(workers=1)
class BenchLR:
    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model("bench_lr:latest")

    @bentoml.api
    def predict(self, dataframe_records: list[dict[str, float]]) -> list[int]:
        rows = np.array([[record[name] for name in NAMES] for record in dataframe_records])
        return self.model.predict(rows).tolist()
'''


def prepare_loopml(work: Path) -> dict[str, Any]:
    """The loopml store: versions 1 (C=1), 2 (C=0.5, for swaps and the shadow) and 3 (the
    breakable canary, pickled), alias prod -> 1, and three deployments."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import loopml
    from loopml.deployments.api import Deployments
    from loopml.deployments.policy import RollbackRule
    from loopml.models import save_model

    features, labels = training_data(work)
    frame = pd.DataFrame(features, columns=FEATURES)
    (work / "bench_breakable.py").write_text(BREAKABLE_MODULE)
    sys.path.insert(0, str(work))
    from bench_breakable import BreakableLogisticRegression  # type: ignore[import-not-found]

    client = loopml.Client(loopml_settings(work))
    try:
        for version, model in enumerate([LogisticRegression(), LogisticRegression(C=0.5)], 1):
            model.fit(frame, labels)
            save_model(model, work / f"package-{version}", input_example=frame.head(3))
            assert client.register_model(work / f"package-{version}", MODEL).version == version
        canary = BreakableLogisticRegression().fit(frame, labels)
        save_model(canary, work / "package-3", input_example=frame.head(3),
                   options={"serializer": "pickle"}, trusted=True)
        assert client.register_model(work / "package-3", MODEL).version == 3
        client.set_model_alias(MODEL, ALIAS, 1)
        deployments = Deployments(client.meta)
        deployments.create("plain", model=f"{MODEL}/1")
        deployments.create("shadowed", model=f"{MODEL}/1", shadow=f"{MODEL}/2")
        deployments.create("guarded", model=f"{MODEL}/1", canary=f"{MODEL}/3=10%",
                           rollback=RollbackRule(max_error_rate=0.05, window_s=2.0,
                                                 min_requests=20))
    finally:
        client.close()
    return {"versions": 3}


def loopml_settings(work: Path) -> Any:
    import loopml

    home = work / "loopml-home"
    return loopml.load_settings(home=home, progress=False, environ={},
                                config_file=home / "none.toml")


def prepare_mlflow(work: Path) -> dict[str, Any]:
    """``--side mlflow-prepare``: the model saved by ``mlflow.sklearn.save_model``."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    features, labels = training_data(work)
    frame = pd.DataFrame(features, columns=FEATURES)
    model = LogisticRegression().fit(frame, labels)
    shutil.rmtree(work / "mlflow-model", ignore_errors=True)
    mlflow.sklearn.save_model(model, str(work / "mlflow-model"), input_example=frame.head(3))
    return {"version": mlflow.__version__}


def prepare_bentoml(work: Path) -> dict[str, Any]:
    """``--side bentoml-prepare``: the model in the BentoML store ($BENTOML_HOME)."""
    import bentoml
    from sklearn.linear_model import LogisticRegression

    features, labels = training_data(work)
    bentoml.sklearn.save_model("bench_lr", LogisticRegression().fit(features, labels))
    (work / "bento").mkdir(exist_ok=True)
    (work / "bento" / "service.py").write_text(BENTOML_SERVICE.format(names=FEATURES))
    return {"version": bentoml.__version__}


# --- processes: CPU time and memory from /proc ---------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (from each process's parent id in /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def cpu_seconds(root: int) -> float:
    """utime + stime of the tree of ``root`` (all threads), in seconds."""
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLOCK_TICKS


def peak_rss_bytes(root: int) -> int:
    """The peak resident set (VmHWM) of each process of the tree, summed."""
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


#: (server name, seconds from start to ready) of every server started
COLD_STARTS: list[tuple[str, float]] = []


@dataclass
class Server:
    """One server process (its own session, so that stopping it stops its children)."""

    name: str
    command: list[str]
    ready_path: str
    predict_path: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    cold_start_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180.0) -> float:
        """Start it and wait until the readiness route answers 200; the seconds that took."""
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        with self.log_path.open("ab") as out:
            started = time.perf_counter()
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, **self.env}, cwd=self.cwd,
                                            start_new_session=True)
        deadline = started + timeout_s
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.process.returncode} "
                                   f"before it was ready; its log: {self.log_path}\n"
                                   + self.log_tail())
            with contextlib.suppress(OSError):
                if http("GET", self.url + self.ready_path, timeout=2)[0] == 200:
                    self.cold_start_s = time.perf_counter() - started
                    COLD_STARTS.append((self.name, self.cold_start_s))
                    return self.cold_start_s
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready after {timeout_s:.0f} s; its log: "
                           f"{self.log_path}\n" + self.log_tail())

    def log_tail(self, lines: int = 12) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- load generation: wrk, or an asyncio generator of the same shape -----------------------


WRK_SCRIPT = '''\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; v1 = 0; v2 = 0; v3 = 0; other = 0 end
{response}
function done(summary, latency, requests)
  local bad, v1, v2, v3, other = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("bad"); v1 = v1 + t:get("v1"); v2 = v2 + t:get("v2")
    v3 = v3 + t:get("v3"); other = other + t:get("other")
  end
  local e = summary.errors
  io.write(string.format('WRKJSON {{"requests":%d,"duration_s":%f,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_s":%f,"p90_s":%f,"p99_s":%f,"max_s":%f,' ..
    '"bad":%d,"v1":%d,"v2":%d,"v3":%d,"other":%d}}\\n', summary.requests,
    summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1e6, latency:percentile(90) / 1e6,
    latency:percentile(99) / 1e6, latency.max / 1e6, bad, v1, v2, v3, other))
end
'''

#: with --check: every answer must be a 200 that names the version that answered
WRK_CHECK = '''\
function response(status, headers, body)
  local v = body:match('"version":(%d+)')
  if status ~= 200 or v == nil then bad = bad + 1
  elseif v == "1" then v1 = v1 + 1 elseif v == "2" then v2 = v2 + 1
  elseif v == "3" then v3 = v3 + 1 else other = other + 1 end
end
'''


def wrk_version() -> str | None:
    path = shutil.which("wrk")
    if path is None:
        return None
    done = subprocess.run([path, "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk (\S+)", done.stdout + done.stderr)
    return f"wrk {match.group(1)}" if match else "wrk"


def run_load(url: str, body: bytes, *, duration_s: float, connections: int, work: Path,
             check: bool = False) -> dict[str, Any]:
    """``connections`` keep-alive connections POSTing ``body`` to ``url`` for ``duration_s``."""
    if shutil.which("wrk"):
        script = work / f"wrk-{'check' if check else 'plain'}.lua"
        script.write_text(WRK_SCRIPT.format(body=body.decode(),
                                            response=WRK_CHECK if check else ""))
        seconds = max(1, round(duration_s))  # wrk takes whole seconds
        done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                               "--timeout", "10s", "-s", str(script), url],
                              capture_output=True, text=True, check=False)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
        if line is None:
            said = " ".join((done.stderr + done.stdout).split())[-300:]
            raise RuntimeError(f"wrk printed no result (status {done.returncode}): {said}")
        result: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    else:
        (work / "loadgen-body.json").write_bytes(body)
        result = run_side(sys.executable, Path(__file__).resolve(),
                          ["--side", "loadgen", "--url", url, "--body",
                           str(work / "loadgen-body.json"), "--duration", str(duration_s),
                           "--connections", str(connections), *(["--check"] if check else [])])
        if "error" in result:
            raise RuntimeError(f"the load generator failed: {result['error']}")
    if not check:  # the plain script counts no answers
        result.pop("bad", None)
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    result["rps"] = result["requests"] / result["duration_s"]
    return result


async def _connection(host: str, port: int, request: bytes, deadline: float,
                      latencies: list[float], counts: dict[str, int], check: bool) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if length is not None:
                answer = await reader.readexactly(int(length.group(1)))
            else:  # chunked
                parts = []
                while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                    parts.append((await reader.readexactly(size + 2))[:-2])
                await reader.readuntil(b"\r\n")
                answer = b"".join(parts)
            latencies.append(time.perf_counter() - started)
            counts["requests"] += 1
            if status >= 400:
                counts["status"] += 1
            if check:
                version = re.search(rb'"version":(\d+)', answer)
                key = "bad" if status != 200 or version is None else (
                    f"v{version.group(1).decode()}" if version.group(1) in (b"1", b"2", b"3")
                    else "other")
                counts[key] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            counts["read"] += 1
            if writer is not None:
                writer.close()
            reader = writer = None


async def _generate(url: str, body: bytes, duration_s: float, connections: int,
                    check: bool) -> dict[str, Any]:
    host_port = url.split("//", 1)[1].split("/", 1)
    host, port = host_port[0].split(":")
    path = "/" + host_port[1]
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    latencies: list[float] = []
    counts = dict.fromkeys(("requests", "connect", "read", "write", "status", "timeout",
                            "bad", "v1", "v2", "v3", "other"), 0)
    started = time.perf_counter()
    await asyncio.gather(*(_connection(host, int(port), request, started + duration_s,
                                       latencies, counts, check) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    return {**counts, "duration_s": elapsed, "p50_s": pct(50), "p90_s": pct(90),
            "p99_s": pct(99), "max_s": latencies[-1] if latencies else 0.0}


# --- one server under load ------------------------------------------------------------------


def measure(server: Server, body: bytes, sizes: Sizes, work: Path,
            check: bool = False) -> dict[str, Any]:
    """Warm-up, then one measured run with the server's CPU time around it."""
    url = server.url + server.predict_path
    run_load(url, body, duration_s=sizes.warmup_s, connections=sizes.connections, work=work)
    cpu_before = cpu_seconds(server.pid)
    load = run_load(url, body, duration_s=sizes.duration_s, connections=sizes.connections,
                    work=work, check=check)
    cpu = cpu_seconds(server.pid) - cpu_before
    return {**load, "cpu_s": cpu,
            "cpu_per_request_s": cpu / load["requests"] if load["requests"] else None,
            "cores": cpu / load["duration_s"], "peak_rss_bytes": peak_rss_bytes(server.pid)}


def side_run(server: Server, body: bytes, sizes: Sizes, work: Path,
             probe: tuple[bytes, list[Any]]) -> dict[str, Any]:
    """Cold start, a check that the predictions are the fitted model's, and the load run."""
    cold = server.start()
    try:
        status, answer = http("POST", server.url + server.predict_path, probe[0])
        if status != 200:
            raise RuntimeError(f"{server.name} answered {status} to the probe: {answer[:300]!r}")
        got = predictions(json.loads(answer))
        figures = measure(server, body, sizes, work)
    finally:
        server.stop()
    return {**figures, "cold_start_s": cold, "predictions_ok": got == probe[1]}


# --- the loopml-only measurements -----------------------------------------------------------


def loopml_server(work: Path, name: str, *args: str, deployment: bool = False,
                  env: dict[str, str] | None = None) -> Server:
    if deployment:
        command = [sys.executable, "-m", "loopml.cli.main", "deploy", "serve", *args,
                   "--port", "{port}"]
    else:
        command = [sys.executable, "-m", "loopml.cli.main", "serve", f"{MODEL}@{ALIAS}",
                   "--port", "{port}", *args]
    return Server(name=name, command=command, ready_path="/ready",
                  predict_path="/invocations", log_path=work / f"server-{name}.log",
                  env={"LOOPML_HOME": str(work / "loopml-home"), "LOOPML_PROGRESS": "false",
                       **(env or {})}, cwd=work)


def hot_swaps(work: Path, body: bytes, sizes: Sizes) -> dict[str, Any]:
    """Rounds of (a run without swaps, a run during which the alias moves back and forth),
    ``sizes.swaps`` moves in all; every answer must be a 200 that names a version. Each move
    waits until the server answers with the new version (``/ready`` names it). p99 is
    compared as the median over rounds of each kind, so that a burst of load from elsewhere
    on the machine hits both kinds alike."""
    import loopml

    rounds = sizes.swap_rounds
    run_s = (sizes.duration_s + sizes.swap_extra_s) / rounds
    per_round = [sizes.swaps // rounds + (i < sizes.swaps % rounds) for i in range(rounds)]
    done: dict[str, Any] = {"swaps": 0, "waits": []}
    baselines, unders = [], []
    client = loopml.Client(loopml_settings(work))
    try:
        with loopml_server(work, "swaps", "--poll-interval", "0.02") as server:
            url = server.url + server.predict_path
            run_load(url, body, duration_s=sizes.warmup_s, connections=sizes.connections,
                     work=work)
            for count in per_round:
                baselines.append(run_load(url, body, duration_s=run_s,
                                          connections=sizes.connections, work=work,
                                          check=True))
                thread = threading.Thread(target=move_alias, name="bench-swapper",
                                          args=(client, server, count, run_s, done))
                thread.start()
                unders.append(run_load(url, body, duration_s=run_s,
                                       connections=sizes.connections, work=work, check=True))
                thread.join()
    finally:
        client.set_model_alias(MODEL, ALIAS, 1)
        client.close()
    waits = done.pop("waits")
    p99_base = statistics.median(r["p99_s"] for r in baselines)
    p99_under = statistics.median(r["p99_s"] for r in unders)
    return {"rounds": rounds, "baseline": merged(baselines), "under_swaps": merged(unders),
            "baseline_rounds": baselines, "swap_rounds": unders, **done,
            "p99_baseline_s": p99_base, "p99_swaps_s": p99_under,
            "swap_wait_median_s": statistics.median(waits) if waits else None,
            "swap_wait_max_s": max(waits) if waits else None,
            "p99_ratio": p99_under / p99_base if p99_base else None}


def move_alias(client: Any, server: Server, count: int, run_s: float,
               done: dict[str, Any]) -> None:
    """Move the alias ``count`` times, evenly over ``run_s`` seconds (after the first and
    before the last half second), each time until the new version answers."""
    start = time.perf_counter()
    spacing = (run_s - 1.0) / max(count, 1)
    time.sleep(0.5)
    for index in range(count):
        target = 2 if done["swaps"] % 2 == 0 else 1
        moved = time.perf_counter()
        client.set_model_alias(MODEL, ALIAS, target)
        while time.perf_counter() - moved < 10:
            status, answer = http("GET", server.url + "/ready")
            if status == 200 and json.loads(answer).get("version") == target:
                break
            time.sleep(0.01)
        else:
            done["stuck"] = f"version {target} not served 10 s after the move"
            return
        done["waits"].append(time.perf_counter() - moved)
        done["swaps"] += 1
        pause = start + 0.5 + (index + 1) * spacing - time.perf_counter()
        if pause > 0:
            time.sleep(pause)


def merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts of several load runs added up (latencies are not: see the callers)."""
    total = {key: sum(run[key] for run in runs)
             for key in ("requests", "duration_s", "errors", "bad", "v1", "v2", "v3", "other")}
    total["rps"] = total["requests"] / total["duration_s"]
    return total


def shadow_cost(work: Path, body: bytes, sizes: Sizes) -> dict[str, Any]:
    """Deployment ``plain`` vs ``shadowed`` (the same primary, plus a shadow), in
    interleaved rounds; the median of each."""
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "shadowed": []}
    shadow_counts = ""
    round_sizes = Sizes(**{**asdict(sizes),
                           "duration_s": sizes.duration_s * 2 / sizes.shadow_rounds})
    for _ in range(sizes.shadow_rounds):
        for name in runs:
            with loopml_server(work, f"deploy-{name}", name, deployment=True) as server:
                runs[name].append(measure(server, body, round_sizes, work))
                if name == "shadowed":
                    metrics = http("GET", server.url + "/metrics")[1].decode()
                    shadow_counts = ", ".join(
                        f"{m.group(1)} {m.group(2)}" for m in re.finditer(
                            r'loopml_shadow_requests_total\{[^}]*outcome="(\w+)"[^}]*\} (\d+)',
                            metrics))

    def mean(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    result: dict[str, Any] = {"runs": runs, "shadow_requests": shadow_counts}
    for key in ("rps", "p99_s", "cpu_per_request_s"):
        result[key] = {name: mean(name, key) for name in runs}
    result["throughput_cost"] = 1 - result["rps"]["shadowed"] / result["rps"]["plain"]
    result["p99_cost"] = result["p99_s"]["shadowed"] / result["p99_s"]["plain"] - 1
    result["cpu_cost"] = (result["cpu_per_request_s"]["shadowed"]
                          / result["cpu_per_request_s"]["plain"] - 1)
    return result


def auto_rollback(work: Path, body: bytes, sizes: Sizes) -> dict[str, Any]:
    """Deployment ``guarded`` (10% to the breakable canary, rule: error rate > 5% over 2 s)
    under load; the canary breaks mid-run; how long until the server has rolled back, and
    whether any client saw a failure."""
    flag = work / "break-the-canary"
    flag.unlink(missing_ok=True)
    env = {"BENCH_BREAK_FLAG": str(flag),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(work),
                                                       os.environ.get("PYTHONPATH")]))}
    found: dict[str, Any] = {}
    with loopml_server(work, "deploy-guarded", "guarded", "--trusted", deployment=True,
                       env=env) as server:
        url = server.url + server.predict_path
        run_load(url, body, duration_s=sizes.warmup_s, connections=sizes.connections,
                 work=work)

        def breaker() -> None:
            time.sleep(sizes.break_after_s)
            flag.touch()
            broke, found["broke_at"] = time.perf_counter(), time.time()
            while time.perf_counter() - broke < sizes.rollback_run_s:
                metrics = http("GET", server.url + "/metrics")[1].decode()
                if re.search(r"^loopml_auto_rollbacks_total\{[^}]*\} [1-9]", metrics, re.M):
                    found["rollback_s"] = time.perf_counter() - broke
                    return
                time.sleep(0.005)

        thread = threading.Thread(target=breaker, name="bench-breaker")
        thread.start()
        load = run_load(url, body, duration_s=sizes.break_after_s + sizes.rollback_run_s,
                        connections=sizes.connections, work=work, check=True)
        thread.join()
        metrics = http("GET", server.url + "/metrics")[1].decode()
    fallbacks = sum(int(m) for m in re.findall(r"^loopml_fallbacks_total\{[^}]*\} (\d+)",
                                               metrics, re.M))
    event = last_event(work, "guarded")
    recorded_s = None
    if event is not None and event.kind == "auto-rollback" and "broke_at" in found:
        recorded_s = event.created_at / 1000 - found["broke_at"]  # created_at: epoch ms
    flag.unlink(missing_ok=True)
    return {"load": load, "rollback_s": found.get("rollback_s"), "recorded_s": recorded_s,
            "event": None if event is None else f"{event.kind}: {event.reason}",
            "fallbacks": fallbacks, "failed": load["errors"] + load.get("bad", 0)}


def last_event(work: Path, deployment: str) -> Any:
    import loopml
    from loopml.deployments.api import Deployments

    client = loopml.Client(loopml_settings(work))
    try:
        events = Deployments(client.meta).history(deployment)
    finally:
        client.close()
    return events[-1] if events else None


def log_cost(work: Path, body: bytes, sizes: Sizes) -> dict[str, Any]:
    """Servers with the payload log on (the default) and off (``--log-sample 0``), in
    interleaved rounds; the median CPU per request of each."""
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    round_sizes = Sizes(**{**asdict(sizes),
                           "duration_s": sizes.duration_s * 2 / sizes.log_rounds})
    for _ in range(sizes.log_rounds):
        for name, args in (("on", ()), ("off", ("--log-sample", "0"))):
            with loopml_server(work, f"log-{name}", *args) as server:
                runs[name].append(measure(server, body, round_sizes, work))
    result: dict[str, Any] = {"runs": runs}
    for key in ("cpu_per_request_s", "rps"):
        result[key] = {name: statistics.median(r[key] for r in runs[name]) for name in runs}
    result["overhead"] = (result["cpu_per_request_s"]["on"]
                          / result["cpu_per_request_s"]["off"] - 1)
    return result


def accounting_cost(work: Path, sizes: Sizes) -> dict[str, Any]:
    """CPU of the per-request accounting in-process: the metrics (counters, latency
    histogram) and the payload log (queue, then Parquet segments written by its thread,
    flushed at the end), with the log on and off; all threads' CPU (``process_time``)."""
    from loopml.serving.options import ServeOptions
    from loopml.serving.runtime import Runtime

    settings = loopml_settings(work)
    raw = json.dumps(records(training_data(work)[0][:1])).encode()
    answer = b'{"predictions":[1],"model":"bench","version":1,"request_id":"0123456789ab"}'

    async def run(sample: float) -> float:
        runtime = Runtime(ServeOptions(model=f"{MODEL}/1", log_sample=sample,
                                       log_flush_s=1.0), settings)
        await runtime.start()
        while runtime.router.primary is None:
            await asyncio.sleep(0.01)
        served = runtime.router.primary

        async def account(calls: int) -> None:
            for index in range(calls):
                runtime._account("/invocations", "predict", served, 200, 0.0004,
                                 f"{index:032x}", 1, raw, answer, None, "primary")
                if index % 500 == 0:
                    await asyncio.sleep(0)  # let the loop run, as between requests

        await account(1000)  # warm: the first segment pays pyarrow's one-time set-up
        await asyncio.sleep(1.5)
        started = time.process_time()
        await account(sizes.account_calls)
        await runtime.stop()  # writes what the payload log holds
        return (time.process_time() - started) / sizes.account_calls

    samples: dict[str, list[float]] = {"with_log_s": [], "metrics_only_s": []}
    for _ in range(sizes.account_rounds):
        samples["with_log_s"].append(asyncio.run(run(1.0)))
        samples["metrics_only_s"].append(asyncio.run(run(0.0)))
    return {**{k: statistics.median(v) for k, v in samples.items()}, "samples": samples}


def shadow_inprocess(work: Path, sizes: Sizes) -> dict[str, Any]:
    """CPU a shadow adds per mirrored request, in-process: the same paced stream of
    requests (16 every millisecond) with and without mirroring each to version 2 (queue,
    batched predictions on the shadow's thread, its payload rows written at the end); all
    threads' CPU, the difference over the requests."""
    from loopml.serving.model import load_version
    from loopml.serving.options import ServeOptions
    from loopml.serving.runtime import Runtime
    from loopml.serving.shadow import ShadowMirror

    settings = loopml_settings(work)
    body = records(training_data(work)[0][:1])
    shadow = load_version(work / "package-2", name=MODEL, version=2, tree="bench-shadow")

    async def run(mirror: bool) -> float:
        runtime = Runtime(ServeOptions(model=f"{MODEL}/1", log_flush_s=1.0), settings)
        await runtime.start()
        while runtime.router.primary is None:
            await asyncio.sleep(0.01)
        primary = runtime.router.primary
        checked = primary.validator.check(body)
        reused = checked if ShadowMirror.reusable(primary, shadow) else None

        async def stream(count: int) -> None:
            for index in range(count):
                if mirror:
                    runtime.shadow.submit(shadow, body, f"{index:032x}", "predict", reused)
                if index % 16 == 15:
                    await asyncio.sleep(0.001)

        await stream(2000)  # warm
        await asyncio.sleep(1.5)
        started = time.process_time()
        await stream(sizes.account_calls)
        await runtime.stop()
        return (time.process_time() - started) / sizes.account_calls

    costs = []
    for _ in range(sizes.account_rounds):
        costs.append(asyncio.run(run(True)) - asyncio.run(run(False)))
    return {"per_request_s": statistics.median(costs), "samples": costs}


def predict_cost(work: Path, sizes: Sizes) -> dict[str, Any]:
    """The raw model call on one row, and loopml's whole in-process request path."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from loopml.serving.http import encode_json, parse_json
    from loopml.serving.model import load_version

    features, labels = training_data(work)
    frame = pd.DataFrame(features, columns=FEATURES)
    row = np.ascontiguousarray(features[:1])
    bare = LogisticRegression().fit(features, labels)
    named = LogisticRegression().fit(frame, labels)
    one_frame = frame.head(1)
    body = json.dumps(records(features[:1])).encode()
    served = load_version(work / "package-1", name=MODEL, version=1, tree="bench")

    def path() -> Any:
        item = served.validator.check(parse_json(body))
        return encode_json({"predictions": served.run("predict", [item])[0], "model": MODEL,
                            "version": 1, "request_id": "0123456789abcdef"})

    def timed(func: Callable[[], Any]) -> float:
        for _ in range(50):
            func()
        samples = []
        for _ in range(sizes.predict_calls):
            started = time.perf_counter()
            func()
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    return {"predict_array_s": timed(lambda: bare.predict(row)),
            "predict_frame_s": timed(lambda: named.predict(one_frame)),
            "loopml_path_s": timed(path)}


# --- the sides ------------------------------------------------------------------------------


def run_child(side: str, work: Path, argv: argparse.Namespace) -> dict[str, Any]:
    if side == "mlflow-prepare":
        return prepare_mlflow(work)
    if side == "bentoml-prepare":
        return prepare_bentoml(work)
    if side == "loadgen":
        return asyncio.run(_generate(argv.url, Path(argv.body).read_bytes(), argv.duration,
                                     argv.connections, argv.check))
    raise AssertionError(side)


def anchor_server(name: str, work: Path, sizes: Sizes) -> tuple[Server | None, dict[str, Any]]:
    """The MLflow or BentoML server, its venv made and its model saved; or why not."""
    venv, requirements = ((MLFLOW_VENV, MLFLOW_REQUIREMENTS) if name == "mlflow"
                          else (BENTOML_VENV, BENTOML_REQUIREMENTS))
    try:
        python = venv_python(venv, requirements)
    except BenchSetupError as exc:
        return None, {"error": f"could not prepare bench/{venv}: {exc}"}
    bin_dir = python.parent
    path_env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    if name == "mlflow":
        env = {**MLFLOW_ENV, **path_env}
    else:
        env = {**BENTOML_ENV, **path_env, "BENTOML_HOME": str(work / "bentoml-home")}
    prepared = run_side(python, Path(__file__).resolve(),
                        ["--side", f"{name}-prepare", "--dir", str(work)], env=env, timeout=600)
    if "error" in prepared:
        return None, {"error": f"saving the model failed: {prepared['error']}"}
    if name == "mlflow":
        server = Server(name="mlflow", command=[
            str(bin_dir / "mlflow"), "models", "serve", "-m", str(work / "mlflow-model"),
            "--env-manager", "local", "-h", "127.0.0.1", "-p", "{port}", "-w", "1"],
            ready_path="/ping", predict_path="/invocations",
            log_path=work / "server-mlflow.log", env=env, cwd=work)
    else:
        server = Server(name="bentoml", command=[
            str(bin_dir / "bentoml"), "serve", "service:BenchLR", "--host", "127.0.0.1",
            "--port", "{port}"], ready_path="/readyz", predict_path="/predict",
            log_path=work / "server-bentoml.log", env=env, cwd=work / "bento")
    return server, {"version": prepared["version"]}


def measure_all(args: argparse.Namespace, sizes: Sizes, work: Path) -> dict[str, Any]:
    import numpy as np

    write_training_data(work)
    features, labels = training_data(work)
    from sklearn.linear_model import LogisticRegression

    expected = LogisticRegression().fit(features, labels).predict(features[:8]).tolist()
    probe = (json.dumps(records(features[:8])).encode(), expected)
    body = json.dumps(records(np.round(features[8:9], 4))).encode()
    report: dict[str, Any] = {"mode": "quick" if args.quick else "full", "sizes": asdict(sizes),
                              "generator": wrk_version() or "python asyncio (wrk not found)",
                              "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    import loopml

    report["loopml_version"] = getattr(loopml, "__version__", "dev")
    log("preparing the loopml store (3 versions, 3 deployments)…")
    prepare_loopml(work)

    sides = {"loopml": loopml_server(work, "loopml")}
    for name in ("mlflow", "bentoml"):
        if getattr(args, f"no_{name}"):
            report[name] = {"skipped": True, "error": f"not measured (--no-{name})"}
            continue
        log(f"preparing {name} (its venv and its saved model)…")
        server, info = anchor_server(name, work, sizes)
        report[name] = info
        if server is not None:
            sides[name] = server

    sections = Sections()
    for name, server in sides.items():
        log(f"{name}: cold start, then {sizes.duration_s:g} s of load…")
        result = sections.run(name, lambda s=server: side_run(s, body, sizes, work, probe))
        report.setdefault(name, {}).update(result or {})
        if result is None:
            report[name]["error"] = sections.errors[name]
    if "loopml" in sections.results:
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("log", lambda: log_cost(work, body, sizes)),
            ("swaps", lambda: hot_swaps(work, body, sizes)),
            ("shadow", lambda: shadow_cost(work, body, sizes)),
            ("rollback", lambda: auto_rollback(work, body, sizes)),
            ("accounting", lambda: accounting_cost(work, sizes)),
            ("shadow_inprocess", lambda: shadow_inprocess(work, sizes)),
            ("predict", lambda: predict_cost(work, sizes))]
        for name, step in steps:
            log(f"loopml: {name}…")
            sections.run(name, step)
    report["extras"] = {k: v for k, v in sections.results.items() if k not in sides}
    report["extra_errors"] = {k: v for k, v in sections.errors.items() if k not in sides}
    # every `loopml serve bench@prod` of the run: the same model, the same start-up path
    report["loopml_cold_starts"] = [seconds for name, seconds in COLD_STARTS
                                    if name in {"loopml", "log-on", "log-off", "swaps"}]
    report["load_after"] = os.getloadavg()[0]
    return report


# --- the report -----------------------------------------------------------------------------


def fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}/s"


def fmt_bytes(value: float | None) -> str:
    return "—" if value is None else f"{value / 2**20:,.0f} MiB"


def fmt_count(value: float | None) -> str:
    return "—" if value is None else f"{int(value):,}"


def fmt_share(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1%}"


def ratio_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}x"


def render(report: dict[str, Any]) -> str:
    notes = Footnotes()
    lm, ml, bm = (report.get(k, {}) for k in ("loopml", "mlflow", "bentoml"))
    rows: list[list[str]] = []

    def cell(side: dict[str, Any], key: str, fmt: Callable[[Any], str]) -> str:
        if side.get("skipped"):
            return "—"
        if "error" in side:
            return "error " + notes.mark(side["error"].splitlines()[0][:300])
        return fmt(side.get(key))

    def ratio(key: str, other: dict[str, Any], inverse: bool = False) -> float | None:
        a, b = lm.get(key), other.get(key)
        if not isinstance(a, int | float) or not isinstance(b, int | float) or not a or not b:
            return None
        return b / a if inverse else a / b

    def line(label: str, key: str, fmt: Callable[[Any], str], target: str = "",
             inverse: bool = False, met: Callable[[], bool | None] | None = None) -> None:
        verdict = met() if met is not None else None
        rows.append([label, cell(lm, key, fmt), cell(ml, key, fmt), cell(bm, key, fmt),
                     ratio_text(ratio(key, ml, inverse)), ratio_text(ratio(key, bm, inverse)),
                     target, "" if verdict is None else ("yes" if verdict else "NO")])

    def both_ratios() -> bool | None:
        a, b = ratio("rps", ml), ratio("rps", bm)
        if a is None and b is None:
            return None
        return (a is None or a >= TARGETS["vs_mlflow"]) and (b is None
                                                             or b >= TARGETS["vs_bentoml"])

    def below(key: str, limit: float) -> Callable[[], bool | None]:
        return lambda: None if lm.get(key) is None else lm[key] <= limit

    line("requests/s", "rps", fmt_rate, "≥ 15x MLflow, ≥ 8x BentoML", met=both_ratios)
    line("p50 latency", "p50_s", format_seconds, inverse=True)
    line("p99 latency", "p99_s", format_seconds, inverse=True)
    line("failed requests", "errors", fmt_count, "0",
         met=lambda: None if lm.get("errors") is None else lm["errors"] == 0)
    line("CPU per request (server)", "cpu_per_request_s", format_seconds, "≤ 350 µs",
         inverse=True, met=below("cpu_per_request_s", TARGETS["cpu_per_request_s"]))
    line("server CPU used (cores)", "cores", lambda v: "—" if v is None else f"{v:.2f}")
    line("peak RSS (server processes)", "peak_rss_bytes", fmt_bytes, inverse=True)
    line("cold start (start → ready)", "cold_start_s", format_seconds, "< 3 s",
         inverse=True, met=below("cold_start_s", TARGETS["cold_start_s"]))
    for side in (lm, ml, bm):
        if side.get("predictions_ok") is False:
            notes.mark("a server's predictions of the probe rows differ from the fitted model's")
    head = ("figure", "loopml", "MLflow", "BentoML", "÷ MLflow", "÷ BentoML", "target", "met")
    title = (f"Model serving ({report['mode']}): one worker each, {report['sizes']['connections']}"
             f" connections, {report['sizes']['duration_s']:g} s per run, single-row JSON, "
             f"load from {report['generator']}; loopml {report.get('loopml_version')}, "
             f"MLflow {ml.get('version', '?')}, BentoML {bm.get('version', '?')}; "
             f"{report['cpus']} CPUs")
    out = [title, "", format_table(head, rows, align="<>>>>><<"), "",
           "÷ columns: loopml's figure over the other's for requests/s, the other's over "
           "loopml's for costs (higher is better for loopml in both)."]
    out += ["", render_extras(report, notes)]
    colds = report.get("loopml_cold_starts") or []
    if len(colds) > 1:
        out.append(f"loopml cold starts over the run ({len(colds)} servers): median "
                   f"{format_seconds(statistics.median(colds))}, max "
                   f"{format_seconds(max(colds))}.")
    busy = max(report.get("load_before", 0), report.get("load_after", 0)) > (report["cpus"] or 1)
    out.append(f"1-minute load average before → after: {report.get('load_before', 0):.1f} → "
               f"{report.get('load_after', 0):.1f} ({report['cpus']} CPUs)"
               f"{': the machine was busy, figures are noisy' if busy else ''}.")
    out += notes.notes
    return "\n".join(out)


def render_extras(report: dict[str, Any], notes: Footnotes) -> str:
    extras, errors = report.get("extras", {}), report.get("extra_errors", {})
    lm = report.get("loopml", {})
    rows: list[list[str]] = []

    def add(label: str, value: str, target: str = "", met: bool | None = None) -> None:
        rows.append([label, value, target, "" if met is None else ("yes" if met else "NO")])

    def failed(name: str) -> bool:
        if name in errors:
            add(f"{name}: failed", "error " + notes.mark(errors[name].splitlines()[0][:300]))
            return True
        return name not in extras

    if not failed("swaps"):
        s = extras["swaps"]
        under, base = s["under_swaps"], s["baseline"]
        wanted = report["sizes"]["swaps"]
        add("hot swaps under load (alias moved, new version answering)",
            f"{s['swaps']} of {wanted}" + (f" ({s['stuck']})" if "stuck" in s else ""),
            f"{wanted}", s["swaps"] == wanted)
        add("  failed requests / answers naming no version",
            f"{under['errors']} / {under['bad']}", "0 / 0",
            under["errors"] == 0 and under["bad"] == 0)
        add("  answers by version 1 / 2", f"{under['v1']:,} / {under['v2']:,}")
        add("  move → new version answering: median / max",
            f"{format_seconds(s['swap_wait_median_s'])} / {format_seconds(s['swap_wait_max_s'])}")
        add(f"  p99 with swaps / without (median of {s['rounds']} rounds)",
            f"{format_seconds(s['p99_swaps_s'])} / {format_seconds(s['p99_baseline_s'])} = "
            f"{ratio_text(s['p99_ratio'])}", "≤ 1.5x",
            s["p99_ratio"] is not None and s["p99_ratio"] <= TARGETS["swap_p99_ratio"])
        add("  requests/s with swaps / without", f"{under['rps']:,.0f} / {base['rps']:,.0f}")
    if not failed("shadow"):
        s = extras["shadow"]
        add(f"shadow version: requests/s without / with (median of {len(s['runs']['plain'])})",
            f"{s['rps']['plain']:,.0f} / {s['rps']['shadowed']:,.0f} "
            f"(cost {s['throughput_cost']:.1%})", "≤ 10%",
            s["throughput_cost"] <= TARGETS["shadow_cost"])
        add("  p99 without / with", f"{format_seconds(s['p99_s']['plain'])} / "
            f"{format_seconds(s['p99_s']['shadowed'])} (cost {s['p99_cost']:.1%})", "≤ 10%",
            s["p99_cost"] <= TARGETS["shadow_cost"])
        add("  CPU per request without / with",
            f"{format_seconds(s['cpu_per_request_s']['plain'])} / "
            f"{format_seconds(s['cpu_per_request_s']['shadowed'])} ({s['cpu_cost']:+.1%})")
        add("  shadow requests by outcome", s["shadow_requests"] or "—")
    if not failed("shadow_inprocess"):
        cost = extras["shadow_inprocess"]["per_request_s"]
        per_request = (extras.get("shadow", {}).get("cpu_per_request_s", {}).get("plain")
                       or lm.get("cpu_per_request_s"))
        share = cost / per_request if per_request else None
        add("  shadow's CPU per mirrored request, in-process (median)",
            format_seconds(max(cost, 0.0)) + (f" ({share:.1%} of CPU per request)"
                                              if share is not None else ""),
            "≤ 10%", None if share is None else share <= TARGETS["shadow_cost"])
    if not failed("rollback"):
        s = extras["rollback"]
        add("automatic rollback: canary breaks → all traffic back",
            format_seconds(s["rollback_s"]) if s["rollback_s"] is not None else "not seen",
            "≤ 1 s", s["rollback_s"] is not None and s["rollback_s"] <= TARGETS["rollback_s"])
        add("  event recorded after the break", format_seconds(s["recorded_s"]))
        add("  failed client requests", fmt_count(s["failed"]), "0", s["failed"] == 0)
        add("  canary failures answered by the primary instead", fmt_count(s["fallbacks"]))
        notes.mark(f"the automatic rollback's event: {s['event'] or 'none recorded'}")
    if not failed("log"):
        s = extras["log"]
        cpu, rps = s["cpu_per_request_s"], s["rps"]
        add(f"payload log on vs off: CPU per request (median of {len(s['runs']['on'])})",
            f"{format_seconds(cpu['on'])} vs {format_seconds(cpu['off'])} "
            f"({s['overhead']:+.1%})", "< 5%", s["overhead"] < TARGETS["log_overhead"])
        add("  requests/s on vs off", f"{rps['on']:,.0f} vs {rps['off']:,.0f}")
    if not failed("accounting"):
        s = extras["accounting"]
        # relative to the CPU per request of a server without the payload log
        per_request = (extras.get("log", {}).get("cpu_per_request_s", {}).get("off")
                       or lm.get("cpu_per_request_s"))
        share = s["with_log_s"] / per_request if per_request else None
        add("metrics + payload log per request, in-process (median)",
            f"{format_seconds(s['with_log_s'])}" + (f" ({share:.1%} of CPU per request)"
                                                    if share is not None else ""),
            "< 5%", None if share is None else share < TARGETS["log_overhead"])
        add("  metrics alone", format_seconds(s["metrics_only_s"]))
    if not failed("predict"):
        s = extras["predict"]
        add("raw model.predict, 1 row (numpy array)", format_seconds(s["predict_array_s"]))
        add("  model.predict, 1-row DataFrame", format_seconds(s["predict_frame_s"]))
        add("  loopml in-process: parse, validate, predict, encode",
            format_seconds(s["loopml_path_s"]))
    return "loopml alone:\n\n" + format_table(("figure", "loopml", "target", "met"), rows,
                                              align="<><<")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (4 s), 40 swaps")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow side")
    parser.add_argument("--no-bentoml", action="store_true", help="skip the BentoML side")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of each measured load run (default 15, quick 4)")
    parser.add_argument("--dir", default=None,
                        help="parent directory of the temporary work directory")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (server logs, stores)")
    parser.add_argument("--side", choices=["mlflow-prepare", "bentoml-prepare", "loadgen"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        work = Path(args.dir) if args.dir else Path.cwd()
        if args.side == "loadgen":
            args.duration = args.duration or 1.0
        print(json.dumps(run_child(args.side, work, args)))
        return 0
    sizes = QUICK if args.quick else FULL
    if args.duration:
        sizes = Sizes(**{**asdict(sizes), "duration_s": args.duration})
    work = Path(tempfile.mkdtemp(prefix="loopml-bench-serving-", dir=args.dir))
    try:
        report = measure_all(args, sizes, work)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
