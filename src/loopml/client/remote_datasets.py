"""The dataset methods of the remote client, over ``/api/v1`` (mixed into
:class:`~loopml.client.remote.RemoteClient`).

The same methods as the embedded :class:`~loopml.client.datasets.DatasetMethods`, with the
same results and errors; what differs is where the bytes go:

- **add / append** build the version exactly as the embedded client does
  (:func:`~loopml.datasets.ingest.add_to`: hashing, packs, chunks, the stat cache, the
  contract check, the profile) into a local cache of blobs (``HOME/cache/blobs``), building
  on the parent version's tree, which is read from the server as needed. The version's
  objects the server lacks — and only those: one ``blobs/missing`` request per level of
  the tree — are then uploaded (:class:`~loopml.client.remote_blobs.HttpBlobBackend`:
  streamed PUTs, resumable multipart for large blobs), and the version is recorded
  (``POST /api/v1/datasets/{name}/versions``), which the server does only once it has
  checked the tree whole. Adding files the server holds already sends no content.
- **get / load_table / profile** read through the cache (:class:`CachedBackend`): what the
  cache lacks is downloaded once, checked against its digest and kept.
- **push / pull** copy versions between a local blob store and ``LOOPML_REMOTE_URL``; with a
  server, every version already lives in the server's store, so they raise a clear error.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from loopml.blobs import BlobStore
from loopml.client.datasets import DatasetMethods
from loopml.datasets.refs import check_dataset_name, check_tag, parse_ref
from loopml.errors import InvalidArgument, NotFound
from loopml.server.api import dataset_wire as wire

if TYPE_CHECKING:
    from loopml.blobs.transfer import TransferStats
    from loopml.client.http import HttpSession
    from loopml.datasets.contract import Contract
    from loopml.datasets.diff import VersionDiff
    from loopml.datasets.entities import Dataset, DatasetVersion
    from loopml.datasets.ingest import IngestOptions
    from loopml.tracking.entities import Run

__all__ = ["RemoteDatasetMethods"]

API = "/api/v1"


def _version_path(ref: str) -> str:
    parsed = parse_ref(ref)
    selector = str(parsed).partition("@")[2]
    return f"{API}/datasets/{parsed.name}/versions/{selector}"


class RemoteDatasetMethods(DatasetMethods):
    """Dataset methods that speak to a server through ``self.http``."""

    http: HttpSession

    @functools.cached_property
    def server_blobs(self) -> BlobStore:
        """The server's blob store, over HTTP."""
        from loopml.client.remote_blobs import HttpBlobBackend

        return BlobStore(HttpBlobBackend(self.http, workers=self.settings.blob_workers),
                         workers=self.settings.blob_workers, progress=self.settings.progress)

    @functools.cached_property
    def blob_cache(self) -> BlobStore:
        """The local cache in front of the server's blob store (``HOME/cache/blobs``)."""
        from loopml.blobs.local import LocalBackend
        from loopml.client.blob_cache import CachedBackend

        local = LocalBackend(self.settings.home / "cache" / "blobs")
        return BlobStore(CachedBackend(local, self.server_blobs.backend),
                         workers=self.settings.blob_workers, progress=self.settings.progress)

    @property
    def content_blobs(self) -> BlobStore:
        return self.blob_cache

    # -- adding versions ------------------------------------------------------------------

    def add_dataset(self, path: str | Path, name: str, *, message: str = "",
                    strict: bool = False, run_id: str | None = None) -> DatasetVersion:
        """Add ``path`` (file, directory or table) as the next version of ``name``, sending
        the server only the content it lacks."""
        from loopml.datasets.ingest import add_to

        return add_to(_RemoteCatalog(self), self.blob_cache, self.stat_cache, name=name,
                      path=path, options=self._ingest_options(message, strict, run_id))

    def append_dataset(self, name: str, path: str | Path, *, message: str = "",
                       strict: bool = False, run_id: str | None = None) -> DatasetVersion:
        from loopml.datasets.ingest import append_to

        return append_to(_RemoteCatalog(self), self.blob_cache, self.stat_cache, name=name,
                         path=path, options=self._ingest_options(message, strict, run_id))

    # -- reading the registry -------------------------------------------------------------

    def list_datasets(self) -> list[tuple[Dataset, DatasetVersion | None]]:
        found = self.http.request("GET", f"{API}/datasets")["datasets"]
        return [(wire.dataset_in(item["dataset"]),
                 None if item["latest"] is None else wire.dataset_version_in(item["latest"]))
                for item in found]

    def get_dataset_version(self, ref: str) -> DatasetVersion:
        return wire.dataset_version_in(self.http.request("GET", _version_path(ref)))

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        check_dataset_name(name)
        found = self.http.request("GET", f"{API}/datasets/{name}/versions")["versions"]
        return [wire.dataset_version_in(v) for v in found]

    def tag_dataset(self, ref: str, tag: str) -> DatasetVersion:
        parsed = parse_ref(ref)
        check_tag(tag)
        return wire.dataset_version_in(self.http.request(
            "PUT", f"{API}/datasets/{parsed.name}/tags/{tag}",
            json={"version": str(parsed).partition("@")[2]}))

    def diff_datasets(self, old: str, new: str) -> VersionDiff:
        parse_ref(old)
        parse_ref(new)
        return wire.diff_in(self.http.request("GET", f"{API}/dataset-diff",
                                              params={"old": old, "new": new}))

    # -- content: read through ``content_blobs`` (DatasetMethods); no push or pull ----------

    def push_dataset(self, ref: str) -> TransferStats:
        self._no_transfer("push")

    def pull_dataset(self, ref: str) -> TransferStats:
        self._no_transfer("pull")

    def _no_transfer(self, verb: str) -> NoReturn:
        raise InvalidArgument(
            f"'data {verb}' copies versions between a local blob store and LOOPML_REMOTE_URL; "
            f"with a loopml server ({self.http.base_url}) every version already lives in the "
            "server's store: get_dataset and load_table download what they need (and keep "
            "it in the local cache). Unset LOOPML_TRACKING_URI to push or pull a local store")

    # -- lineage and contracts ---------------------------------------------------------------

    def use_dataset(self, run_id: str, ref: str, *, role: str = "input") -> DatasetVersion:
        return wire.dataset_version_in(self.http.request(
            "POST", f"{_version_path(ref)}/lineage", json={"run_id": run_id, "role": role}))

    def dataset_lineage(self, ref: str) -> list[tuple[Run, str]]:
        from loopml.server.api.wire import run_in

        found = self.http.request("GET", f"{_version_path(ref)}/lineage")["lineage"]
        return [(run_in(item["run"]), str(item["role"])) for item in found]

    def set_dataset_contract(self, name: str, contract: Contract | None) -> None:
        check_dataset_name(name)
        self.http.request("PUT", f"{API}/datasets/{name}/contract",
                          json={"contract": None if contract is None else contract.to_dict()})


