"""What the labels of a review queue become: rows of which dataset, in which column, from
which set of classes; and a label given by a person, checked and converted to that column.

The model version is the one the endpoint serves (a deployment's primary model, or the
endpoint read as a model reference such as ``churn@production``), or ``model`` when given.
The dataset is ``dataset`` when given, else the first table among the dataset versions the
model version was trained on (the registry's lineage); labelled rows are appended to its
latest version. The label column (``target``) is, in this order: the one given; the
``target`` of the model version's monitoring reference (``loopml monitor reference ...
--target``); the one column of the dataset that is neither an input of the model's signature
nor the gate's ``split`` column. The classes are those given, else read from the training
version's profile of the target column: the values of a text or boolean column, or the
integers from min to max of an integer column with that many distinct values (up to 50).
Neither: labels are only checked against the column's type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from loopml.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from loopml.client.base import ClientBase
    from loopml.datasets.entities import DatasetVersion
    from loopml.profiling.schema import ColumnSchema
    from loopml.registry.entities import ModelVersion

__all__ = ["MAX_CLASSES", "ReviewTarget", "coerce_label", "model_of", "resolve_target"]

MAX_CLASSES = 50
_SPLIT = "split"  # the gate's split column (loopml.automation.gate.SPLIT_COLUMN)
_TRUE, _FALSE = ("true", "1", "yes", "y", "t"), ("false", "0", "no", "n", "f")


@dataclass(frozen=True)
class ReviewTarget:
    """Where labelled rows go: ``dataset`` (a name; its latest version is appended to),
    its ``columns`` (of the latest version), the label column ``target`` and how it was
    found, the ``classes`` when known, and the model version they label."""

    model_version: str
    dataset: str
    columns: tuple[ColumnSchema, ...]
    target: str
    how: str
    classes: tuple[Any, ...] | None

    @property
    def target_type(self) -> str | None:
        return next((c.type for c in self.columns if c.name == self.target), None)


def model_of(stores: ClientBase, endpoint: str, model: str | None = None) -> ModelVersion:
    """The model version behind ``endpoint``: ``model`` when given, a deployment's primary
    model, or the endpoint read as a model reference."""
    from loopml.deployments.records import get_deployment
    from loopml.registry import records
    from loopml.registry.refs import parse_model_ref

    with stores.meta.read() as conn:
        if model is None:
            try:
                model = get_deployment(conn, endpoint).policy.model
            except NotFound:
                model = endpoint
        try:
            ref = parse_model_ref(model)
        except InvalidArgument:
            raise NotFound(f"{endpoint!r} is neither a deployment nor a model reference "
                           "(churn@production); pass the model (--model) it serves") from None
        return records.resolve(conn, ref)


def _lineage_table(stores: ClientBase, version: ModelVersion) -> DatasetVersion:
    from loopml.datasets import records
    from loopml.datasets.entities import DatasetKind
    from loopml.datasets.refs import parse_ref

    with stores.meta.read() as conn:
        for ref in version.datasets:
            try:
                found = records.resolve(conn, parse_ref(ref))
            except (NotFound, InvalidArgument):
                continue
            if found.kind is DatasetKind.TABLE:
                return found
    lineage = ", ".join(version.datasets) or "none recorded"
    raise InvalidArgument(f"model version {version.ref} was trained on no table dataset "
                          f"known here (lineage: {lineage}); pass the dataset the labels go "
                          "to (dataset=..., --dataset NAME)")


def _latest_table(stores: ClientBase, name: str) -> DatasetVersion:
    from loopml.datasets import records
    from loopml.datasets.entities import DatasetKind
    from loopml.datasets.refs import parse_ref

    with stores.meta.read() as conn:
        version = records.resolve(conn, parse_ref(name))
    if version.kind is not DatasetKind.TABLE or not version.schema:
        raise InvalidArgument(f"dataset {version.ref} is a {version.kind.value} without a "
                              "table schema; labelled rows can only be appended to a table")
    return version


def _stored_target(stores: ClientBase, version: ModelVersion) -> str | None:
    from loopml.monitoring.records import get_reference

    with stores.meta.read() as conn:
        record = get_reference(conn, version.id)
    if record is None:
        return None
    return next((c for c, role in record.roles.items() if role == "target"), None)


def _inferred_target(columns: Sequence[ColumnSchema], version: ModelVersion,
                     dataset: str) -> str:
    inputs: list[str] = []
    signature = version.signature or {}
    for column in (signature.get("inputs") or {}).get("columns") or ():
        inputs.append(str(column.get("name")))
    names = [c.name for c in columns]
    left = [n for n in names if n not in inputs and n != _SPLIT]
    if inputs and len(left) == 1:
        return left[0]
    why = ("the model's signature names no input columns" if not inputs else
           f"{len(left)} of its columns are not model inputs ({', '.join(left) or 'none'})")
    raise InvalidArgument(f"cannot tell which column of {dataset} holds the label: {why}; "
                          "pass it (target=..., --target COLUMN)")


def _profile_classes(stores: ClientBase, version: DatasetVersion,
                     target: str) -> tuple[Any, ...] | None:
    from loopml.datasets.ingest import load_profile

    profile = load_profile(stores.blobs, version)
    if profile is None or target not in profile.columns:
        return None
    column = profile[target]
    if column.categories is not None:
        if not column.categories.complete or len(column.categories.items) > MAX_CLASSES:
            return None
        return tuple(sorted(label for label, _ in column.categories.items))
    low, high, distinct = column.min, column.max, column.distinct
    if isinstance(low, int) and isinstance(high, int) and distinct is not None \
            and high - low + 1 == distinct <= MAX_CLASSES:
        return tuple(range(low, high + 1))
    return None


def resolve_target(stores: ClientBase, version: ModelVersion, *, dataset: str | None = None,
                   target: str | None = None,
                   classes: Sequence[Any] | None = None) -> ReviewTarget:
    """Where the labels of ``version``'s predictions go (see the module's docstring)."""
    from loopml.profiling.schema import ColumnSchema

    trained = _lineage_table(stores, version) if dataset is None else None
    name = dataset.partition("@")[0] if dataset is not None else trained.dataset  # type: ignore[union-attr]
    latest = _latest_table(stores, name)
    columns = tuple(ColumnSchema.from_dict(c) for c in latest.schema or ())
    how = "given"
    if target is None:
        target, how = _stored_target(stores, version), "the model's monitoring reference"
    if target is None:
        target = _inferred_target(columns, version, latest.ref)
        how = "the one dataset column that is not a model input"
    if target not in {c.name for c in columns}:
        raise InvalidArgument(f"the label column {target!r} is not a column of {latest.ref} "
                              f"(columns: {', '.join(c.name for c in columns)}); pass the "
                              "right one (target=..., --target COLUMN)")
    known = tuple(classes) if classes is not None else _profile_classes(
        stores, trained or latest, target)
    return ReviewTarget(version.ref, name, columns, target, how, known)


def _from_text(text: str, family: str | None) -> Any:
    lowered = text.strip().lower()
    if family == "integer":
        return int(text)
    if family == "float":
        return float(text)
    if family == "boolean":
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise ValueError(text)
    if family == "string":
        return text
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, int | float | bool) else text


def _typed(value: Any, family: str | None) -> Any:
    if isinstance(value, str):
        return _from_text(value, family)
    if family == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if family == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if family == "string":
        return str(value)
    if not isinstance(value, int | float | bool) or (isinstance(value, float)
                                                     and not math.isfinite(value)):
        raise ValueError(value)
    if family == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ValueError(value)
    return value


def coerce_label(value: Any, target: ReviewTarget | None) -> Any:
    """``value`` as a value of the label column: one of the classes when they are known (text
    such as ``"1"`` matches the class ``1``), else converted to the column's type."""
    from loopml.profiling.schema import type_family

    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidArgument("a label cannot be empty; skip the item instead")
    where = "" if target is None else f" of {target.model_version} (column {target.target!r})"
    if target is not None and target.classes is not None:
        for known in target.classes:
            if value == known and isinstance(value, bool) == isinstance(known, bool):
                return known
        text = str(value).strip().lower()
        for known in target.classes:
            if str(known).lower() == text:
                return known
        allowed = ", ".join(str(c) for c in target.classes)
        raise InvalidArgument(f"label {value!r} is not a class{where}; allowed values: "
                              f"{allowed}")
    type_text = None if target is None else target.target_type
    family = None if type_text is None else type_family(type_text)
    try:
        return _typed(value, family)
    except (ValueError, TypeError):
        kind = f"a {family} value" if family else "a number, text or boolean"
        raise InvalidArgument(f"label {value!r} is not {kind}{where}; give {kind}") from None
