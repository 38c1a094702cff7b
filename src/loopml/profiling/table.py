"""The profile of a table: its row count, schema and one :class:`ColumnProfile` per column.

A table profile is the "reference profile" of a dataset version: a few KB per column whatever
the number of rows, stored as JSON (:meth:`TableProfile.to_dict`), and mergeable: the profile of
a version grown by appended rows is the parent's profile merged with the new rows' profile, and
partitions profiled in parallel merge into the profile of the whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loopml.errors import InvalidArgument
from loopml.profiling.column import ColumnProfile
from loopml.profiling.schema import ColumnSchema, schema_diff

__all__ = ["PROFILE_FORMAT", "TableProfile"]

PROFILE_FORMAT = "loopml.table-profile/1"


@dataclass(frozen=True, eq=False)
class TableProfile:
    """Row count, schema (column order) and column profiles (by name) of a table."""

    rows: int
    columns: dict[str, ColumnProfile]
    schema: tuple[ColumnSchema, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "schema", tuple(self.schema))
        names = [c.name for c in self.schema]
        if sorted(names) != sorted(self.columns):
            raise InvalidArgument(f"a table profile needs one column profile per schema column; "
                                  f"schema: {names}, profiles: {sorted(self.columns)}")

    def __getitem__(self, name: str) -> ColumnProfile:
        try:
            return self.columns[name]
        except KeyError:
            raise InvalidArgument(f"no column {name!r} in the profile; columns: "
                                  f"{', '.join(c.name for c in self.schema)}") from None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.schema]

    def merge(self, other: TableProfile) -> TableProfile:
        """The profile of both tables' rows: the schemas must have the same columns and types.

        Raises :class:`~loopml.errors.InvalidArgument` naming the columns added, removed or
        retyped otherwise.
        """
        changes = schema_diff(self.schema, other.schema)
        if changes:
            raise InvalidArgument("cannot merge profiles of different schemas: "
                                  + "; ".join(changes))
        others = {c.name: c for c in other.schema}
        schema = tuple(ColumnSchema(c.name, c.type, c.nullable or others[c.name].nullable)
                       for c in self.schema)
        columns = {name: profile.merge(other.columns[name])
                   for name, profile in self.columns.items()}
        return TableProfile(self.rows + other.rows, columns, schema)

    def summary(self) -> dict[str, Any]:
        """Rows and the :meth:`ColumnProfile.summary` of every column (JSON-able)."""
        return {"rows": self.rows,
                "columns": {c.name: {"type": c.type, **self.columns[c.name].summary()}
                            for c in self.schema}}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_dict` gives back an equal profile."""
        return {"format": PROFILE_FORMAT, "rows": self.rows,
                "schema": [c.to_dict() for c in self.schema],
                "columns": {c.name: self.columns[c.name].to_dict() for c in self.schema}}

    @classmethod
    def from_dict(cls, data: object) -> TableProfile:
        """The profile :meth:`to_dict` stored; InvalidArgument for anything else."""
        if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise InvalidArgument(f"not a table profile: expected format {PROFILE_FORMAT!r}, "
                                  f"got {found!r}")
        rows, schema, columns = data.get("rows"), data.get("schema"), data.get("columns")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise InvalidArgument(f"table profile 'rows' must be a count, got {rows!r:.80}")
        if not isinstance(schema, list) or not isinstance(columns, dict):
            raise InvalidArgument("table profile needs a 'schema' list and a 'columns' mapping")
        return cls(rows, {name: ColumnProfile.from_dict(column)
                          for name, column in columns.items()},
                   tuple(ColumnSchema.from_dict(c) for c in schema))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TableProfile):
            return NotImplemented
        return (self.rows, self.schema, self.columns) == (other.rows, other.schema,
                                                          other.columns)

    __hash__ = None  # type: ignore[assignment]
