"""What a run records about where it ran: the code version (git) and the environment.

Both are captured once per process (git and package look-ups cost milliseconds) and stored
as tags named ``loopml.git.*`` and ``loopml.env.*``.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import blake3

from loopml._lazy import loaded_module
from loopml.identity import current_user

__all__ = ["NOTABLE_PACKAGES", "code_version_tags", "current_user", "environment_tags"]

NOTABLE_PACKAGES = ("loopml", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "torch",
                    "xgboost", "lightgbm", "onnx", "onnxruntime", "tensorflow")


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode(errors="replace") if done.returncode == 0 else None


def _source_dir() -> Path:
    """The directory of the program's main script; the working directory when there is none
    or when the program is the ``loopml`` command itself (whose script is not the user's)."""
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    spec = getattr(main, "__spec__", None)
    if (main_file is None or Path(main_file).name == "loopml"
            or (spec is not None and spec.name.startswith("loopml."))):
        return Path.cwd()
    return Path(main_file).resolve().parent


@functools.cache
def code_version_tags(source_dir: Path | None = None) -> dict[str, str]:
    """Git commit, branch, dirty flag and a hash of the uncommitted diff of the code's repo."""
    cwd = source_dir or _source_dir()
    if shutil.which("git") is None:
        return {}
    head = _git(cwd, "rev-parse", "HEAD", "--abbrev-ref", "HEAD", "--show-toplevel")
    if head is None:
        return {}
    commit, branch, toplevel = [*head.splitlines(), "", "", ""][:3]
    diff = (_git(cwd, "diff", "HEAD", "--binary") or "").encode()
    untracked = _git(cwd, "ls-files", "--others", "--exclude-standard") or ""
    dirty = bool(diff or untracked.strip())
    tags = {"loopml.git.commit": commit, "loopml.git.branch": branch,
            "loopml.git.repo": toplevel, "loopml.git.dirty": str(dirty).lower()}
    if dirty:
        tags["loopml.git.diff_hash"] = blake3.blake3(diff + untracked.encode()).hexdigest()
    return tags


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_names() -> str:
    torch = loaded_module("torch")
    if torch is not None and torch.cuda.is_available():
        return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, timeout=10, check=False)
            return ", ".join(out.stdout.decode().split("\n")).strip(", ")
        except (OSError, subprocess.SubprocessError):
            return ""
    return ""


def _canonical(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _installed_versions() -> dict[str, str]:
    """Distribution name → version, from the ``NAME-VERSION.dist-info`` (or ``.egg-info``)
    directory names on ``sys.path``: one directory listing per path entry, where asking
    ``importlib.metadata`` package by package re-scans every entry each time (~2 ms each)."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for item in names:
            stem, dot, suffix = item.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            name, sep, version = stem.partition("-")
            if sep:
                found.setdefault(_canonical(name), version.split("-")[0])
    return found


@functools.cache
def environment_tags() -> dict[str, str]:
    """Python version, platform, host, CPU, GPU and the versions of notable packages."""
    installed = _installed_versions()
    packages = [f"{name}=={installed[_canonical(name)]}" for name in NOTABLE_PACKAGES
                if _canonical(name) in installed]
    tags = {"loopml.env.python": platform.python_version(),
            "loopml.env.platform": platform.platform(terse=True),
            "loopml.env.host": socket.gethostname(),
            "loopml.env.cpu": f"{_cpu_name()} ({os.cpu_count()} cores)",
            "loopml.env.packages": ", ".join(packages)}
    gpu = _gpu_names()
    if gpu:
        tags["loopml.env.gpu"] = gpu
    return tags


