"""Path traversal and symlink escape: artifact paths (loopml's API and the MLflow artifact
proxy, upload and download), model package paths, dataset names, tags and the file names in
an uploaded tree. Each escape gets a 4xx JSON error and changes nothing; no file is read or
written outside the stores, on the server or, from a hostile listing, on the client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from blake3 import blake3
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import loopml
from loopml.client.http import HttpSession
from loopml.client.remote import RemoteClient
from loopml.errors import InvalidArgument
from loopml.server.app import ServerOptions, create_app

from .conftest import Server, refused

#: Artifact file paths that leave the run's artifacts, or that no file system keeps.
ESCAPES = [
    "../escape.txt", "..%2Fescape.txt", "a/../../escape.txt", "%2e%2e/escape.txt",
    "%2E%2E%2Fescape.txt", "a/%2e%2e/%2e%2e/escape.txt", "/etc/passwd", "%2Fetc%2Fpasswd",
    "..%5Cescape.txt", "a%5C..%5C..%5Cescape.txt", "C:%5Cescape.txt", "a%00.txt",
    "a/%00/b.txt", "%00",
]
#: A name longer than file systems keep, a path longer than the store keeps.
TOO_LONG = ["x" * 300 + ".txt", "a/" * 600 + "b.txt"]
#: Paths that name no file: a directory, the root.
NO_FILE = ["dir/", "."]


def test_artifact_paths_that_escape_are_refused_up_and_down(server: Server) -> None:
    _, run_id = server.run()
    base = f"/api/v1/runs/{run_id}/artifacts"
    server.request("PUT", f"{base}/kept.txt", b"kept", role="editor")
    with server.unchanged():
        for path in ESCAPES + TOO_LONG + NO_FILE:
            refused(server.request("PUT", f"{base}/{path}", b"secret", role="editor"), 400)
            refused(server.request("GET", f"{base}/{path}", role="viewer"), 400, 404)
        for path in ESCAPES + TOO_LONG:
            refused(server.request("GET", f"{base}?path={path}", role="viewer"), 400)
    assert [a.path for a in server.client.list_artifacts(run_id)] == ["kept.txt"]


def test_mlflow_artifact_paths_that_escape_are_refused(server: Server) -> None:
    experiment, run_id = server.run()
    proxy = "/api/2.0/mlflow-artifacts/artifacts"
    base = f"{proxy}/{experiment}/{run_id}/artifacts"
    with server.unchanged():
        for path in [*ESCAPES, TOO_LONG[0]]:
            refused(server.request("PUT", f"{base}/{path}", b"secret", role="editor"))
            refused(server.request("GET", f"{base}/{path}", role="viewer"))
        for path in ESCAPES:
            refused(server.request("GET", f"{proxy}?path={experiment}/{run_id}/artifacts/{path}",
                                   role="viewer"))
        for path in ("..%2F..%2F..%2Fetc%2Fpasswd", f"{experiment}/../{run_id}/artifacts/x",
                     "registry/..%2F..%2Fx/1/MLmodel", "registry/m/1/..%2F..%2Fx"):
            refused(server.request("PUT", f"{proxy}/{path}", b"x", role="editor"))
            refused(server.request("GET", f"{proxy}/{path}", role="viewer"))
    assert server.client.list_artifacts(run_id) == []


def test_model_package_paths_that_escape_are_refused(server: Server) -> None:
    _, run_id = server.run()
    server.log_package(run_id, "model")
    server.json("POST", "/api/v1/models/safe-paths/versions",
                {"source": f"runs:/{run_id}/model"}, role="editor", expect=201)
    files = "/api/v1/models/safe-paths/versions/1/files"
    listed = server.json("GET", files, role="viewer")["files"]
    assert "loopml-model.yaml" in {f["path"] for f in listed}
    with server.unchanged():
        for path in ("..%2F..%2Fetc%2Fpasswd", "%2e%2e/x", "a%5C..%5Cx", "%2Fetc%2Fpasswd",
                     "a/../../x", "loopml-model.yaml%00"):
            refused(server.request("GET", f"{files}/{path}", role="viewer"), 400, 404)
        for name in ("..", "%2e%2e", "a%5Cb", "a%00"):
            refused(server.request("GET", f"/api/v1/models/{name}/versions/1/files",
                                   role="viewer"), 400, 404)


@pytest.mark.parametrize("name", ["..", "%2e%2e", ".", "a%5Cb", "a%00b", "%00", "a%0Ab",
                                  "x" * 200])
def test_dataset_names_tags_and_selectors_that_escape_are_refused(server: Server,
                                                                   name: str) -> None:
    digest = "0" * 64
    with server.unchanged():
        refused(server.request("GET", f"/api/v1/datasets/{name}", role="viewer"), 400)
        refused(server.request("POST", f"/api/v1/datasets/{name}/versions",
                               {"kind": "tree", "tree": digest}, role="editor"), 400)
        refused(server.request("PUT", f"/api/v1/datasets/{name}/contract", {"contract": None},
                               role="editor"), 400)
        refused(server.request("PUT", f"/api/v1/datasets/ok/tags/{name}", {"version": "1"},
                               role="editor"), 400)
        refused(server.request("GET", f"/api/v1/datasets/ok/versions/{name}", role="viewer"),
                400)
        refused(server.request("GET", f"/api/v1/dataset-diff?old={name}@1&new=ok@1",
                               role="viewer"), 400)
    for path in (f"/api/v1/datasets/ok%2F..%2F{name}", f"/api/v1/blobs/..%2F{digest}"):
        refused(server.request("GET", path, role="viewer"), 400, 404)


def _put_blob(server: Server, data: bytes) -> str:
    digest = blake3(data).hexdigest()
    answer = server.request("PUT", f"/api/v1/blobs/{digest}", data, role="editor")
    assert answer.status in (200, 201), answer.body
    return digest


@pytest.mark.parametrize("names", [
    {"files": {"../evil.txt": "F"}},
    {"files": {"..": "F"}},
    {"files": {"a/b.txt": "F"}},
    {"files": {"a\\..\\..\\evil.txt": "F"}},
    {"files": {"/etc/passwd": "F"}},
    {"dirs": {"..": "D"}},
    {"delta": "../../evil.txt"},
    {"delta": "/etc/passwd"},
    {"delta": "a/../../evil.txt"},
])
def test_a_tree_whose_file_names_escape_is_not_recorded(server: Server,
                                                        names: dict[str, object]) -> None:
    """A client uploads a tree listing (or delta) naming files outside the tree, then asks
    for it to be recorded as a dataset version: refused, no version."""
    content = _put_blob(server, b"some content")
    empty = _put_blob(server, orjson.dumps({"dirs": {}, "files": {}}))
    inner = _put_blob(server, orjson.dumps({"dirs": {}, "files": {"x.txt": [content, 12]}}))
    if "delta" in names:
        document = {"base": empty, "depth": 1, "file_count": 1, "byte_count": 12,
                    "changes": {names["delta"]: [content, 12]}}
    else:
        files = {k: [content, 12] for k in names.get("files", {})}  # type: ignore[attr-defined]
        dirs = {k: [inner, 1, 12] for k in names.get("dirs", {})}  # type: ignore[attr-defined]
        document = {"dirs": dirs, "files": files}
    tree = _put_blob(server, orjson.dumps(document))
    with server.unchanged():
        body = refused(server.request("POST", "/api/v1/datasets/escapes/versions",
                                      {"kind": "tree", "tree": tree}, role="editor"), 400)
        assert tree in body["message"] or "tree" in body["message"]
    refused(server.request("GET", "/api/v1/datasets/escapes", role="viewer"), 404)


# -- symlinks ---------------------------------------------------------------------------------


@pytest.fixture
def remote(server: Server, tmp_path: Path) -> Iterator[RemoteClient]:
    settings = loopml.load_settings(home=tmp_path / "client", progress=False,
                                    tracking_uri=server.url,
                                    tracking_token=server.tokens["editor"])
    client = RemoteClient(settings)
    yield client
    client.close()


def test_a_symlinked_directory_is_not_uploaded(server: Server, remote: RemoteClient,
                                               tmp_path: Path) -> None:
    """Logging a directory uploads its own files, not those a symlinked directory in it
    points to (``outside -> /somewhere/secret``)."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa").write_text("PRIVATE KEY")
    logged = tmp_path / "outputs"
    logged.mkdir()
    (logged / "plot.txt").write_text("a plot")
    os.symlink(secret, logged / "outside", target_is_directory=True)
    with remote.start_run("sec") as run:
        remote.log_artifact(run.id, logged)
    assert [a.path for a in server.client.list_artifacts(run.id)] == ["outputs/plot.txt"]


