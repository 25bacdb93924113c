"""Seed data, and what a user does in Zoho Books' own screens (the tests' hands)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox import demo_data as demo_set
from app.sandbox.base import Request, Response, route
from app.sandbox.demo_data import COUNTRY_NAMES, PRODUCTS
from app.sandbox.zohobooks.credits import ZohoBooksCredits


class ZohoBooksSeed(ZohoBooksCredits):
    """Demo data, web links and user actions."""

    def seed(self, kind: str = "demo") -> None:
        self.reseed(kind, lambda: self.add_organization("Crossledger Test Ltd", is_default=True),
                    lambda: self._seed_demo(self.add_organization("Crossledger Demo Ltd", is_default=True)))

    def _seed_demo(self, org: str) -> None:
        data = demo_set.demo_data()  # looked up at call time (tests seed their own)
        stamp = self.now() - 86400 * 30
        books = self.state["books"][org]
        currency_ids = {c["currency_code"]: c["currency_id"] for c in books["currencies"]}
        bodies: list[dict[str, Any]] = []
        for c in data.companies:
            if not c.in_ledger:
                continue
            person = {"first_name": "", "last_name": "", "is_primary_contact": True,
                      "email": c.email if c.in_ledger == "email" else "", "phone": c.phone or ""}
            bodies.append({
                "contact_name": c.ledger_name, "company_name": c.ledger_name, "contact_type": "customer",
                "customer_sub_type": "business", "currency_id": currency_ids.get(c.currency),
                "vat_reg_no": c.tax_id if c.in_ledger == "tax_id" else "",
                "billing_address": {"address": c.address_line1 or "", "city": c.city or "",
                                    "state": c.region or "", "zip": c.postal_code or "",
                                    "country": COUNTRY_NAMES.get(c.country or "", "")},
                "contact_persons": [person], "payment_terms": 30, "payment_terms_label": "Net 30",
            })
        bodies += [
            {"contact_name": "Walk-in Customer", "customer_sub_type": "individual", "contact_persons": []},
            {"contact_name": "Margaret Hale", "customer_sub_type": "individual",
             "contact_persons": [{"first_name": "Margaret", "last_name": "Hale", "email": "m.hale@example.org",
                                  "is_primary_contact": True}],
             "billing_address": {"address": "4 Quay Street", "city": "Bristol", "zip": "BS1 4DB",
                                 "country": "United Kingdom"}},
            {"contact_name": "Old Mill Tearooms Ltd", "company_name": "Old Mill Tearooms Ltd",
             "customer_sub_type": "business",
             "contact_persons": [{"first_name": "Ivy", "last_name": "Kerr", "email": "ivy@oldmilltearooms.co.uk",
                                  "is_primary_contact": True}]},
            {"contact_name": "Kettlewell Parish Council", "company_name": "Kettlewell Parish Council",
             "customer_sub_type": "business", "vat_reg_no": "GB980780684", "contact_persons": []},
        ]
        for n, body in enumerate(bodies):
            rec = self._contact_from(org, body, None)
            rec["_created"] = rec["_lmt"] = stamp + n * 60
            self._store_contact(org, rec)
        books["contacts"][self._find_contact(org, "Old Mill Tearooms Ltd")["contact_id"]]["status"] = "inactive"
        for n, (sku, name, price) in enumerate(PRODUCTS):
            item = self._item_from(org, {"name": name, "sku": sku, "rate": price,
                                         "product_type": "goods" if sku.startswith("HW") else "service"}, None)
            item["_created"] = item["_lmt"] = stamp + n * 60
            books["items"][item["item_id"]] = item

    # -- the web app (links only) -----------------------------------------------------------
    @route("GET", r"/app/(?P<org>\d+)")
    def web_app(self, req: Request) -> Response:
        org = self.state["orgs"].get(req.params["org"], {}).get("name", "Zoho Books")
        page = (f"<!doctype html><title>{org} – Zoho Books (sandbox)</title>"
                f"<p>{org}: the record is named in this page's #fragment.</p>")
        return Response(200, page, content_type="text/html")

    # -- test helpers -----------------------------------------------------------------------
    def _org_of(self, kind: str, record_id: str) -> str:
        for org, books in self.state["books"].items():
            if record_id in books[kind]:
                return org
        raise KeyError(f"no {kind[:-1]} {record_id}")

    def record_payment(self, invoice_id: str, amount: Decimal, date: str) -> str:
        """A customer pays (part of) an invoice, as entered in Zoho's UI; returns the payment id."""
        with self.lock:
            org = self._org_of("invoices", invoice_id)
            inv = self._books(org)["invoices"][invoice_id]
            if inv["_state"] == "draft":  # recording a payment marks a draft invoice as sent
                inv["_state"] = "sent"
            rec = self._new_payment(org, {"customer_id": inv["customer_id"], "amount": Decimal(amount),
                                          "date": date, "payment_mode": "banktransfer",
                                          "invoices": [{"invoice_id": invoice_id, "amount_applied": Decimal(amount)}]})
            self.persist()
            return rec["payment_id"]

    def add_contact(self, body: dict[str, Any], org: str | None = None) -> str:
        """Someone adds a contact in Zoho's UI (same validation as the API); returns its id."""
        with self.lock:
            org = org or self.state["default_org"]
            rec = self._contact_from(org, body, None)
            self._store_contact(org, rec)
            self.persist()
            return rec["contact_id"]

    def user_edit(self, kind: str, record_id: str, **fields: Any) -> None:
        """Someone edits a record in Zoho's UI (top-level fields only; bumps last_modified_time)."""
        with self.lock:
            org = self._org_of(kind, record_id)
            rec = self._books(org)[kind][record_id]
            rec.update(fields)
            rec["_lmt"] = self.now()
            if kind == "contacts":
                self._store_contact(org, rec)
            self.persist()

    def user_delete(self, kind: str, record_id: str) -> None:
        """Someone deletes a record in Zoho's UI: it is gone, with no tombstone."""
        with self.lock:
            org = self._org_of(kind, record_id)
            del self._books(org)[kind][record_id]
            self.persist()

