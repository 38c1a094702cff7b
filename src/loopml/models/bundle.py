"""A self-contained serving bundle for a model package, and building its container image.

::

    bundle/
      model/             the model package, copied
      requirements.txt   loopml and the package's pinned requirements
      serve.py           the HTTP entry point (loopml.models.serve_entry)
      Dockerfile         slim Python base, non-root user, HEALTHCHECK on /health

``python serve.py --port 8080`` inside the bundle serves it without Docker; ``docker_build``
turns it into an image where a Docker engine is running.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import loopml
from loopml.errors import BackendUnavailable, LoopmlError, NotFound
from loopml.models.manifest import ModelManifest, read_manifest
from loopml.models.package import load_model, new_package_dir

__all__ = ["build_bundle", "docker_build", "dockerfile_text", "requirements_text"]

#: the bundle's entry point (read as text, not imported: it pulls in http.server)
SERVE_ENTRY = Path(__file__).with_name("serve_entry.py")

#: wheels with a local version label (torch==2.13.0+cpu) come from PyTorch's own index
_LOCAL_LABEL = re.compile(r"==[^+\s]+\+(cpu|cu\d+|rocm[\d.]+)$")


def requirements_text(manifest: ModelManifest) -> str:
    """``requirements.txt``: loopml itself, then the package's pins (and any extra index)."""
    lines = [f"loopml=={manifest.loopml_version}"]
    indexes: list[str] = []
    for requirement in manifest.requirements:
        label = _LOCAL_LABEL.search(requirement)
        if label:
            index = f"--extra-index-url https://download.pytorch.org/whl/{label.group(1)}"
            if index not in indexes:
                indexes.append(index)
        if not requirement.lower().startswith("loopml=="):
            lines.append(requirement)
    return "\n".join([*indexes, *lines]) + "\n"


def dockerfile_text(manifest: ModelManifest, *, port: int = 8080, trusted: bool = False) -> str:
    """A Dockerfile: slim Python of the version the model was saved with, non-root user."""
    python = ".".join(manifest.python_version.split(".")[:2])
    flags = ', "--trusted"' if trusted else ""
    probe = (f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health', "
             "timeout=4)")
    return f"""\
# Serving bundle written by loopml {loopml.__version__} for a {manifest.flavor} model.
FROM python:{python}-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin loopml
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY --chown=loopml:loopml model/ model/
COPY --chown=loopml:loopml serve.py .
USER loopml
EXPOSE {port}
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \\
  CMD ["python", "-c", "{probe}"]
CMD ["python", "serve.py", "--host", "0.0.0.0", "--port", "{port}"{flags}]
"""


def build_bundle(package_path: str | Path, out_dir: str | Path, *, trusted: bool = False,
                 port: int = 8080) -> Path:
    """Write a serving bundle for the package at ``package_path`` into ``out_dir`` (new).

    The package is loaded once first, so a bundle that could not serve is never written;
    ``trusted=True`` is needed (and passed on to the server) for packages that run code when
    loaded (pickle).
    """
    source = Path(package_path)
    manifest = read_manifest(source)
    load_model(source, trusted=trusted)
    target = new_package_dir(out_dir)
    staging = target.parent / f".{target.name}.bundling-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(source, staging / "model")
        (staging / "requirements.txt").write_text(requirements_text(manifest))
        (staging / "Dockerfile").write_text(dockerfile_text(manifest, port=port,
                                                            trusted=trusted))
        (staging / "serve.py").write_text(SERVE_ENTRY.read_text())
        if target.is_dir():
            target.rmdir()
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _engine_error(reason: str) -> BackendUnavailable:
    return BackendUnavailable(f"no docker engine was found ({reason}); install and start Docker, "
                              "or build the bundle's Dockerfile with another engine "
                              "(e.g. podman build)")


def docker_build(bundle_dir: str | Path, tag: str, *, timeout: float = 3600.0) -> str:
    """``docker build -t tag bundle_dir``; :class:`BackendUnavailable` without an engine."""
    directory = Path(bundle_dir)
    if not (directory / "Dockerfile").is_file():
        raise NotFound(f"no Dockerfile in {directory}; give a directory written by build_bundle")
    docker = shutil.which("docker")
    if docker is None:
        raise _engine_error("the 'docker' command is not on PATH")
    try:
        info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _engine_error(f"'docker info' failed: {exc}") from exc
    if info.returncode != 0 or not info.stdout.strip():
        last = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        raise _engine_error(f"'docker info' says: {last}")
    try:
        done = subprocess.run([docker, "build", "-t", tag, str(directory)], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LoopmlError(f"docker build of {directory} took more than {timeout:g} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise LoopmlError(f"docker build of {directory} failed (exit {done.returncode}):\n{tail}")
    return tag
