"""Conditions written as text, e.g. ``"metrics['auc'] >= champion['auc']"``.

Only comparisons, boolean logic, arithmetic, subscripts, ``len``/``abs``/``min``/``max``
and constants over the given names are allowed: no calls to anything else, no attributes,
so a condition stored with a pipeline cannot run code.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from loopml.errors import InvalidArgument

__all__ = ["check_condition", "evaluate_condition"]

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"len": len, "abs": abs, "min": min, "max": max}


def check_condition(text: str, names: tuple[str, ...]) -> ast.Expression:
    """Parse ``text``; a LoopmlError if it is not a condition over ``names``."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise InvalidArgument(f"condition {text!r} is not a valid expression ({exc.msg}); "
                              "write e.g. \"metrics['auc'] >= champion['auc']\"") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names and node.id not in _FUNCTIONS:
            raise InvalidArgument(f"condition {text!r} uses the unknown name {node.id!r}; "
                                  f"it may use {', '.join(names)}")
        if isinstance(node, ast.Attribute | ast.Lambda | ast.NamedExpr | ast.comprehension):
            raise InvalidArgument(f"condition {text!r} may only compare values (no "
                                  "attributes, lambdas or comprehensions)")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name)
                                               and node.func.id in _FUNCTIONS):
            raise InvalidArgument(f"condition {text!r} may only call "
                                  f"{', '.join(_FUNCTIONS)}")
    return tree


def evaluate_condition(text: str, values: Mapping[str, Any]) -> bool:
    """Evaluate the condition with ``values`` for its names (a missing key is an error
    that names it)."""
    tree = check_condition(text, tuple(values))
    try:
        return bool(_eval(tree.body, values))
    except (KeyError, IndexError) as exc:
        available = {k: sorted(v) if isinstance(v, dict) else v for k, v in values.items()}
        raise InvalidArgument(f"condition {text!r} looks up {exc}, which is not there; "
                              f"available: {available}") from None
    except TypeError as exc:
        raise InvalidArgument(f"condition {text!r} cannot be evaluated ({exc})") from None


def _eval(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values[node.id] if node.id in values else _FUNCTIONS[node.id]
    if isinstance(node, ast.Subscript):
        return _eval(node.value, values)[_eval(node.slice, values)]
    if isinstance(node, ast.BoolOp):
        results = (_eval(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, values)
        return not operand if isinstance(node.op, ast.Not) else -operand
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        return _FUNCTIONS[node.func.id](*(_eval(a, values) for a in node.args))  # type: ignore[attr-defined]
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, values) for e in node.elts]
    raise InvalidArgument(f"unsupported expression {ast.unparse(node)!r} in a condition")
