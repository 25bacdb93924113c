"""Xero items (price list): unique codes, unit prices to 2 or 4 places."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.xero.contacts import XeroContacts
from app.sandbox.xero.shapes import API, CENT, Invalid, XeroResponse, dec, money, msdate, not_found, s


class XeroItems(XeroContacts):
    """The Items endpoints."""

    # -- items --------------------------------------------------------------------------------
    def _apply_item(self, tenant: dict[str, Any], el: dict[str, Any], existing: dict[str, Any] | None, *,
                    unitdp: int) -> dict[str, Any]:
        rec = dict(existing) if existing else {
            "ItemID": self.new_id("item"), "Code": "", "Name": "", "Description": "", "PurchaseDescription": "",
            "IsSold": True, "IsPurchased": True, "IsTrackedAsInventory": False, "SalesDetails": {},
            "PurchaseDetails": {},
        }
        errors: list[str] = []
        for fld, limit in (("Code", 30), ("Name", 50), ("Description", 4000), ("PurchaseDescription", 4000)):
            if fld in el:
                rec[fld] = s(el[fld])
                if len(rec[fld]) > limit:
                    errors.append(f"{fld} must be {limit} characters or fewer.")
        if not rec["Code"]:
            errors.append("Item code must be specified.")
        elif any(i["Code"].casefold() == rec["Code"].casefold() and i["ItemID"] != rec["ItemID"]
                 for i in tenant["items"].values()):
            errors.append(f"Price List Item with Code ''{rec['Code']}'' already exists")
        for fld in ("IsSold", "IsPurchased"):
            if fld in el:
                rec[fld] = bool(el[fld])
        for fld in ("SalesDetails", "PurchaseDetails"):
            given = el.get(fld)
            if isinstance(given, dict):
                details = dict(rec[fld])
                try:
                    if given.get("UnitPrice") is not None:
                        places = Decimal("0.0001") if unitdp == 4 else CENT
                        details["UnitPrice"] = str(money(dec(given["UnitPrice"], "UnitPrice"), places))
                except Invalid as exc:
                    errors += exc.messages
                for sub in ("AccountCode", "TaxType", "COGSAccountCode"):
                    if sub in given:
                        details[sub] = s(given[sub])
                if details.get("AccountCode") and details["AccountCode"] not in tenant["accounts"]:
                    errors.append("Account must be valid.")
                if details.get("TaxType") and details["TaxType"] not in tenant["taxes"]:
                    errors.append("Tax rate must be valid.")
                rec[fld] = details
        if errors:
            raise Invalid(*errors)
        self._touch(rec)
        tenant["items"][rec["ItemID"]] = rec
        return rec

    @staticmethod
    def _item_out(i: dict[str, Any], unitdp: int) -> dict[str, Any]:
        def details(d: dict[str, Any]) -> dict[str, Any]:
            out = {k: v for k, v in d.items() if k != "UnitPrice" and v}
            if d.get("UnitPrice") is not None:
                out = {"UnitPrice": money(Decimal(d["UnitPrice"]), Decimal("0.0001") if unitdp == 4 else CENT), **out}
            return out

        out: dict[str, Any] = {"ItemID": i["ItemID"], "Code": i["Code"]}
        if i["Description"]:
            out["Description"] = i["Description"]
        if i["PurchaseDescription"]:
            out["PurchaseDescription"] = i["PurchaseDescription"]
        out.update({"UpdatedDateUTC": msdate(int(i["_updated"] * 1000)),
                    "PurchaseDetails": details(i["PurchaseDetails"]),
                    "SalesDetails": details(i["SalesDetails"]), "Name": i["Name"],
                    "IsTrackedAsInventory": i["IsTrackedAsInventory"], "IsSold": i["IsSold"],
                    "IsPurchased": i["IsPurchased"]})
        return out

    @staticmethod
    def _unitdp(req: Request) -> int:
        return 4 if (req.arg("unitdp") or "").strip() == "4" else 2

    def _find_item(self, tenant: dict[str, Any], key: str) -> dict[str, Any] | None:
        key = key.strip()
        return tenant["items"].get(key.lower()) or next(
            (i for i in tenant["items"].values() if i["Code"].casefold() == key.casefold()), None)

    @staticmethod
    def _failed_item(el: dict[str, Any], messages: list[str]) -> dict[str, Any]:
        return {**el, "StatusAttributeString": "ERROR", "ValidationErrors": [{"Message": m} for m in messages]}

    @route("GET", rf"(?i:{API}/Items)")
    def list_items(self, req: Request) -> Response:
        """Not paged: every item in one answer."""
        tenant = self._gate(req, "items")
        unitdp = self._unitdp(req)
        items = sorted(tenant["items"].values(), key=lambda i: i["Code"].casefold())
        rows = [(i, self._item_out(i, unitdp)) for i in items]
        return self._list(req, rows, "Items", paged=False)

    @route("GET", rf"(?i:{API}/Items/(?P<id>[^/]+))")
    def get_item(self, req: Request) -> Response:
        tenant = self._gate(req, "items")
        rec = self._find_item(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        return XeroResponse(200, self.envelope("Items", [self._item_out(rec, self._unitdp(req))]))

    def _write_item(self, tenant: dict[str, Any], el: dict[str, Any], unitdp: int, *, create_only: bool) -> dict:
        existing = None
        if not create_only:
            if s(el.get("ItemID")):
                existing = tenant["items"].get(s(el["ItemID"]).lower())
                if existing is None:
                    raise Invalid("The document with the supplied id was not found for this endpoint.")
            elif s(el.get("Code")):
                existing = self._find_item(tenant, s(el["Code"]))
        rec = self._apply_item(tenant, el, existing, unitdp=unitdp)
        return {**self._item_out(rec, unitdp), "StatusAttributeString": "OK"}

    @route("PUT", rf"(?i:{API}/Items)")
    def create_items(self, req: Request) -> Response:
        tenant = self._gate(req, "items")
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Items", lambda el: self._write_item(tenant, el, unitdp, create_only=True), self._failed_item))

    @route("POST", rf"(?i:{API}/Items)")
    def save_items(self, req: Request) -> Response:
        tenant = self._gate(req, "items")
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Items", lambda el: self._write_item(tenant, el, unitdp, create_only=False),
            self._failed_item))

    @route("POST", rf"(?i:{API}/Items/(?P<id>[^/]+))")
    def update_item(self, req: Request) -> Response:
        tenant = self._gate(req, "items")
        rec = self._find_item(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Items", lambda el: self._write_item(tenant, {**el, "ItemID": rec["ItemID"]}, unitdp,
                                                              create_only=False), self._failed_item))

    @route("DELETE", rf"(?i:{API}/Items/(?P<id>[^/]+))")
    def delete_item(self, req: Request) -> Response:
        tenant = self._gate(req, "items")
        rec = self._find_item(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        tenant["items"].pop(rec["ItemID"])
        self.persist()
        return Response(204, b"")

