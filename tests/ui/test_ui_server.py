"""The web UI without a browser: forms refuse other sites and bad input (changing nothing),
unknown things are HTML pages with the reason, every list page answers on an empty store,
auth asks for a token and an editor's role to label, and ``loopml ui`` is a command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import ui_seed
from ui_seed import call, post, serving


def test_review_forms_refuse_other_sites_and_bad_input(
        base_url: str, seeded: ui_seed.Seeded) -> None:
    from loopml.automation.review import ReviewQueue

    queue = ReviewQueue(ui_seed.ENDPOINT, client=seeded.client)
    pending = queue.list(limit=1)[0]
    url = f"{base_url}/ui/review/{ui_seed.ENDPOINT}/items/{pending.id}"
    status, body = post(url, {"action": "confirm"}, {"Origin": "http://evil.example"})
    assert status == 403 and "another site" in body
    status, body = post(url, {"action": "confirm"}, {"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, body = post(url, {"action": "delete-everything"})
    assert status == 400 and "unknown action" in body and "Traceback" not in body
    status, body = post(url, {"action": "label", "label": ""})
    assert status == 400 and "type the correct label" in body
    status, body = post(f"{base_url}/ui/review/{ui_seed.ENDPOINT}/items/nope",
                         {"action": "confirm"})
    assert status == 404 and "nope" in body
    assert queue.get(pending.id).status == "pending"


def test_unknown_things_are_html_pages_with_the_reason(base_url: str) -> None:
    for path, status, words in [("/ui/runs/0123456789abcdef", 404, "no run"),
                                ("/ui/models/nope", 404, "nope"),
                                ("/ui/datasets/churn/9", 404, "9"),
                                ("/ui/compare", 400, "choose the runs"),
                                ("/ui/runs?max=0", 400, "between 1 and 1000"),
                                (f"/ui/review/{ui_seed.ENDPOINT}?item=nope", 404, "nope")]:
        code, body, kind = call(base_url + path)
        assert code == status, (path, body)
        assert kind["content-type"].startswith("text/html") and words in body, (path, body)
        assert "Traceback" not in body and "default-src 'self'" in \
            kind["content-security-policy"]


def test_every_list_page_answers_on_an_empty_store(tmp_path: Path) -> None:
    import loopml

    home = tmp_path / ".loopml"
    client = loopml.Client(loopml.load_settings(home=home, progress=False, environ={},
                                                config_file=home / "none.toml"))
    try:
        with serving(client) as url:
            for path in ("/ui/experiments", "/ui/runs", "/ui/datasets", "/ui/models",
                         "/ui/pipelines", "/ui/deployments", "/ui/review", "/ui/automation"):
                status, body, _ = call(url + path)
                assert status == 200 and "Traceback" not in body, (path, body)
            status, body, _ = call(url + "/ui/review/nothing-here")
            assert status == 200 and "Nothing pending" in body
            status, body = post(url + "/ui/review/nothing-here/refresh", {})
            assert status == 404 and "no requests of &#39;nothing-here&#39;" in body
    finally:
        client.close()


def test_with_auth_pages_need_a_token_and_labels_need_an_editor(
        seeded: ui_seed.Seeded) -> None:
    from loopml.automation.review import ReviewQueue
    from loopml.server.tokens import create_token

    viewer = create_token(seeded.client.meta, "viewer-ui", role="viewer").secret
    editor = create_token(seeded.client.meta, "ana-ui", role="editor").secret
    queue = ReviewQueue(ui_seed.ENDPOINT, client=seeded.client)
    item = queue.list(limit=1)[0]
    with serving(seeded.client, auth=True) as url:
        status, _, headers = call(url + "/ui/runs", headers={"Accept": "text/html"})
        assert status == 303 and headers["location"].startswith("/ui/signin")
        status, body, _ = call(url + "/ui/models/churn",
                                headers={"Cookie": f"loopml_session={viewer}"})
        assert status == 200 and "lineage of churn" in body
        target = f"{url}/ui/review/{ui_seed.ENDPOINT}/items/{item.id}"
        status, body = post(target, {"action": "confirm"},
                             {"Authorization": f"Bearer {viewer}"})
        assert status == 403 and queue.get(item.id).status == "pending"
        status, _ = post(target, {"action": "confirm"}, {"Authorization": f"Bearer {editor}"})
        assert status == 303
    assert queue.get(item.id).status == "labelled"
    assert queue.get(item.id).labelled_by == "ana-ui"


def test_loopml_ui_serves_the_pages(tmp_path: Path) -> None:
    port = ui_seed.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env["LOOPML_HOME"] = str(tmp_path / ".loopml")
    process = subprocess.Popen([sys.executable, "-m", "loopml.cli.main", "ui", "--port",
                                str(port)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                status, body, _ = call(f"http://127.0.0.1:{port}/ui/experiments")
                break
            except OSError:
                assert time.monotonic() < deadline, "loopml ui did not answer in 60 s"
                time.sleep(0.1)
        assert status == 200 and "No experiments yet" in body
        status, _, headers = call(f"http://127.0.0.1:{port}/")
        assert status == 307 and headers["location"] == "/ui/experiments"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"loopml UI on http://127.0.0.1:{port}/ui/ (auth off" in output
    assert "Traceback" not in output
