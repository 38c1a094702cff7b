"""Run search: a parsed filter and order keys turned into SQL that walks the indexes.

Each comparison becomes an ``EXISTS`` on ``params`` / ``tags`` / ``latest_metrics`` (their
primary keys start with ``run_id``, so testing a run is an index lookup) or a condition on
a ``runs`` column; values are always bound parameters. Three plans, chosen per search:

* **Selective filter.** When a top-level ``AND`` term that an index answers (``params.K =``
  / ``IN``, ``tags.K =`` / ``IN``, ``metrics.K`` compared with a number) matches at most
  ``CANDIDATE_LIMIT`` rows, counted cheaply on the index, those runs are the candidates:
  one query looks each up and sorts them.
* **Ordered first by a metric.** Walk ``ix_latest_metrics_experiment_id_key_value_run_id`` in
  value order, test each run, stop at the end of the page. Runs whose metric is NaN, then
  runs lacking it, are asked for only when the page is not full yet.
* **Otherwise** one query over the experiment's runs (by start time, the default order,
  it walks ``ix_runs_experiment_id_start_time``).

For each order key, runs with a value come first (ascending or descending), then runs whose
metric is NaN, then runs lacking the key, in both directions; ties go newest first, then by
``runs.id`` so that pages are stable (all as MLflow does). Strings sort by code point on both
databases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from loopml.errors import InvalidArgument
from loopml.tracking.filter import And, Comparison, Expr, Identifier, Not, Or, OrderKey
from loopml.tracking.tables import latest_metrics, params, runs, tags

__all__ = ["DEFAULT_ORDER", "search_run_ids"]

#: The order when none is given: newest first.
DEFAULT_ORDER = (OrderKey(Identifier("attribute", "start_time"), ascending=False),)

#: Up to this many candidate runs, a selective filter condition drives the search.
CANDIDATE_LIMIT = 2000

_INDEXED_METRIC_OPS = frozenset({"=", "<", "<=", ">", ">=", "IN"})
_NULLABLE_ATTRIBUTES = frozenset({"end_time", "parent_run_id"})
_TABLES = {"metric": latest_metrics, "param": params, "tag": tags}
_INT64 = range(-(2**63), 2**63)
_COMPARE = {"=": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__", ">": "__gt__",
            ">=": "__ge__"}
_Condition = sa.ColumnElement[bool]


def search_run_ids(
    conn: sa.Connection,
    *,
    experiment_ids: Sequence[str],
    filter: Expr | None,
    order_by: Sequence[OrderKey],
    max_results: int,
    offset: int = 0,
    include_deleted: bool = False,
) -> list[str]:
    """The ids of the runs of ``experiment_ids`` that match ``filter``, in order, from
    ``offset`` on, at most ``max_results`` of them."""
    if isinstance(experiment_ids, str):
        raise InvalidArgument(f"experiment_ids must be a list of ids, got the string "
                              f"{experiment_ids!r}; pass [{experiment_ids!r}]")
    if max_results < 0 or offset < 0:
        raise InvalidArgument(f"max_results and offset must be >= 0, got max_results="
                              f"{max_results} and offset={offset}")
    if not experiment_ids or max_results == 0:
        return []
    dialect = conn.dialect.name
    keys = list(order_by) or list(DEFAULT_ORDER)
    driver = _selective_term(conn, filter, experiment_ids, dialect)
    if (driver is not None and driver[2] > 0 and keys[0].ident.kind == "metric"
            and _walk_is_cheaper(conn, experiment_ids, driver[2], max_results + offset)):
        driver = None
    if driver is None:
        where = [_experiment_condition(runs.c.experiment_id, experiment_ids)]
    else:
        term, candidates, count = driver
        if count == 0:
            return []
        # SQLite, which keeps no statistics, would walk the whole experiment rather than look
        # up the few candidates: there the experiment is tested on each, not used as an index.
        experiment: sa.ColumnElement[Any] = runs.c.experiment_id
        if dialect == "sqlite":
            experiment = experiment.concat("")
        where = [runs.c.id.in_(candidates), _experiment_condition(experiment, experiment_ids)]
        filter = _and([expr for expr in _conjuncts(filter) if expr != term])
    if not include_deleted:
        where.append(runs.c.lifecycle != "deleted")
    if keys[0].ident.kind == "metric" and driver is None:
        tiers = _metric_tiers(keys, where, filter, experiment_ids, dialect)
    else:
        if filter is not None:
            where.append(_condition(filter, dialect))
        tiers = [_ordered(sa.select(runs.c.id).where(*where), keys, dialect)]
    return _page(conn, tiers, limit=max_results, offset=offset)


def _selective_term(conn: sa.Connection, filter: Expr | None, experiment_ids: Sequence[str],
                    dialect: str) -> tuple[Comparison, sa.Select[Any], int] | None:
    """A top-level ``AND`` term of the filter that an index answers with at most
    ``CANDIDATE_LIMIT`` runs: the term, the query of those runs' ids, and their number.

    Such a term then drives the search (an index range, a lookup per candidate) instead of
    a walk through the experiment's runs in the wanted order that tests every run."""
    for term in _conjuncts(filter):
        if not isinstance(term, Comparison) or term.ident.kind == "attribute":
            continue
        table = _TABLES[term.ident.kind]
        where = [table.c.key == term.ident.key]
        if term.ident.kind == "metric" and term.op in _INDEXED_METRIC_OPS:
            where.append(_experiment_condition(table.c.experiment_id, experiment_ids))
        elif term.op not in ("=", "IN"):
            continue
        where.append(_compare(table.c.value, term.op, term.value, dialect))
        # Counting reads the index alone, and stops past the limit.
        probe = sa.select(sa.literal(1)).where(*where).limit(CANDIDATE_LIMIT + 1)
        count = conn.execute(sa.select(sa.func.count()).select_from(probe.subquery()))
        number = int(count.scalar_one())
        if number <= CANDIDATE_LIMIT:
            return term, sa.select(table.c.run_id).where(*where), number
    return None


