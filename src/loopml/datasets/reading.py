"""Reading versions back: materialise files into a directory, or load a table."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopml.blobs import BlobStore
from loopml.blobs.checkout import CheckoutStats, checkout
from loopml.blobs.chunking import open_entry
from loopml.blobs.statcache import StatCache
from loopml.blobs.tree import iter_files
from loopml.datasets.entities import DatasetKind, DatasetVersion
from loopml.errors import InvalidArgument, MissingDependency

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["load_table", "materialize"]


def materialize(blobs: BlobStore, version: DatasetVersion, dest: str | Path, *,
                prefix: str = "", stat_cache: StatCache | None = None,
                progress: bool = False) -> CheckoutStats:
    """Write the version's files (or those under ``prefix``) into the directory ``dest``.

    Files already there with the right content are left alone; only differing ones are written.
    """
    return checkout(blobs, version.tree, Path(dest), prefix=prefix, stat_cache=stat_cache,
                    progress=progress)


def _read_part(blobs: BlobStore, path: str, entry: Any) -> pa.Table:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    with open_entry(blobs, entry) as stream:
        data = stream.read()
    if path.lower().endswith(".csv"):
        return pa_csv.read_csv(io.BytesIO(data))
    return pq.read_table(io.BytesIO(data))


def load_table(blobs: BlobStore, version: DatasetVersion, *,
               output: Literal["pandas", "arrow"] = "pandas") -> Any:
    """The whole table of a table version, as a pandas DataFrame or a pyarrow Table."""
    if version.kind is not DatasetKind.TABLE:
        raise InvalidArgument(f"{version.ref} is a {version.kind.value}, not a table; use "
                              f"loopml.datasets.get('{version.ref}', DEST) for its files")
    if output not in ("pandas", "arrow"):
        raise InvalidArgument(f"output must be 'pandas' or 'arrow', got {output!r}")
    try:
        import pyarrow as pa
    except ImportError:
        raise MissingDependency("loading a table", package="pyarrow") from None
    parts = [_read_part(blobs, path, entry) for path, entry in iter_files(blobs, version.tree)]
    table = pa.concat_tables(parts, promote_options="permissive") if parts else pa.table({})
    return table.to_pandas() if output == "pandas" else table
