"""Zoho Books organisations: state, ids, the organisation's clock, currencies and taxes."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any

from app.sandbox.common import NameIndex, zone
from app.sandbox.zoho_accounts import ZohoAccounts
from app.sandbox.zohobooks.shapes import CURRENCIES, ID_BASE, bad_param, invalid, s


class ZohoBooksCore(ZohoAccounts):
    """Organisations, ids, times, currencies and taxes."""

    provider = "zohobooks"
    access_ttl = 3600  # one hour
    refresh_rotates = False  # ... and are never rotated
    rate_limit = (100, 60.0)  # requests per minute per organisation

    def __init__(self, state_file: str | None = None, *, clock: Callable[[], float] = time.time,
                 plan: str = "Premium", time_zone: str = "Europe/London") -> None:
        self.plan = plan
        self.time_zone = time_zone
        self.daily_scale = 1.0
        self.names = NameIndex(lambda contact: contact["contact_name"])  # per organisation
        self._stamps: dict[tuple[int, dt.tzinfo], str] = {}  # ts() written already
        super().__init__(state_file, clock=clock)

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        return {"orgs": {}, "books": {}, "usage": {}, "default_org": None}

    def new_id(self) -> str:
        return str(ID_BASE + self.next_id("zoho") * 17)

    def add_organization(self, name: str, *, currency: str = "GBP", is_default: bool = False,
                         plan: str | None = None, time_zone: str | None = None) -> str:
        """Create an organisation with currencies and taxes (also used by tests for multi-org users)."""
        with self.lock:
            org = str(10_234_695 + self.next_id("org") * 1013)
            if is_default:
                for other in self.state["orgs"].values():
                    other["is_default_org"] = False
            currencies = []
            for code, (label, symbol) in CURRENCIES.items():
                currencies.append({
                    "currency_id": self.new_id(), "currency_code": code, "currency_name": label,
                    "currency_symbol": symbol, "price_precision": 2, "currency_format": "1,234,567.89",
                    "is_base_currency": code == currency, "exchange_rate": "1" if code == currency else "0",
                })
            base = next(c for c in currencies if c["currency_code"] == currency)
            self.state["orgs"][org] = {
                "organization_id": org, "name": name, "contact_name": "Alex Ledger",
                "email": "accounts@" + re.sub(r"[^a-z]", "", name.lower())[:20] + ".example",
                "is_default_org": is_default, "plan_type": 0, "plan_name": plan or self.plan,
                "currency_id": base["currency_id"], "currency_code": currency,
                "currency_symbol": base["currency_symbol"], "price_precision": 2,
                "time_zone": time_zone or self.time_zone, "language_code": "en", "date_format": "dd MMM yyyy",
                "field_separator": " ", "fiscal_year_start_month": 0, "country": "United Kingdom",
                "is_org_active": True, "account_created_date": self._date(self.now(), org_tz=None),
                "user_role": "admin", "user_status": "active",
            }
            self.state["books"][org] = {
                "contacts": {}, "items": {}, "invoices": {}, "payments": {}, "currencies": currencies,
                "taxes": [
                    {"tax_id": self.new_id(), "tax_name": "Standard Rate", "tax_percentage": "20",
                     "tax_type": "tax", "is_default_tax": True, "is_editable": True},
                    {"tax_id": self.new_id(), "tax_name": "Reduced Rate", "tax_percentage": "5",
                     "tax_type": "tax", "is_default_tax": False, "is_editable": True},
                    {"tax_id": self.new_id(), "tax_name": "Zero Rate", "tax_percentage": "0",
                     "tax_type": "tax", "is_default_tax": False, "is_editable": True},
                ],
                "numbers": {"invoice": 0, "payment": 0},
            }
            if self.state.get("default_org") is None or is_default:
                self.state["default_org"] = org
            self.persist()
            return org

    # -- clock and formats ------------------------------------------------------------------
    def _tz(self, org: str | None) -> dt.tzinfo:
        name = (self.state["orgs"].get(org) or {}).get("time_zone") if org else None
        return zone(name or self.time_zone)

    def ts(self, epoch: float, org: str | None) -> str:
        """``2026-05-12T03:10:11+0100``: organisation time zone, offset without a colon. Each stamp is
        written once: a list page writes every contact's two stamps, unchanged from the page before."""
        key = (int(epoch), self._tz(org))
        if (text := self._stamps.get(key)) is None:
            if len(self._stamps) > 100_000:
                self._stamps.clear()
            text = self._stamps[key] = dt.datetime.fromtimestamp(key[0], key[1]).strftime("%Y-%m-%dT%H:%M:%S%z")
        return text

    def _date(self, epoch: float, org_tz: str | None) -> str:
        return dt.datetime.fromtimestamp(epoch, self._tz(org_tz)).date().isoformat()

    def today(self, org: str) -> str:
        return self._date(self.now(), org)

    @staticmethod
    def parse_ts(value: str, name: str) -> float:
        text = value.strip()
        for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
            try:
                return dt.datetime.strptime(text, fmt).timestamp()
            except ValueError:
                continue
        raise bad_param(name)

    def _books(self, org: str) -> dict[str, Any]:
        return self.state["books"][org]

    def _currency(self, org: str, currency_id: Any) -> dict[str, Any]:
        for cur in self._books(org)["currencies"]:
            if cur["currency_id"] == s(currency_id):
                return cur
        raise invalid("currency_id")

    def _base_currency(self, org: str) -> dict[str, Any]:
        return next(c for c in self._books(org)["currencies"] if c["is_base_currency"])

    def _tax(self, org: str, tax_id: Any) -> dict[str, Any]:
        for tax in self._books(org)["taxes"]:
            if tax["tax_id"] == s(tax_id):
                return tax
        raise invalid("tax_id")