def _walk_is_cheaper(conn: sa.Connection, experiment_ids: Sequence[str], candidates: int,
                     wanted: int) -> bool:
    """Whether walking the order metric's index beats looking up ``candidates`` runs.

    Looking up and sorting candidates costs about twice as much per run as testing one run
    in the walk, and the walk tests about ``wanted * total / candidates`` runs to fill the
    page. So walk when the experiments hold fewer than ``2 * candidates**2 / wanted`` runs;
    counting stops at that bound, which keeps the estimate cheap."""
    bound = 2 * candidates * candidates // max(wanted, 1)
    probe = (sa.select(sa.literal(1))
             .where(_experiment_condition(runs.c.experiment_id, experiment_ids))
             .limit(bound + 1))
    total = conn.execute(sa.select(sa.func.count()).select_from(probe.subquery())).scalar_one()
    return int(total) < bound


def _and(terms: list[Expr]) -> Expr | None:
    return None if not terms else terms[0] if len(terms) == 1 else And(tuple(terms))


def _conjuncts(filter: Expr | None) -> list[Expr]:
    if filter is None:
        return []
    return list(filter.operands) if isinstance(filter, And) else [filter]


def _experiment_condition(column: sa.ColumnElement[Any], ids: Sequence[str]) -> _Condition:
    # One id compares with "=", which every planner turns into an index seek.
    return column == ids[0] if len(ids) == 1 else column.in_(list(ids))


def _page(conn: sa.Connection, tiers: list[sa.Select[Any]], *, limit: int,
          offset: int) -> list[str]:
    """Rows ``offset`` to ``offset + limit`` of the tiers read one after the other."""
    ids: list[str] = []
    for number, query in enumerate(tiers):
        rows = [str(row) for row in conn.execute(query.limit(limit - len(ids))
                                                 .offset(offset)).scalars().all()]
        ids.extend(rows)
        if len(ids) >= limit:
            break
        if rows or offset == 0:
            offset = 0  # this tier is exhausted: the next one starts at its beginning
        elif number < len(tiers) - 1:
            size = sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
            offset = max(0, offset - int(conn.execute(size).scalar_one()))
    return ids


# -- ordering -----------------------------------------------------------------------------


def _metric_tiers(keys: list[OrderKey], where: list[_Condition], filter: Expr | None,
                  experiment_ids: Sequence[str], dialect: str) -> list[sa.Select[Any]]:
    """Three queries for a search ordered first by metric K: runs with a value of K (walking
    the index in value order), runs whose K is NaN, runs without K."""
    first, rest = keys[0], keys[1:]
    value_order = sa.alias(latest_metrics, "order_metric")
    on_key = [value_order.c.key == first.ident.key,
              _experiment_condition(value_order.c.experiment_id, experiment_ids)]
    # Conditions on K at the top level of the filter apply to the joined row itself: the
    # index range is bounded by them, and no NaN or missing K can match.
    direct, others = _split_conditions_on(first.ident, filter)
    conditions = [*where, *(_condition(expr, dialect) for expr in others)]
    joined = sa.select(runs.c.id).select_from(
        value_order.join(runs, runs.c.id == value_order.c.run_id))
    value = value_order.c.value
    with_value = joined.where(*on_key, value.is_not(None), *conditions,
                              *(_compare(value, c.op, c.value, dialect) for c in direct))
    direction = value.asc() if first.ascending else value.desc()
    tiers = [_ordered(with_value, rest, dialect, first=[direction])]
    if not direct:
        nan = joined.where(*on_key, value.is_(None), *conditions)
        missing = sa.select(runs.c.id).where(*conditions, ~_has_key(first.ident))
        tiers += [_ordered(nan, rest, dialect), _ordered(missing, rest, dialect)]
    return tiers


def _split_conditions_on(ident: Identifier,
                         filter: Expr | None) -> tuple[list[Comparison], list[Expr]]:
    conjuncts = _conjuncts(filter)
    direct = [c for c in conjuncts if isinstance(c, Comparison) and c.ident == ident
              and not c.op.startswith("IS")]
    return direct, [c for c in conjuncts if c not in direct]


