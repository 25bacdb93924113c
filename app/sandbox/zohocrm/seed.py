"""Zoho CRM imitation: the org's state, its seed data, and what a user does in Zoho CRM."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox import demo_data as demo_set
from app.sandbox.demo_data import COUNTRY_NAMES
from app.sandbox.parts import SandboxPart
from app.sandbox.zohocrm.common import (
    CURRENCIES,
    CUSTOM_FIELDS,
    ID_PREFIX,
    MODULES,
    ORG_ID,
    RENEWAL_STAGES,
    STANDARD_FIELDS,
    STANDARD_STAGES,
    TIME_ZONE,
)


class SeedData(SandboxPart):
    """The org's state, its seed data, and what a user does in Zoho CRM."""

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        return {
            "org": {"id": ORG_ID, "company_name": "Crossledger Demo GmbH", "domain_name": f"org{ORG_ID}",
                    "currency": "EUR", "country": "Germany", "country_code": "DE", "time_zone": TIME_ZONE,
                    "created": 1700000000},
            "user": {"id": "4876876000000225013", "name": "Jane Admin", "email": "jane.admin@crossledger-demo.test"},
            "records": {m: {} for m in MODULES},
            "deleted": {m: [] for m in MODULES},
            "fields": {}, "stages": {}, "pipelines": [], "layouts": {}, "credits": [], "page_tokens": {},
        }

    def seed(self, kind: str = "demo") -> None:
        with self.lock:
            oauth = self.state.get("oauth")
            self.state = self.empty_state()
            self.state["oauth"] = oauth or {"codes": {}, "access": {}, "refresh": {}}
            self._seed_metadata()
            if kind == "demo":
                self._seed_demo()
            elif kind != "empty":
                raise ValueError(f"unknown seed {kind!r}: use 'empty' or 'demo'")
            self.persist()

    def new_id(self) -> str:
        return f"{ID_PREFIX}{self.next_id('zoho', 100001):06d}"

    def _seed_metadata(self) -> None:
        st = self.state
        for module in (*MODULES, "Line_Items"):
            st["layouts"][module] = {"id": self.new_id(), "name": "Standard"}
            st["fields"][module] = []
            for spec in STANDARD_FIELDS[module] + CUSTOM_FIELDS.get(module, []):
                st["fields"][module].append({**spec, "id": self.new_id(), "created": st["org"]["created"]})
        for name, display, stages, default in (("Standard", "Standard", STANDARD_STAGES, True),
                                               ("Renewals", "Renewals", RENEWAL_STAGES, False)):
            ids = []
            for stage, forecast, probability, category in stages:
                existing = next((s for s in st["stages"].values() if s["actual_value"] == stage), None)
                if existing is None:
                    existing = {"id": self.new_id(), "display_value": stage, "actual_value": stage,
                                "forecast_type": forecast, "probability": probability,
                                "forecast_category": category, "sequence_number": len(st["stages"]) + 1}
                    st["stages"][existing["id"]] = existing
                ids.append(existing["id"])
            st["pipelines"].append({"id": self.new_id(), "display_value": display, "actual_value": name,
                                    "default": default, "maps": ids})

    def _seed_demo(self) -> None:
        data = demo_set.demo_data()  # looked up at call time (tests seed their own)
        recs = self.state["records"]
        now = int(self.now())
        user = self.state["user"]["id"]

        def put(module: str, values: dict[str, Any]) -> str:
            rid = self.new_id()
            rec = {"id": rid, "Owner": user, "Created_By": user, "Modified_By": user, "Created_Time": now,
                   "Modified_Time": now, **{k: v for k, v in values.items() if v is not None}}
            self._derive(module, rec, None)
            recs[module][rid] = rec
            return rid

        products: dict[str, str] = {}
        for sku, name, price in data.products:
            products[sku] = put("Products", {"Product_Name": name, "Product_Code": sku, "Unit_Price": str(price),
                                             "Product_Active": True, "Taxable": True})
        accounts: dict[str, str] = {}
        for c in data.companies:
            accounts[c.key] = put("Accounts", {
                "Account_Name": c.name, "Website": c.domain, "Phone": c.phone, "Billing_Street": c.address_line1,
                "Billing_City": c.city, "Billing_State": c.region, "Billing_Code": c.postal_code,
                "Billing_Country": c.country_name, "Tax_ID": c.tax_id, "Billing_Email": c.email,
                "Currency": c.currency if c.currency in CURRENCIES else "EUR"})
        first_contact: dict[str, str] = {}
        for p in data.people:
            rid = put("Contacts", {
                "First_Name": p.first_name, "Last_Name": p.last_name, "Email": p.email, "Phone": p.phone,
                "Account_Name": accounts.get(p.company_key) if p.company_key else None,
                "Mailing_City": p.city, "Mailing_Country": COUNTRY_NAMES.get(p.country or "") or None,
                "Currency": "EUR"})
            if p.company_key:
                first_contact.setdefault(p.company_key, rid)
        stages = {s["actual_value"]: s["id"] for s in self.state["stages"].values()}
        standard, renewals = self.state["pipelines"][0]["id"], self.state["pipelines"][1]["id"]
        open_names = [s[0] for s in STANDARD_STAGES if s[1] == "Open"]
        for n, d in enumerate(data.deals):
            pipeline = standard
            if d.stage == "won":
                stage = "Renewed" if n % 4 == 0 else "Closed Won"
                pipeline = renewals if n % 4 == 0 else standard
            elif d.stage == "lost":
                stage = "Closed Lost"
            else:
                stage = open_names[n % len(open_names)]
            rows = [{"id": self.new_id(), "Product": products[li.sku], "Description": li.name,
                     "Quantity": str(li.quantity), "Unit_Price": str(li.unit_price),
                     "Discount": str(li.discount_percent), "Created_Time": now, "Modified_Time": now}
                    for li in d.lines]
            put("Deals", {"Deal_Name": d.name, "Amount": str(d.amount), "Currency": d.currency,
                          "Pipeline": pipeline, "Stage": stages[stage], "Closing_Date": d.close_date,
                          "Account_Name": accounts[d.company_key], "Contact_Name": first_contact.get(d.company_key),
                          "Line_Items": rows, "Type": "New Business"})

    # -- test helpers -----------------------------------------------------------------------
    def add_contacts(self, count: int, account_id: str | None = None) -> list[str]:
        """Add ``count`` contacts at once (paging tests)."""
        with self.lock:
            now, user = int(self.now()), self.state["user"]["id"]
            ids = []
            for n in range(count):
                rid = self.new_id()
                rec = {"id": rid, "Owner": user, "Created_By": user, "Modified_By": user, "Created_Time": now,
                       "Modified_Time": now, "First_Name": "Test", "Last_Name": f"Person {n:05d}",
                       "Email": f"test.person.{rid}@example.com", "Account_Name": account_id}
                self._derive("Contacts", rec, None)
                self.state["records"]["Contacts"][rid] = rec
                ids.append(rid)
            self.persist()
            return ids

    def edit(self, module: str, record_id: str, **values: Any) -> dict[str, Any]:
        """Change a record as a user in the CRM would (Modified_Time moves)."""
        with self.lock:
            rec = self.state["records"][module][str(record_id)]
            rec.update({k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()})
            rec["Modified_Time"] = int(self.now())
            self._derive(module, rec, None)
            self.persist()
            return rec

    def delete(self, module: str, record_id: str) -> None:
        """Delete a record to the recycle bin, as a user in the CRM would."""
        with self.lock:
            self._delete(module, str(record_id))
            self.persist()

    def stage_id(self, actual_value: str) -> str:
        return next(s["id"] for s in self.state["stages"].values() if s["actual_value"] == actual_value)

    def set_credits_used(self, used: int) -> None:
        """Pretend ``used`` credits were spent in the last 24 hours."""
        with self.lock:
            self.state["credits"] = [[self.now(), used]]

