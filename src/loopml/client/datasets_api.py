"""Module-level dataset API (``loopml.datasets.add(...)``, ``loopml.datasets.load_table(...)``).

Inside an active run, versions a call adds are recorded as the run's outputs and versions
it reads (``get``, ``load_table``) as its inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopml.client.fluent import active_run, default_client

if TYPE_CHECKING:
    from loopml.blobs.checkout import CheckoutStats
    from loopml.datasets.contract import Contract
    from loopml.datasets.diff import VersionDiff
    from loopml.datasets.entities import Dataset, DatasetVersion
    from loopml.profiling import TableProfile
    from loopml.tracking.entities import Run

__all__ = ["add", "append", "diff", "get", "get_version", "infer_contract", "lineage",
           "list_datasets", "load_table", "profile", "set_contract", "tag", "versions"]


def _run_id() -> str | None:
    run = active_run()
    return None if run is None else run.id


def add(path: str | Path, name: str, *, message: str = "", strict: bool = False,
        ) -> DatasetVersion:
    """Add ``path`` (a file, a directory tree or a CSV/Parquet table) as a new version."""
    return default_client().add_dataset(path, name, message=message, strict=strict,
                                        run_id=_run_id())


def append(name: str, path: str | Path, *, message: str = "", strict: bool = False,
           ) -> DatasetVersion:
    """A new version of ``name``: the latest plus the new files or rows at ``path``."""
    return default_client().append_dataset(name, path, message=message, strict=strict,
                                           run_id=_run_id())


def get(ref: str, dest: str | Path, *, prefix: str = "") -> CheckoutStats:
    """Materialise ``NAME@VERSION`` (or a sub-directory ``prefix`` of it) into ``dest``."""
    return default_client().get_dataset(ref, dest, prefix=prefix, run_id=_run_id())


def load_table(ref: str, *, output: Literal["pandas", "arrow"] = "pandas") -> Any:
    """``load_table("churn@latest")`` → pandas DataFrame (``output="arrow"``: pyarrow Table)."""
    return default_client().load_table(ref, output=output, run_id=_run_id())


def list_datasets() -> list[tuple[Dataset, DatasetVersion | None]]:
    return default_client().list_datasets()


def versions(name: str) -> list[DatasetVersion]:
    return default_client().list_dataset_versions(name)


def get_version(ref: str) -> DatasetVersion:
    return default_client().get_dataset_version(ref)


def tag(ref: str, tag: str) -> DatasetVersion:
    return default_client().tag_dataset(ref, tag)


def diff(old: str, new: str) -> VersionDiff:
    return default_client().diff_datasets(old, new)


def lineage(ref: str) -> list[tuple[Run, str]]:
    return default_client().dataset_lineage(ref)


def profile(ref: str) -> TableProfile | None:
    return default_client().dataset_profile(ref)


def set_contract(name: str, contract: Contract | None) -> None:
    default_client().set_dataset_contract(name, contract)


def infer_contract(ref: str) -> Contract:
    return default_client().infer_dataset_contract(ref)
