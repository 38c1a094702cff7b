from __future__ import annotations

from pathlib import Path

import pytest

from loopml.config import load_settings
from loopml.errors import InvalidArgument


def test_defaults_live_under_dot_loopml() -> None:
    settings = load_settings(environ={})
    assert settings.home == Path(".loopml")
    assert settings.database_url == "sqlite:///.loopml/loopml.db"
    assert settings.blob_url.startswith("file://") and settings.blob_url.endswith(".loopml/blobs")
    assert settings.is_embedded


def test_precedence_arguments_then_environment_then_file(tmp_path: Path) -> None:
    config = tmp_path / "loopml.toml"
    config.write_text('[loopml]\ndefault_experiment = "from-file"\nblob_workers = 3\n'
                      'metric_flush_interval = 2.5\n')
    env = {"LOOPML_DEFAULT_EXPERIMENT": "from-env", "LOOPML_PROGRESS": "false"}
    settings = load_settings(environ=env, config_file=config)
    assert settings.default_experiment == "from-env"
    assert settings.blob_workers == 3 and settings.metric_flush_interval == 2.5
    assert settings.progress is False
    assert load_settings(environ=env, config_file=config,
                         default_experiment="arg").default_experiment == "arg"


def test_reads_loopml_toml_in_working_directory() -> None:
    Path("loopml.toml").write_text('home = "elsewhere"\n')
    assert load_settings(environ={}).home == Path("elsewhere")


@pytest.mark.parametrize(("env", "message"), [
    ({"LOOPML_BLOB_WORKERS": "many"}, r"\$LOOPML_BLOB_WORKERS has value 'many'"),
    ({"LOOPML_PROGRESS": "maybe"}, "LOOPML_PROGRESS"),
    ({"LOOPML_METRIC_FLUSH_INTERVAL": "0"}, "must be > 0"),
])
def test_bad_environment_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        load_settings(environ=env)


def test_bad_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "loopml.toml"
    bad.write_text("home = \n")
    with pytest.raises(InvalidArgument, match="not valid TOML"):
        load_settings(environ={}, config_file=bad)
    bad.write_text('colour = "red"\n')
    with pytest.raises(InvalidArgument, match="unknown setting.*colour.*known settings"):
        load_settings(environ={}, config_file=bad)


def test_unknown_argument_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match="unknown setting.*nope"):
        load_settings(environ={}, nope=1)


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})
    with pytest.raises(AttributeError):
        settings.home = Path("x")  # type: ignore[misc]
