"""Xero credit notes (sales, ``ACCRECCREDIT``) and their allocations to invoices.

``PUT``/``POST /CreditNotes`` create them with the invoices' line model and arithmetic (``DRAFT``,
``SUBMITTED`` or ``AUTHORISED``; numbered ``CN-0001``...); ``GET /CreditNotes[/{id}]`` read them with
``RemainingCredit`` and ``Allocations``. ``PUT /CreditNotes/{id}/Allocations`` applies credit to an
approved invoice of the same contact and currency: no more than the credit left nor than the invoice owes
("The amount allocated cannot exceed the amount remaining on the credit note" and kin). The invoice's
``AmountCredited`` and ``AmountDue`` move; it becomes ``PAID`` at zero due, and the credit note ``PAID``
when nothing is left. An invoice with credit allocated can no longer be voided or edited.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.xero.arithmetic import invoice_sums
from app.sandbox.xero.payments import XeroPayments
from app.sandbox.xero.shapes import (
    API,
    ZERO,
    ZERO_ID,
    Invalid,
    XeroResponse,
    day_ms,
    dec,
    money,
    msdate,
    not_found,
    parse_day,
    s,
)


class XeroCredits(XeroPayments):
    """The CreditNotes endpoints."""

    def _notes(self, tenant: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return tenant.setdefault("credit_notes", {})

    def _apply_credit_note(self, tenant: dict[str, Any], el: dict[str, Any]) -> dict[str, Any]:
        errors: list[str] = []
        if s(el.get("Type")).upper() != "ACCRECCREDIT":
            errors.append("Only sales credit notes (ACCRECCREDIT) are supported here.")
        rec: dict[str, Any] = {"CreditNoteID": self.new_id("creditnote"), "Type": "ACCRECCREDIT",
                               "Reference": s(el.get("Reference")), "Date": self.today(), "LineItems": [],
                               "LineAmountTypes": s(el.get("LineAmountTypes")) or "Exclusive",
                               "CurrencyCode": s(el.get("CurrencyCode")).upper() or tenant["currencies"][0],
                               "Status": s(el.get("Status")).upper() or "DRAFT", "Allocations": []}
        try:
            rec["ContactID"] = self._contact_ref(tenant, el.get("Contact"))["ContactID"]
        except Invalid as exc:
            errors += exc.messages
        if s(el.get("Date")):
            try:
                rec["Date"] = parse_day(el["Date"], "Date")
            except Invalid as exc:
                errors += exc.messages
        if rec["CurrencyCode"] not in tenant["currencies"]:
            errors.append(f"The currency {rec['CurrencyCode']} has not been added to this organisation.")
        if rec["LineAmountTypes"] not in ("Exclusive", "Inclusive", "NoTax"):
            errors.append("LineAmountTypes must be Exclusive, Inclusive or NoTax.")
        try:
            rec["LineItems"] = self._lines(tenant, el.get("LineItems") or [], [], rec["LineAmountTypes"], 4)
        except Invalid as exc:
            errors += exc.messages
        if rec["Status"] not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            errors.append("Credit note not of valid status for creation")
        if rec["Status"] != "DRAFT":
            if not rec["LineItems"]:
                errors.append("At least one line item must be specified.")
            if any(not li["AccountCode"] for li in rec["LineItems"]):
                errors.append("Account code must be specified for every line of an approved credit note.")
        if errors:
            raise Invalid(*errors)
        subtotal, tax, total = invoice_sums(((Decimal(li["LineAmount"]), Decimal(li["TaxAmount"]))
                                             for li in rec["LineItems"]), rec["LineAmountTypes"])
        rec.update({"SubTotal": str(subtotal), "TotalTax": str(tax), "Total": str(total),
                    "RemainingCredit": str(total)})
        notes = self._notes(tenant)
        rec["CreditNoteNumber"] = f"CN-{len(notes) + 1:04d}"
        self._touch(rec)
        notes[rec["CreditNoteID"]] = rec
        return rec

    def _note_out(self, tenant: dict[str, Any], n: dict[str, Any]) -> dict[str, Any]:
        contact = tenant["contacts"].get(n["ContactID"]) or {"ContactID": n["ContactID"], "Name": ""}
        return {
            "Type": n["Type"], "CreditNoteID": n["CreditNoteID"], "CreditNoteNumber": n["CreditNoteNumber"],
            "Reference": n["Reference"], "Status": n["Status"], "LineAmountTypes": n["LineAmountTypes"],
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "Date": msdate(day_ms(n["Date"])),
            "LineItems": [{"LineItemID": li["LineItemID"], "Description": li["Description"],
                           "Quantity": Decimal(li["Quantity"]), "UnitAmount": money(Decimal(li["UnitAmount"])),
                           "AccountCode": li["AccountCode"], "TaxType": li["TaxType"],
                           "TaxAmount": money(Decimal(li["TaxAmount"])), "LineAmount": money(Decimal(li["LineAmount"]))}
                          for li in n["LineItems"]],
            "SubTotal": money(Decimal(n["SubTotal"])), "TotalTax": money(Decimal(n["TotalTax"])),
            "Total": money(Decimal(n["Total"])), "RemainingCredit": money(Decimal(n["RemainingCredit"])),
            "CurrencyCode": n["CurrencyCode"], "CurrencyRate": Decimal("1.0"),
            "Allocations": [{"AllocationID": a["AllocationID"], "Amount": money(Decimal(a["Amount"])),
                             "Date": msdate(day_ms(a["Date"])),
                             "Invoice": {"InvoiceID": a["InvoiceID"],
                                         "InvoiceNumber": tenant["invoices"][a["InvoiceID"]]["InvoiceNumber"]}}
                            for a in n["Allocations"]],
            "UpdatedDateUTC": msdate(int(n["_updated"] * 1000)), "HasErrors": False,
        }

    @staticmethod
    def _failed_note(el: dict[str, Any], messages: list[str]) -> dict[str, Any]:
        return {**el, "CreditNoteID": el.get("CreditNoteID") or ZERO_ID, "HasErrors": True,
                "StatusAttributeString": "ERROR", "ValidationErrors": [{"Message": m} for m in messages]}

    @route("GET", rf"(?i:{API}/CreditNotes)")
    def list_credit_notes(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        rows = [(n, self._note_out(tenant, n)) for n in sorted(self._notes(tenant).values(), key=lambda n: n["_seq"])]
        return self._list(req, rows, "CreditNotes", search=("CreditNoteNumber", "Reference"))

    @route("GET", rf"(?i:{API}/CreditNotes/(?P<id>[0-9a-fA-F-]{{36}}))")
    def get_credit_note(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        rec = self._notes(tenant).get(req.params["id"].lower())
        if rec is None:
            raise not_found()
        return XeroResponse(200, self.envelope("CreditNotes", [self._note_out(tenant, rec)]))

    def _create_note(self, tenant: dict[str, Any], el: dict[str, Any]) -> dict[str, Any]:
        return {**self._note_out(tenant, self._apply_credit_note(tenant, el)), "StatusAttributeString": "OK"}

    @route("PUT", rf"(?i:{API}/CreditNotes)")
    def create_credit_notes(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "CreditNotes", lambda el: self._create_note(tenant, el), self._failed_note))

    @route("POST", rf"(?i:{API}/CreditNotes)")
    def save_credit_notes(self, req: Request) -> Response:
        return self.create_credit_notes(req)

    def _allocate(self, tenant: dict[str, Any], note: dict[str, Any], el: dict[str, Any]) -> dict[str, Any]:
        inv = tenant["invoices"].get(s((el.get("Invoice") or {}).get("InvoiceID")).lower())
        if inv is None:
            raise Invalid("The invoice with the supplied InvoiceID was not found.")
        amount = dec(el.get("Amount"), "Amount") if el.get("Amount") is not None else ZERO
        errors = []
        if note["Status"] not in ("AUTHORISED",):
            errors.append("Credit note must be approved before it can be allocated.")
        if inv["Status"] != "AUTHORISED":
            errors.append("The invoice must be approved and not fully paid to allocate a credit note to it.")
        if inv["ContactID"] != note["ContactID"]:
            errors.append("The credit note and the invoice must be for the same contact.")
        if inv["CurrencyCode"] != note["CurrencyCode"]:
            errors.append("The credit note and the invoice must be in the same currency.")
        if amount <= 0 or amount != money(amount):
            errors.append("Amount must be a positive amount with at most 2 decimal places.")
        if amount > Decimal(note["RemainingCredit"]):
            errors.append("The amount allocated cannot exceed the amount remaining on the credit note.")
        if amount > Decimal(inv["AmountDue"]):
            errors.append("The amount allocated cannot exceed the amount due on the invoice.")
        if errors:
            raise Invalid(*errors)
        day = parse_day(el["Date"], "Date") if s(el.get("Date")) else self.today()
        alloc = {"AllocationID": self.new_id("allocation"), "InvoiceID": inv["InvoiceID"], "Amount": str(amount),
                 "Date": day}
        note["Allocations"] = [*note["Allocations"], alloc]
        note["RemainingCredit"] = str(Decimal(note["RemainingCredit"]) - amount)
        if Decimal(note["RemainingCredit"]) == 0:
            note["Status"] = "PAID"
        self._touch(note)
        inv["AmountCredited"] = str(Decimal(inv["AmountCredited"]) + amount)
        self._settle(inv, ZERO, day)  # recomputes AmountDue; PAID at zero due
        return {"AllocationID": alloc["AllocationID"], "Amount": money(amount), "Date": msdate(day_ms(day)),
                "Invoice": {"InvoiceID": inv["InvoiceID"], "InvoiceNumber": inv["InvoiceNumber"]},
                "CreditNote": {"CreditNoteID": note["CreditNoteID"], "CreditNoteNumber": note["CreditNoteNumber"]},
                "StatusAttributeString": "OK"}

    @route("PUT", rf"(?i:{API}/CreditNotes/(?P<id>[0-9a-fA-F-]{{36}})/Allocations)")
    def allocate_credit_note(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        note = self._notes(tenant).get(req.params["id"].lower())
        if note is None:
            raise not_found()
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Allocations", lambda el: self._allocate(tenant, note, el),
            lambda el, messages: {**el, "StatusAttributeString": "ERROR",
                                  "ValidationErrors": [{"Message": m} for m in messages]}))
