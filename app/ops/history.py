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
