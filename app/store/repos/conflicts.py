"""Fields both sides changed, and deals whose invoice a person has to look at: what the Review page lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from app.store.db import Store
from app.store.models import ConflictRow, Link, utcnow


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    crm_type: str
    crm_id: str
    acct_id: str | None
    field: str
    crm_value: str | None
    acct_value: str | None
    base_value: str | None
    rule: str
    outcome: str
    id: int | None = None
    link_id: int | None = None
    chosen_value: str | None = None


class Conflicts:
    def __init__(self, store: Store, ws_id: int) -> None:
        self.store, self.ws_id = store, ws_id

    def with_outcome(self, outcomes: Sequence[str], crm_types: Sequence[str] | None = None) -> list[ConflictRecord]:
        with self.store.session() as s:
            q = select(ConflictRow).where(ConflictRow.workspace_id == self.ws_id, ConflictRow.outcome.in_(outcomes))
            if crm_types is not None:
                q = q.where(ConflictRow.crm_type.in_(crm_types))
            return [ConflictRecord(c.crm_type, c.crm_id, c.acct_id, c.field, c.crm_value, c.acct_value, c.base_value,
                                   c.rule, c.outcome, c.id, c.link_id, c.chosen_value) for c in s.scalars(q)]

    def add(self, conflicts: Sequence[ConflictRecord], run_id: int | None) -> None:
        if not conflicts:
            return
        with self.store.session() as s:
            for c in conflicts:
                s.add(ConflictRow(workspace_id=self.ws_id, link_id=c.link_id, crm_type=c.crm_type, crm_id=c.crm_id,
                                  acct_id=c.acct_id, field=c.field, crm_value=c.crm_value, acct_value=c.acct_value,
                                  base_value=c.base_value, rule=c.rule, outcome=c.outcome, run_id=run_id))

    def flag(self, conflict: ConflictRecord, run_id: int | None, mark: str) -> None:
        """One for a person to look at, and its link marked so that the same change is flagged once."""
        with self.store.session() as s:
            assert conflict.link_id is not None
            row = s.get(Link, conflict.link_id)
            assert row is not None  # read from the store earlier in this run
            s.add(ConflictRow(workspace_id=self.ws_id, link_id=conflict.link_id, crm_type=conflict.crm_type,
                              crm_id=conflict.crm_id, acct_id=conflict.acct_id, field=conflict.field,
                              crm_value=conflict.crm_value, acct_value=conflict.acct_value,
                              base_value=conflict.base_value, rule=conflict.rule, outcome=conflict.outcome,
                              run_id=run_id))
            row.snapshot = {**(row.snapshot or {}), "flagged": mark}

    def close(self, crm_type: str, crm_id: str, prefix: str) -> int:
        """Open flags of one record whose field starts with ``prefix``, closed because their cause is gone
        (and the link's flag mark cleared, so the same cause coming back is flagged again)."""
        with self.store.session() as s:
            rows = list(s.scalars(select(ConflictRow).where(
                ConflictRow.workspace_id == self.ws_id, ConflictRow.crm_type == crm_type,
                ConflictRow.crm_id == crm_id, ConflictRow.outcome == "open", ConflictRow.field.startswith(prefix))))
            for row in rows:
                row.outcome, row.resolved_at = "resolved", utcnow()
                link = s.get(Link, row.link_id) if row.link_id else None
                if link is not None and (link.snapshot or {}).get("flagged"):
                    link.snapshot = {k: v for k, v in link.snapshot.items() if k != "flagged"}
            return len(rows)

    def resolved(self, conflict_id: int) -> None:
        """A choice made on the Review page is now on both sides."""
        with self.store.session() as s:
            row = s.get(ConflictRow, conflict_id)
            assert row is not None  # read at the start of this step
            row.outcome, row.applied_at = "resolved", utcnow()
            row.resolved_at = row.resolved_at or utcnow()
