"""The reference a model version is monitored against: a stored, mergeable table profile.

::

    set_reference("churn/3", "data/train.parquet", predictions=model.predict(X), target="y")
    set_reference("churn@production", "churn@7", predict=True, trusted=True)
    reference = reference_profile("churn@production")     # Reference: profile, roles, ...

:func:`set_reference` profiles the data — with the model's predictions as a ``prediction``
column when given (or computed with ``predict=True``) — stores the profile as a blob and
indexes it in ``model_references``. Checking a window never reads a reference row again.

:func:`reference_profile` returns the stored reference; a version without one falls back to
the stored profile of its training data (the first table among the dataset versions its run
read, the registry's lineage), which has no prediction column: drift is then checked on the
features only. Neither: :class:`~loopml.errors.NotFound` saying how to set one.

Feature importances weight the dataset-level drift verdict. Pass them (``importance=``), or
let ``predict=True`` read them from the loaded model (scikit-learn ``feature_importances_``,
or ``|coef_|`` averaged over classes; the last step of a ``Pipeline``); otherwise features
weigh alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    import pyarrow as pa

    from loopml.client.base import ClientBase
    from loopml.profiling import TableProfile, TableSource
    from loopml.registry.entities import ModelVersion

__all__ = ["PREDICTION", "Reference", "TableInput", "feature_importance", "open_input",
           "profile_of", "read_all", "reference_of", "reference_profile", "set_reference",
           "use_client"]

#: The column the model's predictions take in reference and window profiles.
PREDICTION = "prediction"


def use_client(client: ClientBase | None) -> ClientBase:
    """``client``, or the module-level API's default client."""
    if client is not None:
        return client
    from loopml.client.fluent import default_client

    return default_client()


# -- tables, whatever form they come in ----------------------------------------------------
@dataclass(frozen=True, eq=False)
class TableInput:
    """A table to check: its rows (``source``), its profile, or both; ``name`` says what it is
    in reports, ``contract`` is a dataset version's data contract (dict) when it has one."""

    name: str
    source: TableSource | None = None
    profile: TableProfile | None = None
    contract: dict[str, Any] | None = None


def _arrow(data: Any) -> pa.Table | None:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__
    if module.startswith("pandas") and type(data).__name__ == "DataFrame":
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return _mixed_frame(data)
    return None


def _mixed_frame(frame: Any) -> pa.Table:
    """A DataFrame with columns of mixed values (junk text among numbers): those columns
    become text, for the quality checks to count what does not read."""
    import pyarrow as pa

    columns = {}
    for name in frame.columns:
        values = frame[name]
        try:
            columns[str(name)] = pa.Array.from_pandas(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[str(name)] = pa.array([None if v is None or v != v else str(v)
                                           for v in values], pa.string())
    return pa.table(columns)


_PATH_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".parq", ".gz", ".bz2", ".zst", ".lz4")


def open_input(data: Any, *, client: ClientBase | None = None, rows: bool = True,
               what: str = "table") -> TableInput:
    """``data`` — a pyarrow Table, a pandas DataFrame, a TableProfile, a CSV/Parquet file or
    directory, or a dataset version (``churn@3``, ``churn@latest``) — as a :class:`TableInput`.

    A dataset version comes as its stored profile, plus its rows when ``rows`` is True.
    """
    from loopml.profiling import TableProfile, open_table
    from loopml.profiling.sources import ArrowSource

    if isinstance(data, TableProfile):
        return TableInput(name=f"a profile of {data.rows} rows", profile=data)
    table = _arrow(data)
    if table is not None:
        return TableInput(name=f"a table of {table.num_rows} rows", source=ArrowSource(table))
    if isinstance(data, str | Path):
        path = Path(data).expanduser()
        if path.exists():
            return TableInput(name=str(data), source=open_table(path))
        text = str(data)
        looks_like_path = isinstance(data, Path) or "/" in text or "\\" in text \
            or text.lower().endswith(_PATH_SUFFIXES)
        found = None if looks_like_path else _dataset(text, client=client, rows=rows)
        if found is not None:
            return found
        raise NotFound(f"{what} {text!r} is neither a file or directory nor a dataset version;"
                       " give a CSV or Parquet path, or a dataset version such as churn@3")
    raise InvalidArgument(f"{what} must be a pyarrow Table, a pandas DataFrame, a "
                          "TableProfile, a path or a dataset version (NAME@VERSION), got "
                          f"{type(data).__name__}")


