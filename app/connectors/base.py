"""The two connector protocols the sync engine talks to, and the plain types they exchange."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from app.connectors.errors import ConnectorError
from app.domain.models import AccountingCustomer, CrmRecord, Deal, Invoice, Item, Party, Payment

T = TypeVar("T")


def cursor_fields(text: str | None) -> dict[str, Any] | None:
    """An opaque cursor's fields (version 1, as ``cursor_text`` wrote them); None for no cursor or one
    that cannot be read, which the connector answers with a full read."""
    if not text:
        return None
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    return raw if isinstance(raw, dict) and raw.get("v") == 1 else None


def cursor_text(**fields: Any) -> str:
    """A cursor handed to the engine: version 1, its fields in a fixed order, compact."""
    return json.dumps({"v": 1, **fields}, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Limits:
    """What a provider allows; the HTTP layer and the planner size their work from it."""

    requests: int  # per window
    window_seconds: float
    batch_max: int = 1
    page_max: int = 100
    concurrency: int = 1
    daily_cap: int | None = None
    # What one write (a create or an update) costs of ``daily_cap``: 1 call, or Pipedrive's 5 tokens.
    write_cost: int = 1
    cap_unit: str = "calls"  # what ``daily_cap`` counts


@dataclass(slots=True)
class Connection:
    """Everything needed to reach one provider account, except secrets (those are in the keyring)."""

    id: str
    provider: str
    base_url: str  # API root, e.g. http://127.0.0.1:8701 or https://api.hubapi.com
    auth_url: str | None = None  # root of the OAuth endpoints when it differs from base_url
    client_id: str = "crossledger-desktop"
    tenant_id: str | None = None  # QBO realmId, Xero tenant, Zoho organization_id
    label: str | None = None  # the company name shown to the user
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Changes(Generic[T]):
    """One read of a change feed. ``cursor`` is opaque and goes back in on the next read."""

    records: list[T]
    cursor: str | None
    deleted_ids: list[str] = field(default_factory=list)
    full: bool = False
    requests: int = 0


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    label: str
    type: str = "string"
    custom: bool = False


@dataclass(frozen=True, slots=True)
class CustomerWrite:
    """A create (``id`` None) or update of one ledger customer, keyed for the journal."""

    key: str
    party: Party
    id: str | None = None
    version: str | None = None
    display_name: str | None = None  # the name to store; defaults to party.name


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """A create (``id`` None) or update of one CRM record's provider fields (deals included)."""

    key: str
    object_type: Literal["company", "person", "deal"]
    id: str | None
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ItemWrite:
    key: str
    item: Item


@dataclass(frozen=True, slots=True)
class InvoiceWrite:
    """Create (invoice.id None) or update a still-draft invoice. ``key`` is the idempotency key."""

    key: str
    invoice: Invoice
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class WriteResult:
    key: str
    id: str | None = None
    version: str | None = None
    error: ConnectorError | None = None
    record: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class InvoiceState:
    """An invoice as the ledger holds it now, with what decides whether it may still be voided.

    ``sent``: the customer has (or may have) seen it: QuickBooks EmailStatus EmailSent, Xero
    SentToContact, Zoho Books any status past draft.
    """

    invoice: Invoice
    sent: bool
    version: str | None = None


class CrmConnector(Protocol):
    provider: str
    limits: Limits

    def default_mapping(self) -> dict[str, dict[str, str]]:
        """object_type -> {canonical field: provider field} used when the workspace has none."""

    def list_fields(self, object_type: str) -> list[FieldInfo]: ...

    def company_name(self) -> str: ...

    def read_records(self, object_type: str, cursor: str | None) -> Changes[CrmRecord]: ...

    def sample_records(self, object_type: str, limit: int) -> list[CrmRecord]:
        """Up to ``limit`` live records (archived/deleted left out) in one list request, for previews."""

    def get_records(self, object_type: str, ids: Sequence[str]) -> list[CrmRecord]: ...

    def update_records(self, writes: Sequence[RecordWrite]) -> list[WriteResult]: ...

    def read_deals(self, cursor: str | None) -> Changes[Deal]:
        """Deals with line items; ``won`` computed from the CRM's stage metadata, never a stage name."""

    def ensure_deal_fields(self, fields: Sequence[FieldInfo]) -> dict[str, str]:
        """Create the custom deal fields that are missing; returns our name -> provider field key."""

    def update_deals(self, writes: Sequence[RecordWrite]) -> list[WriteResult]: ...

    def record_url(self, object_type: str, record_id: str) -> str: ...

    def close(self) -> None: ...


class AccountingConnector(Protocol):
    provider: str
    limits: Limits

    def company_name(self) -> str: ...

    def read_customers(self, cursor: str | None) -> Changes[AccountingCustomer]: ...

    def get_customers(self, ids: Sequence[str]) -> list[AccountingCustomer]: ...

    def find_customers(self, *, name: str | None = None, email: str | None = None) -> list[AccountingCustomer]:
        """Exact lookups used before a create and to settle a write whose outcome is unknown."""

    def create_customers(self, writes: Sequence[CustomerWrite]) -> list[WriteResult]: ...

    def update_customers(self, writes: Sequence[CustomerWrite]) -> list[WriteResult]: ...

    def customer_url(self, customer_id: str) -> str: ...

    def list_tenants(self) -> list[Tenant]: ...

    def read_items(self, cursor: str | None) -> Changes[Item]: ...

    def create_items(self, writes: Sequence[ItemWrite]) -> list[WriteResult]: ...

    def read_invoices(self, cursor: str | None) -> Changes[Invoice]: ...

    def find_invoices(self, reference: str) -> list[Invoice]:
        """Invoices stamped with ``reference`` (how a create whose outcome is unknown is settled)."""

    def create_invoices(self, writes: Sequence[InvoiceWrite]) -> list[WriteResult]: ...

    def update_invoices(self, writes: Sequence[InvoiceWrite]) -> list[WriteResult]: ...

    def read_payments(self, cursor: str | None) -> Changes[Payment]: ...

    def invoice_url(self, invoice_id: str) -> str: ...

    def get_invoice_states(self, ids: Sequence[str]) -> list[InvoiceState]:
        """The current state of these invoices, read from the ledger (not the mirror); missing ones left out."""

    def deactivate_customer(self, customer_id: str, version: str | None = None) -> WriteResult:
        """Make a customer inactive / archived, never delete it. ``version`` (when given) must still be current."""

    def void_invoice(self, invoice_id: str, version: str | None = None) -> WriteResult:
        """Void an invoice (Xero: a draft is DELETED, an approved one VOIDED); the ledger refuses a paid one."""

    def close(self) -> None: ...
