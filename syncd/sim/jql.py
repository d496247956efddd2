"""The subset of JQL the Jira simulator understands: a parser and an evaluator.

Grammar (case-insensitive keywords)::

    query   := [or_expr] [ORDER BY field [ASC|DESC] {, field [ASC|DESC]}]
    or_expr := and_expr {OR and_expr}
    and_expr:= not_expr {AND not_expr}
    not_expr:= NOT not_expr | '(' or_expr ')' | clause
    clause  := field op value | field [NOT] IN '(' value {, value} ')' | field IS [NOT] EMPTY|NULL
    op      := = | != | > | >= | < | <=
    field   := word | issue.property[key].path

Values are quoted strings or bare words (``ENG-1``, ``-5m``, ``10001``).

Dates: ``"yyyy-MM-dd HH:mm"``, ``"yyyy/MM/dd HH:mm"``, ``"yyyy-MM-dd"`` (read in the
searching user's zone, which is UTC in the simulator) or relative ``-5m`` / ``-2h`` /
``-1d`` / ``-1w``. Like Jira, a literal has minute resolution while the issue's
timestamp keeps its milliseconds, so ``updated > "2021-01-17 12:34"`` matches
an issue updated at 12:34:30.

The evaluator is pure: it asks a :class:`Facts` object for an issue's values.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, Union

DATE_FIELDS = frozenset({"updated", "created", "resolutiondate", "resolved", "duedate"})
_FIELD_ALIASES = {"issuekey": "key", "issue": "key", "resolved": "resolutiondate",
                  "fixversion": "fixversion", "component": "component", "label": "labels"}


class JqlError(ValueError):
    """The query is not valid; the message is what Jira would say."""


@dataclass(frozen=True)
class Clause:
    field: str                  # lower-cased, aliases resolved; "issue.property" for properties
    op: str                     # = != > >= < <= in "not in" is "is not"
    values: tuple[str, ...]     # literals as written (unquoted); () for EMPTY
    prop_key: str = ""
    prop_path: str = ""


@dataclass(frozen=True)
class Not:
    inner: "Node"


@dataclass(frozen=True)
class BoolOp:
    op: str                     # "and" | "or"
    parts: tuple["Node", ...]


Node = Union[Clause, Not, BoolOp]


@dataclass(frozen=True)
class Query:
    where: Node | None
    order: tuple[tuple[str, bool], ...]   # (field, ascending)


class Facts(Protocol):
    """What the evaluator needs to know about one issue."""

    def values(self, field: str) -> list[Any]:
        """The issue's values for a clause field: strings (compared case-insensitively),
        numbers, or epoch seconds for date fields. Empty list = EMPTY."""

    def property_values(self, key: str, path: str) -> list[Any]:
        """Values found at ``path`` (dot-separated) inside issue property ``key``."""


# --------------------------------------------------------------------------- lexer

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>!=|>=|<=|=|>|<|~|\(|\)|,)
    | (?P<word>[^\s"'=!<>~(),]+)
    )""", re.VERBOSE)