def _dataset(text: str, *, client: ClientBase | None, rows: bool) -> TableInput | None:
    from loopml.datasets import records
    from loopml.datasets.entities import DatasetKind
    from loopml.datasets.ingest import load_profile
    from loopml.datasets.reading import load_table
    from loopml.datasets.refs import parse_ref
    from loopml.profiling.sources import ArrowSource

    try:
        ref = parse_ref(text)
    except InvalidArgument:
        return None
    stores = use_client(client)
    with stores.meta.read() as conn:
        dataset = records.find_dataset(conn, ref.name)
        if dataset is None:
            return None
        version = records.resolve(conn, ref)  # NotFound naming the versions there are
    if version.kind is not DatasetKind.TABLE:
        raise InvalidArgument(f"dataset version {version.ref} is a {version.kind.value}, not a "
                              "table: monitoring compares tables (CSV or Parquet versions)")
    profile = load_profile(stores.blobs, version)
    source = ArrowSource(load_table(stores.blobs, version, output="arrow")) \
        if rows or profile is None else None
    return TableInput(name=version.ref, source=source, profile=profile,
                      contract=dataset.contract)


def read_all(given: TableInput, *, what: str = "the data") -> pa.Table:
    """Every row of ``given`` in memory."""
    import pyarrow as pa

    if given.source is None:
        raise InvalidArgument(f"{what} is a profile ({given.name}): it has no rows to add "
                              "predictions to; give the table itself")
    source = given.source
    return pa.Table.from_batches(list(source.batches()), schema=source.schema)


def profile_of(given: TableInput) -> TableProfile:
    """The profile of ``given`` (computed in one pass when it came as rows only)."""
    from loopml.profiling import profile_table

    if given.profile is not None:
        return given.profile
    assert given.source is not None
    return profile_table(given.source)


# -- the reference of a model version ------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Reference:
    """What a model version is checked against: the profile, the role of its special columns
    (``{"prediction": "prediction", "y": "target"}``; the other columns are features), the
    features' importances when known, where it came from, its blob digest when stored with
    the version, and the training dataset's data contract (dict) when it has one."""

    model_version: str
    profile: TableProfile
    roles: dict[str, str]
    importance: dict[str, float] | None
    source: str
    digest: str | None = None
    contract: dict[str, Any] | None = None

    def _role(self, role: str) -> str | None:
        return next((column for column, kind in self.roles.items() if kind == role), None)

    @property
    def prediction(self) -> str | None:
        return self._role("prediction")

    @property
    def target(self) -> str | None:
        return self._role("target")

    @property
    def features(self) -> list[str]:
        return [c for c in self.profile.column_names if c not in self.roles]


def _version(stores: ClientBase, model: str) -> ModelVersion:
    from loopml.registry import records
    from loopml.registry.refs import parse_model_ref

    if not isinstance(model, str):
        raise InvalidArgument(f"model must be a reference such as churn/3 or "
                              f"churn@production, got {type(model).__name__}")
    with stores.meta.read() as conn:
        return records.resolve(conn, parse_model_ref(model))


def _load_model(stores: ClientBase, version: ModelVersion, trusted: bool) -> Any:
    from loopml.models import load_model
    from loopml.registry.materialize import materialize

    path = materialize(stores.blobs, version.tree, stores.settings.home / "cache" / "models")
    return load_model(path, trusted=trusted)


def _predict(loaded: Any, table: pa.Table, target: str | None) -> Any:
    signature = loaded.signature
    if signature is not None and signature.inputs.is_columns:
        inputs = signature.inputs.names
        missing = [c for c in inputs if c not in table.column_names]
        if missing:
            raise InvalidArgument(f"the reference data lacks the model's input column(s) "
                                  f"{', '.join(missing)}; give the data the model was "
                                  "trained on")
    else:
        inputs = [c for c in table.column_names if c != target]
    return loaded.predict(table.select(inputs).to_pandas())


def _prediction_array(predictions: Any, rows: int) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    values = np.asarray(predictions)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise InvalidArgument(f"predictions must be one value per row, got an array of shape "
                              f"{values.shape}; give the predicted label or value")
    if len(values) != rows:
        raise InvalidArgument(f"predictions has {len(values)} values for {rows} rows of "
                              "reference data; give one prediction per row")
    return pa.array(values.tolist() if values.dtype == object else values)


def feature_importance(model: object, features: Sequence[str]) -> dict[str, float] | None:
    """Importances (summing to 1) of a scikit-learn style model's input features:
    ``feature_importances_``, else ``|coef_|`` (averaged over classes); the last step of a
    ``Pipeline``. None when the model has neither or they do not match ``features``."""
    import numpy as np

    estimator = model
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        estimator = steps[-1][1]
    raw = getattr(estimator, "feature_importances_", None)
    if raw is None:
        coef = getattr(estimator, "coef_", None)
        if coef is None:
            return None
        weights = np.abs(np.asarray(coef, dtype=float))
        raw = weights.mean(axis=0) if weights.ndim == 2 else weights
    values = np.asarray(raw, dtype=float).ravel()
    named = getattr(model, "feature_names_in_", None)
    names = [str(n) for n in named] if named is not None else list(features)
    total = float(values.sum())
    if len(names) != len(values) or not np.isfinite(total) or total <= 0:
        return None
    return {name: float(v) / total for name, v in zip(names, values, strict=True)}


