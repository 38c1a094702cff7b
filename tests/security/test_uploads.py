"""Oversized uploads and bodies: every way bytes reach the server stops at its limit with a
413 JSON error, whether the size is declared (``Content-Length``) or only found while the
body streams in (chunked), and nothing is stored: no blob, no listing, no temporary file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from blake3 import blake3

from loopml.server.errors import MAX_JSON_BYTES

from .conftest import MAX_UPLOAD, Server, refused

OVER = MAX_UPLOAD + 1
CHUNKED = {"Transfer-Encoding": "chunked"}


def _chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_an_artifact_over_the_limit_is_refused(server: Server, chunked: bool) -> None:
    _, run_id = server.run()
    path = f"/api/v1/runs/{run_id}/artifacts/big.bin"
    with server.unchanged():
        body = _chunks(OVER) if chunked else b"x" * OVER
        answer = server.request("PUT", path, body, role="editor",
                                headers=CHUNKED if chunked else None)
        assert "max_upload_bytes" in refused(answer, 413)["message"]
    assert server.client.list_artifacts(run_id) == []
    server.json("PUT", path, b"x" * MAX_UPLOAD, role="editor", expect=201)  # at the limit


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_blob_over_the_limit_is_refused(server: Server, chunked: bool) -> None:
    data = b"y" * OVER
    digest = blake3(data).hexdigest()
    with server.unchanged():
        answer = server.request("PUT", f"/api/v1/blobs/{digest}",
                                _chunks(OVER) if chunked else data, role="editor",
                                headers=CHUNKED if chunked else None)
        refused(answer, 413)
    refused(server.request("GET", f"/api/v1/blobs/{digest}", role="viewer"), 404)


def test_a_multipart_upload_over_the_limit_is_refused(server: Server) -> None:
    digest = blake3(b"z" * OVER).hexdigest()
    with server.unchanged():
        refused(server.request("POST", "/api/v1/uploads",
                               {"digest": digest, "size": OVER, "part_size": 1 << 20},
                               role="editor"), 413)
    # a session within the limit: a part larger than its declared size is refused
    session = server.json("POST", "/api/v1/uploads",
                          {"digest": blake3(b"z" * 2048).hexdigest(), "size": 2048,
                           "part_size": 1 << 20}, role="editor", expect=201)
    with server.unchanged():
        for body, headers in ((b"z" * 4096, None), (_chunks(OVER), CHUNKED)):
            refused(server.request("PUT", f"/api/v1/uploads/{session['id']}/parts/1", body,
                                   role="editor", headers=headers), 400, 413)
    server.request("DELETE", f"/api/v1/uploads/{session['id']}", role="editor")


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_an_mlflow_artifact_over_the_limit_is_refused(server: Server, chunked: bool) -> None:
    experiment, run_id = server.run()
    path = f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run_id}/artifacts/big.bin"
    with server.unchanged():
        answer = server.request("PUT", path, _chunks(OVER) if chunked else b"x" * OVER,
                                role="editor", headers=CHUNKED if chunked else None)
        refused(answer, 413)
    assert server.client.list_artifacts(run_id) == []


@pytest.mark.parametrize("path", ["/api/v1/experiments", "/api/v1/runs/search",
                                  "/api/v1/metrics/batch", "/api/v1/tokens",
                                  "/api/2.0/mlflow/experiments/create",
                                  "/api/2.0/mlflow/runs/log-batch",
                                  "/api/2.0/mlflow/runs/search"])
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_json_over_the_limit_is_refused(server: Server, path: str, chunked: bool) -> None:
    size = MAX_JSON_BYTES + 1
    head, tail = b'{"name": "', b'"}'
    filler = size - len(head) - len(tail)
    with server.unchanged():
        if chunked:
            body: object = iter([head, *_chunks(filler, 1 << 20), tail])
            answer = server.request("POST", path, body, headers={
                **CHUNKED, "Content-Type": "application/json"})
        else:
            answer = server.request("POST", path, head + b"n" * filler + tail,
                                    headers={"Content-Type": "application/json"})
        assert "larger than" in refused(answer, 413)["message"]


def test_a_form_over_the_limit_is_refused(server: Server) -> None:
    from loopml.ui.forms import MAX_FORM_BYTES

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with server.unchanged():
        answer = server.request("POST", "/ui/review/ep/items/1",
                                b"label=" + b"a" * (MAX_FORM_BYTES + 1), role="editor",
                                headers=form)
        assert 400 <= answer.status < 500, answer.status
        assert b"Traceback" not in answer.body
