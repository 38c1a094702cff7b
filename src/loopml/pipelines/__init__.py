"""Pipelines: steps, DAGs traced from plain Python, the step cache, resume, executors.

Re-exports only; see :mod:`loopml.pipelines.flow` for how a run goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

_EXPORTS = {
    "Dataset": "loopml.pipelines.datasets",
    "Pipeline": "loopml.pipelines.flow",
    "pipeline": "loopml.pipelines.flow",
    "resume": "loopml.pipelines.flow",
    "Step": "loopml.pipelines.steps",
    "step": "loopml.pipelines.steps",
    "when": "loopml.pipelines.trace",
    "StepOutput": "loopml.pipelines.trace",
    "register": "loopml.pipelines.publish",
    "skip": "loopml.pipelines.task",
    "Skip": "loopml.pipelines.task",
    "PipelineRun": "loopml.pipelines.entities",
    "StepRecord": "loopml.pipelines.entities",
    "StepStatus": "loopml.pipelines.entities",
    "BytesMaterializer": "loopml.pipelines.materializers",
    "DirectoryMaterializer": "loopml.pipelines.materializers",
    "Materializer": "loopml.pipelines.materializers",
    "register_materializer": "loopml.pipelines.materializers",
    "Executor": "loopml.pipelines.executors.base",
    "open_executor": "loopml.pipelines.executors.base",
    "current_step": "loopml.pipelines.context",
}

__all__ = ["BytesMaterializer", "Dataset", "DirectoryMaterializer", "Executor", "Materializer",
           "Pipeline", "PipelineRun", "Skip", "Step", "StepOutput", "StepRecord", "StepStatus",
           "current_step", "open_executor", "pipeline", "register", "register_materializer",
           "resume", "skip", "step", "when"]

if TYPE_CHECKING:
    from loopml.pipelines.context import current_step
    from loopml.pipelines.datasets import Dataset
    from loopml.pipelines.entities import PipelineRun, StepRecord, StepStatus
    from loopml.pipelines.executors.base import Executor, open_executor
    from loopml.pipelines.flow import Pipeline, pipeline, resume
    from loopml.pipelines.materializers import (
        BytesMaterializer,
        DirectoryMaterializer,
        Materializer,
        register_materializer,
    )
    from loopml.pipelines.publish import register
    from loopml.pipelines.steps import Step, step
    from loopml.pipelines.task import Skip, skip
    from loopml.pipelines.trace import StepOutput, when

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
