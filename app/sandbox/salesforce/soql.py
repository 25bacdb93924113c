"""Salesforce imitation: a small SOQL parser (SELECT, parent fields, child subqueries, WHERE, ORDER BY,
LIMIT, OFFSET)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from app.sandbox.salesforce.common import (
    parse_dt,
)

_TOKEN = re.compile(r"""\s*(?:
    (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\d:T])
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
)""", re.X)
KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
            "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL", "COUNT", "INCLUDES", "EXCLUDES"}


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            bad = text[pos:].strip().split(" ")[0]
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{bad}'")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "name" and value.upper() in KEYWORDS:
            kind, value = "kw", value.upper()
        out.append((kind, value))
        pos = m.end()
    return out


class SoqlParser:
    """Recursive descent over the tokens; produces plain dicts the evaluator walks."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.pos += 1
        return tok

    def expect(self, kind: str, value: str | None = None) -> str:
        tok = self.take()
        if tok[0] != kind or (value is not None and tok[1] != value):
            shown = tok[1] or "<end of query>"
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{shown}'")
        return tok[1]

    def is_kw(self, *words: str) -> bool:
        tok = self.peek()
        return tok[0] == "kw" and tok[1] in words

    def parse(self) -> dict[str, Any]:
        query = self.query()
        if self.peek()[0] != "end":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.peek()[1]}'")
        return query

    def query(self) -> dict[str, Any]:
        self.expect("kw", "SELECT")
        items: list[dict[str, Any]] = []
        count = False
        while True:
            if self.is_kw("COUNT") and self.peek(1) == ("punct", "("):
                self.take(), self.take()
                self.expect("punct", ")")
                count = True
            elif self.peek() == ("punct", "("):
                self.take()
                items.append({"sub": self.query()})
                self.expect("punct", ")")
            else:
                kind, value = self.take()
                if kind != "name":
                    raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{value or '<end of query>'}'")
                items.append({"path": value})
            if self.peek() == ("punct", ","):
                self.take()
                continue
            break
        self.expect("kw", "FROM")
        sobject = self.expect("name")
        where = None
        if self.is_kw("WHERE"):
            self.take()
            where = self.condition()
        order: list[tuple[str, bool, bool]] = []
        if self.is_kw("ORDER"):
            self.take()
            self.expect("kw", "BY")
            while True:
                path = self.expect("name")
                desc = False
                if self.is_kw("ASC", "DESC"):
                    desc = self.take()[1] == "DESC"
                nulls_last = desc
                if self.is_kw("NULLS"):
                    self.take()
                    nulls_last = self.take()[1] == "LAST"
                order.append((path, desc, nulls_last))
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                break
        limit = offset = None
        if self.is_kw("LIMIT"):
            self.take()
            limit = self._int()
        if self.is_kw("OFFSET"):
            self.take()
            offset = self._int()
        if count and items:
            raise SoqlError("MALFORMED_QUERY", "COUNT() cannot be combined with other fields")
        return {"items": items, "count": count, "from": sobject, "where": where, "order": order, "limit": limit,
                "offset": offset}

    def _int(self) -> int:
        kind, value = self.take()
        if kind != "num" or not value.isdigit():
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{value}'")
        return int(value)

    def condition(self) -> dict[str, Any]:
        parts = [self.conjunction()]
        while self.is_kw("OR"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else {"or": parts}

    def conjunction(self) -> dict[str, Any]:
        parts = [self.negation()]
        while self.is_kw("AND"):
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else {"and": parts}

    def negation(self) -> dict[str, Any]:
        if self.is_kw("NOT"):
            self.take()
            return {"not": self.negation()}
        if self.peek() == ("punct", "("):
            self.take()
            inner = self.condition()
            self.expect("punct", ")")
            return inner
        path = self.expect("name")
        if self.is_kw("NOT") and self.peek(1) == ("kw", "IN"):
            self.take(), self.take()
            return {"in": path, "values": self.value_list(), "negate": True}
        if self.is_kw("IN"):
            self.take()
            return {"in": path, "values": self.value_list(), "negate": False}
        if self.is_kw("LIKE"):
            self.take()
            kind, raw = self.value()
            if kind != "str":
                raise SoqlError("MALFORMED_QUERY", "LIKE takes a quoted string")
            return {"like": path, "pattern": raw}
        kind, op = self.take()
        if kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{op or '<end of query>'}'")
        return {"cmp": path, "op": "!=" if op == "<>" else op, "value": self.value()}

    def value_list(self) -> list[tuple[str, Any]]:
        self.expect("punct", "(")
        if self.is_kw("SELECT"):
            raise SoqlError("MALFORMED_QUERY", "semi-join subqueries are not supported by this sandbox")
        values = [self.value()]
        while self.peek() == ("punct", ","):
            self.take()
            values.append(self.value())
        self.expect("punct", ")")
        return values

    def value(self) -> tuple[str, Any]:
        kind, raw = self.take()
        if kind == "str":
            return "str", re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)),
                                 raw[1:-1])
        if kind == "num":
            return "num", Decimal(raw)
        if kind == "dt":
            return "dt", parse_dt(raw)
        if kind == "date":
            try:
                dt.date.fromisoformat(raw)
            except ValueError as exc:
                raise SoqlError("MALFORMED_QUERY", f"invalid date: {raw}") from exc
            return "date", raw
        if kind == "kw" and raw in ("TRUE", "FALSE"):
            return "bool", raw == "TRUE"
        if kind == "kw" and raw == "NULL":
            return "null", None
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{raw or '<end of query>'}'")


def _like(pattern: str) -> re.Pattern[str]:
    out = ""
    for ch in pattern:
        out += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
    return re.compile(f"^{out}$", re.I | re.S)
