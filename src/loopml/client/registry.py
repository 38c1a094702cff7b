"""The client's model registry methods (mixed into :class:`loopml.client.Client`)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopml.client.datasets import DatasetMethods
from loopml.errors import Conflict, InvalidArgument, NotFound
from loopml.registry import records
from loopml.registry.refs import ModelRef, parse_model_ref
from loopml.tracking.context import current_user

if TYPE_CHECKING:
    from loopml.models import LoadedModel
    from loopml.registry.entities import AliasEvent, ModelVersion, RegisteredModel

__all__ = ["ModelInfo", "ModelMethods"]


@dataclass(frozen=True)
class ModelInfo:
    """What ``log_model`` did: where the package is, and the version it registered."""

    run_id: str
    artifact_path: str
    flavor: str
    signature: dict[str, Any] | None
    registered_version: ModelVersion | None = None

    @property
    def uri(self) -> str:
        return f"runs:/{self.run_id}/{self.artifact_path}"


class ModelMethods(DatasetMethods):
    def log_model(self, run_id: str, model: object, artifact_path: str = "model", *,
                  input_example: Any = None, signature: Any = None,
                  registered_model_name: str | None = None, trusted: bool = False,
                  requirements: list[str] | None = None,
                  metadata: dict[str, Any] | None = None) -> ModelInfo:
        """Save ``model`` as a package in the run's artifacts (and register it if asked)."""
        from loopml.models import save_model

        with tempfile.TemporaryDirectory() as tmp:
            package = save_model(model, Path(tmp) / "model", input_example=input_example,
                                 signature=signature, requirements=requirements,
                                 metadata={**(metadata or {}), "run_id": run_id},
                                 trusted=trusted)
            self._store_package(run_id, package.path, artifact_path)
        manifest = package.manifest
        info = ModelInfo(run_id=run_id, artifact_path=artifact_path.strip("/"),
                         flavor=manifest.flavor,
                         signature=None if manifest.signature is None
                         else manifest.signature.to_dict())
        if registered_model_name is None:
            return info
        version = self.register_model(info.uri, registered_model_name)
        return ModelInfo(**{**info.__dict__, "registered_version": version})

    def _store_package(self, run_id: str, package: Path, artifact_path: str) -> None:
        """Put a saved package into the run's artifacts (the remote client uploads it)."""
        from loopml.tracking.artifacts import log_artifact

        log_artifact(self.meta, self.blobs, run_id, package, artifact_path)

    def register_model(self, source: str | Path, name: str, *,
                       description: str = "") -> ModelVersion:
        """A new version of ``name`` from ``runs:/RUN_ID/PATH`` or a package directory."""
        from loopml.registry.packages import register_dir, register_run_artifact

        self.flush()  # the version records the run's metrics: buffered points first
        text = str(source)
        if text.startswith("runs:/"):
            run_id, _, path = text.removeprefix("runs:/").partition("/")
            return register_run_artifact(self.meta, self.blobs, run_id=run_id,
                                         artifact_path=path or "model", name=name,
                                         description=description)
        if not Path(text).exists():
            raise NotFound(f"no model at {text!r}: give runs:/RUN_ID/PATH or the directory of "
                           "a saved model package")
        return register_dir(self.meta, self.blobs, path=text, name=name,
                            description=description)

    def list_registered_models(self) -> list[RegisteredModel]:
        with self.meta.read() as conn:
            return records.list_models(conn)

    def get_registered_model(self, name: str) -> RegisteredModel:
        with self.meta.read() as conn:
            return records.get_model(conn, name)

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        with self.meta.read() as conn:
            return records.list_versions(conn, name)

    def get_model_version(self, ref: str) -> ModelVersion:
        """``NAME/3``, ``NAME@ALIAS``, ``NAME`` (latest active) or ``models:/…``."""
        with self.meta.read() as conn:
            return records.resolve(conn, parse_model_ref(ref))

    def set_model_alias(self, name: str, alias: str, version: int, *, reason: str = "",
                        actor: str | None = None) -> AliasEvent:
        """Point ``alias`` at ``version``; the move is recorded in the audit log (``actor``:
        who moved it, default the current user)."""
        with self.meta.write() as conn:
            return records.set_alias(conn, name, alias, int(version),
                                     actor=actor or current_user(), reason=reason)

    def delete_model_alias(self, name: str, alias: str, *, reason: str = "",
                           actor: str | None = None) -> AliasEvent:
        with self.meta.write() as conn:
            return records.delete_alias(conn, name, alias, actor=actor or current_user(),
                                        reason=reason)

    def model_alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        with self.meta.read() as conn:
            return records.alias_history(conn, name, alias)

    def rollback_model_alias(self, name: str, alias: str, *, reason: str = "",
                             actor: str | None = None) -> AliasEvent:
        """Move ``alias`` back to the version it pointed to before its current one.

        Walks the audit log: the move that brought the alias to its current version (not
        counting earlier rollbacks) names the version to return to, so repeated rollbacks
        go further back, as an undo stack does."""
        with self.meta.write() as conn:
            current = records.resolve(conn, ModelRef(name, alias=alias)).version
            events = records.alias_history(conn, name, alias)
            target = None
            for event in reversed(events):
                if event.to_version == current and not event.reason.startswith("rollback"):
                    target = event.from_version
                    break
            if target is None:
                raise Conflict(f"{name}@{alias} has pointed to version {current} since it was "
                               "created: there is no earlier version to roll back to")
            why = f"rollback from version {current}" + (f": {reason}" if reason else "")
            return records.set_alias(conn, name, alias, target,
                                     actor=actor or current_user(), reason=why)

    def set_model_version_status(self, ref: str, status: Literal["active", "archived"]
                                 ) -> ModelVersion:
        if status not in ("active", "archived"):
            raise InvalidArgument(f"status must be 'active' or 'archived', got {status!r}")
        version = self.get_model_version(ref)
        with self.meta.write() as conn:
            return records.set_status(conn, version.model, version.version, status)

    def delete_model_version(self, ref: str) -> None:
        version = self.get_model_version(ref)
        with self.meta.write() as conn:
            records.delete_version(conn, version.model, version.version)

    def best_model_version(self, name: str, *, metric: str, mode: str = "max",
                           where: str | None = None) -> ModelVersion | None:
        """The active version with the best ``metric`` among those matching ``where``."""
        from loopml.registry.selection import best_version

        return best_version(self.list_model_versions(name), metric=metric, mode=mode,
                            where=where)

    def dataset_consumers(self, ref: str) -> list[ModelVersion]:
        """Model versions built by runs that read the dataset version ``ref``."""
        run_ids = [run.id for run, role in self.dataset_lineage(ref) if role == "input"]
        with self.meta.read() as conn:
            return records.versions_of_runs(conn, run_ids)

    def model_path(self, uri: str) -> Path:
        """A local directory holding the package ``uri`` names (materialised once, cached)."""
        from loopml.registry.materialize import materialize
        from loopml.tracking.artifacts import download_artifacts

        if uri.startswith("runs:/"):
            run_id, _, path = uri.removeprefix("runs:/").partition("/")
            dest = self.settings.home / "cache" / "runs" / run_id
            return download_artifacts(self.meta, self.blobs, run_id, path or "model", dest)
        if Path(uri).is_dir():
            return Path(uri)
        version = self.get_model_version(uri)
        return materialize(self.blobs, version.tree, self.settings.home / "cache" / "models")

    def load_model(self, uri: str, *, trusted: bool = False,
                   device: str | None = None) -> LoadedModel:
        """Load ``models:/NAME@ALIAS``, ``models:/NAME/3``, ``runs:/RUN_ID/PATH`` or a path."""
        from loopml.models import load_model

        return load_model(self.model_path(uri), trusted=trusted, device=device)

    def model_card(self, ref: str, *, output: Literal["markdown", "html"] = "markdown") -> str:
        """The model card of a version (see :mod:`loopml.registry.card`)."""
        from loopml.registry.card import ModelCard

        version = self.get_model_version(ref)
        with self.meta.read() as conn:
            model = records.get_model(conn, version.model)
            history = records.alias_history(conn, version.model)
        data: dict[str, Any] = {}
        for dataset_ref in version.datasets:
            try:
                found = self.get_dataset_version(dataset_ref)
                profile = self.dataset_profile(dataset_ref)
            except NotFound:
                continue
            data[dataset_ref] = {"rows": found.rows, "files": found.files, "columns": {} if
                                 profile is None else {n: c.summary() for n, c in
                                                       profile.columns.items()}}
        card = ModelCard(model=model, version=version, history=history, datasets=data)
        return card.html() if output == "html" else card.markdown()

    def convert_model(self, ref: str, *, to: str = "onnx",
                      tolerance: float = 1e-4) -> ModelVersion:
        """Convert a version (``to="onnx"``), check predictions agree, register the result as
        a new version of the same model linked to its source."""
        from loopml.blobs.build import build_tree
        from loopml.models import convert_to_onnx, read_manifest
        from loopml.registry.packages import register_tree

        if to != "onnx":
            raise InvalidArgument(f"unknown conversion target {to!r}; supported: onnx")
        source = self.get_model_version(ref)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "onnx"
            convert_to_onnx(self.model_path(source.uri), out, tolerance=tolerance)
            tree = build_tree(self.blobs, out).digest
            return register_tree(self.meta, name=source.model, tree=tree,
                                 manifest=read_manifest(out), run_id=source.run_id,
                                 description=f"ONNX conversion of version {source.version}",
                                 source_version_id=source.id, metrics=source.metrics)

    def build_model_bundle(self, ref: str, out: str | Path) -> Path:
        """A self-contained serving bundle (package, requirements, Dockerfile, entry point)."""
        from loopml.models import build_bundle

        version = self.get_model_version(ref)
        return build_bundle(self.model_path(version.uri), out)
