"""The public namespace is pinned: a change to it is a deliberate change to this list."""

from __future__ import annotations

import subprocess
import sys

import loopml

EXPECTED = [
    "ActiveRun", "ArtifactInfo", "Client", "Experiment", "LoopmlError", "Metric", "Run",
    "RunStatus", "Settings", "active_run", "create_experiment", "end_run", "get_experiment",
    "get_metric_history", "get_run", "list_experiments", "load_settings", "log_artifact",
    "log_dict", "log_metric", "log_metrics", "log_param", "log_params", "log_text",
    "search_runs", "set_tag", "set_tags", "start_run", "datasets",
    "ModelInfo", "load_model", "log_model", "register_model", "models",
    "Dataset", "hpo", "pipeline", "pipelines", "register", "step", "tune", "when",
    "automation", "monitoring",
]


def test_exported_members() -> None:
    assert sorted(loopml.__all__) == sorted(EXPECTED)
    for name in loopml.__all__:
        assert getattr(loopml, name) is not None


def test_import_is_light() -> None:
    code = ("import sys, loopml; heavy = [m for m in ('sqlalchemy', 'pandas', 'numpy', "
            "'alembic', 'rich', 'fsspec', 'click') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_raises_attribute_error() -> None:
    try:
        loopml.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_every_export_has_a_source() -> None:
    assert sorted([*loopml._EXPORTS, *loopml._SUBPACKAGES]) == sorted(loopml.__all__)


def test_data_status_does_not_load_sqlalchemy_for_the_embedded_store() -> None:
    code = ("import sys, loopml.client.base, loopml.datasets.quick_lookup, loopml.blobs.tree; "
            "print('sqlalchemy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