class _RemoteCatalog:
    """The :class:`~loopml.datasets.ingest.Catalog` of a server: the latest version is
    read from it; a new one is recorded once its objects are uploaded."""

    def __init__(self, client: RemoteDatasetMethods) -> None:
        self.client = client

    def latest(self, name: str) -> tuple[Dataset | None, DatasetVersion | None]:
        try:
            found = self.client.http.request("GET", f"{API}/datasets/{name}")
        except NotFound:
            return None, None
        latest = found["latest"]
        return (wire.dataset_in(found["dataset"]),
                None if latest is None else wire.dataset_version_in(latest))

    def insert(self, name: str, parent: DatasetVersion | None, fields: dict[str, Any],
               options: IngestOptions) -> DatasetVersion:
        from loopml.blobs.transfer import copy_trees

        client = self.client
        copy_trees(client.blob_cache, client.server_blobs, [fields["tree"]],
                   progress=client.settings.progress)
        profile = fields.get("profile")
        if profile is not None and not client.server_blobs.has(profile):
            client.server_blobs.backend.put_bytes(f"{profile[:2]}/{profile[2:]}",
                                                  client.blob_cache.get_bytes(profile))
        body = {**fields, "parent_version": None if parent is None else parent.version,
                "message": options.message, "run_id": options.run_id}
        return wire.dataset_version_in(client.http.request(
            "POST", f"{API}/datasets/{name}/versions", json=body))
