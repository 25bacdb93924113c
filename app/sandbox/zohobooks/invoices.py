"""Zoho Books invoices: lines, Zoho's rounding, statuses stored and computed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.zohobooks.items import ZohoBooksItems
from app.sandbox.zohobooks.shapes import _PCT, API, HUNDRED, ZERO, bad_param, dec, invalid, money, ok, s, zerr


class ZohoBooksInvoices(ZohoBooksItems):
    """The invoices endpoints."""

    # -- invoices ---------------------------------------------------------------------------
    def _invoice(self, org: str, invoice_id: str) -> dict[str, Any]:
        rec = self._books(org)["invoices"].get(invoice_id)
        if rec is None:
            raise zerr(404, 1002, "Invoice does not exist.")
        return rec

    def _invoice_from(self, org: str, body: dict[str, Any], existing: dict[str, Any] | None,
                      *, own_number: bool) -> dict[str, Any]:
        books = self._books(org)
        now = self.now()
        rec: dict[str, Any] = dict(existing) if existing else {
            "invoice_id": self.new_id(), "_state": "draft", "reference_number": "", "notes": "", "terms": "",
            "is_inclusive_tax": False, "discount_type": "item_level", "payment_terms": 0,
            "payment_terms_label": "Due on Receipt", "_created": now, "_paid": "0"}
        if existing is not None and existing["_state"] == "void":
            raise zerr(400, 4, "Void invoices cannot be edited.")
        if existing is None or "customer_id" in body:
            customer = books["contacts"].get(s(body.get("customer_id")))
            if customer is None or customer["contact_type"] != "customer":
                raise zerr(400, 2, "Invalid value passed for customer_id")
            if existing and existing["customer_id"] != customer["contact_id"] and Decimal(existing["_paid"]):
                raise invalid("customer_id")
            rec["customer_id"] = customer["contact_id"]
            rec["currency_id"] = customer["currency_id"]
            if existing is None:
                rec["payment_terms"] = customer["payment_terms"]
                rec["payment_terms_label"] = customer["payment_terms_label"]
        if existing is None:
            if own_number:
                number = s(body.get("invoice_number")).strip()
                if not number:
                    raise invalid("invoice_number")
            else:
                books["numbers"]["invoice"] += 1
                number = f"INV-{books['numbers']['invoice']:06d}"
            rec["invoice_number"] = number
        elif "invoice_number" in body and s(body["invoice_number"]).strip():
            rec["invoice_number"] = s(body["invoice_number"]).strip()
        number = rec["invoice_number"].casefold()
        if any(i["invoice_number"].casefold() == number and i["invoice_id"] != rec["invoice_id"]
               for i in books["invoices"].values()):
            raise zerr(400, 1001, f"Invoice number {rec['invoice_number']} already exists")
        if "reference_number" in body:
            ref = s(body["reference_number"]).strip()
            if len(ref) > 100:
                raise invalid("reference_number")
            rec["reference_number"] = ref
        for field in ("notes", "terms"):
            if field in body:
                rec[field] = s(body[field])
        if "is_inclusive_tax" in body:
            rec["is_inclusive_tax"] = bool(body["is_inclusive_tax"])
        if "discount_type" in body:
            if body["discount_type"] not in ("item_level", "entity_level"):
                raise invalid("discount_type")
            rec["discount_type"] = body["discount_type"]
        for field in ("date", "due_date"):
            if body.get(field):
                try:
                    dt.date.fromisoformat(s(body[field]))
                except ValueError:
                    raise invalid(field) from None
                rec[field] = s(body[field])
        rec.setdefault("date", self.today(org))
        if not rec.get("due_date") or (existing is None and not body.get("due_date")):
            rec["due_date"] = (dt.date.fromisoformat(rec["date"]) + dt.timedelta(days=rec["payment_terms"])).isoformat()
        if rec["due_date"] < rec["date"]:
            raise invalid("due_date")
        if existing is None or "line_items" in body:
            rec["line_items"] = self._lines(org, body.get("line_items"), rec.get("line_items") or [])
        self._totals(org, rec)
        if Decimal(rec["_paid"]) > Decimal(rec["total"]):
            raise zerr(400, 4, "The invoice total cannot be less than the payments made.")
        rec["_lmt"] = now
        return rec

    def _lines(self, org: str, given: Any, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not isinstance(given, list) or not given:
            raise invalid("line_items")
        books = self._books(org)
        known = {li["line_item_id"]: li for li in current}
        out = []
        for n, raw in enumerate(given, 1):
            if not isinstance(raw, dict):
                raise invalid("line_items")
            line = dict(known.get(s(raw.get("line_item_id")), {})) or {"line_item_id": self.new_id()}
            item = None
            if raw.get("item_id"):
                item = books["items"].get(s(raw["item_id"]))
                if item is None:
                    raise zerr(400, 2, "Invalid value passed for item_id")
            line["item_id"] = item["item_id"] if item else s(raw.get("item_id") or line.get("item_id"))
            line["name"] = s(raw.get("name") or (item["name"] if item else line.get("name")))
            if not line["name"] and not raw.get("description"):
                raise invalid("name")
            line["description"] = s(raw.get("description", line.get("description", "")))
            rate = raw.get("rate", line.get("rate", item["rate"] if item else None))
            if rate is None:
                raise invalid("rate")
            line["rate"] = str(dec(rate, "rate"))
            qty = dec(raw.get("quantity", line.get("quantity", 1)), "quantity")
            if qty <= 0:
                raise invalid("quantity")
            line["quantity"] = str(qty)
            discount = raw.get("discount", line.get("discount", 0))
            if isinstance(discount, str) and _PCT.match(discount):
                pct = Decimal(_PCT.match(discount).group(1))
                if not ZERO <= pct <= HUNDRED:
                    raise invalid("discount")
                line["discount"] = f"{pct}%"
            else:
                amount = dec(discount or 0, "discount")
                if amount < 0:
                    raise invalid("discount")
                line["discount"] = str(amount)
            tax_id = raw.get("tax_id", line.get("tax_id", ""))
            line["tax_id"] = self._tax(org, tax_id)["tax_id"] if tax_id else ""
            line["unit"] = s(raw.get("unit", line.get("unit", item["unit"] if item else "")))
            line["item_order"] = n
            out.append(line)
        return out

    def _totals(self, org: str, rec: dict[str, Any]) -> None:
        """Zoho's rounding: each line to the price precision, tax once per rate on the invoice."""
        by_rate: dict[Decimal, Decimal] = {}
        names: dict[Decimal, str] = {}
        amount = ZERO
        for line in rec["line_items"]:
            gross = Decimal(line["quantity"]) * Decimal(line["rate"])
            pct = _PCT.match(line["discount"])
            discount = gross * Decimal(pct.group(1)) / HUNDRED if pct else Decimal(line["discount"])
            total = money(gross - discount)
            if total < 0:
                raise invalid("discount")
            line["discount_amount"] = str(money(discount))
            line["item_total"] = str(total)
            rate = Decimal(self._tax(org, line["tax_id"])["tax_percentage"]) if line["tax_id"] else ZERO
            if line["tax_id"]:
                names[rate] = self._tax(org, line["tax_id"])["tax_name"]
            by_rate[rate] = by_rate.get(rate, ZERO) + total
            amount += total
        taxes = []
        tax_total = ZERO
        for rate, net in by_rate.items():
            if not rate:
                continue
            if rec["is_inclusive_tax"]:
                tax = money(net - net * HUNDRED / (HUNDRED + rate))
            else:
                tax = money(net * rate / HUNDRED)
            tax_total += tax
            taxes.append({"tax_name": f"{names.get(rate, 'Tax')} ({rate.normalize()}%)", "tax_amount": str(tax)})
        rec["taxes"] = taxes
        rec["sub_total"] = str(amount - tax_total if rec["is_inclusive_tax"] else amount)
        rec["tax_total"] = str(tax_total)
        rec["total"] = str(amount if rec["is_inclusive_tax"] else amount + tax_total)
        rec["_balance"] = str(Decimal(rec["total"]) - Decimal(rec["_paid"]) - Decimal(rec.get("_credited", "0")))

    def _status(self, org: str, rec: dict[str, Any]) -> str:
        """Stored draft/sent/void; paid, partially paid and overdue are computed, as Zoho does."""
        if rec["_state"] in ("draft", "void"):
            return rec["_state"]
        balance, paid = Decimal(rec["_balance"]), Decimal(rec["_paid"])
        if balance <= 0:
            return "paid"
        if rec["due_date"] < self.today(org):
            return "overdue"
        if paid > 0:
            return "partially_paid"
        return "sent"

    def _invoice_summary(self, org: str, i: dict[str, Any]) -> dict[str, Any]:
        customer = self._books(org)["contacts"].get(i["customer_id"]) or {}
        cur = self._currency(org, i["currency_id"])
        return {
            "invoice_id": i["invoice_id"], "ach_payment_initiated": False,
            "customer_name": customer.get("contact_name", ""), "customer_id": i["customer_id"],
            "status": self._status(org, i), "invoice_number": i["invoice_number"],
            "reference_number": i["reference_number"], "date": i["date"], "due_date": i["due_date"],
            "currency_id": i["currency_id"], "currency_code": cur["currency_code"], "exchange_rate": Decimal(1),
            "total": Decimal(i["total"]), "balance": Decimal(i["_balance"]),
            "created_time": self.ts(i["_created"], org), "last_modified_time": self.ts(i["_lmt"], org),
        }

    def _invoice_detail(self, org: str, i: dict[str, Any]) -> dict[str, Any]:
        lines = []
        for li in i["line_items"]:
            tax = self._tax(org, li["tax_id"]) if li["tax_id"] else None
            pct = _PCT.match(li["discount"])
            lines.append({
                "line_item_id": li["line_item_id"], "item_id": li["item_id"], "name": li["name"],
                "description": li["description"], "item_order": li["item_order"], "rate": Decimal(li["rate"]),
                "quantity": Decimal(li["quantity"]), "unit": li["unit"],
                "discount": li["discount"] if pct else Decimal(li["discount"]),
                "discount_amount": Decimal(li["discount_amount"]), "tax_id": li["tax_id"],
                "tax_name": tax["tax_name"] if tax else "",
                "tax_percentage": Decimal(tax["tax_percentage"]) if tax else ZERO,
                "item_total": Decimal(li["item_total"]),
            })
        org_rec = self.state["orgs"][org]
        return {
            **self._invoice_summary(org, i),
            "payment_terms": i["payment_terms"], "payment_terms_label": i["payment_terms_label"],
            "is_inclusive_tax": i["is_inclusive_tax"], "discount_type": i["discount_type"],
            "is_discount_before_tax": True, "line_items": lines, "sub_total": Decimal(i["sub_total"]),
            "tax_total": Decimal(i["tax_total"]),
            "taxes": [{"tax_name": t["tax_name"], "tax_amount": Decimal(t["tax_amount"])} for t in i["taxes"]],
            "payment_made": Decimal(i["_paid"]), "credits_applied": Decimal(i.get("_credited", "0")),
            "write_off_amount": ZERO,
            "price_precision": org_rec["price_precision"], "notes": i["notes"], "terms": i["terms"],
            "invoice_url": f"{self.public_url}/app/{org}#/invoices/{i['invoice_id']}",
        }

    @route("GET", API + r"/invoices")
    def list_invoices(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        status_of = lambda i: self._status(org, i)  # noqa: E731 - a small getter
        wanted = req.arg("status")
        if wanted is not None and wanted not in ("draft", "sent", "overdue", "paid", "void", "unpaid",
                                                 "partially_paid", "viewed"):
            raise bad_param("status")
        rows = list(self._books(org)["invoices"].values())
        if wanted == "unpaid":
            rows = [r for r in rows if status_of(r) in ("sent", "overdue", "partially_paid")]
        elif wanted is not None:
            rows = [r for r in rows if status_of(r) == wanted]
        for name, test in (("date_start", lambda r, v: r["date"] >= v), ("date_end", lambda r, v: r["date"] <= v),
                           ("date_before", lambda r, v: r["date"] < v), ("date_after", lambda r, v: r["date"] > v)):
            value = req.arg(name)
            if value is not None:
                rows = [r for r in rows if test(r, value)]
        statuses = {"Status.All": lambda i: True}
        for word in ("Draft", "Sent", "Overdue", "Paid", "Void", "PartiallyPaid"):
            statuses[f"Status.{word}"] = (lambda w: lambda i: status_of(i).replace("_", "") == w.lower())(word)
        statuses["Status.Unpaid"] = lambda i: status_of(i) in ("sent", "overdue", "partially_paid")
        return self._list(
            req, org, rows, key="invoices", id_key="invoice_id", report="Invoices",
            texts={"invoice_number": lambda i: i["invoice_number"], "reference_number": lambda i: i["reference_number"],
                   "customer_name": lambda i: self._books(org)["contacts"].get(i["customer_id"], {}).get(
                       "contact_name", "")},
            exact={"customer_id": lambda i: i["customer_id"], "date": lambda i: i["date"],
                   "due_date": lambda i: i["due_date"]},
            statuses=statuses, default_filter="Status.All",
            sorts={"customer_name": lambda i: self._invoice_summary(org, i)["customer_name"].casefold(),
                   "invoice_number": lambda i: i["invoice_number"], "date": lambda i: i["date"],
                   "due_date": lambda i: i["due_date"], "total": lambda i: Decimal(i["total"]),
                   "balance": lambda i: Decimal(i["_balance"]), "created_time": lambda i: int(i["_created"]),
                   "last_modified_time": lambda i: int(i["_lmt"])},
            default_sort=("created_time", "D"), out=lambda i: self._invoice_summary(org, i))

    @route("POST", API + r"/invoices")
    def create_invoice(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        own = (req.arg("ignore_auto_number_generation") or "").lower() == "true"
        rec = self._invoice_from(org, self._body(req), None, own_number=own)
        self._books(org)["invoices"][rec["invoice_id"]] = rec
        self.persist()
        return ok({"invoice": self._invoice_detail(org, rec)}, 201, "The invoice has been created.")

    @route("GET", API + r"/invoices/(?P<id>\d+)")
    def get_invoice(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        return ok({"invoice": self._invoice_detail(org, self._invoice(org, req.params["id"]))})

    @route("PUT", API + r"/invoices/(?P<id>\d+)")
    def update_invoice(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        rec = self._invoice_from(org, self._body(req), self._invoice(org, req.params["id"]), own_number=False)
        self._books(org)["invoices"][rec["invoice_id"]] = rec
        self.persist()
        return ok({"invoice": self._invoice_detail(org, rec)}, 200, "Invoice information has been updated.")

    @route("DELETE", API + r"/invoices/(?P<id>\d+)")
    def delete_invoice(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        rec = self._invoice(org, req.params["id"])
        if Decimal(rec["_paid"]):
            raise zerr(400, 4, "Invoices with payments cannot be deleted. Delete the payments first.")
        del self._books(org)["invoices"][rec["invoice_id"]]
        self.persist()
        return ok({}, 200, "The invoice has been deleted.")

    @route("POST", API + r"/invoices/(?P<id>\d+)/status/(?P<to>sent|void|draft)")
    def invoice_status(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        rec = self._invoice(org, req.params["id"])
        to = req.params["to"]
        if to == "void" and Decimal(rec["_paid"]):
            raise zerr(400, 4, "Invoices with payments cannot be voided. Delete the payments first.")
        if to == "void" and Decimal(rec.get("_credited", "0")):
            raise zerr(400, 4, "Invoices with credits applied cannot be voided. Remove the credits first.")
        if to == "draft" and (rec["_state"] == "void" or Decimal(rec["_paid"])):
            raise zerr(400, 4, "Only unpaid invoices can be changed back to draft.")
        if to == "sent" and rec["_state"] == "void":
            raise zerr(400, 4, "Void invoices cannot be marked as sent.")
        rec["_state"], rec["_lmt"] = to, self.now()
        self.persist()
        return ok({}, 200, f"Invoice status has been changed to {to.capitalize()}.")

    @route("GET", API + r"/invoices/(?P<id>\d+)/payments")
    def invoice_payments(self, req: Request) -> Response:
        org = self._gate(req, "invoices")
        inv = self._invoice(org, req.params["id"])
        out = []
        for p in self._books(org)["payments"].values():
            for app in p["invoices"]:
                if app["invoice_id"] == inv["invoice_id"]:
                    out.append({"payment_id": p["payment_id"], "payment_number": p["payment_number"],
                                "invoice_id": inv["invoice_id"], "invoice_payment_id": app["invoice_payment_id"],
                                "payment_mode": p["payment_mode"], "description": p["description"],
                                "date": p["date"], "reference_number": p["reference_number"],
                                "exchange_rate": Decimal(1), "amount": Decimal(app["amount_applied"]),
                                "bank_charges": ZERO})
        return ok({"payments": out})

