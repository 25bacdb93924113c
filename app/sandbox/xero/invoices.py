"""Xero invoices: lines, statuses and their transitions, totals by Xero's arithmetic."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.xero.arithmetic import invoice_sums, line_amount, line_tax
from app.sandbox.xero.items import XeroItems
from app.sandbox.xero.shapes import (
    API,
    CENT,
    ZERO,
    ZERO_ID,
    Invalid,
    XeroResponse,
    api_error,
    day_ms,
    dec,
    money,
    msdate,
    not_found,
    parse_day,
    s,
    status_of,
)


class XeroInvoices(XeroItems):
    """The Invoices endpoints."""

    # -- invoices -----------------------------------------------------------------------------
    def _contact_ref(self, tenant: dict[str, Any], given: Any) -> dict[str, Any]:
        given = given if isinstance(given, dict) else {}
        cid, name, number = s(given.get("ContactID")).lower(), s(given.get("Name")), s(given.get("ContactNumber"))
        if not (cid or name or number):
            raise Invalid("The Contact must contain at least 1 of the following elements to identify the contact: "
                          "Name, ContactID, ContactNumber")
        if cid:
            rec = tenant["contacts"].get(cid)
            if rec is None:
                raise Invalid("The contact with the supplied ContactID was not found.")
            return rec
        match = next((c for c in tenant["contacts"].values()
                      if (number and c["ContactNumber"] == number)
                      or (name and c["ContactStatus"] == "ACTIVE" and c["Name"].casefold() == name.casefold())), None)
        return match or self._apply_contact(tenant, {"Name": name or number, "ContactNumber": number}, None)

    def _lines(self, tenant: dict[str, Any], given: Any, current: list[dict[str, Any]], amounts: str,
               unitdp: int) -> list[dict[str, Any]]:
        """Xero's arithmetic: the line amount to the cent after the discount, tax rounded on each line."""
        if not isinstance(given, list):
            raise Invalid("LineItems must be a list.")
        known = {li["LineItemID"]: li for li in current}
        places = Decimal("0.0001") if unitdp == 4 else CENT
        lines, errors = [], []
        for n, li in enumerate(x for x in given if isinstance(x, dict)):
            try:
                item = self._find_item(tenant, s(li.get("ItemCode"))) if s(li.get("ItemCode")) else None
                if s(li.get("ItemCode")) and item is None:
                    raise Invalid(f"Item code '{s(li.get('ItemCode'))}' is not valid.")
                sales = (item or {}).get("SalesDetails") or {}
                qty = money(dec(li.get("Quantity", 1), "Quantity"), Decimal("0.0001"))
                unit_raw = li.get("UnitAmount", sales.get("UnitPrice", 0))
                unit = money(dec(unit_raw, "UnitAmount"), places)
                rate = money(dec(li.get("DiscountRate") or 0, "DiscountRate"), CENT)
                if not ZERO <= rate <= 100:
                    raise Invalid("DiscountRate must be between 0 and 100.")
                account = s(li.get("AccountCode")) or s(sales.get("AccountCode"))
                if account and account not in tenant["accounts"]:
                    raise Invalid("Account must be valid.")
                if amounts == "NoTax":
                    tax_type = "NONE"
                else:
                    tax_type = (s(li.get("TaxType")) or s(sales.get("TaxType"))
                                or (tenant["accounts"].get(account) or {}).get("TaxType") or "NONE")
                if tax_type not in tenant["taxes"]:
                    raise Invalid("Tax rate must be valid.")
                tax_rate = Decimal(tenant["taxes"][tax_type])
                if li.get("DiscountAmount") is not None and not rate:
                    off = money(dec(li["DiscountAmount"], "DiscountAmount"))
                    gross = qty * unit
                    rate = (off * 100 / gross) if gross else ZERO
                net = line_amount(qty, unit, rate)
                tax = line_tax(net, tax_rate, amounts)
                line_id = s(li.get("LineItemID")).lower()
                lines.append({
                    "LineItemID": line_id if line_id in known else self.new_id("line"),
                    "Description": s(li.get("Description")) or (item or {}).get("Description")
                    or (item or {}).get("Name", ""),
                    "Quantity": str(qty), "UnitAmount": str(unit), "ItemCode": (item or {}).get("Code", ""),
                    "ItemID": (item or {}).get("ItemID", ""), "AccountCode": account, "TaxType": tax_type,
                    "TaxAmount": str(tax), "LineAmount": str(net),
                    "DiscountRate": str(rate.normalize()) if rate else "",
                    "Discount": str(money(qty * unit) - net),
                })
            except Invalid as exc:
                errors += [f"Line {n + 1}: {m}" if not m.startswith("Item code") else m for m in exc.messages]
        if errors:
            raise Invalid(*errors)
        return lines

    def _apply_invoice(self, tenant: dict[str, Any], el: dict[str, Any], existing: dict[str, Any] | None,
                       unitdp: int) -> dict[str, Any]:
        today = self.today()
        rec = dict(existing) if existing else {
            "InvoiceID": self.new_id("invoice"), "Type": "", "InvoiceNumber": "", "Reference": "", "ContactID": "",
            "Date": today, "DueDate": "", "LineAmountTypes": "Exclusive", "CurrencyCode": tenant["currencies"][0],
            "Status": "DRAFT", "LineItems": [], "AmountPaid": "0", "AmountCredited": "0", "FullyPaidOnDate": "",
            "SentToContact": False, "Payments": [],
        }
        errors: list[str] = []
        old_status = existing["Status"] if existing else None
        paid = existing is not None and (Decimal(existing["AmountPaid"]) > 0 or Decimal(existing["AmountCredited"]) > 0)
        if existing is not None and old_status in ("PAID", "VOIDED", "DELETED"):
            raise Invalid("This document cannot be edited as it has a payment or credit note allocated to it."
                          if old_status == "PAID" else "Invoice not of valid status for modification")
        changing = {k for k in ("Contact", "LineItems", "LineAmountTypes", "CurrencyCode", "Date") if k in el}
        if paid and changing:
            raise Invalid("This document cannot be edited as it has a payment or credit note allocated to it.")
        if existing is None or "Type" in el:
            kind = s(el.get("Type")).upper()
            if kind not in ("ACCREC", "ACCPAY"):
                errors.append("Invoice Type must be ACCREC or ACCPAY.")
            rec["Type"] = kind
        try:
            if existing is None or "Contact" in el:
                rec["ContactID"] = self._contact_ref(tenant, el.get("Contact"))["ContactID"]
        except Invalid as exc:
            errors += exc.messages
        for fld in ("Date", "DueDate"):
            if s(el.get(fld)):
                try:
                    rec[fld] = parse_day(el[fld], fld)
                except Invalid as exc:
                    errors += exc.messages
        rec["DueDate"] = rec["DueDate"] or rec["Date"]
        if "LineAmountTypes" in el:
            rec["LineAmountTypes"] = s(el["LineAmountTypes"])
        if rec["LineAmountTypes"] not in ("Exclusive", "Inclusive", "NoTax"):
            errors.append("LineAmountTypes must be Exclusive, Inclusive or NoTax.")
            rec["LineAmountTypes"] = "Exclusive"
        if "CurrencyCode" in el:
            code = s(el["CurrencyCode"]).upper()
            if code not in tenant["currencies"]:
                errors.append(f"The currency {code} has not been added to this organisation.")
            rec["CurrencyCode"] = code
        if "Reference" in el:
            rec["Reference"] = s(el["Reference"])
        if "SentToContact" in el:  # Xero marks only approved invoices as sent
            if bool(el["SentToContact"]) and status_of(el, rec) not in ("AUTHORISED", "PAID"):
                errors.append("Only approved invoices can be marked as sent.")
            else:
                rec["SentToContact"] = bool(el["SentToContact"])
        if s(el.get("InvoiceNumber")):
            rec["InvoiceNumber"] = s(el["InvoiceNumber"])
            if len(rec["InvoiceNumber"]) > 255:
                errors.append("InvoiceNumber must be 255 characters or fewer.")
            number = rec["InvoiceNumber"].casefold()
            if any(i["InvoiceNumber"].casefold() == number and i["InvoiceID"] != rec["InvoiceID"]
                   and i["Type"] == rec["Type"] for i in tenant["invoices"].values()):
                errors.append("Invoice # must be unique.")
        if "LineItems" in el or "LineAmountTypes" in el:
            given = el.get("LineItems")
            if given is None:  # a new tax mode recomputes the lines as they are
                given = [{**li, "DiscountRate": li["DiscountRate"] or 0} for li in rec["LineItems"]]
            try:
                rec["LineItems"] = self._lines(tenant, given, rec["LineItems"], rec["LineAmountTypes"], unitdp)
            except Invalid as exc:
                errors += exc.messages
        status = s(el.get("Status")).upper() or rec["Status"]
        allowed = {None: {"DRAFT", "SUBMITTED", "AUTHORISED"},
                   "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
                   "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
                   "AUTHORISED": {"AUTHORISED"} | (set() if paid else {"VOIDED"})}
        if status not in allowed.get(old_status, set()):
            errors.append("Invoice not of valid status for modification" if existing else
                          "Invoice not of valid status for creation")
        if status in ("SUBMITTED", "AUTHORISED"):
            if not rec["LineItems"]:
                errors.append("At least one line item must be specified.")
            if any(not li["AccountCode"] for li in rec["LineItems"]):
                errors.append("Account code must be specified for every line of an approved invoice.")
        rec["Status"] = status
        if errors:
            raise Invalid(*errors)
        self._totals(rec)
        if el.get("Total") is not None and dec(el["Total"], "Total") != Decimal(rec["Total"]):
            raise Invalid("The invoice total does not equal the sum of the lines.")
        if not rec["InvoiceNumber"] and rec["Type"] == "ACCREC":
            tenant["invoice_no"] += 1
            rec["InvoiceNumber"] = f"INV-{tenant['invoice_no']:04d}"
        self._touch(rec)
        tenant["invoices"][rec["InvoiceID"]] = rec
        return rec

    @staticmethod
    def _totals(rec: dict[str, Any]) -> None:
        lines = rec["LineItems"]
        subtotal, tax, total = invoice_sums(((Decimal(li["LineAmount"]), Decimal(li["TaxAmount"])) for li in lines),
                                            rec["LineAmountTypes"])
        rec["SubTotal"], rec["TotalTax"], rec["Total"] = str(subtotal), str(tax), str(total)
        rec["TotalDiscount"] = str(sum((Decimal(li["Discount"]) for li in lines), ZERO))
        rec["AmountDue"] = str(total - Decimal(rec["AmountPaid"]) - Decimal(rec["AmountCredited"]))

    def _invoice_out(self, tenant: dict[str, Any], i: dict[str, Any], unitdp: int, *, lines: bool = True) -> dict:
        contact = tenant["contacts"].get(i["ContactID"]) or {"ContactID": i["ContactID"], "Name": ""}
        unit_places = Decimal("0.0001") if unitdp == 4 else CENT
        out_lines = []
        for li in i["LineItems"] if lines else []:
            line: dict[str, Any] = {"LineItemID": li["LineItemID"], "Description": li["Description"],
                                    "Quantity": Decimal(li["Quantity"]),
                                    "UnitAmount": money(Decimal(li["UnitAmount"]), unit_places)}
            if li["ItemCode"]:
                line["ItemCode"] = li["ItemCode"]
                item = tenant["items"].get(li["ItemID"])
                if item is not None:
                    line["Item"] = {"ItemID": item["ItemID"], "Name": item["Name"], "Code": item["Code"]}
            if li["AccountCode"]:
                line["AccountCode"] = li["AccountCode"]
            line.update({"TaxType": li["TaxType"], "TaxAmount": money(Decimal(li["TaxAmount"])),
                         "LineAmount": money(Decimal(li["LineAmount"])), "Tracking": []})
            if li["DiscountRate"]:
                line["DiscountRate"] = money(Decimal(li["DiscountRate"]))
            out_lines.append(line)
        payments = [tenant["payments"][p] for p in i["Payments"] if p in tenant["payments"]]
        out: dict[str, Any] = {
            "Type": i["Type"], "InvoiceID": i["InvoiceID"], "InvoiceNumber": i["InvoiceNumber"],
            "Reference": i["Reference"],
            "Payments": [{"PaymentID": p["PaymentID"], "Date": msdate(day_ms(p["Date"])),
                          "Amount": money(Decimal(p["Amount"])), "CurrencyRate": Decimal("1.0"), "HasAccount": True,
                          "HasValidationErrors": False}
                         for p in payments if p["Status"] == "AUTHORISED"],
            "CreditNotes": [], "Prepayments": [], "Overpayments": [],
            "AmountDue": money(Decimal(i["AmountDue"])), "AmountPaid": money(Decimal(i["AmountPaid"])),
            "AmountCredited": money(Decimal(i["AmountCredited"])), "SentToContact": i["SentToContact"],
            "CurrencyRate": Decimal("1.0"), "IsDiscounted": any(li["DiscountRate"] for li in i["LineItems"]),
            "HasAttachments": False, "HasErrors": False,
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"], "Addresses": [], "Phones": [],
                        "ContactGroups": [], "ContactPersons": [], "HasValidationErrors": False},
            "DateString": f"{i['Date']}T00:00:00", "Date": msdate(day_ms(i["Date"])),
            "DueDateString": f"{i['DueDate']}T00:00:00", "DueDate": msdate(day_ms(i["DueDate"])),
            "Status": i["Status"], "LineAmountTypes": i["LineAmountTypes"], "LineItems": out_lines,
            "SubTotal": money(Decimal(i["SubTotal"])), "TotalTax": money(Decimal(i["TotalTax"])),
            "Total": money(Decimal(i["Total"])),
            "UpdatedDateUTC": msdate(int(i["_updated"] * 1000)), "CurrencyCode": i["CurrencyCode"],
        }
        if Decimal(i["TotalDiscount"]):
            out["TotalDiscount"] = money(Decimal(i["TotalDiscount"]))
        if i["FullyPaidOnDate"]:
            out["FullyPaidOnDate"] = msdate(day_ms(i["FullyPaidOnDate"]))
        return out

    @staticmethod
    def _failed_invoice(el: dict[str, Any], messages: list[str]) -> dict[str, Any]:
        return {**el, "InvoiceID": el.get("InvoiceID") or ZERO_ID, "HasErrors": True, "StatusAttributeString": "ERROR",
                "ValidationErrors": [{"Message": m} for m in messages]}

    @route("GET", rf"(?i:{API}/Invoices)")
    def list_invoices(self, req: Request) -> Response:
        """Paged answers carry line items; an unpaged list leaves them out."""
        tenant = self._gate(req, "invoices")
        unitdp = self._unitdp(req)
        records = sorted(tenant["invoices"].values(), key=lambda i: (i["Date"], i["_seq"]))

        def listed(param: str) -> set[str]:
            return {v.strip().strip('"').lower() for v in (req.arg(param) or "").split(",") if v.strip()}

        for param, fld in (("IDs", "InvoiceID"), ("InvoiceNumbers", "InvoiceNumber"), ("ContactIDs", "ContactID"),
                           ("Statuses", "Status")):
            wanted = listed(param)
            if wanted:
                records = [i for i in records if i[fld].lower() in wanted]
        lines = req.arg("page") is not None
        rows = [(i, self._invoice_out(tenant, i, unitdp, lines=lines)) for i in records]
        return self._list(req, rows, "Invoices", search=("InvoiceNumber", "Reference"))

    @route("GET", rf"(?i:{API}/Invoices/(?P<id>[^/]+))")
    def get_invoice(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        rec = self._find_invoice(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        return XeroResponse(200, self.envelope("Invoices", [self._invoice_out(tenant, rec, self._unitdp(req))]))

    @staticmethod
    def _find_invoice(tenant: dict[str, Any], key: str) -> dict[str, Any] | None:
        return tenant["invoices"].get(key.lower()) or next(
            (i for i in tenant["invoices"].values() if i["InvoiceNumber"].casefold() == key.casefold()), None)

    def _write_invoice(self, tenant: dict[str, Any], el: dict[str, Any], unitdp: int, *, create_only: bool) -> dict:
        existing = None
        if not create_only:
            if s(el.get("InvoiceID")):
                existing = tenant["invoices"].get(s(el["InvoiceID"]).lower())
                if existing is None:
                    raise Invalid("The document with the supplied id was not found for this endpoint.")
            elif s(el.get("InvoiceNumber")):  # the natural key
                existing = self._find_invoice(tenant, s(el["InvoiceNumber"]))
        rec = self._apply_invoice(tenant, el, existing, unitdp)
        return {**self._invoice_out(tenant, rec, unitdp), "StatusAttributeString": "OK"}

    @route("PUT", rf"(?i:{API}/Invoices)")
    def create_invoices(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Invoices", lambda el: self._write_invoice(tenant, el, unitdp, create_only=True),
            self._failed_invoice))

    @route("POST", rf"(?i:{API}/Invoices)")
    def save_invoices(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Invoices", lambda el: self._write_invoice(tenant, el, unitdp, create_only=False),
            self._failed_invoice))

    @route("POST", rf"(?i:{API}/Invoices/(?P<id>[^/]+))")
    def update_invoice(self, req: Request) -> Response:
        tenant = self._gate(req, "invoices")
        rec = self._find_invoice(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        unitdp = self._unitdp(req)
        return self._idempotent(req, tenant, lambda: self._bulk(
            req, tenant, "Invoices", lambda el: self._write_invoice(
                tenant, {**el, "InvoiceID": rec["InvoiceID"]}, unitdp, create_only=False), self._failed_invoice))

    @route("POST", rf"(?i:{API}/Invoices/(?P<id>[^/]+)/Email)")
    def email_invoice(self, req: Request) -> Response:
        """Email an approved sales invoice to its contact: 204, and SentToContact becomes true."""
        tenant = self._gate(req, "invoices")
        rec = self._find_invoice(tenant, req.params["id"])
        if rec is None:
            raise not_found()
        if rec["Type"] != "ACCREC" or rec["Status"] not in ("AUTHORISED", "PAID"):
            raise api_error("A validation exception occurred", [{"ValidationErrors": [
                {"Message": "Invoice must be approved before it can be emailed."}]}])
        rec["SentToContact"] = True
        rec["_updated"] = self.now()
        self.persist()
        return Response(204, b"", {})

