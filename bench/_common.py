"""Helpers shared by the benchmark scripts in ``bench/``.

Standard library only: this module is imported both by the loopml dev interpreter and by the
interpreters of the anchors' own virtual environments (``bench/.venv-*``, git-ignored).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "BenchSetupError",
    "Footnotes",
    "format_count",
    "format_rate",
    "format_seconds",
    "format_table",
    "import_seconds",
    "log",
    "repeat_timed",
    "results_at",
    "run_side",
    "venv_python",
]

BENCH_DIR = Path(__file__).resolve().parent


class BenchSetupError(RuntimeError):
    """An anchor's environment could not be prepared (no network, no pip, …)."""


def log(message: str) -> None:
    """Progress for the person watching: on stderr, so stdout stays machine-readable."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- virtual environments of the anchors -------------------------------------------------


def venv_python(name: str, requirements: Path) -> Path:
    """The interpreter of ``bench/<name>`` with ``requirements`` installed, created once.

    The venv is reused while the requirements file and the base Python are unchanged (a stamp
    file records their hash); otherwise it is rebuilt from scratch.
    """
    venv = BENCH_DIR / name
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    stamp = venv / ".bench-stamp"
    base = getattr(sys, "_base_executable", sys.executable)
    wanted = hashlib.sha256(requirements.read_bytes() + base.encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    log(f"creating {venv.relative_to(BENCH_DIR.parent)} from {requirements.name} (once)…")
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [base, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(requirements)],
    ]
    for step in steps:
        done = subprocess.run(step, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            tail = "\n".join(done.stdout.strip().splitlines()[-15:])
            raise BenchSetupError(f"`{' '.join(step)}` failed:\n{tail}")
    stamp.write_text(wanted + "\n")
    return python


def run_side(python: Path | str, script: Path, args: Sequence[str],
             env: Mapping[str, str] | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Run ``python script *args``, which prints one JSON object as its last stdout line.

    Its stderr (progress) goes straight to ours. Never raises: a failure comes back as
    ``{"error": "..."}`` so the caller can still print what the other side measured.
    """
    full_env = {**os.environ, **(env or {})}
    try:
        done = subprocess.run([str(python), str(script), *args], stdout=subprocess.PIPE,
                              text=True, env=full_env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    except OSError as exc:
        return {"error": f"could not start {python}: {exc}"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"exited with status {done.returncode} (see its output above)"}
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": f"printed no JSON result; last line: {lines[-1][:200]!r}"}
    return result


# --- timing -----------------------------------------------------------------------------


def import_seconds(python: Path | str, module: str, repeats: int = 5,
                   env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Seconds ``import module`` takes in a fresh interpreter, timed inside it; median of runs.

    ``-I`` (isolated mode) keeps the current directory and ``PYTHON*`` variables out, so the
    installed package is what gets imported.
    """
    code = (f"import time; t = time.perf_counter(); import {module}; "
            "print(time.perf_counter() - t)")
    full_env = {**os.environ, **(env or {})}
    samples = []
    for _ in range(repeats):
        done = subprocess.run([str(python), "-I", "-c", code], capture_output=True,
                              text=True, env=full_env, check=False)
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"`import {module}` failed in a fresh interpreter: {detail}")
        samples.append(float(done.stdout.strip().splitlines()[-1]))
    return {"seconds": statistics.median(samples), "samples": samples}


def repeat_timed(func: Callable[[], Any], *, min_repeats: int = 5, max_repeats: int = 30,
                 budget_s: float = 2.0) -> dict[str, Any]:
    """Time ``func`` once cold, then warm repeats until ``budget_s`` or ``max_repeats``.

    Returns the first (cold) time, the median of the warm ones, and the last result.
    """
    start = time.perf_counter()
    result = func()
    first = time.perf_counter() - start
    repeats = max(min_repeats, min(max_repeats, int(budget_s / max(first, 1e-6))))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        samples.append(time.perf_counter() - start)
    return {"first_s": first, "seconds": statistics.median(samples), "repeats": repeats,
            "result": result}


# --- formatting -------------------------------------------------------------------------


def format_seconds(seconds: float | None) -> str:
    """``3.2 µs``, ``41.0 ms``, ``1.14 s``: three significant figures in a readable unit."""
    if seconds is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    raise AssertionError("unreachable")


def format_rate(per_s: float | None, unit: str = "/s") -> str:
    if per_s is None:
        return "—"
    return f"{per_s:,.0f}{unit}" if per_s >= 100 else f"{per_s:.3g}{unit}"


def format_count(count: int) -> str:
    return f"{count:,}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                 align: str = "") -> str:
    """Plain aligned text; ``align`` holds one ``<`` or ``>`` per column (default: ``<``)."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    align = align.ljust(len(headers), "<")

    def line(cells: Sequence[str]) -> str:
        parts = [f"{cell:{side}{width}}" for cell, side, width in zip(cells, align, widths,
                                                                        strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def side_header(name: str, version: str) -> dict[str, Any]:
    """What every side reports about where it ran."""
    return {"side": name, "version": version, "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count(),
            "platform": platform.platform(), "load_before": os.getloadavg()[0]}


class Sections:
    """Runs each measurement on its own: one that fails is reported, the others still run.

    Exceptions of the ``expected`` types (a command that exited non-zero, say) are reported
    without a traceback."""

    def __init__(self, *, expected: tuple[type[BaseException], ...] = ()) -> None:
        self.results: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self._expected = expected

    def run(self, name: str, func: Callable[[], Any]) -> Any:
        log(f"  {name}…")
        try:
            self.results[name] = func()
        except Exception as exc:
            if not isinstance(exc, self._expected):
                traceback.print_exc(file=sys.stderr)
            self.errors[name] = f"{type(exc).__name__}: {exc}"[:900]
            log(f"    failed: {self.errors[name].splitlines()[0][:300]}")
        return self.results.get(name)

    def as_dict(self) -> dict[str, Any]:
        return {"results": self.results, "errors": self.errors}


def results_at(side: dict[str, Any], *path: str) -> Any:
    """``side["results"][path[0]][path[1]]…``, or None where the path stops."""
    node: Any = side.get("results", {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


class Footnotes:
    """Numbered notes under a table: ``mark(text)`` gives ``[n]``, the same number for the
    same text; ``notes`` lists them in order."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._marks: dict[str, str] = {}

    def mark(self, text: str) -> str:
        if text not in self._marks:
            self._marks[text] = f"[{len(self._marks) + 1}]"
            self.notes.append(f"{self._marks[text]} {text}")
        return self._marks[text]
