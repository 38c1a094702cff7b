"""The artifact proxy, ``/api/2.0/mlflow-artifacts/artifacts``: upload, download and list.

Paths follow the artifact URIs of :mod:`.translate`:

* ``EXPERIMENT/RUN/artifacts/PATH`` — a run's artifacts (and its logged models' files):
  ``PUT`` streams the body to a temporary file, stores it as a blob and lists it in the run
  (the listing is written only once the blob is stored); ``GET`` sends the file, verified
  against its digest; a list shows the entries directly under ``path``;
* ``registry/NAME/VERSION/PATH`` — the package of a registered model version, read-only.

A path is refused (400) if any segment is empty, ``.`` or ``..``, or holds a backslash or NUL;
files never leave the blob store's namespace, and nothing is fetched from anywhere else.
Uploads above the server's ``max_upload_bytes`` are refused with 413 and store nothing.
"""

from __future__ import annotations

import mimetypes
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from loopml.blobs.chunking import iter_content
from loopml.blobs.entry import FileEntry
from loopml.blobs.tree import iter_files
from loopml.errors import InvalidArgument, NotFound
from loopml.registry import records as registry_records
from loopml.registry.refs import ModelRef
from loopml.server.api.common import upload_limit
from loopml.tracking import records
from loopml.tracking.artifacts import list_artifacts, log_artifact
from loopml.tracking.entities import ArtifactInfo

from .messages import answer, call

if TYPE_CHECKING:
    from loopml.client import Client

__all__ = ["Location", "parse_location", "routes", "version_files"]

_PREFIX = "/api/2.0/mlflow-artifacts/artifacts"
#: The largest artifact one ``PUT`` may upload.
#: Files up to this size are sent from memory; larger ones from a verified temporary copy.
_IN_MEMORY_BYTES = 8 * 1024**2
_LAYOUT = ("artifact paths read EXPERIMENT/RUN/artifacts/PATH (a run's artifacts) or "
           "registry/NAME/VERSION/PATH (a registered model version)")


class UploadTooLarge(InvalidArgument):
    http_status = 413


@dataclass(frozen=True)
class Location:
    """Where an artifact path points: a run's artifacts or a model version's package."""

    path: str
    run_id: str = ""
    experiment_id: str = ""
    model: str = ""
    version: int = 0

    @property
    def is_run(self) -> bool:
        return bool(self.run_id)


def _segments(path: str) -> list[str]:
    text = path.strip("/")
    if not text:
        return []
    parts = text.split("/")
    for part in parts:
        if part in ("", ".", "..") or "\\" in part or "\x00" in part:
            raise InvalidArgument(f"artifact path {path!r} is not allowed: no empty, '.' or "
                                  "'..' segments and no backslashes; " + _LAYOUT)
    return parts


def parse_location(path: str) -> Location:
    parts = _segments(path)
    if len(parts) >= 3 and parts[0] == "registry":
        if not parts[2].isdigit():
            raise NotFound(f"no artifact at {path!r}: {_LAYOUT}")
        return Location("/".join(parts[3:]), model=parts[1], version=int(parts[2]))
    if len(parts) >= 3 and parts[2] == "artifacts":
        return Location("/".join(parts[3:]), experiment_id=parts[0], run_id=parts[1])
    raise NotFound(f"no artifact at {path!r}: {_LAYOUT}")


def _check_run(client: Client, location: Location) -> None:
    with client.meta.read() as conn:
        experiment_id = records.experiment_id_of_run(conn, location.run_id)
    if location.experiment_id != experiment_id:
        raise NotFound(f"run {location.run_id} is not in experiment {location.experiment_id}")


def version_files(client: Client, model: str, version: int, path: str = ""
                  ) -> list[tuple[str, FileEntry]]:
    """(path, entry) of the files of a version's package at or below ``path``."""
    with client.meta.read() as conn:
        found = registry_records.resolve(conn, ModelRef(model, version=version))
    try:
        return list(iter_files(client.blobs, found.tree, path))
    except NotFound:
        return []


def _run_files(client: Client, location: Location) -> list[ArtifactInfo]:
    _check_run(client, location)
    with client.meta.read() as conn:
        return list_artifacts(conn, location.run_id, location.path)


