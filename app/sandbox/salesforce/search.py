"""Salesforce imitation: SOSL search (``GET /services/data/vNN.0/search/?q=FIND {...}``).

Written from Salesforce's SOSL reference: ``FIND {term}`` (words, "quoted phrases", ``*`` and ``?``
wildcards, AND / OR / AND NOT, backslash escapes), ``IN ALL | NAME | EMAIL | PHONE FIELDS``,
``RETURNING Object (fields WHERE ... ORDER BY ... LIMIT n OFFSET n), ...`` and an overall ``LIMIT``
(2,000 at most). The answer is ``{"searchRecords": [...]}`` (a bare list before API 37.0), each record
with its ``attributes`` and the fields asked for (``Id`` alone when none are). A term matches whole
words; records come grouped by object in RETURNING order, then in the clause's ORDER BY or by Id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from app.sandbox.base import Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.salesforce.common import _fail, api
from app.sandbox.salesforce.soql import SoqlError, SoqlParser

SEARCHABLE = ("Account", "Contact", "Opportunity", "Product2")
SEARCH_MAX = 2000
NAME_FIELDS = {"Account": ("Name",), "Contact": ("FirstName", "LastName", "Name"), "Opportunity": ("Name",),
               "Product2": ("Name",)}
SCOPE_TYPES = {"ALL": {"string", "textarea", "email", "phone", "url"}, "EMAIL": {"email"}, "PHONE": {"phone"}}
RESERVED = set('?&|!{}[]()^~*:\\"\'+-')


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.casefold())


def _find_term(text: str) -> tuple[str, str]:
    """The braces' content (escapes kept) and what follows it."""
    m = re.match(r"\s*FIND\s*\{", text, re.I)
    if not m:
        raise SoqlError("MALFORMED_SEARCH", "SOSL statements start with FIND {search term}")
    i, out = m.end(), []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i:i + 2])
            i += 2
            continue
        if ch == "}":
            return "".join(out), text[i + 1:]
        out.append(ch)
        i += 1
    raise SoqlError("MALFORMED_SEARCH", "the search term is missing its closing brace '}'")


def parse_term(raw: str) -> list[list[tuple[bool, list[re.Pattern[str]]]]]:
    """OR-groups of (negated, word patterns) terms; a pattern list longer than one is a phrase."""
    tokens: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch.isspace():
            i += 1
        elif ch == '"':
            end = raw.find('"', i + 1)
            if end < 0:
                raise SoqlError("MALFORMED_SEARCH", "a quoted phrase in the search term is not closed")
            tokens.append(raw[i:end + 1])
            i = end + 1
        else:
            start = i
            while i < len(raw) and not raw[i].isspace():
                i += 2 if raw[i] == "\\" else 1
            word = raw[start:i]
            if any(c in RESERVED - {"*", "?", "\\"} for c in re.sub(r"\\.", "", word)):
                raise SoqlError("MALFORMED_SEARCH", f"reserved character in the search term '{word}': "
                                                    "escape it with a backslash")
            tokens.append(word)
    groups: list[list[tuple[bool, list[re.Pattern[str]]]]] = [[]]
    negate = False
    for n, tok in enumerate(tokens):
        upper = tok.upper()
        if upper in ("AND", "OR") and 0 < n < len(tokens) - 1:
            if upper == "OR":
                groups.append([])
            elif tokens[n + 1].upper() == "NOT":
                negate = True
            continue
        if upper == "NOT" and n > 0 and tokens[n - 1].upper() == "AND":
            continue
        text = re.sub(r"\\(.)", r"\1", tok.strip('"'))
        if len(text.replace("*", "").replace("?", "").strip()) < 2:
            raise SoqlError("INVALID_SEARCH", f"search term must be longer than one character: {text}")
        patterns = [re.compile("^" + re.escape(w).replace(r"\*", r"[^\W_]*").replace(r"\?", r"[^\W_]") + "$")
                    for w in re.findall(r"(?:[^\W_]|[*?])+", text.casefold())]
        groups[-1].append((negate, patterns))
        negate = False
    if not any(groups):
        raise SoqlError("INVALID_SEARCH", "the search term is empty")
    return [g for g in groups if g]


def _matches(words: list[str], patterns: list[re.Pattern[str]]) -> bool:
    width = len(patterns)
    return any(all(p.match(words[i + k]) for k, p in enumerate(patterns)) for i in range(len(words) - width + 1))


def _top_level(text: str) -> Iterator[int]:
    """Positions in ``text`` outside parentheses and 'quoted' literals."""
    depth, quote = 0, False
    for i, ch in enumerate(text):
        if ch == "'" and (i == 0 or text[i - 1] != "\\"):
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        elif not quote and depth == 0:
            yield i


