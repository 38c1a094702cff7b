"""Choosing versions: evaluate a search filter (the tracking syntax) on versions' metrics and
params, and pick the best by a metric."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

from loopml.errors import InvalidArgument
from loopml.registry.entities import ModelVersion
from loopml.tracking.filter import And, Comparison, Expr, Not, Or, parse_filter

__all__ = ["best_version", "matches"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}


def _value(version: ModelVersion, kind: str, key: str) -> Any:
    if kind == "metric":
        return version.metrics.get(key)
    if kind == "param":
        return version.params.get(key)
    if kind == "attribute":
        key = {"id": "run_id"}.get(key, key)  # the filter parser names run ids "id"
        if key in ("status", "flavor", "run_id", "version"):
            return getattr(version, key)
    raise InvalidArgument(f"versions can be filtered on metrics.*, params.* and status, "
                          f"flavor, run_id, version; not on {kind} {key!r}")


def matches(version: ModelVersion, expr: Expr | None) -> bool:
    if expr is None:
        return True
    if isinstance(expr, And):
        return all(matches(version, e) for e in expr.operands)
    if isinstance(expr, Or):
        return any(matches(version, e) for e in expr.operands)
    if isinstance(expr, Not):
        return not matches(version, expr.operand)
    return _compare(version, expr)


def _compare(version: ModelVersion, comparison: Comparison) -> bool:
    value = _value(version, comparison.ident.kind, comparison.ident.key)
    op, wanted = comparison.op, comparison.value
    if op == "IS NULL":
        return value is None
    if op == "IS NOT NULL":
        return value is not None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if op in ("IN", "NOT IN"):
        inside = value in (wanted if isinstance(wanted, tuple) else (wanted,))
        return inside if op == "IN" else not inside
    if op in _OPS:
        return bool(_OPS[op](value, wanted))
    raise InvalidArgument(f"operator {op} is not supported when choosing model versions; use "
                          "=, !=, <, <=, >, >=, IN, NOT IN, IS [NOT] NULL")


def best_version(versions: Sequence[ModelVersion], *, metric: str, mode: str = "max",
                 where: str | None = None) -> ModelVersion | None:
    """The active version with the highest (``mode="max"``) or lowest metric among those that
    match ``where``; None when no version has the metric."""
    if mode not in ("max", "min"):
        raise InvalidArgument(f"mode must be 'max' or 'min', got {mode!r}")
    expr = parse_filter(where)
    scored = [v for v in versions if v.status == "active" and matches(v, expr)
              and isinstance(v.metrics.get(metric), int | float)
              and not math.isnan(v.metrics[metric])]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda v: (v.metrics[metric], v.version))
