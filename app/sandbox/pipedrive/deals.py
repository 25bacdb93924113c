"""Pipedrive imitation: v2 deals and deal products."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response
from app.sandbox.parts import SandboxPart
from app.sandbox.pipedrive.common import (
    DEAL_KEYS,
    DEAL_PRODUCT_KEYS,
    DEALS_FULL,
    DEALS_READ,
    _err,
    _int_value,
    _invalid,
    _number_value,
    api,
    parse_time,
    v2_time,
)


class Deals(SandboxPart):
    """V2 deals and deal products."""

    # -- v2: deals --------------------------------------------------------------------------
    def _deals(self, req: Request, archived: bool) -> Response:
        statuses = {s.strip() for s in (req.arg("status") or "").split(",") if s.strip()}
        if not statuses <= {"open", "won", "lost", "deleted"}:
            raise _invalid("status: must be one of open, won, lost, deleted")
        now = self.now()
        rows = []
        for rec in self.state["deals"].values():
            if bool(rec.get("is_archived")) != archived:
                continue
            if rec.get("is_deleted"):
                if "deleted" not in statuses or now - parse_time(rec["update_time"]) > 30 * 86400:
                    continue
            elif statuses and rec["status"] not in statuses:
                continue
            rows.append(rec)
        ids = self._ids_filter(req)
        if ids is not None:
            rows = [r for r in rows if r["id"] in ids]
        for name in ("org_id", "person_id", "pipeline_id", "stage_id", "owner_id"):
            value = self._int_arg(req, name)
            if value is not None:
                rows = [r for r in rows if r.get(name) == value]
        rows = self._updated_window(req, rows)
        return self._page(req, rows, sort_fields=("id", "update_time", "add_time"), render=self._deal_out)

    @api("GET", "/deals", cost=10, scopes=DEALS_READ)
    def deals_list(self, req: Request) -> Response:
        return self._deals(req, archived=False)

    @api("GET", "/deals/archived", cost=20, scopes=DEALS_READ)
    def deals_archived(self, req: Request) -> Response:
        return self._deals(req, archived=True)

    @api("GET", "/deals/{id}", cost=1, scopes=DEALS_READ)
    def deals_get(self, req: Request) -> Response:
        return self._ok(self._deal_out(self._record("deals", req)))

    def _apply_deal(self, rec: dict[str, Any], body: dict[str, Any]) -> None:
        now = v2_time(self.now())
        for key, value in body.items():
            if key == "title":
                if not isinstance(value, str) or not value.strip():
                    raise _invalid("title: must be a non-empty string")
                rec["title"] = value.strip()
            elif key == "status":
                if value not in {"open", "won", "lost"}:
                    raise _invalid("status: must be one of open, won, lost")
                if value != rec.get("status"):
                    rec["status"] = value
                    rec["won_time"] = now if value == "won" else None
                    rec["lost_time"] = now if value == "lost" else None
                    rec["close_time"] = now if value != "open" else None
            elif key in {"value", "probability"}:
                rec[key] = _number_value(key, value)
            elif key == "stage_id":
                stage = self.state["stages"].get(str(value))
                if stage is None or stage.get("is_deleted"):
                    raise _err(400, "Stage not found", "ERR_INVALID_INPUT")
                if value != rec.get("stage_id"):
                    rec.update(stage_id=value, pipeline_id=stage["pipeline_id"], stage_change_time=now)
            elif key in {"org_id", "person_id"}:
                kind = "organizations" if key == "org_id" else "persons"
                if value is not None and not self._live(kind, value):
                    raise _err(400, f"{'Organization' if key == 'org_id' else 'Person'} not found",
                               "ERR_INVALID_INPUT")
                rec[key] = value
            elif key == "is_archived":
                rec["is_archived"] = bool(value)
                rec["_archive_time"] = now if value else None
            elif key == "archive_time":
                rec["_archive_time"] = value
            elif key == "custom_fields":
                rec[key] = self._custom_in("deal", value, rec.get("custom_fields") or {})
            elif key == "is_deleted":
                if value:
                    rec["is_deleted"], rec["status"] = True, "deleted"
            elif key == "expected_close_date":
                if value is not None and not (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
                    raise _invalid("expected_close_date: must be a date (YYYY-MM-DD)")
                rec[key] = value
            elif key in {"owner_id", "visible_to", "pipeline_id"}:
                rec[key] = _int_value(key, value)
            else:
                rec[key] = value

    @api("POST", "/deals", cost=5, scopes=DEALS_FULL)
    def deals_create(self, req: Request) -> Response:
        body = self._body(req, DEAL_KEYS)
        if not body.get("title"):
            raise _invalid("title: \"title\" is required.")
        did = self.next_id("deal")
        when = v2_time(self.now())
        first_stage = min((s for s in self.state["stages"].values() if not s.get("is_deleted")),
                          key=lambda s: (s["pipeline_id"], s["order_nr"]), default=None)
        rec = {"id": did, "title": "", "owner_id": self.state["user"]["id"], "person_id": None, "org_id": None,
               "pipeline_id": first_stage["pipeline_id"] if first_stage else None,
               "stage_id": first_stage["id"] if first_stage else None, "value": "0",
               "currency": self.state["company"]["currency"], "add_time": when, "update_time": when,
               "stage_change_time": when, "is_deleted": False, "is_archived": False, "status": "open",
               "probability": None, "lost_reason": None, "visible_to": 3, "close_time": None, "won_time": None,
               "lost_time": None, "expected_close_date": None, "label_ids": [], "origin": "API", "origin_id": None,
               "channel": None, "channel_id": None, "source_lead_id": None, "arr": None, "mrr": None, "acv": None,
               "custom_fields": {}, "_archive_time": None}
        self._apply_deal(rec, body)
        self.state["deals"][str(did)] = rec
        self.persist()
        return self._ok(self._deal_out(rec))

    @api("PATCH", "/deals/{id}", cost=5, scopes=DEALS_FULL)
    def deals_update(self, req: Request) -> Response:
        rec = self._record("deals", req)
        body = self._body(req, DEAL_KEYS)
        updated = json.loads(json.dumps(rec))
        self._apply_deal(updated, body)
        updated["update_time"] = v2_time(self.now())
        rec.clear()
        rec.update(updated)
        self.persist()
        return self._ok(self._deal_out(rec))

    @api("DELETE", "/deals/{id}", cost=3, scopes=DEALS_FULL)
    def deals_delete(self, req: Request) -> Response:
        rec = self._record("deals", req)
        self._mark_deleted("deals", rec)
        self.persist()
        return self._ok({"id": rec["id"]})

    # -- v2: deal products ------------------------------------------------------------------
    def _attach(self, deal_id: int, body: dict[str, Any], when: str, *, order_nr: int | None = None,
                touch: bool = True) -> dict[str, Any]:
        product = self.state["products"].get(str(body.get("product_id")))
        if product is None or product.get("is_deleted"):
            raise _err(400, "Product not found", "ERR_INVALID_INPUT")
        aid = self.next_id("deal_product")
        rec = {"id": aid, "deal_id": deal_id, "product_id": product["id"], "name": product["name"],
               "product_variation_id": None, "order_nr": order_nr or aid, "add_time": when, "update_time": when,
               "comments": "", "discount": "0", "discount_type": "percentage", "quantity": "1", "item_price": "0",
               "tax": "0", "tax_method": "inclusive", "is_enabled": True, "billing_frequency": "one-time",
               "billing_frequency_cycles": None, "billing_start_date": None}
        self._apply_line(rec, body)
        self.state["deal_products"][str(aid)] = rec
        self._revalue(deal_id, touch=touch)
        return rec

    def _apply_line(self, rec: dict[str, Any], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key in {"item_price", "quantity", "discount", "tax"}:
                rec[key] = _number_value(key, value, required=True)
            elif key == "discount_type" and value not in {"percentage", "amount"}:
                raise _invalid("discount_type: must be one of percentage, amount")
            elif key == "tax_method" and value not in {"exclusive", "inclusive", "none"}:
                raise _invalid("tax_method: must be one of exclusive, inclusive, none")
            elif key == "product_id":
                product = self.state["products"].get(str(value))
                if product is None:
                    raise _err(400, "Product not found", "ERR_INVALID_INPUT")
                rec.update(product_id=product["id"], name=product["name"])
            else:
                rec[key] = value

    def _revalue(self, deal_id: int, *, touch: bool = True) -> None:
        """A deal with products is worth the sum of its enabled product lines."""
        deal = self.state["deals"][str(deal_id)]
        lines = [p for p in self.state["deal_products"].values() if p["deal_id"] == deal_id and p.get("is_enabled")]
        deal["value"] = str(sum((self._line_sum(p) for p in lines), Decimal(0)))
        if touch:
            self._touch(deal)

    @api("GET", "/deals/{id}/products", cost=10,
         scopes=("products:read", "products:full", "deals:read", "deals:full"))
    def deal_products_list(self, req: Request) -> Response:
        deal = self._record("deals", req)
        rows = [p for p in self.state["deal_products"].values() if p["deal_id"] == deal["id"]]
        return self._page(req, rows, sort_fields=("id", "add_time", "update_time", "order_nr"),
                          render=self._deal_product_out)

    @api("GET", "/deals/products", cost=10, scopes=("products:read", "products:full", "deals:read", "deals:full"))
    def deal_products_many(self, req: Request) -> Response:
        raw = ",".join(req.query.get("deal_ids", []))
        try:
            deal_ids = {int(x) for x in raw.split(",") if x.strip()}
        except ValueError as exc:
            raise _invalid("deal_ids: must be an array of integers") from exc
        if not deal_ids:
            raise _invalid("deal_ids: Parameter 'deal_ids' is required")
        if len(deal_ids) > 100:
            raise _invalid("deal_ids: a maximum of 100 deal ids is allowed")
        rows = [p for p in self.state["deal_products"].values() if p["deal_id"] in deal_ids]
        return self._page(req, rows, sort_fields=("id", "deal_id", "add_time", "update_time", "order_nr"),
                          render=self._deal_product_out)

    @api("POST", "/deals/{id}/products", cost=5, scopes=("products:full", "deals:full"))
    def deal_products_add(self, req: Request) -> Response:
        deal = self._record("deals", req)
        body = self._body(req, DEAL_PRODUCT_KEYS)
        for key in ("product_id", "item_price", "quantity"):
            if body.get(key) is None:
                raise _invalid(f"{key}: Parameter '{key}' is required")
        rec = self._attach(deal["id"], body, v2_time(self.now()))
        self.persist()
        return self._ok(self._deal_product_out(rec), status=201)

    @api("PATCH", "/deals/{id}/products/{product_attachment_id}", cost=5, scopes=("products:full", "deals:full"))
    def deal_products_update(self, req: Request) -> Response:
        deal = self._record("deals", req)
        rec = self.state["deal_products"].get(req.params["product_attachment_id"])
        if rec is None or rec["deal_id"] != deal["id"]:
            raise _err(404, "Product attachment not found", "ERR_NOT_FOUND")
        body = self._body(req, DEAL_PRODUCT_KEYS)
        self._apply_line(rec, body)
        self._touch(rec)
        self._revalue(deal["id"])
        self.persist()
        return self._ok(self._deal_product_out(rec))

    @api("DELETE", "/deals/{id}/products/{product_attachment_id}", cost=3, scopes=("deals:full", "products:full"))
    def deal_products_delete(self, req: Request) -> Response:
        deal = self._record("deals", req)
        rec = self.state["deal_products"].get(req.params["product_attachment_id"])
        if rec is None or rec["deal_id"] != deal["id"]:
            raise _err(404, "Product attachment not found", "ERR_NOT_FOUND")
        del self.state["deal_products"][str(rec["id"])]
        self._revalue(deal["id"])
        self.persist()
        return self._ok({"id": rec["id"]})
