"""QBO's query language: a small parser and the /query endpoint."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.common import page_at, zone
from app.sandbox.quickbooks.faults import QboFault, missing, parse_error, query_invalid
from app.sandbox.quickbooks.records import QboRecords
from app.sandbox.quickbooks.schema import (
    _DATE,
    API,
    NAME_LISTS,
    PACIFIC_STANDARD,
    QUERY_DEFAULT,
    QUERY_MAX,
    QUERYABLE,
)

# -- the query language ------------------------------------------------------------------------------
_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<num>-?\d+(?:\.\d+)?)(?![\w.])|"""
                    r"""(?P<op><=|>=|!=|=|<|>|\(|\)|,|\*)|(?P<word>[A-Za-z_][\w.]*))""")


def tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    text = text.rstrip().rstrip(";")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise parse_error(f'Encountered " "{text[pos]}" at line 1, column {pos + 1}.')
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value, m.start(kind) + 1))
        pos = m.end()
    return tokens


class Query:
    """``SELECT ... FROM Entity [WHERE c AND c ...] [ORDERBY f [ASC|DESC], ...] [STARTPOSITION n] [MAXRESULTS n]``."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.count = False
        self.fields: list[str] | None = None
        self.conditions: list[tuple[str, str, Any]] = []
        self.order: list[tuple[str, bool]] = []
        self.start = 1
        self.max = QUERY_DEFAULT
        self._parse()

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _next(self, what: str = "") -> tuple[str, str, int]:
        tok = self._peek()
        if tok is None:
            raise parse_error(f'Encountered "<EOF>" at line 1; was expecting {what or "more input"}.')
        self.i += 1
        return tok

    def _word(self, *words: str) -> bool:
        tok = self._peek()
        if tok and tok[0] == "word" and tok[1].lower() in words:
            self.i += 1
            return True
        return False

    def _expect_word(self, word: str) -> None:
        if not self._word(word):
            tok = self._peek()
            raise parse_error(f'Encountered "{tok[1] if tok else "<EOF>"}" at line 1, column '
                              f'{tok[2] if tok else 0}. Was expecting "{word.upper()}".')

    def _expect_op(self, op: str) -> None:
        tok = self._next(op)
        if tok[0] != "op" or tok[1] != op:
            raise parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}. Was expecting "{op}".')

    def _parse(self) -> None:
        self._expect_word("select")
        tok = self._next("*")
        if tok[0] == "word" and tok[1].lower() == "count":
            self._expect_op("(")
            self._expect_op("*")
            self._expect_op(")")
            self.count = True
        else:  # a projection: properties and '*' in any mix (``SELECT *, Sku`` is every property)
            fields = [self._selected(tok)]
            while (p := self._peek()) and p[:2] == ("op", ","):
                self.i += 1
                fields.append(self._selected(self._next("a property")))
            self.fields = None if "*" in fields else fields
        self._expect_word("from")
        ent = self._next("an entity")
        if ent[0] != "word":
            raise parse_error(f'Encountered "{ent[1]}" at line 1, column {ent[2]}.')
        self.entity_raw = ent[1]
        if self._word("where"):
            self.conditions.append(self._condition())
            while self._word("and"):
                self.conditions.append(self._condition())
            if (p := self._peek()) and p[0] == "word" and p[1].lower() == "or":
                raise parse_error(f'Encountered " "OR" "or "" at line 1, column {p[2]}. OR is not supported.')
        while self._peek() is not None:
            if self._word("orderby"):
                while True:
                    name = self._next("a property")
                    desc = False
                    if self._word("desc"):
                        desc = True
                    else:
                        self._word("asc")
                    self.order.append((name[1], desc))
                    if (p := self._peek()) and p[:2] == ("op", ","):
                        self.i += 1
                        continue
                    break
            elif self._word("startposition"):
                self.start = self._int("STARTPOSITION")
            elif self._word("maxresults"):
                self.max = self._int("MAXRESULTS")
            else:
                tok = self._next()
                raise parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}.')

    @staticmethod
    def _selected(tok: tuple[str, str, int]) -> str:
        if tok[:2] == ("op", "*") or tok[0] == "word":
            return tok[1]
        raise parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}.')

    def _int(self, what: str) -> int:
        tok = self._next("a number")
        if tok[0] != "num" or "." in tok[1]:
            raise parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}. {what} takes an integer.')
        return int(tok[1])

    def _value(self) -> Any:
        tok = self._next("a value")
        if tok[0] == "str":
            return tok[1]
        if tok[0] == "num":
            return Decimal(tok[1])
        if tok[0] == "word" and tok[1].lower() in ("true", "false"):
            return tok[1].lower() == "true"
        raise parse_error(f'Encountered "{tok[1]}" at line 1, column {tok[2]}. Was expecting a value.')

    def _condition(self) -> tuple[str, str, Any]:
        name = self._next("a property")
        if name[0] != "word":
            raise parse_error(f'Encountered "{name[1]}" at line 1, column {name[2]}.')
        if self._word("in"):
            self._expect_op("(")
            values = [self._value()]
            while (p := self._peek()) and p[:2] == ("op", ","):
                self.i += 1
                values.append(self._value())
            self._expect_op(")")
            return name[1], "in", values
        if self._word("like"):
            value = self._value()
            if not isinstance(value, str):
                raise parse_error("LIKE takes a quoted string.")
            return name[1], "like", value
        op = self._next("an operator")
        if op[0] != "op" or op[1] not in ("=", "<", ">", "<=", ">=", "!="):
            raise parse_error(f'Encountered "{op[1]}" at line 1, column {op[2]}. Was expecting an operator.')
        return name[1], op[1], self._value()


def _get(rec: dict[str, Any], path: str) -> Any:
    node: Any = rec
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def pacific() -> dt.tzinfo:
    """US Pacific time, in which QBO reads a date-time sent without a UTC offset."""
    return zone("America/Los_Angeles", PACIFIC_STANDARD)


def _parse_when(text: str) -> float:
    """A date-time of a query or of CDC's changedSince. Without an offset QBO takes it as Pacific time,
    whatever the company's own zone, so ``2026-12-06T22:14:10`` is 2026-12-07T06:14:10Z."""
    value = text.strip().replace(" ", "T", 1)
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise query_invalid(f"Invalid date/time value {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=pacific())
    return parsed.timestamp()


def _coerce(kind: str, value: Any, prop: str) -> Any:
    if kind == "str":
        return str(value).casefold()
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise query_invalid(f"{prop} takes true or false")
    if kind == "num":
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise query_invalid(f"{prop} takes a number") from None
    if kind == "id":
        text = str(value)
        if not text.isdigit():
            raise query_invalid(f"{prop} takes an id")
        return int(text)
    if kind == "date":
        text = str(value)
        if not _DATE.match(text):
            raise query_invalid(f"{prop} takes a date (YYYY-MM-DD)")
        return text
    return _parse_when(str(value))  # ts


def _record_value(rec: dict[str, Any], path: str, kind: str) -> Any:
    raw = _get(rec, path)
    if raw is None:
        return None
    if kind == "str":
        return str(raw).casefold()
    if kind == "bool":
        return bool(raw)
    if kind == "num":
        return Decimal(str(raw))
    if kind == "id":
        return int(raw)
    if kind == "ts":
        return float(int(raw))  # stored with second precision, as MetaData shows it
    return str(raw)


def _sort_key(value: Any) -> tuple[bool, Any]:
    """Missing values sort last (first when descending), like SQL NULLs."""
    return (value is None, value if value is not None else 0)


def _matches(value: Any, op: str, want: Any) -> bool:
    if value is None:
        return False
    if op == "=":
        return value == want
    if op == "!=":
        return value != want
    if op == "in":
        return value in want
    if op == "like":
        pattern = "^" + ".*".join(re.escape(part) for part in want.split("%")) + "$"
        return re.match(pattern, value, re.DOTALL) is not None
    try:
        return {"<": value < want, ">": value > want, "<=": value <= want, ">=": value >= want}[op]
    except TypeError:
        return False


class QboQueries(QboRecords):
    """The /query endpoint."""

    # -- API: query ------------------------------------------------------------------------------
    @route("GET", API + r"/query")
    def query_get(self, req: Request) -> Response:
        co = self._enter(req)
        text = req.arg("query")
        if not text:
            raise self._fail(missing("query"))
        try:
            return self.ok({"QueryResponse": self.run_query(co, text)})
        except QboFault as err:
            raise self._fail(err) from None

    @route("POST", API + r"/query")
    def query_post(self, req: Request) -> Response:
        co = self._enter(req)
        ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
        if ctype not in ("application/text", "text/plain"):
            raise self._fail(QboFault("2010", "Request has invalid or unsupported property",
                                      "POST /query takes the statement as application/text"))
        try:
            return self.ok({"QueryResponse": self.run_query(co, req.body.decode("utf-8"))})
        except UnicodeDecodeError:
            raise self._fail(QboFault("500", "Unsupported Operation", "The body is not UTF-8")) from None
        except QboFault as err:
            raise self._fail(err) from None

    def run_query(self, co: dict[str, Any], text: str) -> dict[str, Any]:
        q = Query(text)
        entity = next((e for e in QUERYABLE if e.lower() == q.entity_raw.lower()), None)
        if entity is None:
            raise query_invalid(f"Invalid entity name {q.entity_raw}")
        props = QUERYABLE[entity]
        if q.max > QUERY_MAX or q.max < 1:
            raise query_invalid(f"MAXRESULTS: Max allowed value is {QUERY_MAX}")
        if q.start < 1:
            raise query_invalid("STARTPOSITION starts at 1")
        if entity == "CompanyInfo":
            rows = [co["info"]]
        else:
            rows = list(co["entities"][entity].values())
        conditions = []
        filters_active = False
        for prop, op, value in q.conditions:
            spec = props.get(prop.lower())
            if spec is None:
                raise query_invalid(f"property '{prop}' is not queryable")
            path, kind = spec
            if path == "Active":
                filters_active = True
            want = [_coerce(kind, v, prop) for v in value] if op == "in" else _coerce(kind, value, prop)
            if op == "like" and kind != "str":
                raise query_invalid(f"LIKE is not supported on {prop}")
            conditions.append((path, kind, op, want))
        if entity in NAME_LISTS and not filters_active:
            rows = [r for r in rows if r.get("Active", True)]  # hidden unless asked (reference §5)
        rows = [r for r in rows if all(_matches(_record_value(r, path, kind), op, want)
                                       for path, kind, op, want in conditions)]
        rows.sort(key=lambda r: int(r["Id"]))
        for prop, desc in reversed(q.order):
            spec = props.get(prop.lower())
            if spec is None:
                raise query_invalid(f"property '{prop}' is not sortable")
            rows.sort(key=lambda r, p=spec: _sort_key(_record_value(r, *p)), reverse=desc)
        if q.count:
            return {"totalCount": len(rows)}
        page = page_at(rows, q.start - 1, q.max).rows
        if not page:
            return {}
        out = [self._info(co) if entity == "CompanyInfo" else self.wire(co, entity, r) for r in page]
        if q.fields is not None:  # only the properties asked for, marked sparse
            wanted = {f.lower() for f in q.fields}
            out = [{"Id": r["Id"], "SyncToken": r.get("SyncToken"), "domain": "QBO", "sparse": True,
                    **{k: v for k, v in r.items() if k.lower() in wanted}} for r in out]
        return {entity: out, "startPosition": q.start, "maxResults": len(out)}

