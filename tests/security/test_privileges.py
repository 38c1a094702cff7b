"""Unauthenticated and under-privileged writes that would succeed with the right token.

``tests/integration/test_server_auth.py`` sends ``{}`` to every route of the app (the MLflow
routes and the UI's forms included, as the route tables define them at test time) and checks
401 and 403. This adds what that cannot show: the refused requests here are *valid* (the same
request with an editor's token succeeds), so the refusal comes from the role and not from
bad input; and requests that try to reach an endpoint around its role (another spelling of
its path, another method, two credentials) get no further.
"""

from __future__ import annotations

import base64
from typing import Any

from blake3 import blake3

from .conftest import Server, refused


def _writes(server: Server) -> list[tuple[str, str, Any]]:
    """(method, path, body) of valid writes through each API: loopml's, MLflow's, the UI's."""
    experiment, run_id = server.run("priv")
    server.log_package(run_id, "model")
    server.json("POST", "/api/v1/models/priv/versions", {"source": f"runs:/{run_id}/model"},
                role="editor", expect=201)
    server.json("POST", "/api/v1/models/priv/versions", {"source": f"runs:/{run_id}/model"},
                role="editor", expect=201)
    server.json("PUT", "/api/v1/models/priv/aliases/prod", {"version": 1}, role="editor")
    server.json("PUT", "/api/v1/models/priv/aliases/prod", {"version": 2}, role="editor")
    blob = b"privileged bytes"
    mlflow = "/api/2.0/mlflow"
    return [
        ("POST", "/api/v1/experiments", {"name": "priv-new"}),
        ("POST", "/api/v1/runs", {"experiment": "priv", "name": "r2"}),
        ("POST", f"/api/v1/runs/{run_id}/params", {"params": {"lr": "0.1"}}),
        ("POST", f"/api/v1/runs/{run_id}/tags", {"tags": {"team": "a"}}),
        ("POST", f"/api/v1/runs/{run_id}/batch", {"metrics": [["auc", 0.9, 0, 1]]}),
        ("POST", "/api/v1/metrics/batch", {"points": [[run_id, "loss", 0.1, 0, 1]]}),
        ("PUT", f"/api/v1/runs/{run_id}/artifacts/notes.txt", b"notes"),
        ("POST", "/api/v1/models/priv/versions", {"source": f"runs:/{run_id}/model"}),
        ("PUT", "/api/v1/models/priv/aliases/staging", {"version": 1, "reason": "try"}),
        ("POST", "/api/v1/models/priv/aliases/prod/rollback", {"reason": "bad"}),
        ("PATCH", "/api/v1/models/priv/versions/2", {"status": "archived"}),
        ("PUT", f"/api/v1/blobs/{blake3(blob).hexdigest()}", blob),
        ("POST", "/api/v1/uploads", {"digest": blake3(b"u" * 10).hexdigest(), "size": 10,
                                     "part_size": 1 << 20}),
        ("PATCH", f"/api/v1/runs/{run_id}", {"status": "FINISHED"}),
        ("POST", f"{mlflow}/experiments/create", {"name": "priv-mlflow"}),
        ("POST", f"{mlflow}/runs/create", {"experiment_id": experiment}),
        ("POST", f"{mlflow}/runs/log-batch", {"run_id": run_id, "params": [
            {"key": "depth", "value": "3"}]}),
        ("POST", f"{mlflow}/runs/set-tag", {"run_id": run_id, "key": "k", "value": "v"}),
        ("POST", f"{mlflow}/registered-models/create", {"name": "priv-registered"}),
        ("POST", f"{mlflow}/registered-models/alias", {"name": "priv", "alias": "champion",
                                                        "version": "1"}),
        ("POST", f"{mlflow}/logged-models", {"experiment_id": experiment,
                                             "source_run_id": run_id, "name": "m"}),
        ("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run_id}/artifacts/m.txt",
         b"mlflow file"),
        ("DELETE", "/api/v1/models/priv/aliases/prod", None),
        ("DELETE", f"/api/v1/runs/{run_id}", None),
    ]


