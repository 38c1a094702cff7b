"""Which model packages the gate may load that need trust, and with which types.

scikit-learn models are stored with skops, which instantiates only the types on its trusted
list; tree models hold others (``sklearn.tree._tree.Tree`` for random forests and gradient
boosting, ``…TreePredictor`` for histogram gradient boosting), so loading them needs the
caller's trust (:mod:`loopml.models.flavors.sklearn`). The gate does not trust blindly: it
loads a skops package trusting exactly the types the file holds, and only when each of them
is vouched for, by

- the gate policy's ``trusted_types`` (``gate: {metric: auc, trusted_types:
  [sklearn.tree._tree.Tree]}`` in ``loopml.yaml``): the project says it trusts them; or
- the package itself, when the version was registered by a retrain of the agent (the
  project's own pipeline, run by the agent from the project's code): the types its
  ``save_model`` found in the live model and recorded in the package's manifest, which
  the registry stores with the version's content-addressed tree.

Anything else loads as :func:`~loopml.models.load_model` loads it by default: a pickle
never loads without ``trusted=True``, a skops file with a type nobody vouched for is refused
with a message that names the type and this policy option.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from loopml.automation.tables import automation_runs

if TYPE_CHECKING:
    from loopml.client.embedded import Client
    from loopml.models.manifest import ModelManifest
    from loopml.registry.entities import ModelVersion

__all__ = ["built_by_agent", "recorded_types", "skops_types_allowed"]


def built_by_agent(client: Client, version: ModelVersion) -> bool:
    """Whether ``version`` is the one a retrain of the agent registered (its row names the
    version and the pipeline run that built it)."""
    if version.run_id is None:
        return False
    with client.meta.read() as conn:
        row = conn.execute(sa.select(automation_runs.c.id).where(
            automation_runs.c.run_id == version.run_id,
            automation_runs.c.model == version.model,
            automation_runs.c.version == version.version).limit(1)).first()
    return row is not None


def _skops_file(manifest: ModelManifest, path: Path) -> Path | None:
    data = manifest.flavor_data
    if manifest.flavor != "sklearn" or data.get("serializer", "skops") != "skops":
        return None
    return path / str(data.get("file", "model.skops"))


def recorded_types(path: Path) -> tuple[str, ...]:
    """The types outside skops' trusted list that the package's manifest recorded when the
    model was saved (none for a package that is not a skops one)."""
    from loopml.models.manifest import read_manifest

    manifest = read_manifest(path)
    if _skops_file(manifest, path) is None:
        return ()
    found = manifest.flavor_data.get("untrusted_types") or ()
    return tuple(str(name) for name in found) if isinstance(found, list | tuple) else ()


def skops_types_allowed(path: Path, allowed: Collection[str]) -> bool:
    """True when the package at ``path`` is a skops file whose types outside skops' trusted
    list are all in ``allowed`` (and there is at least one): it may then be loaded with
    ``trusted=True``, which lets exactly those types through."""
    from loopml.models.flavors.sklearn import import_skops
    from loopml.models.manifest import read_manifest

    if not allowed:
        return False
    file = _skops_file(read_manifest(path), path)
    if file is None or not file.is_file():
        return False
    try:
        held = set(import_skops().get_untrusted_types(file=file))
    except Exception:  # a damaged file: trust nothing, loading it reports the problem
        return False
    return bool(held) and held <= set(allowed)
