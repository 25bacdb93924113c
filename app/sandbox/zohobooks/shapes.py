"""Zoho Books' wire shapes: constants, the {code, message} envelope and errors, numbers."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from app.sandbox.base import HttpError
from app.sandbox.common import ExactJsonResponse, half_up

API = r"/books/v3"
ID_BASE = 460_000_000_000_000  # Zoho ids are long digit strings
CENT = Decimal("0.01")
ZERO = Decimal(0)
HUNDRED = Decimal(100)


# Scopes a Crossledger connection asks for; grant_tokens() issues them so in-process tests see
# exactly what a real consent would give.
FULL_SCOPE = ",".join((
    "ZohoBooks.contacts.ALL", "ZohoBooks.invoices.ALL", "ZohoBooks.customerpayments.ALL",
    "ZohoBooks.settings.ALL", "ZohoBooks.creditnotes.ALL",
))


DAILY_CAPS = {"free": 1000, "standard": 2000, "professional": 5000, "premium": 10000, "elite": 10000,
              "ultimate": 10000}
CURRENCIES = {
    "GBP": ("British Pound Sterling", "£"), "USD": ("United States Dollar", "$"), "EUR": ("Euro", "€"),
    "AUD": ("Australian Dollar", "$"), "CAD": ("Canadian Dollar", "$"), "INR": ("Indian Rupee", "₹"),
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PCT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")


ZohoResponse = ExactJsonResponse  # Zoho sends amounts as JSON numbers


def ok(body: dict[str, Any], status: int = 200, message: str = "success") -> ZohoResponse:
    return ZohoResponse(status, {"code": 0, "message": message, **body})


def zerr(status: int, code: int, message: str) -> HttpError:
    """Zoho's error body: ``{"code": <int>, "message": "<text>"}``."""
    return HttpError(status, {"code": code, "message": message})


def invalid(field: str) -> HttpError:
    return zerr(400, 4, f"Invalid value passed for {field}")


def bad_param(name: str) -> HttpError:
    return zerr(400, 2, f"Invalid value passed for {name}")


def dec(value: Any, field: str) -> Decimal:
    if isinstance(value, bool):
        raise invalid(field)
    try:
        out = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise invalid(field) from None
    if not out.is_finite():
        raise invalid(field)
    return out


money = half_up  # amounts to the price precision (2), halves away from zero


def s(value: Any) -> str:
    return "" if value is None else str(value)


def _address(raw: dict[str, Any]) -> dict[str, str]:
    return {k: s(raw.get(k)).strip() for k in ("attention", "address", "street2", "city", "state", "state_code",
                                                "zip", "country", "phone", "fax")}


def _many(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
