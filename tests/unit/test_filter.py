"""The run-search filter language: tokens, precedence, quoting, operators, and the messages
of syntax and semantics errors."""

from __future__ import annotations

import pytest

from loopml.errors import FilterSyntaxError, InvalidArgument
from loopml.tracking.filter import (
    And,
    Comparison,
    Identifier,
    Not,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)

AUC = Identifier("metric", "auc")
MODEL = Identifier("param", "model")
TEAM = Identifier("tag", "team")


def cmp(ident: Identifier, op: str, value: object) -> Comparison:
    return Comparison(ident, op, value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_empty_filter_is_none(text: str | None) -> None:
    assert parse_filter(text) is None


def test_mlflow_filter() -> None:
    assert parse_filter("metrics.auc > 0.9 and params.model = 'rf'") == And((
        cmp(AUC, ">", 0.9), cmp(MODEL, "=", "rf")))


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (f"params.{key} = '1'" for key in "abc")
    pa, pb, pc = (cmp(Identifier("param", key), "=", "1") for key in "abc")
    assert parse_filter(f"{a} or {b} and {c}") == Or((pa, And((pb, pc))))
    assert parse_filter(f"{a} and {b} or {c}") == Or((And((pa, pb)), pc))
    assert parse_filter(f"({a} or {b}) and {c}") == And((Or((pa, pb)), pc))
    assert parse_filter(f"{a} or {b} or {c}") == Or((pa, pb, pc))
    assert parse_filter(f"{a} and ({b} and {c})") == And((pa, And((pb, pc))))


def test_not_applies_to_the_next_term() -> None:
    a, b = "params.a = '1'", "params.b = '1'"
    pa, pb = cmp(Identifier("param", "a"), "=", "1"), cmp(Identifier("param", "b"), "=", "1")
    assert parse_filter(f"not {a} and {b}") == And((Not(pa), pb))
    assert parse_filter(f"not ({a} and {b})") == Not(And((pa, pb)))
    assert parse_filter(f"NOT NOT {a}") == Not(Not(pa))
    assert parse_filter(f"((({a})))") == pa


def test_keywords_are_case_insensitive() -> None:
    assert parse_filter("params.model In ('a') AnD tags.team iLiKe 'x' oR metrics.auc Is NuLl") \
        == Or((And((cmp(MODEL, "IN", ("a",)), cmp(TEAM, "ILIKE", "x"))),
               cmp(AUC, "IS NULL", None)))


@pytest.mark.parametrize(("text", "op", "value"), [
    ("metrics.auc = 1", "=", 1), ("metrics.auc == 1", "=", 1), ("metrics.auc != 1", "!=", 1),
    ("metrics.auc <> 1", "!=", 1), ("metrics.auc < 1", "<", 1), ("metrics.auc <= 1", "<=", 1),
    ("metrics.auc > 1", ">", 1), ("metrics.auc >= 1", ">=", 1),
    ("metrics.auc in (1, 2.5)", "IN", (1, 2.5)), ("metrics.auc not in (1)", "NOT IN", (1,)),
    ("metrics.auc is null", "IS NULL", None), ("metrics.auc is not null", "IS NOT NULL", None),
    ("metrics.auc>=1", ">=", 1), ("metrics.auc IN(1,2)", "IN", (1, 2)),
])
def test_metric_operators(text: str, op: str, value: object) -> None:
    assert parse_filter(text) == cmp(AUC, op, value)


@pytest.mark.parametrize(("text", "op", "value"), [
    ("params.model = 'rf'", "=", "rf"), ("params.model != 'rf'", "!=", "rf"),
    ("params.model <> 'rf'", "!=", "rf"), ("params.model like 'r%'", "LIKE", "r%"),
    ("params.model not like 'r%'", "NOT LIKE", "r%"),
    ("params.model ilike 'R%'", "ILIKE", "R%"),
    ("params.model not ilike 'R%'", "NOT ILIKE", "R%"),
    ("params.model in ('rf', \"gbm\")", "IN", ("rf", "gbm")),
    ("params.model not in ('rf')", "NOT IN", ("rf",)),
    ("params.model is null", "IS NULL", None), ("params.model IS NOT NULL", "IS NOT NULL", None),
])
def test_string_operators(text: str, op: str, value: object) -> None:
    assert parse_filter(text) == cmp(MODEL, op, value)


@pytest.mark.parametrize(("literal", "value"), [
    ("0", 0), ("42", 42), ("-3", -3), ("+3", 3), ("0.5", 0.5), (".5", 0.5), ("5.", 5.0),
    ("-0.25", -0.25), ("1e3", 1000.0), ("1E-3", 0.001), ("-2.5e+2", -250.0),
])
def test_numbers(literal: str, value: float) -> None:
    parsed = parse_filter(f"metrics.auc > {literal}")
    assert isinstance(parsed, Comparison)
    assert parsed.value == value
    assert type(parsed.value) is type(value)


@pytest.mark.parametrize(("literal", "value"), [
    ("'rf'", "rf"), ('"rf"', "rf"), ("''", ""), ("'it''s'", "it's"), (r"'it\'s'", "it's"),
    ('"say ""hi"""', 'say "hi"'), (r'"say \"hi\""', 'say "hi"'), ("'a \"b\"'", 'a "b"'),
    (r"'back\\slash'", "back\\slash"), (r"'a\_b%'", r"a\_b%"), ("'and or not'", "and or not"),
    ("'x'' OR 1=1 --'", "x' OR 1=1 --"), ("'ünï ✓'", "ünï ✓"),
])
def test_strings(literal: str, value: str) -> None:
    assert parse_filter(f"params.model = {literal}") == cmp(MODEL, "=", value)


@pytest.mark.parametrize(("text", "ident"), [
    ("metrics.auc", AUC), ("metric.auc", AUC), ("METRICS.auc", AUC),
    ("params.model", MODEL), ("param.model", MODEL), ("tags.team", TEAM), ("tag.team", TEAM),
    ("metrics.`val loss`", Identifier("metric", "val loss")),
    ('metrics."val loss"', Identifier("metric", "val loss")),
    ("metrics.`a``b`", Identifier("metric", "a`b")),
    ("tags.mlflow.runName", Identifier("tag", "mlflow.runName")),
    ("tags.`mlflow.runName`", Identifier("tag", "mlflow.runName")),
    ("params.a-b/c:d_1", Identifier("param", "a-b/c:d_1")),
    ("metrics.and", Identifier("metric", "and")),
    ("params.`model' OR 1=1 --`", Identifier("param", "model' OR 1=1 --")),
])
def test_identifiers(text: str, ident: Identifier) -> None:
    parsed = parse_filter(f"{text} is null")
    assert isinstance(parsed, Comparison)
    assert parsed.ident == ident


@pytest.mark.parametrize(("name", "canonical"), [
    ("status", "status"), ("run_name", "name"), ("name", "name"), ("run_id", "id"),
    ("id", "id"), ("user", "user"), ("parent_run_id", "parent_run_id"), ("STATUS", "status"),
])
def test_string_attributes(name: str, canonical: str) -> None:
    expected = cmp(Identifier("attribute", canonical), "=", "x")
    assert parse_filter(f"{name} = 'x'") == expected
    assert parse_filter(f"attributes.{name} = 'x'") == expected
    assert parse_filter(f"attribute.{name} = 'x'") == expected


@pytest.mark.parametrize("name", ["start_time", "end_time", "attributes.start_time"])
def test_time_attributes_are_numbers(name: str) -> None:
    parsed = parse_filter(f"{name} >= 1700000000000")
    assert isinstance(parsed, Comparison)
    assert parsed.ident.kind == "attribute"
    assert parsed.value == 1700000000000


def test_identifier_renders_back() -> None:
    assert str(AUC) == "metrics.auc"
    assert str(Identifier("metric", "val loss")) == "metrics.`val loss`"
    assert str(Identifier("attribute", "status")) == "attributes.status"


@pytest.mark.parametrize(("text", "position", "message"), [
    ("metrics.auc >", 13,
     "filter syntax error at position 13: expected a value (number or quoted string) "
     "after '>', found end of filter"),
    ("metrics.auc > 0.9 and", 21, "expected an identifier"),
    ("metrics.auc > 0.9 and params.model", 34, "expected an operator"),
    ("metrics.auc 0.9", 12, "expected an operator"),
    ("metrics.auc > 0.9 params.a = 'b'", 18, "expected AND, OR or end of filter, found "
                                             "'params.a'"),
    ("(metrics.auc > 0.9", 18, "expected ')', AND or OR, found end of filter"),
    ("metrics.auc > 0.9)", 17, "expected AND, OR or end of filter, found ')'"),
    ("params.model = 'rf", 15, "unterminated string"),
    ("params.model in 'rf'", 16, "expected '(' after IN"),
    ("params.model in ()", 17, "expected a value (number or quoted string) after '('"),
    ("params.model in ('a' 'b')", 21, "expected ',' or ')' in the IN list"),
    ("params.model in ('a',)", 21, "expected a value"),
    ("params.model is 'x'", 16, "expected NULL after IS"),
    ("params.model is not 1", 20, "expected NULL after IS NOT"),
    ("params.model not = 'x'", 17, "expected IN, LIKE or ILIKE after NOT"),
    ("metrics. > 1", 8, "expected a key after 'metrics.'"),
    ("metrics.auc > 1 ; drop", 16, "unexpected character ';'"),
    ("metrics.auc > 0.9 && params.a = 'b'", 18, "unexpected character '&'"),
    ("'rf' = params.model", 0, "expected an identifier"),
    ("and metrics.auc > 1", 0, "expected an identifier"),
    ("metrics.auc > 0.9 or", 20, "found end of filter"),
    ("metrics.`val loss > 1", 8, "unterminated string"),
])
def test_syntax_errors(text: str, position: int, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert info.value.position == position
    assert info.value.text == text
    assert f"at position {position}:" in str(info.value)
    assert message in str(info.value)
    assert str(info.value).endswith(f"\n  {text}\n  {' ' * position}^")
    assert isinstance(info.value, InvalidArgument)


@pytest.mark.parametrize(("text", "fragments"), [
    ("params.lr = 0.1", ["params are strings: quote the value, e.g. params.lr = '0.1'"]),
    ("params.lr in (0.1, '1')", ["params are strings", "params.lr IN ('0.1')"]),
    ("tags.n = 3", ["tags are strings: quote the value, e.g. tags.n = '3'"]),
    ("status = 1", ["attributes.status is a string: quote the value"]),
    ("metrics.auc = 'high'", ["metrics compare with numbers, not strings", "metrics.auc"]),
    ("metrics.auc in (1, 'x')", ["metrics compare with numbers"]),
    ("start_time > '2024-01-01'", ["attributes.start_time is a number (milliseconds since the "
                                   "epoch)", "remove the quotes"]),
    ("metrics.auc like '1%'", ["operator LIKE is not allowed on metrics.auc",
                               "metrics allow =, !=, <, <=, >, >=, IN, NOT IN, IS NULL"]),
    ("metrics.auc ilike '1%'", ["operator ILIKE is not allowed"]),
    ("params.lr > '0.1'", ["operator > is not allowed on params.lr",
                           "params allow =, !=, LIKE, NOT LIKE, ILIKE, NOT ILIKE, IN, NOT IN"]),
    ("tags.t <= 'x'", ["operator <= is not allowed on tags.t"]),
    ("run_name < 'b'", ["operator < is not allowed on attributes.name",
                        "attributes.name allows =, !="]),
    ("end_time like '1%'", ["operator LIKE is not allowed on attributes.end_time"]),
    (r"params.p like 'a\\'", ["must not end with an unescaped backslash"]),
    ("accuracy > 0.9", ["unknown attribute 'accuracy'", "known attributes: ", "start_time",
                        "metrics.KEY"]),
    ("attributes.color = 'red'", ["unknown attribute 'color'"]),
    ("foo.bar = 'x'", ["unknown attribute 'foo.bar'"]),
    ("metrics.auc > 0.9 and params.lr = 0.1", ["position 22", "params.lr = 0.1"]),
])
def test_semantic_errors(text: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_filter(text)
    assert not isinstance(info.value, FilterSyntaxError)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_like_pattern_may_end_with_an_escaped_backslash() -> None:
    assert parse_filter(r"params.p like 'a\\\\'") == cmp(Identifier("param", "p"), "LIKE",
                                                         "a\\\\")


def test_order_by() -> None:
    assert parse_order_by(["metrics.auc desc", "params.model", "attributes.start_time ASC",
                           "start_time", "metrics.`val loss` DESC", "run_name Desc"]) == [
        OrderKey(AUC, ascending=False),
        OrderKey(MODEL, ascending=True),
        OrderKey(Identifier("attribute", "start_time"), ascending=True),
        OrderKey(Identifier("attribute", "start_time"), ascending=True),
        OrderKey(Identifier("metric", "val loss"), ascending=False),
        OrderKey(Identifier("attribute", "name"), ascending=False),
    ]
    assert parse_order_by([]) == []


@pytest.mark.parametrize(("item", "error", "fragment"), [
    ("metrics.auc up", FilterSyntaxError,
     "order_by item syntax error at position 12: expected ASC, DESC or end of order_by item, "
     "found 'up'"),
    ("metrics.auc desc desc", FilterSyntaxError, "position 17"),
    ("", FilterSyntaxError, "expected an identifier"),
    ("desc", InvalidArgument, "unknown attribute 'desc'"),
    ("colour", InvalidArgument, "invalid order_by item at position 0: unknown attribute"),
    ("metrics.", FilterSyntaxError, "expected a key after 'metrics.'"),
])
def test_order_by_errors(item: str, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        parse_order_by([item])
    assert fragment in str(info.value)


def test_asts_are_frozen_and_hashable() -> None:
    parsed = parse_filter("metrics.auc in (1, 2) or not params.model = 'rf'")
    assert hash(parsed) == hash(parse_filter("metrics.auc in (1, 2) or not params.model = 'rf'"))
    with pytest.raises(AttributeError):
        parsed.operands = ()  # type: ignore[misc, union-attr]


def test_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    from loopml.tracking.filter import MAX_FILTER_DEPTH

    ok = "(" * MAX_FILTER_DEPTH + "params.a = '1'" + ")" * MAX_FILTER_DEPTH
    assert parse_filter(ok) is not None
    for deep in ("(" * 5000 + "params.a = '1'" + ")" * 5000, "NOT " * 5000 + "params.a = '1'"):
        with pytest.raises(FilterSyntaxError, match="nests more than"):
            parse_filter(deep)
