"""HubSpot imitation: the account's state, its seed data, and what a user does in HubSpot (tests, demo)."""

from __future__ import annotations

from typing import Any

from app.sandbox.hubspot.common import (
    _B,
    CURRENCIES,
    GROUP,
    LIFECYCLE,
    OBJECT_TYPES,
    STAGE_ID,
    STANDARD,
    _now_iso,
    _num,
)
from app.sandbox.parts import SandboxPart


class SeedData(SandboxPart):
    """The account's state, its seed data, and what a user does in HubSpot (tests, demo)."""

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        now = int(self.now() * 1000)
        return {
            "portal": {"portalId": 48151623, "accountType": "STANDARD", "timeZone": "US/Eastern",
                       "companyCurrency": "USD", "additionalCurrencies": ["GBP", "EUR", "AUD"],
                       "utcOffset": "-05:00", "utcOffsetMilliseconds": -18000000, "uiDomain": "app.hubspot.com",
                       "dataHostingLocation": "na1", "hub_domain": "crossledger-demo.com",
                       "user": "dana.owner@crossledger-demo.test", "user_id": 7071},
            "objects": {t: {} for t in OBJECT_TYPES},
            "merged": {t: {} for t in OBJECT_TYPES},
            "assoc": {},
            "properties": {t: self._standard_properties(t, now) for t in OBJECT_TYPES},
            "pipelines": {"deals": []},
            "last_ms": now,
        }

    def _standard_properties(self, otype: str, now: int) -> dict[str, dict[str, Any]]:
        out = {}
        for order, (name, label, ptype, field_type, read_only) in enumerate(STANDARD[otype]):
            options: list[dict[str, Any]] = []
            if name == "lifecyclestage":
                options = [self._option(v.title(), v, i) for i, v in enumerate(LIFECYCLE)]
            elif name in ("deal_currency_code", "hs_line_item_currency_code"):
                options = [self._option(c, c, i) for i, c in enumerate(CURRENCIES)]
            elif name == "dealtype":
                options = [self._option("New Business", "newbusiness", 0),
                           self._option("Existing Business", "existingbusiness", 1)]
            elif ptype == _B:
                options = [self._option("True", "true", 0), self._option("False", "false", 1)]
            out[name] = self._property(otype, name, label, ptype, field_type, options, order, now,
                                       hubspot_defined=True, read_only=read_only)
        return out

    @staticmethod
    def _option(label: str, value: str, order: int) -> dict[str, Any]:
        return {"label": label, "value": value, "displayOrder": order, "hidden": False, "description": ""}

    @staticmethod
    def _property(otype: str, name: str, label: str, ptype: str, field_type: str, options: list[dict[str, Any]],
                  order: int, now: int, *, hubspot_defined: bool, read_only: bool = False,
                  description: str = "", unique: bool = False, group: str | None = None) -> dict[str, Any]:
        stamp = _now_iso(now)
        prop = {"name": name, "label": label, "type": ptype, "fieldType": field_type, "description": description,
                "groupName": group or GROUP[otype], "options": options, "displayOrder": order,
                "calculated": read_only and hubspot_defined, "externalOptions": False, "hasUniqueValue": unique,
                "hidden": False, "formField": not read_only, "archived": False, "createdAt": stamp,
                "updatedAt": stamp,
                "modificationMetadata": {"archivable": not hubspot_defined, "readOnlyDefinition": hubspot_defined,
                                         "readOnlyValue": read_only, "readOnlyOptions": hubspot_defined}}
        if hubspot_defined:
            prop["hubspotDefined"] = True
        return prop

    def seed(self, kind: str = "demo") -> None:
        with self.lock:
            self.state = {**self.empty_state(), "oauth": self.state.get("oauth") or
                          {"codes": {}, "access": {}, "refresh": {}}}
            self._reset_index()
            self._default_pipeline()
            # The account's own set-up (not data): the custom company properties the demo story needs.
            self.add_property("companies", "tax_id", "Tax ID / VAT number", "string", "text",
                              description="The company's tax or VAT registration number")
            self.add_property("companies", "billing_email", "Billing email", "string", "text")
            if kind == "demo":
                self._seed_demo()
            elif kind != "empty":
                raise ValueError(f"unknown seed '{kind}'")
            self._index_all()  # the seed is searchable at once; later writes trail by the lag
            self.persist()

    def _default_pipeline(self) -> None:
        stages = [("appointmentscheduled", "Appointment Scheduled", "0.2", False),
                  ("qualifiedtobuy", "Qualified To Buy", "0.4", False),
                  ("presentationscheduled", "Presentation Scheduled", "0.6", False),
                  ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
                  ("contractsent", "Contract Sent", "0.9", False),
                  ("closedwon", "Closed Won", "1.0", True), ("closedlost", "Closed Lost", "0.0", True)]
        self.add_pipeline("Sales Pipeline", stages, pipeline_id="default", epoch=True)

    def add_pipeline(self, label: str, stages: list[tuple[str | None, str, str, bool]], *,
                     pipeline_id: str | None = None, epoch: bool = False) -> dict[str, Any]:
        """A deal pipeline; stage metadata values are strings, as HubSpot keeps them."""
        created = "1970-01-01T00:00:00Z" if epoch else _now_iso(self._stamp())
        pipes = self.state["pipelines"]["deals"]
        pid = pipeline_id or str(STAGE_ID + self.next_id("pipeline_ids", 1) * 10)
        pipe = {"id": pid, "label": label, "displayOrder": len(pipes), "archived": False, "createdAt": created,
                "updatedAt": created, "stages": []}
        for order, (sid, slabel, probability, closed) in enumerate(stages):
            pipe["stages"].append({
                "id": sid or str(int(pid) + order + 1), "label": slabel, "displayOrder": order,
                "metadata": {"isClosed": "true" if closed else "false", "probability": probability},
                "archived": False, "createdAt": created, "updatedAt": created, "writePermissions":
                    "CRM_PERMISSIONS_ENFORCEMENT"})
        pipes.append(pipe)
        return pipe

    def _seed_demo(self) -> None:
        from app.sandbox.demo_data import COUNTRY_NAMES, demo_data

        data = demo_data()
        start = int((self.now() - 30 * 86400) * 1000)
        tick = iter(range(10**7))

        def stamp() -> int:
            return start + next(tick) * 60_000

        renewals = self.add_pipeline("Renewals", [(None, "Renewal due", "0.5", False),
                                                  (None, "Renewed", "1.0", True),
                                                  (None, "Churned", "0.0", True)])
        renew_ids = [s["id"] for s in renewals["stages"]]
        products: dict[str, str] = {}
        for sku, name, price in data.products:
            products[sku] = self._insert("products", {"name": name, "price": _num(price), "hs_sku": sku}, stamp())
        companies: dict[str, str] = {}
        for c in data.companies:
            props = {"name": c.name, "domain": c.domain, "phone": c.phone, "address": c.address_line1,
                     "city": c.city, "state": c.region, "zip": c.postal_code, "country": c.country_name,
                     "tax_id": c.tax_id, "billing_email": c.email, "website": f"https://www.{c.domain}"}
            companies[c.key] = self._insert("companies", props, stamp())
        contacts_of: dict[str, list[str]] = {}
        for p in data.people:
            props = {"firstname": p.first_name, "lastname": p.last_name, "email": p.email, "phone": p.phone,
                     "city": p.city, "country": COUNTRY_NAMES.get(p.country or "", p.country)}
            cid = self._insert("contacts", props, stamp())
            if p.company_key:
                self._associate("contacts", cid, "companies", companies[p.company_key], [1, 279], touch=False)
                contacts_of.setdefault(p.company_key, []).append(cid)
        open_stages = ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
                       "contractsent"]
        for n, d in enumerate(data.deals):
            in_renewals = n % 5 == 4
            if in_renewals:
                pipeline = renewals["id"]
                stage = {"open": renew_ids[0], "won": renew_ids[1], "lost": renew_ids[2]}[d.stage]
            else:
                pipeline = "default"
                stage = {"won": "closedwon", "lost": "closedlost"}.get(d.stage) or open_stages[n % 5]
            when = stamp()
            deal = self._insert("deals", {
                "dealname": d.name, "amount": _num(d.amount), "deal_currency_code": d.currency,
                "pipeline": pipeline, "dealstage": stage, "closedate": d.close_date + "T00:00:00.000Z",
                "dealtype": "newbusiness"}, when)
            self._associate("deals", deal, "companies", companies[d.company_key], [5, 341], touch=False)
            for contact in contacts_of.get(d.company_key, [])[:1]:
                self._associate("deals", deal, "contacts", contact, [3], touch=False)
            for line in d.lines:
                item = self._insert("line_items", {
                    "name": line.name, "quantity": _num(line.quantity), "price": _num(line.unit_price),
                    "hs_discount_percentage": _num(line.discount_percent) if line.discount_percent else None,
                    "hs_sku": line.sku, "hs_product_id": products[line.sku],
                    "hs_line_item_currency_code": d.currency}, when)
                self._associate("line_items", item, "deals", deal, [20], touch=False)
        self.state["last_ms"] = max(self.state["last_ms"], stamp())

    # -- helpers for tests and the demo --------------------------------------------------------
    def add_property(self, otype: str, name: str, label: str, ptype: str = "string", field_type: str = "text",
                     options: list[dict[str, Any]] | None = None, *, description: str = "",
                     unique: bool = False) -> dict[str, Any]:
        defs = self.state["properties"][otype]
        prop = self._property(otype, name, label, ptype, field_type, options or [], len(defs), self._stamp(),
                               hubspot_defined=False, description=description, unique=unique)
        defs[name] = prop
        return prop

    def create(self, otype: str, **props: Any) -> str:
        """Create a record as if a user typed it in HubSpot (no validation)."""
        with self.lock:
            rid = self._insert(otype, {k: None if v is None else str(v) for k, v in props.items()}, self._stamp())
            self.persist()
            return rid

    def add_contacts(self, count: int, company_id: str | None = None) -> list[str]:
        with self.lock:
            ids = []
            for n in range(count):
                ids.append(self._insert("contacts", {"firstname": f"Test{n}", "lastname": "Person",
                                                     "email": f"test.person{n}.{self.next_id('bulk')}@example.com"},
                                        self._stamp()))
                if company_id:
                    self._associate("contacts", ids[-1], "companies", company_id, [1, 279])
            self.persist()
            return ids

    def add_companies(self, count: int) -> list[str]:
        with self.lock:
            ids = [self._insert("companies", {"name": f"Bulk Company {self.next_id('bulk')}"}, self._stamp())
                   for _ in range(count)]
            self.persist()
            return ids

    def edit(self, otype: str, record_id: str, **props: Any) -> dict[str, Any]:
        with self.lock:
            rec = self.state["objects"][otype][str(record_id)]
            for key, value in props.items():
                self._set(rec, key, None if value is None else str(value))
            self._touch(otype, rec)
            self._after_write(otype, rec)
            self.persist()
            return rec

    def archive(self, otype: str, record_id: str) -> None:
        with self.lock:
            self._archive(otype, self.state["objects"][otype][str(record_id)])
            self.persist()

    def merge(self, otype: str, primary: str, loser: str) -> None:
        with self.lock:
            self._merge(otype, str(primary), str(loser))
            self.persist()

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: list[int]) -> None:
        with self.lock:
            self._associate(from_type, str(from_id), to_type, str(to_id), type_ids)
            self.persist()

    def rename_stage(self, stage_id: str, label: str) -> None:
        with self.lock:
            for pipe in self.state["pipelines"]["deals"]:
                for stage in pipe["stages"]:
                    if stage["id"] == stage_id:
                        stage["label"] = label
                        stage["updatedAt"] = _now_iso(self._stamp())
            self.persist()

    def find(self, otype: str, prop: str, value: str) -> list[dict[str, Any]]:
        return [r for r in self.state["objects"][otype].values()
                if not r["archived"] and (r["p"].get(prop) or "").casefold() == value.casefold()]

    def values(self, otype: str, record_id: str) -> dict[str, Any]:
        """Every property of a record as the API prints it (tests)."""
        return self._values(otype, self.state["objects"][otype][str(record_id)])
