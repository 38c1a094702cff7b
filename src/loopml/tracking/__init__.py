"""Experiment tracking: experiments, runs, params, metric history, tags, artifacts, search."""

from loopml.tracking.entities import ArtifactInfo, Experiment, Metric, Run, RunStatus

__all__ = ["ArtifactInfo", "Experiment", "Metric", "Run", "RunStatus"]
