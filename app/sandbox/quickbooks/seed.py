"""Seed data, and what a user does in QuickBooks' own screens (the tests' hands)."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

from app.sandbox import demo_data as demo_set
from app.sandbox.demo_data import PRODUCTS
from app.sandbox.quickbooks.batch import QboBatch
from app.sandbox.quickbooks.schema import DEFAULT_REALM


class QboSeed(QboBatch):
    """Demo data and user actions."""

    def seed(self, kind: str = "demo") -> None:
        self.reseed(kind, lambda: self.add_company("Crossledger Test Inc.", realm=DEFAULT_REALM),
                    lambda: self._seed_demo(self.add_company("Crossledger Demo Inc.", realm=DEFAULT_REALM)))

    def _seed_demo(self, realm: str) -> None:
        data = demo_set.demo_data()  # looked up at call time (tests seed their own)
        co = self.company(realm)
        stamp = self.now() - 86400 * 20
        n = 0

        def at(rec_id: str, entity: str, created: bool = True) -> None:
            nonlocal n
            rec = co["entities"][entity][rec_id]
            rec["_updated"] = stamp + n * 60
            if created:
                rec["_created"] = rec["_updated"]
            n += 1

        for c in data.companies:
            if not c.in_ledger:
                continue
            body: dict[str, Any] = {
                "DisplayName": c.ledger_name, "CompanyName": c.ledger_name,
                "BillAddr": {k: v for k, v in (("Line1", c.address_line1), ("City", c.city),
                                               ("CountrySubDivisionCode", c.region), ("PostalCode", c.postal_code),
                                               ("Country", c.country)) if v},
                "CurrencyRef": {"value": c.currency},
            }
            if c.in_ledger == "email" and c.email:
                body["PrimaryEmailAddr"] = {"Address": c.email}
            if c.in_ledger == "tax_id" and c.tax_id:
                body["PrimaryTaxIdentifier"] = c.tax_id
            if c.phone:
                body["PrimaryPhone"] = {"FreeFormNumber": c.phone}
            at(self._write(co, "Customer", body)["Id"], "Customer")
        extras = [
            {"DisplayName": "Harbourview Dental Group", "CompanyName": "Harbourview Dental Group",
             "PrimaryEmailAddr": {"Address": "frontdesk@harbourviewdental.example"},
             "BillAddr": {"Line1": "18 Pier Road", "City": "Seattle", "CountrySubDivisionCode": "WA",
                          "PostalCode": "98101", "Country": "US"}},
            {"DisplayName": "Diego Ramírez", "GivenName": "Diego", "FamilyName": "Ramírez",
             "PrimaryEmailAddr": {"Address": "diego.ramirez@example.org"},
             "PrimaryPhone": {"FreeFormNumber": "+1 415 555 0142"}},
            {"DisplayName": "Ottoline's Flowers", "CompanyName": "Ottoline's Flowers",
             "BillAddr": {"Line1": "4 Market Street", "City": "Portland", "CountrySubDivisionCode": "OR",
                          "PostalCode": "97204", "Country": "US"}},
            {"DisplayName": "Quayside Rowing Club", "CompanyName": "Quayside Rowing Club",
             "PrimaryEmailAddr": {"Address": "treasurer@quaysiderowing.example"},
             "CurrencyRef": {"value": "GBP"},
             "BillAddr": {"Line1": "The Boathouse", "City": "Bristol", "PostalCode": "BS1 4DB", "Country": "GB"}},
            {"DisplayName": "Lumen Bicycle Repair", "CompanyName": "Lumen Bicycle Repair"},
        ]
        ids = [self._write(co, "Customer", body)["Id"] for body in extras]
        for cid in ids:
            at(cid, "Customer")
        self._write(co, "Customer", {"Id": ids[-1], "SyncToken": "0", "sparse": True, "Active": False})
        at(ids[-1], "Customer", created=False)
        vendor = self._name_record(co, "Vendor", "Northwind Office Supplies")
        employee = self._name_record(co, "Employee", "Alex Ledger")
        at(vendor, "Vendor")
        at(employee, "Employee")
        item_ids: dict[str, str] = {}
        for sku, name, price in PRODUCTS:
            hardware = sku.startswith("HW")
            item = self._write(co, "Item", {"Name": name, "Sku": sku, "UnitPrice": price, "Description": name,
                                            "Type": "NonInventory" if hardware else "Service",
                                            "IncomeAccountRef": {"value": "79" if hardware else "1"}})
            item_ids[sku] = item["Id"]
            at(item["Id"], "Item")
        today = dt.datetime.fromtimestamp(self.now(), self._tz()).date()
        paid = self._write(co, "Invoice", {
            "CustomerRef": {"value": ids[0]}, "TxnDate": (today - dt.timedelta(days=40)).isoformat(),
            "DueDate": (today - dt.timedelta(days=10)).isoformat(),
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("250.00"), "Description": "Consulting",
                      "SalesItemLineDetail": {"ItemRef": {"value": item_ids["CONS-HR"]}, "Qty": Decimal(2),
                                              "UnitPrice": Decimal("125.00")}}]})
        at(paid["Id"], "Invoice")
        overdue = self._write(co, "Invoice", {
            "CustomerRef": {"value": ids[2]}, "TxnDate": (today - dt.timedelta(days=45)).isoformat(),
            "DueDate": (today - dt.timedelta(days=15)).isoformat(),
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("249.50"), "Description": "Starter kit",
                      "SalesItemLineDetail": {"ItemRef": {"value": item_ids["HW-KIT"]}, "Qty": Decimal(1),
                                              "UnitPrice": Decimal("249.50")}}]})
        at(overdue["Id"], "Invoice")
        pay = self._write(co, "Payment", {"CustomerRef": {"value": ids[0]}, "TotalAmt": Decimal("250.00"),
                                          "TxnDate": (today - dt.timedelta(days=12)).isoformat(),
                                          "Line": [{"Amount": Decimal("250.00"),
                                                    "LinkedTxn": [{"TxnId": paid["Id"], "TxnType": "Invoice"}]}]})
        at(pay["Id"], "Payment")
        at(paid["Id"], "Invoice", created=False)

    def _name_record(self, co: dict[str, Any], entity: str, name: str) -> str:
        """A vendor or employee: only there to hold a display name (uniqueness spans them)."""
        self._check_name_free(co, name, None)
        rec_id = self._new_id(co, entity)
        now = self.now()
        co["entities"][entity][rec_id] = {"Id": rec_id, "SyncToken": "0", "DisplayName": name,
                                          "PrintOnCheckName": name, "Active": True, "domain": "QBO",
                                          "sparse": False, "_created": now, "_updated": now}
        self._index_name(co, entity, co["entities"][entity][rec_id])
        return rec_id

    # -- test helpers (what a user would do in QuickBooks' own screens) ------------------------------
    def record_payment(self, invoice_id: str, amount: Decimal, date: str, realm: str | None = None) -> str:
        """A customer pays (part of) an invoice: a Payment linked to it; the invoice's Balance drops."""
        with self.lock:
            co = self.company(realm)
            inv = co["entities"]["Invoice"][invoice_id]
            rec = self._write(co, "Payment", {
                "CustomerRef": {"value": inv["CustomerRef"]["value"]}, "TotalAmt": Decimal(amount), "TxnDate": date,
                "PaymentRefNum": f"BACS-{invoice_id}",
                "Line": [{"Amount": Decimal(amount), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}]})
            self.persist()
            return rec["Id"]

    def add(self, entity: str, body: dict[str, Any], realm: str | None = None) -> str:
        """Someone creates a record in QuickBooks (same rules as the API); returns its Id."""
        with self.lock:
            rec = self._write(self.company(realm), entity, copy.deepcopy(body))
            self.persist()
            return rec["Id"]

    def user_edit(self, entity: str, record_id: str, realm: str | None = None, **fields: Any) -> dict[str, Any]:
        """Someone edits a record in QuickBooks: a sparse update (SyncToken and LastUpdatedTime move)."""
        with self.lock:
            co = self.company(realm)
            rec = co["entities"][entity][record_id]
            out = self._write(co, entity, {"Id": record_id, "SyncToken": rec["SyncToken"], "sparse": True, **fields})
            self.persist()
            return out

    def user_void(self, entity: str, record_id: str, realm: str | None = None) -> None:
        with self.lock:
            co = self.company(realm)
            rec = co["entities"][entity][record_id]
            self._write(co, entity, {"Id": record_id, "SyncToken": rec["SyncToken"]}, "void")
            self.persist()

    def user_merge(self, loser: str, survivor: str, realm: str | None = None) -> None:
        """Someone merges two customers in QuickBooks, which it does by renaming one to the other's name: the
        loser's transactions move to the survivor and the loser is made inactive (named "... (deleted)")."""
        with self.lock:
            co = self.company(realm)
            customers = co["entities"]["Customer"]
            keep = customers[survivor]
            for entity in ("Invoice", "Payment", "CreditMemo"):
                for txn in co["entities"][entity].values():
                    if txn["CustomerRef"]["value"] == loser:
                        txn["CustomerRef"] = {"value": survivor, "name": keep["DisplayName"]}
                        txn["SyncToken"] = str(int(txn["SyncToken"]) + 1)
                        txn["_updated"] = self.now()
            customers[loser]["DisplayName"] = keep["DisplayName"]  # the rename that merges them
            self._write(co, "Customer", {"Id": loser, "SyncToken": customers[loser]["SyncToken"], "sparse": True,
                                         "Active": False})
            self.persist()

    def user_delete(self, entity: str, record_id: str, realm: str | None = None) -> None:
        with self.lock:
            co = self.company(realm)
            rec = co["entities"][entity][record_id]
            self._write(co, entity, {"Id": record_id, "SyncToken": rec["SyncToken"]}, "delete")
            self.persist()

    def add_vendor(self, name: str, realm: str | None = None) -> str:
        with self.lock:
            rid = self._name_record(self.company(realm), "Vendor", name)
            self.persist()
            return rid

    def find(self, entity: str, realm: str | None = None, **where: Any) -> list[dict[str, Any]]:
        """Records whose top-level fields equal ``where`` (tests look things up by name)."""
        co = self.company(realm)
        return [self.wire(co, entity, r) for r in co["entities"][entity].values()
                if all(r.get(k) == v for k, v in where.items())]

