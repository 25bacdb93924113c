"""Zoho CRM imitation: the COQL parser and the search criteria parser."""

from __future__ import annotations

import re
from typing import Any


class CoqlError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


_COQL_TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^'\\]|\\.|'')*')
  | (?P<num>-?\d+(?:\.\d+)?)(?![\w.])
  | (?P<op>>=|<=|!=|<>|=|<|>)
  | (?P<punct>[(),*])
  | (?P<ident>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)
)""", re.X)
KEYWORDS = {"select", "from", "where", "and", "or", "order", "by", "asc", "desc", "limit", "offset", "like",
            "not", "in", "is", "null", "between", "true", "false"}


def _unquote(text: str) -> str:
    """The inside of a COQL string literal: ``\\x`` is x, ``''`` is one quote."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif ch == "'" and text[i + 1:i + 2] == "'":
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class Coql:
    """``select f1, f2 from Module where <cond> [order by f [asc|desc], ...] [limit [offset,] n]``.

    Conditions: ``= != < <= > >=``, ``[not] like``, ``[not] in (...)``, ``is [not] null``,
    ``[not] between a and b``; ``and``/``or`` join two operands, more need parentheses (as in Zoho).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, Any, int]] = []
        pos = 0
        text = text.rstrip().rstrip(";")
        while pos < len(text):
            m = _COQL_TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise self._syntax(pos, text[pos:pos + 10])
            kind = m.lastgroup or ""
            raw = m.group(kind)
            start = m.start(kind)
            if kind == "str":
                value: Any = _unquote(raw[1:-1])
            elif kind == "ident" and raw.lower() in KEYWORDS:
                kind, value = "kw", raw.lower()
            else:
                value = raw
            self.tokens.append((kind, value, start))
            pos = m.end()
        self.i = 0

    def _syntax(self, pos: int, near: str) -> CoqlError:
        return CoqlError("SYNTAX_ERROR", "invalid query formed",
                         {"line": 1, "column": pos + 1, "near": near or "end of query"})

    def _peek(self) -> tuple[str, Any, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, kind: str | None = None, value: Any = None) -> tuple[str, Any, int]:
        tok = self._peek()
        if tok is None or (kind and tok[0] != kind) or (value is not None and tok[1] != value):
            raise self._syntax(tok[2] if tok else len(self.text), str(tok[1]) if tok else "")
        self.i += 1
        return tok

    def _is(self, kind: str, value: Any = None) -> bool:
        tok = self._peek()
        return tok is not None and tok[0] == kind and (value is None or tok[1] == value)

    def parse(self) -> dict[str, Any]:
        self._take("kw", "select")
        fields = [self._take("ident")[1]]
        while self._is("punct", ","):
            self._take()
            fields.append(self._take("ident")[1])
        self._take("kw", "from")
        module = self._take("ident")[1]
        if not self._is("kw", "where"):
            raise CoqlError("SYNTAX_ERROR", "invalid query formed", {"clause": "where"})
        self._take()
        where = self._cond()
        order: list[tuple[str, bool]] = []
        if self._is("kw", "order"):
            self._take()
            self._take("kw", "by")
            while True:
                name = self._take("ident")[1]
                desc = False
                if self._is("kw", "asc") or self._is("kw", "desc"):
                    desc = self._take()[1] == "desc"
                order.append((name, desc))
                if not self._is("punct", ","):
                    break
                self._take()
        offset, limit = 0, 200
        if self._is("kw", "limit"):
            self._take()
            first = int(self._take("num")[1])
            if self._is("punct", ","):
                self._take()
                offset, limit = first, int(self._take("num")[1])
            else:
                limit = first
                if self._is("kw", "offset"):
                    self._take()
                    offset = int(self._take("num")[1])
        tok = self._peek()
        if tok is not None:
            raise self._syntax(tok[2], str(tok[1]))
        return {"fields": fields, "module": module, "where": where, "order": order, "offset": offset,
                "limit": limit}

    def _cond(self) -> tuple:
        left = self._operand()
        if self._is("kw", "and") or self._is("kw", "or"):
            op = self._take()[1]
            right = self._operand()
            if self._is("kw", "and") or self._is("kw", "or"):
                tok = self._peek()
                assert tok is not None
                raise self._syntax(tok[2], tok[1])  # a third condition needs parentheses
            return (op, left, right)
        return left

    def _operand(self) -> tuple:
        if self._is("punct", "("):
            self._take()
            inner = self._cond()
            self._take("punct", ")")
            return inner
        field = self._take("ident")[1]
        if self._is("kw", "is"):
            self._take()
            negate = bool(self._is("kw", "not") and self._take())
            self._take("kw", "null")
            return ("null", field, negate)
        negate = bool(self._is("kw", "not") and self._take())
        if self._is("kw", "like"):
            self._take()
            return ("like", field, self._take("str")[1], negate)
        if self._is("kw", "in"):
            self._take()
            self._take("punct", "(")
            values = [self._value()]
            while self._is("punct", ","):
                self._take()
                values.append(self._value())
            self._take("punct", ")")
            return ("in", field, values, negate)
        if self._is("kw", "between"):
            self._take()
            low = self._value()
            self._take("kw", "and")
            return ("between", field, low, self._value(), negate)
        if negate:
            tok = self._peek()
            raise self._syntax(tok[2] if tok else len(self.text), str(tok[1]) if tok else "")
        op = self._take("op")[1]
        return ("cmp", field, "!=" if op == "<>" else op, self._value())

    def _value(self) -> Any:
        tok = self._peek()
        if tok is None:
            raise self._syntax(len(self.text), "")
        if tok[0] in ("str", "num"):
            self.i += 1
            return tok[1]
        if tok[0] == "kw" and tok[1] in ("true", "false"):
            self.i += 1
            return tok[1] == "true"
        raise self._syntax(tok[2], str(tok[1]))


# -- search criteria -------------------------------------------------------------------------------

def parse_criteria(text: str) -> tuple:
    """``((Field:operator:value)and(Field:operator:value))``; ``\\`` escapes ( ) , : in values."""
    pos = 0

    def fail() -> ValueError:
        return ValueError(f"bad criteria near position {pos}")

    def group() -> tuple:
        nonlocal pos
        if pos >= len(text) or text[pos] != "(":
            raise fail()
        pos += 1
        if pos < len(text) and text[pos] == "(":
            left = group()
            m = re.compile(r"(and|or)", re.I).match(text, pos)
            if not m:
                raise fail()
            pos = m.end()
            right = group()
            if pos >= len(text) or text[pos] != ")":
                raise fail()
            pos += 1
            return (m.group(1).lower(), left, right)
        parts: list[str] = []
        buf: list[str] = []
        while pos < len(text):
            ch = text[pos]
            if ch == "\\" and pos + 1 < len(text):
                buf.append(text[pos + 1])
                pos += 2
                continue
            if ch == ":" and len(parts) < 2:
                parts.append("".join(buf))
                buf = []
            elif ch == ")":
                break
            else:
                buf.append(ch)
            pos += 1
        if pos >= len(text) or len(parts) != 2:
            raise fail()
        pos += 1
        parts.append("".join(buf))
        return ("crit", parts[0].strip(), parts[1].strip().lower(), parts[2])

    result = group()
    if pos != len(text):
        raise fail()
    return result


# -- the sandbox ------------------------------------------------------------------------------------
