"""Zoho Books items: unique names, rates, active and inactive."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.zohobooks.contacts import ZohoBooksContacts
from app.sandbox.zohobooks.shapes import API, ZERO, dec, invalid, money, ok, s, zerr


class ZohoBooksItems(ZohoBooksContacts):
    """The items endpoints."""

    # -- items ------------------------------------------------------------------------------
    def _item(self, org: str, item_id: str) -> dict[str, Any]:
        rec = self._books(org)["items"].get(item_id)
        if rec is None:
            raise zerr(404, 1002, "Item does not exist.")
        return rec

    def _item_from(self, org: str, body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        now = self.now()
        rec = dict(existing) if existing else {
            "item_id": self.new_id(), "status": "active", "description": "", "sku": "", "unit": "",
            "product_type": "service", "item_type": "sales", "tax_id": "", "_created": now}
        if existing is None or "name" in body:
            name = s(body.get("name")).strip()
            if not name or len(name) > 100:
                raise invalid("name")
            if any(i["name"].casefold() == name.casefold() and i["item_id"] != rec["item_id"]
                   for i in self._books(org)["items"].values()):
                raise zerr(400, 1001, f"Item name {name} already exists")
            rec["name"] = name
        if existing is None or "rate" in body:
            if body.get("rate") is None:
                raise invalid("rate")
            rate = dec(body["rate"], "rate")
            if rate < 0:
                raise invalid("rate")
            rec["rate"] = str(money(rate))
        for field in ("description", "sku", "unit"):
            if field in body:
                rec[field] = s(body[field]).strip()
        if "product_type" in body:
            if body["product_type"] not in ("goods", "service", "digital_service"):
                raise invalid("product_type")
            rec["product_type"] = body["product_type"]
        if "item_type" in body:
            if body["item_type"] not in ("sales", "purchases", "sales_and_purchases", "inventory"):
                raise invalid("item_type")
            rec["item_type"] = body["item_type"]
        if body.get("tax_id"):
            rec["tax_id"] = self._tax(org, body["tax_id"])["tax_id"]
        rec["_lmt"] = now
        return rec

    def _item_out(self, org: str, i: dict[str, Any]) -> dict[str, Any]:
        tax = self._tax(org, i["tax_id"]) if i["tax_id"] else None
        return {
            "item_id": i["item_id"], "name": i["name"], "item_name": i["name"], "status": i["status"],
            "description": i["description"], "rate": Decimal(i["rate"]), "unit": i["unit"], "sku": i["sku"],
            "product_type": i["product_type"], "item_type": i["item_type"], "tax_id": i["tax_id"],
            "tax_name": tax["tax_name"] if tax else "",
            "tax_percentage": Decimal(tax["tax_percentage"]) if tax else ZERO,
            "created_time": self.ts(i["_created"], org), "last_modified_time": self.ts(i["_lmt"], org),
        }

    @route("GET", API + r"/items")
    def list_items(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        return self._list(
            req, org, list(self._books(org)["items"].values()), key="items", id_key="item_id", report="Items",
            texts={"name": lambda i: i["name"], "description": lambda i: i["description"], "sku": lambda i: i["sku"]},
            exact={},
            statuses={"Status.All": lambda i: True, "Status.Active": lambda i: i["status"] == "active",
                      "Status.Inactive": lambda i: i["status"] == "inactive"},
            default_filter="Status.All",
            sorts={"name": lambda i: i["name"].casefold(), "rate": lambda i: Decimal(i["rate"]),
                   "tax_name": lambda i: i["tax_id"], "created_time": lambda i: int(i["_created"]),
                   "last_modified_time": lambda i: int(i["_lmt"])},
            default_sort=("name", "A"), out=lambda i: self._item_out(org, i))

    @route("POST", API + r"/items")
    def create_item(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        rec = self._item_from(org, self._body(req), None)
        self._books(org)["items"][rec["item_id"]] = rec
        self.persist()
        return ok({"item": self._item_out(org, rec)}, 201, "The item has been added.")

    @route("GET", API + r"/items/(?P<id>\d+)")
    def get_item(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        return ok({"item": self._item_out(org, self._item(org, req.params["id"]))})

    @route("PUT", API + r"/items/(?P<id>\d+)")
    def update_item(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        rec = self._item_from(org, self._body(req), self._item(org, req.params["id"]))
        self._books(org)["items"][rec["item_id"]] = rec
        self.persist()
        return ok({"item": self._item_out(org, rec)}, 200, "The item details have been updated.")

    @route("DELETE", API + r"/items/(?P<id>\d+)")
    def delete_item(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        rec = self._item(org, req.params["id"])
        if any(li.get("item_id") == rec["item_id"] for inv in self._books(org)["invoices"].values()
               for li in inv["line_items"]):
            raise zerr(400, 4, "The item is used in transactions and cannot be deleted. Mark it as inactive instead.")
        del self._books(org)["items"][rec["item_id"]]
        self.persist()
        return ok({}, 200, "The item has been deleted.")

    @route("POST", API + r"/items/(?P<id>\d+)/(?P<status>active|inactive)")
    def item_status(self, req: Request) -> Response:
        org = self._gate(req, "settings")
        rec = self._item(org, req.params["id"])
        rec["status"], rec["_lmt"] = req.params["status"], self.now()
        self.persist()
        return ok({}, 200, f"The item has been marked as {req.params['status']}.")

