"""Shared fixtures: a clean environment, a PostgreSQL database per test session, a moto S3
server on 127.0.0.1, and store URLs parametrised over every metadata backend."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get("LOOPML_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No LOOPML_* from the developer's shell, and a private working directory per test."""
    for key in list(os.environ):
        if key.startswith("LOOPML_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a fresh database on the local PostgreSQL server, dropped after the session."""
    sa = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    admin_url = sa.make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"loopml_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc}")
    yield admin_url.set(database=name).render_as_string(hide_password=False).replace(
        "postgresql+psycopg", "postgresql")
    with admin.connect() as conn:
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """The session database, emptied of loopml's tables after each test."""
    yield postgres_server
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_server.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Every metadata backend: the conformance suite runs once per value."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta' / 'loopml.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1, started once per session; yields its endpoint URL."""
    moto_server = pytest.importorskip("moto.server")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new empty bucket on the moto server; yields its name."""
    import boto3

    name = f"loopml-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


# ------------------------------------------------------------------ a local Ray head per run
# One head for the whole test run, shared by the xdist workers through a state file under a
# lock in the run's temporary directory; the last worker to finish stops it.

RAY_HEAD_PORTS = ("port", "ray-client-server-port", "node-manager-port", "object-manager-port",
                  "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                  "metrics-export-port", "runtime-env-agent-port")


def _start_ray_head() -> dict[str, object]:
    import shutil
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    ports = {name: _free_port() for name in RAY_HEAD_PORTS}
    # A small object store: tests move little data. (The log monitor must stay: without it
    # the client server cannot start a server per client.)
    # Ray's unix socket paths live under the temp dir and must stay under 108 bytes: keep it short.
    temp_dir = tempfile.mkdtemp(prefix="loopml-ray-", dir="/tmp")
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--num-cpus=2",
               "--include-dashboard=false",
               "--object-store-memory=100000000", "--disable-usage-stats",
               "--node-ip-address=127.0.0.1",
               f"--temp-dir={temp_dir}", *(f"--{name}={port}" for name, port in ports.items())]
    started = time.monotonic()
    # A session of its own: every process of the head shares one process group to stop.
    # No token auth: a loopback cluster for tests, whatever ~/.ray/auth_token holds.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=env)
    output, _ = head.communicate(timeout=180)
    if head.returncode != 0:
        shutil.rmtree(temp_dir, ignore_errors=True)
        pytest.fail(f"`ray start --head` failed ({head.returncode}):\n{output[-3000:]}")
    return {"address": f"ray://127.0.0.1:{ports['ray-client-server-port']}", "users": 0,
            "process_group": head.pid, "temp_dir": temp_dir,
            "start_seconds": round(time.monotonic() - started, 1)}


def _stop_ray_head(state: dict[str, object]) -> None:
    import contextlib
    import shutil
    import signal
    import time

    group = int(str(state["process_group"]))
    with contextlib.suppress(ProcessLookupError):  # its workers see the raylet go and exit
        os.killpg(group, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    shutil.rmtree(str(state["temp_dir"]), ignore_errors=True)


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ray://127.0.0.1:PORT`` of a local Ray head with 2 CPUs, one for the whole test run."""
    import json

    pytest.importorskip("ray")
    from filelock import FileLock  # a dependency of ray

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    state_file = shared / "loopml-ray-head.json"
    with FileLock(str(shared / "loopml-ray-head.lock")):
        state = json.loads(state_file.read_text()) if state_file.exists() else _start_ray_head()
        state["users"] = int(str(state["users"])) + 1
        state_file.write_text(json.dumps(state))
    yield str(state["address"])
    with FileLock(str(shared / "loopml-ray-head.lock")):
        state = json.loads(state_file.read_text())
        state["users"] = int(str(state["users"])) - 1
        if state["users"] > 0:
            state_file.write_text(json.dumps(state))
        else:
            state_file.unlink()
            _stop_ray_head(state)
