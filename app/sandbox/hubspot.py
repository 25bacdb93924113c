"""A local imitation of HubSpot's CRM API (v3 objects, v4 associations, properties, pipelines) and OAuth.

Follows ../shared/reference/hubspot.md (its "Fake-server checklist" in particular) and the OpenAPI
documents in ../shared/specs/hubspot/: the v3 record shape ``{id, properties, createdAt, updatedAt,
archived}`` with every property value a string; list paging by an opaque ``after``; search with
filter groups, one sort, ``total``, 200 per page and the 10,000-result cap; batch read/create/update/
archive of at most 100 inputs (207 for partial results, all-or-nothing validation, 409 naming the
existing contact on a duplicate email); v4 associations with numeric ``toObjectId``; the properties API
(409 on a duplicate name, 400 ``PROPERTY_DOESNT_EXIST`` on an unknown property); deal pipelines whose
stage metadata are strings; OAuth with 30-minute access tokens and a refresh token that never rotates;
110 requests per 10 s per installed app and account (search: 5 per second, exempt from the 10-second
window as the spec's ``x-hubspot-rate-limit-exemptions`` says), answered with 429 and HubSpot's body.

Both the legacy numeric paths (``/crm/v3/...``) and the 2026-03 date-based paths are served.
``search_lag`` (seconds) makes search see the data as it was that long ago, like HubSpot's index.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import json
import re
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import HttpError, Request, Response, SandboxApp, iso, route

OBJECT_TYPES = ("contacts", "companies", "deals", "line_items", "products")
TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3", "products": "0-7", "line_items": "0-8"}
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal", "line_items": "line_item",
            "products": "product"}
ALIASES = {**{t: t for t in OBJECT_TYPES}, **{v: k for k, v in TYPE_IDS.items()},
           **{v: k for k, v in SINGULAR.items()}, "lineitems": "line_items", "line_item": "line_items",
           "lineitem": "line_items"}
OBJ = r"/crm/(?:v3/objects|objects/2026-03)/(?P<type>[\w-]+)"
PROPS = r"/crm/(?:v3/properties|properties/2026-03)/(?P<type>[\w-]+)"
PIPES = r"/crm/(?:v3/pipelines|pipelines/2026-03)/(?P<type>[\w-]+)"
ASSOC_OBJ = r"/crm/(?:v4/objects|objects/2026-03)"
ASSOC_BATCH = r"/crm/(?:v4/associations|associations/2026-03)/(?P<from>[\w-]+)/(?P<to>[\w-]+)/batch"
BATCH_MAX = 100
LIST_MAX = 100
SEARCH_MAX = 200
SEARCH_CAP = 10_000
ASSOC_READ_MAX = 1000
ASSOC_PAGE_MAX = 500
SEARCH_GROUPS_MAX, SEARCH_FILTERS_PER_GROUP, SEARCH_FILTERS_MAX = 5, 10, 25

# HubSpot-defined association types: id -> (from, to, v3 name, label). Inverses pair up below.
ASSOC_TYPES: dict[int, tuple[str, str, str, str | None]] = {
    1: ("contacts", "companies", "contact_to_company", "Primary"),
    279: ("contacts", "companies", "contact_to_company_unlabeled", None),
    2: ("companies", "contacts", "company_to_contact", "Primary"),
    280: ("companies", "contacts", "company_to_contact_unlabeled", None),
    3: ("deals", "contacts", "deal_to_contact", None),
    4: ("contacts", "deals", "contact_to_deal", None),
    5: ("deals", "companies", "deal_to_company", "Primary"),
    341: ("deals", "companies", "deal_to_company_unlabeled", None),
    6: ("companies", "deals", "company_to_deal", "Primary"),
    342: ("companies", "deals", "company_to_deal_unlabeled", None),
    19: ("deals", "line_items", "deal_to_line_item", None),
    20: ("line_items", "deals", "line_item_to_deal", None),
}
INVERSE = {1: 2, 2: 1, 279: 280, 280: 279, 3: 4, 4: 3, 5: 6, 6: 5, 341: 342, 342: 341, 19: 20, 20: 19}
DEFAULT_TYPE = {("contacts", "companies"): 279, ("companies", "contacts"): 280, ("deals", "contacts"): 3,
                ("contacts", "deals"): 4, ("deals", "companies"): 341, ("companies", "deals"): 342,
                ("deals", "line_items"): 19, ("line_items", "deals"): 20}
PRIMARY_TYPE = {("contacts", "companies"): 1, ("deals", "companies"): 5}

DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
              "hs_object_id", "pipeline"),
    "line_items": ("amount", "createdate", "hs_lastmodifieddate", "hs_object_id", "hs_product_id", "name",
                   "price", "quantity"),
    "products": ("createdate", "description", "hs_lastmodifieddate", "hs_object_id", "name", "price"),
}
TEXT_SEARCH = {"contacts": ("firstname", "lastname", "email", "phone", "company"),
               "companies": ("name", "domain", "website", "phone"), "deals": ("dealname",),
               "line_items": ("name", "hs_sku"), "products": ("name", "hs_sku", "description")}
GROUP = {"contacts": "contactinformation", "companies": "companyinformation", "deals": "dealinformation",
         "line_items": "lineiteminformation", "products": "productinformation"}
CURRENCIES = ("USD", "GBP", "EUR", "AUD")

# Standard properties: (name, label, type, fieldType, read-only?). Options for enumerations below.
_S, _N, _DT, _D, _E, _B = "string", "number", "datetime", "date", "enumeration", "bool"
_SYSTEM = [("hs_object_id", "Record ID", _N, "number", True), ("createdate", "Create Date", _DT, "date", True),
           ("hs_lastmodifieddate", "Last Modified Date", _DT, "date", True),
           ("hs_merged_object_ids", "Merged record IDs", _E, "checkbox", True)]
STANDARD: dict[str, list[tuple[str, str, str, str, bool]]] = {
    "contacts": [("firstname", "First Name", _S, "text", False), ("lastname", "Last Name", _S, "text", False),
                 ("email", "Email", _S, "text", False), ("phone", "Phone Number", _S, "phonenumber", False),
                 ("mobilephone", "Mobile Phone Number", _S, "phonenumber", False),
                 ("address", "Street Address", _S, "text", False), ("city", "City", _S, "text", False),
                 ("state", "State/Region", _S, "text", False), ("zip", "Postal Code", _S, "text", False),
                 ("country", "Country/Region", _S, "text", False), ("company", "Company Name", _S, "text", False),
                 ("jobtitle", "Job Title", _S, "text", False), ("website", "Website URL", _S, "text", False),
                 ("lifecyclestage", "Lifecycle Stage", _E, "radio", False),
                 ("associatedcompanyid", "Primary Associated Company ID", _N, "number", True),
                 ("hs_additional_emails", "Additional email addresses", _E, "checkbox", True),
                 ("lastmodifieddate", "Last Modified Date", _DT, "date", True), *_SYSTEM],
    "companies": [("name", "Company name", _S, "text", False), ("domain", "Company Domain Name", _S, "text", False),
                  ("website", "Website URL", _S, "text", False), ("phone", "Phone Number", _S, "phonenumber", False),
                  ("address", "Street Address", _S, "text", False),
                  ("address2", "Street Address 2", _S, "text", False), ("city", "City", _S, "text", False),
                  ("state", "State/Region", _S, "text", False), ("zip", "Postal Code", _S, "text", False),
                  ("country", "Country/Region", _S, "text", False), ("industry", "Industry", _S, "text", False),
                  ("description", "Description", _S, "textarea", False),
                  ("numberofemployees", "Number of Employees", _N, "number", False),
                  ("annualrevenue", "Annual Revenue", _N, "number", False),
                  ("lifecyclestage", "Lifecycle Stage", _E, "radio", False), *_SYSTEM],
    "deals": [("dealname", "Deal Name", _S, "text", False), ("amount", "Amount", _N, "number", False),
              ("dealstage", "Deal Stage", _E, "radio", False), ("pipeline", "Pipeline", _E, "select", False),
              ("closedate", "Close Date", _DT, "date", False),
              ("deal_currency_code", "Currency", _E, "select", False),
              ("description", "Deal Description", _S, "textarea", False),
              ("dealtype", "Deal Type", _E, "radio", False),
              ("hs_is_closed", "Is Deal Closed?", _B, "booleancheckbox", True),
              ("hs_is_closed_won", "Is Closed Won", _B, "booleancheckbox", True),
              ("hs_is_closed_lost", "Is closed lost", _B, "booleancheckbox", True),
              ("hs_deal_stage_probability", "Deal probability", _N, "number", True), *_SYSTEM],
    "line_items": [("name", "Name", _S, "text", False), ("description", "Description", _S, "textarea", False),
                   ("quantity", "Quantity", _N, "number", False), ("price", "Unit price", _N, "number", False),
                   ("amount", "Net price", _N, "number", True), ("discount", "Unit discount", _N, "number", False),
                   ("hs_discount_percentage", "Discount Percentage", _N, "number", False),
                   ("hs_sku", "SKU", _S, "text", False), ("hs_product_id", "Product ID", _N, "number", False),
                   ("hs_line_item_currency_code", "Currency", _E, "select", False),
                   ("hs_recurring_billing_period", "Term", _S, "text", False),
                   ("hs_tax_rate_group_id", "Tax rate", _S, "text", False), *_SYSTEM],
    "products": [("name", "Name", _S, "text", False), ("description", "Description", _S, "textarea", False),
                 ("price", "Unit price", _N, "number", False), ("hs_sku", "SKU", _S, "text", False),
                 ("hs_cost_of_goods_sold", "Unit cost", _N, "number", False),
                 ("hs_recurring_billing_period", "Term", _S, "text", False), *_SYSTEM],
}
LIFECYCLE = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
             "evangelist", "other")
PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool", "phone_number"}
FIELD_TYPES = {"textarea", "text", "date", "file", "number", "select", "radio", "checkbox", "booleancheckbox",
               "calculation_equation", "phonenumber", "html"}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STAGE_ID = 7134200  # custom pipeline and stage ids are opaque numbers


def _now_iso(ms: int) -> str:
    return iso(ms / 1000)


def _num(value: Decimal) -> str:
    """HubSpot prints numbers without a fixed scale: 1500, 1500.5."""
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")


def parse_instant(text: str) -> int | None:
    """Epoch milliseconds from '1746057600000', an ISO-8601 datetime or a YYYY-MM-DD date."""
    text = str(text).strip()
    if re.fullmatch(r"-?\d{9,}", text):
        return int(text)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return round(moment.timestamp() * 1000)


def _correlation() -> str:
    return str(uuid.uuid4())


def hs_error(status: int, message: str, category: str, *, errors: list[dict[str, Any]] | None = None,
             context: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None,
             **extra: Any) -> HttpError:
    """HubSpot's standard error body (``status: error``, message, correlationId, category...)."""
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": _correlation(),
                            "category": category}
    if errors is not None:
        body["errors"] = errors
    if context is not None:
        body["context"] = context
    body.update(extra)
    return HttpError(status, body, headers)


