"""``loopml-model.yaml``: the manifest that makes a directory a model package.

::

    format_version: 1
    flavor: sklearn
    flavor_data: {file: model.skops, serializer: skops, estimator: LogisticRegression}
    signature:
      inputs: {columns: [{name: age, dtype: float64}, ...]}
      outputs: {tensors: [{name: null, dtype: int64, shape: [-1]}]}
    input_example: {path: input_example.json, type: dataframe}
    requirements: [scikit-learn==1.9.1, skops==0.16.0, numpy==2.4.6, ...]
    python_version: 3.11.7
    loopml_version: 0.1.0
    created_at: '2026-01-01T12:00:00.000000+00:00'
    metadata: {}          # free: the registry puts metrics, params and lineage here

The manifest is YAML for people to read; values are plain JSON types, so the registry may
also hash it as canonical JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopml.errors import CorruptData, InvalidArgument, NotFound
from loopml.models.example import ExampleRef
from loopml.models.signature import Signature

__all__ = ["FORMAT_VERSION", "MANIFEST_NAME", "ModelManifest", "parse_manifest", "read_manifest",
           "write_manifest"]

MANIFEST_NAME = "loopml-model.yaml"
FORMAT_VERSION = 1


def _yaml() -> Any:
    import yaml

    return yaml


def plain_json(value: Any, what: str) -> Any:
    """``value`` as plain JSON types (numpy scalars become numbers, dates ISO strings)."""
    def convert(item: Any) -> Any:
        if hasattr(item, "item"):
            return item.item()
        if hasattr(item, "isoformat"):
            return item.isoformat()
        if isinstance(item, set | frozenset | tuple):
            return list(item)
        raise TypeError(f"a {type(item).__name__} ({item!r})")

    try:
        return json.loads(json.dumps(value, default=convert))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} must hold JSON values (str, number, bool, None, lists, "
                              f"dicts with str keys); it holds {exc}") from exc


@dataclass(frozen=True)
class ModelManifest:
    """Everything ``loopml-model.yaml`` says about a model package."""

    flavor: str
    flavor_data: Mapping[str, Any]
    requirements: tuple[str, ...]
    python_version: str
    loopml_version: str
    created_at: str
    signature: Signature | None = None
    input_example: ExampleRef | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def with_metadata(self, metadata: Mapping[str, Any]) -> ModelManifest:
        """A copy with ``metadata`` merged over the current metadata."""
        merged = {**self.metadata, **plain_json(dict(metadata), "metadata")}
        return replace(self, metadata=merged)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "flavor": self.flavor,
            "flavor_data": dict(self.flavor_data),
            "signature": self.signature.to_dict() if self.signature else None,
            "input_example": self.input_example.to_dict() if self.input_example else None,
            "requirements": list(self.requirements),
            "python_version": self.python_version,
            "loopml_version": self.loopml_version,
            "created_at": self.created_at,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "manifest") -> ModelManifest:
        version = data.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise InvalidArgument(f"{source} has format_version {version!r}; this loopml reads "
                                  f"up to {FORMAT_VERSION}: upgrade loopml to load it")
        missing = [k for k in ("flavor", "requirements", "python_version", "loopml_version",
                               "created_at") if k not in data]
        if missing:
            raise CorruptData(f"{source} lacks {', '.join(missing)}; save the model again")
        example = data.get("input_example")
        signature = data.get("signature")
        try:
            return cls(
                flavor=str(data["flavor"]),
                flavor_data=dict(data.get("flavor_data") or {}),
                requirements=tuple(str(r) for r in data["requirements"] or ()),
                python_version=str(data["python_version"]),
                loopml_version=str(data["loopml_version"]),
                created_at=str(data["created_at"]),
                signature=Signature.from_dict(signature) if signature else None,
                input_example=ExampleRef(str(example["path"]), str(example["type"]))
                if example else None,
                metadata=dict(data.get("metadata") or {}),
                format_version=version,
            )
        except (KeyError, TypeError) as exc:
            raise CorruptData(f"{source} is malformed ({exc!r}); save the model again") from exc

    @staticmethod
    def now() -> str:
        return datetime.now(UTC).isoformat(timespec="microseconds")


def read_manifest(directory: str | Path) -> ModelManifest:
    """The manifest of the package in ``directory``; :class:`NotFound` when there is none."""
    path = Path(directory) / MANIFEST_NAME
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        what = "no such directory" if not Path(directory).exists() else f"no {MANIFEST_NAME}"
        raise NotFound(f"no model package at {directory} ({what}); give the directory that "
                       "save_model wrote") from None
    return parse_manifest(text, source=str(path))


def parse_manifest(text: str | bytes, *, source: str) -> ModelManifest:
    """A manifest from its YAML text (read with libyaml's C loader where it is available)."""
    yaml = _yaml()
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise CorruptData(f"{source} is not valid YAML ({exc}); save the model again") from exc
    if not isinstance(data, Mapping):
        raise CorruptData(f"{source} does not hold a mapping; save the model again")
    return ModelManifest.from_dict(data, source=source)


def write_manifest(directory: str | Path, manifest: ModelManifest) -> Path:
    """Write ``loopml-model.yaml`` into ``directory``."""
    yaml = _yaml()
    path = Path(directory) / MANIFEST_NAME
    text = yaml.dump(manifest.to_dict(), Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                     sort_keys=False, default_flow_style=False, allow_unicode=True)
    path.write_text(text)
    return path
