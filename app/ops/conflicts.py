"""The Review page's use cases: open conflicts, a person's choice, and applying it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select

from app.domain.lifecycle import INVOICE_FLAG, is_flag
from app.domain.settings import settings_of, stored_with
from app.ops import changes
from app.ops.workspaces import UserError
from app.store.db import Store
from app.store.models import ConflictRow, Link, Mirror, Quarantine, Workspace, utcnow

Choice = Literal["crm", "accounting", "edited"]

FIELD_LABELS = {"name": "Name", "email": "Email", "phone": "Phone", "address_line1": "Address",
                "address_line2": "Address (line 2)", "city": "City", "region": "State / region",
                "postal_code": "Postcode", "country": "Country", "tax_id": "Tax ID"}
# Flags (app.domain.lifecycle.is_flag): not a field changed on both sides but something to look at.
FLAG_LABELS = {f"{INVOICE_FLAG}won": "Deal lost or reopened after its invoice",
               f"{INVOICE_FLAG}lines": "Deal changed after its invoice"}


def field_label(field_name: str) -> str:
    if is_flag(field_name):
        return FLAG_LABELS.get(field_name, "Linked record changed on one side")
    return FIELD_LABELS.get(field_name, field_name.replace("_", " ").capitalize())


@dataclass(frozen=True, slots=True)
class ConflictView:
    id: int
    record_name: str
    crm_type: str
    crm_id: str
    acct_id: str | None
    field: str
    field_label: str
    crm_value: str | None
    acct_value: str | None
    base_value: str | None
    rule: str
    created_at: dt.datetime

    @property
    def is_flag(self) -> bool:
        """Something to look at (what happened is ``acct_value``), not two values to choose between."""
        return is_flag(self.field)


def conflict_name(c: ConflictRow, link_names: Mapping[tuple[str, str], str | None],
                  customer_names: Mapping[str, str | None]) -> str:
    """The name an open conflict row goes by: a flag keeps its record's own; else the linked CRM record's,
    else the ledger customer's (a deal's flag holds an invoice's id, never a customer's of the same number),
    else the CRM id."""
    return ((c.crm_value if is_flag(c.field) else None) or link_names.get((c.crm_type, c.crm_id))
            or (customer_names.get(c.acct_id or "") if c.crm_type in ("company", "person") else None) or c.crm_id)


def open_conflicts(store: Store, workspace_id: int) -> list[ConflictView]:
    with store.session() as s:
        conflicts = list(s.scalars(select(ConflictRow).where(ConflictRow.workspace_id == workspace_id,
                                                             ConflictRow.outcome == "open").order_by(ConflictRow.id)))
        if not conflicts:  # the usual case: no need to read every link and mirror for their names
            return []
        names = {(lk.crm_type, lk.crm_id): (lk.snapshot or {}).get("crm", {}).get("name")
                 for lk in s.scalars(select(Link).where(Link.workspace_id == workspace_id))}
        acct_names = {m.remote_id: m.data.get("raw_name") or m.data.get("name") for m in s.scalars(
            select(Mirror).where(Mirror.workspace_id == workspace_id, Mirror.side == "accounting",
                                 Mirror.object_type == "customer"))}
        out = []
        for c in conflicts:
            out.append(ConflictView(c.id, conflict_name(c, names, acct_names), c.crm_type, c.crm_id, c.acct_id,
                                    c.field, field_label(c.field), c.crm_value, c.acct_value, c.base_value, c.rule,
                                    c.created_at))
        return out


def choose(store: Store, conflict_id: int, choice: Choice, value: str | None = None) -> ConflictView | None:
    """Record a person's choice; the next sync (or 'apply now') puts it on both sides."""
    with store.session() as s:
        row = s.get(ConflictRow, conflict_id)
        if row is None or row.outcome != "open":
            raise UserError("That conflict is no longer open; it may have been resolved already.")
        if is_flag(row.field):  # seen: nothing to write on either side
            row.outcome, row.resolved_at = "resolved", utcnow()
            ws_id = row.workspace_id
            changes.announce(store, ws_id, changes.RESOLVE)
            return None
        if choice == "crm":
            row.chosen_value = row.crm_value
        elif choice == "accounting":
            row.chosen_value = row.acct_value
        else:
            row.chosen_value = (value or "").strip() or None
        row.choice, row.outcome, row.resolved_at = choice, "chosen", utcnow()
        ws_id = row.workspace_id
    changes.announce(store, ws_id, changes.RESOLVE)
    return None