def _children(prefix: str, files: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """The entries directly under ``prefix``: files with their size, then directories."""
    if len(files) == 1 and files[0][0] == prefix:
        return []  # a file lists as nothing, as in MLflow
    entries: dict[str, dict[str, Any]] = {}
    start = len(prefix) + 1 if prefix else 0
    for path, size in files:
        name, slash, _ = path[start:].partition("/")
        if slash:
            entries.setdefault(name, {"path": name, "is_dir": True})
        else:
            entries[name] = {"path": name, "is_dir": False, "file_size": size}
    return sorted(entries.values(), key=lambda e: e["path"])


def _list(client: Client, path: str) -> list[dict[str, Any]]:
    location = parse_location(path)
    if location.is_run:
        files = [(info.path, info.size) for info in _run_files(client, location)]
    else:
        files = [(p, e.size) for p, e in version_files(client, location.model,
                                                       location.version, location.path)]
    return _children(location.path, files)


async def list_endpoint(request: Request) -> Response:
    path = request.query_params.get("path", "")
    return answer({"files": await call(_list, request.app.state.client, path)})


def _media_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _not_a_file(location: Location, count: int) -> InvalidArgument:
    return InvalidArgument(f"artifact {location.path!r} is a directory of {count} files, not "
                           "a file; list it, then download its files")


def _download(client: Client, path: str) -> Response:
    location = parse_location(path)
    if not location.path:
        raise InvalidArgument(f"artifact path {path!r} names a directory; list it instead")
    media_type = _media_type(location.path)
    if not location.is_run:
        entries = version_files(client, location.model, location.version, location.path)
        entry = next((e for p, e in entries if p == location.path), None)
        if entry is None:
            if entries:
                raise _not_a_file(location, len(entries))
            raise NotFound(f"model {location.model} version {location.version} has no file "
                           f"{location.path!r}")
        return StreamingResponse(iter_content(client.blobs, entry), media_type=media_type,
                                 headers={"content-length": str(entry.size)})
    files = _run_files(client, location)
    info = next((i for i in files if i.path == location.path), None)
    if info is None:
        if files:
            raise _not_a_file(location, len(files))
        raise NotFound(f"run {location.run_id} has no artifact {location.path!r}")
    if info.size <= _IN_MEMORY_BYTES:
        return Response(client.blobs.get_bytes(info.digest), media_type=media_type)
    folder = tempfile.mkdtemp(prefix="loopml-download-")
    copy = Path(folder) / "artifact"
    try:
        client.blobs.get_file(info.digest, copy)  # verified before a byte is sent
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(copy, media_type=media_type,
                        background=BackgroundTask(shutil.rmtree, folder, True))


async def download_endpoint(request: Request) -> Response:
    return await call(_download, request.app.state.client, request.path_params["path"])


def _store(client: Client, location: Location, local: Path) -> None:
    parent = location.path.rpartition("/")[0]
    log_artifact(client.meta, client.blobs, location.run_id, local, parent)


async def upload_endpoint(request: Request) -> Response:
    path = request.path_params["path"]
    location = parse_location(path)
    if not location.is_run:
        raise InvalidArgument(f"artifact path {path!r} is in a registered model version, "
                              "which cannot change; upload to a run's artifacts instead")
    if not location.path:
        raise InvalidArgument(f"artifact path {path!r} needs a file name after 'artifacts/'")
    limit = upload_limit(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"the upload is {int(declared):,} bytes; the limit is "
                             f"{limit:,} bytes a file")
    client = request.app.state.client
    await call(_check_run, client, location)
    folder = Path(tempfile.mkdtemp(prefix="loopml-upload-"))
    try:
        local = folder / location.path.rpartition("/")[2]
        size = 0
        with local.open("wb") as handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(f"the upload is larger than the limit of "
                                         f"{limit:,} bytes a file; nothing was "
                                         "stored")
                handle.write(chunk)
        await call(_store, client, location, local)
    except OSError as exc:
        raise InvalidArgument(f"cannot store the upload as {location.path!r} "
                              f"({exc.strerror or exc}); use a shorter file name") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return answer()


def routes() -> list[BaseRoute]:
    return [
        Route(_PREFIX, list_endpoint, methods=["GET"]),
        Route(f"{_PREFIX}/{{path:path}}", download_endpoint, methods=["GET"]),
        Route(f"{_PREFIX}/{{path:path}}", upload_endpoint, methods=["PUT"]),
    ]