def _invalid_values(problems: list[dict[str, Any]]) -> HttpError:
    """400 VALIDATION_ERROR the way property validation reports it (the list is JSON in the message)."""
    return hs_error(
        400, "Property values were not valid: " + json.dumps(problems, separators=(",", ":")),
        "VALIDATION_ERROR",
        errors=[{"message": p["message"], "code": p["error"], "in": p["name"],
                 "context": {"propertyName": [p["name"]]}} for p in problems],
        context={}, links={})


def _bad_request(message: str, **kw: Any) -> HttpError:
    return hs_error(400, message, "VALIDATION_ERROR", **kw)


def api(method: str, *patterns: str, scopes: tuple[str, ...] = (), search: bool = False) -> Callable:
    """Declare an authenticated API route; ``{type}`` in a scope is the request's object type."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(self: HubSpotSandbox, req: Request) -> Response:
            return self._serve_api(req, fn, scopes, search)

        for pattern in patterns:
            route(method, pattern)(wrapper)
        return wrapper

    return deco


class HubSpotSandbox(SandboxApp):
    """One HubSpot account (portal) with one installed public app."""

    provider = "hubspot"
    access_ttl = 1800  # 30 minutes
    refresh_ttl = None  # valid until the app is uninstalled or the token deleted
    refresh_rotates = False  # the refresh response echoes the same refresh token
    rate_limit = (110, 10.0)  # public app: per installed account, rolling 10 s
    search_rate = (5, 1.0)
    _lag = 0.0
    app_id = 4242421
    app_scopes = ("oauth crm.objects.contacts.read crm.objects.contacts.write crm.objects.companies.read "
                  "crm.objects.companies.write crm.objects.deals.read crm.objects.deals.write "
                  "crm.objects.line_items.read crm.objects.line_items.write crm.objects.products.read "
                  "crm.objects.products.write crm.schemas.contacts.read crm.schemas.contacts.write "
                  "crm.schemas.companies.read crm.schemas.companies.write crm.schemas.deals.read "
                  "crm.schemas.deals.write crm.schemas.line_items.read")

    def __init__(self, state_file: str | None = None, **kw: Any) -> None:
        super().__init__(state_file, **kw)
        self._index: dict[str, dict[str, dict[str, Any]]] | None = None
        self._pending: list[tuple[float, str, str]] = []

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
            self._index, self._pending = None, []
            self._default_pipeline()
            # The account's own set-up (not data): the custom company properties the demo story needs.
            self.add_property("companies", "tax_id", "Tax ID / VAT number", "string", "text",
                              description="The company's tax or VAT registration number")
            self.add_property("companies", "billing_email", "Billing email", "string", "text")
            if kind == "demo":
                self._seed_demo()
            elif kind != "empty":
                raise ValueError(f"unknown seed '{kind}'")
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

    # -- records ------------------------------------------------------------------------------
    def _stamp(self) -> int:
        """Milliseconds, strictly increasing across writes, as HubSpot's modification times are ordered."""
        ms = max(int(self.now() * 1000), self.state.get("last_ms", 0) + 1)
        self.state["last_ms"] = ms
        return ms

    def _insert(self, otype: str, props: dict[str, Any], when: int) -> str:
        start = {"contacts": 101, "companies": 9_800_001, "deals": 21_000_001, "line_items": 3_400_000_001,
                 "products": 1_640_001}[otype]
        rid = str(self.next_id(otype, start))
        rec = {"id": rid, "p": {}, "c": when, "u": when, "archived": False, "archivedAt": None}
        for key, value in props.items():
            self._set(rec, key, value)
        self.state["objects"][otype][rid] = rec
        self._after_write(otype, rec, touch=False)
        self._reindex(otype, rid)
        return rid

    @staticmethod
    def _set(rec: dict[str, Any], key: str, value: str | None) -> None:
        if value is None or value == "":
            rec["p"].pop(key, None)
        else:
            rec["p"][key] = value

    def _touch(self, otype: str, rec: dict[str, Any]) -> None:
        rec["u"] = self._stamp()
        self._reindex(otype, rec["id"])

    def _after_write(self, otype: str, rec: dict[str, Any], *, touch: bool = True) -> None:
        """Calculated values HubSpot keeps up to date: line item net price, the deal amount from its lines."""
        if otype == "line_items":
            qty = Decimal(rec["p"].get("quantity") or "1")
            price = Decimal(rec["p"].get("price") or "0")
            pct = Decimal(rec["p"].get("hs_discount_percentage") or "0")
            unit_discount = Decimal(rec["p"].get("discount") or "0")
            gross = qty * price
            net = gross - gross * pct / 100 - unit_discount * qty
            rec["p"]["amount"] = _num(net.quantize(Decimal("0.01")))
            for deal_id in self._linked("line_items", rec["id"], "deals"):
                self._recalc_deal(deal_id, touch=touch)

    def _recalc_deal(self, deal_id: str, *, touch: bool = True) -> None:
        deal = self.state["objects"]["deals"].get(deal_id)
        if deal is None or deal["archived"]:
            return
        lines = [self.state["objects"]["line_items"].get(i) for i in self._linked("deals", deal_id, "line_items")]
        lines = [x for x in lines if x and not x["archived"]]
        if not lines:
            return
        total = _num(sum((Decimal(x["p"].get("amount") or "0") for x in lines), Decimal(0)))
        if deal["p"].get("amount") != total:
            deal["p"]["amount"] = total
            if touch:
                self._touch("deals", deal)

    def _archive(self, otype: str, rec: dict[str, Any]) -> None:
        if rec["archived"]:
            return
        rec["archived"] = True
        rec["archivedAt"] = self._stamp()
        self._reindex(otype, rec["id"])
        if otype == "line_items":
            for deal_id in self._linked("line_items", rec["id"], "deals"):
                self._recalc_deal(deal_id)

    def _merge(self, otype: str, primary: str, loser: str) -> dict[str, Any]:
        objects = self.state["objects"][otype]
        keep, gone = objects.get(primary), objects.get(loser)
        if keep is None or gone is None or keep["archived"] or gone["archived"] or primary == loser:
            raise hs_error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                           context={"id": [primary if keep is None else loser]})
        for key, value in gone["p"].items():
            keep["p"].setdefault(key, value)
        merged = [x for x in (keep["p"].get("hs_merged_object_ids") or "").split(";") if x]
        merged += [loser] + [x for x in (gone["p"].get("hs_merged_object_ids") or "").split(";") if x]
        keep["p"]["hs_merged_object_ids"] = ";".join(merged)
        if otype == "contacts" and gone["p"].get("email"):
            extra = [x for x in (keep["p"].get("hs_additional_emails") or "").split(";") if x]
            keep["p"]["hs_additional_emails"] = ";".join([*extra, gone["p"]["email"]])
            keep["p"]["email"] = keep["p"].get("email") or gone["p"]["email"]
        for key in list(self.state["assoc"].get(f"{otype}:{loser}", {})):
            to_type, to_id = key.split(":")
            types = self.state["assoc"][f"{otype}:{loser}"][key]
            self._dissociate(otype, loser, to_type, to_id)
            self._associate(otype, primary, to_type, to_id,
                            [t for t in types if t not in PRIMARY_TYPE.values()] or [DEFAULT_TYPE[(otype, to_type)]])
        del objects[loser]
        self.state["merged"][otype][loser] = primary
        self._reindex(otype, loser)
        self._touch(otype, keep)
        return keep

    def _resolve(self, otype: str, rid: str) -> str:
        """A merged-away ID answers with the surviving record, as HubSpot does."""
        seen = 0
        while rid in self.state["merged"][otype] and seen < 50:
            rid, seen = self.state["merged"][otype][rid], seen + 1
        return rid

    def _get(self, otype: str, rid: str, *, archived: bool = False) -> dict[str, Any] | None:
        rec = self.state["objects"][otype].get(self._resolve(otype, str(rid)))
        if rec is None or rec["archived"] != archived:
            return None
        return rec

    def _stage(self, pipeline: str | None, stage: str | None) -> dict[str, Any] | None:
        for pipe in self.state["pipelines"]["deals"]:
            if pipe["id"] == pipeline:
                return next((s for s in pipe["stages"] if s["id"] == stage), None)
        return None

    def _values(self, otype: str, rec: dict[str, Any]) -> dict[str, str | None]:
        """Every property value as HubSpot prints it: strings, calculated ones included."""
        out: dict[str, str | None] = dict(rec["p"])
        out["hs_object_id"] = rec["id"]
        out["createdate"] = _now_iso(rec["c"])
        out["hs_lastmodifieddate"] = _now_iso(rec["u"])
        if otype == "contacts":
            out["lastmodifieddate"] = out["hs_lastmodifieddate"]
            primary = self._primary("contacts", rec["id"], "companies")
            if primary:
                out["associatedcompanyid"] = primary
        if otype == "deals":
            stage = self._stage(rec["p"].get("pipeline"), rec["p"].get("dealstage"))
            if stage:
                closed = stage["metadata"].get("isClosed") == "true"
                prob = Decimal(stage["metadata"].get("probability") or "0")
                out["hs_is_closed"] = "true" if closed else "false"
                out["hs_is_closed_won"] = "true" if closed and prob == 1 else "false"
                out["hs_is_closed_lost"] = "true" if closed and prob == 0 else "false"
                out["hs_deal_stage_probability"] = stage["metadata"].get("probability")
        return out

    def _out(self, otype: str, rec: dict[str, Any], props: Iterable[str] | None, *,
             associations: list[str] | None = None, values: dict[str, Any] | None = None) -> dict[str, Any]:
        values = values if values is not None else self._values(otype, rec)
        defs = self.state["properties"][otype]
        names = list(props) if props else list(DEFAULT_PROPERTIES[otype])
        body: dict[str, Any] = {
            "id": rec["id"],
            "properties": {n: values.get(n) for n in names if n in defs or n in values},
            "createdAt": _now_iso(rec["c"]),
            "updatedAt": _now_iso(rec["u"]),
            "archived": bool(rec["archived"]),
        }
        if rec["archived"]:
            body["archivedAt"] = _now_iso(rec["archivedAt"])
        if associations:
            assoc: dict[str, Any] = {}
            for to_type in associations:
                rows = []
                for to_id, types in self._links(otype, rec["id"], to_type).items():
                    rows += [{"id": to_id, "type": ASSOC_TYPES[t][2]} for t in types if t in ASSOC_TYPES]
                if rows:
                    assoc[to_type] = {"results": rows}
            if assoc:
                body["associations"] = assoc
        return body

    # -- associations -----------------------------------------------------------------------
    def _links(self, otype: str, rid: str, to_type: str) -> dict[str, list[int]]:
        found = self.state["assoc"].get(f"{otype}:{rid}", {})
        out = {}
        for key, types in found.items():
            t, _, i = key.partition(":")
            if t == to_type and self._get(to_type, i) is not None:
                out[i] = types
        return out

    def _linked(self, otype: str, rid: str, to_type: str) -> list[str]:
        return sorted(self._links(otype, rid, to_type), key=int)

    def _primary(self, otype: str, rid: str, to_type: str) -> str | None:
        primary = PRIMARY_TYPE.get((otype, to_type))
        return next((i for i, t in self._links(otype, rid, to_type).items() if primary in t), None)

    def _associate(self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: list[int], *,
                   touch: bool = True) -> None:
        """Link both directions; a new primary company replaces the old one (which stays unlabeled)."""
        if (from_type, to_type) in (("companies", "contacts"), ("companies", "deals"), ("line_items", "deals")):
            from_type, from_id, to_type, to_id = to_type, to_id, from_type, from_id
            type_ids = [INVERSE[t] for t in type_ids]
        before = self._watch(from_type, from_id, to_type, to_id)
        primary = PRIMARY_TYPE.get((from_type, to_type))
        if primary in type_ids:
            for other, types in self._links(from_type, from_id, to_type).items():
                if other != to_id and primary in types:
                    self._set_types(from_type, from_id, to_type, other,
                                    [t for t in types if t != primary] or [DEFAULT_TYPE[(from_type, to_type)]])
        current = self.state["assoc"].get(f"{from_type}:{from_id}", {}).get(f"{to_type}:{to_id}", [])
        self._set_types(from_type, from_id, to_type, to_id, sorted(set(current) | set(type_ids)))
        self._after_link(from_type, from_id, to_type, to_id, before, touch)

    def _set_types(self, from_type: str, from_id: str, to_type: str, to_id: str, types: list[int]) -> None:
        assoc = self.state["assoc"]
        assoc.setdefault(f"{from_type}:{from_id}", {})[f"{to_type}:{to_id}"] = types
        assoc.setdefault(f"{to_type}:{to_id}", {})[f"{from_type}:{from_id}"] = sorted(INVERSE[t] for t in types)

    def _dissociate(self, from_type: str, from_id: str, to_type: str, to_id: str, *, touch: bool = True) -> None:
        before = self._watch(from_type, from_id, to_type, to_id)
        self.state["assoc"].get(f"{from_type}:{from_id}", {}).pop(f"{to_type}:{to_id}", None)
        self.state["assoc"].get(f"{to_type}:{to_id}", {}).pop(f"{from_type}:{from_id}", None)
        self._after_link(from_type, from_id, to_type, to_id, before, touch)

    def _watch(self, from_type: str, from_id: str, to_type: str, to_id: str) -> str | None:
        """The contact's primary company before a link change (None when no contact is involved)."""
        contact = {from_type: from_id, to_type: to_id}.get("contacts")
        if contact is None or {from_type, to_type} != {"contacts", "companies"}:
            return None
        return self._primary("contacts", contact, "companies") or ""

    def _after_link(self, from_type: str, from_id: str, to_type: str, to_id: str, before: str | None,
                    touch: bool) -> None:
        """A contact's primary company is its ``associatedcompanyid``; a deal's amount follows its lines."""
        ids = {from_type: from_id, to_type: to_id}
        if before is not None:
            rec = self.state["objects"]["contacts"].get(ids["contacts"])
            if rec and touch and (self._primary("contacts", rec["id"], "companies") or "") != before:
                self._touch("contacts", rec)
        if {from_type, to_type} == {"deals", "line_items"}:
            self._recalc_deal(ids["deals"], touch=touch)

    # -- search index -------------------------------------------------------------------------
    @property
    def search_lag(self) -> float:
        """Seconds the search index trails the records (0: search sees every write at once)."""
        return self._lag

    @search_lag.setter
    def search_lag(self, seconds: float) -> None:
        with self.lock:
            if seconds > 0 and self._index is None:
                self._index = {t: {} for t in OBJECT_TYPES}
                for t in OBJECT_TYPES:
                    for r in self.state["objects"][t].values():
                        if not r["archived"]:
                            self._index[t][r["id"]] = {"rec": copy.deepcopy(r), "values": self._values(t, r)}
                self._pending = []
            self._lag = seconds

    def _reindex(self, otype: str, rid: str) -> None:
        if self.search_lag > 0:
            self._pending.append((self.now() + self.search_lag, otype, rid))

    def _searchable(self, otype: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(record, values) pairs the search index holds now."""
        if self.search_lag <= 0:
            self._index = None
            return [(r, self._values(otype, r)) for r in self.state["objects"][otype].values() if not r["archived"]]
        if self._index is None:
            self.search_lag = self.search_lag  # builds the index from the records as they are now
        assert self._index is not None
        now = self.now()
        due = [p for p in self._pending if p[0] <= now]
        self._pending = [p for p in self._pending if p[0] > now]
        for _, t, rid in sorted(due):
            rec = self.state["objects"][t].get(rid)
            if rec is None or rec["archived"]:
                self._index[t].pop(rid, None)
            else:
                self._index[t][rid] = {"rec": copy.deepcopy(rec), "values": self._values(t, rec)}
        return [(e["rec"], e["values"]) for e in self._index[otype].values()]

    # -- oauth --------------------------------------------------------------------------------
    @route("GET", r"/oauth/authorize")
    def oauth_authorize(self, req: Request) -> Response:
        return self._authorize(req)

    @route("GET", r"/oauth/(?P<hub>\d+)/authorize")
    def oauth_authorize_hub(self, req: Request) -> Response:
        return self._authorize(req)

    def _authorize(self, req: Request) -> Response:
        """Auto-approve; the granted scopes are ``scope`` plus ``optional_scope`` (space-separated)."""
        resp = self.authorize_redirect(req)
        location = resp.headers.get("Location", "")
        code = dict(
            part.split("=", 1) for part in location.split("?", 1)[-1].split("&") if "=" in part).get("code")
        if code and code in self.state["oauth"]["codes"]:
            scopes = (req.arg("scope") or "").split() + (req.arg("optional_scope") or "").split()
            self.state["oauth"]["codes"][code]["scope"] = " ".join(dict.fromkeys(scopes))
            self.persist()
        return resp

    @route("POST", r"/oauth/(?:v1|v3|2026-03)/token")
    def oauth_token(self, req: Request) -> Response:
        form = req.form()
        if not form.get("client_id"):
            raise self.token_error(400, "invalid_client", "missing or unknown client id")
        if not form.get("client_secret"):
            raise self._oauth_error("BAD_CLIENT_SECRET", "invalid_client", "missing or invalid client secret")
        return self.token_endpoint(req)

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        code = {"invalid_client": "BAD_CLIENT_ID", "unsupported_grant_type": "BAD_GRANT_TYPE"}.get(error)
        if code is None:
            text = description.lower()
            code = ("BAD_REDIRECT_URI" if "redirect" in text else "BAD_REFRESH_TOKEN" if "refresh" in text
                    else "BAD_AUTH_CODE")
        return self._oauth_error(code, error, description or error)

    @staticmethod
    def _oauth_error(code: str, error: str, message: str) -> HttpError:
        """HubSpot's OAuth errors keep their ``status`` code and add the OAuth ``error`` fields."""
        return HttpError(400, {"status": code, "message": message, "correlationId": _correlation(),
                               "error": error, "error_description": message})

    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        portal = self.state["portal"]
        return {"hub_id": portal["portalId"], "user_id": portal["user_id"], "scopes": self._scopes(grant)}

    def _scopes(self, grant: dict[str, Any]) -> list[str]:
        requested = (grant.get("scope") or "").split()
        return list(dict.fromkeys(["oauth", *(requested or self.app_scopes.split())]))  # oauth is implicit

    def _token_info(self, token: str, record: dict[str, Any]) -> dict[str, Any]:
        portal = self.state["portal"]
        return {"token": token, "user": portal["user"], "hub_domain": portal["hub_domain"],
                "scopes": self._scopes(record), "hub_id": portal["portalId"], "app_id": self.app_id,
                "expires_in": max(0, int(record["expires"] - self.now())), "user_id": portal["user_id"],
                "token_type": "access"}

    @route("GET", r"/oauth/v1/access-tokens/(?P<token>[^/]+)")
    def oauth_access_token_info(self, req: Request) -> Response:
        record = self.state["oauth"]["access"].get(req.params["token"])
        if not record or record["expires"] < self.now():
            raise hs_error(404, "Token not found", "OBJECT_NOT_FOUND")
        return Response(200, self._token_info(req.params["token"], record))

    @route("POST", r"/oauth/(?:v3|2026-03)/token/introspect")
    def oauth_introspect(self, req: Request) -> Response:
        form = req.form()
        if not form.get("client_id") or not form.get("client_secret"):
            raise self._oauth_error("BAD_CLIENT_SECRET", "invalid_client", "missing or invalid client secret")
        token = form.get("token", "")
        record = self.state["oauth"]["access"].get(token)
        if not record or record["expires"] < self.now():
            return Response(200, {"active": False})
        return Response(200, {**self._token_info(token, record), "active": True, "client_id": record["client_id"],
                              "is_private_distribution": False, "token_use": "access_token"})

    @route("GET", r"/oauth/v1/refresh-tokens/(?P<token>[^/]+)")
    def oauth_refresh_info(self, req: Request) -> Response:
        record = self.state["oauth"]["refresh"].get(req.params["token"])
        if not record or record.get("revoked"):
            raise hs_error(404, "Token not found", "OBJECT_NOT_FOUND")
        portal = self.state["portal"]
        return Response(200, {"token": req.params["token"], "user": portal["user"],
                              "hub_domain": portal["hub_domain"], "scopes": self._scopes(record),
                              "hub_id": portal["portalId"], "client_id": record["client_id"],
                              "user_id": portal["user_id"], "token_type": "refresh"})

    @route("DELETE", r"/oauth/v1/refresh-tokens/(?P<token>[^/]+)")
    def oauth_refresh_delete(self, req: Request) -> Response:
        self.revoke_refresh(req.params["token"])
        self.persist()
        return Response(204)

    def unauthorized(self, why: str) -> HttpError:
        if why == "expired":
            return hs_error(401, "The OAuth token used to make this call expired.", "EXPIRED_AUTHENTICATION")
        return hs_error(401, "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                             "and you can find more details at https://developers.hubspot.com/docs/methods/auth/"
                             "oauth-overview", "INVALID_AUTHENTICATION")

    def not_found_body(self, req: Request) -> Any:
        return {"status": "error", "message": f"Unable to find a route for {req.method} {req.path}",
                "correlationId": _correlation(), "category": "OBJECT_NOT_FOUND"}

    # -- the API wrapper ----------------------------------------------------------------------
    def _serve_api(self, req: Request, fn: Callable, scopes: tuple[str, ...], search: bool) -> Response:
        record = self.authenticate(req)
        otype = self._type_arg(req)
        granted = set(self._scopes(record))
        wanted = [s.format(type=otype or "") for s in scopes]
        if wanted and not granted & set(wanted):
            raise hs_error(403, "This app hasn't been granted all required scopes to make this call. Read more "
                                "about required scopes here: https://developers.hubspot.com/scopes.",
                           "MISSING_SCOPES",
                           errors=[{"message": "One or more of the following scopes are required.",
                                    "context": {"requiredGranularScopes": wanted}}],
                           links={"scopes": "https://developers.hubspot.com/scopes"})
        portal = self.state["portal"]["portalId"]
        group = f"publicapi:oauth:{self.app_id}:{portal}"
        headers: dict[str, str] = {}
        if search:
            limit, window = self.search_rate
            if self.check_rate(f"search:{portal}", limit, window) is not None:
                raise hs_error(429, "You have reached your secondly limit.", "RATE_LIMITS", errorType="RATE_LIMIT",
                               policyName="SECONDLY", groupName=f"publicapi:search:{portal}")
        elif self.rate_limit:
            limit, window = self.rate_limit
            if self.check_rate(group, limit, window) is not None:
                raise hs_error(429, "You have reached your ten_secondly_rolling limit.", "RATE_LIMITS",
                               errorType="RATE_LIMIT", policyName="TEN_SECONDLY_ROLLING", groupName=group,
                               headers=self._limit_headers(group, limit, window))
            headers = self._limit_headers(group, limit, window)
        resp = fn(self, req)
        resp.headers.update(headers)
        if req.method != "GET":
            self.persist()
        return resp

    def _limit_headers(self, group: str, limit: int, window: float) -> dict[str, str]:
        used = len(self._windows.get(f"{group}:{window}", ()))
        return {"X-HubSpot-RateLimit-Interval-Milliseconds": str(int(window * 1000)),
                "X-HubSpot-RateLimit-Max": str(limit),
                "X-HubSpot-RateLimit-Remaining": str(max(0, limit - used))}

    @staticmethod
    def _type_name(raw: str | None) -> str | None:
        if raw is None:
            return None
        return ALIASES.get(raw.lower())

    def _type_arg(self, req: Request) -> str | None:
        raw = req.params.get("type") or req.params.get("from")
        if raw is None:
            return None
        otype = self._type_name(raw)
        if otype is None:
            raise _bad_request(f"Unable to infer object type from: {raw}")
        return otype

    @staticmethod
    def _csv(req: Request, name: str) -> list[str]:
        out: list[str] = []
        for value in req.query.get(name, []):
            out += [v.strip() for v in value.split(",") if v.strip()]
        return out

    @staticmethod
    def _flag(req: Request, name: str) -> bool:
        return (req.arg(name) or "false").lower() == "true"

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        try:
            body = json.loads(req.body) if req.body else None
        except ValueError as exc:
            raise _bad_request("Invalid input JSON on line 1: the body could not be parsed.") from exc
        if not isinstance(body, dict):
            raise _bad_request("Invalid input JSON: expected an object.")
        return body

    def _batch_inputs(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise _bad_request("Invalid input: 'inputs' must be a list of objects.")
        if len(inputs) > BATCH_MAX:
            raise _bad_request(f"Batch input cannot exceed {BATCH_MAX} inputs; {len(inputs)} were sent.",
                               context={"size": [str(len(inputs))]})
        return inputs

    def _batch_response(self, results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str, *,
                        ok_status: int = 200) -> Response:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                "completedAt": iso(self.now())}
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
            return Response(207, body)
        return Response(ok_status, body)

    @staticmethod
    def _not_found_error(otype: str, ids: list[str]) -> dict[str, Any]:
        return {"status": "error", "category": "OBJECT_NOT_FOUND",
                "message": f"Could not get some {SINGULAR[otype].upper()} objects, they may be deleted or not "
                           "exist. Check that ids are valid.",
                "context": {"ids": ids}, "errors": [], "links": {}}

    # -- property validation ------------------------------------------------------------------
    def _clean(self, otype: str, props: Any, current: dict[str, Any] | None) -> tuple[dict[str, str | None],
                                                                                      list[dict[str, Any]]]:
        """Writable values as HubSpot stores them, or the problems it reports."""
        if not isinstance(props, dict):
            return {}, [{"isValid": False, "message": "properties must be an object", "error": "INVALID_INPUT",
                         "name": "properties"}]
        defs = self.state["properties"][otype]
        out: dict[str, str | None] = {}
        problems: list[dict[str, Any]] = []

        def bad(name: str, code: str, message: str) -> None:
            problems.append({"isValid": False, "message": message, "error": code, "name": name})

        for name, raw in props.items():
            d = defs.get(name)
            if d is None or d.get("archived"):
                bad(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                continue
            if d["modificationMetadata"]["readOnlyValue"]:
                bad(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
                continue
            if raw is None or (isinstance(raw, str) and raw.strip() == ""):
                out[name] = None
                continue
            value = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
            kind = d["type"]
            if kind == "number":
                try:
                    number = Decimal(value.strip())
                    if not number.is_finite():
                        raise InvalidOperation
                except InvalidOperation:
                    bad(name, "INVALID_DECIMAL", f"{value} was not a valid number.")
                    continue
                if name in ("price", "quantity") and otype == "line_items" and number < 0:
                    bad(name, "INVALID_DECIMAL", f"{value} must not be negative.")
                    continue
                out[name] = _num(number)
            elif kind in ("date", "datetime"):
                ms = parse_instant(value)
                if ms is None:
                    bad(name, "INVALID_DATE", f"{value} is not a valid {kind}.")
                    continue
                if kind == "date":
                    if ms % 86_400_000:
                        moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
                        bad(name, "INVALID_DATE", f"{value} is at {moment.strftime('%H:%M:%S')}."
                                                  f"{moment.microsecond // 1000:03d} UTC, not midnight!")
                        continue
                    out[name] = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date().isoformat()
                else:
                    out[name] = _now_iso(ms)
            elif kind == "bool":
                if value.lower() not in ("true", "false"):
                    bad(name, "INVALID_OPTION", f"{value} was not one of the allowed options: [true, false]")
                    continue
                out[name] = value.lower()
            elif kind == "enumeration" and name not in ("dealstage", "pipeline"):
                allowed = {o["value"] for o in d["options"]}
                parts = value.split(";") if d["fieldType"] == "checkbox" else [value]
                wrong = [p for p in parts if p not in allowed]
                if wrong:
                    bad(name, "INVALID_OPTION", f"{wrong[0]} was not one of the allowed options: "
                                                f"[{', '.join(sorted(allowed))}]")
                    continue
                out[name] = value
            else:
                out[name] = value
        if otype == "contacts" and out.get("email") and not EMAIL_RE.match(out["email"] or ""):
            bad("email", "INVALID_EMAIL", f"Email address {out['email']} is invalid")
        if otype == "deals" and ("dealstage" in out or "pipeline" in out):
            cur = (current or {}).get("p", {})
            pipeline = out.get("pipeline", cur.get("pipeline")) or "default"
            stage = out.get("dealstage", cur.get("dealstage"))
            if not any(p["id"] == pipeline for p in self.state["pipelines"]["deals"]):
                bad("pipeline", "INVALID_OPTION", f"{pipeline} was not one of the allowed options")
            elif stage and self._stage(pipeline, stage) is None:
                bad("dealstage", "INVALID_OPTION",
                    f"{stage} was not one of the allowed options for pipeline {pipeline}")
            elif "pipeline" not in out and current is None:
                out["pipeline"] = pipeline
        if otype == "line_items" and out.get("hs_product_id"):
            product = self._get("products", out["hs_product_id"] or "")
            if product is None:
                bad("hs_product_id", "INVALID_OBJECT_ID", f"Product {out['hs_product_id']} does not exist")
        return out, problems

    def _email_owner(self, email: str | None, skip: str | None = None) -> str | None:
        if not email:
            return None
        key = email.casefold()
        for rec in self.state["objects"]["contacts"].values():
            if rec["id"] != skip and not rec["archived"] and (rec["p"].get("email") or "").casefold() == key:
                return rec["id"]
        return None

    @staticmethod
    def _conflict(existing: str) -> HttpError:
        return hs_error(409, f"Contact already exists. Existing ID: {existing}", "CONFLICT")

    def _prepare_create(self, otype: str, item: dict[str, Any], pending: dict[str, str],
                        problems: list[dict[str, Any]]) -> tuple[dict[str, Any], list[tuple[str, str, list[int]]]]:
        values, bad = self._clean(otype, item.get("properties"), None)
        problems += bad
        if otype == "contacts" and values.get("email"):
            if values["email"].casefold() in pending:
                raise _bad_request(f"Duplicate input for email {values['email']}: each contact in a batch needs "
                                   "its own email address", context={"email": [values["email"]]})
            existing = self._email_owner(values["email"])
            if existing:
                raise self._conflict(existing)
            pending[values["email"].casefold()] = "new"
        links = []
        for assoc in item.get("associations") or []:
            to_id = str(((assoc or {}).get("to") or {}).get("id") or "")
            for spec in (assoc or {}).get("types") or []:
                type_id = spec.get("associationTypeId")
                known = ASSOC_TYPES.get(type_id) if isinstance(type_id, int) else None
                if not known or known[0] != otype:
                    raise _bad_request(f"{type_id} is not a valid association type id from {otype}")
                if self._get(known[1], to_id) is None:
                    raise hs_error(400, f"No {known[1][:-1] if known[1] != 'companies' else 'company'} with ID "
                                        f"{to_id} exists", "VALIDATION_ERROR", context={"id": [to_id]})
                links.append((known[1], to_id, [type_id]))
        if otype == "line_items" and values.get("hs_product_id"):
            product = self._get("products", values["hs_product_id"] or "")
            if product:  # a line item copies name, price and SKU from its product
                for key in ("name", "price", "hs_sku", "description"):
                    if values.get(key) is None and product["p"].get(key):
                        values[key] = product["p"][key]
        return values, links

    def _create_one(self, otype: str, values: dict[str, Any], links: list[tuple[str, str, list[int]]]) -> dict:
        rid = self._insert(otype, {k: v for k, v in values.items() if v is not None}, self._stamp())
        for to_type, to_id, types in links:
            self._associate(otype, rid, to_type, self._resolve(to_type, to_id), types, touch=False)
        return self.state["objects"][otype][rid]

    def _update_one(self, otype: str, rec: dict[str, Any], values: dict[str, Any]) -> None:
        for key, value in values.items():
            self._set(rec, key, value)
        self._touch(otype, rec)
        self._after_write(otype, rec)

    def _id_property(self, otype: str, name: str | None) -> str | None:
        if not name or name == "hs_object_id":
            return None
        d = self.state["properties"][otype].get(name)
        if name == "email" and otype == "contacts":
            return name
        if d is None or not d.get("hasUniqueValue"):
            raise _bad_request(f"{name} is not a unique property and cannot be used as an idProperty")
        return name

    def _find(self, otype: str, rid: str, id_property: str | None, *, archived: bool = False) -> dict | None:
        if id_property is None:
            return self._get(otype, rid, archived=archived)
        for rec in self.state["objects"][otype].values():
            if rec["archived"] == archived and (rec["p"].get(id_property) or "").casefold() == rid.casefold():
                return rec
        return None

    # -- objects: basic -----------------------------------------------------------------------
    @api("GET", OBJ, scopes=("crm.objects.{type}.read",))
    def objects_list(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        archived = self._flag(req, "archived")
        try:
            limit = min(max(int(req.arg("limit") or 10), 1), LIST_MAX)
        except ValueError as exc:
            raise _bad_request("limit must be a number") from exc
        start = 0
        if req.arg("after"):
            try:
                start = int(base64.b64decode(req.arg("after") + "==").decode())
            except ValueError as exc:
                raise _bad_request("Invalid 'after' paging cursor") from exc
        rows = sorted((r for r in self.state["objects"][otype].values()
                       if r["archived"] == archived and int(r["id"]) >= start), key=lambda r: int(r["id"]))
        page, more = rows[:limit], len(rows) > limit
        props, assoc = self._csv(req, "properties"), self._assoc_types(req)
        body: dict[str, Any] = {"results": [self._out(otype, r, props, associations=assoc) for r in page]}
        if more:
            after = base64.b64encode(rows[limit]["id"].encode()).decode().rstrip("=")
            body["paging"] = {"next": {"after": after, "link": f"{self.public_url}{req.path}?after={after}"}}
        return Response(200, body)

    def _assoc_types(self, req: Request) -> list[str]:
        out = []
        for raw in self._csv(req, "associations"):
            name = self._type_name(raw)
            if name:
                out.append(name)
        return out

    @api("GET", OBJ + r"/(?P<id>[^/]+)", scopes=("crm.objects.{type}.read",))
    def objects_get(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        rec = self._find(otype, req.params["id"], self._id_property(otype, req.arg("idProperty")),
                         archived=self._flag(req, "archived"))
        if rec is None:
            raise hs_error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                           context={"id": [req.params["id"]]})
        return Response(200, self._out(otype, rec, self._csv(req, "properties"), associations=self._assoc_types(req)))

    @api("POST", OBJ, scopes=("crm.objects.{type}.write",))
    def objects_create(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        problems: list[dict[str, Any]] = []
        values, links = self._prepare_create(otype, self._body(req), {}, problems)
        if problems:
            raise _invalid_values(problems)
        rec = self._create_one(otype, values, links)
        return Response(201, self._out(otype, rec, list(self._values(otype, rec))))

    @api("PATCH", OBJ + r"/(?P<id>[^/]+)", scopes=("crm.objects.{type}.write",))
    def objects_update(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        rec = self._find(otype, req.params["id"], self._id_property(otype, req.arg("idProperty")))
        if rec is None:
            raise hs_error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                           context={"id": [req.params["id"]]})
        values, problems = self._clean(otype, self._body(req).get("properties"), rec)
        if problems:
            raise _invalid_values(problems)
        if otype == "contacts" and values.get("email"):
            existing = self._email_owner(values["email"], skip=rec["id"])
            if existing:
                raise self._conflict(existing)
        self._update_one(otype, rec, values)
        return Response(200, self._out(otype, rec, list(self._values(otype, rec))))

    @api("DELETE", OBJ + r"/(?P<id>[^/]+)", scopes=("crm.objects.{type}.write",))
    def objects_archive(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        rec = self._get(otype, req.params["id"])
        if rec is not None:
            self._archive(otype, rec)
        return Response(204)

    @api("POST", OBJ + r"/merge", scopes=("crm.objects.{type}.write",))
    def objects_merge(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        if otype not in ("contacts", "companies", "deals"):
            raise _bad_request(f"Merging {otype} is not supported")
        body = self._body(req)
        keep = self._merge(otype, str(body.get("primaryObjectId") or ""), str(body.get("objectIdToMerge") or ""))
        return Response(200, self._out(otype, keep, None))

    # -- objects: batch -----------------------------------------------------------------------
    @api("POST", OBJ + r"/batch/read", scopes=("crm.objects.{type}.read",))
    def batch_read(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        started = iso(self.now())
        body = self._body(req)
        inputs = self._batch_inputs(body)
        id_property = self._id_property(otype, body.get("idProperty"))
        archived = self._flag(req, "archived")
        props = [p for p in body.get("properties") or [] if isinstance(p, str)]
        results, missing = [], []
        for item in inputs:
            rec = self._find(otype, str(item.get("id") or ""), id_property, archived=archived)
            if rec is None:
                missing.append(str(item.get("id")))
            elif all(r["id"] != rec["id"] for r in results):
                results.append(self._out(otype, rec, props))
        errors = [self._not_found_error(otype, missing)] if missing else []
        return self._batch_response(results, errors, started)

    @api("POST", OBJ + r"/batch/create", scopes=("crm.objects.{type}.write",))
    def batch_create(self, req: Request) -> Response:
        """All or nothing: one invalid input (or a duplicate email) fails the whole request."""
        otype = self._type_arg(req) or ""
        started = iso(self.now())
        inputs = self._batch_inputs(self._body(req))
        pending: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        prepared = [self._prepare_create(otype, item, pending, problems) for item in inputs]
        if problems:
            raise _invalid_values(problems)
        created = [self._create_one(otype, values, links) for values, links in prepared]
        results = [self._out(otype, rec, list(self._values(otype, rec))) for rec in created]
        return self._batch_response(results, [], started, ok_status=201)

    @api("POST", OBJ + r"/batch/update", scopes=("crm.objects.{type}.write",))
    def batch_update(self, req: Request) -> Response:
        """Unknown IDs come back as a 207 partial result; invalid values fail the whole request."""
        otype = self._type_arg(req) or ""
        started = iso(self.now())
        inputs = self._batch_inputs(self._body(req))
        problems: list[dict[str, Any]] = []
        plan: list[tuple[dict[str, Any], dict[str, Any]]] = []
        missing: list[str] = []
        emails: dict[str, str] = {}
        for item in inputs:
            id_property = self._id_property(otype, item.get("idProperty"))
            rec = self._find(otype, str(item.get("id") or ""), id_property)
            if rec is None:
                missing.append(str(item.get("id")))
                continue
            values, bad = self._clean(otype, item.get("properties"), rec)
            problems += bad
            if otype == "contacts" and values.get("email"):
                existing = self._email_owner(values["email"], skip=rec["id"])
                key = values["email"].casefold()
                if existing is None and key in emails and emails[key] != rec["id"]:
                    existing = emails[key]
                if existing:
                    raise self._conflict(existing)
                emails[key] = rec["id"]
            plan.append((rec, values))
        if problems:
            raise _invalid_values(problems)
        results = []
        for rec, values in plan:
            self._update_one(otype, rec, values)
            results.append(self._out(otype, rec, list(self._values(otype, rec))))
        errors = [self._not_found_error(otype, missing)] if missing else []
        return self._batch_response(results, errors, started)

    @api("POST", OBJ + r"/batch/archive", scopes=("crm.objects.{type}.write",))
    def batch_archive(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        for item in self._batch_inputs(self._body(req)):
            rec = self._get(otype, str(item.get("id") or ""))
            if rec is not None:
                self._archive(otype, rec)
        return Response(204)

    # -- objects: search ----------------------------------------------------------------------
    @api("POST", OBJ + r"/search", scopes=("crm.objects.{type}.read",), search=True)
    def objects_search(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        body = self._body(req)
        try:
            limit = int(body.get("limit") if body.get("limit") is not None else 10)
            after = int(str(body.get("after") if body.get("after") not in (None, "") else 0))
        except ValueError as exc:
            raise _bad_request("limit and after must be numbers") from exc
        if limit > SEARCH_MAX or limit < 0:
            raise _bad_request(f"limit must be between 0 and {SEARCH_MAX}; got {limit}")
        if after >= SEARCH_CAP:
            raise _bad_request(f"Search results are limited to {SEARCH_CAP} records per query. Narrow the filters "
                               "(for example by hs_lastmodifieddate) to page further.",
                               context={"after": [str(after)]})
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or len(groups) > SEARCH_GROUPS_MAX:
            raise _bad_request(f"A search can have at most {SEARCH_GROUPS_MAX} filterGroups")
        count = 0
        for group in groups:
            filters = (group or {}).get("filters")
            if not isinstance(filters, list) or len(filters) > SEARCH_FILTERS_PER_GROUP:
                raise _bad_request(f"A filterGroup needs 'filters' (at most {SEARCH_FILTERS_PER_GROUP})")
            count += len(filters)
        if count > SEARCH_FILTERS_MAX:
            raise _bad_request(f"A search can have at most {SEARCH_FILTERS_MAX} filters in total")
        defs = self.state["properties"][otype]
        query = (body.get("query") or "").strip().casefold()
        rows = []
        for rec, values in self._searchable(otype):
            if groups and not any(all(self._match(defs, values, f) for f in g["filters"]) for g in groups):
                continue
            if query and not any(query in (values.get(p) or "").casefold() for p in TEXT_SEARCH[otype]):
                continue
            rows.append((rec, values))
        rows = self._sort(defs, rows, body.get("sorts") or [])
        page = rows[after:after + limit]
        props = [p for p in body.get("properties") or [] if isinstance(p, str)]
        out: dict[str, Any] = {"total": len(rows),
                               "results": [self._out(otype, r, props, values=v) for r, v in page]}
        if after + limit < len(rows):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return Response(200, out)

    @staticmethod
    def _typed(defs: dict[str, Any], name: str, value: Any) -> Any:
        if value is None or value == "":
            return None
        kind = (defs.get(name) or {}).get("type")
        if kind == "number":
            try:
                return Decimal(str(value))
            except InvalidOperation:
                return None
        if kind in ("date", "datetime"):
            return parse_instant(str(value))
        return str(value).casefold()

    def _match(self, defs: dict[str, Any], values: dict[str, Any], flt: dict[str, Any]) -> bool:
        name, op = flt.get("propertyName"), flt.get("operator")
        if not name or op is None:
            raise _bad_request("A filter needs propertyName and operator")
        if name not in defs:
            raise _bad_request(f"There was a problem with the request: property {name} does not exist",
                               context={"propertyName": [name]})
        have = self._typed(defs, name, values.get(name))
        if op == "HAS_PROPERTY":
            return have is not None
        if op == "NOT_HAS_PROPERTY":
            return have is None
        if op in ("IN", "NOT_IN"):
            wanted = [self._typed(defs, name, v) for v in flt.get("values") or []]
            return (have in wanted) == (op == "IN") if have is not None else op == "NOT_IN"
        want = self._typed(defs, name, flt.get("value"))
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(flt.get("value") or "").casefold().replace("*", "")
            found = have is not None and token in str(have)
            return found == (op == "CONTAINS_TOKEN")
        if op == "NEQ":
            return have != want
        if have is None or want is None:
            return False
        try:
            if op == "EQ":
                return have == want
            if op == "LT":
                return have < want
            if op == "LTE":
                return have <= want
            if op == "GT":
                return have > want
            if op == "GTE":
                return have >= want
            if op == "BETWEEN":
                high = self._typed(defs, name, flt.get("highValue"))
                return high is not None and want <= have <= high
        except TypeError:
            return False
        raise _bad_request(f"Unknown filter operator {op}")

    def _sort(self, defs: dict[str, Any], rows: list[tuple[dict, dict]], sorts: list[Any]) -> list[tuple[dict, dict]]:
        """One sort is honoured: ``{propertyName, direction}`` or a property name (``-name`` descending)."""
        rows = sorted(rows, key=lambda rv: int(rv[0]["id"]))
        if not sorts:
            return rows
        first = sorts[0]
        if isinstance(first, dict):
            name, descending = first.get("propertyName"), first.get("direction") == "DESCENDING"
        else:
            text = str(first)
            name, descending = text.lstrip("-"), text.startswith("-")
        if not name or name not in defs:
            raise _bad_request(f"Cannot sort by unknown property {name}")
        present = [rv for rv in rows if self._typed(defs, name, rv[1].get(name)) is not None]
        absent = [rv for rv in rows if self._typed(defs, name, rv[1].get(name)) is None]
        present.sort(key=lambda rv: self._typed(defs, name, rv[1].get(name)), reverse=descending)
        return present + absent

    # -- associations v4 ------------------------------------------------------------------------
    def _assoc_pair(self, req: Request, from_key: str = "from", to_key: str = "to") -> tuple[str, str]:
        from_type, to_type = self._type_name(req.params[from_key]), self._type_name(req.params[to_key])
        if from_type is None or to_type is None:
            raise _bad_request(f"Unable to infer object type from: {req.params[from_key]}/{req.params[to_key]}")
        if (from_type, to_type) not in DEFAULT_TYPE:
            raise _bad_request(f"{from_type} cannot be associated with {to_type}")
        return from_type, to_type

    @staticmethod
    def _specs(types: list[int]) -> list[dict[str, Any]]:
        return [{"category": "HUBSPOT_DEFINED", "typeId": t, "label": ASSOC_TYPES[t][3]} for t in types]

    @api("GET", ASSOC_OBJ + r"/(?P<from>[\w-]+)/(?P<id>\d+)/associations/(?P<to>[\w-]+)",
         scopes=("crm.objects.{type}.read",))
    def assoc_list(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        if self._get(from_type, req.params["id"]) is None:
            raise hs_error(404, f"No {from_type} with ID {req.params['id']} exists", "OBJECT_NOT_FOUND")
        rid = self._resolve(from_type, req.params["id"])
        try:
            limit = min(int(req.arg("limit") or ASSOC_PAGE_MAX), ASSOC_PAGE_MAX)
            start = int(req.arg("after") or 0)
        except ValueError as exc:
            raise _bad_request("limit and after must be numbers") from exc
        rows = sorted(self._links(from_type, rid, to_type).items(), key=lambda kv: int(kv[0]))
        page = rows[start:start + limit]
        body: dict[str, Any] = {"results": [{"toObjectId": int(i), "associationTypes": self._specs(t)}
                                            for i, t in page]}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return Response(200, body)

    @api("PUT", ASSOC_OBJ + r"/(?P<from>[\w-]+)/(?P<id>\d+)/associations/default/(?P<to>[\w-]+)/(?P<to_id>\d+)",
         scopes=("crm.objects.{type}.write",))
    def assoc_put_default(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        started = iso(self.now())
        results = self._link_default(from_type, req.params["id"], to_type, req.params["to_id"])
        return self._batch_response(results, [], started)

    def _link_default(self, from_type: str, from_id: str, to_type: str, to_id: str) -> list[dict[str, Any]]:
        """Default (unlabeled) association; a contact or deal without a primary company gets this one."""
        a, b = self._get(from_type, from_id), self._get(to_type, to_id)
        if a is None or b is None:
            missing = from_id if a is None else to_id
            raise hs_error(404, f"No {from_type if a is None else to_type} with ID {missing} exists",
                           "OBJECT_NOT_FOUND", context={"id": [missing]})
        types = [DEFAULT_TYPE[(from_type, to_type)]]
        primary = PRIMARY_TYPE.get((from_type, to_type))
        if primary and self._primary(from_type, a["id"], to_type) is None:
            types.append(primary)
        self._associate(from_type, a["id"], to_type, b["id"], types)
        return [{"from": {"id": a["id"]}, "to": {"id": b["id"]},
                 "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": t}}
                for t in types]

    @api("PUT", ASSOC_OBJ + r"/(?P<from>[\w-]+)/(?P<id>\d+)/associations/(?P<to>[\w-]+)/(?P<to_id>\d+)",
         scopes=("crm.objects.{type}.write",))
    def assoc_put(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        specs = json.loads(req.body or b"[]")
        types = self._check_specs(from_type, to_type, specs)
        a, b = self._get(from_type, req.params["id"]), self._get(to_type, req.params["to_id"])
        if a is None or b is None:
            raise hs_error(404, "Object not found", "OBJECT_NOT_FOUND")
        self._associate(from_type, a["id"], to_type, b["id"], types)
        links = self._links(from_type, a["id"], to_type)[b["id"]]
        return Response(200, {"fromObjectTypeId": TYPE_IDS[from_type], "fromObjectId": int(a["id"]),
                              "toObjectTypeId": TYPE_IDS[to_type], "toObjectId": int(b["id"]),
                              "labels": [ASSOC_TYPES[t][3] for t in links if ASSOC_TYPES[t][3]]})

    @staticmethod
    def _check_specs(from_type: str, to_type: str, specs: Any) -> list[int]:
        if not isinstance(specs, list) or not specs:
            raise _bad_request("Association types are required")
        types = []
        for spec in specs:
            type_id = (spec or {}).get("associationTypeId")
            known = ASSOC_TYPES.get(type_id) if isinstance(type_id, int) else None
            if not known or known[:2] != (from_type, to_type):
                raise _bad_request(f"{type_id} is not a valid association type from {from_type} to {to_type}")
            types.append(type_id)
        return types

    @api("DELETE", ASSOC_OBJ + r"/(?P<from>[\w-]+)/(?P<id>\d+)/associations/(?P<to>[\w-]+)/(?P<to_id>\d+)",
         scopes=("crm.objects.{type}.write",))
    def assoc_delete(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        self._dissociate(from_type, self._resolve(from_type, req.params["id"]), to_type,
                         self._resolve(to_type, req.params["to_id"]))
        return Response(204)

    @api("POST", ASSOC_BATCH + r"/read", scopes=("crm.objects.{type}.read",))
    def assoc_batch_read(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        started = iso(self.now())
        inputs = (self._body(req)).get("inputs")
        if not isinstance(inputs, list) or len(inputs) > ASSOC_READ_MAX:
            raise _bad_request(f"Batch input must be a list of at most {ASSOC_READ_MAX} inputs")
        results, missing = [], []
        for item in inputs:
            rid = str((item or {}).get("id") or "")
            if self._get(from_type, rid) is None:
                missing.append(rid)
                continue
            links = sorted(self._links(from_type, self._resolve(from_type, rid), to_type).items(),
                           key=lambda kv: int(kv[0]))
            if not links:
                missing.append(rid)  # HubSpot reports records without associations as errors
                continue
            start = int((item or {}).get("after") or 0)
            page = links[start:start + ASSOC_PAGE_MAX]
            row: dict[str, Any] = {"from": {"id": rid},
                                   "to": [{"toObjectId": int(i), "associationTypes": self._specs(t)} for i, t in page]}
            if start + ASSOC_PAGE_MAX < len(links):
                row["paging"] = {"next": {"after": str(start + ASSOC_PAGE_MAX)}}
            results.append(row)
        errors = []
        if missing:
            errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                           "message": f"No {to_type} is associated with {from_type} {', '.join(missing)}",
                           "context": {"fromObjectId": missing}, "errors": [], "links": {}})
        return self._batch_response(results, errors, started)

    @api("POST", ASSOC_BATCH + r"/associate/default", scopes=("crm.objects.{type}.write",))
    def assoc_batch_default(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        started = iso(self.now())
        results = []
        for item in self._batch_inputs(self._body(req)):
            results += self._link_default(from_type, str(((item or {}).get("from") or {}).get("id") or ""),
                                          to_type, str(((item or {}).get("to") or {}).get("id") or ""))
        return self._batch_response(results, [], started)

    @api("POST", ASSOC_BATCH + r"/create", scopes=("crm.objects.{type}.write",))
    def assoc_batch_create(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        started = iso(self.now())
        results = []
        for item in self._batch_inputs(self._body(req)):
            types = self._check_specs(from_type, to_type, (item or {}).get("types"))
            a = self._get(from_type, str(((item or {}).get("from") or {}).get("id") or ""))
            b = self._get(to_type, str(((item or {}).get("to") or {}).get("id") or ""))
            if a is None or b is None:
                raise hs_error(404, "Object not found", "OBJECT_NOT_FOUND")
            self._associate(from_type, a["id"], to_type, b["id"], types)
            links = self._links(from_type, a["id"], to_type)[b["id"]]
            results.append({"fromObjectTypeId": TYPE_IDS[from_type], "fromObjectId": int(a["id"]),
                            "toObjectTypeId": TYPE_IDS[to_type], "toObjectId": int(b["id"]),
                            "labels": [ASSOC_TYPES[t][3] for t in links if ASSOC_TYPES[t][3]]})
        return self._batch_response(results, [], started, ok_status=201)

    @api("POST", ASSOC_BATCH + r"/archive", scopes=("crm.objects.{type}.write",))
    def assoc_batch_archive(self, req: Request) -> Response:
        from_type, to_type = self._assoc_pair(req)
        for item in self._batch_inputs(self._body(req)):
            rid = self._resolve(from_type, str(((item or {}).get("from") or {}).get("id") or ""))
            for target in (item or {}).get("to") or []:
                self._dissociate(from_type, rid, to_type, self._resolve(to_type, str((target or {}).get("id"))))
        return Response(204)

    # -- properties ---------------------------------------------------------------------------
    @api("GET", PROPS, scopes=("crm.schemas.{type}.read", "crm.objects.{type}.read"))
    def properties_list(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        archived = self._flag(req, "archived")
        rows = [p for p in self.state["properties"][otype].values() if bool(p.get("archived")) == archived]
        return Response(200, {"results": rows})

    @api("GET", PROPS + r"/(?P<name>[a-z][\w]*)", scopes=("crm.schemas.{type}.read", "crm.objects.{type}.read"))
    def properties_get(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        prop = self.state["properties"][otype].get(req.params["name"])
        if prop is None or prop.get("archived"):
            raise hs_error(404, f"Unable to find property {req.params['name']} for {otype}", "OBJECT_NOT_FOUND")
        return Response(200, prop)

    def _new_property(self, otype: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad_request("A property definition must be an object")
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise _bad_request(f"Missing required fields: {', '.join(missing)}")
        name = str(body["name"])
        if not NAME_RE.match(name) or name.startswith("hs_"):
            raise _bad_request(f"{name} is not a valid property name: use lowercase letters, digits and "
                               "underscores, starting with a letter; the hs_ prefix is reserved")
        if body["type"] not in PROPERTY_TYPES or body["fieldType"] not in FIELD_TYPES:
            raise _bad_request(f"Invalid type/fieldType {body['type']}/{body['fieldType']}")
        if body["type"] == "enumeration" and not body.get("options"):
            raise _bad_request("Enumeration properties need options")
        existing = self.state["properties"][otype].get(name)
        if existing is not None and not existing.get("archived"):
            raise hs_error(409, f"A property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS",
                           context={"name": [name]})
        options = [self._option(str(o.get("label")), str(o.get("value")), int(o.get("displayOrder") or i))
                   for i, o in enumerate(body.get("options") or [])]
        return self._property(otype, name, str(body["label"]), body["type"], body["fieldType"], options,
                              int(body.get("displayOrder") or len(self.state["properties"][otype])), self._stamp(),
                              hubspot_defined=False, description=str(body.get("description") or ""),
                              unique=bool(body.get("hasUniqueValue")), group=str(body["groupName"]))

    @api("POST", PROPS, scopes=("crm.schemas.{type}.write",))
    def properties_create(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        prop = self._new_property(otype, self._body(req))
        self.state["properties"][otype][prop["name"]] = prop
        return Response(201, prop)

    @api("POST", PROPS + r"/batch/create", scopes=("crm.schemas.{type}.write",))
    def properties_batch_create(self, req: Request) -> Response:
        otype = self._type_arg(req) or ""
        started = iso(self.now())
        inputs = self._batch_inputs(self._body(req))
        made = [self._new_property(otype, item) for item in inputs]
        if len({p["name"] for p in made}) != len(made):
            raise _bad_request("Duplicate property names in batch input")
        for prop in made:
            self.state["properties"][otype][prop["name"]] = prop
        return self._batch_response(made, [], started, ok_status=201)

    # -- pipelines ----------------------------------------------------------------------------
    def _pipelines(self, req: Request) -> list[dict[str, Any]]:
        otype = self._type_arg(req)
        if otype != "deals":
            return []
        return self.state["pipelines"]["deals"]

    def _pipeline(self, req: Request) -> dict[str, Any]:
        for pipe in self._pipelines(req):
            if pipe["id"] == req.params["pipeline"]:
                return pipe
        raise hs_error(404, f"Unable to find pipeline {req.params['pipeline']}", "OBJECT_NOT_FOUND")

    @api("GET", PIPES, scopes=("crm.objects.{type}.read",))
    def pipelines_list(self, req: Request) -> Response:
        return Response(200, {"results": [p for p in self._pipelines(req) if not p["archived"]]})

    @api("GET", PIPES + r"/(?P<pipeline>[\w-]+)", scopes=("crm.objects.{type}.read",))
    def pipelines_get(self, req: Request) -> Response:
        return Response(200, self._pipeline(req))

    @api("GET", PIPES + r"/(?P<pipeline>[\w-]+)/stages", scopes=("crm.objects.{type}.read",))
    def pipeline_stages(self, req: Request) -> Response:
        return Response(200, {"results": self._pipeline(req)["stages"]})

    @api("PATCH", PIPES + r"/(?P<pipeline>[\w-]+)/stages/(?P<stage>[\w-]+)", scopes=("crm.objects.{type}.write",))
    def pipeline_stage_update(self, req: Request) -> Response:
        pipe = self._pipeline(req)
        stage = next((s for s in pipe["stages"] if s["id"] == req.params["stage"]), None)
        if stage is None:
            raise hs_error(404, f"Unable to find stage {req.params['stage']}", "OBJECT_NOT_FOUND")
        body = self._body(req)
        if "metadata" in body:
            meta = {k: str(v) for k, v in (body.get("metadata") or {}).items()}
            if "probability" in meta:
                try:
                    prob = Decimal(meta["probability"])
                except InvalidOperation as exc:
                    raise _bad_request("probability must be a number") from exc
                if not 0 <= prob <= 1 or (prob * 10) % 1:
                    raise _bad_request("probability must be between 0.0 and 1.0 in steps of 0.1")
            stage["metadata"] = {**stage["metadata"], **meta}
        for key in ("label", "displayOrder"):
            if key in body:
                stage[key] = body[key]
        stage["updatedAt"] = _now_iso(self._stamp())
        return Response(200, stage)

    # -- account ------------------------------------------------------------------------------
    @api("GET", r"/account-info/(?:v3|2026-03)/details", scopes=("oauth",))
    def account_details(self, req: Request) -> Response:
        portal = self.state["portal"]
        keys = ("portalId", "accountType", "timeZone", "companyCurrency", "additionalCurrencies", "utcOffset",
                "utcOffsetMilliseconds", "uiDomain", "dataHostingLocation")
        return Response(200, {k: portal[k] for k in keys})
