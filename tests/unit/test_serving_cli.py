"""``loopml serve`` and ``loopml deploy serve`` turn their options and settings into the
server's options: the bearer token comes from ``--token``, else the ``serve_token`` setting
(``LOOPML_SERVE_TOKEN``). The server itself is replaced by a recorder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import loopml
from loopml.cli.main import cli
from loopml.deployments.api import Deployments
from loopml.registry import records as registry


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ServeOptions each command would have served."""
    calls: list[Any] = []
    monkeypatch.setattr("loopml.serving.server.serve",
                        lambda options, settings: calls.append(options))
    monkeypatch.setattr("loopml.deployments.lookup.current_version",
                        lambda settings, meta, ref: (1, "0" * 64))
    return calls


def _invoke(args: list[str], home: Path, **env: str) -> str:
    result = CliRunner().invoke(cli, args, env={"LOOPML_HOME": str(home),
                                                "LOOPML_PROGRESS": "false", **env})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(("args", "env", "token"), [
    ([], {}, None),
    ([], {"LOOPML_SERVE_TOKEN": "from-env"}, "from-env"),
    (["--token", "given"], {"LOOPML_SERVE_TOKEN": "from-env"}, "given"),
])
def test_serve_takes_its_token_from_the_option_then_the_setting(
        tmp_path: Path, served: list[Any], args: list[str], env: dict[str, str],
        token: str | None) -> None:
    _invoke(["serve", "churn@production", "--port", "8123", *args], tmp_path / ".loopml",
            **env)
    [options] = served
    assert (options.model, options.port, options.token) == ("churn@production", 8123, token)


def test_the_token_can_come_from_loopml_toml(tmp_path: Path, served: list[Any]) -> None:
    (tmp_path / "loopml.toml").write_text('serve_token = "from-file"\n')  # the cwd's
    _invoke(["serve", "churn@production"], tmp_path / ".loopml")
    assert served[0].token == "from-file"


def test_deploy_serve_takes_the_setting_too(tmp_path: Path, served: list[Any]) -> None:
    home = tmp_path / ".loopml"
    client = loopml.Client(loopml.load_settings(home=home, environ={},
                                                config_file=tmp_path / "none.toml"))
    with client.meta.write() as conn:
        registry.insert_version(conn, "churn", tree="0" * 64, flavor="sklearn")
    Deployments(client.meta, actor="test").create("api", model="churn/1")
    client.close()
    _invoke(["deploy", "serve", "api"], home, LOOPML_SERVE_TOKEN="from-env")
    [options] = served
    assert (options.deployment, options.token) == ("api", "from-env")
