"""Salesforce imitation: SOQL query and queryAll with nextRecordsUrl paging."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.salesforce.common import (
    BATCH_DEFAULT,
    CHILD_RELATIONSHIPS,
    LOCATOR_IDLE,
    MAX_LOCATORS,
    NO_SUCH_COLUMN_HINT,
    NUMBER_TYPES,
    PREFIX,
    _fail,
    api,
    make_id,
    norm_id,
)
from app.sandbox.salesforce.soql import SoqlError, SoqlParser, _like


class Query(SandboxPart):
    """SOQL query and queryAll with nextRecordsUrl paging."""

    # -- SOQL --------------------------------------------------------------------------------
    def _resolve(self, obj: str, path: str) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
        """'Account.Owner.Name' on Contact -> [(obj, reference field)...], the final field."""
        parts = path.split(".")
        hops: list[tuple[str, dict[str, Any]]] = []
        current = obj
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                field = self._lookup_field(current, part)
                if field is None:
                    raise SoqlError("INVALID_FIELD", f"No such column '{part}' on entity '{current}'. "
                                                     f"{NO_SUCH_COLUMN_HINT}")
                return hops, field
            ref = next((f for f in self.fields(current).values()
                        if f["relationshipName"] and f["relationshipName"].lower() == part.lower()), None)
            if ref is None:
                raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{part}' in field path. "
                                                 f"{NO_SUCH_COLUMN_HINT}")
            hops.append((current, ref))
            current = ref["referenceTo"][0]
        raise SoqlError("MALFORMED_QUERY", "empty field path")

    def _follow(self, rec: dict[str, Any] | None, hops: list[tuple[str, dict[str, Any]]]
                ) -> tuple[dict[str, Any] | None, str | None]:
        obj = None
        for _, ref in hops:
            if rec is None:
                return None, None
            target = ref["referenceTo"][0]
            rec = self.state["records"][target].get(rec.get(ref["name"]) or "")
            obj = target
        return rec, obj

    def _getter(self, hops: list[tuple[str, dict[str, Any]]], field: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
        name = field["name"]
        if not hops:
            return lambda rec: rec.get(name)
        records = self.state["records"]
        chain = [(ref["name"], records[ref["referenceTo"][0]]) for _, ref in hops]

        def get(rec: dict[str, Any]) -> Any:
            current: dict[str, Any] | None = rec
            for fk, table in chain:
                current = table.get((current or {}).get(fk) or "")
                if current is None:
                    return None
            return current.get(name)

        return get

    def _predicate(self, obj: str, cond: dict[str, Any] | None) -> Callable[[dict[str, Any]], bool]:
        """Compile a WHERE tree once: paths resolved and literals type-checked before any row is read."""
        if cond is None:
            return lambda rec: True
        if "and" in cond or "or" in cond:
            parts = [self._predicate(obj, c) for c in cond.get("and") or cond["or"]]
            if "and" in cond:
                return lambda rec: all(p(rec) for p in parts)
            return lambda rec: any(p(rec) for p in parts)
        if "not" in cond:
            inner = self._predicate(obj, cond["not"])
            return lambda rec: not inner(rec)
        path = cond.get("cmp") or cond.get("in") or cond.get("like")
        hops, field = self._resolve(obj, path)
        get = self._getter(hops, field)
        if "like" in cond:
            pattern = _like(cond["pattern"])
            return lambda rec: (v := get(rec)) is not None and bool(pattern.match(str(v)))
        if "in" in cond:
            literals = cond["values"]
            for literal in literals:
                self._check_literal(field, literal)
            negate = cond["negate"]
            return lambda rec: any(self._compare(field, get(rec), "=", lit) for lit in literals) != negate
        self._check_literal(field, cond["value"])
        op, literal = cond["op"], cond["value"]
        return lambda rec: self._compare(field, get(rec), op, literal)

    @staticmethod
    def _check_literal(field: dict[str, Any], literal: tuple[str, Any]) -> None:
        kind = literal[0]
        ftype = field["type"]
        want = {"datetime": "dt", "date": "date", "boolean": "bool", "int": "num"}.get(
            ftype, "num" if ftype in NUMBER_TYPES else "str")
        if kind != "null" and kind != want:
            names = {"dt": "dateTime", "date": "date", "bool": "boolean", "num": "number", "str": "string"}
            if kind == "str":
                hint = " and should not be enclosed in quotes"
            elif want == "str":
                hint = " and should be enclosed in quotes"
            else:
                hint = ""
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR",
                            f"value of filter criterion for field '{field['name']}' must be of type "
                            f"{names[want]}{hint}")

    @staticmethod
    def _compare(field: dict[str, Any], value: Any, op: str, literal: tuple[str, Any]) -> bool:
        kind, lit = literal
        if kind == "null":
            return (value is None) == (op == "=") if op in ("=", "!=") else False
        if value is None:
            return op == "!="
        ftype = field["type"]
        left: Any
        right: Any
        if ftype == "datetime":
            left, right = float(value), float(lit)
        elif ftype in NUMBER_TYPES or ftype == "int":
            left, right = Decimal(str(value)), lit
        elif ftype in ("id", "reference"):
            left, right = value, norm_id(lit) or lit
        elif ftype in ("boolean", "date"):
            left, right = value, lit
        else:
            left, right = str(value).casefold(), str(lit).casefold()
        return {"=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
                ">": left > right, ">=": left >= right}[op]

    def _sort_key(self, obj: str, order: list[tuple[str, bool, bool]]) -> Callable[[dict[str, Any]], Any]:
        resolved = []
        for path, desc, nulls_last in order:
            hops, field = self._resolve(obj, path)
            resolved.append((self._getter(hops, field), field["type"], desc, nulls_last))

        class Key:
            __slots__ = ("values",)

            def __init__(self, values: list[tuple[bool, bool, Any]]) -> None:
                self.values = values

            def __lt__(self, other: Key) -> bool:
                for (desc, nulls_last, a), (_, _, b) in zip(self.values, other.values, strict=True):
                    if a == b:
                        continue
                    if a is None or b is None:
                        return (a is None) != nulls_last
                    return (a > b) if desc else (a < b)
                return False

        def key(rec: dict[str, Any]) -> Key:
            values = []
            for get, ftype, desc, nulls_last in resolved:
                value = get(rec)
                if value is not None:
                    if ftype in NUMBER_TYPES or ftype == "int":
                        value = Decimal(str(value))
                    elif ftype == "datetime":
                        value = float(value)
                    elif isinstance(value, str) and ftype not in ("id", "reference"):
                        value = value.casefold()
                values.append((desc, nulls_last, value))
            return Key(values)

        return key

    def run_soql(self, text: str, version: str, *, all_rows: bool = False) -> tuple[int, list[dict[str, Any]]]:
        """Parse and evaluate; (totalSize, rendered rows)."""
        if len(text) > 100_000:
            raise SoqlError("MALFORMED_QUERY", "SOQL statements cannot be longer than 100000 characters")
        plan = self._compile(SoqlParser(text).parse())
        rows = self._select(plan, self.state["records"][plan["obj"]].values(), all_rows)
        if plan["count"]:
            return len(rows), []
        return len(rows), self._render_rows(plan, rows, version, all_rows)

    def _compile(self, query: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
        """Resolve the FROM object, every selected path, subqueries, WHERE and ORDER BY once."""
        fk = rel = None
        if parent is not None:
            rels = CHILD_RELATIONSHIPS.get(parent, {})
            rel = next((r for r in rels if r.lower() == query["from"].lower()), None)
            if rel is None:
                raise SoqlError("INVALID_TYPE", f"Didn't understand relationship '{query['from']}' in FROM part of "
                                                f"query call. {NO_SUCH_COLUMN_HINT}")
            obj, fk = rels[rel]
        else:
            found = self._sobject(query["from"])
            if found is None:
                raise SoqlError("INVALID_TYPE", f"sObject type '{query['from']}' is not supported. If you are "
                                                "attempting to use a custom object, be sure to append the '__c' "
                                                "after the entity name. Please reference your WSDL or the describe "
                                                "call for the appropriate names.")
            obj = found
        if query["offset"] is not None and query["offset"] > 2000:
            raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
        selects: list[tuple[str, Any]] = []
        for item in query["items"]:
            if "sub" in item:
                if parent is not None:
                    raise SoqlError("MALFORMED_QUERY", "nested subqueries are not supported")
                selects.append(("sub", self._compile(item["sub"], parent=obj)))
            else:
                selects.append(("field", self._resolve(obj, item["path"])))
        return {"obj": obj, "fk": fk, "rel": rel, "selects": selects, "where": self._predicate(obj, query["where"]),
                "order": self._sort_key(obj, query["order"]) if query["order"] else None,
                "limit": query["limit"], "offset": query["offset"], "count": query["count"]}

    @staticmethod
    def _select(plan: dict[str, Any], records: Iterable[dict[str, Any]], all_rows: bool) -> list[dict[str, Any]]:
        where = plan["where"]
        rows = [r for r in records if (all_rows or not r["IsDeleted"]) and where(r)]
        if plan["order"] is not None:
            rows.sort(key=plan["order"])
        if plan["offset"]:
            rows = rows[plan["offset"]:]
        if plan["limit"] is not None:
            rows = rows[:plan["limit"]]
        return rows

    def _render_rows(self, plan: dict[str, Any], rows: list[dict[str, Any]], version: str,
                     all_rows: bool) -> list[dict[str, Any]]:
        obj = plan["obj"]
        children: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for kind, spec in plan["selects"]:
            if kind == "sub":  # one pass over the child table, grouped by parent
                groups: dict[str, list[dict[str, Any]]] = {}
                for child in self.state["records"][spec["obj"]].values():
                    groups.setdefault(child.get(spec["fk"]) or "", []).append(child)
                children[spec["rel"]] = groups
        out = []
        for rec in rows:
            row: dict[str, Any] = {"attributes": self._attributes(obj, rec["Id"], version)}
            for kind, spec in plan["selects"]:
                if kind == "sub":
                    picked = self._select(spec, children[spec["rel"]].get(rec["Id"], []), all_rows)
                    row[spec["rel"]] = ({"totalSize": len(picked), "done": True,
                                         "records": self._render_rows(spec, picked, version, all_rows)}
                                        if picked else None)
                else:
                    self._put_path(row, rec, spec, version)
            out.append(row)
        return out

    def _put_path(self, row: dict[str, Any], rec: dict[str, Any],
                  spec: tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]], version: str) -> None:
        hops, field = spec
        if not hops:
            row[field["name"]] = self._out(field, rec.get(field["name"]))
            return
        holder = row
        current: dict[str, Any] | None = rec
        for n, (_, ref) in enumerate(hops):
            target = ref["referenceTo"][0]
            current = self.state["records"][target].get((current or {}).get(ref["name"]) or "")
            rel = ref["relationshipName"]
            if current is None:
                holder.setdefault(rel, None)
                return
            nested = holder.get(rel)
            if nested is None:
                nested = {"attributes": self._attributes(target, current["Id"], version)}
                holder[rel] = nested
            if n == len(hops) - 1:
                nested[field["name"]] = self._out(field, current.get(field["name"]))
            holder = nested

    def _query(self, req: Request, *, all_rows: bool) -> Response:
        text = req.arg("q")
        if not text:
            raise _fail(400, "MALFORMED_QUERY", "A query string is required: use the q parameter")
        version = req.params["version"]
        try:
            total, rows = self.run_soql(text, version, all_rows=all_rows)
        except SoqlError as err:
            raise _fail(400, err.code, err.message) from err
        batch = BATCH_DEFAULT
        options = req.header("sforce-query-options") or ""
        m = re.search(r"batchSize\s*=\s*(\d+)", options, re.I)
        if m:
            batch = min(BATCH_DEFAULT, max(200, int(m.group(1))))
        body: dict[str, Any] = {"totalSize": total, "done": True, "records": rows[:batch]}
        if len(rows) > batch:
            locator = make_id(PREFIX["Locator"], self.next_id("Locator"))
            self._locators[locator] = {"rows": rows, "pos": batch, "batch": batch, "touched": self.now()}
            while len(self._locators) > MAX_LOCATORS:
                self._locators.popitem(last=False)
            body["done"] = False
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{batch}"
        return Response(200, body)

    @api("GET", r"/query", kind="query")
    def query(self, req: Request) -> Response:
        return self._query(req, all_rows=False)

    @api("GET", r"/queryAll", kind="query")
    def query_all(self, req: Request) -> Response:
        return self._query(req, all_rows=True)

    @api("GET", r"/query(?:All)?/(?P<locator>[A-Za-z0-9]{18})-(?P<offset>\d+)", kind="query")
    def query_more(self, req: Request) -> Response:
        state = self._locators.get(req.params["locator"])
        now = self.now()
        if state is None or now - state["touched"] > LOCATOR_IDLE or state["pos"] != int(req.params["offset"]):
            self._locators.pop(req.params["locator"], None)
            raise _fail(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        start, batch = state["pos"], state["batch"]
        page = state["rows"][start:start + batch]
        state["pos"] = start + len(page)
        state["touched"] = now
        body: dict[str, Any] = {"totalSize": len(state["rows"]), "done": state["pos"] >= len(state["rows"]),
                                "records": page}
        if body["done"]:
            del self._locators[req.params["locator"]]
        else:
            body["nextRecordsUrl"] = f"/services/data/v{req.params['version']}/query/{req.params['locator']}-" \
                                     f"{state['pos']}"
        return Response(200, body)
