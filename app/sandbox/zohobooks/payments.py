"""Zoho Books customer payments applied to invoices."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from app.sandbox.base import Request, Response, route
from app.sandbox.zohobooks.invoices import ZohoBooksInvoices
from app.sandbox.zohobooks.shapes import API, ZERO, dec, invalid, money, ok, s, zerr


class ZohoBooksPayments(ZohoBooksInvoices):
    """The customerpayments endpoints."""

    # -- customer payments ------------------------------------------------------------------
    def _payment(self, org: str, payment_id: str) -> dict[str, Any]:
        rec = self._books(org)["payments"].get(payment_id)
        if rec is None:
            raise zerr(404, 1002, "Payment does not exist.")
        return rec

    def _new_payment(self, org: str, body: dict[str, Any]) -> dict[str, Any]:
        books = self._books(org)
        customer = books["contacts"].get(s(body.get("customer_id")))
        if customer is None:
            raise zerr(400, 2, "Invalid value passed for customer_id")
        amount = dec(body.get("amount"), "amount") if body.get("amount") is not None else None
        if amount is None or amount <= 0:
            raise invalid("amount")
        amount = money(amount)
        date = s(body.get("date")) or self.today(org)
        try:
            dt.date.fromisoformat(date)
        except ValueError:
            raise invalid("date") from None
        applications = body.get("invoices") or []
        if not isinstance(applications, list):
            raise invalid("invoices")
        applied = ZERO
        plan = []
        for app in applications:
            inv = books["invoices"].get(s(app.get("invoice_id"))) if isinstance(app, dict) else None
            if inv is None or inv["customer_id"] != customer["contact_id"]:
                raise zerr(400, 2, "Invalid value passed for invoice_id")
            if inv["_state"] in ("draft", "void"):
                raise zerr(400, 4, f"Payments cannot be recorded for {inv['_state']} invoices.")
            part = money(dec(app.get("amount_applied"), "amount_applied"))
            if part <= 0 or part > Decimal(inv["_balance"]):
                raise zerr(400, 4, "The amount applied exceeds the balance due of the invoice.")
            applied += part
            plan.append((inv, part))
        if applied > amount:
            raise zerr(400, 4, "The amount applied to invoices exceeds the payment amount.")
        now = self.now()
        books["numbers"]["payment"] += 1
        rec = {
            "payment_id": self.new_id(), "payment_number": str(books["numbers"]["payment"]),
            "customer_id": customer["contact_id"], "payment_mode": s(body.get("payment_mode")) or "cash",
            "amount": str(amount), "unused_amount": str(amount - applied), "date": date,
            "reference_number": s(body.get("reference_number")), "description": s(body.get("description")),
            "currency_id": customer["currency_id"], "invoices": [], "_created": now, "_lmt": now,
        }
        for inv, part in plan:
            inv["_paid"] = str(Decimal(inv["_paid"]) + part)
            inv["_balance"] = str(Decimal(inv["total"]) - Decimal(inv["_paid"]) - Decimal(inv.get("_credited", "0")))
            inv["_lmt"] = now
            rec["invoices"].append({"invoice_payment_id": self.new_id(), "invoice_id": inv["invoice_id"],
                                    "amount_applied": str(part)})
        books["payments"][rec["payment_id"]] = rec
        return rec

    def _payment_summary(self, org: str, p: dict[str, Any]) -> dict[str, Any]:
        books = self._books(org)
        numbers = [books["invoices"][a["invoice_id"]]["invoice_number"] for a in p["invoices"]
                   if a["invoice_id"] in books["invoices"]]
        return {
            "payment_id": p["payment_id"], "payment_number": p["payment_number"],
            "invoice_numbers": ",".join(numbers), "date": p["date"], "payment_mode": p["payment_mode"],
            "amount": Decimal(p["amount"]), "bcy_amount": Decimal(p["amount"]),
            "unused_amount": Decimal(p["unused_amount"]), "reference_number": p["reference_number"],
            "description": p["description"], "customer_id": p["customer_id"],
            "customer_name": books["contacts"].get(p["customer_id"], {}).get("contact_name", ""),
            "currency_code": self._currency(org, p["currency_id"])["currency_code"],
            "created_time": self.ts(p["_created"], org), "last_modified_time": self.ts(p["_lmt"], org),
        }

    def _payment_detail(self, org: str, p: dict[str, Any]) -> dict[str, Any]:
        books = self._books(org)
        out = self._payment_summary(org, p)
        del out["invoice_numbers"], out["bcy_amount"]
        apps = []
        for a in p["invoices"]:
            inv = books["invoices"].get(a["invoice_id"])
            apps.append({"invoice_payment_id": a["invoice_payment_id"], "invoice_id": a["invoice_id"],
                         "invoice_number": inv["invoice_number"] if inv else "", "date": inv["date"] if inv else "",
                         "total": Decimal(inv["total"]) if inv else ZERO,
                         "balance_amount": Decimal(inv["_balance"]) if inv else ZERO,
                         "amount_applied": Decimal(a["amount_applied"])})
        return {**out, "exchange_rate": Decimal(1), "bank_charges": ZERO, "invoices": apps}

    @route("GET", API + r"/customerpayments")
    def list_payments(self, req: Request) -> Response:
        org = self._gate(req, "customerpayments")
        contacts = self._books(org)["contacts"]
        return self._list(
            req, org, list(self._books(org)["payments"].values()), key="customerpayments", id_key="payment_id",
            report="Payments Received",
            texts={"customer_name": lambda p: contacts.get(p["customer_id"], {}).get("contact_name", ""),
                   "reference_number": lambda p: p["reference_number"], "notes": lambda p: p["description"]},
            exact={"customer_id": lambda p: p["customer_id"], "date": lambda p: p["date"],
                   "payment_mode": lambda p: p["payment_mode"]},
            statuses={"PaymentMode.All": lambda p: True}, default_filter="PaymentMode.All",
            sorts={"customer_name": lambda p: contacts.get(p["customer_id"], {}).get("contact_name", "").casefold(),
                   "payment_number": lambda p: int(p["payment_number"]), "payment_mode": lambda p: p["payment_mode"],
                   "date": lambda p: p["date"], "reference_number": lambda p: p["reference_number"],
                   "amount": lambda p: Decimal(p["amount"]), "created_time": lambda p: int(p["_created"]),
                   "last_modified_time": lambda p: int(p["_lmt"])},
            default_sort=("date", "D"), out=lambda p: self._payment_summary(org, p))

    @route("POST", API + r"/customerpayments")
    def create_payment(self, req: Request) -> Response:
        org = self._gate(req, "customerpayments")
        rec = self._new_payment(org, self._body(req))
        self.persist()
        return ok({"payment": self._payment_detail(org, rec)}, 201, "The payment has been created.")

    @route("GET", API + r"/customerpayments/(?P<id>\d+)")
    def get_payment(self, req: Request) -> Response:
        org = self._gate(req, "customerpayments")
        return ok({"payment": self._payment_detail(org, self._payment(org, req.params["id"]))})

    @route("DELETE", API + r"/customerpayments/(?P<id>\d+)")
    def delete_payment(self, req: Request) -> Response:
        org = self._gate(req, "customerpayments")
        rec = self._payment(org, req.params["id"])
        self._drop_payment(org, rec)
        self.persist()
        return ok({}, 200, "The payment has been deleted.")

    def _drop_payment(self, org: str, rec: dict[str, Any]) -> None:
        books = self._books(org)
        now = self.now()
        for app in rec["invoices"]:
            inv = books["invoices"].get(app["invoice_id"])
            if inv:
                inv["_paid"] = str(Decimal(inv["_paid"]) - Decimal(app["amount_applied"]))
                owed = Decimal(inv["total"]) - Decimal(inv["_paid"]) - Decimal(inv.get("_credited", "0"))
                inv["_balance"] = str(owed)
                inv["_lmt"] = now
        del books["payments"][rec["payment_id"]]

