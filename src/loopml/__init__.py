"""loopml: datasets, pipelines, tracking, registry, serving, monitoring and automation.

This module only re-exports the public API. Names are imported on first access, so
``import loopml`` stays light (no database driver or dataframe library loaded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "LoopmlError": "loopml.errors",
    "Settings": "loopml.config",
    "load_settings": "loopml.config",
    "Client": "loopml.client.embedded",
    "ActiveRun": "loopml.client.active_run",
    "Experiment": "loopml.tracking.entities",
    "Metric": "loopml.tracking.entities",
    "Run": "loopml.tracking.entities",
    "RunStatus": "loopml.tracking.entities",
    "ArtifactInfo": "loopml.tracking.entities",
    "ModelInfo": "loopml.client.registry",
    "Dataset": "loopml.pipelines.datasets",
    "pipeline": "loopml.pipelines.flow",
    "register": "loopml.pipelines.publish",
    "step": "loopml.pipelines.steps",
    "tune": "loopml.hpo.tuning",
    "when": "loopml.pipelines.trace",
    **{name: "loopml.client.models_api" for name in ("load_model", "log_model",
                                                     "register_model")},
    **{name: "loopml.client.fluent" for name in (
        "active_run", "create_experiment", "end_run", "get_experiment", "get_metric_history",
        "get_run", "list_experiments", "log_artifact", "log_dict", "log_metric",
        "log_metrics", "log_param", "log_params", "log_text", "search_runs", "set_tag",
        "set_tags", "start_run")},
}

__all__ = [
    "ActiveRun",
    "ArtifactInfo",
    "Client",
    "Dataset",
    "Experiment",
    "LoopmlError",
    "Metric",
    "ModelInfo",
    "Run",
    "RunStatus",
    "Settings",
    "active_run",
    "automation",
    "create_experiment",
    "datasets",
    "end_run",
    "get_experiment",
    "get_metric_history",
    "get_run",
    "hpo",
    "list_experiments",
    "load_model",
    "load_settings",
    "log_artifact",
    "log_dict",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "models",
    "monitoring",
    "pipeline",
    "pipelines",
    "register",
    "register_model",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
    "tune",
    "when",
]

if TYPE_CHECKING:
    from loopml.client.active_run import ActiveRun
    from loopml.client.embedded import Client
    from loopml.client.fluent import (
        active_run,
        create_experiment,
        end_run,
        get_experiment,
        get_metric_history,
        get_run,
        list_experiments,
        log_artifact,
        log_dict,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_text,
        search_runs,
        set_tag,
        set_tags,
        start_run,
    )
    from loopml.client.models_api import load_model, log_model, register_model
    from loopml.client.registry import ModelInfo
    from loopml.config import Settings, load_settings
    from loopml.errors import LoopmlError
    from loopml.hpo.tuning import tune
    from loopml.pipelines.datasets import Dataset
    from loopml.pipelines.flow import pipeline
    from loopml.pipelines.publish import register
    from loopml.pipelines.steps import step
    from loopml.pipelines.trace import when
    from loopml.tracking.entities import ArtifactInfo, Experiment, Metric, Run, RunStatus


_SUBPACKAGES = ("automation", "datasets", "hpo", "models", "monitoring", "pipelines")


__getattr__ = lazy_exports(__name__, _EXPORTS, globals(), subpackages=_SUBPACKAGES)


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
