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
