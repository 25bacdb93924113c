"""What the last sync or migration read of each side, as the wizards need it: plain records, no rows.

The mirror keeps the last state read of every record on both sides. The mapping wizard previews against
the stored ledger (no API call), and the migration wizard rebuilds a record it shows from the stored copy.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import select

from app.domain.models import AccountingCustomer, CrmRecord, PartyKind
from app.store.db import Store
from app.store.models import Mirror
from app.store.serial import party_from


def _customer(m: Mirror, with_time: bool) -> AccountingCustomer:
    return AccountingCustomer(m.remote_id, party_from(m.data), m.updated_at if with_time else None,
                              not m.archived, m.version, m.data.get("raw_name"))


def ledger_customers(store: Store, workspace_id: int) -> list[AccountingCustomer]:
    """Every ledger customer as last read (empty before the first sync)."""
    with store.session() as s:
        return [_customer(m, True) for m in s.scalars(
            select(Mirror).where(Mirror.workspace_id == workspace_id, Mirror.side == "accounting",
                                 Mirror.object_type == "customer"))]


def ledger_customer(store: Store, workspace_id: int, acct_id: str) -> AccountingCustomer | None:
    """One ledger customer as last read (without its read time); None when it is no longer there."""
    with store.session() as s:
        m = s.scalars(select(Mirror).where(Mirror.workspace_id == workspace_id, Mirror.side == "accounting",
                                           Mirror.object_type == "customer", Mirror.remote_id == acct_id)).first()
        return _customer(m, False) if m is not None else None


def ledger_names(store: Store, workspace_id: int) -> set[str]:
    """The ledger customers' display names as last read, case-folded (to keep a new name unique)."""
    with store.session() as s:
        return {str(m.data.get("raw_name") or m.data.get("name") or "").casefold() for m in s.scalars(
            select(Mirror).where(Mirror.workspace_id == workspace_id, Mirror.side == "accounting",
                                 Mirror.object_type == "customer"))}


def crm_record(store: Store, workspace_id: int, object_type: str, crm_id: str) -> CrmRecord:
    """A CRM record as last read; with no properties when it was never read."""
    with store.session() as s:
        m = s.scalars(select(Mirror).where(Mirror.workspace_id == workspace_id, Mirror.side == "crm",
                                           Mirror.object_type == object_type, Mirror.remote_id == crm_id)).first()
        data = dict(m.data) if m else {}
    return CrmRecord(cast(PartyKind, object_type), crm_id, data.get("properties") or {},
                     company_id=data.get("company_id"))
