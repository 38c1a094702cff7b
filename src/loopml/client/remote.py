"""The remote client: the embedded client's methods, spoken over ``/api/v1`` to a
``loopml server`` (``LOOPML_TRACKING_URI=http://host:5000``).

:class:`RemoteClient` is a :class:`~loopml.client.Client` whose tracking, registry and
model methods send requests instead of opening the stores: one interface, two
implementations, one conformance suite (``tests/contract/test_client_conformance.py``).
Errors raised by the server arrive as the same :class:`~loopml.errors.LoopmlError` classes.
Metric points logged in a run are buffered and sent in batches, as the embedded client
writes them. A method the server does not offer (one that needs the stores themselves:
``client.meta``, ``client.blobs``) raises :class:`~loopml.errors.Conflict` saying so, never
reads the local store by mistake.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from urllib.parse import quote

from loopml.client.embedded import Client, runs_to_dataframe
from loopml.client.http import HttpSession, quote_path
from loopml.client.remote_datasets import RemoteDatasetMethods
from loopml.client.remote_ops import RemoteOpsMethods
from loopml.config import Settings
from loopml.errors import Conflict, InvalidArgument, NotFound
from loopml.server.api import wire
from loopml.tracking.context import code_version_tags, current_user, environment_tags
from loopml.tracking.entities import ArtifactInfo, Experiment, Metric, Run, RunStatus
from loopml.tracking.validation import artifact_path as check_artifact_path
from loopml.tracking.validation import check_key, metric_value, param_value, run_status

if TYPE_CHECKING:
    import pandas as pd

    from loopml.blobs import BlobStore
    from loopml.client.active_run import ActiveRun
    from loopml.registry.entities import AliasEvent, ModelVersion, RegisteredModel
    from loopml.store import MetadataStore
    from loopml.tracking.writes import MetricPoint

__all__ = ["RemoteClient", "store_needed"]

API = "/api/v1"


def store_needed(what: str = "this command") -> NoReturn:
    """Raise the error of an operation that needs the stores themselves, not the server."""
    raise Conflict(f"{what} needs direct access to the store, which a loopml server does not "
                   "offer over HTTP; run it on the server, or unset LOOPML_TRACKING_URI to use "
                   "the local store")


def _inside(path: str, prefix: str) -> str:
    """``path`` (listed by the server under ``prefix``) if it is a relative path below
    ``prefix``; a listing that would write elsewhere is refused, whoever sent it."""
    from loopml.blobs.entry import check_tree_path

    try:
        check_tree_path(path)
    except InvalidArgument:
        raise InvalidArgument(f"the server listed the artifact path {path!r}, which is not a "
                              "relative path inside the run's artifacts; nothing was "
                              "downloaded") from None
    if prefix and not path.startswith(prefix + "/"):
        raise InvalidArgument(f"the server listed the artifact path {path!r}, which is not "
                              f"under the requested {prefix!r}; nothing was downloaded")
    return path


def _q(segment: str) -> str:
    """One URL path segment (a run id, model name, alias)."""
    return quote_path(str(segment)).replace("/", "%2F")


# ``deployments`` is a RemoteDeployments here: the same methods as Deployments, over HTTP.
class RemoteClient(RemoteOpsMethods, RemoteDatasetMethods, Client):  # type: ignore[misc]
    """The client of ``settings.tracking_uri`` (a ``loopml server``): tracking, registry and
    model methods here, dataset methods from
    :class:`~loopml.client.remote_datasets.RemoteDatasetMethods`."""

    def __init__(self, settings: Settings | None = None, *,
                 session: HttpSession | None = None) -> None:
        super().__init__(settings)
        if session is None:
            if not self.settings.is_remote:
                raise InvalidArgument("RemoteClient needs a tracking server: set "
                                      "LOOPML_TRACKING_URI to e.g. http://127.0.0.1:5000")
            session = HttpSession(self.settings.tracking_uri,
                                  token=self.settings.tracking_token,
                                  headers={wire.USER_HEADER: quote(current_user())})
        #: The HTTP session to the server (also used by the dataset methods).
        self.http = session
        self._user = current_user()

    def __repr__(self) -> str:
        return f"RemoteClient({self.http.base_url!r})"

    # The stores are the server's: nothing here may open local ones by mistake.
    @property  # type: ignore[override]
    def meta(self) -> MetadataStore:
        store_needed()

    @property  # type: ignore[override]
    def blobs(self) -> BlobStore:
        store_needed()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.http.close()

    def _write_points(self, points: Sequence[MetricPoint]) -> None:
        """Send buffered points in requests of at most ``wire.POINTS_PER_REQUEST``.

        When a request fails after earlier ones of the batch went through, the points sent
        are removed from ``points`` (the buffer's own list, which it queues again on an
        error), so a retry sends only what was not written."""
        size = wire.POINTS_PER_REQUEST
        for start in range(0, len(points), size):
            try:
                self.http.request("POST", f"{API}/metrics/batch", json={"points": [
                    [p.run_id, p.key, wire.number_out(p.value), p.step, p.timestamp]
                    for p in points[start:start + size]]})
            except BaseException:
                if start and isinstance(points, list):
                    del points[:start]
                raise

    # -- experiments -----------------------------------------------------------------
    def create_experiment(self, name: str, *, description: str = "") -> Experiment:
        return wire.experiment_in(self.http.request(
            "POST", f"{API}/experiments", json={"name": name, "description": description}))

    def get_experiment(self, name_or_id: str) -> Experiment:
        return wire.experiment_in(self.http.request(
            "GET", f"{API}/experiments/{quote_path(name_or_id)}"))

    def list_experiments(self) -> list[Experiment]:
        found = self.http.request("GET", f"{API}/experiments")["experiments"]
        return [wire.experiment_in(e) for e in found]

    # -- runs ------------------------------------------------------------------------
    def start_run(self, experiment: str | None = None, *, name: str | None = None,
                  tags: Mapping[str, Any] | None = None,
                  parent_run_id: str | None = None) -> ActiveRun:
        from loopml.client.active_run import ActiveRun
        from loopml.models.prefetch import prefetch_model_imports

        user_tags = {check_key(k, kind="tag"): str(v) for k, v in (tags or {}).items()}
        system_tags = {**code_version_tags(), **environment_tags()}
        prefetch_model_imports()
        run = wire.run_in(self.http.request("POST", f"{API}/runs", json={
            "experiment": experiment or self.settings.default_experiment, "name": name,
            "tags": {**system_tags, **user_tags}, "parent_run_id": parent_run_id,
            "user": self._user}))
        return ActiveRun(self, run)

    def end_run(self, run_id: str, status: RunStatus | str = RunStatus.FINISHED) -> None:
        status = run_status(status)
        self._metric_buffer.flush()
        self.http.request("PATCH", f"{API}/runs/{_q(run_id)}", json={"status": status.value},
                          idempotent=True)

    def get_run(self, run_id: str) -> Run:
        self._metric_buffer.flush()
        return wire.run_in(self.http.request("GET", f"{API}/runs/{_q(run_id)}"))

    def resolve_run_id(self, id_or_prefix: str) -> str:
        """The full id of the run ``id_or_prefix`` names (a unique prefix of 4+ characters)."""
        found = self.http.request("GET", f"{API}/runs/{_q(id_or_prefix)}",
                                  params={"prefix": True})
        return str(found["id"])

    def delete_run(self, run_id: str) -> None:
        self.http.request("DELETE", f"{API}/runs/{_q(run_id)}")

    # -- logging ---------------------------------------------------------------------
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        values = {check_key(k, kind="param"): param_value(k, v) for k, v in params.items()}
        self.http.request("POST", f"{API}/runs/{_q(run_id)}/params", json={"params": values},
                          idempotent=True)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        values = {check_key(k, kind="tag"): str(v) for k, v in tags.items()}
        self.http.request("POST", f"{API}/runs/{_q(run_id)}/tags", json={"tags": values},
                          idempotent=True)

    def log_batch(self, run_id: str, *, metrics: Sequence[Metric] | None = None,
                  params: Mapping[str, Any] | None = None,
                  tags: Mapping[str, Any] | None = None) -> None:
        body = {"params": {check_key(k, kind="param"): param_value(k, v)
                           for k, v in (params or {}).items()},
                "tags": {check_key(k, kind="tag"): str(v) for k, v in (tags or {}).items()},
                "metrics": [[check_key(m.key, kind="metric"),
                             wire.number_out(metric_value(m.key, m.value)), int(m.step),
                             m.timestamp or None] for m in metrics or ()]}
        self.http.request("POST", f"{API}/runs/{_q(run_id)}/batch", json=body)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        self._metric_buffer.flush()
        found = self.http.request("GET", f"{API}/runs/{_q(run_id)}/metrics/{quote_path(key)}")
        return [wire.metric_in(m) for m in found["history"]]

    # -- artifacts -------------------------------------------------------------------
    def log_artifact(self, run_id: str, local_path: str | Path,
                     artifact_path: str | None = None) -> list[ArtifactInfo]:
        """Upload a file, or every file of a directory (streamed, a few at a time)."""
        local = Path(local_path)
        if not local.exists():
            raise InvalidArgument(f"cannot log artifact {str(local)!r}: no such file or "
                                  "directory")
        base = check_artifact_path(artifact_path if artifact_path is not None
                                   else ("" if local.is_file() else local.name))
        if local.is_file():
            files = [(local, local.name)]
        else:
            files = [(p, p.relative_to(local).as_posix())
                     for p in sorted(local.rglob("*")) if p.is_file()]
        if not files:
            self.get_run(run_id)  # NotFound for an unknown run, as the embedded client
            return []

        def upload(item: tuple[Path, str]) -> ArtifactInfo:
            dest = check_artifact_path(f"{base}/{item[1]}" if base else item[1])
            return wire.artifact_in(self.http.upload(
                "PUT", f"{API}/runs/{_q(run_id)}/artifacts/{quote_path(dest)}", item[0]))

        if len(files) == 1:
            return [upload(files[0])]
        with ThreadPoolExecutor(max_workers=min(self.settings.blob_workers, len(files)),
                                thread_name_prefix="loopml-upload") as pool:
            return list(pool.map(upload, files))

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]:
        found = self.http.request("GET", f"{API}/runs/{_q(run_id)}/artifacts",
                                  params={"path": path or None})
        return [wire.artifact_in(a) for a in found["artifacts"]]

    def download_artifacts(self, run_id: str, path: str = "",
                           dest: str | Path = ".") -> Path:
        """Download the artifact file or directory ``path`` into ``dest``; returns its path."""
        import posixpath

        prefix = check_artifact_path(path)
        found = self.list_artifacts(run_id, prefix)
        if not found:
            raise NotFound(f"run {run_id} has no artifact at {path!r}; list them with "
                           f"'loopml runs show {run_id}'")
        root = Path(dest)
        if len(found) == 1 and found[0].path == prefix and prefix:
            target = root / posixpath.basename(prefix)
            self._download_artifact(run_id, found[0], target)
            return target
        strip = len(prefix) + 1 if prefix else 0
        target = root / posixpath.basename(prefix) if prefix else root
        pairs = [(info, target / _inside(info.path, prefix)[strip:]) for info in found]
        with ThreadPoolExecutor(max_workers=min(self.settings.blob_workers, len(pairs)),
                                thread_name_prefix="loopml-download") as pool:
            list(pool.map(lambda pair: self._download_artifact(run_id, *pair), pairs))
        return target

    def _download_artifact(self, run_id: str, info: ArtifactInfo, target: Path) -> None:
        self.http.download(f"{API}/runs/{_q(run_id)}/artifacts/{quote_path(info.path)}",
                           target, digest=info.digest)

    # -- search ----------------------------------------------------------------------
    def search_runs(self, experiment: str | Sequence[str] | None = None, *,
                    filter: str | None = None, order_by: Sequence[str] | None = None,
                    max_results: int = 1000, offset: int = 0, include_deleted: bool = False,
                    output_format: Literal["list", "pandas"] = "list",
                    ) -> list[Run] | pd.DataFrame:
        if output_format not in ("list", "pandas"):
            raise InvalidArgument(f"output_format must be 'list' or 'pandas', got "
                                  f"{output_format!r}")
        self._metric_buffer.flush()
        names = [experiment] if isinstance(experiment, str) else list(experiment or [])
        found = self.http.request("POST", f"{API}/runs/search", idempotent=True, json={
            "experiments": names, "filter": filter, "order_by": list(order_by or []),
            "max_results": max_results, "offset": offset,
            "include_deleted": include_deleted})
        runs = [wire.run_in(r) for r in found["runs"]]
        return runs_to_dataframe(runs) if output_format == "pandas" else runs

    # -- models ----------------------------------------------------------------------
    def _store_package(self, run_id: str, package: Path, artifact_path: str) -> None:
        self.log_artifact(run_id, package, artifact_path)

    def register_model(self, source: str | Path, name: str, *,
                       description: str = "") -> ModelVersion:
        """A new version of ``name`` from ``runs:/RUN_ID/PATH`` (a package already uploaded
        with the run's artifacts)."""
        self.flush()
        text = str(source)
        if not text.startswith("runs:/"):
            raise InvalidArgument(
                f"cannot register {text!r} through a loopml server: give runs:/RUN_ID/PATH "
                "of a package logged with loopml.log_model (or log_artifact)")
        return wire.version_in(self.http.request(
            "POST", f"{API}/models/{_q(name)}/versions",
            json={"source": text, "description": description}))

    def list_registered_models(self) -> list[RegisteredModel]:
        found = self.http.request("GET", f"{API}/models")["models"]
        return [wire.model_in(m) for m in found]

    def get_registered_model(self, name: str) -> RegisteredModel:
        return wire.model_in(self.http.request("GET", f"{API}/models/{_q(name)}"))

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        found = self.http.request("GET", f"{API}/models/{_q(name)}/versions")["versions"]
        return [wire.version_in(v) for v in found]

    def get_model_version(self, ref: str) -> ModelVersion:
        """``NAME/3``, ``NAME@ALIAS``, ``NAME`` (latest active) or ``models:/…``."""
        from loopml.registry.refs import parse_model_ref

        parsed = parse_model_ref(ref)
        if parsed.version is not None:
            path = f"{API}/models/{_q(parsed.name)}/versions/{parsed.version}"
        elif parsed.alias is not None:
            path = f"{API}/models/{_q(parsed.name)}/aliases/{_q(parsed.alias)}"
        else:
            path = f"{API}/models/{_q(parsed.name)}/latest"
        return wire.version_in(self.http.request("GET", path))

    def set_model_alias(self, name: str, alias: str, version: int, *, reason: str = "",
                        actor: str | None = None) -> AliasEvent:
        """Point ``alias`` at ``version`` (the server records who: the token's name, else
        ``actor`` or this machine's user)."""
        return wire.alias_event_in(self.http.request(
            "PUT", f"{API}/models/{_q(name)}/aliases/{_q(alias)}",
            json={"version": int(version), "reason": reason, "actor": actor}))

    def delete_model_alias(self, name: str, alias: str, *, reason: str = "",
                           actor: str | None = None) -> AliasEvent:
        return wire.alias_event_in(self.http.request(
            "DELETE", f"{API}/models/{_q(name)}/aliases/{_q(alias)}",
            params={"reason": reason or None, "actor": actor}))

    def model_alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        found = self.http.request("GET", f"{API}/models/{_q(name)}/history",
                                  params={"alias": alias})["events"]
        return [wire.alias_event_in(e) for e in found]

    def rollback_model_alias(self, name: str, alias: str, *, reason: str = "",
                             actor: str | None = None) -> AliasEvent:
        return wire.alias_event_in(self.http.request(
            "POST", f"{API}/models/{_q(name)}/aliases/{_q(alias)}/rollback",
            json={"reason": reason, "actor": actor}))

    def set_model_version_status(self, ref: str, status: Literal["active", "archived"]
                                 ) -> ModelVersion:
        if status not in ("active", "archived"):
            raise InvalidArgument(f"status must be 'active' or 'archived', got {status!r}")
        version = self.get_model_version(ref)
        return wire.version_in(self.http.request(
            "PATCH", f"{API}/models/{_q(version.model)}/versions/{version.version}",
            json={"status": status}, idempotent=True))

    def delete_model_version(self, ref: str) -> None:
        version = self.get_model_version(ref)
        self.http.request("DELETE",
                          f"{API}/models/{_q(version.model)}/versions/{version.version}")

    def model_card(self, ref: str, *, output: Literal["markdown", "html"] = "markdown") -> str:
        version = self.get_model_version(ref)
        found = self.http.request(
            "GET", f"{API}/models/{_q(version.model)}/versions/{version.version}/card",
            params={"output": output})
        return str(found["card"])

    def model_path(self, uri: str) -> Path:
        """A local directory holding the package ``uri`` names, downloaded once into the
        local cache (by content: a package already there is not downloaded again)."""
        if uri.startswith("runs:/"):
            run_id, _, path = uri.removeprefix("runs:/").partition("/")
            dest = self.settings.home / "cache" / "runs" / run_id
            return self.download_artifacts(run_id, path or "model", dest)
        if Path(uri).is_dir():
            return Path(uri)
        version = self.get_model_version(uri)
        return self._download_package(version)

    def _download_package(self, version: ModelVersion) -> Path:
        cache = self.settings.home / "cache" / "models"
        target = cache / version.tree
        if target.is_dir():
            return target
        base = f"{API}/models/{_q(version.model)}/versions/{version.version}/files"
        files = self.http.request("GET", base)["files"]
        staging = cache / f".{version.tree}.{uuid.uuid4().hex[:8]}"
        try:
            for item in files:
                rel = check_artifact_path(item["path"])
                self.http.download(f"{base}/{quote_path(rel)}", staging / rel,
                                   digest=item["digest"])
            staging.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, target)
            except OSError:  # another process put it there meanwhile
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target
