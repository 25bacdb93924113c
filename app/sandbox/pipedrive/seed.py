"""Pipedrive imitation: the company's state, its seed data, and what a user does in Pipedrive's web app."""

from __future__ import annotations

import hashlib
import secrets
from decimal import Decimal
from typing import Any

from app.sandbox.parts import SandboxPart
from app.sandbox.pipedrive.common import (
    ADDRESS_PARTS,
    HASH_RE,
    _format_address,
    v1_time,
    v2_time,
)


class SeedData(SandboxPart):
    """The company's state, its seed data, and what a user does in Pipedrive's web app."""

    # -- state ------------------------------------------------------------------------------
    @property
    def daily_budget(self) -> int:
        return self.base_tokens * self.plan_multiplier * self.seats

    def empty_state(self) -> dict[str, Any]:
        return {
            "company": {"id": 13049877, "name": "Crossledger Demo Company", "domain": "crossledger-demo",
                        "country": "GB", "currency": "GBP", "industry": "Software"},
            "user": {"id": 20441301, "name": "Dana Owner", "email": "dana.owner@crossledger-demo.test"},
            "organizations": {}, "persons": {}, "deals": {}, "products": {}, "deal_products": {},
            "pipelines": {}, "stages": {},
            "fields": {"organization": self._standard_fields("organization"),
                       "person": self._standard_fields("person"),
                       "deal": self._standard_fields("deal"),
                       "product": self._standard_fields("product")},
            "budget": {"day": None, "used": 0},
        }

    def _standard_fields(self, entity: str) -> list[dict[str, Any]]:
        specs: dict[str, list[tuple[str, str, str]]] = {
            "organization": [("name", "Name", "varchar"), ("owner_id", "Owner", "user"),
                             ("address", "Address", "address"), ("website", "Website", "varchar"),
                             ("linkedin", "LinkedIn profile", "varchar"), ("industry", "Industry", "enum"),
                             ("annual_revenue", "Annual revenue", "monetary"),
                             ("employee_count", "Number of employees", "int"), ("label_ids", "Labels", "set"),
                             ("visible_to", "Visible to", "visible_to"), ("add_time", "Organization created", "date"),
                             ("update_time", "Update time", "date")],
            "person": [("name", "Name", "varchar"), ("first_name", "First name", "varchar"),
                       ("last_name", "Last name", "varchar"), ("org_id", "Organization", "org"),
                       ("email", "Email", "varchar"), ("phone", "Phone", "phone"),
                       ("postal_address", "Postal address", "address"), ("job_title", "Job title", "varchar"),
                       ("birthday", "Birthday", "date"), ("notes", "Notes", "text"),
                       ("owner_id", "Owner", "user"), ("label_ids", "Labels", "set"),
                       ("visible_to", "Visible to", "visible_to"), ("add_time", "Person created", "date"),
                       ("update_time", "Update time", "date")],
            "deal": [("title", "Title", "varchar"), ("value", "Value", "monetary"),
                     ("currency", "Currency", "varchar"), ("org_id", "Organization", "org"),
                     ("person_id", "Contact person", "people"), ("pipeline_id", "Pipeline", "pipeline"),
                     ("stage_id", "Stage", "stage"), ("status", "Status", "status"),
                     ("expected_close_date", "Expected close date", "date"), ("probability", "Probability", "double"),
                     ("won_time", "Won time", "date"), ("lost_time", "Lost time", "date"),
                     ("close_time", "Deal closed on", "date"), ("lost_reason", "Lost reason", "varchar"),
                     ("owner_id", "Owner", "user"), ("label_ids", "Label", "set"),
                     ("add_time", "Deal created", "date"), ("update_time", "Update time", "date")],
            "product": [("name", "Name", "varchar"), ("code", "Product code", "varchar"),
                        ("unit", "Unit", "varchar"), ("tax", "Tax", "double"),
                        ("category", "Category", "enum"), ("description", "Description", "text")],
        }
        out = []
        for n, (key, name, ftype) in enumerate(specs[entity], start=1):
            out.append(self._field_record(n, key, name, ftype, custom=False))
        return out

    def _field_record(self, fid: int, key: str, name: str, ftype: str, *, custom: bool,
                      options: list[dict[str, Any]] | None = None, when: str = "2024-01-01 00:00:00") -> dict:
        subfields = []
        if ftype == "address":
            subfields = [{"key": f"{key}_{part}", "name": f"{part.replace('_', ' ').capitalize()} of {name}",
                          "field_type": "varchar"} for part in ADDRESS_PARTS if part != "value"]
            subfields.append({"key": f"{key}_formatted_address", "name": f"Full/combined address of {name}",
                              "field_type": "varchar"})
        return {
            "id": fid, "key": key, "name": name, "order_nr": fid, "field_type": ftype, "add_time": when,
            "update_time": when, "last_updated_by_user_id": None, "created_by_user_id": None,
            "active_flag": True, "edit_flag": custom, "index_visible_flag": True, "details_visible_flag": True,
            "add_visible_flag": True, "important_flag": False, "bulk_edit_allowed": True, "searchable_flag": custom,
            "filtering_allowed": True, "sortable_flag": True, "mandatory_flag": key in {"name", "title"},
            "options": options, "options_deleted": [], "is_subfield": False, "subfields": subfields,
        }

    def add_custom_field(self, entity: str, name: str, field_type: str,
                         options: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Create a custom field: its key is a fresh 40-character hash, as Pipedrive makes them."""
        fields = self.state["fields"][entity]
        key = hashlib.sha1(secrets.token_bytes(16)).hexdigest()  # noqa: S324 - an identifier, not security
        opts = None
        if options is not None:
            opts = [{"id": self.next_id("field_option", 100), "label": str(o.get("label", ""))} for o in options]
        rec = self._field_record(max((f["id"] for f in fields), default=0) + 1, key, name, field_type, custom=True,
                                 options=opts, when=v1_time(v2_time(self.now())) or "")
        fields.append(rec)
        return rec

    def field_key(self, entity: str, name: str) -> str:
        """The hash of a custom field by its name (tests and seeding)."""
        return next(f["key"] for f in self.state["fields"][entity] if f["name"] == name)

    def _custom_defs(self, entity: str) -> dict[str, dict[str, Any]]:
        return {f["key"]: f for f in self.state["fields"][entity] if HASH_RE.match(f["key"])}

    # -- seeding ----------------------------------------------------------------------------
    def seed(self, kind: str = "demo") -> None:
        with self.lock:
            self.state = {**self.empty_state(), "oauth": self.state.get("oauth") or
                          {"codes": {}, "access": {}, "refresh": {}}}
            if kind == "demo":
                self._seed_demo()
            elif kind != "empty":
                raise ValueError(f"unknown seed '{kind}'")
            self.persist()

    def _seed_demo(self) -> None:
        from app.sandbox.demo_data import COUNTRY_NAMES, demo_data

        data = demo_data()
        start = self.now() - 30 * 86400
        tick = iter(range(10**6))

        def stamp() -> str:
            return v2_time(start + next(tick) * 60)

        tax_key = self.add_custom_field("organization", "Tax ID", "varchar")["key"]
        email_key = self.add_custom_field("organization", "Billing email", "varchar")["key"]
        phone_key = self.add_custom_field("organization", "Phone", "phone")["key"]
        self.add_custom_field("deal", "Source", "enum", [{"label": "Website"}, {"label": "Referral"},
                                                         {"label": "Partner"}])
        pipe = self._new_pipeline("Sales pipeline", stamp())
        stages = [self._new_stage(pipe, name, prob, stamp()) for name, prob in
                  (("Qualified", 10), ("Proposal made", 40), ("Negotiations started", 70), ("Closed", 100))]
        self._new_pipeline("Renewals", stamp())
        products = {}
        for sku, name, price in data.products:
            pid = self.next_id("product")
            when = stamp()
            self.state["products"][str(pid)] = {
                "id": pid, "name": name, "code": sku, "unit": "pcs", "tax": "0", "is_deleted": False,
                "is_linkable": True, "visible_to": 3, "owner_id": self.state["user"]["id"], "add_time": when,
                "update_time": when, "description": "", "category": None, "custom_fields": {},
                "billing_frequency": "one-time", "billing_frequency_cycles": None,
                "prices": [{"product_id": pid, "price": str(price), "currency": cur, "cost": "0",
                            "direct_cost": None, "notes": ""} for cur in ("USD", "GBP", "EUR", "AUD")],
            }
            products[sku] = pid
        org_ids: dict[str, int] = {}
        for company in data.companies:
            oid = self.next_id("organization")
            when = stamp()
            street_number, _, street = (company.address_line1 or "").partition(" ")
            address = {"value": _format_address(company.address_line1, company.postal_code, company.city,
                                                 company.region, company.country_name),
                       "country": company.country_name, "admin_area_level_1": company.region,
                       "admin_area_level_2": None, "locality": company.city, "sublocality": None,
                       "route": street or None, "street_number": street_number or None, "subpremise": None,
                       "postal_code": company.postal_code}
            custom = {tax_key: company.tax_id, email_key: company.email, phone_key: company.phone}
            self.state["organizations"][str(oid)] = {
                "id": oid, "name": company.name, "owner_id": self.state["user"]["id"], "add_time": when,
                "update_time": when, "is_deleted": False, "visible_to": 3, "address": address, "label_ids": [],
                "website": f"https://{company.domain}" if company.domain else None, "linkedin": None,
                "industry": None, "annual_revenue": None, "employee_count": None,
                "custom_fields": {k: v for k, v in custom.items() if v is not None},
            }
            org_ids[company.key] = oid
        first_person: dict[str, int] = {}
        for person in data.people:
            pid = self.next_id("person")
            when = stamp()
            org_id = org_ids.get(person.company_key) if person.company_key else None
            postal = None
            if person.city or person.country:
                country = COUNTRY_NAMES.get(person.country or "", person.country)
                postal = dict.fromkeys(ADDRESS_PARTS)
                postal.update({"value": ", ".join(p for p in (person.city, country) if p), "locality": person.city,
                               "country": country})
            self.state["persons"][str(pid)] = {
                "id": pid, "name": f"{person.first_name} {person.last_name}", "first_name": person.first_name,
                "last_name": person.last_name, "owner_id": self.state["user"]["id"], "org_id": org_id,
                "add_time": when, "update_time": when,
                "emails": [{"value": person.email, "primary": True, "label": "work"}] if person.email else [],
                "phones": [{"value": person.phone, "primary": True, "label": "work"}] if person.phone else [],
                "is_deleted": False, "visible_to": 3, "label_ids": [], "picture_id": None, "postal_address": postal,
                "notes": None, "im": [], "birthday": None, "job_title": None, "custom_fields": {},
            }
            if org_id and person.company_key not in first_person:
                first_person[person.company_key] = pid
        for n, deal in enumerate(data.deals):
            did = self.next_id("deal")
            when = stamp()
            status = deal.stage
            stage = stages[-1] if status == "won" else stages[n % 3]
            closed = f"{deal.close_date}T15:00:00Z"
            self.state["deals"][str(did)] = {
                "id": did, "title": deal.name, "owner_id": self.state["user"]["id"],
                "person_id": first_person.get(deal.company_key), "org_id": org_ids[deal.company_key],
                "pipeline_id": pipe["id"], "stage_id": stage["id"], "value": "0", "currency": deal.currency,
                "add_time": when, "update_time": when, "stage_change_time": when, "is_deleted": False,
                "is_archived": False, "status": status, "probability": None,
                "lost_reason": "Went with a competitor" if status == "lost" else None, "visible_to": 3,
                "close_time": closed if status != "open" else None, "won_time": closed if status == "won" else None,
                "lost_time": closed if status == "lost" else None, "expected_close_date": deal.close_date,
                "label_ids": [], "origin": "API", "origin_id": None, "channel": None, "channel_id": None,
                "source_lead_id": None, "arr": None, "mrr": None, "acv": None, "custom_fields": {},
                "_archive_time": None,
            }
            for order, line in enumerate(deal.lines, start=1):
                self._attach(did, {"product_id": products[line.sku], "item_price": line.unit_price,
                                   "quantity": line.quantity, "discount": line.discount_percent,
                                   "discount_type": "percentage", "tax": Decimal(0), "tax_method": "none",
                                   "comments": "", "is_enabled": True}, when, order_nr=order, touch=False)

    def _new_pipeline(self, name: str, when: str) -> dict[str, Any]:
        pid = self.next_id("pipeline")
        rec = {"id": pid, "name": name, "order_nr": pid, "is_deleted": False, "is_deal_probability_enabled": True,
               "add_time": when, "update_time": when}
        self.state["pipelines"][str(pid)] = rec
        return rec

    def _new_stage(self, pipeline: dict[str, Any], name: str, probability: int, when: str) -> dict[str, Any]:
        sid = self.next_id("stage")
        order = 1 + sum(1 for s in self.state["stages"].values() if s["pipeline_id"] == pipeline["id"])
        rec = {"id": sid, "order_nr": order, "name": name, "is_deleted": False, "deal_probability": probability,
               "pipeline_id": pipeline["id"], "is_deal_rot_enabled": False, "days_to_rotten": None,
               "add_time": when, "update_time": when}
        self.state["stages"][str(sid)] = rec
        return rec

    # -- test helpers (what a user does in Pipedrive's web app) -----------------------------
    def edit(self, kind: str, record_id: int | str, **changes: Any) -> dict[str, Any]:
        """Change a record as the web app would: fields set, update_time bumped."""
        with self.lock:
            rec = self.state[kind][str(record_id)]
            for key, value in changes.items():
                if key == "custom_fields":
                    rec["custom_fields"] = {**rec.get("custom_fields", {}), **value}
                else:
                    rec[key] = value
            rec["update_time"] = v2_time(self.now())
            self.persist()
            return rec

    def delete(self, kind: str, record_id: int | str) -> None:
        with self.lock:
            self._mark_deleted(kind, self.state[kind][str(record_id)])
            self.persist()

    def rename_stage(self, stage_id: int, name: str) -> None:
        self.edit("stages", stage_id, name=name)

    def add_people(self, count: int, org_id: int | None = None) -> list[int]:
        """Bulk-create persons (paging tests)."""
        ids = []
        with self.lock:
            for n in range(count):
                pid = self.next_id("person")
                when = v2_time(self.now())
                self.state["persons"][str(pid)] = self._person_record(pid, {"name": f"Bulk Person {n}",
                                                                            "org_id": org_id}, when)
                ids.append(pid)
            self.persist()
        return ids
