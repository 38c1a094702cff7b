"""Data contracts: what a table version must satisfy, checked in the same pass as profiling.

A contract holds per-column rules and bounds on the row count, written in YAML::

    rows: {min: 1000}
    columns:
      age:     {type: integer, nullable: false, min: 0, max: 120}
      country: {type: string, categories: [FR, DE, US]}
      id:      {type: string, unique: true}
      signup:  {type: timestamp, min: "2020-01-01T00:00:00"}

Column rules: ``type`` (an Arrow type such as ``int64``, or a family: ``integer``, ``float``,
``number``, ``string``, ``boolean``, ``timestamp``, ``date``, ``time``, ``duration``),
``nullable`` (false: no nulls, NaN counting as null), ``min`` / ``max`` (inclusive bounds),
``categories`` (the allowed values) and ``unique`` (no value twice, exact across the table).
Every column named must exist; other columns are free.

:func:`scan` reads a table once and returns its profile together with a
:class:`ValidationReport`; :func:`infer_contract` writes a contract from a version's profile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat
import yaml

from loopml.errors import InvalidArgument
from loopml.profiling import TableProfile, TableSource, profile_table
from loopml.profiling.duplicates import DuplicateFinder
from loopml.profiling.schema import FAMILIES, epoch_value, type_family, type_matches

__all__ = ["ColumnRule", "Contract", "ContractChecker", "ValidationReport", "Violation",
           "infer_contract", "scan"]

RULES = ("type", "nullable", "min", "max", "categories", "unique")
MAX_EXAMPLES = 5
INFER_MAX_CATEGORIES = 50


@dataclass(frozen=True)
class ColumnRule:
    """The rules of one column; None (or False for ``unique``) leaves a rule unchecked."""

    type: str | None = None
    nullable: bool | None = None
    min: Any = None
    max: Any = None
    categories: tuple[Any, ...] | None = None
    unique: bool = False

    @classmethod
    def from_dict(cls, data: object, *, where: str) -> ColumnRule:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"contract: {where} must be a mapping of rules, got {data!r:.60}")
        unknown = [key for key in data if key not in RULES]
        if unknown:
            raise InvalidArgument(f"contract: {where}.{unknown[0]}: unknown rule; known rules: "
                                  f"{', '.join(RULES)}")
        kind, nullable, unique = data.get("type"), data.get("nullable"), data.get("unique", False)
        if kind is not None and not _valid_type(kind):
            raise InvalidArgument(f"contract: {where}.type: unknown type {kind!r}; use a family "
                                  f"({', '.join(FAMILIES)}, number) or an Arrow type such as "
                                  "'int64'")
        for key, value in (("nullable", nullable), ("unique", unique)):
            if value is not None and not isinstance(value, bool):
                raise InvalidArgument(f"contract: {where}.{key} must be true or false, "
                                      f"got {value!r:.60}")
        for key in ("min", "max"):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, int | float | str | dt.date | dt.datetime)):
                raise InvalidArgument(f"contract: {where}.{key} must be a number, a date or "
                                      f"a time, got {value!r:.60}")
        low, high = data.get("min"), data.get("max")
        if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
            raise InvalidArgument(f"contract: {where}: min {low!r} is above max {high!r}")
        categories = data.get("categories")
        if categories is not None and not isinstance(categories, list):
            raise InvalidArgument(f"contract: {where}.categories must be a list of values, "
                                  f"got {categories!r:.60}")
        return cls(kind, nullable, _plain(data.get("min")), _plain(data.get("max")),
                   None if categories is None else tuple(categories), bool(unique))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "nullable": self.nullable, "min": self.min,
                                "max": self.max, "unique": self.unique or None,
                                "categories": None if self.categories is None
                                else list(self.categories)}
        return {key: data[key] for key in RULES if data[key] is not None}


def _valid_type(kind: object) -> bool:
    if not isinstance(kind, str) or not kind:
        return False
    if kind in FAMILIES or kind == "number" or any(c in kind for c in "[<("):
        return True
    try:
        pa.type_for_alias(kind)
    except (ValueError, KeyError):
        return False
    return True


def _plain(value: Any) -> Any:
    """Dates and times as ISO text, so a contract is JSON-able."""
    return value.isoformat() if isinstance(value, dt.date | dt.datetime | dt.time) else value


@dataclass(frozen=True)
class Contract:
    """Column rules by column name, and optional bounds on the number of rows."""

    columns: dict[str, ColumnRule] = field(default_factory=dict)
    min_rows: int | None = None
    max_rows: int | None = None

    @classmethod
    def from_dict(cls, data: object) -> Contract:
        """The contract of a mapping like the YAML form; InvalidArgument naming a bad key."""
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"a contract must be a mapping with 'columns' and/or 'rows', "
                                  f"got {type(data).__name__}")
        unknown = [key for key in data if key not in ("columns", "rows")]
        if unknown:
            raise InvalidArgument(f"contract: unknown key {unknown[0]!r}; known keys: columns, "
                                  "rows")
        columns = data.get("columns") or {}
        if not isinstance(columns, Mapping):
            raise InvalidArgument("contract: columns must map column names to rules")
        rows = data.get("rows") or {}
        if not isinstance(rows, Mapping) or any(key not in ("min", "max") for key in rows):
            raise InvalidArgument(f"contract: rows must be a mapping with 'min' and/or 'max', "
                                  f"got {rows!r:.60}")
        for key in ("min", "max"):
            value = rows.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise InvalidArgument(f"contract: rows.{key} must be a whole number >= 0, "
                                      f"got {value!r:.60}")
        return cls({str(name): ColumnRule.from_dict(rule, where=f"columns.{name}")
                    for name, rule in columns.items()}, rows.get("min"), rows.get("max"))

    @classmethod
    def from_yaml(cls, text: str) -> Contract:
        """The contract written in YAML ``text``."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InvalidArgument(f"contract is not valid YAML{where}: {problem}") from None
        return cls.from_dict(data or {})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_dict` reads back."""
        data: dict[str, Any] = {}
        rows = {key: value for key, value in (("min", self.min_rows), ("max", self.max_rows))
                if value is not None}
        if rows:
            data["rows"] = rows
        data["columns"] = {name: rule.to_dict() for name, rule in self.columns.items()}
        return data

    def to_yaml(self) -> str:
        return str(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))


@dataclass(frozen=True)
class Violation:
    """A rule broken by ``count`` rows; ``column`` is None for table rules (``rows``)."""

    column: str | None
    rule: str
    count: int
    examples: list[Any]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "rule": self.rule, "count": self.count,
                "examples": self.examples, "message": self.message}


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of checking a table against a contract."""

    rows: int
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations

    def lines(self) -> list[str]:
        """One readable line per violation."""
        return [v.message for v in self.violations]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": self.rows,
                "violations": [v.to_dict() for v in self.violations]}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return str(value)


def _show(values: list[Any]) -> str:
    return ", ".join(repr(v) for v in values)


class _ColumnCheck:
    """The state of one column's value rules during the pass."""

    def __init__(self, name: str, rule: ColumnRule, arrow_type: pa.DataType) -> None:
        self.name, self.rule, self.type = name, rule, arrow_type
        self.bounds = {key: _bound(name, key, value, arrow_type)
                       for key, value in (("min", rule.min), ("max", rule.max))
                       if value is not None}
        self.allowed = None if rule.categories is None else _value_set(name, rule, arrow_type)
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[Any]] = {}
        self.duplicates = DuplicateFinder(max_examples=MAX_EXAMPLES) if rule.unique else None

    def _record(self, rule: str, count: int, examples: list[Any]) -> None:
        if count:
            self.counts[rule] = self.counts.get(rule, 0) + count
            kept = self.examples.setdefault(rule, [])
            for example in examples:
                if len(kept) < MAX_EXAMPLES and example not in kept:
                    kept.append(example)

    def observe(self, array: pa.Array, first_row: int) -> None:
        if self.rule.nullable is False:
            missing = array.is_null(nan_is_null=True) if pat.is_floating(array.type) \
                else array.is_null()
            where = pc.indices_nonzero(missing)
            self._record("nullable", len(where),
                         [first_row + i for i in where[:MAX_EXAMPLES].to_pylist()])
        if self.bounds:
            self._check_bounds(_plain_values(array))
        if self.allowed is not None:
            self._check_categories(array)
        if self.duplicates is not None:
            values = array if isinstance(array, pa.DictionaryArray) else _plain_values(array)
            self.duplicates.add(values, first_row=first_row)

    def _check_bounds(self, plain: pa.Array) -> None:
        comparable = plain
        if pat.is_float16(plain.type) or pat.is_decimal(plain.type):
            comparable = plain.cast(pa.float64())  # Arrow compares these only as float64
        for key, bound in self.bounds.items():
            outside = (pc.less if key == "min" else pc.greater)(comparable, bound)
            bad = plain.filter(outside)
            self._record(key, len(bad), bad[:MAX_EXAMPLES * 4].to_pylist())

    def _outside(self, values: pa.Array) -> pa.Array:
        """True where a value is not null and not an allowed category."""
        return pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=self.allowed)))

    def _check_categories(self, array: pa.Array) -> None:
        if isinstance(array, pa.DictionaryArray):
            # Check each dictionary entry once, then look the verdicts up by index.
            entries = _plain_values(array.dictionary)
            bad = array.filter(self._outside(entries).take(array.indices))
        else:
            plain = _plain_values(array)
            bad = plain.filter(self._outside(plain))
        self._record("categories", len(bad), bad[:MAX_EXAMPLES * 4].to_pylist())

    def violations(self) -> list[Violation]:
        if self.duplicates is not None and self.duplicates.duplicates:
            self.counts["unique"] = self.duplicates.duplicates
            self.examples["unique"] = self.duplicates.examples
        found = []
        for rule in RULES:
            if rule in self.counts:
                examples = [_jsonable(v) for v in self.examples.get(rule, [])]
                found.append(Violation(self.name, rule, self.counts[rule], examples,
                                       self._message(rule, self.counts[rule], examples)))
        return found

    def _message(self, rule: str, count: int, examples: list[Any]) -> str:
        start = f"column {self.name!r}: {count:,}"
        if rule == "nullable":
            return f"{start} null value(s) but nullable is false (rows {_show(examples)}, 0-based)"
        if rule in ("min", "max"):
            side = "below min" if rule == "min" else "above max"
            return (f"{start} value(s) {side} {getattr(self.rule, rule)!r}, "
                    f"e.g. {_show(examples)}")
        if rule == "categories":
            return f"{start} value(s) not among the allowed categories, e.g. {_show(examples)}"
        return f"{start} value(s) repeat an earlier row but unique is true, e.g. {_show(examples)}"


def _value_type(arrow_type: pa.DataType) -> pa.DataType:
    """The type rules compare values as: dictionaries decoded, string views as strings."""
    if pat.is_dictionary(arrow_type):
        return _value_type(arrow_type.value_type)
    return pa.large_string() if pat.is_string_view(arrow_type) else arrow_type


def _plain_values(array: pa.Array) -> pa.Array:
    """``array`` with dictionaries decoded and string views as strings (else itself)."""
    if isinstance(array, pa.DictionaryArray):
        array = array.dictionary_decode()
    return array.cast(pa.large_string()) if pat.is_string_view(array.type) else array


def _bound(name: str, key: str, value: Any, arrow_type: pa.DataType) -> pa.Scalar:
    target = _value_type(arrow_type)
    try:
        if pat.is_temporal(target):
            raw = value.replace("Z", "+00:00") if isinstance(value, str) else value
            if isinstance(raw, str) and pat.is_timestamp(target):
                raw = dt.datetime.fromisoformat(raw)
            elif isinstance(raw, str) and pat.is_date(target):
                raw = dt.date.fromisoformat(raw)
            return pa.scalar(raw).cast(target)
        if pat.is_string(target) or pat.is_large_string(target):
            return pa.scalar(str(value))
        if isinstance(value, int) and not -2**63 <= value < 2**63:
            return pa.scalar(value, pa.uint64()) if 0 <= value < 2**64 else pa.scalar(
                float(value))
        return pa.scalar(value)
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
        raise InvalidArgument(f"contract: columns.{name}.{key}: {value!r} cannot be compared "
                              f"with values of type {arrow_type} ({str(exc)[:80]})") from None


def _value_set(name: str, rule: ColumnRule, arrow_type: pa.DataType) -> pa.Array:
    target = _value_type(arrow_type)
    try:
        return pa.array(list(rule.categories or ()), type=target)
    except (pa.ArrowException, ValueError, TypeError):
        raise InvalidArgument(f"contract: columns.{name}.categories: {list(rule.categories or ())}"
                              f" are not all values of type {arrow_type}") from None


class ContractChecker:
    """Checks record batches against a contract as they stream by (a profiling observer)."""

    def __init__(self, contract: Contract, schema: pa.Schema) -> None:
        self.contract = contract
        self.problems: list[tuple[str, str, list[Any], str]] = []
        self.checks: dict[int, _ColumnCheck] = {}
        names = schema.names
        for name, rule in contract.columns.items():
            if name not in names:
                self.problems.append((name, "missing", [], f"column {name!r} is missing; "
                                      f"the table has {', '.join(map(repr, names))}"))
                continue
            arrow_type = schema.field(name).type
            if rule.type is not None and not type_matches(rule.type, arrow_type):
                self.problems.append((name, "type", [str(arrow_type)],
                                      f"column {name!r} has type {arrow_type}, the contract "
                                      f"wants {rule.type}"))
                continue
            self.checks[names.index(name)] = _ColumnCheck(name, rule, arrow_type)

    def observe(self, batch: pa.RecordBatch, first_row: int) -> None:
        for index, check in self.checks.items():
            check.observe(batch.column(index), first_row)

    def report(self, rows: int) -> ValidationReport:
        # A missing or mistyped column fails on every row.
        found = [Violation(name, rule, rows, examples, message)
                 for name, rule, examples, message in self.problems]
        for check in self.checks.values():
            found += check.violations()
        low, high = self.contract.min_rows, self.contract.max_rows
        if (low is not None and rows < low) or (high is not None and rows > high):
            wanted = f"at least {low:,}" if low is not None and rows < low else f"at most {high:,}"
            found.append(Violation(None, "rows", rows, [], f"the table has {rows:,} rows; the "
                                                          f"contract wants {wanted}"))
        return ValidationReport(rows, found)


def scan(source: TableSource | pa.Table | pa.RecordBatch, contract: Contract | None = None,
         ) -> tuple[TableProfile, ValidationReport | None]:
    """Profile ``source`` and, given a ``contract``, validate it, in one pass over the rows."""
    if contract is None:
        return profile_table(source), None
    schema = source.schema
    checker = ContractChecker(contract, schema)
    profile = profile_table(source, observers=[checker])
    return profile, checker.report(profile.rows)


def infer_contract(profile: TableProfile, *,
                   max_categories: int = INFER_MAX_CATEGORIES) -> Contract:
    """A contract that ``profile``'s table satisfies: types (as families), nullability,
    the observed range of numeric columns and the categories of columns with few of them."""
    rules: dict[str, ColumnRule] = {}
    for column in profile.schema:
        stats = profile.columns[column.name]
        family = type_family(column.type)
        low = high = None
        if stats.kind == "numeric" and family not in ("time", "duration"):
            low, high = (_plain(epoch_value(stats.min, column.type)),
                         _plain(epoch_value(stats.max, column.type)))
        categories = None
        if stats.categories is not None and stats.categories.complete and \
                0 < len(stats.categories.items) <= max_categories:
            categories = tuple(sorted((label for label, _ in stats.categories.items), key=str))
        rules[column.name] = ColumnRule(family or column.type, stats.nulls > 0, low, high,
                                        categories)
    return Contract(rules)
