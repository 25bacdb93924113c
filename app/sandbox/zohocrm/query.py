"""Zoho CRM imitation: COQL queries and the comparisons COQL and search share."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.parts import SandboxPart
from app.sandbox.zohocrm.common import (
    API,
    MODULES,
    NUMERIC,
    parse_time,
    zerr,
)
from app.sandbox.zohocrm.coql import Coql, CoqlError


class Query(SandboxPart):
    """COQL queries and the comparisons COQL and search share."""

    # -- comparisons shared by COQL and search ---------------------------------------------------
    def _comparable(self, module: str, f: dict[str, Any], raw: Any) -> Any:
        dtype = f["data_type"]
        if raw is None or raw == "":
            return None
        if dtype in NUMERIC:
            return Decimal(str(raw))
        if dtype in ("integer", "datetime"):
            return int(raw)
        if dtype in ("lookup", "ownerlookup", "bigint"):
            return int(raw)
        if dtype == "boolean":
            return bool(raw)
        if f.get("stage"):
            stage = self.state["stages"].get(raw)
            return stage["display_value"].casefold() if stage else None
        if f.get("pipeline"):
            pipe = next((p for p in self.state["pipelines"] if p["id"] == raw), None)
            return pipe["display_value"].casefold() if pipe else None
        return str(raw).casefold()

    def _literal(self, f: dict[str, Any], value: Any) -> Any:
        dtype = f["data_type"]
        try:
            if dtype in NUMERIC:
                return Decimal(str(value))
            if dtype == "integer":
                return int(value)
            if dtype in ("lookup", "ownerlookup", "bigint"):
                return int(str(value))
            if dtype == "datetime":
                moment = parse_time(str(value))
                if moment is None:
                    raise ValueError(value)
                return int(moment)
            if dtype == "date":
                return dt.date.fromisoformat(str(value)).isoformat()
            if dtype == "boolean":
                return value if isinstance(value, bool) else str(value).lower() == "true"
        except (ValueError, InvalidOperation):
            raise CoqlError("INVALID_QUERY", "value given seems to be invalid for the column",
                            {"column_name": f["api_name"], "expected_data_type": dtype}) from None
        return str(value).casefold()

    # -- routes: COQL ------------------------------------------------------------------------------
    @route("POST", API + r"/coql")
    def coql(self, req: Request) -> Response:
        body = self._body(req)
        query_text = body.get("select_query") if isinstance(body, dict) else None
        if not isinstance(query_text, str):
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                       {"param": "select_query"})
        try:
            query = Coql(query_text).parse()
        except CoqlError as exc:
            self._authorize(req, ("ZohoCRM.coql.READ",))
            raise zerr(400, exc.code, exc.message, exc.details) from None
        module = next((m for m in MODULES if m.lower() == query["module"].lower()), None)
        if module is None:
            self._authorize(req, ("ZohoCRM.coql.READ",))
            raise zerr(400, "INVALID_QUERY", "invalid query formed", {"module": query["module"],
                                                                       "reason": "invalid module"})
        self._authorize(req, ("ZohoCRM.coql.READ",), self._module_scopes(module, "READ"))
        limit, offset = query["limit"], query["offset"]
        if limit < 1 or limit > 2000:
            raise zerr(400, "LIMIT_EXCEEDED", "limit exceeded", {"by": "limit", "limit": 2000})
        if offset + limit > 100_000:
            raise zerr(400, "LIMIT_EXCEEDED", "limit exceeded", {"by": "offset", "limit": 100_000})
        if len(query["fields"]) > 500:
            raise zerr(400, "LIMIT_EXCEEDED", "limit exceeded", {"by": "select", "limit": 500})
        self._spend(1 if limit <= 200 else 2 if limit <= 1000 else 3)
        try:
            columns = [self._column(module, c) for c in query["fields"]]
            for name, _ in query["order"]:
                self._column(module, name)
            rows = [r for r in self.state["records"][module].values() if self._eval(module, r, query["where"])]
        except CoqlError as exc:
            raise zerr(400, exc.code, exc.message, exc.details) from None

        def sort_key(rec: dict[str, Any], name: str) -> tuple:
            value = self._resolve(module, rec, self._column(module, name))
            return (value is not None, value if value is not None else 0)

        rows.sort(key=lambda r: int(r["id"]))
        for name, desc in reversed(query["order"]):
            rows.sort(key=lambda r, n=name: sort_key(r, n), reverse=desc)
        chunk = rows[offset:offset + limit]
        if not chunk:
            return Response(204, b"")
        out = []
        for rec in chunk:
            row: dict[str, Any] = {}
            for col in columns:
                row[col["key"]] = self._coql_value(module, rec, col)
            row["id"] = rec["id"]
            out.append(row)
        return self._json(200, {"data": out, "info": {"count": len(out),
                                                      "more_records": offset + limit < len(rows)}})

    def _column(self, module: str, name: str) -> dict[str, Any]:
        """A COQL column: a field, ``id``, or ``Lookup.Field`` of the looked-up record."""
        parts = name.split(".")
        if len(parts) > 2:
            raise CoqlError("INVALID_QUERY", "column given seems to be invalid", {"column_name": name})
        if parts[0] == "id" and len(parts) == 1:
            return {"key": "id", "field": {"api_name": "id", "data_type": "bigint"}, "via": None}
        f = next((x for x in self._fields(module) if x["api_name"].lower() == parts[0].lower()), None)
        if f is None:
            raise CoqlError("INVALID_QUERY", "column given seems to be invalid", {"column_name": name})
        if f["data_type"] in ("subform", "multiselectlookup"):
            raise CoqlError("INVALID_QUERY", "data type not supported",
                            {"column_name": name, "data_type": f["data_type"]})
        if len(parts) == 1:
            return {"key": f["api_name"], "field": f, "via": None}
        if f["data_type"] != "lookup":
            raise CoqlError("INVALID_QUERY", "column given seems to be invalid", {"column_name": name})
        target = f["lookup"]
        if parts[1] == "id":
            sub = {"api_name": "id", "data_type": "bigint"}
        else:
            sub = next((x for x in self._fields(target) if x["api_name"].lower() == parts[1].lower()), None)
            if sub is None or sub["data_type"] == "subform":
                raise CoqlError("INVALID_QUERY", "column given seems to be invalid", {"column_name": name})
        return {"key": f"{f['api_name']}.{sub['api_name']}", "field": sub, "via": f}

    def _source(self, module: str, rec: dict[str, Any], col: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        if col["via"] is None:
            return module, rec
        target = col["via"]["lookup"]
        return target, self.state["records"][target].get(rec.get(col["via"]["api_name"]) or "")

    def _resolve(self, module: str, rec: dict[str, Any], col: dict[str, Any]) -> Any:
        mod, src = self._source(module, rec, col)
        if src is None:
            return None
        f = col["field"]
        return self._comparable(mod, f, src["id"] if f["api_name"] == "id" else src.get(f["api_name"]))

    def _coql_value(self, module: str, rec: dict[str, Any], col: dict[str, Any]) -> Any:
        mod, src = self._source(module, rec, col)
        if src is None:
            return None
        f = col["field"]
        if f["api_name"] == "id":
            return src["id"]
        return self._value(mod, f, src.get(f["api_name"]), coql=True)

    def _eval(self, module: str, rec: dict[str, Any], node: tuple) -> bool:
        kind = node[0]
        if kind == "and":
            return self._eval(module, rec, node[1]) and self._eval(module, rec, node[2])
        if kind == "or":
            return self._eval(module, rec, node[1]) or self._eval(module, rec, node[2])
        col = self._column(module, node[1])
        have = self._resolve(module, rec, col)
        f = col["field"]
        if kind == "null":
            return (have is None) != node[2]
        if kind == "like":
            pattern = "^" + ".*".join(re.escape(p) for p in str(node[2]).casefold().split("%")) + "$"
            hit = have is not None and re.match(pattern, str(have), re.S) is not None
            return hit != node[3]
        if kind == "in":
            wants = [self._literal(f, v) for v in node[2]]
            return (have in wants) != node[3] if have is not None else False
        if kind == "between":
            low, high = self._literal(f, node[2]), self._literal(f, node[3])
            if have is None:
                return False
            return (low <= have <= high) != node[4]
        _, _, op, raw = node
        want = self._literal(f, raw)
        if have is None:
            return False
        try:
            return {"=": have == want, "!=": have != want, ">": have > want, ">=": have >= want,
                    "<": have < want, "<=": have <= want}[op]
        except TypeError:
            raise CoqlError("INVALID_QUERY", "value given seems to be invalid for the column",
                            {"column_name": node[1], "expected_data_type": f["data_type"]}) from None
