"""HubSpot imitation: object types, standard properties, limits, error bodies and the route decorator."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from app.sandbox.base import HttpError, Request, Response, iso, route

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
SERVED_SEARCH_LAG = 3.0  # seconds: "the index lags writes by a few seconds" (reference, search section)
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
        def wrapper(self: Any, req: Request) -> Response:
            return self._serve_api(req, fn, scopes, search)

        for pattern in patterns:
            route(method, pattern)(wrapper)
        return wrapper

    return deco
