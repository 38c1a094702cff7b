"""Table schemas as plain values, and the differences between two of them.

A :class:`ColumnSchema` names a column, its Arrow type as text (``int64``, ``double``,
``string``, ``timestamp[us, tz=UTC]``, …) and whether it may hold nulls. Profiles store these
rather than ``pyarrow.Schema`` objects, so a stored profile is read back without pyarrow.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pyarrow as pa

from loopml.errors import InvalidArgument

__all__ = ["FAMILIES", "ColumnSchema", "SchemaDiff", "epoch_value", "schema_diff", "schema_of",
           "type_family", "type_matches"]

#: Families of Arrow types: a contract or a reader may name one instead of an exact type.
FAMILIES = ("integer", "float", "string", "boolean", "timestamp", "date", "time", "duration")
_FAMILY_WORDS = {"int": "integer", "uint": "integer", "double": "float", "float": "float",
                 "halffloat": "float", "string": "string", "large_string": "string",
                 "string_view": "string", "bool": "boolean", "timestamp": "timestamp",
                 "date": "date", "time": "time", "duration": "duration"}


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """One column: its name, Arrow type as text and whether it may hold nulls."""

    name: str
    type: str
    nullable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}

    @classmethod
    def from_dict(cls, data: object) -> ColumnSchema:
        if not (isinstance(data, dict) and isinstance(data.get("name"), str)
                and isinstance(data.get("type"), str)
                and isinstance(data.get("nullable", True), bool)):
            raise InvalidArgument(f"a column schema must be a mapping with 'name' and 'type' "
                                  f"strings and an optional 'nullable' boolean, got {data!r:.80}")
        return cls(data["name"], data["type"], data.get("nullable", True))


def type_family(arrow_type: pa.DataType | str) -> str | None:
    """The family of an Arrow type or its text (``int32`` → ``integer``; a dictionary of
    strings → ``string``); None for types of no family (decimals, lists, structs, …)."""
    text = str(arrow_type)
    if text.startswith(("dictionary<values=string", "dictionary<values=large_string")):
        return "string"
    head = re.match(r"[a-z_]+", text)
    return _FAMILY_WORDS.get(head.group(0)) if head else None


def type_matches(name: str, arrow_type: pa.DataType) -> bool:
    """Whether ``arrow_type`` is the type written ``name`` (``int64``), is of the family
    ``name`` (``integer``), or is a number and ``name`` is ``number``."""
    family = type_family(arrow_type)
    return name in (str(arrow_type), family) or (name == "number"
                                                 and family in ("integer", "float"))


_TIMESTAMP = re.compile(r"timestamp\[(\w+)(?:, tz=(.+))?\]")


def epoch_value(value: int | float | None, type_text: str) -> Any:
    """The date or datetime that a profile's epoch number stands for in a column of type
    ``type_text`` (timestamps and dates); other values are returned as they are."""
    if value is None:
        return None
    if match := _TIMESTAMP.fullmatch(type_text):
        kind: pa.DataType = pa.timestamp(match.group(1), match.group(2))
    elif type_text.startswith("date32"):
        kind = pa.date32()
    elif type_text.startswith("date64"):
        kind = pa.date64()
    else:
        return value
    storage = pa.int32() if kind.bit_width == 32 else pa.int64()
    return pa.scalar(int(value), storage).cast(kind).as_py()


SchemaLike: TypeAlias = "pa.Schema | Sequence[ColumnSchema]"


def schema_of(schema: SchemaLike) -> list[ColumnSchema]:
    """The columns of a ``pyarrow.Schema`` (a list of :class:`ColumnSchema` passes through)."""
    if isinstance(schema, pa.Schema):
        return [ColumnSchema(f.name, str(f.type), f.nullable) for f in schema]
    columns: list[ColumnSchema] = list(schema)
    for column in columns:
        if not isinstance(column, ColumnSchema):
            raise InvalidArgument(f"schema_of() takes a pyarrow.Schema or ColumnSchema values, "
                                  f"got {type(column).__name__}")
    return columns


@dataclass(frozen=True)
class SchemaDiff:
    """Columns added, removed and retyped between two schemas.

    It is true when anything changed, and iterating over it gives one readable line per change
    (``added column 'age' (int64)``), so ``"; ".join(diff)`` makes a message.
    """

    added: list[ColumnSchema] = field(default_factory=list)
    removed: list[ColumnSchema] = field(default_factory=list)
    retyped: list[tuple[ColumnSchema, ColumnSchema]] = field(default_factory=list)

    def lines(self) -> list[str]:
        return ([f"added column {c.name!r} ({c.type})" for c in self.added]
                + [f"removed column {c.name!r} ({c.type})" for c in self.removed]
                + [f"column {old.name!r} changed type from {old.type} to {new.type}"
                   for old, new in self.retyped])

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines())

    def __len__(self) -> int:
        return len(self.added) + len(self.removed) + len(self.retyped)

    def to_dict(self) -> dict[str, Any]:
        return {"added": [c.to_dict() for c in self.added],
                "removed": [c.to_dict() for c in self.removed],
                "retyped": [{"name": old.name, "old": old.type, "new": new.type}
                            for old, new in self.retyped]}


def schema_diff(old: SchemaLike, new: SchemaLike) -> SchemaDiff:
    """What changed from ``old`` to ``new``: columns added, removed, retyped (in column order).

    A change of nullability alone is not a change of type.
    """
    before = {c.name: c for c in schema_of(old)}
    after = {c.name: c for c in schema_of(new)}
    return SchemaDiff(
        added=[c for name, c in after.items() if name not in before],
        removed=[c for name, c in before.items() if name not in after],
        retyped=[(c, after[name]) for name, c in before.items()
                 if name in after and after[name].type != c.type])
