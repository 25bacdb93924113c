"""Xero's list reads: the ``where`` subset, searchTerm, order, If-Modified-Since and pages."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import Request, Response
from app.sandbox.common import page_number
from app.sandbox.xero.oauth import XeroOAuth
from app.sandbox.xero.shapes import XeroResponse, api_error, msdate_ms, parse_since, s

# -- the `where` subset ---------------------------------------------------------------------------
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|>=|<=|&&|\|\||[<>(),.])'
                    r'|(?P<num>-?\d+(?:\.\d+)?)|(?P<id>[A-Za-z_][A-Za-z0-9_]*))')


class WhereError(Exception):
    pass


class Where:
    """A parsed ``where`` expression: OR of ANDs of comparisons and string methods."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise WhereError(f"Cannot parse the where clause near '{text[pos:pos + 20]}'")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0
        self.tree = self._or()
        if self.i != len(self.tokens):
            raise WhereError(f"Unexpected '{self.tokens[self.i][1]}' in the where clause")

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, value: str | None = None, kind: str | None = None) -> str:
        tok = self._peek()
        if tok is None or (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind):
            raise WhereError(f"Expected {value or kind} in the where clause")
        self.i += 1
        return tok[1]

    def _or(self) -> list[list[tuple]]:
        groups = [self._and()]
        while self._peek() and self._peek()[1] in ("||", "OR"):
            self.i += 1
            groups.append(self._and())
        return groups

    def _and(self) -> list[tuple]:
        terms = [self._term()]
        while self._peek() and self._peek()[1] in ("&&", "AND"):
            self.i += 1
            terms.append(self._term())
        return terms

    def _term(self) -> tuple:
        path = [self._take(kind="id")]
        while self._peek() and self._peek()[1] == ".":
            self.i += 1
            name = self._take(kind="id")
            if name in ("StartsWith", "Contains", "EndsWith"):
                self._take("(")
                arg = self._literal()
                self._take(")")
                if not isinstance(arg, str):
                    raise WhereError(f"{name} takes a string")
                return ("call", path, name, arg)
            path.append(name)
        op = self._take()
        if op not in ("==", "!=", ">=", "<=", ">", "<"):
            raise WhereError(f"Unknown operator '{op}' in the where clause")
        return ("cmp", path, op, self._literal())

    def _literal(self) -> Any:
        kind, value = self._peek() or ("", "")
        self.i += 1
        if kind == "str":
            return json.loads(value)
        if kind == "num":
            return Decimal(value)
        if kind == "id":
            low = value.lower()
            if low in ("true", "false"):
                return low == "true"
            if low == "null":
                return None
            if low == "guid":
                self._take("(")
                text = self._literal()
                self._take(")")
                return ("guid", str(text).lower())
            if low == "datetime":
                self._take("(")
                parts = [int(self._literal())]
                while self._peek() and self._peek()[1] == ",":
                    self.i += 1
                    parts.append(int(self._literal()))
                self._take(")")
                return ("date", dt.datetime(*parts, tzinfo=dt.UTC))
        raise WhereError(f"Unexpected '{value}' in the where clause")

    def __call__(self, record: dict[str, Any]) -> bool:
        return any(all(self._test(term, record) for term in group) for group in self.tree)

    @staticmethod
    def _resolve(record: Any, path: list[str]) -> Any:
        for part in path:
            if not isinstance(record, dict):
                return None
            record = next((v for k, v in record.items() if k.lower() == part.lower()), None)
        return record

    def _test(self, term: tuple, record: dict[str, Any]) -> bool:
        value = self._resolve(record, term[1])
        if term[0] == "call":
            text, arg = s(value).casefold(), term[3].casefold()
            tests = {"StartsWith": text.startswith, "Contains": lambda a: a in text, "EndsWith": text.endswith}
            return tests[term[2]](arg)
        op, lit = term[2], term[3]
        if lit is None or value in (None, ""):
            same = lit is None and value in (None, "")
            return same if op == "==" else (not same if op == "!=" else False)
        left: Any
        right: Any
        if isinstance(lit, tuple) and lit[0] == "guid":
            left, right = s(value).lower(), lit[1]
        elif isinstance(lit, tuple) and lit[0] == "date":
            ms = msdate_ms(value)
            if ms is None:
                return False
            left, right = ms, int(lit[1].timestamp() * 1000)
        elif isinstance(lit, bool):
            left, right = bool(value), lit
        elif isinstance(lit, Decimal):
            try:
                left, right = Decimal(str(value)), lit
            except InvalidOperation:
                return False
        else:
            left, right = s(value).casefold(), lit.casefold()
        return {"==": left == right, "!=": left != right, ">=": left >= right, "<=": left <= right,
                ">": left > right, "<": left < right}[op]


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None or value == "":
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, Decimal | int):
        return (1, Decimal(value))
    ms = msdate_ms(value) if isinstance(value, str) and value.startswith("/Date(") else None
    if ms is not None:
        return (1, Decimal(ms))
    return (2, str(value).casefold())


class XeroListing(XeroOAuth):
    """Filtering, ordering and paging a list."""

    # -- listing ------------------------------------------------------------------------------
    def _list(self, req: Request, rows: list[tuple[dict[str, Any], dict[str, Any]]], key: str, *,
              paged: bool = True, search: tuple[str, ...] = ()) -> Response:
        """rows: (stored, output) in creation order. Applies If-Modified-Since, where, searchTerm, order, page."""
        since = parse_since(req.header("if-modified-since"))
        if since is not None:
            rows = [(r, o) for r, o in rows if r["_updated"] >= since]
        where = req.arg("where")
        if where:
            try:
                test = Where(where)
            except WhereError as exc:
                raise api_error(str(exc), number=16, kind="QueryParseException") from None
            rows = [(r, o) for r, o in rows if test(o)]
        term = (req.arg("searchTerm") or "").strip().casefold()
        if term and search:
            rows = [(r, o) for r, o in rows if any(term in s(o.get(f)).casefold() for f in search)]
        order = (req.arg("order") or "").strip()
        if order:
            for part in reversed([p.strip() for p in order.split(",") if p.strip()]):
                name, _, direction = part.partition(" ")
                rows.sort(key=lambda ro, n=name: _sort_key(Where._resolve(ro[1], n.split("."))),
                          reverse=direction.strip().upper() == "DESC")
        outs = [o for _, o in rows]
        if not paged or req.arg("page") is None:
            return XeroResponse(200, self.envelope(key, outs))
        try:
            page = max(1, int(req.arg("page") or 1))
            size = int(req.arg("pageSize") or 100)
        except ValueError:
            raise api_error("page and pageSize must be whole numbers.", number=16, kind="QueryParseException") from None
        size = min(max(size, 1), 1000)
        chunk = page_number(outs, page, size)
        pagination = {"page": page, "pageSize": size, "pageCount": chunk.count(size), "itemCount": chunk.total}
        return XeroResponse(200, self.envelope(key, chunk.rows, pagination))

