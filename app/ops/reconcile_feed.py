"""What the reconciliation's lifecycle checks read from the store: fates of linked records, names, credits,
lost deals and when each month was last reconciled. Only what the mirror and the links already hold.

- A CRM record merged away: HubSpot lists the losers in the survivor's ``hs_merged_object_ids``;
  Salesforce keeps ``MasterRecordId`` on the deleted loser; a mirror row may carry ``merged_into``.
- A CRM record deleted: its mirror row is archived (the sync marks the change feed's deleted IDs).
- A ledger customer archived: its mirror row is archived (QuickBooks inactive, Xero ARCHIVED, Zoho Books
  inactive); merged: ``merged_into`` in its mirror data (Xero ``MergedToContactID``).
- Credits on an invoice: mirror rows ``creditnote`` (``invoice_id``, ``amount``: what the ledgers'
  ``read_credit_notes`` return), or ``credited`` in the invoice's mirror data; a payment's
  ``recorded_at``; a deal's ``lost``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.lifecycle import RecordFate
from app.store.models import Link, Mirror, Reconciliation


def _crm_name(props: dict[str, Any]) -> str | None:
    for key in ("name", "Name", "Account_Name", "company", "Full_Name"):
        if props.get(key):
            return str(props[key])
    first = props.get("firstname") or props.get("FirstName") or props.get("first_name") or ""
    last = props.get("lastname") or props.get("LastName") or props.get("last_name") or ""
    return f"{first} {last}".strip() or None


def survivors(crm_rows: Iterable[Mirror]) -> dict[str, str]:
    """Merged-away CRM id -> the id it lives on in, from what the mirror holds."""
    out: dict[str, str] = {}
    for m in crm_rows:
        data = m.data or {}
        props = data.get("properties") or {}
        for loser in str(props.get("hs_merged_object_ids") or "").split(";"):
            if loser and loser != m.remote_id:
                out[loser] = m.remote_id
        master = props.get("MasterRecordId") or data.get("merged_into")
        if master and str(master) != m.remote_id:
            out[m.remote_id] = str(master)
    return out


def lifecycle_feed(s: Session, workspace_id: int, links: list[Link]) -> dict[str, Any]:
    """MonthData's lifecycle fields (crm_fates, ledger_fates, crm_names, credited, lost_deals, closed)."""
    def rows(side: str, types: tuple[str, ...]) -> list[Mirror]:
        return list(s.scalars(select(Mirror).where(Mirror.workspace_id == workspace_id, Mirror.side == side,
                                                   Mirror.object_type.in_(types))))

    crm_rows = rows("crm", ("company", "person"))
    crm_by_ref = {(m.object_type, m.remote_id): m for m in crm_rows}  # Pipedrive numbers people and companies alike
    merged = survivors(crm_rows)
    names = {m.remote_id: _crm_name((m.data or {}).get("properties") or {}) for m in crm_rows}
    crm_names = {k: v for k, v in names.items() if v}
    for lk in links:
        snap_name = ((lk.snapshot or {}).get("crm") or {}).get("name")
        if snap_name and lk.object_type == "customer":
            crm_names.setdefault(lk.crm_id, snap_name)
    customers = {m.remote_id: m for m in rows("accounting", ("customer",))}
    crm_fates: dict[str, RecordFate] = {}
    ledger_fates: dict[str, RecordFate] = {}
    for lk in links:
        if lk.object_type != "customer":
            continue
        if lk.crm_id in merged:
            survivor = merged[lk.crm_id]
            crm_fates[lk.crm_id] = RecordFate(lk.crm_id, "merged", survivor_id=survivor,
                                              survivor_name=crm_names.get(survivor))
        elif (m := crm_by_ref.get((lk.crm_type, lk.crm_id))) is not None and m.archived:
            crm_fates[lk.crm_id] = RecordFate(lk.crm_id, "deleted", name=crm_names.get(lk.crm_id))
        c = customers.get(lk.acct_id)
        if c is None:
            continue
        into = (c.data or {}).get("merged_into")
        if into:
            ledger_fates[lk.acct_id] = RecordFate(lk.acct_id, "merged", survivor_id=str(into))
        elif c.archived:
            ledger_fates[lk.acct_id] = RecordFate(lk.acct_id, "archived")
    credited: dict[str, Decimal] = {m.remote_id: Decimal(str(m.data["credited"]))
                                    for m in rows("accounting", ("invoice",))
                                    if (m.data or {}).get("credited") not in (None, "", "0", "0.00")}
    for m in rows("accounting", ("creditnote",)):  # read_credit_notes: one row per (credit, invoice)
        inv = (m.data or {}).get("invoice_id")
        if inv and not m.archived and m.data.get("amount"):
            credited[inv] = credited.get(inv, Decimal(0)) + Decimal(str(m.data["amount"]))
    lost = {m.remote_id for m in rows("crm", ("deal",)) if (m.data or {}).get("lost")}
    closed: dict[str, dt.datetime] = {}
    for r in s.scalars(select(Reconciliation).where(Reconciliation.workspace_id == workspace_id,
                                                    Reconciliation.status.in_(("ok", "stale")))):
        if r.month and r.finished_at and (r.month not in closed or r.finished_at > closed[r.month]):
            closed[r.month] = r.finished_at
    return {"crm_fates": crm_fates, "ledger_fates": ledger_fates, "crm_names": crm_names, "credited": credited,
            "lost_deals": lost, "closed": closed}


def recorded_at(data: dict[str, Any]) -> dt.datetime | None:
    """A payment's ``recorded_at`` as the mirror keeps it (ISO text), if it does."""
    text = data.get("recorded_at")
    try:
        return dt.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
