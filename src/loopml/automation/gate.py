"""The gate: may a challenger replace the champion?

Both model versions predict exactly the same held-out rows; the challenger passes when

- its ``metric`` beats the champion's by at least ``margin`` (absolute, or relative to the
  champion's value with ``margin_relative``; a negative margin tolerates a small loss),
- no declared slice (each value of each column in ``slices``, with at least
  ``min_slice_rows`` rows) is worse than the champion's by more than ``slice_tolerance``,
- and the optional checks hold: ``threshold`` (the metric reached on its own),
  ``max_latency_ms`` (p99 of single-row predictions over ``latency_rows`` calls) and
  ``max_size_mb`` (the package on disk, MiB).

Without a champion (the first model) the challenger is judged on its own checks, and the
result says so. Tree models stored with skops load when their types are vouched for: by
``trusted_types``, or, for a version a retrain of the agent built, by the package's own
record (see :mod:`.gate_trust`). ::

    policy = GatePolicy(metric="auc", target="churned", margin=0.01, slices=("region",))
    result = evaluate_gate("churn/7", "churn@production", data="churn", policy=policy)
    result.passed, result.reason          # False, "auc 0.861 vs churn/3 0.874 ..."

**Held-out rows.** ``data`` is a table (pandas or pyarrow: every row is held out) or a
dataset reference (``churn`` is the newest version, ``churn@4`` a given one) whose holdout
is taken by :func:`holdout_rows`: the rows whose ``split`` column says ``holdout`` when the
table has that column, else the rows whose stable hash (of the ``holdout_key`` column, or of
the whole row) falls in the first ``holdout_fraction`` of the hash space. The hash does not
depend on the version, so a row appended later never moves between training and holdout; a
training step excludes the same rows with :func:`split_holdout`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.automation.slices import (
    KNOWN_METRICS,
    REGRESSION,
    Predictions,
    SliceResult,
    higher_is_better,
    report_metrics,
    score,
    slice_table,
    worst,
)
from loopml.errors import InvalidArgument, PermissionDenied
from loopml.registry.refs import parse_model_ref

if TYPE_CHECKING:
    import pandas as pd

    from loopml.client.embedded import Client

__all__ = ["SPLIT_COLUMN", "GateCheck", "GatePolicy", "GateResult", "evaluate_gate",
           "holdout_rows", "split_holdout"]

#: the column that marks held-out rows (value ``holdout``) when a table has it
SPLIT_COLUMN = "split"
_BUCKETS = 10_000


@dataclass(frozen=True, kw_only=True)
class GatePolicy:
    """The rules a challenger must pass (see the module's docstring)."""

    metric: str
    target: str = "label"
    margin: float = 0.0
    margin_relative: bool = False
    threshold: float | None = None
    slices: tuple[str, ...] = ()
    slice_tolerance: float = 0.02
    min_slice_rows: int = 30
    max_latency_ms: float | None = None
    latency_rows: int = 100
    max_size_mb: float | None = None
    data: str | None = None
    holdout_fraction: float = 0.2
    holdout_key: str | None = None
    #: types outside skops' trusted list that the gate may load (``sklearn.tree._tree.Tree``
    #: for random forests and gradient boosting), see :mod:`.gate_trust`
    trusted_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.metric not in KNOWN_METRICS:
            raise InvalidArgument(f"unknown gate metric {self.metric!r}; use one of "
                                  f"{', '.join(KNOWN_METRICS)}")
        for name in ("slices", "trusted_types"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        if not all(isinstance(item, str) and item for item in self.trusted_types):
            raise InvalidArgument(f"the gate's trusted_types is a list of type names (e.g. "
                                  f"[sklearn.tree._tree.Tree]), got {self.trusted_types!r}")
        if not isinstance(self.target, str) or not self.target:
            raise InvalidArgument(f"the gate's target is the label column's name; got "
                                  f"{self.target!r}")
        for name in ("margin", "slice_tolerance", "threshold", "max_latency_ms",
                     "max_size_mb"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float)
                                      or not math.isfinite(value)):
                raise InvalidArgument(f"the gate's {name} must be a finite number, got "
                                      f"{value!r}")
        if self.slice_tolerance < 0:
            raise InvalidArgument(f"slice_tolerance is the largest loss allowed on a slice "
                                  f"(>= 0), got {self.slice_tolerance}")
        for name in ("max_latency_ms", "max_size_mb"):
            if (getattr(self, name) or 1) <= 0:
                raise InvalidArgument(f"{name} must be > 0, got {getattr(self, name)}")
        if self.min_slice_rows < 1 or self.latency_rows < 1:
            raise InvalidArgument(f"min_slice_rows and latency_rows must be >= 1; got "
                                  f"{self.min_slice_rows}, {self.latency_rows}")
        if self.data is not None and (not isinstance(self.data, str) or not self.data):
            raise InvalidArgument(f"the gate's data is a dataset reference (e.g. 'churn' for "
                                  f"its newest version, or 'churn@4'); got {self.data!r}")
        if not 0 < self.holdout_fraction < 1:
            raise InvalidArgument(f"holdout_fraction is a share between 0 and 1 "
                                  f"(exclusive), got {self.holdout_fraction}")

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One rule of the gate, with the number it measured and the limit it compared with."""

    name: str
    passed: bool
    value: float | None
    limit: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "value": _rounded(self.value),
                "limit": self.limit, "detail": self.detail}


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 6)


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """What the gate decided and every number it decided on."""

    passed: bool
    challenger: str
    champion: str | None
    metric: str
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    slices: tuple[SliceResult, ...] = ()
    checks: tuple[GateCheck, ...] = ()
    rows: int
    data: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (for events and the rollout's record)."""
        return {"passed": self.passed, "challenger": self.challenger,
                "champion": self.champion, "metric": self.metric,
                "challenger_metrics": {k: _rounded(v) for k, v in
                                       self.challenger_metrics.items()},
                "champion_metrics": None if self.champion_metrics is None else
                {k: _rounded(v) for k, v in self.champion_metrics.items()},
                "slices": [s.to_dict() for s in self.slices],
                "checks": [c.to_dict() for c in self.checks], "rows": self.rows,
                "data": self.data, "reason": self.reason}


# -- held-out rows -------------------------------------------------------------------------
def _in_holdout(frame: pd.DataFrame, *, fraction: float, key: str | None) -> Any:
    import pandas as pd

    if key is not None and key not in frame.columns:
        raise InvalidArgument(f"holdout_key {key!r} is not a column of the data; columns: "
                              f"{', '.join(map(str, frame.columns))}")
    hashed = pd.util.hash_pandas_object(frame[key] if key else frame, index=False)
    return (hashed.to_numpy() % _BUCKETS) < round(fraction * _BUCKETS)


def holdout_rows(frame: pd.DataFrame, *, fraction: float = 0.2,
                 key: str | None = None) -> pd.DataFrame:
    """The held-out rows of ``frame`` (see the module's docstring)."""
    if SPLIT_COLUMN in frame.columns:
        held = frame[frame[SPLIT_COLUMN].astype(str) == "holdout"]
        if held.empty:
            found = sorted(map(str, frame[SPLIT_COLUMN].unique()))[:10]
            raise InvalidArgument(f"the data has a {SPLIT_COLUMN!r} column but no row with "
                                  f"{SPLIT_COLUMN} == 'holdout' (values: {', '.join(found)}); "
                                  "mark the held-out rows, or drop the column to hash rows")
        return held.reset_index(drop=True)
    return frame[_in_holdout(frame, fraction=fraction, key=key)].reset_index(drop=True)


def split_holdout(frame: pd.DataFrame, *, fraction: float = 0.2, key: str | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, held-out rows): the complement of :func:`holdout_rows`, for a
    training step that must not see what the gate evaluates on."""
    if SPLIT_COLUMN in frame.columns:
        held = frame[SPLIT_COLUMN].astype(str) == "holdout"
    else:
        held = _in_holdout(frame, fraction=fraction, key=key)
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)


def _rows(client: Client, data: Any, policy: GatePolicy) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    if isinstance(data, str):
        version = client.get_dataset_version(data)
        frame = client.load_table(version.ref)
        rows = holdout_rows(frame, fraction=policy.holdout_fraction, key=policy.holdout_key)
        how = ("split == 'holdout'" if SPLIT_COLUMN in frame.columns else
               f"{policy.holdout_fraction:g} hashed by {policy.holdout_key or 'row'}")
        return rows, f"{version.ref} holdout ({how})"
    if hasattr(data, "to_pandas") and not isinstance(data, pd.DataFrame):
        data = data.to_pandas()
    if not isinstance(data, pd.DataFrame):
        raise InvalidArgument(f"the gate's data must be a dataset reference (e.g. 'churn' or "
                              f"'churn@4'), a pandas DataFrame or a pyarrow Table; got a "
                              f"{type(data).__name__}")
    return data.reset_index(drop=True), "the given table"


def _check_rows(frame: pd.DataFrame, policy: GatePolicy, where: str) -> None:
    columns = ", ".join(map(str, frame.columns))
    if policy.target not in frame.columns:
        raise InvalidArgument(f"the gate's target column {policy.target!r} is not in "
                              f"{where} (columns: {columns}); set the gate's target to the "
                              "label column")
    missing = [s for s in policy.slices if s not in frame.columns]
    if missing:
        raise InvalidArgument(f"the gate's slice column(s) {', '.join(map(repr, missing))} "
                              f"are not in {where} (columns: {columns}); fix the gate's slices")
    if frame.empty:
        raise InvalidArgument(f"{where} has no rows to evaluate on; add held-out rows or "
                              "raise holdout_fraction")
    if frame[policy.target].isna().any():
        raise InvalidArgument(f"the target column {policy.target!r} of {where} has missing "
                              "labels; the gate needs a label on every held-out row")


# -- models ----------------------------------------------------------------------------------
def _features(model: Any, frame: pd.DataFrame, policy: GatePolicy, ref: str
              ) -> pd.DataFrame:
    signature = model.signature
    if signature is not None and signature.inputs.is_columns:
        names = [c.name for c in signature.inputs.columns]
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise InvalidArgument(f"{ref} expects the column(s) {', '.join(missing)}, which "
                                  "the gate's data lacks; evaluate on data with the model's "
                                  "features")
        return frame[names]
    return frame.drop(columns=[c for c in (policy.target, SPLIT_COLUMN) if c in frame.columns])


def _p99_ms(model: Any, features: pd.DataFrame, count: int) -> float:
    import numpy as np

    def one(i: int) -> Any:
        return features.iloc[[i % len(features)]]

    for i in range(min(3, count)):
        model.predict(one(i))
    seconds = []
    for i in range(count):
        started = time.perf_counter()
        model.predict(one(i))
        seconds.append(time.perf_counter() - started)
    return float(np.percentile(np.asarray(seconds) * 1000, 99))


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / (1024 * 1024)


def _load(client: Client, ref: str, trusted: bool, policy: GatePolicy
          ) -> tuple[str, Any, Path]:
    """The version, loaded; a skops package with types outside skops' trusted list loads
    when they are vouched for (see :mod:`.gate_trust`)."""
    from loopml.automation.gate_trust import built_by_agent, recorded_types, skops_types_allowed
    from loopml.models import load_model

    version = client.get_model_version(ref)
    path = client.model_path(version.uri)
    if not trusted:
        allowed = set(policy.trusted_types)
        if built_by_agent(client, version):
            allowed |= set(recorded_types(path))
        trusted = skops_types_allowed(path, allowed)
    try:
        return version.ref, load_model(path, trusted=trusted), path
    except PermissionDenied as exc:
        raise PermissionDenied(f"the gate cannot load {version.ref}: "
                               f"{str(exc).rstrip('.')}. For the gate, "
                               "list a skops model's types in the gate policy's "
                               "trusted_types (e.g. gate: {metric: auc, trusted_types: "
                               "[sklearn.tree._tree.Tree]} in loopml.yaml); a pickle loads "
                               "only with on_candidate(..., trusted=True)") from None


def _default_data(client: Client, challenger: str) -> str:
    """The dataset the challenger was trained on (its newest version), from its lineage."""
    from loopml.datasets.refs import parse_ref

    version = client.get_model_version(challenger)
    names = sorted({parse_ref(ref).name for ref in version.datasets})
    if len(names) != 1:
        found = f"several ({', '.join(names)})" if names else "none"
        raise InvalidArgument(f"no held-out data for the gate of {version.ref}: the training "
                              f"datasets it records are {found}; set the gate's data "
                              "(e.g. data: churn)")
    return names[0]


def evaluate_gate(challenger: str, champion: str | None = None, *, data: Any = None,
                  policy: GatePolicy, client: Client | None = None,
                  trusted: bool = False) -> GateResult:
    """Compare ``challenger`` (``churn/7``) with ``champion`` (``churn@production``, or
    None for the first model) on the held-out rows of ``data`` (see the module's
    docstring; default: the policy's ``data``, else the newest version of the dataset the
    challenger was trained on). ``trusted`` allows packages that run code when loaded
    (pickle)."""
    import numpy as np

    if not isinstance(policy, GatePolicy):
        raise InvalidArgument(f"policy must be a GatePolicy, got {type(policy).__name__}; "
                              "build one with GatePolicy(metric=...) or parse_policies")
    if client is None:
        from loopml.client.fluent import default_client

        client = default_client()
    parse_model_ref(challenger)
    if data is None:
        data = policy.data or _default_data(client, challenger)
    frame, where = _rows(client, data, policy)
    _check_rows(frame, policy, where)
    new_ref, new_model, new_path = _load(client, challenger, trusted, policy)
    old = None if champion is None else _load(client, champion, trusted, policy)
    if old is not None and old[0] == new_ref:
        raise InvalidArgument(f"{challenger} and {champion} are the same version ({new_ref}); "
                              "a gate compares a new version with the one in place")
    truth = frame[policy.target].to_numpy()
    proba = policy.metric not in REGRESSION  # probabilities for auc and log_loss too
    new_features = _features(new_model, frame, policy, new_ref)
    ours = Predictions.of(new_model, new_features, with_proba=proba)
    theirs = None if old is None else Predictions.of(
        old[1], _features(old[1], frame, policy, old[0]), with_proba=proba)
    slices: list[SliceResult] = []
    for column in policy.slices:
        slices += slice_table(column, frame[column].to_numpy(), truth, ours, theirs,
                              metric=policy.metric, tolerance=policy.slice_tolerance,
                              min_rows=policy.min_slice_rows)
    checks = _metric_checks(policy, score(policy.metric, truth, ours),
                            None if theirs is None else score(policy.metric, truth, theirs),
                            None if old is None else old[0])
    checks += _slice_checks(policy, slices, has_champion=theirs is not None)
    if policy.max_latency_ms is not None:
        p99 = _p99_ms(new_model, new_features, policy.latency_rows)
        checks.append(GateCheck(name="latency", passed=p99 <= policy.max_latency_ms,
                                value=p99, limit=policy.max_latency_ms,
                                detail=f"p99 latency of one row {p99:.2f} ms (limit "
                                       f"{policy.max_latency_ms:g} ms, {policy.latency_rows} "
                                       "calls)"))
    if policy.max_size_mb is not None:
        size = _size_mb(new_path)
        checks.append(GateCheck(name="size", passed=size <= policy.max_size_mb, value=size,
                                limit=policy.max_size_mb,
                                detail=f"package {size:.2f} MiB (limit {policy.max_size_mb:g} "
                                       "MiB)"))
    passed = all(check.passed for check in checks)
    failed = [c.detail for c in checks if not c.passed]
    reason = ("passed: " if passed else "failed: ") + "; ".join(
        failed or [c.detail for c in checks])
    return GateResult(passed=passed, challenger=new_ref, champion=None if old is None
                      else old[0], metric=policy.metric,
                      challenger_metrics=report_metrics(policy.metric, truth, ours),
                      champion_metrics=None if theirs is None
                      else report_metrics(policy.metric, truth, theirs),
                      slices=tuple(slices), checks=tuple(checks), rows=len(frame),
                      data=f"{where}: {len(frame)} rows", reason=reason,
                      details={"classes": None if ours.classes is None
                               else np.asarray(ours.classes).tolist()})


def _metric_checks(policy: GatePolicy, ours: float, theirs: float | None,
                   champion: str | None) -> list[GateCheck]:
    metric = policy.metric
    if math.isnan(ours):
        raise InvalidArgument(f"{metric!r} is not defined on the held-out rows (e.g. only one "
                              "class among the labels); evaluate on more varied rows")
    checks = []
    if policy.threshold is not None:
        ok = ours >= policy.threshold if policy.higher_is_better else ours <= policy.threshold
        word = "at least" if policy.higher_is_better else "at most"
        checks.append(GateCheck(name="threshold", passed=ok, value=ours,
                                limit=policy.threshold,
                                detail=f"{metric} {ours:.4f} must be {word} "
                                       f"{policy.threshold:g}"))
    if theirs is None:
        checks.append(GateCheck(name="champion", passed=True, value=ours, limit=None,
                                detail=f"no champion: {metric} {ours:.4f}, judged on its own "
                                       "checks"))
        return checks
    change = (ours - theirs) * (1 if policy.higher_is_better else -1)
    if policy.margin_relative:
        value = change / abs(theirs) if theirs else math.inf * (1 if change >= 0 else -1)
        need = f"{policy.margin:+.2%} relative"
        got = f"{value:+.2%}"
    else:
        value, need, got = change, f"{policy.margin:+.4f}", f"{change:+.4f}"
    ok = value >= policy.margin
    checks.append(GateCheck(name="metric", passed=ok, value=value, limit=policy.margin,
                            detail=f"{metric} {ours:.4f} vs champion {champion} {theirs:.4f} "
                                   f"({got}, {'meets' if ok else 'needs'} margin {need})"))
    return checks


def _slice_checks(policy: GatePolicy, slices: list[SliceResult], *,
                  has_champion: bool) -> list[GateCheck]:
    if not policy.slices or not has_champion:
        return []
    bad = [s for s in slices if not s.passed]
    judged = sum(s.judged for s in slices)
    low = worst(slices)
    if bad:
        words = ", ".join(f"{s.column}={s.value!r} {s.change:+.4f} ({s.rows} rows)"
                          for s in bad[:5] if s.change is not None)
        detail = (f"{len(bad)} slice(s) regressed beyond the tolerance of "
                  f"{policy.slice_tolerance:g}: {words}")
    else:
        where = (f"; worst {low.column}={low.value!r} {low.change:+.4f}"
                 if low is not None and low.change is not None else "")
        detail = (f"no slice regressed beyond {policy.slice_tolerance:g} ({judged} judged of "
                  f"{len(slices)}{where})")
    return [GateCheck(name="slices", passed=not bad,
                      value=None if low is None else low.change,
                      limit=-policy.slice_tolerance, detail=detail)]