def similar(store: Store, conflict_id: int) -> list[int]:
    """Other open conflicts on the same field of the same workspace (for 'apply to all similar')."""
    with store.session() as s:
        row = s.get(ConflictRow, conflict_id)
        if row is None:
            return []
        if is_flag(row.field):
            return []
        return [c.id for c in s.scalars(select(ConflictRow).where(
            ConflictRow.workspace_id == row.workspace_id, ConflictRow.field == row.field,
            ConflictRow.outcome == "open", ConflictRow.id != row.id))]


def choose_all(store: Store, conflict_id: int, choice: Choice) -> int:
    """Apply a side choice to this conflict and every similar one; returns how many were decided."""
    if choice == "edited":
        raise UserError("An edited value applies to one record only. Pick a side to apply it to all.")
    ids = [conflict_id, *similar(store, conflict_id)]  # flags have none: each is its own record's
    for cid in ids:
        choose(store, cid, choice)
    return len(ids)


def record_choices(store: Store, choices: list[tuple[int, Choice, str | None]], *, to_similar: bool = False) -> int:
    """Save the Review page's choices for one record; with ``to_similar`` a side choice also decides
    every other open conflict on the same field. Returns how many conflicts were decided."""
    decided = 0
    for conflict_id, choice, value in choices:
        if to_similar and choice != "edited":
            decided += choose_all(store, conflict_id, choice)
        else:
            choose(store, conflict_id, choice, value)
            decided += 1
    return decided


def pending_choices(store: Store, workspace_id: int) -> int:
    """Choices saved on the Review page that the next sync has still to put on both sides."""
    with store.session() as s:
        return len(s.scalars(select(ConflictRow.id).where(ConflictRow.workspace_id == workspace_id,
                                                          ConflictRow.outcome == "chosen")).all())


@dataclass(frozen=True, slots=True)
class AmbiguousMatch:
    """A CRM record held back because it could be any of several ledger customers."""

    record_type: str
    record_id: str
    name: str
    explanation: str
    since: dt.datetime
    candidates: tuple[Candidate, ...] = field(default=())  # the ledger customers it could be
    picked: str | None = None  # what a person picked and the next sync will do: a ledger id or "new"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ledger customer an ambiguous record could be, as the ledger holds it (last read)."""

    acct_id: str
    name: str
    email: str | None = None
    city: str | None = None
    tax_id: str | None = None


def ambiguous_matches(store: Store, workspace_id: int) -> list[AmbiguousMatch]:
    with store.session() as s:
        ws = s.get(Workspace, workspace_id)
        pins = dict(settings_of(ws).pinned_matches) if ws else {}
        rows = [q for q in s.scalars(select(Quarantine).where(Quarantine.workspace_id == workspace_id)
                                     .order_by(Quarantine.name))
                if any(i.get("field") == "match" for i in (q.reasons or {}).get("items", []))]
        wanted = {c for q in rows for c in (q.reasons or {}).get("candidates", [])}
        ledger = {m.remote_id: m.data for m in s.scalars(select(Mirror).where(
            Mirror.workspace_id == workspace_id, Mirror.side == "accounting", Mirror.object_type == "customer",
            Mirror.remote_id.in_(list(wanted))))} if wanted else {}
        out = []
        for q in rows:
            reasons = [i.get("message", "") for i in q.reasons["items"] if i.get("field") == "match"]
            cands = tuple(Candidate(c, ledger[c].get("raw_name") or ledger[c].get("name") or c,
                                    ledger[c].get("email"), ledger[c].get("city"), ledger[c].get("tax_id"))
                          for c in (q.reasons or {}).get("candidates", []) if c in ledger)
            out.append(AmbiguousMatch(q.record_type, q.record_id, q.name, " ".join(reasons), q.created_at, cands,
                                      pins.get(f"{q.record_type}:{q.record_id}")))
        return out


