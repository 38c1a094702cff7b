"""Model packages in the registry: register one from a run's artifacts or a directory, and
materialise a version into a local cache to load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from loopml.blobs import BlobStore
from loopml.blobs.build import build_tree
from loopml.blobs.chunking import FileEntry, open_entry
from loopml.blobs.tree import iter_files, tree_from_entries
from loopml.datasets.tables import dataset_versions, datasets, run_datasets
from loopml.errors import NotFound
from loopml.models.manifest import MANIFEST_NAME, ModelManifest, parse_manifest, read_manifest
from loopml.registry import records
from loopml.registry.entities import ModelVersion
from loopml.store import MetadataStore
from loopml.tracking.artifacts import list_artifacts
from loopml.tracking.context import current_user
from loopml.tracking.records import get_run

__all__ = ["manifest_of_tree", "register_dir", "register_run_artifact", "register_tree"]


def manifest_of_tree(blobs: BlobStore, tree: str, source: str) -> ModelManifest:
    for path, entry in iter_files(blobs, tree):
        if path == MANIFEST_NAME:
            with open_entry(blobs, entry) as stream:
                return parse_manifest(stream.read(), source=f"{source}/{MANIFEST_NAME}")
    raise NotFound(f"no model at {source}: it has no {MANIFEST_NAME}; log the model with "
                   "loopml.log_model or save it with loopml.models.save_model")


def _run_inputs(conn: sa.Connection, run_id: str) -> list[str]:
    rows = conn.execute(
        sa.select(datasets.c.name, dataset_versions.c.version)
        .select_from(run_datasets.join(dataset_versions,
                                       dataset_versions.c.id == run_datasets.c.version_id)
                     .join(datasets, datasets.c.id == dataset_versions.c.dataset_id))
        .where(run_datasets.c.run_id == run_id, run_datasets.c.role == "input")
        .order_by(datasets.c.name)).all()
    return [f"{name}@{version}" for name, version in rows]


def register_tree(meta: MetadataStore, *, name: str, tree: str, manifest: ModelManifest,
                  run_id: str | None, description: str = "",
                  source_version_id: str | None = None,
                  metrics: dict[str, float] | None = None) -> ModelVersion:
    """A new version of ``name`` for the package stored as ``tree``; metrics, params and the
    dataset versions read come from the run that built it."""
    fields: dict[str, Any] = {"metrics": dict(metrics or {}), "params": {}, "datasets": []}
    with meta.write() as conn:
        if run_id is not None:
            run = get_run(conn, run_id)
            fields = {"metrics": {**run.metrics, **fields["metrics"]}, "params": run.params,
                      "datasets": _run_inputs(conn, run_id)}
        return records.insert_version(
            conn, name, tree=tree, flavor=manifest.flavor, run_id=run_id,
            source_version_id=source_version_id, description=description,
            signature=None if manifest.signature is None else manifest.signature.to_dict(),
            created_by=current_user(), **fields)


def register_run_artifact(meta: MetadataStore, blobs: BlobStore, *, run_id: str,
                          artifact_path: str, name: str, description: str = "") -> ModelVersion:
    """Register the package a run logged at ``artifact_path`` (its files are already blobs)."""
    prefix = artifact_path.strip("/")
    with meta.read() as conn:
        files = list_artifacts(conn, run_id, prefix)
    entries = {f.path[len(prefix) + 1:] if prefix else f.path: FileEntry(f.digest, f.size)
               for f in files if f.path != prefix}
    source = f"runs:/{run_id}/{prefix}"
    if MANIFEST_NAME not in entries:
        raise NotFound(f"no model at {source}: it has no {MANIFEST_NAME}; log the model with "
                       "loopml.log_model")
    with open_entry(blobs, entries[MANIFEST_NAME]) as stream:
        manifest = parse_manifest(stream.read(), source=f"{source}/{MANIFEST_NAME}")
    tree = tree_from_entries(blobs, entries)
    return register_tree(meta, name=name, tree=tree, manifest=manifest, run_id=run_id,
                         description=description)


def register_dir(meta: MetadataStore, blobs: BlobStore, *, path: str | Path, name: str,
                 description: str = "", run_id: str | None = None) -> ModelVersion:
    """Register the package in the directory ``path``."""
    manifest = read_manifest(path)
    tree = build_tree(blobs, path).digest
    return register_tree(meta, name=name, tree=tree, manifest=manifest, run_id=run_id,
                         description=description)
