"""Pipedrive imitation: scopes, record keys, exact JSON numbers, times, error bodies, the route
decorator with each operation's token cost, and value checks."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import HttpError, Request, Response, route

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
        def wrapper(self: Any, req: Request) -> Response:
            return self._serve_api(req, fn, cost, scopes, search)

        for prefix in prefixes:
            route(method, prefix + pattern)(wrapper)
        return wrapper

    return deco


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