@dataclass(frozen=True)
class _Tok:
    kind: str      # str | op | word
    text: str

    def kw(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


def _lex(text: str) -> list[_Tok]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise JqlError(f"Error in the JQL Query: the character '{text[pos]}' is a reserved JQL character.")
        pos = m.end()
        kind = m.lastgroup or "word"
        value = m.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append(_Tok(kind, value))
    return tokens


# -------------------------------------------------------------------------- parser

class _Parser:
    def __init__(self, text: str):
        self.toks = _lex(text)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise JqlError("Error in the JQL Query: Expecting more input at the end of the query.")
        self.i += 1
        return tok

    def expect_op(self, op: str) -> None:
        tok = self.take()
        if tok.kind != "op" or tok.text != op:
            raise JqlError(f"Error in the JQL Query: Expecting '{op}' but got '{tok.text}'.")

    def query(self) -> Query:
        where = None
        tok = self.peek()
        if tok is not None and not tok.kw("order"):
            where = self.or_expr()
        order: list[tuple[str, bool]] = []
        tok = self.peek()
        if tok is not None:
            if not tok.kw("order"):
                raise JqlError(f"Error in the JQL Query: Expecting either 'OR' or 'AND' but got '{tok.text}'.")
            self.take()
            if not self.take().kw("by"):
                raise JqlError("Error in the JQL Query: Expecting 'by' after 'order'.")
            while True:
                field = _canonical(self.take().text)
                asc = True
                nxt = self.peek()
                if nxt is not None and nxt.kw("asc", "desc"):
                    asc = self.take().text.lower() == "asc"
                order.append((field, asc))
                nxt = self.peek()
                if nxt is None:
                    break
                self.expect_op(",")
        return Query(where, tuple(order))

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.kw("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.not_expr()]
        while (tok := self.peek()) is not None and tok.kw("and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def not_expr(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.kw("not"):
            self.take()
            return Not(self.not_expr())
        if tok is not None and tok.kind == "op" and tok.text == "(":
            self.take()
            inner = self.or_expr()
            self.expect_op(")")
            return inner
        return self.clause()

    def clause(self) -> Clause:
        ftok = self.take()
        if ftok.kind == "op":
            raise JqlError(f"Error in the JQL Query: Expecting a field name but got '{ftok.text}'.")
        field, key, path = _field(ftok.text)
        tok = self.take()
        if tok.kw("is"):
            negate = self.peek() is not None and self.peek().kw("not")  # type: ignore[union-attr]
            if negate:
                self.take()
            if not self.take().kw("empty", "null"):
                raise JqlError("Error in the JQL Query: Expecting 'EMPTY' or 'NULL' after 'is'.")
            return Clause(field, "is not" if negate else "is", (), key, path)
        if tok.kw("not"):
            if not self.take().kw("in"):
                raise JqlError("Error in the JQL Query: Expecting 'IN' after 'NOT'.")
            return Clause(field, "not in", self.value_list(), key, path)
        if tok.kw("in"):
            return Clause(field, "in", self.value_list(), key, path)
        if tok.kind != "op" or tok.text not in ("=", "!=", ">", ">=", "<", "<=", "~"):
            raise JqlError(f"Error in the JQL Query: Expecting operator but got '{tok.text}'.")
        if tok.text == "~":
            raise JqlError("Error in the JQL Query: The operator '~' is not supported by the simulator.")
        value = self.take()
        if value.kind == "op":
            raise JqlError(f"Error in the JQL Query: Expecting a value but got '{value.text}'.")
        return Clause(field, tok.text, (value.text,), key, path)

    def value_list(self) -> tuple[str, ...]:
        self.expect_op("(")
        values = []
        while True:
            tok = self.take()
            if tok.kind == "op":
                raise JqlError(f"Error in the JQL Query: Expecting a value but got '{tok.text}'.")
            values.append(tok.text)
            sep = self.take()
            if sep.kind == "op" and sep.text == ")":
                return tuple(values)
            if not (sep.kind == "op" and sep.text == ","):
                raise JqlError(f"Error in the JQL Query: Expecting ',' or ')' but got '{sep.text}'.")


_PROPERTY = re.compile(r"^issue\.property\[([^\]]+)\]\.(.+)$", re.IGNORECASE)


def _field(text: str) -> tuple[str, str, str]:
    m = _PROPERTY.match(text)
    if m:
        return "issue.property", m.group(1), m.group(2)
    return _canonical(text), "", ""


def _canonical(name: str) -> str:
    low = name.lower()
    return _FIELD_ALIASES.get(low, low)


def parse(text: str) -> Query:
    """Parse a JQL string; raises :class:`JqlError` with Jira's wording."""
    return _Parser(text or "").query()


def clauses(node: Node | None) -> Iterator[Clause]:
    """Every clause in a condition tree (for validation by the caller)."""
    if node is None:
        return
    if isinstance(node, Clause):
        yield node
    elif isinstance(node, Not):
        yield from clauses(node.inner)
    else:
        for part in node.parts:
            yield from clauses(part)


# ----------------------------------------------------------------------- evaluator

_RELATIVE = re.compile(r"^([-+]?)(\d+)([mhdw])$", re.IGNORECASE)
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def date_literal(text: str, now: float) -> float:
    """Epoch seconds for a JQL date literal (UTC, minute resolution)."""
    text = text.strip()
    rel = _RELATIVE.match(text)
    if rel:
        sign = -1 if rel.group(1) == "-" else 1
        return now + sign * int(rel.group(2)) * _UNIT_SECONDS[rel.group(3).lower()]
    for fmt in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            return float(calendar.timegm(time.strptime(text, fmt)))
        except ValueError:
            continue
    raise JqlError(
        f"Date value '{text}' for field 'updated' is invalid. Valid formats include: "
        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.")


def evaluate(node: Node | None, facts: Facts, now: float) -> bool:
    """Whether an issue (seen through ``facts``) matches the condition."""
    if node is None:
        return True
    if isinstance(node, Not):
        return not evaluate(node.inner, facts, now)
    if isinstance(node, BoolOp):
        results = (evaluate(p, facts, now) for p in node.parts)
        return all(results) if node.op == "and" else any(results)
    return _clause(node, facts, now)


def _clause(c: Clause, facts: Facts, now: float) -> bool:
    have = facts.property_values(c.prop_key, c.prop_path) if c.field == "issue.property" else facts.values(c.field)
    if c.op == "is":
        return not have
    if c.op == "is not":
        return bool(have)
    wanted = [_literal(c.field, v, now) for v in c.values]
    if c.op in ("=", "in"):
        return any(_eq(h, w) for h in have for w in wanted)
    if c.op in ("!=", "not in"):
        # JQL's != never matches an EMPTY field (as in Jira).
        return bool(have) and not any(_eq(h, w) for h in have for w in wanted)
    return any(_ordered(h, c.op, wanted[0]) for h in have)


def _literal(field: str, text: str, now: float) -> Any:
    if field in DATE_FIELDS:
        return date_literal(text, now)
    return text


def _eq(have: Any, want: Any) -> bool:
    if isinstance(have, (int, float)) and not isinstance(have, bool):
        try:
            return float(have) == float(want)
        except (TypeError, ValueError):
            return False
    return str(have).lower() == str(want).lower()


def _ordered(have: Any, op: str, want: Any) -> bool:
    try:
        a, b = float(have), float(want)
    except (TypeError, ValueError):
        a, b = str(have).lower(), str(want).lower()  # type: ignore[assignment]
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]
