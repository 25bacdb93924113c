"""Xero's wire shapes: constants, error bodies, dates and numbers."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import HttpError
from app.sandbox.common import ExactJsonResponse, half_up

API = r"/api\.xro/2\.0"
ZERO_ID = "00000000-0000-0000-0000-000000000000"
CENT = Decimal("0.01")
ZERO = Decimal(0)
FULL_SCOPE = ("offline_access openid profile email accounting.contacts accounting.settings accounting.invoices "
              "accounting.payments accounting.transactions")
SCOPES = {  # resource -> (scopes that may write, scopes that may only read)
    "contacts": ({"accounting.contacts"}, {"accounting.contacts.read"}),
    "settings": ({"accounting.settings"}, {"accounting.settings.read"}),
    "items": ({"accounting.settings", "accounting.invoices"}, {"accounting.settings.read", "accounting.invoices.read"}),
    "invoices": ({"accounting.transactions", "accounting.invoices"},
                 {"accounting.transactions.read", "accounting.invoices.read"}),
    "payments": ({"accounting.transactions", "accounting.payments"},
                 {"accounting.transactions.read", "accounting.payments.read"}),
}
DUPLICATE = ("The contact name {} is already assigned to another contact. "
             "The contact name must be unique across all active contacts.")
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"
RATE_BODY = ("oauth_problem=rate%20limit%20exceeded"
             "&oauth_problem_advice=please%20wait%20before%20retrying%20the%20xero%20api")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
PHONE_TYPES = ("DEFAULT", "DDI", "FAX", "MOBILE")
ADDRESS_FIELDS = ("AddressLine1", "AddressLine2", "AddressLine3", "AddressLine4", "City", "Region", "PostalCode",
                  "Country", "AttentionTo")
ADDRESS_LIMITS = {"AddressLine1": 500, "AddressLine2": 500, "AddressLine3": 500, "AddressLine4": 500, "City": 255,
                  "Region": 255, "PostalCode": 50, "Country": 50, "AttentionTo": 255}
CONTACT_LIMITS = {"Name": 255, "FirstName": 255, "LastName": 255, "EmailAddress": 255, "AccountNumber": 50,
                  "ContactNumber": 50, "TaxNumber": 50, "CompanyNumber": 50}


XeroResponse = ExactJsonResponse  # Xero sends amounts as JSON numbers (150.00)
MSDATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")  # reference §11


class Invalid(Exception):
    """One element failed validation; ``messages`` become its ValidationErrors."""

    def __init__(self, *messages: str) -> None:
        super().__init__(messages[0])
        self.messages = list(messages)


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """The RFC 7807-style body Xero answers 401 and 403 with."""
    return {"Type": None, "Title": title, "Status": status, "Detail": detail, "Instance": str(uuid.uuid4()),
            "Extensions": {}}


def api_error(message: str, elements: list[dict[str, Any]] | None = None, *, number: int = 10,
              kind: str = "ValidationException") -> HttpError:
    body: dict[str, Any] = {"ErrorNumber": number, "Type": kind, "Message": message}
    if elements is not None:
        body["Elements"] = elements
    return HttpError(400, body)


def status_of(el: dict[str, Any], rec: dict[str, Any]) -> str:
    return s(el.get("Status")).upper() or rec["Status"]


def not_found() -> HttpError:
    err = HttpError(404, NOT_FOUND_TEXT)
    err.response.content_type = "text/plain"
    return err


money = half_up  # Xero's amounts: two places, halves away from zero


def dec(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise Invalid(f"{what} must be a number.")
    try:
        out = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise Invalid(f"{what} must be a number.") from None
    if not out.is_finite():
        raise Invalid(f"{what} must be a number.")
    return out


def s(value: Any) -> str:
    return "" if value is None else str(value).strip()


def msdate(epoch_ms: int, *, offset: bool = True) -> str:
    """The .NET date Xero writes in JSON: ``/Date(1439434356790+0000)/`` (or with no offset)."""
    return f"/Date({epoch_ms}{'+0000' if offset else ''})/"


def msdate_ms(value: Any) -> int | None:
    """The milliseconds since the epoch of a ``/Date(..)/`` value; the offset only says how to show it."""
    found = MSDATE.match(value.strip()) if isinstance(value, str) else None
    return int(found.group(1)) if found else None


def parse_day(value: Any, what: str) -> str:
    """``YYYY-MM-DD``, ``YYYY-MM-DDThh:mm:ss`` or ``/Date(..)/`` -> ISO date."""
    text = s(value)
    ms = msdate_ms(text) if text.startswith("/Date(") else None
    if ms is not None:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat()
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise Invalid(f"{what} must be a valid date.") from None


def day_ms(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp() * 1000)


def parse_since(value: str | None) -> float | None:
    """If-Modified-Since: ISO (zone optional, UTC assumed) or an HTTP date; unreadable ones are ignored."""
    if not value:
        return None
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return float(int(parsed.timestamp()))  # second precision


_BLANK_ADDRESS = dict.fromkeys(ADDRESS_FIELDS, "")
_BLANK_PHONE = {"PhoneNumber": "", "PhoneAreaCode": "", "PhoneCountryCode": ""}


def _address(kind: str, given: dict[str, Any]) -> dict[str, str]:
    if not given:  # most of a contact's addresses: every field blank
        return {"AddressType": kind, **_BLANK_ADDRESS}
    return {"AddressType": kind, **{f: s(given.get(f)) for f in ADDRESS_FIELDS}}


def _phone_rec(kind: str, given: dict[str, Any]) -> dict[str, str]:
    if not given:
        return {"PhoneType": kind, **_BLANK_PHONE}
    return {"PhoneType": kind, "PhoneNumber": s(given.get("PhoneNumber")),
            "PhoneAreaCode": s(given.get("PhoneAreaCode")), "PhoneCountryCode": s(given.get("PhoneCountryCode"))}
