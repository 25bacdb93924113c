"""Pipedrive imitation: shared record plumbing, custom fields and renderers."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.pipedrive.common import (
    _custom_value,
    _dec,
    _err,
    _invalid,
    _money,
    dumps,
    parse_time,
    v2_time,
)


class Records(SandboxPart):
    """Shared record plumbing, custom fields and renderers."""

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _ok(data: Any, additional: Any = None, status: int = 200) -> Response:
        body: dict[str, Any] = {"success": True, "data": data}
        if additional is not None:
            body["additional_data"] = additional
        return Response(status, dumps(body))

    @staticmethod
    def _body(req: Request, allowed: set[str]) -> dict[str, Any]:
        if not req.body:
            return {}
        try:
            body = json.loads(req.body, parse_float=Decimal)
        except ValueError as exc:
            raise _err(400, "Invalid JSON in request body", "ERR_SCHEMA_VALIDATION_FAILED") from exc
        if not isinstance(body, dict):
            raise _invalid("body must be an object")
        for key in body:
            if key not in allowed:
                raise _invalid(f"{key}: Parameter '{key}' is not allowed for this request")
        return body

    def _record(self, kind: str, req: Request, *, deleted_ok: bool = False) -> dict[str, Any]:
        rec = self.state[kind].get(req.params["id"])
        if rec is None or (rec.get("is_deleted") and not deleted_ok):
            noun = {"persons": "Person", "organizations": "Organization", "deals": "Deal",
                    "products": "Product", "stages": "Stage", "pipelines": "Pipeline"}[kind]
            raise _err(404, f"{noun} not found", "ERR_NOT_FOUND")
        return rec

    def _ids_filter(self, req: Request) -> set[int] | None:
        raw = req.arg("ids")
        if not raw:
            return None
        try:
            ids = {int(x) for x in raw.split(",") if x.strip()}
        except ValueError as exc:
            raise _invalid("ids: must be a comma separated list of integers") from exc
        if len(ids) > 100:
            raise _invalid("ids: a maximum of 100 ids is allowed")
        return ids

    def _int_arg(self, req: Request, name: str) -> int | None:
        raw = req.arg(name)
        if raw in (None, ""):
            return None
        try:
            return int(raw)
        except ValueError as exc:
            raise _invalid(f"{name}: must be an integer") from exc

    def _page(self, req: Request, items: Iterable[dict[str, Any]], *, sort_fields: Iterable[str],
              render: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
        """Sort, keyset-page and wrap a v2 list: ``limit`` up to 500, ``next_cursor`` null on the last page."""
        sort_by = req.arg("sort_by") or "id"
        direction = req.arg("sort_direction") or "asc"
        if sort_by not in set(sort_fields) or direction not in {"asc", "desc"}:
            raise _invalid(f"sort_by: must be one of {', '.join(sort_fields)}")
        limit = self._int_arg(req, "limit") or 100
        if limit < 1 or limit > 500:
            raise _invalid("limit: must be less than or equal to 500")
        rows = sorted(items, key=lambda r: (r.get(sort_by) or "", r["id"]) if sort_by != "id" else (r["id"],),
                      reverse=direction == "desc")
        cursor = req.arg("cursor")
        if cursor:
            try:
                mark = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
                after = (mark["fieldValue"] or "", mark["id"]) if sort_by != "id" else (mark["id"],)
            except (ValueError, KeyError, TypeError) as exc:
                raise _invalid("cursor: invalid cursor") from exc

            def beyond(r: dict[str, Any]) -> bool:
                key = (r.get(sort_by) or "", r["id"]) if sort_by != "id" else (r["id"],)
                return key > after if direction == "asc" else key < after

            rows = [r for r in rows if beyond(r)]
        page, more = rows[:limit], len(rows) > limit
        next_cursor = None
        if more:
            last = page[-1]
            mark = {"field": sort_by, "fieldValue": last.get(sort_by) if sort_by != "id" else last["id"],
                    "sortDirection": direction, "id": last["id"]}
            next_cursor = base64.urlsafe_b64encode(json.dumps(mark).encode()).decode().rstrip("=")
        return self._ok([render(r) for r in page], {"next_cursor": next_cursor})

    def _updated_window(self, req: Request, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        since, until = req.arg("updated_since"), req.arg("updated_until")
        try:
            lo = parse_time(since) if since else None
            hi = parse_time(until) if until else None
        except ValueError as exc:
            raise _invalid("updated_since: must be in RFC3339 format") from exc
        out = []
        for r in rows:
            t = parse_time(r["update_time"])
            if (lo is None or t >= lo) and (hi is None or t < hi):
                out.append(r)
        return out

    def _touch(self, rec: dict[str, Any]) -> None:
        rec["update_time"] = v2_time(self.now())

    def _mark_deleted(self, kind: str, rec: dict[str, Any]) -> None:
        rec["is_deleted"] = True
        if kind == "deals":
            rec["status"] = "deleted"
        self._touch(rec)

    # -- custom fields ----------------------------------------------------------------------
    def _custom_in(self, entity: str, values: Any, current: dict[str, Any]) -> dict[str, Any]:
        """Validate and store custom field values the way v2 accepts them."""
        if not isinstance(values, dict):
            raise _invalid("custom_fields: must be an object")
        defs = self._custom_defs(entity)
        out = dict(current)
        for key, value in values.items():
            field = defs.get(key)
            if field is None:
                raise _invalid(f"custom_fields.{key}: Parameter '{key}' is not allowed for this request")
            out[key] = _custom_value(field, value)
        return out

    def _custom_out(self, entity: str, stored: dict[str, Any]) -> dict[str, Any]:
        """All custom fields of the entity (null when unset), numbers as numbers."""
        out: dict[str, Any] = {}
        for key, field in self._custom_defs(entity).items():
            value = stored.get(key)
            ftype = field["field_type"]
            if value is not None and ftype == "double":
                value = Decimal(value)
            elif value is not None and ftype == "monetary":
                value = {"value": Decimal(value["value"]), "currency": value.get("currency")}
            out[key] = value
        return out

    # -- renderers --------------------------------------------------------------------------
    def _person_out(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if not k.startswith("_")}
        out["custom_fields"] = self._custom_out("person", rec.get("custom_fields") or {})
        return out

    def _org_out(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if not k.startswith("_")}
        out["custom_fields"] = self._custom_out("organization", rec.get("custom_fields") or {})
        return out

    def _deal_out(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if not k.startswith("_")}
        out["value"] = Decimal(rec["value"] or "0")
        if rec.get("probability") is not None:
            out["probability"] = Decimal(rec["probability"])
        out["custom_fields"] = self._custom_out("deal", rec.get("custom_fields") or {})
        return out

    def _product_out(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if not k.startswith("_")}
        out["tax"] = Decimal(rec.get("tax") or "0")
        out["prices"] = [{**p, "price": Decimal(p["price"]), "cost": Decimal(p.get("cost") or "0"),
                          "direct_cost": _dec(p.get("direct_cost"))} for p in rec.get("prices", [])]
        out["custom_fields"] = self._custom_out("product", rec.get("custom_fields") or {})
        return out

    @staticmethod
    def _line_sum(rec: dict[str, Any]) -> Decimal:
        gross = Decimal(rec["quantity"]) * Decimal(rec["item_price"])
        discount = Decimal(rec.get("discount") or "0")
        net = gross - (gross * discount / 100 if rec.get("discount_type", "percentage") == "percentage" else discount)
        if rec.get("tax_method") == "exclusive":
            net += net * Decimal(rec.get("tax") or "0") / 100
        return _money(net)

    def _deal_product_out(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if not k.startswith("_")}
        for key in ("quantity", "item_price", "discount", "tax"):
            out[key] = Decimal(rec.get(key) or "0")
        out["sum"] = self._line_sum(rec)
        out["currency"] = self.state["deals"][str(rec["deal_id"])]["currency"]
        return out