def _checked_importance(importance: Mapping[str, float] | None,
                        features: Sequence[str]) -> dict[str, float] | None:
    if importance is None:
        return None
    unknown = sorted(set(importance) - set(features))
    if unknown:
        raise InvalidArgument(f"importance names column(s) {', '.join(unknown)} that are not "
                              f"features of the reference; features: {', '.join(features)}")
    checked = {}
    for name, value in importance.items():
        number = float(value)
        if not number >= 0 or number == float("inf"):
            raise InvalidArgument(f"importance of {name!r} must be a finite number >= 0, got "
                                  f"{value!r}")
        checked[name] = number
    return checked


def set_reference(model: str, data: Any, *, predictions: Any = None,
                  target: str | None = None, importance: Mapping[str, float] | None = None,
                  predict: bool = False, trusted: bool = False,
                  client: ClientBase | None = None) -> Reference:
    """Profile ``data`` and store it as the reference of ``model`` (``churn/3``,
    ``churn@production``), replacing the one it had.

    ``data``: a pyarrow Table, pandas DataFrame, CSV/Parquet path, dataset version
    (``churn@3``) or TableProfile. ``predictions``: the model's predictions on ``data`` (one
    per row; they become the ``prediction`` column), or the name of a column of ``data``
    holding them; ``predict=True`` loads the model and computes them (``trusted`` allows
    pickled packages), and reads feature importances from it when ``importance`` is not
    given. ``target``: the column holding the true labels, if ``data`` has one.
    """
    from loopml.identity import current_user
    from loopml.monitoring.records import put_reference
    from loopml.profiling import profile_table

    stores = use_client(client)
    version = _version(stores, model)
    if predict and predictions is not None:
        raise InvalidArgument("give predictions or predict=True, not both")
    adds_column = predict or (predictions is not None and not isinstance(predictions, str))
    given = open_input(data, client=stores, rows=adds_column, what="reference data")
    roles: dict[str, str] = {}
    loaded = None
    if adds_column:
        table = read_all(given, what="the reference data")
        if PREDICTION in table.column_names:
            raise InvalidArgument(f"the reference data has a column {PREDICTION!r} already; "
                                  f"pass predictions={PREDICTION!r} to use it")
        if predict:
            loaded = _load_model(stores, version, trusted)
            predictions = _predict(loaded, table, target)
        table = table.append_column(PREDICTION, _prediction_array(predictions, table.num_rows))
        profile = profile_table(table)
        roles[PREDICTION] = "prediction"
    else:
        profile = profile_of(given)
        if isinstance(predictions, str):
            roles[predictions] = "prediction"
    if target is not None:
        roles[target] = "target"
    missing = [column for column in roles if column not in profile.columns]
    if missing:
        raise InvalidArgument(f"the reference data has no column {', '.join(missing)}; its "
                              f"columns: {', '.join(profile.column_names)}")
    features = [c for c in profile.column_names if c not in roles]
    if importance is None and loaded is not None:
        importance = feature_importance(loaded.raw, features)
    checked = _checked_importance(importance, features)
    digest = stores.blobs.put_json(profile.to_dict())
    with stores.meta.write() as conn:
        put_reference(conn, version.id, profile=digest, roles=roles, importance=checked,
                      source=given.name, created_by=current_user())
    return Reference(version.ref, profile, roles, checked, given.name, digest,
                     _training_contract(stores, version))


def _training_contract(stores: ClientBase, version: ModelVersion) -> dict[str, Any] | None:
    """The data contract of the first training dataset (lineage) that has one."""
    from loopml.datasets import records
    from loopml.datasets.refs import parse_ref

    with stores.meta.read() as conn:
        for ref in version.datasets:
            dataset = records.find_dataset(conn, parse_ref(ref).name)
            if dataset is not None and dataset.contract:
                return dataset.contract
    return None


def reference_of(stores: ClientBase, version: ModelVersion) -> Reference:
    """The reference of ``version``: the stored one, else its training data's profile."""
    from loopml.monitoring.records import get_reference
    from loopml.profiling import TableProfile

    with stores.meta.read() as conn:
        record = get_reference(conn, version.id)
    contract = _training_contract(stores, version)
    if record is not None:
        profile = TableProfile.from_dict(stores.blobs.get_json(record.profile))
        return Reference(version.ref, profile, record.roles, record.importance,
                         record.source, record.profile, contract)
    for ref in version.datasets:
        try:
            found = open_input(ref, client=stores, rows=False)
        except (NotFound, InvalidArgument):  # gone since, or not a table
            continue
        return Reference(version.ref, profile_of(found), {}, None, f"training data {ref}",
                         None, found.contract or contract)
    lineage = ", ".join(version.datasets) or "none recorded"
    raise NotFound(f"model version {version.ref} has no reference profile and no table among "
                   f"its training datasets ({lineage}); set one with: loopml monitor "
                   f"reference {version.ref} DATA (or loopml.monitoring.set_reference)")


def reference_profile(model: str, *, client: ClientBase | None = None) -> Reference:
    """The reference ``model`` (``churn/3``, ``churn@production``) is checked against."""
    stores = use_client(client)
    return reference_of(stores, _version(stores, model))
