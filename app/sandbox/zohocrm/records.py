"""Zoho CRM imitation: the record routes (list, insert, upsert, update, delete, deleted, search)."""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.parts import SandboxPart
from app.sandbox.zohocrm.common import (
    API,
    MODULE_RE,
    TEXTUAL,
    _item_error,
    parse_time,
    zerr,
    zoho_time,
)
from app.sandbox.zohocrm.coql import CoqlError, parse_criteria


class Records(SandboxPart):
    """The record routes (list, insert, upsert, update, delete, deleted, search)."""

    # -- routes: records ------------------------------------------------------------------------
    @route("GET", API + r"/(?P<module>" + MODULE_RE + r")")
    def list_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "READ"))
        self._spend(1)
        cols = [c.strip() for c in (req.arg("fields") or "").split(",") if c.strip()]
        if not cols:
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                       {"param": "fields"})
        if len(cols) > 50:
            raise zerr(400, "LIMIT_EXCEEDED", "Max field limit exceeded", {"limit": 50, "param": "fields"})
        per_page = self._int_param(req, "per_page", 200)
        per_page = max(1, min(per_page, 200))
        sort_by = req.arg("sort_by") or "id"
        if sort_by not in ("id", "Created_Time", "Modified_Time"):
            raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "sort_by"})
        sort_order = (req.arg("sort_order") or "desc").lower()
        if sort_order not in ("asc", "desc"):
            raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "sort_order"})
        ims_text = req.header("if-modified-since")
        ims = None
        if ims_text:
            ims = parse_time(ims_text)
            if ims is None:
                raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "If-Modified-Since"})
        token = req.arg("page_token")
        if token:
            if req.arg("page"):
                raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "page_token"})
            saved = self.state["page_tokens"].get(token)
            if not saved or saved["module"] != module or saved["expires"] < self.now():
                raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "page_token"})
            sort_by, sort_order, ims, start = saved["sort_by"], saved["sort_order"], saved["ims"], saved["offset"]
        else:
            page = max(1, self._int_param(req, "page", 1))
            start = (page - 1) * per_page
            if start >= 2000:
                raise zerr(400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                           "You can only get the first 2000 records without using page_token param",
                           {"limit": 2000})
        rows = list(self.state["records"][module].values())
        ids = req.arg("ids")
        if ids:
            wanted = [i.strip() for i in ids.split(",") if i.strip()]
            if len(wanted) > 100:
                raise zerr(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": 100, "param": "ids"})
            rows = [r for r in rows if r["id"] in set(wanted)]
        if ims is not None:
            rows = [r for r in rows if r["Modified_Time"] > ims]
        key: Callable[[dict[str, Any]], Any] = (lambda r: int(r["id"])) if sort_by == "id" else (
            lambda r: (r[sort_by], int(r["id"])))
        rows.sort(key=key, reverse=sort_order == "desc")
        if not rows:
            return Response(304 if ims is not None else 204, b"")
        page_rows = rows[start:start + per_page]
        more = start + per_page < len(rows)
        info: dict[str, Any] = {"per_page": per_page, "count": len(page_rows), "page": start // per_page + 1,
                                "sort_by": sort_by, "sort_order": sort_order, "more_records": more}
        if more:
            token = secrets.token_hex(20)
            now = self.now()
            self.state["page_tokens"] = {t: v for t, v in self.state["page_tokens"].items() if v["expires"] > now}
            self.state["page_tokens"][token] = {"module": module, "offset": start + per_page, "sort_by": sort_by,
                                                "sort_order": sort_order, "ims": ims, "expires": now + 86400}
            info["next_page_token"] = token
            info["page_token_expiry"] = zoho_time(now + 86400)
        if not page_rows:
            return Response(204, b"")
        return self._json(200, {"data": [self.render(module, r, cols) for r in page_rows], "info": info})

    @staticmethod
    def _int_param(req: Request, name: str, default: int) -> int:
        raw = req.arg(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": name}) from None

    @route("GET", API + r"/(?P<module>" + MODULE_RE + r")/(?P<id>\d+)")
    def get_record(self, req: Request) -> Response:
        """One record with every field (or the ``fields`` asked for); an unknown id is 404 INVALID_DATA."""
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "READ"))
        self._spend(1)
        rec = self.state["records"][module].get(req.params["id"])
        if rec is None:
            raise zerr(404, "INVALID_DATA", "the id given seems to be invalid", {"resource_path_index": 1})
        ims = parse_time(req.header("if-modified-since") or "")
        if ims is not None and rec["Modified_Time"] <= ims:
            return Response(304, b"")
        cols = [c.strip() for c in (req.arg("fields") or "").split(",") if c.strip()] or None
        return self._json(200, {"data": [self.render(module, rec, cols)]})

    @route("DELETE", API + r"/(?P<module>" + MODULE_RE + r")/(?P<id>\d+)")
    def delete_record(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "DELETE"))
        self._spend(1)
        return self._write_response([self._delete_result(module, req.params["id"])], 200)

    @route("POST", API + r"/(?P<module>" + MODULE_RE + r")")
    def insert_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "CREATE"))
        items, _ = self._write_payload(req)
        self._spend(math.ceil(len(items) / 10))
        return self._write_response(self._insert(module, items), 201)

    @route("POST", API + r"/(?P<module>" + MODULE_RE + r")/upsert")
    def upsert_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "CREATE"), self._module_scopes(module, "UPDATE"))
        items, body = self._write_payload(req)
        check = body.get("duplicate_check_fields")
        if check is None:
            check = [f["api_name"] for f in self._fields(module) if f.get("unique")]
        elif not isinstance(check, list) or any(not (self._field(module, c) or {}).get("unique") for c in check):
            raise zerr(400, "INVALID_DATA", "invalid data", {"api_name": "duplicate_check_fields",
                                                             "json_path": "$.duplicate_check_fields"})
        self._spend(math.ceil(len(items) / 10))
        return self._write_response(self._insert(module, items, upsert_fields=check), 201)

    @route("PUT", API + r"/(?P<module>" + MODULE_RE + r")")
    def update_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "UPDATE"))
        items, _ = self._write_payload(req)
        self._spend(math.ceil(len(items) / 10))
        return self._write_response(self._update(module, items), 200)

    @route("PUT", API + r"/(?P<module>" + MODULE_RE + r")/(?P<id>\d+)")
    def update_record(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "UPDATE"))
        items, _ = self._write_payload(req)
        self._spend(1)
        return self._write_response(self._update(module, items[:1], req.params["id"]), 200)

    @route("DELETE", API + r"/(?P<module>" + MODULE_RE + r")")
    def delete_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "DELETE"))
        ids = [i.strip() for i in (req.arg("ids") or "").split(",") if i.strip()]
        if not ids:
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", {"param": "ids"})
        if len(ids) > 100:
            raise zerr(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": 100, "param": "ids"})
        self._spend(math.ceil(len(ids) / 10))
        return self._write_response([self._delete_result(module, rid) for rid in ids], 200)

    def _delete_result(self, module: str, rid: str) -> dict[str, Any]:
        if self._delete(module, rid) is None:
            return _item_error("INVALID_DATA", "the id given seems to be invalid", {"id": rid})
        return {"code": "SUCCESS", "details": {"id": rid}, "message": "record deleted", "status": "success"}

    @route("GET", API + r"/(?P<module>" + MODULE_RE + r")/deleted")
    def deleted_records(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "READ"))
        self._spend(1)
        kind = (req.arg("type") or "all").lower()
        if kind not in ("all", "recycle", "permanent"):
            raise zerr(400, "INVALID_DATA", "invalid data", {"param_name": "type"})
        per_page = max(1, min(self._int_param(req, "per_page", 200), 200))
        page = max(1, self._int_param(req, "page", 1))
        ims = parse_time(req.header("if-modified-since") or "")
        now = self.now()
        rows = []
        for entry in self.state["deleted"][module]:
            where = "recycle" if now - entry["deleted_time"] < 60 * 86400 else "permanent"
            if kind != "all" and where != kind:
                continue
            if ims is not None and entry["deleted_time"] <= ims:
                continue
            rows.append({"deleted_by": self._user(entry["deleted_by"]), "id": entry["id"],
                         "display_name": entry["display_name"], "type": where,
                         "created_by": self._user(entry["created_by"]),
                         "deleted_time": zoho_time(entry["deleted_time"])})
        rows.sort(key=lambda r: r["deleted_time"], reverse=True)
        if not rows:
            return Response(304 if ims is not None else 204, b"")
        start = (page - 1) * per_page
        chunk = rows[start:start + per_page]
        if not chunk:
            return Response(204, b"")
        return self._json(200, {"data": chunk, "info": {"per_page": per_page, "count": len(chunk), "page": page,
                                                        "more_records": start + per_page < len(rows)}})

    @route("GET", API + r"/(?P<module>" + MODULE_RE + r")/search")
    def search(self, req: Request) -> Response:
        module = self._module(req)
        self._authorize(req, self._module_scopes(module, "READ"))
        self._spend(1)
        rows = list(self.state["records"][module].values())
        fields = self._fields(module)
        if req.arg("criteria"):
            try:
                tree = parse_criteria(req.arg("criteria") or "")
                rows = [r for r in rows if self._criteria(module, r, tree)]
            except ValueError as exc:
                raise zerr(400, "INVALID_QUERY", "invalid query formed", {"reason": str(exc)}) from None
            except CoqlError as exc:
                raise zerr(400, "INVALID_QUERY", "invalid query formed", {"reason": exc.message}) from None
        elif req.arg("email"):
            want = (req.arg("email") or "").casefold()
            rows = [r for r in rows if any(str(r.get(f["api_name"]) or "").casefold() == want
                                           for f in fields if f["data_type"] == "email")]
        elif req.arg("phone"):
            want = re.sub(r"\D", "", req.arg("phone") or "")
            rows = [r for r in rows if want and any(re.sub(r"\D", "", str(r.get(f["api_name"]) or "")) == want
                                                    for f in fields if f["data_type"] == "phone")]
        elif req.arg("word"):
            want = (req.arg("word") or "").casefold()
            rows = [r for r in rows if any(want in str(r.get(f["api_name"]) or "").casefold()
                                           for f in fields if f["data_type"] in TEXTUAL)]
        else:
            raise zerr(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                       {"param": "criteria"})
        per_page = max(1, min(self._int_param(req, "per_page", 200), 200))
        page = max(1, self._int_param(req, "page", 1))
        rows.sort(key=lambda r: int(r["id"]))
        start = (page - 1) * per_page
        chunk = rows[start:start + per_page]
        if not chunk:
            return Response(204, b"")
        cols = [c.strip() for c in (req.arg("fields") or "").split(",") if c.strip()] or None
        return self._json(200, {"data": [self.render(module, r, cols) for r in chunk],
                                "info": {"per_page": per_page, "count": len(chunk), "page": page,
                                         "more_records": start + per_page < len(rows)}})

    def _criteria(self, module: str, rec: dict[str, Any], tree: tuple) -> bool:
        if tree[0] in ("and", "or"):
            left, right = self._criteria(module, rec, tree[1]), self._criteria(module, rec, tree[2])
            return (left and right) if tree[0] == "and" else (left or right)
        _, api, op, raw = tree
        f = self._field(module, api) if api != "id" else {"api_name": "id", "data_type": "bigint"}
        if f is None:
            raise zerr(400, "INVALID_QUERY", "invalid query formed", {"api_name": api, "reason": "unknown field"})
        have = self._comparable(module, f, rec.get(api) if api != "id" else rec["id"])
        values = [v.strip() for v in raw.split(",")] if op in ("in", "not_in", "between") else [raw]
        wants = [self._literal(f, v) for v in values]
        if op == "equals":
            return have == wants[0]
        if op == "not_equal":
            return have != wants[0]
        if op == "starts_with":
            return isinstance(have, str) and have.startswith(str(wants[0]))
        if op == "in":
            return have in wants
        if op == "not_in":
            return have not in wants
        if have is None:
            return False
        try:
            if op == "greater_than":
                return have > wants[0]
            if op == "greater_equal":
                return have >= wants[0]
            if op == "less_than":
                return have < wants[0]
            if op == "less_equal":
                return have <= wants[0]
            if op == "between":
                return wants[0] <= have <= wants[1]
        except TypeError:
            return False
        raise zerr(400, "INVALID_QUERY", "invalid query formed", {"operator": op, "reason": "unknown operator"})
