"""QBO companies (realms): state, ids, the company clock and the wire form of records."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from app.sandbox.base import SandboxApp
from app.sandbox.common import NameIndex, zone
from app.sandbox.quickbooks.faults import _out
from app.sandbox.quickbooks.schema import CURRENCIES, NAME_LISTS, PACIFIC_STANDARD, TRANSACTIONS, ZERO


class QboCore(SandboxApp):
    """Companies, ids, times and wire forms."""

    provider = "quickbooks"
    access_ttl = 3600
    refresh_ttl = 8726400  # ~100 days, rolling: every refresh starts a new one
    refresh_rotates = True
    refresh_grace = 600  # the old value works for a short while (community reports; reference §1)
    rate_limit = (500, 60.0)  # requests per minute per realm
    batch_limit = (40, 60.0)  # batch calls per minute per realm and app
    pkce_supported = False

    def __init__(self, state_file: str | None = None, *, clock: Callable[[], float] = time.time,
                 time_zone: str = "America/Los_Angeles") -> None:
        self.time_zone = time_zone
        self.names = NameIndex(lambda rec: rec.get("DisplayName"))  # per company, across NAME_HOLDERS
        super().__init__(state_file, clock=clock)

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        return {"companies": {}, "default_realm": None}

    def add_company(self, name: str, *, realm: str | None = None, home_currency: str = "USD",
                    multicurrency: bool = True) -> str:
        """A QBO company (realm) with its chart of accounts; returns the realmId."""
        with self.lock:
            realm = realm or str(9_130_000_000_000_000 + secrets.randbelow(10**15))
            now = self.now()
            co: dict[str, Any] = {
                "realm": realm, "home_currency": home_currency, "multicurrency": multicurrency,
                "duplicate_doc_check": False,
                "entities": {name_: {} for name_ in (*NAME_LISTS, *TRANSACTIONS)},
                "deleted": {name_: {} for name_ in TRANSACTIONS},
                "requestids": {}, "counters": {}, "doc_number": 1000,
                "info": {"Id": "1", "SyncToken": "0", "CompanyName": name, "LegalName": name,
                         "CompanyAddr": {"Id": "1", "Line1": "2600 Marine Way", "City": "Mountain View",
                                         "CountrySubDivisionCode": "CA", "PostalCode": "94043", "Country": "US"},
                         "Country": "US", "Email": {"Address": "books@crossledger.example"},
                         "CompanyStartDate": self._date(now), "FiscalYearStartMonth": "January",
                         "SupportedLanguages": "en", "DefaultTimeZone": self.time_zone,
                         "NameValue": [{"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
                                       {"Name": "NeoEnabled", "Value": "true"}],
                         "_created": now, "_updated": now},
            }
            self.state["companies"][realm] = co
            if not self.state.get("default_realm"):
                self.state["default_realm"] = realm
            accounts = co["entities"]["Account"]
            for aid, aname, atype, classification, sub in (
                    ("1", "Services", "Income", "Revenue", "ServiceFeeIncome"),
                    ("79", "Sales of Product Income", "Income", "Revenue", "SalesOfProductIncome"),
                    ("86", "Discounts given", "Income", "Revenue", "DiscountsRefundsGiven"),
                    ("84", "Accounts Receivable (A/R)", "Accounts Receivable", "Asset", "AccountsReceivable"),
                    ("4", "Undeposited Funds", "Other Current Asset", "Asset", "UndepositedFunds"),
                    ("35", "Checking", "Bank", "Asset", "Checking")):
                accounts[aid] = {"Id": aid, "SyncToken": "0", "Name": aname, "SubAccount": False,
                                 "FullyQualifiedName": aname, "Active": True, "Classification": classification,
                                 "AccountType": atype, "AccountSubType": sub, "CurrentBalance": "0",
                                 "CurrentBalanceWithSubAccounts": "0",
                                 "CurrencyRef": self._currency_ref(home_currency), "domain": "QBO",
                                 "sparse": False, "_created": now, "_updated": now}
            co["counters"]["Account"] = 100
            self.persist()
            return realm

    def company(self, realm: str | None = None) -> dict[str, Any]:
        return self.state["companies"][realm or self.state["default_realm"]]

    def _next(self, co: dict[str, Any], entity: str, start: int) -> str:
        counters = co["counters"]
        counters[entity] = max(counters.get(entity, start - 1), start - 1) + 1
        return str(counters[entity])

    _START = {"Customer": 1, "Vendor": 30, "Employee": 55, "Item": 1, "Invoice": 130, "Payment": 190,
              "CreditMemo": 240, "Addr": 90, "Phone": 1}

    def _new_id(self, co: dict[str, Any], entity: str) -> str:
        return self._next(co, entity, self._START.get(entity, 1))

    # -- clock and formats ----------------------------------------------------------------------
    def _tz(self) -> dt.tzinfo:
        return zone(self.time_zone, PACIFIC_STANDARD)  # QBO sandbox companies are US Pacific

    def ts(self, epoch: float) -> str:
        """``2026-05-12T03:10:11-07:00``: MetaData times, seconds, company time zone."""
        return dt.datetime.fromtimestamp(int(epoch), self._tz()).isoformat()

    def stamp(self) -> str:
        """``2026-05-12T03:10:11.392-07:00``: the ``time`` of every answer."""
        return dt.datetime.fromtimestamp(self.now(), self._tz()).isoformat(timespec="milliseconds")

    def _date(self, epoch: float) -> str:
        return dt.datetime.fromtimestamp(epoch, self._tz()).date().isoformat()

    def today(self) -> str:
        return self._date(self.now())

    # -- wire form -----------------------------------------------------------------------------
    def wire(self, co: dict[str, Any], entity: str, rec: dict[str, Any]) -> dict[str, Any]:
        out = _out(rec)
        out["MetaData"] = {"CreateTime": self.ts(rec["_created"]), "LastUpdatedTime": self.ts(rec["_updated"])}
        if entity == "Customer":
            out["Balance"] = out["BalanceWithJobs"] = self._customer_balance(co, rec["Id"])
        return out

    def _customer_balance(self, co: dict[str, Any], cid: str) -> Decimal:
        total = ZERO
        for inv in co["entities"]["Invoice"].values():
            if inv["CustomerRef"]["value"] == cid:
                total += Decimal(inv["Balance"])
        for memo in co["entities"]["CreditMemo"].values():
            if memo["CustomerRef"]["value"] == cid:
                total -= Decimal(memo["RemainingCredit"])
        return total

    def _currency_ref(self, code: str) -> dict[str, str]:
        return {"value": code, "name": CURRENCIES.get(code, code)}

    def _info(self, co: dict[str, Any]) -> dict[str, Any]:
        return {**_out(co["info"]), "domain": "QBO", "sparse": False,
                "MetaData": {"CreateTime": self.ts(co["info"]["_created"]),
                             "LastUpdatedTime": self.ts(co["info"]["_updated"])}}

