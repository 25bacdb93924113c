"""Seed data, and what a user does in Xero's web app (the tests' hands)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox import demo_data as demo_set
from app.sandbox.demo_data import COUNTRY_NAMES, PRODUCTS
from app.sandbox.xero.credits import XeroCredits
from app.sandbox.xero.shapes import Invalid


class XeroSeed(XeroCredits):
    """Demo data and web-app actions."""

    def seed(self, kind: str = "demo") -> None:
        self.reseed(kind, lambda: self.add_tenant("Crossledger Test Ltd"),
                    lambda: self._seed_demo(self.add_tenant("Crossledger Demo Ltd")))

    def _seed_demo(self, tid: str) -> None:
        data = demo_set.demo_data()  # looked up at call time (tests seed their own)
        stamp = self.now() - 86400 * 30
        bodies: list[dict[str, Any]] = []
        for c in data.companies:
            if not c.in_ledger:
                continue
            bodies.append({
                "Name": c.ledger_name, "EmailAddress": c.email if c.in_ledger == "email" else "",
                "TaxNumber": c.tax_id if c.in_ledger == "tax_id" else "", "DefaultCurrency": c.currency,
                "Addresses": [{"AddressType": "POBOX", "AddressLine1": c.address_line1 or "", "City": c.city or "",
                               "Region": c.region or "", "PostalCode": c.postal_code or "",
                               "Country": COUNTRY_NAMES.get(c.country or "", "")}],
                "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": c.phone or ""}],
            })
        bodies += [
            {"Name": "Walk-in Customer"},
            {"Name": "Margaret Hale", "FirstName": "Margaret", "LastName": "Hale", "EmailAddress": "m.hale@example.org",
             "Addresses": [{"AddressType": "POBOX", "AddressLine1": "4 Quay Street", "City": "Bristol",
                            "PostalCode": "BS1 4DB", "Country": "United Kingdom"}]},
            {"Name": "Old Mill Tearooms Ltd", "ContactStatus": "ARCHIVED",
             "ContactPersons": [{"FirstName": "Ivy", "LastName": "Kerr", "EmailAddress": "ivy@oldmilltearooms.co.uk",
                                 "IncludeInEmails": True}]},
            {"Name": "Kettlewell Parish Council", "TaxNumber": "GB980780684"},
        ]
        tenant = self.state["tenants"][tid]
        for n, body in enumerate(bodies):
            rec = self._apply_contact(tenant, body, None)
            rec["_updated"] = stamp + n * 60
        for n, (sku, name, price) in enumerate(PRODUCTS):
            rec = self._apply_item(tenant, {"Code": sku, "Name": name, "Description": name, "IsSold": True,
                                            "IsPurchased": False,
                                            "SalesDetails": {"UnitPrice": price, "AccountCode": "200",
                                                             "TaxType": "OUTPUT2"}}, None, unitdp=4)
            rec["_updated"] = stamp + n * 60

    # -- test helpers (what a user would do in Xero's web app) -----------------------------------
    def record_payment(self, invoice_id: str, amount: Decimal, date: str) -> str:
        """A customer paid: a payment into the bank account against the invoice; its PaymentID."""
        with self.lock:
            tenant = self._tenant_of("invoices", invoice_id)
            try:
                rec = self._apply_payment(tenant, {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"},
                                                   "Amount": amount, "Date": date})
            except Invalid as exc:
                raise ValueError("; ".join(exc.messages)) from None
            self.persist()
            return rec["PaymentID"]

    def delete_payment_record(self, payment_id: str) -> None:
        with self.lock:
            tenant = self._tenant_of("payments", payment_id)
            self._drop_payment(tenant, tenant["payments"][payment_id])
            self.persist()

    def add_contact(self, body: dict[str, Any], tenant_id: str | None = None) -> str:
        with self.lock:
            rec = self._apply_contact(self.state["tenants"][tenant_id or self.default_tenant], body, None)
            self.persist()
            return rec["ContactID"]

    def add_contacts(self, count: int, prefix: str = "Bulk Customer", tenant_id: str | None = None) -> list[str]:
        """Many contacts at once (paging tests); all stamped in the same second, as a bulk import is."""
        with self.lock:
            tenant = self.state["tenants"][tenant_id or self.default_tenant]
            ids = []
            for n in range(count):
                rec = self._apply_contact(tenant, {"Name": f"{prefix} {n:05d}",
                                                   "EmailAddress": f"c{n}@bulk.example"}, None)
                ids.append(rec["ContactID"])
            self.persist()
            return ids

    def user_edit(self, kind: str, record_id: str, **fields: Any) -> None:
        """Someone changed the record in Xero: new values, new UpdatedDateUTC."""
        with self.lock:
            collection = {"contact": "contacts", "item": "items", "invoice": "invoices"}[kind]
            tenant = self._tenant_of(collection, record_id)
            existing = tenant[collection][record_id]
            try:
                if kind == "contact":
                    self._apply_contact(tenant, fields, existing)
                elif kind == "item":
                    self._apply_item(tenant, fields, existing, unitdp=4)
                else:
                    self._apply_invoice(tenant, fields, existing, 4)
            except Invalid as exc:
                raise ValueError("; ".join(exc.messages)) from None
            self.persist()

    def user_merge_contacts(self, loser: str, survivor: str) -> None:
        """Someone merges two contacts in Xero (its web app; the API cannot): the loser's invoices, payments and
        credit notes move to the survivor, and the loser is archived with ``MergedToContactID``."""
        with self.lock:
            tenant = self._tenant_of("contacts", loser)
            for kind in ("invoices", "credit_notes"):
                for rec in tenant.get(kind, {}).values():
                    if rec["ContactID"] == loser:
                        rec["ContactID"] = survivor
                        self._touch(rec)
            gone = tenant["contacts"][loser]
            gone["ContactStatus"], gone["MergedToContactID"] = "ARCHIVED", survivor
            self._touch(gone)
            self._touch(tenant["contacts"][survivor])
            self.persist()

    def user_delete_item(self, item_id: str) -> None:
        with self.lock:
            self._tenant_of("items", item_id)["items"].pop(item_id)
            self.persist()

