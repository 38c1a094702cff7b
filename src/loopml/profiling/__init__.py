"""Table profiles: schema and mergeable per-column statistics, computed in one streaming pass.

::

    source = open_table("data/train.parquet")      # CSV, Parquet, directory of Parquet
    profile = profile_table(source)                # TableProfile: rows, schema, columns
    profile["age"].quantile(0.5), profile["age"].cdf(40.0), profile["age"].histogram()
    stored = profile.to_dict()                     # JSON-able, a few KB per column
    whole = TableProfile.from_dict(stored).merge(profile_table(open_table("new_rows.csv")))
    profile_shift(parent_profile, whole)           # value skew against the parent version

Pure computation over Arrow record batches: no database, no blob store. Needs ``pyarrow`` and
``numpy``.
"""

from __future__ import annotations

from loopml.errors import MissingDependency

try:
    import numpy  # noqa: F401
    import pyarrow  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependency("table profiling", package=exc.name or "pyarrow") from None

from loopml.profiling.accumulate import column_kind, update_profile
from loopml.profiling.categories import CategoryCounter
from loopml.profiling.column import ColumnKind, ColumnProfile
from loopml.profiling.distinct import HyperLogLog
from loopml.profiling.hashing import hash_array
from loopml.profiling.quantiles import QuantileSketch
from loopml.profiling.scan import BatchObserver, profile_table
from loopml.profiling.schema import ColumnSchema, SchemaDiff, schema_diff, schema_of
from loopml.profiling.shift import Shift, profile_shift
from loopml.profiling.sources import TableSource, open_table
from loopml.profiling.table import TableProfile

__all__ = [
    "BatchObserver", "CategoryCounter", "ColumnKind", "ColumnProfile", "ColumnSchema",
    "HyperLogLog", "QuantileSketch", "SchemaDiff", "Shift", "TableProfile", "TableSource",
    "column_kind", "hash_array", "open_table", "profile_shift", "profile_table", "schema_diff",
    "schema_of", "update_profile",
]