def _ordered(query: sa.Select[Any], keys: Sequence[OrderKey], dialect: str, *,
             first: Sequence[sa.UnaryExpression[Any]] = ()) -> sa.Select[Any]:
    """``query`` ordered by ``first``, then ``keys`` (values first, then NaN, then missing,
    in both directions), then newest first, then run id."""
    clauses: list[sa.ColumnElement[Any]] = list(first)
    for number, key in enumerate(keys):
        ident = key.ident
        if ident.kind == "attribute":
            value: sa.ColumnElement[Any] = runs.c[ident.key]
            if ident.key in _NULLABLE_ATTRIBUTES:
                clauses.append(sa.case((value.is_(None), 1), else_=0))
        else:
            row = sa.alias(_TABLES[ident.kind], f"order_{number}")
            query = query.outerjoin(row, sa.and_(row.c.run_id == runs.c.id,
                                                 row.c.key == ident.key))
            value = row.c.value
            clauses.append(sa.case((row.c.run_id.is_(None), 2), (value.is_(None), 1), else_=0))
        if dialect == "postgresql" and isinstance(value.type, sa.String):
            value = value.collate("C")  # byte order, as SQLite sorts, whatever the locale
        clauses.append(value.asc() if key.ascending else value.desc())
    if DEFAULT_ORDER[0] not in keys:
        clauses.append(runs.c.start_time.desc())  # MLflow's tiebreak, then the id
    return query.order_by(*clauses, runs.c.id)


# -- filtering ----------------------------------------------------------------------------


def _condition(expr: Expr, dialect: str) -> _Condition:
    """The SQL condition on a ``runs`` row for the filter ``expr``."""
    if isinstance(expr, And):
        return sa.and_(*(_condition(operand, dialect) for operand in expr.operands))
    if isinstance(expr, Or):
        return sa.or_(*(_condition(operand, dialect) for operand in expr.operands))
    if isinstance(expr, Not):
        return sa.not_(_condition(expr.operand, dialect))
    ident, op = expr.ident, expr.op
    if ident.kind == "attribute":
        column = runs.c[ident.key]
        if op == "IS NULL":
            return column.is_(None)
        if op == "IS NOT NULL":
            return column.is_not(None)
        condition = _compare(column, op, expr.value, dialect)
        # NULL never matches, and stays out of SQL's three-valued logic under NOT.
        return sa.and_(column.is_not(None), condition) if (
            ident.key in _NULLABLE_ATTRIBUTES) else condition
    if op == "IS NULL":
        return ~_has_key(ident)
    if op == "IS NOT NULL":
        return _has_key(ident)
    table = sa.alias(_TABLES[ident.kind])
    return sa.exists().where(table.c.run_id == runs.c.id, table.c.key == ident.key,
                             _compare(table.c.value, op, expr.value, dialect))


def _has_key(ident: Identifier) -> _Condition:
    table = sa.alias(_TABLES[ident.kind])
    return sa.exists().where(table.c.run_id == runs.c.id, table.c.key == ident.key)


def _compare(column: sa.ColumnElement[Any], op: str, value: object,
             dialect: str) -> _Condition:
    if op in ("IN", "NOT IN"):
        assert isinstance(value, tuple)
        values = [_bind(item, column) for item in value]
        return column.in_(values) if op == "IN" else column.not_in(values)
    if op in _COMPARE:
        return getattr(column, _COMPARE[op])(_bind(value, column))  # type: ignore[no-any-return]
    assert isinstance(value, str)
    negated, keyword = op.startswith("NOT "), op.removeprefix("NOT ")
    if keyword == "ILIKE":
        condition = column.ilike(value, escape="\\")
    elif dialect == "sqlite":
        # SQLite's LIKE ignores case; GLOB is the case-sensitive match PostgreSQL's LIKE is.
        condition = column.op("GLOB", is_comparison=True)(_like_to_glob(value))
    else:
        condition = column.like(value, escape="\\")
    return sa.not_(condition) if negated else condition


def _bind(value: object, column: sa.ColumnElement[Any]) -> sa.BindParameter[Any]:
    if isinstance(value, str):
        return sa.bindparam(None, value, type_=sa.Text)
    assert isinstance(value, int | float)
    if isinstance(value, int) and value in _INT64 and isinstance(column.type, sa.Integer):
        return sa.bindparam(None, value, type_=sa.BigInteger)
    return sa.bindparam(None, float(value), type_=sa.Float(precision=53))


def _like_to_glob(pattern: str) -> str:
    """A SQLite GLOB pattern matching what the LIKE ``pattern`` (escape ``\\``) matches."""
    literal = {"*": "[*]", "?": "[?]", "[": "[[]"}
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "\\")
            out.append(literal.get(escaped, escaped))
        elif char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        else:
            out.append(literal.get(char, char))
    return "".join(out)
