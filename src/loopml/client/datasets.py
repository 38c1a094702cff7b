"""The client's dataset registry methods (mixed into :class:`loopml.client.Client`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopml.client.base import ClientBase
from loopml.datasets import records
from loopml.datasets.refs import parse_ref

if TYPE_CHECKING:
    from loopml.blobs import BlobStore
    from loopml.blobs.checkout import CheckoutStats
    from loopml.blobs.transfer import TransferStats
    from loopml.datasets.contract import Contract
    from loopml.datasets.diff import VersionDiff
    from loopml.datasets.entities import Dataset, DatasetVersion
    from loopml.profiling import TableProfile
    from loopml.tracking.entities import Run

__all__ = ["DatasetMethods"]


class DatasetMethods(ClientBase):
    @property
    def content_blobs(self) -> BlobStore:
        """Where this client reads a version's content from: the blob store (the remote
        client puts its local cache in front of the server's)."""
        return self.blobs

    def _ingest_options(self, message: str, strict: bool, run_id: str | None) -> Any:
        from loopml.datasets.ingest import IngestOptions

        return IngestOptions(message=message, strict=strict, run_id=run_id,
                             progress=self.settings.progress)

    def add_dataset(self, path: str | Path, name: str, *, message: str = "",
                    strict: bool = False, run_id: str | None = None) -> DatasetVersion:
        """Add ``path`` (file, directory or table) as the next version of ``name``."""
        from loopml.datasets.ingest import add

        return add(self.meta, self.blobs, self.stat_cache, name=name, path=path,
                   options=self._ingest_options(message, strict, run_id))

    def append_dataset(self, name: str, path: str | Path, *, message: str = "",
                       strict: bool = False, run_id: str | None = None) -> DatasetVersion:
        """A new version of ``name``: the latest one plus the files or rows at ``path``."""
        from loopml.datasets.ingest import append

        return append(self.meta, self.blobs, self.stat_cache, name=name, path=path,
                      options=self._ingest_options(message, strict, run_id))

    def list_datasets(self) -> list[tuple[Dataset, DatasetVersion | None]]:
        with self.meta.read() as conn:
            return records.list_datasets(conn)

    def get_dataset_version(self, ref: str) -> DatasetVersion:
        """The version ``NAME``, ``NAME@3``, ``NAME@latest`` or ``NAME@TAG`` names."""
        with self.meta.read() as conn:
            return records.resolve(conn, parse_ref(ref))

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        with self.meta.read() as conn:
            return records.list_versions(conn, name)

    def tag_dataset(self, ref: str, tag: str) -> DatasetVersion:
        with self.meta.write() as conn:
            return records.set_tag(conn, parse_ref(ref), tag)

    def diff_datasets(self, old: str, new: str) -> VersionDiff:
        from loopml.datasets.diff import diff_versions

        return diff_versions(self.blobs, self.get_dataset_version(old),
                             self.get_dataset_version(new))

    def dataset_profile(self, ref: str) -> TableProfile | None:
        from loopml.datasets.ingest import load_profile

        return load_profile(self.content_blobs, self.get_dataset_version(ref))

    def get_dataset(self, ref: str, dest: str | Path, *, prefix: str = "",
                    run_id: str | None = None) -> CheckoutStats:
        """Materialise a version's files (or those under ``prefix``) into ``dest`` (a remote
        client downloads what its local cache lacks)."""
        from loopml.datasets.reading import materialize

        version = self.get_dataset_version(ref)
        stats = materialize(self.content_blobs, version, dest, prefix=prefix,
                            stat_cache=self.stat_cache, progress=self.settings.progress)
        if run_id is not None:
            self.use_dataset(run_id, version.ref)
        return stats

    def load_table(self, ref: str, *, output: Literal["pandas", "arrow"] = "pandas",
                   run_id: str | None = None) -> Any:
        """A table version as a pandas DataFrame (or pyarrow Table); recorded as the run's input."""
        from loopml.datasets.reading import load_table

        version = self.get_dataset_version(ref)
        table = load_table(self.content_blobs, version, output=output)
        if run_id is not None:
            self.use_dataset(run_id, version.ref)
        return table

    def push_dataset(self, ref: str) -> TransferStats:
        """Copy a version's objects to the remote store (only those it lacks)."""
        from loopml.blobs.transfer import push

        version = self.get_dataset_version(ref)
        return push(self.blobs, self.remote_blobs, version.tree,
                    progress=self.settings.progress)

    def pull_dataset(self, ref: str) -> TransferStats:
        """Copy a version's objects from the remote store into the local one."""
        from loopml.blobs.transfer import pull

        version = self.get_dataset_version(ref)
        return pull(self.blobs, self.remote_blobs, version.tree,
                    progress=self.settings.progress)

    def use_dataset(self, run_id: str, ref: str, *, role: str = "input") -> DatasetVersion:
        """Record that a run read (``input``) or wrote (``output``) a dataset version."""
        with self.meta.write() as conn:
            version = records.resolve(conn, parse_ref(ref))
            records.record_lineage(conn, run_id, version, role)
        return version

    def dataset_lineage(self, ref: str) -> list[tuple[Run, str]]:
        """Runs that read or wrote the version, with their role, oldest first."""
        from loopml.tracking.records import load_runs

        with self.meta.read() as conn:
            version = records.resolve(conn, parse_ref(ref))
            links = records.dataset_lineage(conn, version)
            runs = {r.id: r for r in load_runs(conn, [run_id for run_id, _, _ in links])}
        return [(runs[run_id], role) for run_id, role, _ in links if run_id in runs]

    def set_dataset_contract(self, name: str, contract: Contract | None) -> None:
        """Attach a data contract to ``name`` (None removes it); later adds validate against it."""
        with self.meta.write() as conn:
            records.set_contract(conn, name, None if contract is None else contract.to_dict())

    def infer_dataset_contract(self, ref: str) -> Contract:
        """A contract inferred from a table version's profile (types, nulls, ranges, categories)."""
        from loopml.datasets.contract import infer_contract
        from loopml.errors import InvalidArgument

        profile = self.dataset_profile(ref)
        if profile is None:
            raise InvalidArgument(f"{ref} is not a table: contracts apply to tables only")
        return infer_contract(profile)
