"""``loopml server`` as a real process, and the ``loopml`` command working through it with
``LOOPML_TRACKING_URI``; several server processes (``--workers``, or separate servers) on one
PostgreSQL database behave as one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import urllib3
from servers import free_port

import loopml
from loopml.client.remote import RemoteClient

pytest.importorskip("uvicorn")


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    env.update({f"LOOPML_{k.upper()}": v for k, v in values.items()})
    env["LOOPML_PROGRESS"] = "false"
    return env


@contextmanager
def served(env: dict[str, str], *args: str) -> Iterator[str]:
    """``loopml server`` in a process of its own; yields its URL once it answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "loopml.cli.main", "server", "--port",
                                str(port), *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    pool = urllib3.PoolManager(retries=False)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "loopml server did not answer within 60 s"
            try:
                if pool.request("GET", f"{url}/api/v1/openapi.json").status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def loopml_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loopml.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def _remote(url: str, home: Path) -> RemoteClient:
    return RemoteClient(loopml.load_settings(home=home, tracking_uri=url, progress=False))


def test_the_cli_works_through_a_server(tmp_path: Path) -> None:
    with served(_env(home=str(tmp_path / "server"))) as url:
        client = _remote(url, tmp_path / "client")
        ids = []
        for model, auc in (("rf", 0.91), ("gb", 0.95)):
            with client.start_run("cli", name=f"run-{model}") as run:
                run.log_params({"model": model})
                run.log_metrics({"auc": auc})
                run.log_text("hi", "notes.txt")
                ids.append(run.id)
        client.close()
        env = _env(tracking_uri=url, home=str(tmp_path / "cli"))
        listed = loopml_cli(env, "runs", "list", "-e", "cli", "--json", "-o", "metrics.auc desc")
        assert listed.returncode == 0, listed.stderr
        assert [r["name"] for r in json.loads(listed.stdout)] == ["run-gb", "run-rf"]
        shown = loopml_cli(env, "runs", "show", ids[0][:8], "--json")
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        assert data["run_id"] == ids[0] and data["artifacts"][0]["path"] == "notes.txt"
        experiments = loopml_cli(env, "experiments", "list", "--json")
        assert [e["name"] for e in json.loads(experiments.stdout)] == ["cli"]
        compared = loopml_cli(env, "runs", "compare", ids[0][:8], ids[1][:8])
        assert compared.returncode == 0 and "metrics.auc" in compared.stdout
        models = loopml_cli(env, "models", "list", "--json")
        assert models.returncode == 0 and json.loads(models.stdout) == []
        local_only = loopml_cli(env, "tokens", "list")
        assert local_only.returncode == 1 and "Traceback" not in local_only.stderr
        assert "needs direct access to the store" in local_only.stderr
    assert not (tmp_path / "cli" / "loopml.db").exists()  # nothing went to a local store


def test_an_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    env = _env(tracking_uri=f"http://127.0.0.1:{free_port()}", home=str(tmp_path))
    answer = loopml_cli(env, "experiments", "list")
    assert answer.returncode == 1 and "Traceback" not in answer.stderr
    assert "cannot reach the loopml server" in answer.stderr
    bad = loopml_cli(_env(tracking_uri="ftp://host"), "experiments", "list")
    assert bad.returncode == 1 and "http(s)://" in bad.stderr


@pytest.mark.postgres
def test_server_processes_on_one_database_behave_as_one(tmp_path: Path,
                                                        postgres_url: str) -> None:
    from loopml.store import MetadataStore

    MetadataStore(postgres_url, auto_upgrade=True).close()  # 'loopml db upgrade'
    env = _env(database_url=postgres_url, blob_url=f"file://{tmp_path / 'blobs'}",
               home=str(tmp_path / "server"))
    with served(env, "--workers", "2") as first, served(env) as second:
        one, two = _remote(first, tmp_path / "c1"), _remote(second, tmp_path / "c2")
        try:
            with one.start_run("shared") as run:
                run.log_param("lr", 0.1)
                run.log_text("from one", "a.txt")
            two.log_params(run.id, {"depth": 3})
            two.end_run(run.id, "KILLED")
            for _ in range(8):  # each request may land on either worker of the first server
                seen = one.get_run(run.id)
                assert seen.params == {"lr": "0.1", "depth": "3"}
                assert seen.status.value == "KILLED"
            out = two.download_artifacts(run.id, "a.txt", tmp_path / "out")
            assert out.read_text() == "from one"
            assert [r.id for r in two.search_runs("shared")] == [run.id]
        finally:
            one.close()
            two.close()
