"""The canonical model the sync engine speaks; connectors translate to and from it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from app.domain.money import line_net

PartyKind = Literal["company", "person"]

# Canonical party fields that mapping, planning and conflict rules work on.
PARTY_FIELDS: tuple[str, ...] = (
    "name",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "tax_id",
)


@dataclass(frozen=True, slots=True)
class Party:
    """A customer as both sides understand it.

    ``country`` is an ISO 3166-1 alpha-2 code; ``tax_id`` is the number as entered,
    validated later against the country's scheme.
    """

    kind: PartyKind
    name: str = ""
    email: str | None = None
    phone: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    tax_id: str | None = None
    currency: str | None = None

    def fields(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in PARTY_FIELDS}

    def with_fields(self, values: dict[str, Any]) -> Party:
        return replace(self, **{k: v for k, v in values.items() if k in PARTY_FIELDS or k == "currency"})


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """A CRM person or company as read, with the provider's own flat properties.

    ``properties`` keeps provider field names (custom fields included) so the mapping,
    not the connector, decides which field feeds which canonical field.
    """

    object_type: Literal["company", "person"]
    id: str
    properties: dict[str, Any]
    updated_at: dt.datetime | None = None
    archived: bool = False
    company_id: str | None = None  # for a person: the company it belongs to, if any
    merged_into: str | None = None


@dataclass(frozen=True, slots=True)
class AccountingCustomer:
    """A customer as the ledger holds it, already in canonical terms."""

    id: str
    party: Party
    updated_at: dt.datetime | None = None
    active: bool = True
    version: str | None = None  # QBO SyncToken and the like; opaque to the engine
    raw_name: str | None = None  # the display name exactly as stored


@dataclass(frozen=True, slots=True)
class LineItem:
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal = Decimal(0)
    sku: str | None = None
    product_name: str | None = None
    tax_code: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Deal:
    id: str
    name: str
    won: bool
    currency: str
    amount: Decimal | None = None
    close_date: dt.date | None = None
    company_id: str | None = None
    contact_ids: tuple[str, ...] = ()
    line_items: tuple[LineItem, ...] = ()
    properties: dict[str, Any] = field(default_factory=dict)
    updated_at: dt.datetime | None = None
    archived: bool = False

    @property
    def net(self) -> Decimal:
        """What the deal is worth before tax: its lines (each rounded to the cent), else its amount."""
        if self.line_items:
            return sum((line_net(li.quantity, li.unit_price, li.discount_percent) for li in self.line_items),
                       Decimal(0))
        return self.amount or Decimal(0)


InvoiceStatus = Literal["draft", "awaiting_payment", "partly_paid", "paid", "overdue", "void"]


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal = Decimal(0)
    item_id: str | None = None
    tax_code: str | None = None
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str | None
    customer_id: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    reference: str | None = None
    number: str | None = None
    issue_date: dt.date | None = None
    due_date: dt.date | None = None
    total: Decimal | None = None
    amount_paid: Decimal | None = None
    balance: Decimal | None = None
    status: InvoiceStatus | None = None
    updated_at: dt.datetime | None = None
    web_url: str | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    invoice_id: str
    amount: Decimal
    currency: str
    date: dt.date
    recorded_at: dt.datetime | None = None  # when it was entered in the ledger (QBO CreateTime and the like)


@dataclass(frozen=True, slots=True)
class Item:
    """A product or service in the ledger that invoice lines refer to."""

    id: str | None
    name: str
    sku: str | None = None
    unit_price: Decimal | None = None
    active: bool = True
    description: str | None = None
