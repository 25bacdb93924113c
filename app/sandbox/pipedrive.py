"""A local imitation of Pipedrive's REST API (v2 records, v1 fields/recents/users) and its OAuth server.

Follows ../shared/reference/pipedrive.md and Pipedrive's OpenAPI documents: the v2 record shapes
(persons, organizations, deals, products, deal products, pipelines, stages) with cursor paging,
``updated_since`` and ``sort_by``; v1 ``recents`` (the change feed that also shows deletions),
``users/me`` and the *Fields endpoints (custom fields keyed by 40-character hashes); the
``success/data/additional_data`` envelope and its error bodies; token-cost rate limits (a daily
company budget priced by each operation's ``x-token-cost`` and a per-token burst window of 2 s)
answered with 429, ``Retry-After`` and the ``x-ratelimit-*`` headers; no duplicate check.
Money is kept as strings in the state and sent as exact JSON numbers.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import math
import re
import secrets
from collections.abc import Callable, Iterable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import HttpError, Request, Response, SandboxApp, route

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
HASH_RE = re.compile(r"^[0-9a-f]{40}$")
CONTACTS_READ = ("contacts:read", "contacts:full")
CONTACTS_FULL = ("contacts:full",)
DEALS_READ = ("deals:read", "deals:full")
DEALS_FULL = ("deals:full",)
ADDRESS_PARTS = ("value", "country", "admin_area_level_1", "admin_area_level_2", "locality", "sublocality",
                 "route", "street_number", "subpremise", "postal_code")
ENTITY_OF = {"organization": "organizations", "person": "persons", "deal": "deals", "product": "products"}

# Writable body keys per v2 operation, as the OpenAPI request schemas list them. Anything else is
# refused the way v2 does (ERR_SCHEMA_VALIDATION_FAILED), custom-field hashes at the root included.
PERSON_KEYS = {"name", "owner_id", "org_id", "add_time", "emails", "phones", "visible_to", "label_ids",
               "postal_address", "notes", "im", "birthday", "job_title", "marketing_status", "custom_fields"}
ORG_KEYS = {"name", "owner_id", "add_time", "visible_to", "label_ids", "address", "website", "linkedin",
            "industry", "annual_revenue", "employee_count", "custom_fields"}
DEAL_KEYS = {"title", "owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "value", "currency",
             "is_deleted", "is_archived", "archive_time", "status", "probability", "lost_reason", "visible_to",
             "close_time", "won_time", "lost_time", "expected_close_date", "label_ids", "custom_fields"}
DEAL_PRODUCT_KEYS = {"product_id", "item_price", "quantity", "tax", "comments", "discount", "is_enabled",
                     "tax_method", "discount_type", "product_variation_id", "billing_frequency",
                     "billing_frequency_cycles", "billing_start_date"}
PRODUCT_KEYS = {"name", "code", "description", "unit", "tax", "category", "owner_id", "is_linkable", "visible_to",
                "prices", "custom_fields", "billing_frequency", "billing_frequency_cycles"}
STAGE_KEYS = {"name", "pipeline_id", "deal_probability", "is_deal_rot_enabled", "days_to_rotten"}
FIELD_TYPES_CREATABLE = {"address", "date", "daterange", "double", "enum", "monetary", "org", "people", "phone",
                         "set", "text", "time", "timerange", "user", "varchar", "varchar_auto", "visible_to"}

# The routes we imitate: (method, spec path) -> (x-token-cost, OAuth scopes), copied from the specs.
# The conformance test checks this table against the OpenAPI documents.
OPERATIONS: dict[tuple[str, str, str], tuple[int, tuple[str, ...]]] = {}


# -- encoding ---------------------------------------------------------------------------------

def _num(value: Decimal) -> str:
    """A Decimal as the JSON number Pipedrive would print (no exponent, no trailing zeros)."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _mark(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return "\x00N" + _num(obj) + "\x00"
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


_MARKED = re.compile(r'"\\u0000N(-?[0-9.]+)\\u0000"')