def test_a_download_replaces_a_symlink_instead_of_writing_through_it(
        server: Server, remote: RemoteClient, tmp_path: Path) -> None:
    """A file in the destination that is a symlink to a file elsewhere is replaced by the
    downloaded file; the file it pointed to is left as it was."""
    victim = tmp_path / "victim.txt"
    victim.write_text("do not overwrite")
    source = tmp_path / "model"
    source.mkdir()
    (source / "weights.txt").write_text("downloaded")
    with remote.start_run("sec") as run:
        remote.log_artifact(run.id, source)
    dest = tmp_path / "dest"
    (dest / "model").mkdir(parents=True)
    os.symlink(victim, dest / "model" / "weights.txt")
    target = remote.download_artifacts(run.id, "model", dest)
    assert (target / "weights.txt").read_text() == "downloaded"
    assert not (target / "weights.txt").is_symlink()
    assert victim.read_text() == "do not overwrite"


def test_a_hostile_listing_cannot_make_the_client_write_outside(tmp_path: Path) -> None:
    """A server (or anyone in the middle) that lists artifact paths leaving the requested
    directory gets them refused before anything is downloaded."""
    from servers import ServerThread

    paths = ["model/ok.txt", "model/../../escape.txt"]

    async def listing(request: Request) -> Response:
        return JSONResponse({"artifacts": [{"path": p, "size": 1, "digest": "0" * 64}
                                           for p in paths]})

    async def content(request: Request) -> Response:
        return Response(b"x")

    app = create_app(client=loopml.Client(loopml.load_settings(home=tmp_path / "srv",
                                                               progress=False)),
                     options=ServerOptions(auth=False), route_tables=(), middlewares=())
    app.router.routes.extend([
        Route("/api/v1/runs/{run_id}/artifacts", listing, methods=["GET"]),
        Route("/api/v1/runs/{run_id}/artifacts/{path:path}", content, methods=["GET"])])
    served = ServerThread.for_app(app, log_level="critical")
    settings = loopml.load_settings(home=tmp_path / "client", progress=False,
                                    tracking_uri=served.url)
    client = RemoteClient(settings, session=HttpSession(served.url))
    try:
        dest = tmp_path / "a" / "b" / "dest"
        for listed in (["model/ok.txt", "model/../../escape.txt"], ["model/ok.txt", "/etc/x"],
                       ["model/ok.txt", "model\\..\\..\\escape.txt"], ["elsewhere/x.txt"]):
            paths[:] = listed
            with pytest.raises(InvalidArgument, match="nothing was downloaded"):
                client.download_artifacts("r" * 32, "model", dest)
        assert not dest.exists() and not (tmp_path / "a" / "escape.txt").exists()
        assert sorted(p.name for p in tmp_path.rglob("*escape*")) == []
    finally:
        client.close()
        served.stop()
        app.state.client.close()
