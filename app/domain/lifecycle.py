"""What became of a record on one side: still there, archived, deleted, or merged into another.

Connectors report these (``record_fates`` on a CRM, ``customer_fates`` on a ledger); the pure rules of
``app/sync/lifecycle.py`` and the reconciliation read them. A credit note is the ledger's document that
takes money off an invoice (QuickBooks CreditMemo, Xero ACCRECCREDIT credit note, Zoho Books credit note).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

FateState = Literal["active", "archived", "deleted", "merged", "missing"]

# Flags: something that happened on one side for a person to look at, kept as a conflict row whose field
# starts with one of these (its CRM value the record's name, its ledger value what happened).
CUSTOMER_FLAG = "customer:"  # a linked customer's fate (app/sync/fates.py)
INVOICE_FLAG = "invoice:"  # an invoiced deal lost, reopened or changed (app/sync/invoice_apply.py)


def is_flag(field_name: str) -> bool:
    return field_name.startswith((CUSTOMER_FLAG, INVOICE_FLAG))


@dataclass(frozen=True, slots=True)
class RecordFate:
    """One record's state as its app holds it now.

    ``state``: ``active``; ``archived`` (the ledger's inactive/ARCHIVED customer, restorable);
    ``deleted`` (a CRM record in its recycle bin, or a ledger record deleted for good); ``merged``
    (gone into ``survivor_id``); ``missing`` (the app knows nothing of the ID any more).
    ``certain`` is False when the survivor is inferred (Pipedrive and Zoho CRM keep no merge trail:
    a deleted record whose exact name lives on in one other record is reported as merged into it,
    for a person to confirm).
    """

    id: str
    state: FateState
    survivor_id: str | None = None
    name: str | None = None
    survivor_name: str | None = None
    when: dt.datetime | None = None
    certain: bool = True

    @property
    def gone(self) -> bool:
        return self.state != "active"


@dataclass(frozen=True, slots=True)
class CreditNote:
    """A credit note raised against one invoice: ``amount`` (tax included, as the ledger totals it)
    is allocated to ``invoice_id``; ``lines`` carry the description shown to the customer."""

    id: str | None
    customer_id: str
    currency: str
    amount: Decimal
    invoice_id: str | None = None
    reason: str = ""
    number: str | None = None
    issue_date: dt.date | None = None
    remaining: Decimal | None = None  # credit not yet allocated
    status: str | None = None  # the ledger's own word (open, closed, void, AUTHORISED, PAID...)
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class CreditNoteWrite:
    """A credit note to create, keyed for the journal (the key is the idempotency key where the ledger
    has one). ``issue_date`` None: today as the ledger sees it."""

    key: str
    customer_id: str
    currency: str
    invoice_id: str
    amount: Decimal  # net of tax, one line
    description: str
    item_id: str | None = None
    issue_date: dt.date | None = None
    reference: str | None = None