def dumps(obj: Any) -> bytes:
    """JSON with Decimals written as exact numbers (Pipedrive's money fields are JSON numbers)."""
    return _MARKED.sub(r"\1", json.dumps(obj, default=_mark, ensure_ascii=False)).encode()


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def _money(value: Decimal) -> Decimal:
    """Cents, half to even: Pipedrive sums in doubles, where most half-cents already sit just below .5."""
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def v2_time(ts: float) -> str:
    """RFC 3339 UTC with seconds, as v2 prints update_time."""
    return dt.datetime.fromtimestamp(int(ts), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(v2: str | None) -> str | None:
    """v1 prints the same instant as 'YYYY-MM-DD HH:MM:SS' (UTC, no zone)."""
    return v2.replace("T", " ").replace("Z", "") if v2 else None


def parse_time(text: str) -> float:
    text = text.strip().replace(" ", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _err(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> HttpError:
    body: dict[str, Any] = {"success": False, "error": message, "error_info": ERROR_INFO, "data": None,
                            "additional_data": None}
    if code:
        body["code"] = code
    return HttpError(status, body, headers)


def _invalid(message: str) -> HttpError:
    return _err(400, f"Validation failed: {message}", "ERR_SCHEMA_VALIDATION_FAILED")


def api(method: str, path: str, *, cost: int, scopes: tuple[str, ...], version: str = "v2",
        search: bool = False) -> Callable:
    """Declare an API route under its real prefixes, with its token cost and scopes from the spec."""
    prefixes = ("/api/v2",) if version == "v2" else ("/api/v1", "/v1")
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>\\d+)", path)
    OPERATIONS[(version, method, path)] = (cost, scopes)

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(self: PipedriveSandbox, req: Request) -> Response:
            return self._serve_api(req, fn, cost, scopes, search)

        for prefix in prefixes:
            route(method, prefix + pattern)(wrapper)
        return wrapper

    return deco


class PipedriveSandbox(SandboxApp):
    """Pipedrive for one company: OAuth, records, fields, recents and the token budget."""

    provider = "pipedrive"
    access_ttl = 3599
    refresh_ttl = 60 * 86400  # a refresh token dies when unused for 60 days; every use rotates it
    refresh_rotates = True
    refresh_grace = 0
    pkce_supported = False  # Pipedrive documents no PKCE: the token exchange always takes the client secret
    app_scopes = ("base,deals:full,contacts:full,products:full,deal-fields:full,contact-fields:full,"
                  "recents:read,search:read,users:read")
    # Token-based limits (reference §9): daily budget = 30,000 base tokens x plan multiplier x seats,
    # burst per access token per 2-second window (OAuth row of the Essential plan), search 10 / 2 s.
    base_tokens = 30_000
    plan_multiplier = 2
    seats = 3
    burst_limit = 80
    search_limit = 10
    burst_window = 2.0

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

    # -- oauth ------------------------------------------------------------------------------
    @route("GET", r"/oauth/authorize")
    def oauth_authorize(self, req: Request) -> Response:
        return self.authorize_redirect(req)

    @route("POST", r"/oauth/token")
    def oauth_token(self, req: Request) -> Response:
        auth = req.header("authorization") or ""
        form = req.form()
        secret = None
        if auth.lower().startswith("basic "):
            try:
                secret = base64.b64decode(auth[6:]).decode().partition(":")[2]
            except ValueError:
                secret = None
        else:
            secret = form.get("client_secret")
        if not secret:
            raise self.token_error(401, "invalid_client", "client is invalid")
        return self.token_endpoint(req)

    def token_error(self, status: int, error: str, description: str = "") -> HttpError:
        messages = {"invalid_client": "Invalid client: client is invalid",
                    "unsupported_grant_type": "Unsupported grant type: grant_type is invalid"}
        message = messages.get(error)
        if message is None:
            if "refresh" in description:
                message = "Invalid grant: refresh_token is invalid"
            elif "expired" in description:
                message = "Invalid grant: authorization_code has expired"
            else:
                message = f"Invalid grant: {description or 'authorization_code is invalid'}"
        return HttpError(status, {"success": False, "error": error, "message": message})

    def token_extra(self, grant: dict[str, Any]) -> dict[str, Any]:
        return {"token_type": "Bearer", "scope": self.app_scopes, "api_domain": self.public_url}

    def unauthorized(self, why: str) -> HttpError:
        return HttpError(401, {"success": False, "error": "unauthorized access", "errorCode": 401,
                               "error_info": ERROR_INFO})

    def not_found_body(self, req: Request) -> Any:
        return {"success": False, "error": "Unknown method .", "error_info": ERROR_INFO, "data": None,
                "additional_data": None}

    # -- limits and the api wrapper ---------------------------------------------------------
    def _serve_api(self, req: Request, fn: Callable, cost: int, scopes: tuple[str, ...], search: bool) -> Response:
        self.authenticate(req)
        key = req.token["token"] if req.token else "anon"
        granted = set(self.app_scopes.split(","))
        if scopes and not granted & set(scopes):
            raise _err(403, "Scope and URL mismatch")
        budget = self.state["budget"]
        now = self.now()
        today = dt.datetime.fromtimestamp(now, tz=dt.UTC).date()
        if budget.get("day") != today.isoformat():
            budget.update(day=today.isoformat(), used=0)
        if budget["used"] + cost > self.daily_budget:
            midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC).timestamp()
            raise self._too_many(max(1, math.ceil(midnight - now)))
        wait = self.check_rate(f"burst:{key}", self.burst_limit, self.burst_window)
        if wait is None and search:
            wait = self.check_rate(f"search:{key}", self.search_limit, self.burst_window)
        if wait is not None:
            raise self._too_many(max(1, math.ceil(wait)))
        budget["used"] += cost
        try:
            resp = fn(self, req)
        except HttpError as err:
            resp = err.response
        resp.headers.update(self._limit_headers(key))
        return resp

    def _limit_headers(self, key: str) -> dict[str, str]:
        stamps = self._windows[f"burst:{key}:{self.burst_window}"]
        reset = self.burst_window - (self.now() - stamps[0]) if stamps else self.burst_window
        return {"x-ratelimit-limit": str(self.burst_limit),
                "x-ratelimit-remaining": str(max(0, self.burst_limit - len(stamps))),
                "x-ratelimit-reset": str(max(1, math.ceil(reset)))}

    def _too_many(self, retry_after: int) -> HttpError:
        return _err(429, "Request over limit", headers={
            "Retry-After": str(retry_after), "x-ratelimit-limit": str(self.burst_limit),
            "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(retry_after)})

    def tokens_used_today(self) -> int:
        return int(self.state["budget"]["used"])

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _ok(data: Any, additional: Any = None, status: int = 200) -> Response:
        body: dict[str, Any] = {"success": True, "data": data}
        if additional is not None:
            body["additional_data"] = additional
        return Response(status, dumps(body))

    @staticmethod
    def _body(req: Request, allowed: set[str]) -> dict[str, Any]:
        if not req.body:
            return {}
        try:
            body = json.loads(req.body, parse_float=Decimal)
        except ValueError as exc:
            raise _err(400, "Invalid JSON in request body", "ERR_SCHEMA_VALIDATION_FAILED") from exc
        if not isinstance(body, dict):
            raise _invalid("body must be an object")
        for key in body:
            if key not in allowed:
                raise _invalid(f"{key}: Parameter '{key}' is not allowed for this request")
        return body

    def _record(self, kind: str, req: Request, *, deleted_ok: bool = False) -> dict[str, Any]:
        rec = self.state[kind].get(req.params["id"])
        if rec is None or (rec.get("is_deleted") and not deleted_ok):
            noun = {"persons": "Person", "organizations": "Organization", "deals": "Deal",
                    "products": "Product", "stages": "Stage", "pipelines": "Pipeline"}[kind]
            raise _err(404, f"{noun} not found", "ERR_NOT_FOUND")
        return rec

    def _ids_filter(self, req: Request) -> set[int] | None:
        raw = req.arg("ids")
        if not raw:
            return None
        try:
            ids = {int(x) for x in raw.split(",") if x.strip()}
        except ValueError as exc:
            raise _invalid("ids: must be a comma separated list of integers") from exc
        if len(ids) > 100:
            raise _invalid("ids: a maximum of 100 ids is allowed")
        return ids

    def _int_arg(self, req: Request, name: str) -> int | None:
        raw = req.arg(name)
        if raw in (None, ""):
            return None
        try:
            return int(raw)
        except ValueError as exc:
            raise _invalid(f"{name}: must be an integer") from exc

    def _page(self, req: Request, items: Iterable[dict[str, Any]], *, sort_fields: Iterable[str],
              render: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
        """Sort, keyset-page and wrap a v2 list: ``limit`` up to 500, ``next_cursor`` null on the last page."""
        sort_by = req.arg("sort_by") or "id"
        direction = req.arg("sort_direction") or "asc"
        if sort_by not in set(sort_fields) or direction not in {"asc", "desc"}:
            raise _invalid(f"sort_by: must be one of {', '.join(sort_fields)}")
        limit = self._int_arg(req, "limit") or 100
        if limit < 1 or limit > 500:
            raise _invalid("limit: must be less than or equal to 500")
        rows = sorted(items, key=lambda r: (r.get(sort_by) or "", r["id"]) if sort_by != "id" else (r["id"],),
                      reverse=direction == "desc")
        cursor = req.arg("cursor")
        if cursor:
            try:
                mark = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
                after = (mark["fieldValue"] or "", mark["id"]) if sort_by != "id" else (mark["id"],)
            except (ValueError, KeyError, TypeError) as exc:
                raise _invalid("cursor: invalid cursor") from exc

            def beyond(r: dict[str, Any]) -> bool:
                key = (r.get(sort_by) or "", r["id"]) if sort_by != "id" else (r["id"],)
                return key > after if direction == "asc" else key < after

            rows = [r for r in rows if beyond(r)]
        page, more = rows[:limit], len(rows) > limit
        next_cursor = None
        if more:
            last = page[-1]
            mark = {"field": sort_by, "fieldValue": last.get(sort_by) if sort_by != "id" else last["id"],
                    "sortDirection": direction, "id": last["id"]}
            next_cursor = base64.urlsafe_b64encode(json.dumps(mark).encode()).decode().rstrip("=")
        return self._ok([render(r) for r in page], {"next_cursor": next_cursor})

    def _updated_window(self, req: Request, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        since, until = req.arg("updated_since"), req.arg("updated_until")
        try:
            lo = parse_time(since) if since else None
            hi = parse_time(until) if until else None
        except ValueError as exc:
            raise _invalid("updated_since: must be in RFC3339 format") from exc
        out = []
        for r in rows:
            t = parse_time(r["update_time"])
            if (lo is None or t >= lo) and (hi is None or t < hi):
                out.append(r)
        return out

    def _touch(self, rec: dict[str, Any]) -> None:
        rec["update_time"] = v2_time(self.now())

    def _mark_deleted(self, kind: str, rec: dict[str, Any]) -> None:
        rec["is_deleted"] = True
        if kind == "deals":
            rec["status"] = "deleted"
        self._touch(rec)

    # -- custom fields ----------------------------------------------------------------------
    def _custom_in(self, entity: str, values: Any, current: dict[str, Any]) -> dict[str, Any]:
        """Validate and store custom field values the way v2 accepts them."""
        if not isinstance(values, dict):
            raise _invalid("custom_fields: must be an object")
        defs = self._custom_defs(entity)
        out = dict(current)
        for key, value in values.items():
            field = defs.get(key)
            if field is None:
                raise _invalid(f"custom_fields.{key}: Parameter '{key}' is not allowed for this request")
            out[key] = _custom_value(field, value)
        return out

    def _custom_out(self, entity: str, stored: dict[str, Any]) -> dict[str, Any]:
        """All custom fields of the entity (null when unset), numbers as numbers."""
        out: dict[str, Any] = {}
        for key, field in self._custom_defs(entity).items():
            value = stored.get(key)
            ftype = field["field_type"]
            if value is not None and ftype == "double":
                value = Decimal(value)
            elif value is not None and ftype == "monetary":
                value = {"value": Decimal(value["value"]), "currency": value.get("currency")}
            out[key] = value
        return out

    # -- renderers --------------------------------------------------------------------------
    def _person_out(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if not k.startswith("_")}
        out["custom_fields"] = self._custom_out("person", rec.get("custom_fields") or {})
        return out

    def _org_out(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if not k.startswith("_")}
        out["custom_fields"] = self._custom_out("organization", rec.get("custom_fields") or {})
        return out

    def _deal_out(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if not k.startswith("_")}
        out["value"] = Decimal(rec["value"] or "0")
        if rec.get("probability") is not None:
            out["probability"] = Decimal(rec["probability"])
        out["custom_fields"] = self._custom_out("deal", rec.get("custom_fields") or {})
        return out

    def _product_out(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if not k.startswith("_")}
        out["tax"] = Decimal(rec.get("tax") or "0")
        out["prices"] = [{**p, "price": Decimal(p["price"]), "cost": Decimal(p.get("cost") or "0"),
                          "direct_cost": _dec(p.get("direct_cost"))} for p in rec.get("prices", [])]
        out["custom_fields"] = self._custom_out("product", rec.get("custom_fields") or {})
        return out

    @staticmethod
    def _line_sum(rec: dict[str, Any]) -> Decimal:
        gross = Decimal(rec["quantity"]) * Decimal(rec["item_price"])
        discount = Decimal(rec.get("discount") or "0")
        net = gross - (gross * discount / 100 if rec.get("discount_type", "percentage") == "percentage" else discount)
        if rec.get("tax_method") == "exclusive":
            net += net * Decimal(rec.get("tax") or "0") / 100
        return _money(net)

    def _deal_product_out(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in rec.items() if not k.startswith("_")}
        for key in ("quantity", "item_price", "discount", "tax"):
            out[key] = Decimal(rec.get(key) or "0")
        out["sum"] = self._line_sum(rec)
        out["currency"] = self.state["deals"][str(rec["deal_id"])]["currency"]
        return out

    # -- v1: users/me, fields, recents --------------------------------------------------------
    @api("GET", "/users/me", cost=2, scopes=("base",), version="v1")
    def users_me(self, req: Request) -> Response:
        company, user = self.state["company"], self.state["user"]
        return self._ok({
            "id": user["id"], "name": user["name"], "default_currency": company["currency"], "locale": "en_GB",
            "lang": 1, "email": user["email"], "phone": None, "activated": True,
            "last_login": v1_time(v2_time(self.now())), "created": "2024-01-01 00:00:00", "modified": None,
            "has_created_company": True,
            "access": [{"app": "sales", "admin": True, "permission_set_id": "62cc4d7f-4038-4352-abf3-a8c1c822b631"}],
            "active_flag": True, "timezone_name": "Europe/London", "timezone_offset": "+00:00", "role_id": 1,
            "icon_url": None, "is_you": True, "is_deleted": False, "company_id": company["id"],
            "company_name": company["name"], "company_domain": company["domain"],
            "company_country": company["country"], "company_industry": company["industry"],
            "language": {"language_code": "en", "country_code": "GB"},
        })

    def _fields_list(self, req: Request, entity: str) -> Response:
        start = self._int_arg(req, "start") or 0
        limit = self._int_arg(req, "limit") or 100
        if limit < 1 or limit > 500:
            raise _err(400, "Limit must be between 1 and 500")
        fields = self.state["fields"][entity]
        page = fields[start:start + limit]
        return self._ok(page, {"start": start, "limit": limit, "more_items_in_collection": start + limit < len(fields)})

    def _fields_create(self, req: Request, entity: str) -> Response:
        body = self._body(req, {"name", "options", "add_visible_flag", "field_type"})
        name, ftype = body.get("name"), body.get("field_type")
        if not isinstance(name, str) or not name.strip():
            raise _err(400, "Field name is required")
        if ftype not in FIELD_TYPES_CREATABLE:
            raise _err(400, "Field type is not valid")
        if ftype in {"enum", "set"} and not body.get("options"):
            raise _err(400, "Options are required for this field type")
        rec = self.add_custom_field(entity, name.strip(), ftype, body.get("options"))
        if body.get("add_visible_flag") is not None:
            rec["add_visible_flag"] = bool(body["add_visible_flag"])
        self.persist()
        return self._ok(rec)

    @api("GET", "/dealFields", cost=20, scopes=("deals:read", "deals:full", "deal-fields:full", "admin"),
         version="v1")
    def deal_fields(self, req: Request) -> Response:
        return self._fields_list(req, "deal")

    @api("POST", "/dealFields", cost=10, scopes=("deal-fields:full", "admin"), version="v1")
    def deal_fields_create(self, req: Request) -> Response:
        return self._fields_create(req, "deal")

    @api("GET", "/organizationFields", cost=20,
         scopes=("contacts:read", "contacts:full", "contact-fields:full", "admin"), version="v1")
    def organization_fields(self, req: Request) -> Response:
        return self._fields_list(req, "organization")

    @api("POST", "/organizationFields", cost=10, scopes=("contact-fields:full", "admin"), version="v1")
    def organization_fields_create(self, req: Request) -> Response:
        return self._fields_create(req, "organization")

    @api("GET", "/personFields", cost=20,
         scopes=("contacts:read", "contacts:full", "contact-fields:full", "admin"), version="v1")
    def person_fields(self, req: Request) -> Response:
        return self._fields_list(req, "person")

    @api("POST", "/personFields", cost=10, scopes=("contact-fields:full", "admin"), version="v1")
    def person_fields_create(self, req: Request) -> Response:
        return self._fields_create(req, "person")

    @api("GET", "/recents", cost=20, scopes=("recents:read", "search:read"), version="v1")
    def recents(self, req: Request) -> Response:
        since_raw = req.arg("since_timestamp")
        if not since_raw:
            raise _err(400, "since_timestamp is required")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", since_raw):
            raise _err(400, "since_timestamp must be in the format YYYY-MM-DD HH:MM:SS")
        since = parse_time(since_raw)
        kinds = [k.strip() for k in (req.arg("items") or "deal,person,organization,product").split(",")]
        start = self._int_arg(req, "start") or 0
        limit = self._int_arg(req, "limit") or 100
        if limit < 1 or limit > 500:
            raise _err(400, "Limit must be between 1 and 500")
        rows: list[tuple[str, dict[str, Any]]] = []
        for kind in kinds:
            store = ENTITY_OF.get(kind)
            if store is None:
                continue
            rows += [(kind, r) for r in self.state[store].values() if parse_time(r["update_time"]) >= since]
        rows.sort(key=lambda kr: (kr[1]["update_time"], kr[0], kr[1]["id"]))
        page = rows[start:start + limit]
        data = [{"item": kind, "id": rec["id"], "data": self._v1(kind, rec)} for kind, rec in page]
        return self._ok(data, {
            "since_timestamp": since_raw,
            "last_timestamp_on_page": v1_time(page[-1][1]["update_time"]) if page else since_raw,
            "pagination": {"start": start, "limit": limit, "more_items_in_collection": start + limit < len(rows)},
        })

    def _v1_custom(self, entity: str, rec: dict[str, Any]) -> dict[str, Any]:
        """v1 puts custom fields at the root; monetary currency in a '<hash>_currency' sibling."""
        out: dict[str, Any] = {}
        for key, value in self._custom_out(entity, rec.get("custom_fields") or {}).items():
            if isinstance(value, dict) and "currency" in value:
                out[key], out[f"{key}_currency"] = value.get("value"), value.get("currency")
            elif isinstance(value, list):
                out[key] = ",".join(str(v) for v in value)
            else:
                out[key] = value
        return out

    def _v1(self, kind: str, rec: dict[str, Any]) -> dict[str, Any]:
        company_id = self.state["company"]["id"]
        owner = self.state["user"]
        v1_add, v1_upd = v1_time(rec.get("add_time")), v1_time(rec.get("update_time"))
        if kind == "person":
            org = self.state["organizations"].get(str(rec.get("org_id")))
            out = {
                "id": rec["id"], "company_id": company_id, "owner_id": rec.get("owner_id"),
                "org_id": rec.get("org_id"), "name": rec["name"], "first_name": rec.get("first_name") or "",
                "last_name": rec.get("last_name"), "active_flag": not rec.get("is_deleted"),
                "phone": rec.get("phones") or [{"value": "", "primary": True}],
                "email": rec.get("emails") or [{"value": "", "primary": True}],
                "first_char": (rec["name"][:1] or "").lower(), "add_time": v1_add, "update_time": v1_upd,
                "visible_to": str(rec.get("visible_to", 3)), "picture_id": None, "label": None,
                "label_ids": rec.get("label_ids") or [], "org_name": org["name"] if org else None,
                "owner_name": owner["name"], "cc_email": None,
            }
            return {**out, **self._v1_custom("person", rec)}
        if kind == "organization":
            addr = rec.get("address") or {}
            out = {
                "id": rec["id"], "company_id": company_id,
                "owner_id": {"id": owner["id"], "name": owner["name"], "email": owner["email"], "has_pic": 0,
                             "pic_hash": None, "active_flag": True, "value": owner["id"]},
                "name": rec["name"], "active_flag": not rec.get("is_deleted"), "picture_id": None,
                "country_code": None, "first_char": (rec["name"][:1] or "").lower(), "add_time": v1_add,
                "update_time": v1_upd, "visible_to": str(rec.get("visible_to", 3)),
                "label_ids": rec.get("label_ids") or [], "owner_name": owner["name"], "cc_email": "",
                "address": addr.get("value"), "address_formatted_address": addr.get("value"),
            }
            for part in ADDRESS_PARTS[1:]:
                out[f"address_{part}"] = addr.get(part)
            return {**out, **self._v1_custom("organization", rec)}
        if kind == "deal":
            stage = self.state["stages"].get(str(rec.get("stage_id"))) or {}
            out = {
                "id": rec["id"], "creator_user_id": owner["id"], "user_id": rec.get("owner_id"),
                "person_id": rec.get("person_id"), "org_id": rec.get("org_id"), "stage_id": rec.get("stage_id"),
                "title": rec["title"], "value": Decimal(rec.get("value") or "0"), "currency": rec["currency"],
                "add_time": v1_add, "update_time": v1_upd, "stage_change_time": v1_time(rec.get("stage_change_time")),
                "active": rec["status"] == "open" and not rec.get("is_deleted"),
                "deleted": bool(rec.get("is_deleted")), "is_archived": bool(rec.get("is_archived")),
                "status": rec["status"], "probability": _dec(rec.get("probability")),
                "lost_reason": rec.get("lost_reason"), "visible_to": str(rec.get("visible_to", 3)),
                "close_time": v1_time(rec.get("close_time")), "pipeline_id": rec.get("pipeline_id"),
                "won_time": v1_time(rec.get("won_time")), "lost_time": v1_time(rec.get("lost_time")),
                "expected_close_date": rec.get("expected_close_date"), "stage_order_nr": stage.get("order_nr"),
                "owner_name": owner["name"], "origin": rec.get("origin"), "origin_id": rec.get("origin_id"),
                "channel": rec.get("channel"), "channel_id": rec.get("channel_id"),
            }
            return {**out, **self._v1_custom("deal", rec)}
        return {"id": rec["id"], "name": rec.get("name"), "code": rec.get("code"),
                "active_flag": not rec.get("is_deleted"), "add_time": v1_add, "update_time": v1_upd}

    # -- v2: persons ------------------------------------------------------------------------
    @api("GET", "/persons", cost=10, scopes=CONTACTS_READ)
    def persons_list(self, req: Request) -> Response:
        rows = [r for r in self.state["persons"].values() if not r.get("is_deleted")]
        ids, org_id = self._ids_filter(req), self._int_arg(req, "org_id")
        if ids is not None:
            rows = [r for r in rows if r["id"] in ids]
        if org_id is not None:
            rows = [r for r in rows if r.get("org_id") == org_id]
        rows = self._updated_window(req, rows)
        return self._page(req, rows, sort_fields=("id", "update_time", "add_time"), render=self._person_out)

    @api("GET", "/persons/{id}", cost=1, scopes=CONTACTS_READ)
    def persons_get(self, req: Request) -> Response:
        return self._ok(self._person_out(self._record("persons", req)))

    def _person_record(self, pid: int, body: dict[str, Any], when: str) -> dict[str, Any]:
        rec = {"id": pid, "name": "", "first_name": "", "last_name": "", "owner_id": self.state["user"]["id"],
               "org_id": None, "add_time": when, "update_time": when, "emails": [], "phones": [],
               "is_deleted": False, "visible_to": 3, "label_ids": [], "picture_id": None, "postal_address": None,
               "notes": None, "im": [], "birthday": None, "job_title": None, "custom_fields": {}}
        self._apply_person(rec, body)
        return rec

    def _apply_person(self, rec: dict[str, Any], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key == "name":
                if not isinstance(value, str) or not value.strip():
                    raise _invalid("name: must be a non-empty string")
                first, _, last = value.strip().partition(" ")
                rec.update(name=value.strip(), first_name=first, last_name=last)
            elif key in {"emails", "phones", "im"}:
                rec[key] = _contact_list(key, value)
            elif key == "postal_address":
                rec[key] = _address_in(key, value)
            elif key == "org_id":
                if value is not None and not self._live("organizations", value):
                    raise _err(400, "Organization not found", "ERR_INVALID_INPUT")
                rec[key] = value
            elif key == "custom_fields":
                rec[key] = self._custom_in("person", value, rec.get("custom_fields") or {})
            elif key in {"owner_id", "visible_to"}:
                rec[key] = _int_value(key, value)
            else:
                rec[key] = value

    def _live(self, kind: str, record_id: Any) -> bool:
        rec = self.state[kind].get(str(record_id))
        return bool(rec) and not rec.get("is_deleted")

    @api("POST", "/persons", cost=5, scopes=CONTACTS_FULL)
    def persons_create(self, req: Request) -> Response:
        body = self._body(req, PERSON_KEYS)
        if not body.get("name"):
            raise _invalid("name: Parameter 'name' is required")
        pid = self.next_id("person")
        rec = self._person_record(pid, body, v2_time(self.now()))
        self.state["persons"][str(pid)] = rec
        self.persist()
        return self._ok(self._person_out(rec))

    @api("PATCH", "/persons/{id}", cost=5, scopes=CONTACTS_FULL)
    def persons_update(self, req: Request) -> Response:
        rec = self._record("persons", req)
        body = self._body(req, PERSON_KEYS - {"add_time"})
        updated = json.loads(json.dumps(rec))
        self._apply_person(updated, body)
        updated["update_time"] = v2_time(self.now())
        rec.clear()
        rec.update(updated)
        self.persist()
        return self._ok(self._person_out(rec))

    @api("DELETE", "/persons/{id}", cost=3, scopes=CONTACTS_FULL)
    def persons_delete(self, req: Request) -> Response:
        rec = self._record("persons", req)
        self._mark_deleted("persons", rec)
        self.persist()
        return self._ok({"id": rec["id"]})

    @api("GET", "/persons/search", cost=20, scopes=("contacts:read", "contacts:full", "search:read"), search=True)
    def persons_search(self, req: Request) -> Response:
        term, exact, fields = self._search_args(req, {"custom_fields", "email", "notes", "phone", "name"})
        org_filter = self._int_arg(req, "organization_id")
        items = []
        for rec in self.state["persons"].values():
            if rec.get("is_deleted") or (org_filter is not None and rec.get("org_id") != org_filter):
                continue
            values: list[str] = []
            if "name" in fields:
                values.append(rec["name"])
            if "email" in fields:
                values += [e["value"] for e in rec.get("emails") or []]
            if "phone" in fields:
                values += [p["value"] for p in rec.get("phones") or []]
            if "notes" in fields and rec.get("notes"):
                values.append(rec["notes"])
            if "custom_fields" in fields:
                values += self._searchable_custom("person", rec)
            score = _score(term, values, exact)
            if score:
                org = self.state["organizations"].get(str(rec.get("org_id")))
                items.append({"result_score": Decimal(str(score)), "item": {
                    "id": rec["id"], "type": "person", "name": rec["name"],
                    "phones": [p["value"] for p in rec.get("phones") or []],
                    "emails": [e["value"] for e in rec.get("emails") or []],
                    "visible_to": rec.get("visible_to", 3), "owner": {"id": rec.get("owner_id")},
                    "organization": {"id": org["id"], "name": org["name"]} if org else None,
                    "custom_fields": self._searchable_custom("person", rec), "notes": []}})
        return self._search_page(req, items)

    def _search_args(self, req: Request, allowed: set[str]) -> tuple[str, bool, set[str]]:
        term = (req.arg("term") or "").strip()
        exact = (req.arg("exact_match") or "").lower() == "true"
        if len(term) < (1 if exact else 2):
            raise _err(400, "Search term must be at least 2 characters long (1 when exact_match is set)")
        fields = {f.strip() for f in (req.arg("fields") or ",".join(allowed)).split(",") if f.strip()}
        if not fields <= allowed:
            raise _invalid(f"fields: must be one of {', '.join(sorted(allowed))}")
        return term, exact, fields

    def _searchable_custom(self, entity: str, rec: dict[str, Any]) -> list[str]:
        defs = self._custom_defs(entity)
        out = []
        for key, value in (rec.get("custom_fields") or {}).items():
            field = defs.get(key)
            if field and field["field_type"] in {"address", "varchar", "text", "varchar_auto", "double", "monetary",
                                                 "phone"} and value is not None:
                out.append(str(value["value"] if isinstance(value, dict) else value))
        return out

    def _search_page(self, req: Request, items: list[dict[str, Any]]) -> Response:
        items.sort(key=lambda i: (-i["result_score"], i["item"]["id"]))
        limit = self._int_arg(req, "limit") or 100
        if limit < 1 or limit > 500:
            raise _invalid("limit: must be less than or equal to 500")
        cursor = req.arg("cursor")
        start = 0
        if cursor:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["offset"])
            except (ValueError, KeyError, TypeError) as exc:
                raise _invalid("cursor: invalid cursor") from exc
        page = items[start:start + limit]
        next_cursor = None
        if start + limit < len(items):
            next_cursor = base64.urlsafe_b64encode(json.dumps({"offset": start + limit}).encode()).decode()
        return self._ok({"items": page}, {"next_cursor": next_cursor})

    # -- v2: organizations ------------------------------------------------------------------
    @api("GET", "/organizations", cost=10, scopes=CONTACTS_READ)
    def organizations_list(self, req: Request) -> Response:
        rows = [r for r in self.state["organizations"].values() if not r.get("is_deleted")]
        ids = self._ids_filter(req)
        if ids is not None:
            rows = [r for r in rows if r["id"] in ids]
        rows = self._updated_window(req, rows)
        return self._page(req, rows, sort_fields=("id", "update_time", "add_time"), render=self._org_out)

    @api("GET", "/organizations/{id}", cost=1, scopes=CONTACTS_READ)
    def organizations_get(self, req: Request) -> Response:
        return self._ok(self._org_out(self._record("organizations", req)))

    def _apply_org(self, rec: dict[str, Any], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key == "name":
                if not isinstance(value, str) or not value.strip():
                    raise _invalid("name: must be a non-empty string")
                rec["name"] = value.strip()
            elif key == "address":
                rec[key] = _address_in(key, value)
            elif key == "custom_fields":
                rec[key] = self._custom_in("organization", value, rec.get("custom_fields") or {})
            elif key in {"owner_id", "visible_to", "industry", "annual_revenue", "employee_count"}:
                rec[key] = _int_value(key, value)
            else:
                rec[key] = value

    @api("POST", "/organizations", cost=5, scopes=CONTACTS_FULL)
    def organizations_create(self, req: Request) -> Response:
        body = self._body(req, ORG_KEYS)
        if not body.get("name"):
            raise _invalid("name: Parameter 'name' is required")
        oid = self.next_id("organization")
        when = v2_time(self.now())
        rec = {"id": oid, "name": "", "owner_id": self.state["user"]["id"], "add_time": when, "update_time": when,
               "is_deleted": False, "visible_to": 3, "address": None, "label_ids": [], "website": None,
               "linkedin": None, "industry": None, "annual_revenue": None, "employee_count": None,
               "custom_fields": {}}
        self._apply_org(rec, body)
        self.state["organizations"][str(oid)] = rec
        self.persist()
        return self._ok(self._org_out(rec))

    @api("PATCH", "/organizations/{id}", cost=5, scopes=CONTACTS_FULL)
    def organizations_update(self, req: Request) -> Response:
        rec = self._record("organizations", req)
        body = self._body(req, ORG_KEYS - {"add_time"})
        updated = json.loads(json.dumps(rec))
        self._apply_org(updated, body)
        updated["update_time"] = v2_time(self.now())
        rec.clear()
        rec.update(updated)
        self.persist()
        return self._ok(self._org_out(rec))

    @api("DELETE", "/organizations/{id}", cost=3, scopes=CONTACTS_FULL)
    def organizations_delete(self, req: Request) -> Response:
        rec = self._record("organizations", req)
        self._mark_deleted("organizations", rec)
        self.persist()
        return self._ok({"id": rec["id"]})

    @api("GET", "/organizations/search", cost=20, scopes=("contacts:read", "contacts:full", "search:read"),
         search=True)
    def organizations_search(self, req: Request) -> Response:
        term, exact, fields = self._search_args(req, {"address", "custom_fields", "notes", "name"})
        items = []
        for rec in self.state["organizations"].values():
            if rec.get("is_deleted"):
                continue
            values: list[str] = []
            if "name" in fields:
                values.append(rec["name"])
            if "address" in fields and (rec.get("address") or {}).get("value"):
                values.append(rec["address"]["value"])
            if "custom_fields" in fields:
                values += self._searchable_custom("organization", rec)
            score = _score(term, values, exact)
            if score:
                items.append({"result_score": Decimal(str(score)), "item": {
                    "id": rec["id"], "type": "organization", "name": rec["name"],
                    "address": (rec.get("address") or {}).get("value"), "visible_to": rec.get("visible_to", 3),
                    "owner": {"id": rec.get("owner_id")},
                    "custom_fields": self._searchable_custom("organization", rec), "notes": []}})
        return self._search_page(req, items)

    # -- v2: deals --------------------------------------------------------------------------
    def _deals(self, req: Request, archived: bool) -> Response:
        statuses = {s.strip() for s in (req.arg("status") or "").split(",") if s.strip()}
        if not statuses <= {"open", "won", "lost", "deleted"}:
            raise _invalid("status: must be one of open, won, lost, deleted")
        now = self.now()
        rows = []
        for rec in self.state["deals"].values():
            if bool(rec.get("is_archived")) != archived:
                continue
            if rec.get("is_deleted"):
                if "deleted" not in statuses or now - parse_time(rec["update_time"]) > 30 * 86400:
                    continue
            elif statuses and rec["status"] not in statuses:
                continue
            rows.append(rec)
        ids = self._ids_filter(req)
        if ids is not None:
            rows = [r for r in rows if r["id"] in ids]
        for name in ("org_id", "person_id", "pipeline_id", "stage_id", "owner_id"):
            value = self._int_arg(req, name)
            if value is not None:
                rows = [r for r in rows if r.get(name) == value]
        rows = self._updated_window(req, rows)
        return self._page(req, rows, sort_fields=("id", "update_time", "add_time"), render=self._deal_out)

    @api("GET", "/deals", cost=10, scopes=DEALS_READ)
    def deals_list(self, req: Request) -> Response:
        return self._deals(req, archived=False)

    @api("GET", "/deals/archived", cost=20, scopes=DEALS_READ)
    def deals_archived(self, req: Request) -> Response:
        return self._deals(req, archived=True)

    @api("GET", "/deals/{id}", cost=1, scopes=DEALS_READ)
    def deals_get(self, req: Request) -> Response:
        return self._ok(self._deal_out(self._record("deals", req)))

    def _apply_deal(self, rec: dict[str, Any], body: dict[str, Any]) -> None:
        now = v2_time(self.now())
        for key, value in body.items():
            if key == "title":
                if not isinstance(value, str) or not value.strip():
                    raise _invalid("title: must be a non-empty string")
                rec["title"] = value.strip()
            elif key == "status":
                if value not in {"open", "won", "lost"}:
                    raise _invalid("status: must be one of open, won, lost")
                if value != rec.get("status"):
                    rec["status"] = value
                    rec["won_time"] = now if value == "won" else None
                    rec["lost_time"] = now if value == "lost" else None
                    rec["close_time"] = now if value != "open" else None
            elif key in {"value", "probability"}:
                rec[key] = _number_value(key, value)
            elif key == "stage_id":
                stage = self.state["stages"].get(str(value))
                if stage is None or stage.get("is_deleted"):
                    raise _err(400, "Stage not found", "ERR_INVALID_INPUT")
                if value != rec.get("stage_id"):
                    rec.update(stage_id=value, pipeline_id=stage["pipeline_id"], stage_change_time=now)
            elif key in {"org_id", "person_id"}:
                kind = "organizations" if key == "org_id" else "persons"
                if value is not None and not self._live(kind, value):
                    raise _err(400, f"{'Organization' if key == 'org_id' else 'Person'} not found",
                               "ERR_INVALID_INPUT")
                rec[key] = value
            elif key == "is_archived":
                rec["is_archived"] = bool(value)
                rec["_archive_time"] = now if value else None
            elif key == "archive_time":
                rec["_archive_time"] = value
            elif key == "custom_fields":
                rec[key] = self._custom_in("deal", value, rec.get("custom_fields") or {})
            elif key == "is_deleted":
                if value:
                    rec["is_deleted"], rec["status"] = True, "deleted"
            elif key == "expected_close_date":
                if value is not None and not (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
                    raise _invalid("expected_close_date: must be a date (YYYY-MM-DD)")
                rec[key] = value
            elif key in {"owner_id", "visible_to", "pipeline_id"}:
                rec[key] = _int_value(key, value)
            else:
                rec[key] = value

    @api("POST", "/deals", cost=5, scopes=DEALS_FULL)
    def deals_create(self, req: Request) -> Response:
        body = self._body(req, DEAL_KEYS)
        if not body.get("title"):
            raise _invalid("title: \"title\" is required.")
        did = self.next_id("deal")
        when = v2_time(self.now())
        first_stage = min((s for s in self.state["stages"].values() if not s.get("is_deleted")),
                          key=lambda s: (s["pipeline_id"], s["order_nr"]), default=None)
        rec = {"id": did, "title": "", "owner_id": self.state["user"]["id"], "person_id": None, "org_id": None,
               "pipeline_id": first_stage["pipeline_id"] if first_stage else None,
               "stage_id": first_stage["id"] if first_stage else None, "value": "0",
               "currency": self.state["company"]["currency"], "add_time": when, "update_time": when,
               "stage_change_time": when, "is_deleted": False, "is_archived": False, "status": "open",
               "probability": None, "lost_reason": None, "visible_to": 3, "close_time": None, "won_time": None,
               "lost_time": None, "expected_close_date": None, "label_ids": [], "origin": "API", "origin_id": None,
               "channel": None, "channel_id": None, "source_lead_id": None, "arr": None, "mrr": None, "acv": None,
               "custom_fields": {}, "_archive_time": None}
        self._apply_deal(rec, body)
        self.state["deals"][str(did)] = rec
        self.persist()
        return self._ok(self._deal_out(rec))

    @api("PATCH", "/deals/{id}", cost=5, scopes=DEALS_FULL)
    def deals_update(self, req: Request) -> Response:
        rec = self._record("deals", req)
        body = self._body(req, DEAL_KEYS)
        updated = json.loads(json.dumps(rec))
        self._apply_deal(updated, body)
        updated["update_time"] = v2_time(self.now())
        rec.clear()
        rec.update(updated)
        self.persist()
        return self._ok(self._deal_out(rec))

    @api("DELETE", "/deals/{id}", cost=3, scopes=DEALS_FULL)
    def deals_delete(self, req: Request) -> Response:
        rec = self._record("deals", req)
        self._mark_deleted("deals", rec)
        self.persist()
        return self._ok({"id": rec["id"]})

    # -- v2: deal products ------------------------------------------------------------------
    def _attach(self, deal_id: int, body: dict[str, Any], when: str, *, order_nr: int | None = None,
                touch: bool = True) -> dict[str, Any]:
        product = self.state["products"].get(str(body.get("product_id")))
        if product is None or product.get("is_deleted"):
            raise _err(400, "Product not found", "ERR_INVALID_INPUT")
        aid = self.next_id("deal_product")
        rec = {"id": aid, "deal_id": deal_id, "product_id": product["id"], "name": product["name"],
               "product_variation_id": None, "order_nr": order_nr or aid, "add_time": when, "update_time": when,
               "comments": "", "discount": "0", "discount_type": "percentage", "quantity": "1", "item_price": "0",
               "tax": "0", "tax_method": "inclusive", "is_enabled": True, "billing_frequency": "one-time",
               "billing_frequency_cycles": None, "billing_start_date": None}
        self._apply_line(rec, body)
        self.state["deal_products"][str(aid)] = rec
        self._revalue(deal_id, touch=touch)
        return rec

    def _apply_line(self, rec: dict[str, Any], body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key in {"item_price", "quantity", "discount", "tax"}:
                rec[key] = _number_value(key, value, required=True)
            elif key == "discount_type" and value not in {"percentage", "amount"}:
                raise _invalid("discount_type: must be one of percentage, amount")
            elif key == "tax_method" and value not in {"exclusive", "inclusive", "none"}:
                raise _invalid("tax_method: must be one of exclusive, inclusive, none")
            elif key == "product_id":
                product = self.state["products"].get(str(value))
                if product is None:
                    raise _err(400, "Product not found", "ERR_INVALID_INPUT")
                rec.update(product_id=product["id"], name=product["name"])
            else:
                rec[key] = value

    def _revalue(self, deal_id: int, *, touch: bool = True) -> None:
        """A deal with products is worth the sum of its enabled product lines."""
        deal = self.state["deals"][str(deal_id)]
        lines = [p for p in self.state["deal_products"].values() if p["deal_id"] == deal_id and p.get("is_enabled")]
        deal["value"] = str(sum((self._line_sum(p) for p in lines), Decimal(0)))
        if touch:
            self._touch(deal)

    @api("GET", "/deals/{id}/products", cost=10,
         scopes=("products:read", "products:full", "deals:read", "deals:full"))
    def deal_products_list(self, req: Request) -> Response:
        deal = self._record("deals", req)
        rows = [p for p in self.state["deal_products"].values() if p["deal_id"] == deal["id"]]
        return self._page(req, rows, sort_fields=("id", "add_time", "update_time", "order_nr"),
                          render=self._deal_product_out)

    @api("GET", "/deals/products", cost=10, scopes=("products:read", "products:full", "deals:read", "deals:full"))
    def deal_products_many(self, req: Request) -> Response:
        raw = ",".join(req.query.get("deal_ids", []))
        try:
            deal_ids = {int(x) for x in raw.split(",") if x.strip()}
        except ValueError as exc:
            raise _invalid("deal_ids: must be an array of integers") from exc
        if not deal_ids:
            raise _invalid("deal_ids: Parameter 'deal_ids' is required")
        if len(deal_ids) > 100:
            raise _invalid("deal_ids: a maximum of 100 deal ids is allowed")
        rows = [p for p in self.state["deal_products"].values() if p["deal_id"] in deal_ids]
        return self._page(req, rows, sort_fields=("id", "deal_id", "add_time", "update_time", "order_nr"),
                          render=self._deal_product_out)

    @api("POST", "/deals/{id}/products", cost=5, scopes=("products:full", "deals:full"))
    def deal_products_add(self, req: Request) -> Response:
        deal = self._record("deals", req)
        body = self._body(req, DEAL_PRODUCT_KEYS)
        for key in ("product_id", "item_price", "quantity"):
            if body.get(key) is None:
                raise _invalid(f"{key}: Parameter '{key}' is required")
        rec = self._attach(deal["id"], body, v2_time(self.now()))
        self.persist()
        return self._ok(self._deal_product_out(rec), status=201)

    @api("PATCH", "/deals/{id}/products/{product_attachment_id}", cost=5, scopes=("products:full", "deals:full"))
    def deal_products_update(self, req: Request) -> Response:
        deal = self._record("deals", req)
        rec = self.state["deal_products"].get(req.params["product_attachment_id"])
        if rec is None or rec["deal_id"] != deal["id"]:
            raise _err(404, "Product attachment not found", "ERR_NOT_FOUND")
        body = self._body(req, DEAL_PRODUCT_KEYS)
        self._apply_line(rec, body)
        self._touch(rec)
        self._revalue(deal["id"])
        self.persist()
        return self._ok(self._deal_product_out(rec))

    @api("DELETE", "/deals/{id}/products/{product_attachment_id}", cost=3, scopes=("deals:full", "products:full"))
    def deal_products_delete(self, req: Request) -> Response:
        deal = self._record("deals", req)
        rec = self.state["deal_products"].get(req.params["product_attachment_id"])
        if rec is None or rec["deal_id"] != deal["id"]:
            raise _err(404, "Product attachment not found", "ERR_NOT_FOUND")
        del self.state["deal_products"][str(rec["id"])]
        self._revalue(deal["id"])
        self.persist()
        return self._ok({"id": rec["id"]})

    # -- v2: products, pipelines, stages ----------------------------------------------------
    @api("GET", "/products", cost=10, scopes=("products:read", "products:full"))
    def products_list(self, req: Request) -> Response:
        rows = [r for r in self.state["products"].values() if not r.get("is_deleted")]
        ids = self._ids_filter(req)
        if ids is not None:
            rows = [r for r in rows if r["id"] in ids]
        rows = self._updated_window(req, rows)
        return self._page(req, rows, sort_fields=("id", "name", "add_time", "update_time"), render=self._product_out)

    @api("GET", "/products/{id}", cost=1, scopes=("products:read", "products:full"))
    def products_get(self, req: Request) -> Response:
        return self._ok(self._product_out(self._record("products", req)))

    @api("POST", "/products", cost=5, scopes=("products:full",))
    def products_create(self, req: Request) -> Response:
        body = self._body(req, PRODUCT_KEYS)
        if not body.get("name"):
            raise _invalid("name: Parameter 'name' is required")
        pid = self.next_id("product")
        when = v2_time(self.now())
        rec = {"id": pid, "name": body["name"], "code": body.get("code") or "", "unit": body.get("unit") or "",
               "tax": str(body.get("tax") or 0), "is_deleted": False, "is_linkable": body.get("is_linkable", True),
               "visible_to": body.get("visible_to", 3), "owner_id": body.get("owner_id", self.state["user"]["id"]),
               "add_time": when, "update_time": when, "description": body.get("description") or "",
               "category": None, "custom_fields": self._custom_in("product", body.get("custom_fields") or {}, {}),
               "billing_frequency": body.get("billing_frequency", "one-time"),
               "billing_frequency_cycles": body.get("billing_frequency_cycles"),
               "prices": [{"product_id": pid, "price": str(p.get("price", 0)), "currency": p.get("currency"),
                           "cost": str(p.get("cost", 0)), "direct_cost": None, "notes": p.get("notes", "")}
                          for p in body.get("prices") or []]}
        self.state["products"][str(pid)] = rec
        self.persist()
        return self._ok(self._product_out(rec), status=201)

    @api("GET", "/pipelines", cost=5, scopes=("deals:read", "deals:full", "admin"))
    def pipelines_list(self, req: Request) -> Response:
        rows = [r for r in self.state["pipelines"].values() if not r.get("is_deleted")]
        return self._page(req, rows, sort_fields=("id", "update_time", "add_time"), render=dict)

    @api("GET", "/stages", cost=5, scopes=("deals:read", "deals:full", "admin"))
    def stages_list(self, req: Request) -> Response:
        rows = [r for r in self.state["stages"].values() if not r.get("is_deleted")]
        pipeline_id = self._int_arg(req, "pipeline_id")
        if pipeline_id is not None:
            rows = [r for r in rows if r["pipeline_id"] == pipeline_id]
        return self._page(req, rows, sort_fields=("id", "update_time", "add_time", "order_nr"), render=dict)

    @api("PATCH", "/stages/{id}", cost=5, scopes=("admin",))
    def stages_update(self, req: Request) -> Response:
        rec = self._record("stages", req)
        body = self._body(req, STAGE_KEYS)
        for key, value in body.items():
            rec[key] = value
        self._touch(rec)
        self.persist()
        return self._ok(dict(rec))


# -- value checks -----------------------------------------------------------------------------

def _format_address(line1: str | None, postal: str | None, city: str | None, region: str | None,
                    country: str | None) -> str | None:
    town = " ".join(p for p in (postal, city) if p)
    parts = [p for p in (line1, town, region, country) if p]
    return ", ".join(parts) or None


def _score(term: str, values: list[str], exact: bool) -> float:
    needle = term.casefold()
    best = 0.0
    for value in values:
        hay = (value or "").casefold()
        if not hay:
            continue
        if hay == needle:
            return 1.0
        if not exact and needle in hay:
            best = max(best, round(len(needle) / len(hay), 4))
    return best


def _contact_list(key: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _invalid(f"{key}: must be an array")
    out = []
    for n, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise _invalid(f"{key}[{n}].value: must be a string")
        extra = set(item) - {"value", "primary", "label"}
        if extra:
            raise _invalid(f"{key}[{n}]: Parameter '{sorted(extra)[0]}' is not allowed for this request")
        out.append({"value": item["value"], "primary": bool(item.get("primary", n == 0)),
                    "label": item.get("label") or "work"})
    return out


def _address_in(key: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid(f"{key}: must be an object")
    extra = set(value) - set(ADDRESS_PARTS)
    if extra:
        raise _invalid(f"{key}.{sorted(extra)[0]}: Parameter is not allowed for this request")
    out = {part: value.get(part) for part in ADDRESS_PARTS}
    if not out["value"]:
        out["value"] = _format_address(" ".join(p for p in (out["street_number"], out["route"]) if p) or None,
                                       out["postal_code"], out["locality"], out["admin_area_level_1"], out["country"])
    return out


def _int_value(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{key}: must be an integer")
    return value


def _number_value(key: str, value: Any, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise _invalid(f"{key}: must be a number")
    return str(value)


def _custom_value(field: dict[str, Any], value: Any) -> Any:
    """One custom field value in v2's shape for its type (reference §5)."""
    key, ftype = field["key"], field["field_type"]
    if value is None:
        return None
    try:
        if ftype in {"varchar", "varchar_auto", "text", "phone"}:
            if not isinstance(value, str):
                raise _invalid(f"custom_fields.{key}: must be a string")
            if ftype == "varchar" and len(value) > 255:
                raise _invalid(f"custom_fields.{key}: must be at most 255 characters")
            return value
        if ftype == "double":
            if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
                raise _invalid(f"custom_fields.{key}: must be a number")
            return str(value)
        if ftype == "monetary":
            if not isinstance(value, dict) or isinstance(value.get("value"), bool) or \
                    not isinstance(value.get("value"), (int, Decimal)):
                raise _invalid(f"custom_fields.{key}: must be an object with value and currency")
            return {"value": str(value["value"]), "currency": value.get("currency")}
        if ftype == "date":
            if not isinstance(value, str):
                raise _invalid(f"custom_fields.{key}: must be a date")
            dt.date.fromisoformat(value)
            return value
        if ftype == "enum":
            ids = {o["id"] for o in field.get("options") or []}
            if value not in ids:
                raise _invalid(f"custom_fields.{key}: option {value} does not exist")
            return value
        if ftype == "set":
            ids = {o["id"] for o in field.get("options") or []}
            if not isinstance(value, list) or not value:
                raise _invalid(f"custom_fields.{key}: must be a non-empty array of option ids (use null to clear)")
            if not set(value) <= ids:
                raise _invalid(f"custom_fields.{key}: option does not exist")
            return value
        if ftype == "address":
            return _address_in(f"custom_fields.{key}", value)
        if ftype in {"org", "people", "user"}:
            return _int_value(f"custom_fields.{key}", value)
    except (ValueError, InvalidOperation) as exc:
        raise _invalid(f"custom_fields.{key}: invalid value") from exc
    return value