def pick_match(store: Store, workspace_id: int, record_type: str, record_id: str, choice: str) -> None:
    """A person's answer to an ambiguous match: ``choice`` is the ledger customer's id to link, or "new" for
    a customer of its own. Saved for the next sync, which plans the record again (it need not change)."""
    with store.session() as s:
        ws = s.get(Workspace, workspace_id)
        if ws is None:
            raise UserError("That workspace no longer exists.")
        pins = dict(settings_of(ws).pinned_matches)
        pins[f"{record_type}:{record_id}"] = choice
        ws.settings = stored_with(ws.settings, pinned_matches=pins)
        for q in s.scalars(select(Quarantine).where(Quarantine.workspace_id == workspace_id,
                                                    Quarantine.record_type == record_type,
                                                    Quarantine.record_id == record_id)):
            q.reasons = {**(q.reasons or {}), "release": True}  # the engine plans released records again
    changes.announce(store, workspace_id, changes.PICK_MATCH)


def conflict_json(c: ConflictView) -> dict[str, object]:
    """One open conflict as `status --json` and `conflicts --json` give it (stable keys)."""
    return {"id": c.id, "record_type": c.crm_type, "record_id": c.crm_id, "name": c.record_name,
            "accounting_id": c.acct_id, "field": c.field, "field_label": c.field_label,
            "crm_value": c.crm_value, "accounting_value": c.acct_value, "last_synced_value": c.base_value,
            "rule": c.rule, "since": c.created_at.isoformat() + "Z"}


def find_conflict(store: Store, workspace_id: int, record: str, field_name: str) -> ConflictView:
    """The open conflict on ``field_name`` of ``record`` (a CRM id, or the record's name in any case)."""
    wanted_field = field_name.strip().lower().replace(" ", "_")
    by_label = {label.lower(): key for key, label in FIELD_LABELS.items()}
    wanted_field = by_label.get(field_name.strip().lower(), wanted_field)
    found = [c for c in open_conflicts(store, workspace_id)
             if record in (c.crm_id, c.acct_id) or c.record_name.casefold() == record.strip().casefold()]
    if not found:
        raise UserError(f"No open conflict for '{record}'. 'crossledger conflicts' lists the open ones.")
    on_field = [c for c in found if c.field == wanted_field]
    if not on_field:
        fields = ", ".join(sorted({c.field for c in found}))
        raise UserError(f"'{found[0].record_name}' has no open conflict on '{field_name}'; it has one on: {fields}.")
    if len({(c.crm_type, c.crm_id) for c in on_field}) > 1:
        ids = ", ".join(sorted(c.crm_id for c in on_field))
        raise UserError(f"Several records are called '{record}'. Give the CRM id instead: {ids}.")
    return on_field[0]


def resolve(store: Store, workspace_id: int, record: str, field_name: str, keep: str) -> ConflictView:
    """Decide one conflict as the Review page does: keep the CRM's value, the ledger's, or a typed one.

    ``keep`` is ``crm``, ``accounting`` or ``value=…``. The next sync puts the chosen value on both sides.
    """
    c = find_conflict(store, workspace_id, record, field_name)
    if keep == "crm":
        choose(store, c.id, "crm")
    elif keep in ("accounting", "ledger"):
        choose(store, c.id, "accounting")
    elif keep.startswith("value="):
        value = keep.removeprefix("value=").strip()
        if not value:
            raise UserError("Give the value to keep after 'value=', e.g. --keep 'value=Bremen'.")
        choose(store, c.id, "edited", value)
    else:
        raise UserError("Say which value to keep: --keep crm, --keep accounting or --keep 'value=…'.")
    return c