def test_valid_writes_need_an_editor(server: Server) -> None:
    writes = _writes(server)
    with server.unchanged():
        for method, path, body in writes:
            answer = refused(server.request(method, path, body, role=None), 401)
            assert answer["error_code"] == "UNAUTHENTICATED"
            answer = refused(server.request(method, path, body, role="viewer"), 403)
            assert "has the role viewer" in answer["message"], (method, path)
    for method, path, body in writes:  # the same requests are fine for an editor
        done = server.request(method, path, body, role="editor")
        assert 200 <= done.status < 300, (method, path, done.status, done.body[:300])


def test_a_ui_form_needs_an_editor(server: Server) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    session = {"Cookie": f"loopml_session={server.tokens['viewer']}", **form}
    with server.unchanged():
        for path in ("/ui/review/ep/items/1", "/ui/review/ep/refresh", "/ui/review/ep/commit"):
            refused(server.request("POST", path, b"action=confirm", role=None, headers=form),
                    401)
            refused(server.request("POST", path, b"action=confirm", role="viewer",
                                   headers=form), 403)
            refused(server.request("POST", path, b"action=confirm", role=None,
                                   headers=session), 403)


def test_an_editor_cannot_act_as_an_admin(server: Server) -> None:
    with server.unchanged():
        for body in ({"name": "mine", "role": "admin"}, {"name": "mine", "role": "editor"}):
            refused(server.request("POST", "/api/v1/tokens", body, role="editor"), 403)
        refused(server.request("GET", "/api/v1/tokens", role="editor"), 403)
        refused(server.request("DELETE", "/api/v1/tokens/x1", role="editor"), 403)


def test_no_other_spelling_of_a_path_reaches_an_endpoint_around_its_role(
        server: Server) -> None:
    """Trailing or doubled slashes, dot segments, other cases, percent-encoded letters, a
    method override header: the token API stays admin-only for every spelling."""
    body = {"name": "sneaky", "role": "admin"}
    spellings = ["/api/v1/tokens/", "//api/v1/tokens", "/api/v1//tokens", "/api/v1/./tokens",
                 "/api/v1/x/../tokens", "/API/V1/TOKENS", "/api/v1/%74okens",
                 "/api/v1/tokens%2F", "/api/v1/tokens;x", "/api/v1/tokens?role=admin"]
    with server.unchanged():
        for path in spellings:
            answer = server.request("POST", path, body, role="editor")
            assert answer.status in (307, 400, 403, 404, 405), (path, answer.status)
        for header in ("X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method"):
            answer = server.request("GET", "/api/v1/whoami", body, role="editor",
                                    headers={header: "POST"})
            assert answer.status == 200 and answer.json()["role"] == "editor"
            answer = server.request("POST", "/api/v1/experiments", {"name": "over"},
                                    role="viewer", headers={header: "GET"})
            refused(answer, 403)
        for method in ("HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"):
            answer = server.request(method, "/api/v1/experiments", role="viewer")
            assert answer.status != 201 and answer.status < 500, (method, answer.status)
    tokens = server.json("GET", "/api/v1/tokens")["tokens"]
    assert "sneaky" not in {t["name"] for t in tokens}


def test_only_the_credential_that_is_checked_is_used(server: Server) -> None:
    """A request carrying two credentials acts with the one the middleware checked: a viewer's
    bearer token plus an admin's session cookie is a viewer."""
    cookie = {"Cookie": f"loopml_session={server.tokens['admin']}"}
    basic = base64.b64encode(f"admin:{server.tokens['viewer']}".encode()).decode()
    with server.unchanged():
        refused(server.request("POST", "/api/v1/experiments", {"name": "two"}, role="viewer",
                               headers=cookie), 403)
        refused(server.request("POST", "/api/v1/experiments", {"name": "two"}, role=None,
                               headers={"Authorization": f"Basic {basic}"}), 403)
        for scheme in ("Token", "Digest", "bearer" + "x"):
            refused(server.request("POST", "/api/v1/experiments", {"name": "two"}, role=None,
                                   headers={"Authorization": f"{scheme} "
                                            f"{server.tokens['admin']}"}), 401)
