"""Xero payments: they move an invoice's AmountPaid and AmountDue; deleting one reopens it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.common import dumps
from app.sandbox.xero.invoices import XeroInvoices
from app.sandbox.xero.shapes import API, Invalid, XeroResponse, day_ms, dec, money, msdate, not_found, parse_day, s


class XeroPayments(XeroInvoices):
    """The Payments endpoints."""

    # -- payments -----------------------------------------------------------------------------
    def _apply_payment(self, tenant: dict[str, Any], el: dict[str, Any]) -> dict[str, Any]:
        target = el.get("Invoice") if isinstance(el.get("Invoice"), dict) else {}
        invoice = None
        if s(target.get("InvoiceID")):
            invoice = tenant["invoices"].get(s(target["InvoiceID"]).lower())
        elif s(target.get("InvoiceNumber")):
            invoice = self._find_invoice(tenant, s(target["InvoiceNumber"]))
        if invoice is None:
            raise Invalid("The document with the supplied id was not found for this endpoint.")
        account_ref = el.get("Account") if isinstance(el.get("Account"), dict) else {}
        account = tenant["accounts"].get(s(account_ref.get("Code"))) or next(
            (a for a in tenant["accounts"].values() if a["AccountID"] == s(account_ref.get("AccountID")).lower()), None)
        errors = []
        if account is None or not (account["Type"] == "BANK" or account["EnablePaymentsToAccount"]):
            errors.append("Account must be valid.")
        amount = dec(el.get("Amount"), "Amount")
        if amount <= 0:
            errors.append("Payment amount must be greater than zero.")
        if invoice["Status"] != "AUTHORISED":
            errors.append("Payments can only be made against Authorised documents.")
        elif amount > Decimal(invoice["AmountDue"]):
            errors.append("Payment amount exceeds the amount outstanding on this document")
        day = parse_day(el["Date"], "Date") if s(el.get("Date")) else self.today()
        if errors:
            raise Invalid(*errors)
        rec = {"PaymentID": self.new_id("payment"), "InvoiceID": invoice["InvoiceID"], "Date": day,
               "Amount": str(money(amount)), "Reference": s(el.get("Reference")), "Status": "AUTHORISED",
               "PaymentType": "ACCRECPAYMENT" if invoice["Type"] == "ACCREC" else "ACCPAYPAYMENT",
               "AccountCode": account["Code"], "IsReconciled": bool(el.get("IsReconciled"))}
        self._touch(rec)
        tenant["payments"][rec["PaymentID"]] = rec
        invoice["Payments"] = [*invoice["Payments"], rec["PaymentID"]]
        self._settle(invoice, amount, day)
        return rec

    def _settle(self, invoice: dict[str, Any], paid: Decimal, day: str) -> None:
        """Move AmountPaid/AmountDue by ``paid`` (negative for a deleted payment); PAID at zero due."""
        invoice["AmountPaid"] = str(Decimal(invoice["AmountPaid"]) + paid)
        self._totals(invoice)
        if Decimal(invoice["AmountDue"]) == 0 and invoice["Status"] == "AUTHORISED":
            invoice["Status"], invoice["FullyPaidOnDate"] = "PAID", day
        elif Decimal(invoice["AmountDue"]) > 0 and invoice["Status"] == "PAID":
            invoice["Status"], invoice["FullyPaidOnDate"] = "AUTHORISED", ""
        self._touch(invoice)

    def _payment_out(self, tenant: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        invoice = tenant["invoices"][p["InvoiceID"]]
        contact = tenant["contacts"].get(invoice["ContactID"]) or {"ContactID": invoice["ContactID"], "Name": ""}
        account = tenant["accounts"][p["AccountCode"]]
        amount = money(Decimal(p["Amount"]))
        return {
            "PaymentID": p["PaymentID"], "Date": msdate(day_ms(p["Date"])), "BankAmount": amount, "Amount": amount,
            "Reference": p["Reference"], "CurrencyRate": Decimal("1.0"), "PaymentType": p["PaymentType"],
            "Status": p["Status"], "UpdatedDateUTC": msdate(int(p["_updated"] * 1000)),
            "UpdatedDateUTCString": dt.datetime.fromtimestamp(p["_updated"], dt.UTC)
            .strftime("%Y-%m-%d %H:%M:%S+00:00"),
            "HasAccount": True, "IsReconciled": p["IsReconciled"],
            "Account": {"AccountID": account["AccountID"], "Code": account["Code"], "Name": account["Name"]},
            "Invoice": {"Type": invoice["Type"], "InvoiceID": invoice["InvoiceID"],
                        "InvoiceNumber": invoice["InvoiceNumber"], "Payments": [], "CreditNotes": [],
                        "Prepayments": [], "Overpayments": [], "HasErrors": False, "IsDiscounted": False,
                        "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"], "Addresses": [],
                                    "Phones": [], "ContactGroups": [], "ContactPersons": [],
                                    "HasValidationErrors": False},
                        "LineItems": [], "CurrencyCode": invoice["CurrencyCode"]},
            "HasValidationErrors": False,
        }

    @staticmethod
    def _failed_payment(el: dict[str, Any], messages: list[str]) -> dict[str, Any]:
        return {**el, "StatusAttributeString": "ERROR", "HasValidationErrors": True,
                "ValidationErrors": [{"Message": m} for m in messages]}

    @route("GET", rf"(?i:{API}/Payments)")
    def list_payments(self, req: Request) -> Response:
        tenant = self._gate(req, "payments")
        rows = [(p, self._payment_out(tenant, p)) for p in sorted(tenant["payments"].values(), key=lambda p: p["_seq"])]
        return self._list(req, rows, "Payments")

    @route("GET", rf"(?i:{API}/Payments/(?P<id>[0-9a-fA-F-]{{36}}))")
    def get_payment(self, req: Request) -> Response:
        tenant = self._gate(req, "payments")
        rec = tenant["payments"].get(req.params["id"].lower())
        if rec is None:
            raise not_found()
        return XeroResponse(200, self.envelope("Payments", [self._payment_out(tenant, rec)]))

    def _create_payment(self, tenant: dict[str, Any], el: dict[str, Any]) -> dict[str, Any]:
        return {**self._payment_out(tenant, self._apply_payment(tenant, el)), "StatusAttributeString": "OK"}

    @route("PUT", rf"(?i:{API}/Payments)")
    def create_payments(self, req: Request) -> Response:
        tenant = self._gate(req, "payments")
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Payments", lambda el: self._create_payment(tenant, el), self._failed_payment))

    @route("POST", rf"(?i:{API}/Payments)")
    def create_payment(self, req: Request) -> Response:
        """One payment: as ``{"Payments": [..]}`` or as the bare object the spec describes."""
        tenant = self._gate(req, "payments")
        body = self._body(req)
        if isinstance(body, dict) and "Payments" not in body:
            req = Request(req.method, req.path, req.query, req.headers, dumps({"Payments": [body]}).encode())
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Payments", lambda el: self._create_payment(tenant, el), self._failed_payment))

    @route("POST", rf"(?i:{API}/Payments/(?P<id>[0-9a-fA-F-]{{36}}))")
    def delete_payment(self, req: Request) -> Response:
        """Payments cannot be edited, only deleted (``{"Status": "DELETED"}``), which reopens the invoice."""
        tenant = self._gate(req, "payments")
        rec = tenant["payments"].get(req.params["id"].lower())
        if rec is None:
            raise not_found()

        def drop(el: dict[str, Any]) -> dict[str, Any]:
            if s(el.get("Status")).upper() != "DELETED":
                raise Invalid("Payments can only be deleted: send Status DELETED.")
            if rec["Status"] != "DELETED":
                self._drop_payment(tenant, rec)
            return {**self._payment_out(tenant, rec), "StatusAttributeString": "OK"}

        return self._idempotent(req, tenant, lambda: self._bulk(req, tenant, "Payments", drop, self._failed_payment))

    def _drop_payment(self, tenant: dict[str, Any], rec: dict[str, Any]) -> None:
        rec["Status"] = "DELETED"
        self._touch(rec)
        self._settle(tenant["invoices"][rec["InvoiceID"]], -Decimal(rec["Amount"]), rec["Date"])

