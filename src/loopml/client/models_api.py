"""Module-level model API: ``loopml.log_model``, ``load_model`` and ``register_model``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.client.registry import ModelInfo
    from loopml.models import LoadedModel
    from loopml.registry.entities import ModelVersion

__all__ = ["load_model", "log_model", "register_model"]


def log_model(model: object, artifact_path: str = "model", *, input_example: Any = None,
              signature: Any = None, registered_model_name: str | None = None,
              trusted: bool = False, requirements: list[str] | None = None,
              metadata: dict[str, Any] | None = None) -> ModelInfo:
    """Save ``model`` into the active run's artifacts (signature inferred from
    ``input_example``); with ``registered_model_name``, also register it as a new version."""
    from loopml.client.fluent import _require_active, default_client

    run = _require_active()
    return default_client().log_model(
        run.id, model, artifact_path, input_example=input_example, signature=signature,
        registered_model_name=registered_model_name, trusted=trusted,
        requirements=requirements, metadata=metadata)


def load_model(uri: str | Path, *, trusted: bool = False,
               device: str | None = None) -> LoadedModel:
    """``load_model("models:/churn@production")``, ``"models:/churn/3"``, ``"runs:/ID/model"``
    or a package directory; ``.predict(DataFrame | ndarray | list[dict])``.

    A ``models:/`` URI on the embedded store is resolved without loading the metadata layer
    (SQLAlchemy), which keeps a cold load within a few milliseconds of the flavor's own."""
    from loopml.client.base import ClientBase
    from loopml.registry.quick_lookup import model_tree_quickly

    text = str(uri)
    fluent = sys.modules.get("loopml.client.fluent")
    client = getattr(fluent, "_client", None) or ClientBase()
    tree = model_tree_quickly(client.settings, text) if text.startswith("models:/") else None
    if tree is None:  # runs:/, paths, other stores, errors: the full client's path
        from loopml.client.fluent import default_client

        return default_client().load_model(text, trusted=trusted, device=device)
    from loopml.models import load_model as load_package
    from loopml.registry.materialize import materialize

    path = materialize(client.blobs, tree, client.settings.home / "cache" / "models")
    return load_package(path, trusted=trusted, device=device)


def register_model(source: str | Path, name: str, *, description: str = "") -> ModelVersion:
    """Register ``runs:/RUN_ID/PATH`` or a package directory as the next version of ``name``."""
    from loopml.client.fluent import default_client

    return default_client().register_model(source, name, description=description)
