"""QBO records: create, read, sparse and full update with SyncToken, and the entity routes."""

from __future__ import annotations

import copy
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.quickbooks.faults import QboFault, business, missing, not_found, unsupported
from app.sandbox.quickbooks.payments import QboPayments
from app.sandbox.quickbooks.schema import API, FIELDS, READ_ONLY, URL_ENTITY


class QboRecords(QboPayments):
    """Writes of one entity and the entity endpoints."""

    # -- writes: dispatch -------------------------------------------------------------------------
    def _write(self, co: dict[str, Any], entity: str, body: Any, operation: str | None = None,
               include: str | None = None) -> dict[str, Any]:
        """Create, update, delete or void one entity; returns its wire form (or a tombstone)."""
        if not isinstance(body, dict):
            raise QboFault("2010", "Request has invalid or unsupported property", f"{entity} must be an object")
        if entity not in FIELDS:
            raise QboFault("500", "Unsupported Operation", f"Operation not supported for {entity}")
        for key in body:
            if key not in FIELDS[entity]:
                raise unsupported(key)
        op = (operation or "").lower()
        if op == "update" and include == "void":
            op = "void"
        store = co["entities"][entity]
        if op in ("delete", "void"):
            current = self._current(co, entity, body)
            if op == "delete":
                return self._delete(co, entity, current)
            return self._void(co, entity, current)
        if op not in ("", "create", "update"):
            raise QboFault("2010", "Request has invalid or unsupported property", f"Unknown operation {op}",
                           "operation")
        if body.get("Id") is None:
            if op == "update":
                raise missing("Id")
            rec = self._build(co, entity, body, None)
            rec["Id"] = self._new_id(co, entity)
            rec["SyncToken"] = "0"
            rec["_created"] = rec["_updated"] = self.now()
            store[rec["Id"]] = rec
            self._index_name(co, entity, rec)
            self._after(co, entity, rec, None)
            return self.wire(co, entity, rec)
        if op == "create":
            raise QboFault("2010", "Request has invalid or unsupported property", "Id is read-only on create", "Id")
        current = self._current(co, entity, body)
        if current.get("_voided"):
            raise business("A voided transaction can't be changed.")
        before = copy.deepcopy(current)
        rec = self._build(co, entity, body, current)
        rec["Id"], rec["_created"] = current["Id"], current["_created"]
        rec["SyncToken"] = str(int(current["SyncToken"]) + 1)
        rec["_updated"] = self.now()
        store[rec["Id"]] = rec
        self._index_name(co, entity, rec)
        self._after(co, entity, rec, before)
        return self.wire(co, entity, rec)

    def _current(self, co: dict[str, Any], entity: str, body: dict[str, Any]) -> dict[str, Any]:
        rec_id = str(body.get("Id") or "")
        if not rec_id:
            raise missing("Id")
        current = co["entities"][entity].get(rec_id)
        if current is None:
            raise not_found(entity, "Id")
        token = body.get("SyncToken")
        if token is None:
            raise missing("SyncToken")
        if str(token) != current["SyncToken"]:
            raise QboFault("5010", "Stale Object Error",
                           "Stale Object Error : You and Alex Ledger were working on this at the same time. "
                           "Alex Ledger finished before you did, so your work was not saved.", "SyncToken")
        return current

    def _base(self, entity: str, body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        """Sparse: start from the current record. Full update: writable fields omitted are cleared."""
        if current is not None and body.get("sparse") is True:
            rec = copy.deepcopy(current)
        else:
            rec = {k: v for k, v in (current or {}).items() if k.startswith("_")}
        read_only = READ_ONLY - {"TotalAmt"} if entity == "Payment" else READ_ONLY
        for key, value in body.items():
            if key in read_only:
                continue
            if value is None or value == "":
                rec.pop(key, None)
            else:
                rec[key] = copy.deepcopy(value)
        rec["domain"], rec["sparse"] = "QBO", False
        return rec

    def _build(self, co: dict[str, Any], entity: str, body: dict[str, Any],
               current: dict[str, Any] | None) -> dict[str, Any]:
        rec = self._base(entity, body, current)
        if entity == "Customer":
            return self._customer(co, rec, current)
        if entity == "Item":
            return self._item(co, rec, current)
        if entity in ("Invoice", "CreditMemo"):
            return self._sales(co, entity, rec, current)
        return self._payment(co, rec, current)

    def _after(self, co: dict[str, Any], entity: str, rec: dict[str, Any], before: dict[str, Any] | None) -> None:
        if entity == "Payment":
            if before is not None:
                self._unapply(co, before)
            self._apply(co, rec)

    # -- API: entities ----------------------------------------------------------------------------
    @route("POST", API + r"/(?P<entity>customer|item|invoice|payment|creditmemo)")
    def post_entity(self, req: Request) -> Response:
        co = self._enter(req)
        replay = self._replay(co, req)
        if replay is not None:
            return replay
        entity = URL_ENTITY[req.params["entity"]]
        body = self._body(req)
        try:
            result = self._write(co, entity, body, req.arg("operation"), req.arg("include"))
        except QboFault as err:
            resp: Response = self._fail(err).response
            return self._keep(co, req, resp)
        self.persist()
        return self._keep(co, req, self.ok({entity: result}))

    @route("POST", API + r"/invoice/(?P<id>[^/]+)/send")
    def send_invoice(self, req: Request) -> Response:
        """Email the invoice: ``sendTo`` or its BillEmail; EmailStatus becomes EmailSent (reference §3)."""
        co = self._enter(req)
        rec = co["entities"]["Invoice"].get(req.params["id"])
        if rec is None:
            raise self._fail(not_found("Invoice", "Id"))
        to = req.arg("sendTo") or (rec.get("BillEmail") or {}).get("Address")
        if not to:
            raise self._fail(business("Email address is missing. Add an email address for the customer or "
                                      "pass sendTo.", "BillEmail"))
        now = self.now()
        rec["BillEmail"] = {"Address": to}
        rec["EmailStatus"] = "EmailSent"
        rec["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": self.ts(now)}
        rec["SyncToken"] = str(int(rec["SyncToken"]) + 1)
        rec["_updated"] = now
        self.persist()
        return self.ok({"Invoice": self.wire(co, "Invoice", rec)})

    @route("GET", API + r"/(?P<entity>customer|item|invoice|payment|creditmemo|account|vendor|employee)"
                        r"/(?P<id>[^/]+)")
    def get_entity(self, req: Request) -> Response:
        co = self._enter(req)
        entity = URL_ENTITY[req.params["entity"]]
        rec = co["entities"][entity].get(req.params["id"])
        if rec is None:
            raise self._fail(not_found(entity, "Id"))
        return self.ok({entity: self.wire(co, entity, rec)})

    @route("GET", API + r"/companyinfo/(?P<id>[^/]+)")
    def company_info(self, req: Request) -> Response:
        co = self._enter(req)
        if req.params["id"] not in (co["realm"], co["info"]["Id"]):
            raise self._fail(not_found("CompanyInfo", "Id"))
        return self.ok({"CompanyInfo": self._info(co)})

    @route("GET", API + r"/preferences")
    def preferences(self, req: Request) -> Response:
        co = self._enter(req)
        return self.ok({"Preferences": {
            "Id": "1", "SyncToken": "0", "domain": "QBO", "sparse": False,
            "SalesFormsPrefs": {"CustomTxnNumbers": False, "AllowDiscount": True, "DefaultDiscountAccount": "86",
                                "DefaultTerms": {"value": "3"}},
            "CurrencyPrefs": {"MultiCurrencyEnabled": co["multicurrency"],
                              "HomeCurrency": {"value": co["home_currency"]}},
            "MetaData": {"CreateTime": self.ts(co["info"]["_created"]),
                         "LastUpdatedTime": self.ts(co["info"]["_updated"])}}})

    # -- the web app (links only) ------------------------------------------------------------------
    @route("GET", r"/app/(?P<page>customerdetail|invoice)")
    def web_app(self, req: Request) -> Response:
        name = self.company()["info"]["CompanyName"] if self.state.get("default_realm") else "QuickBooks"
        what = req.arg("nameId") or req.arg("txnId") or ""
        page = (f"<!doctype html><title>{name} – QuickBooks Online (sandbox)</title>"
                f"<p>{name}: {req.params['page']} {what}</p>")
        return Response(200, page, content_type="text/html")

