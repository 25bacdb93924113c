"""Audit trail of a workspace: every run and every field change it made (pure, no Qt)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from app.store.db import Store
from app.store.models import FieldChange, Run, Workspace


@dataclass(frozen=True)
class ChangeEntry:
    run_id: int
    run_started: dt.datetime
    trigger: str
    side: str
    record_id: str
    field: str
    before: str | None
    after: str | None
    rule: str


def field_changes(
    store: Store,
    workspace: str,
    *,
    record_id: str | None = None,
    field: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    trigger: str | None = None,
) -> list[ChangeEntry]:
    """Field changes of a workspace, newest first, narrowed by the given filters."""
    with store.session() as s:
        ws = s.scalars(select(Workspace).where(Workspace.name == workspace)).one_or_none()
        if ws is None:
            return []
        q = (
            select(FieldChange, Run)
            .join(Run, Run.id == FieldChange.run_id)
            .where(Run.workspace_id == ws.id)
        )
        if record_id:
            q = q.where(FieldChange.record_id == record_id)
        if field:
            q = q.where(FieldChange.field == field)
        if since:
            q = q.where(Run.started_at >= since)
        if until:
            q = q.where(Run.started_at < until)
        if trigger:
            q = q.where(Run.trigger == trigger)
        q = q.order_by(Run.started_at.desc(), FieldChange.id.desc())
        return [
            ChangeEntry(r.id, r.started_at, r.trigger, fc.side, fc.record_id, fc.field,
                        fc.before, fc.after, fc.rule)
            for fc, r in s.execute(q).all()
        ]


def how_field_got_value(store: Store, workspace: str, record_id: str, field: str) -> list[ChangeEntry]:
    """The chain of changes that led to a field's current value, oldest first."""
    return list(reversed(field_changes(store, workspace, record_id=record_id, field=field)))


def record_names(store: Store, workspace: str) -> dict[tuple[str, str], str]:
    """(side, record id) -> the record's name as last read, so a history reads in names, not ids.

    Sides are those of FieldChange: "crm", "accounting", and "local" (a link, keyed by its CRM id);
    deals are under ("deal", id), as their ids may repeat a company's.
    """
    from app.store.models import Journal, Link, Mirror

    out: dict[tuple[str, str], str] = {}
    with store.session() as s:
        ws = s.scalars(select(Workspace).where(Workspace.name == workspace)).one_or_none()
        if ws is None:
            return out
        for m in s.scalars(select(Mirror).where(Mirror.workspace_id == ws.id)):
            data = m.data or {}
            props = data.get("properties") or {}
            name = data.get("raw_name") or data.get("name") or props.get("name") or props.get("Name") or \
                props.get("title") or " ".join(str(props[k]) for k in ("firstname", "lastname", "first_name",
                                                                       "last_name", "FirstName", "LastName")
                                               if props.get(k))
            if m.side == "accounting" and m.object_type == "invoice" and data.get("number"):
                name = f"Invoice {data['number']}"
            if name:  # CRM ids repeat across object types (a deal 1 and a company 1): deals apart
                out.setdefault(("deal" if m.object_type == "deal" else m.side, m.remote_id), str(name))
        for j in s.scalars(select(Journal).where(Journal.workspace_id == ws.id, Journal.op == "create_customer",
                                                 Journal.status == "done")):
            if j.target_id and (j.payload or {}).get("display_name"):
                out.setdefault(("accounting", j.target_id), j.payload["display_name"])
        for lk in s.scalars(select(Link).where(Link.workspace_id == ws.id)):
            crm_name = ((lk.snapshot or {}).get("crm") or {}).get("name")
            if crm_name:
                out.setdefault(("crm", lk.crm_id), crm_name)
    for (side, rid), name in list(out.items()):
        if side == "crm":
            out.setdefault(("local", rid), name)
    return out
