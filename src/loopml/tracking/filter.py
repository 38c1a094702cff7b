"""The run-search filter language: a tokenizer and a recursive-descent parser to a typed AST.

The syntax is MLflow's (``metrics.auc > 0.9 and params.model = 'rf'``) plus ``or``,
``not``, parentheses, ``in (…)`` / ``not in (…)``, ``not like`` and ``is [not] null``::

    filter     := or_expr
    or_expr    := and_expr (OR and_expr)*
    and_expr   := not_expr (AND not_expr)*
    not_expr   := NOT not_expr | '(' or_expr ')' | comparison
    comparison := identifier (op value | [NOT] IN '(' value (',' value)* ')'
                              | [NOT] (LIKE | ILIKE) string | IS [NOT] NULL)
    identifier := (metrics | params | tags | attributes) '.' key | attribute
    op         := '=' | '==' | '!=' | '<>' | '<' | '<=' | '>' | '>='

Keywords are case-insensitive; AND binds tighter than OR. A key is a plain word (letters,
digits, ``_ - . / :``) or quoted with backticks or double quotes (``metrics.`val loss```).
Values are numbers (``-1``, ``0.5``, ``1e-3``) or strings in single or double quotes, where
the quote is doubled or backslash-escaped. LIKE is case-sensitive and ILIKE is not, on every
database; in their patterns ``%`` and ``_`` are wildcards and ``\\`` escapes them.
A comparison on a metric, param or tag holds for a run that has that key with a matching
value (a run lacking the key matches neither ``=`` nor ``!=``; ``NOT`` is the complement
over runs). ``IS NULL`` holds for a run lacking the key. Syntax errors raise
:class:`FilterSyntaxError` naming the 0-based position and what was expected; comparisons
that cannot hold for their kind of key raise :class:`InvalidArgument`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from loopml.errors import FilterSyntaxError, InvalidArgument

__all__ = [
    "ATTRIBUTES",
    "And",
    "Comparison",
    "Expr",
    "Identifier",
    "Not",
    "Or",
    "OrderKey",
    "parse_filter",
    "parse_order_by",
]

Kind = Literal["metric", "param", "tag", "attribute"]
Scalar = str | int | float
Value = Scalar | tuple[Scalar, ...] | None

#: Attribute names (and aliases) → the canonical name, which is the ``runs`` column.
ATTRIBUTES: dict[str, str] = {
    "status": "status", "run_name": "name", "name": "name", "run_id": "id", "id": "id",
    "start_time": "start_time", "created": "start_time", "end_time": "end_time",
    "user": "user", "user_id": "user", "parent_run_id": "parent_run_id",
}
NUMERIC_ATTRIBUTES = frozenset({"start_time", "end_time"})
_PREFIXES: dict[str, Kind] = {
    "metrics": "metric", "metric": "metric", "params": "param", "param": "param",
    "tags": "tag", "tag": "tag", "attributes": "attribute", "attribute": "attribute",
}
_PLURAL = {"metric": "metrics", "param": "params", "tag": "tags", "attribute": "attributes"}
_NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "IS NULL", "IS NOT NULL")
_STRING_OPS = ("=", "!=", "LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE", "IN", "NOT IN",
               "IS NULL", "IS NOT NULL")
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL"})
_OPERATORS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=",
              ">": ">", ">=": ">="}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./:]*")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-./:]+")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_SYMBOL = re.compile(r"==|!=|<>|<=|>=|[=<>(),]")


@dataclass(frozen=True)
class Identifier:
    """What a comparison or an order key is about: ``kind`` and the key (for an attribute,
    the canonical attribute name, e.g. ``run_name`` → ``name``)."""

    kind: Kind
    key: str

    def __str__(self) -> str:
        key = self.key if _PLAIN_KEY.fullmatch(self.key) else "`{}`".format(
            self.key.replace("`", "``"))
        return f"{_PLURAL[self.kind]}.{key}"


@dataclass(frozen=True)
class Comparison:
    """``ident op value``; ``op`` is one of ``= != < <= > >= LIKE NOT LIKE ILIKE NOT ILIKE
    IN NOT IN IS NULL IS NOT NULL``; ``value`` is a tuple for IN, None for IS [NOT] NULL."""

    ident: Identifier
    op: str
    value: Value


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    operand: Expr


Expr = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderKey:
    ident: Identifier
    ascending: bool = True


# -- tokens -------------------------------------------------------------------------------

TokenKind = Literal["word", "keyword", "string", "number", "symbol", "end"]


@dataclass(frozen=True)
class _Token:
    """A token; ``value`` is the keyword upper-cased, the unquoted string, the number, the
    symbol, or for a word its ``(kind, key)`` (kind None for a bare word)."""

    kind: TokenKind
    text: str  # as written, for messages
    pos: int
    value: str | int | float | tuple[Kind | None, str] | None = None


def _tokenize(text: str, label: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
        elif char in "'\"":
            value, end = _read_quoted(text, pos, label)
            tokens.append(_Token("string", text[pos:end], pos, value))
            pos = end
        elif number := _NUMBER.match(text, pos):
            tokens.append(_Token("number", number.group(), pos, _to_number(number.group())))
            pos = number.end()
        elif word := _WORD.match(text, pos):
            token = _word_token(text, pos, word.group(), label)
            tokens.append(token)
            pos += len(token.text)
        elif symbol := _SYMBOL.match(text, pos):
            tokens.append(_Token("symbol", symbol.group(), pos, symbol.group()))
            pos = symbol.end()
        else:
            raise _syntax_error(text, pos, f"unexpected character {char!r}", label)
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _read_quoted(text: str, start: int, label: str) -> tuple[str, int]:
    """The content of the quoted string at ``start`` and the position after it. Inside, the
    quote is written doubled or backslash-escaped and ``\\\\`` is one backslash; any other
    backslash is kept, so LIKE patterns such as ``'a\\_b'`` reach the database unchanged."""
    quote = text[start]
    chars: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and text[pos + 1:pos + 2] in (quote, "\\"):
            chars.append(text[pos + 1])
            pos += 2
        elif char == quote and text.startswith(quote * 2, pos):
            chars.append(quote)
            pos += 2
        elif char == quote:
            return "".join(chars), pos + 1
        else:
            chars.append(char)
            pos += 1
    raise _syntax_error(text, start, f"unterminated string: expected a closing {quote} for "
                        "the string that starts here", label)


def _word_token(text: str, pos: int, word: str, label: str) -> _Token:
    if word.upper() in _KEYWORDS:
        return _Token("keyword", word, pos, word.upper())
    prefix, dot, key = word.partition(".")
    kind = _PREFIXES.get(prefix.lower()) if dot else None
    if kind is None:
        return _Token("word", word, pos, (None, word))
    end = pos + len(word)
    if not key:
        if end < len(text) and text[end] in "`\"":
            key, end = _read_quoted(text, end, label)
        if not key:
            raise _syntax_error(text, end, f"expected a key after '{word}' (e.g. {word}auc "
                                f"or {word}`val loss`), found "
                                + _describe_char(text, end, label), label)
    return _Token("word", text[pos:end], pos, (kind, key))


def _describe_char(text: str, pos: int, label: str) -> str:
    if pos >= len(text):
        return f"end of {label}"
    return "a space" if text[pos].isspace() else repr(text[pos])


def _to_number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _syntax_error(text: str, pos: int, detail: str, label: str) -> FilterSyntaxError:
    return FilterSyntaxError(f"{label} syntax error at position {pos}: {detail}",
                             text=text, position=pos)


# -- parser -------------------------------------------------------------------------------


#: Levels of parentheses and NOT a filter may nest (deeper would exhaust the stack).
MAX_FILTER_DEPTH = 64


class _Parser:
    def __init__(self, text: str, label: str = "filter") -> None:
        self.depth = 0
        self.label = label
        self.text = text
        self.tokens = _tokenize(text, label)
        self.index = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.token.kind == "keyword" and self.token.value in words

    def at_symbol(self, symbol: str) -> bool:
        return self.token.kind == "symbol" and self.token.value == symbol

    def fail(self, expected: str) -> FilterSyntaxError:
        found = f"end of {self.label}" if self.token.kind == "end" else repr(self.token.text)
        return _syntax_error(self.text, self.token.pos, f"expected {expected}, found {found}",
                             self.label)

    def parse(self) -> Expr:
        expr = self.or_expr()
        if self.token.kind != "end":
            raise self.fail("AND, OR or end of filter")
        return expr

    def or_expr(self) -> Expr:
        operands = [self.and_expr()]
        while self.at_keyword("OR"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Expr:
        operands = [self.not_expr()]
        while self.at_keyword("AND"):
            self.advance()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self) -> Expr:
        if not (self.at_keyword("NOT") or self.at_symbol("(")):
            return self.comparison()
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise _syntax_error(self.text, self.token.pos, f"the filter nests more than "
                                f"{MAX_FILTER_DEPTH} levels of parentheses or NOT; write it "
                                "with fewer levels", self.label)
        if self.at_keyword("NOT"):
            self.advance()
            expr: Expr = Not(self.not_expr())
        else:
            self.advance()
            expr = self.or_expr()
            if not self.at_symbol(")"):
                raise self.fail("')', AND or OR")
            self.advance()
        self.depth -= 1
        return expr

    def identifier(self) -> Identifier:
        token = self.token
        if token.kind != "word" or not isinstance(token.value, tuple):
            raise self.fail("an identifier (metrics.KEY, params.KEY, tags.KEY or an "
                            "attribute such as status)")
        kind, key = token.value
        self.advance()
        if kind is not None and kind != "attribute":
            return Identifier(kind, key)
        canonical = ATTRIBUTES.get(key.lower())
        if canonical is None:
            known = ", ".join(sorted(ATTRIBUTES))
            raise InvalidArgument(
                f"invalid {self.label} at position {token.pos}: unknown attribute {key!r}; known "
                f"attributes: {known}; metrics, params and tags are written metrics.KEY, "
                "params.KEY and tags.KEY")
        return Identifier("attribute", canonical)

    def comparison(self) -> Comparison:
        start = self.token
        ident = self.identifier()
        negated = self.at_keyword("NOT")
        if negated:
            self.advance()
            if not self.at_keyword("IN", "LIKE", "ILIKE"):
                raise self.fail("IN, LIKE or ILIKE after NOT")
        value: Value
        if self.at_keyword("IN"):
            self.advance()
            op, value = ("NOT IN" if negated else "IN"), self.value_list()
        elif self.at_keyword("LIKE", "ILIKE"):
            keyword = str(self.advance().value)
            op, value = (f"NOT {keyword}" if negated else keyword), self.value(keyword)
        elif self.at_keyword("IS"):
            self.advance()
            op = "IS NULL"
            if self.at_keyword("NOT"):
                self.advance()
                op = "IS NOT NULL"
            if not self.at_keyword("NULL"):
                raise self.fail("NULL after " + op[:-5])
            self.advance()
            value = None
        elif self.token.kind == "symbol" and self.token.text in _OPERATORS:
            written = self.advance().text
            op, value = _OPERATORS[written], self.value(written)
        else:
            raise self.fail(f"an operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS) "
                            f"after '{start.text}'")
        comparison = Comparison(ident, op, value)
        _check(comparison, start.pos, self.label)
        return comparison

    def value(self, after: str) -> Scalar:
        token = self.token
        if token.kind not in ("string", "number"):
            raise self.fail(f"a value (number or quoted string) after '{after}'")
        self.advance()
        assert isinstance(token.value, str | int | float)
        return token.value

    def value_list(self) -> tuple[Scalar, ...]:
        if not self.at_symbol("("):
            raise self.fail("'(' after IN")
        self.advance()
        values = [self.value("(")]
        while self.at_symbol(","):
            self.advance()
            values.append(self.value(","))
        if not self.at_symbol(")"):
            raise self.fail("',' or ')' in the IN list")
        self.advance()
        return tuple(values)


def _check(comparison: Comparison, pos: int, label: str) -> None:
    """Raise InvalidArgument when the comparison does not suit its kind of key."""
    ident, op, value = comparison.ident, comparison.op, comparison.value
    where = f"invalid {label} at position {pos} ({_render(comparison)})"
    if ident.kind == "metric":
        allowed, what = _NUMERIC_OPS, "metrics allow"
    elif ident.kind == "attribute" and ident.key in NUMERIC_ATTRIBUTES:
        allowed, what = _NUMERIC_OPS, f"{ident} allows"
    elif ident.kind == "attribute":
        allowed, what = _STRING_OPS, f"{ident} allows"
    else:
        allowed, what = _STRING_OPS, f"{_PLURAL[ident.kind]} allow"
    if op not in allowed:
        raise InvalidArgument(f"{where}: operator {op} is not allowed on {ident}; "
                              f"{what} {', '.join(allowed)}")
    values = value if isinstance(value, tuple) else () if value is None else (value,)
    for item in values:
        if allowed is _NUMERIC_OPS and isinstance(item, str):
            reason = ("metrics compare with numbers, not strings" if ident.kind == "metric"
                      else f"{ident} is a number (milliseconds since the epoch), not a string")
            example = f"{ident} > 0.9" if ident.kind == "metric" else f"{ident} > 1700000000000"
            raise InvalidArgument(f"{where}: {reason}: remove the quotes, e.g. {example}")
        if allowed is _STRING_OPS and not isinstance(item, str):
            reason = (f"{ident} is a string" if ident.kind == "attribute"
                      else f"{_PLURAL[ident.kind]} are strings")
            quoted = f"({_quote(str(item))})" if op.endswith("IN") else _quote(str(item))
            raise InvalidArgument(f"{where}: {reason}: quote the value, e.g. "
                                  f"{ident} {op} {quoted}")
        if op.endswith("LIKE") and isinstance(item, str) and _ends_with_escape(item):
            raise InvalidArgument(f"{where}: a LIKE pattern must not end with an unescaped "
                                  "backslash (the escape character); double it to match a "
                                  "backslash")


def _ends_with_escape(pattern: str) -> bool:
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return trailing % 2 == 1


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _render(comparison: Comparison) -> str:
    value = comparison.value
    if isinstance(value, tuple):
        rendered = "(" + ", ".join(_quote(v) if isinstance(v, str) else str(v)
                                   for v in value) + ")"
    else:
        rendered = "" if value is None else _quote(value) if isinstance(value, str) else str(value)
    return f"{comparison.ident} {comparison.op} {rendered}".rstrip()


def parse_filter(text: str | None) -> Expr | None:
    """The AST of a filter string; None for an empty or missing filter."""
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()


def parse_order_by(items: Sequence[str]) -> list[OrderKey]:
    """Order keys from strings such as ``"metrics.auc desc"``, ``"params.model"``,
    ``"attributes.start_time ASC"`` or ``"start_time"`` (default direction: ascending)."""
    keys: list[OrderKey] = []
    for item in items:
        if isinstance(item, bytes) or not isinstance(item, str):
            raise InvalidArgument(f"order_by items must be strings, got {item!r}")
        parser = _Parser(item, "order_by item")
        ident = parser.identifier()
        ascending = True
        token = parser.token
        if token.kind == "word" and token.text.lower() in ("asc", "desc"):
            ascending = token.text.lower() == "asc"
            parser.advance()
        if parser.token.kind != "end":
            raise parser.fail("ASC, DESC or end of order_by item")
        keys.append(OrderKey(ident, ascending))
    return keys