def _split_top(text: str) -> list[str]:
    """Split on top-level commas."""
    cuts = [i for i in _top_level(text) if text[i] == ","]
    return [text[a + 1:b].strip() for a, b in zip([-1, *cuts], [*cuts, len(text)], strict=True)]


def _returning_end(text: str) -> int:
    """Where the RETURNING list ends: the first top-level LIMIT / WITH / UPDATE keyword, or the end."""
    return next((i for i in _top_level(text) if re.match(r"\s(LIMIT|WITH|UPDATE|OFFSET)\b", text[i:], re.I)),
                len(text))


class Search(SandboxPart):
    """SOSL search over Accounts, Contacts, Opportunities and Products."""

    def run_sosl(self, text: str, version: str) -> list[dict[str, Any]]:
        raw, rest = _find_term(text)
        groups = parse_term(raw)
        scope = "ALL"
        m = re.match(r"\s*IN\s+(ALL|NAME|EMAIL|PHONE|SIDEBAR)\s+FIELDS\b", rest, re.I)
        if m:
            scope = "ALL" if m.group(1).upper() == "SIDEBAR" else m.group(1).upper()
            rest = rest[m.end():]
        specs: list[str] = list(SEARCHABLE)
        m = re.match(r"\s*RETURNING\s+", rest, re.I)
        if m:
            rest = rest[m.end():]
            end = _returning_end(rest)
            specs, rest = _split_top(rest[:end]), rest[end:]
        limit = SEARCH_MAX
        m = re.match(r"\s*LIMIT\s+(\d+)", rest, re.I)
        if m:
            limit = min(int(m.group(1)), SEARCH_MAX)
            rest = rest[m.end():]
        if rest.strip():
            raise SoqlError("MALFORMED_SEARCH", f"unexpected token: '{rest.strip().split()[0]}'")
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for spec in specs:
            m = re.fullmatch(r"(\w+)\s*(?:\((.*)\))?", spec, re.S)
            if not m:
                raise SoqlError("MALFORMED_SEARCH", f"unexpected token in RETURNING: '{spec}'")
            obj = self._sobject(m.group(1))
            if obj is None or obj not in SEARCHABLE:
                raise SoqlError("INVALID_TYPE", f"sObject type '{m.group(1)}' is not supported.")
            if obj in seen:
                raise SoqlError("MALFORMED_SEARCH", f"duplicate entity in RETURNING: {obj}")
            seen.add(obj)
            inner = (m.group(2) or "").strip()
            clause = re.search(r"\b(WHERE|ORDER\s+BY|LIMIT|OFFSET)\b", inner, re.I)
            fields = inner[:clause.start()] if clause else inner
            tail = inner[clause.start():] if clause else ""
            soql = f"SELECT {fields.strip() or 'Id'} FROM {obj} {tail}"  # noqa: S608 - parsed, not run on a database
            plan = self._compile(SoqlParser(soql).parse())
            found = [r for r in self.state["records"][obj].values()
                     if not r["IsDeleted"] and self._sosl_hit(obj, r, scope, groups)]
            found.sort(key=lambda r: r["Id"])
            out += self._render_rows(plan, self._select(plan, found, False), version, False)
        return out[:limit]

    def _sosl_hit(self, obj: str, rec: dict[str, Any], scope: str,
                  groups: list[list[tuple[bool, list[re.Pattern[str]]]]]) -> bool:
        if scope == "NAME":
            names = NAME_FIELDS[obj]
        else:
            names = tuple(n for n, f in self.fields(obj).items() if f["type"] in SCOPE_TYPES[scope])
        values = [str(rec.get(n)) for n in names if rec.get(n) not in (None, "")]
        if scope == "PHONE":
            values += [re.sub(r"\D", "", v) for v in values]
        words = _words(" ".join(values))
        return any(all(_matches(words, patterns) != negated for negated, patterns in group) for group in groups)

    @api("GET", r"/search", kind="query")
    def search(self, req: Request) -> Response:
        text = req.arg("q")
        if not text:
            raise _fail(400, "MALFORMED_SEARCH", "A search string is required: use the q parameter")
        version = req.params["version"]
        try:
            rows = self.run_sosl(text, version)
        except SoqlError as err:
            code = "MALFORMED_SEARCH" if err.code == "MALFORMED_QUERY" else err.code
            raise _fail(400, code, err.message) from err
        return Response(200, {"searchRecords": rows} if float(version) >= 37 else rows)
