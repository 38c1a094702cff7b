"""The step cache key: hash of the step's code (and loopml's version), of its input
artifacts' digests, of the dataset versions it reads and of its plain arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopml.blobs.hashing import canonical_json, hash_bytes
from loopml.pipelines.datasets import Dataset
from loopml.pipelines.materializers import OutputRef
from loopml.pipelines.trace import Node, StepOutput

__all__ = ["cache_key"]


def _encode(value: Any, outputs: Mapping[str, OutputRef]) -> Any:
    if isinstance(value, StepOutput):
        return ["output", outputs[value.node].digest]
    if isinstance(value, Dataset):
        return value.cache_identity
    if isinstance(value, list | tuple):
        return [_encode(v, outputs) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v, outputs) for k, v in value.items()}
    if isinstance(value, float) and value != value:  # NaN: canonical JSON has no NaN
        return ["nan"]
    return value


def cache_key(node: Node, outputs: Mapping[str, OutputRef],
              datasets: Mapping[str, Dataset]) -> str:
    """The key under which ``node``'s result is cached, given its inputs' stored outputs and
    the run's resolved datasets (reference → resolved Dataset)."""
    bound = node.step.signature.bind(*node.args, **node.kwargs)
    bound.apply_defaults()
    arguments = {name: _encode(_with_datasets(value, datasets), outputs)
                 for name, value in bound.arguments.items()}
    document = {"code": node.step.code_hash, "arguments": arguments}
    return hash_bytes(canonical_json(document))


def _with_datasets(value: Any, datasets: Mapping[str, Dataset]) -> Any:
    if isinstance(value, Dataset):
        return datasets.get(value.ref, value)
    if isinstance(value, list | tuple):
        return [_with_datasets(v, datasets) for v in value]
    if isinstance(value, dict):
        return {k: _with_datasets(v, datasets) for k, v in value.items()}
    return value
