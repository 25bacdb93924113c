"""Salesforce imitation: the org's state, its seed data, and what a user or admin does in the Salesforce UI."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.sandbox.parts import SandboxPart
from app.sandbox.salesforce.common import (
    CASCADE,
    DAY,
    OWNED,
    PREFIX,
    STAGES,
    STANDARD,
    make_id,
    norm_id,
)


class SeedData(SandboxPart):
    """The org's state, its seed data, and what a user or admin does in the Salesforce UI."""

    demo_ids: dict[str, str]  # demo key -> record id

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        now = self.now()
        org_id, user_id = make_id(PREFIX["Organization"], 1), make_id(PREFIX["User"], 1)
        state: dict[str, Any] = {
            "org_id": org_id, "user_id": user_id, "multicurrency": self.multicurrency,
            "currencies": ["USD", "GBP", "EUR", "AUD", "CAD"] if self.multicurrency else ["USD"],
            "records": {obj: {} for obj in STANDARD}, "custom_fields": {obj: {} for obj in STANDARD},
            "deleted_log": {obj: [] for obj in STANDARD}, "counters": {},
            "usage": {}, "api_max": self.api_max,
            "duplicate_rules": {
                "Account": {"active": True, "action": "alert", "field": "Name",
                            "rule": "Standard_Account_Duplicate_Rule", "match": "Standard_Account_Match_Rule_v1_0"},
                "Contact": {"active": True, "action": "alert", "field": "Email",
                            "rule": "Standard_Contact_Duplicate_Rule", "match": "Standard_Contact_Match_Rule_v1_1"}},
        }
        self.state = state
        self._put("Organization", org_id, {
            "Name": "Crossledger Demo Company", "DefaultCurrencyIsoCode": "USD", "Country": "US",
            "IsSandbox": False, "OrganizationType": "Developer Edition", "InstanceName": "USA1234S"}, now)
        self._put("User", user_id, {"Username": "dana.owner@crossledger-demo.test", "Name": "Dana Owner",
                                    "FirstName": "Dana", "LastName": "Owner",
                                    "Email": "dana.owner@crossledger-demo.test", "IsActive": True}, now)
        for n, (name, prob, closed, won, forecast) in enumerate(STAGES, start=1):
            self._put("OpportunityStage", self._new_id("OpportunityStage"), {
                "ApiName": name, "MasterLabel": name, "IsActive": True, "IsClosed": closed, "IsWon": won,
                "DefaultProbability": str(prob), "SortOrder": n, "ForecastCategoryName": forecast}, now)
        self._put("Pricebook2", self._new_id("Pricebook2"), {"Name": "Standard Price Book", "IsActive": True,
                                                             "IsStandard": True}, now)
        return state

    def _new_id(self, obj: str) -> str:
        return make_id(PREFIX[obj], self.next_id(obj))

    def _put(self, obj: str, rid: str, values: dict[str, Any], when: float) -> dict[str, Any]:
        """Store a record as seeded data (no validation, no duplicate rules)."""
        user = self.state["user_id"]
        rec: dict[str, Any] = {"Id": rid, "IsDeleted": False, "CreatedDate": when, "CreatedById": user,
                               "LastModifiedDate": when, "LastModifiedById": user, "SystemModstamp": when}
        if obj in OWNED:
            rec["OwnerId"] = user
        rec.update(values)
        self.state["records"][obj][rid] = rec
        return rec

    def seed(self, kind: str = "demo") -> None:
        with self.lock:
            oauth = self.state.get("oauth") or {"codes": {}, "access": {}, "refresh": {}}
            self.state = self.empty_state()
            self.state["oauth"] = oauth
            self.demo_ids = {}
            self._locators.clear()
            if kind == "demo":
                self._seed_demo()
            elif kind != "empty":
                raise ValueError(f"unknown seed '{kind}'")
            self.state["demo_ids"] = self.demo_ids
            self.persist()

    def _seed_demo(self) -> None:
        from app.sandbox.demo_data import COUNTRY_NAMES, demo_data

        data = demo_data()
        start = self.now() - 30 * DAY
        tick = iter(range(10**6))

        def stamp() -> float:
            return round(start + next(tick) * 60, 3)

        self.add_custom_field("Account", "Tax_Id__c", "Tax ID", "string", length=40)
        self.add_custom_field("Account", "Billing_Email__c", "Billing Email", "string", length=80)
        mc = self.multicurrency
        std_pb = self.standard_pricebook()
        entries: dict[tuple[str, str], str] = {}
        for sku, name, price in data.products:
            when = stamp()
            family = "Licences" if sku.startswith("LIC") else "Hardware" if sku.startswith("HW") else "Services"
            pid = self._new_id("Product2")
            self._put("Product2", pid, {"Name": name, "ProductCode": sku, "Description": name, "IsActive": True,
                                        "Family": family, "StockKeepingUnit": sku,
                                        "QuantityUnitOfMeasure": "Hour" if sku == "CONS-HR" else "Each",
                                        **({"CurrencyIsoCode": "USD"} if mc else {})}, when)
            self.demo_ids[sku] = pid
            for cur in self.state["currencies"]:
                eid = self._new_id("PricebookEntry")
                self._put("PricebookEntry", eid, {"Pricebook2Id": std_pb, "Product2Id": pid, "UnitPrice": str(price),
                                                  "IsActive": True, "UseStandardPrice": False,
                                                  **({"CurrencyIsoCode": cur} if mc else {})}, when)
                entries[(pid, cur)] = eid
        for company in data.companies:
            aid = self._new_id("Account")
            self._put("Account", aid, {
                "Name": company.name, "BillingStreet": company.address_line1, "BillingCity": company.city,
                "BillingState": company.region, "BillingPostalCode": company.postal_code,
                "BillingCountry": company.country_name, "Phone": company.phone,
                "Website": f"https://{company.domain}" if company.domain else None,
                "Tax_Id__c": company.tax_id, "Billing_Email__c": company.email,
                **({"CurrencyIsoCode": company.currency} if mc else {})}, stamp())
            self.demo_ids[company.key] = aid
        first_contact: dict[str, str] = {}
        for person in data.people:
            cid = self._new_id("Contact")
            account = self.demo_ids.get(person.company_key) if person.company_key else None
            currency = next((c.currency for c in data.companies if c.key == person.company_key), "USD")
            self._put("Contact", cid, {
                "AccountId": account, "FirstName": person.first_name, "LastName": person.last_name,
                "Email": person.email, "Phone": person.phone, "MailingCity": person.city,
                "MailingCountry": COUNTRY_NAMES.get(person.country or "", person.country),
                **({"CurrencyIsoCode": currency} if mc else {})}, stamp())
            self.demo_ids[person.key] = cid
            if account and person.company_key not in first_contact:
                first_contact[person.company_key] = cid
        open_stages = [s[0] for s in STAGES if not s[2]]
        for n, deal in enumerate(data.deals):
            when = stamp()
            stage = {"won": "Closed Won", "lost": "Closed Lost"}.get(deal.stage, open_stages[n % len(open_stages)])
            info = self._stage(stage)
            oid = self._new_id("Opportunity")
            currency = deal.currency if mc else "USD"
            opp = self._put("Opportunity", oid, {
                "AccountId": self.demo_ids[deal.company_key], "Name": deal.name, "Amount": None,
                "StageName": stage, "CloseDate": deal.close_date, "Probability": info["DefaultProbability"],
                "IsClosed": info["IsClosed"], "IsWon": info["IsWon"],
                "ForecastCategoryName": info["ForecastCategoryName"], "Pricebook2Id": std_pb,
                "HasOpportunityLineItem": False, **({"CurrencyIsoCode": currency} if mc else {})}, when)
            self.demo_ids[deal.key] = oid
            for line in deal.lines:
                pid = self.demo_ids[line.sku]
                entry = self.state["records"]["PricebookEntry"][entries[(pid, currency)]]
                values = {"OpportunityId": oid, "PricebookEntryId": entry["Id"], "Product2Id": pid,
                          "Quantity": str(line.quantity), "UnitPrice": str(line.unit_price),
                          "ListPrice": entry["UnitPrice"],
                          "Discount": str(line.discount_percent) if line.discount_percent else None,
                          "ServiceDate": None, "Description": None, **({"CurrencyIsoCode": currency} if mc else {})}
                values.update(self._line_totals(values))
                self._put("OpportunityLineItem", self._new_id("OpportunityLineItem"), values, when)
            self._roll_up(opp, when, touch=False)
            contact = first_contact.get(deal.company_key)
            if contact:
                self._put("OpportunityContactRole", self._new_id("OpportunityContactRole"), {
                    "OpportunityId": oid, "ContactId": contact, "Role": "Decision Maker", "IsPrimary": True}, when)

    # -- test helpers (what a user or admin does in the Salesforce UI) -----------------------
    def record(self, obj: str, rid: str) -> dict[str, Any]:
        return self.state["records"][obj][norm_id(rid) or rid]

    def ids(self, obj: str, *, deleted: bool = False) -> list[str]:
        return [r["Id"] for r in self.state["records"][obj].values() if deleted or not r["IsDeleted"]]

    def edit(self, obj: str, rid: str, *, touch_parent: bool = True, **values: Any) -> dict[str, Any]:
        """Change fields as the UI would: stamps move, stage-derived fields follow, no validation.

        ``touch_parent=False`` changes a line item without moving its opportunity's SystemModstamp
        (the reference is unsure whether Salesforce always bumps it), so readers cannot rely on it.
        """
        with self.lock:
            rec = self.record(obj, rid)
            now = self._stamp()
            for key, value in values.items():
                rec[key] = str(value) if isinstance(value, Decimal) else value
            if obj == "Opportunity" and "StageName" in values:
                self._apply_stage(rec, values.get("Probability"))
            self._touch(rec, now)
            if obj == "OpportunityLineItem":
                rec.update(self._line_totals(rec))
                self._roll_up(self.record("Opportunity", rec["OpportunityId"]), now, touch=touch_parent)
            self.persist()
            return rec

    def delete(self, obj: str, rid: str) -> None:
        """Delete to the Recycle Bin (soft: queryAll still sees it, getDeleted lists it)."""
        with self.lock:
            self._soft_delete(obj, self.record(obj, rid), self._stamp())
            self.persist()

    def purge(self, obj: str, rid: str) -> None:
        """Hard delete (Recycle Bin emptied): only getDeleted still knows about it."""
        with self.lock:
            rec = self.record(obj, rid)
            now = self._stamp()
            if not rec["IsDeleted"]:
                self._soft_delete(obj, rec, now)
            for child_obj, fk in CASCADE.get(obj, ()):
                for child in list(self.state["records"][child_obj].values()):
                    if child.get(fk) == rec["Id"] and child["IsDeleted"]:
                        del self.state["records"][child_obj][child["Id"]]
            del self.state["records"][obj][rec["Id"]]
            self.persist()

    def undelete(self, obj: str, rid: str) -> None:
        with self.lock:
            rec = self.record(obj, rid)
            rec["IsDeleted"] = False
            rec.pop("_deleted_at", None)
            self.state["deleted_log"][obj] = [e for e in self.state["deleted_log"][obj] if e["id"] != rec["Id"]]
            self._touch(rec, self._stamp())
            self.persist()

    def merge(self, obj: str, master: str, loser: str) -> None:
        """Merge ``loser`` into ``master`` (Accounts, Contacts): children move, the loser is deleted."""
        with self.lock:
            now = self._stamp()
            win, lose = self.record(obj, master), self.record(obj, loser)
            children = {"Account": (("Contact", "AccountId"), ("Opportunity", "AccountId")),
                        "Contact": (("OpportunityContactRole", "ContactId"),)}[obj]
            for child_obj, fk in children:
                for child in self.state["records"][child_obj].values():
                    if child.get(fk) == lose["Id"]:
                        child[fk] = win["Id"]
                        self._touch(child, now)
            lose["MasterRecordId"] = win["Id"]
            self._soft_delete(obj, lose, now, cascade=False)
            self._touch(win, now)
            self.persist()

    def rename_stage(self, api_name: str, label: str) -> None:
        """Change a stage's label (MasterLabel) in Setup; records keep the stage's API name."""
        with self.lock:
            stage = self._stage(api_name)
            stage["MasterLabel"] = label
            self._touch(stage, self._stamp())
            self.persist()

    def add_contacts(self, count: int, account_id: str | None = None) -> list[str]:
        """Bulk-load contacts (paging tests), as a data loader would, past the duplicate rules."""
        ids = []
        with self.lock:
            for n in range(count):
                cid = self._new_id("Contact")
                self._put("Contact", cid, {"AccountId": account_id, "FirstName": "Bulk", "LastName": f"Person {n}",
                                           "Email": f"bulk.{n}@bulk.example", **(
                                               {"CurrencyIsoCode": "USD"} if self.state["multicurrency"] else {})},
                          self._stamp())
                ids.append(cid)
            self.persist()
        return ids

    def set_api_usage(self, used: int, maximum: int | None = None) -> None:
        with self.lock:
            if maximum is not None:
                self.state["api_max"] = maximum
            hour = str(int(self.now() // 3600))
            self.state["usage"] = {hour: used}

    def api_usage(self) -> tuple[int, int]:
        self._prune_usage()
        return sum(self.state["usage"].values()), int(int(self.state["api_max"]) * self.api_scale)
