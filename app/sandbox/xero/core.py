"""One Xero sign-in's organisations: the state, ids, the clock and the answer envelope."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from app.sandbox.base import SandboxApp
from app.sandbox.common import NameIndex
from app.sandbox.xero.shapes import msdate


class XeroCore(SandboxApp):
    """Tenants (organisations), their ids and Xero's envelope."""

    provider = "xero"
    access_ttl = 1800  # 30 minutes
    refresh_ttl = 60 * 86400  # dies when unused for 60 days (each rotation starts a new one)
    refresh_rotates = True
    refresh_grace = 1800  # the previous refresh token lives 30 more minutes
    minute_limit = 60
    day_limit = 5000
    concurrent_limit = 5
    app_minute_limit = 10_000
    idempotency_ttl = 86400  # (unverified; the reference says minutes to hours at least)
    max_body = 3_500_000
    provider_name = "Crossledger"

    def __init__(self, state_file: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._flight = threading.Condition()
        self._in_flight: dict[str, int] = defaultdict(int)
        self._tl = threading.local()
        self.names = NameIndex(lambda contact: contact["Name"])  # contact names, per tenant
        super().__init__(state_file, clock=clock)

    # -- state ------------------------------------------------------------------------------
    def empty_state(self) -> dict[str, Any]:
        return {"tenants": {}}

    def new_id(self, kind: str) -> str:
        """GUIDs, deterministic per sandbox so seeded data looks the same every run."""
        n = self.next_id(kind)
        return str(uuid.UUID(bytes=hashlib.md5(f"xero:{kind}:{n}".encode()).digest(), version=4))  # noqa: S324

    def add_tenant(self, name: str, *, tenant_type: str = "ORGANISATION", currency: str = "GBP") -> str:
        """An organisation (or a practice) this sign-in reaches; tests add more than one."""
        with self.lock:
            tid = self.new_id("tenant")
            now = self.now()
            self.state["tenants"][tid] = {
                "tenantId": tid, "tenantName": name, "tenantType": tenant_type, "connectionId": self.new_id("conn"),
                "authEventId": self.new_id("auth"), "created": now, "updated": now, "connected": True,
                "org": {"OrganisationID": tid, "Name": name, "LegalName": name, "PaysTax": True, "Version": "UK",
                        "OrganisationType": "COMPANY", "BaseCurrency": currency, "CountryCode": "GB",
                        "IsDemoCompany": False, "OrganisationStatus": "ACTIVE", "FinancialYearEndDay": 31,
                        "FinancialYearEndMonth": 3, "DefaultSalesTax": "Tax Exclusive",
                        "DefaultPurchasesTax": "Tax Exclusive", "Timezone": "GMTSTANDARDTIME",
                        "OrganisationEntityType": "COMPANY", "ShortCode": "!" + tid[:5], "Edition": "BUSINESS",
                        "Class": "PREMIUM", "_created": now},
                "currencies": [currency] + [c for c in ("GBP", "USD", "EUR", "AUD", "NZD") if c != currency],
                "taxes": {"OUTPUT2": "20", "RROUTPUT": "5", "ZERORATEDOUTPUT": "0", "EXEMPTOUTPUT": "0",
                          "INPUT2": "20", "NONE": "0"},
                "accounts": {
                    "090": {"AccountID": self.new_id("account"), "Code": "090", "Name": "Business Bank Account",
                            "Type": "BANK", "TaxType": "NONE", "EnablePaymentsToAccount": True},
                    "200": {"AccountID": self.new_id("account"), "Code": "200", "Name": "Sales", "Type": "REVENUE",
                            "TaxType": "OUTPUT2", "EnablePaymentsToAccount": False},
                    "260": {"AccountID": self.new_id("account"), "Code": "260", "Name": "Other Revenue",
                            "Type": "REVENUE", "TaxType": "OUTPUT2", "EnablePaymentsToAccount": False},
                    "400": {"AccountID": self.new_id("account"), "Code": "400", "Name": "Advertising",
                            "Type": "EXPENSE", "TaxType": "INPUT2", "EnablePaymentsToAccount": False},
                },
                "contacts": {}, "items": {}, "invoices": {}, "payments": {}, "idem": {}, "invoice_no": 0,
            }
            self.persist()
            return tid

    @property
    def default_tenant(self) -> str:
        return next(iter(self.state["tenants"]))

    def _tenant_of(self, kind: str, record_id: str) -> dict[str, Any]:
        for tenant in self.state["tenants"].values():
            if record_id in tenant[kind]:
                return tenant
        raise KeyError(f"no {kind} {record_id}")

    # -- clock and formats --------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def today(self) -> str:
        return dt.datetime.fromtimestamp(self.now(), dt.UTC).date().isoformat()

    def _touch(self, rec: dict[str, Any]) -> None:
        rec["_updated"] = self.now()
        rec["_seq"] = self.next_id("seq")

    def envelope(self, key: str, rows: list[dict[str, Any]], pagination: dict[str, int] | None = None) -> dict:
        body: dict[str, Any] = {"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": self.provider_name,
                                "DateTimeUTC": msdate(self.now_ms(), offset=False)}
        if pagination is not None:
            body["pagination"] = pagination
        body[key] = rows
        return body

