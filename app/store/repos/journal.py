"""The journal: every write a run sends, recorded (with its idempotency key) before it is sent, and
each field it changed, so a crash is settled and a run can be shown and undone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert, select

from app.store.db import Store
from app.store.models import FieldChange, Journal, utcnow
from app.store.repos.links import SnapshotWrite, set_snapshots
from app.store.serial import jsonable, text_value

CHUNK = 500

# key, op, side written, CRM ref (type and id, if any), target id, payload
JournalEntry = tuple[str, str, str, tuple[str | None, str | None], str | None, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class JournalRecord:
    id: int
    run_id: int
    key: str
    op: str
    side: str
    crm_type: str | None
    crm_id: str | None
    target_id: str | None
    payload: dict[str, Any]
    status: str
    error: str | None


@dataclass(slots=True)
class Done:
    """A write the provider accepted, recorded with the rest of its batch in one transaction."""

    key: str
    target_id: str | None
    side: str
    changes: dict[str, Any]
    rule: Any
    ref: tuple[str, str] | None = None  # the link whose snapshot takes the written values
    crm: dict[str, Any] | None = None
    acct: dict[str, Any] | None = None
    merge_crm: bool = False
    share_acct: str | None = None  # other links to this ledger customer take ``acct`` as seen too

    def snapshot(self) -> SnapshotWrite | None:
        if self.ref is None:
            return None
        return SnapshotWrite(self.ref, self.crm, self.acct, self.merge_crm, self.share_acct)


def _record(r: Journal) -> JournalRecord:
    return JournalRecord(r.id, r.run_id, r.key, r.op, r.side, r.crm_type, r.crm_id, r.target_id,
                         dict(r.payload or {}), r.status, r.error)


def change_rows(run_id: int, journal_id: int | None, side: str, record_id: str | None,
                changes: dict[str, Any], rule: Any) -> list[dict[str, Any]]:
    """Each changed field as (before, after): the audit rows to insert."""
    return [{"run_id": run_id, "journal_id": journal_id, "side": side, "record_id": record_id, "field": f,
             "before": text_value(before), "after": text_value(after),
             "rule": (rule.get(f, "") if isinstance(rule, dict) else str(rule))[:40]}
            for f, (before, after) in changes.items()]


def insert_changes(s: Any, rows: list[dict[str, Any]]) -> None:
    """Audit rows inserted in one statement, in the caller's transaction (no ORM object for each)."""
    if rows:
        s.execute(insert(cast(Table, FieldChange.__table__)), rows)


def add_changes(s: Any, run_id: int, journal_id: int | None, side: str, record_id: str | None,
                changes: dict[str, Any], rule: Any) -> None:
    """Each changed field as (before, after), in the caller's transaction."""
    insert_changes(s, change_rows(run_id, journal_id, side, record_id, changes, rule))


class JournalRepo:
    def __init__(self, store: Store, ws_id: int) -> None:
        self.store, self.ws_id = store, ws_id

    def add(self, run_id: int, entries: Sequence[JournalEntry]) -> None:
        """Writes about to be sent, pending, in one insert (no ORM object for each)."""
        if not entries:
            return
        now = utcnow()
        with self.store.session() as s:
            s.execute(insert(cast(Table, Journal.__table__)), [
                {"workspace_id": self.ws_id, "run_id": run_id, "key": key, "op": op, "side": side,
                 "crm_type": ref[0], "crm_id": ref[1], "target_id": target, "payload": jsonable(payload),
                 "status": "pending", "error": None, "created_at": now, "updated_at": now}
                for key, op, side, ref, target, payload in entries])

    def _rows(self, s: Any, key: str, run_id: int | None, pending_only: bool,
              unless: str | None = None) -> list[Journal]:
        q = select(Journal).where(Journal.workspace_id == self.ws_id, Journal.key == key)
        if unless is not None:
            q = q.where(Journal.status != unless)
        if run_id is not None:
            q = q.where(Journal.run_id == run_id)
        if pending_only:
            q = q.where(Journal.status == "pending")
        return list(s.scalars(q.order_by(Journal.id)))

    def by_key(self, key: str, *, run_id: int | None = None) -> list[JournalRecord]:
        with self.store.session() as s:
            return [_record(r) for r in self._rows(s, key, run_id, False)]

    def mark(self, key: str, status: str | None = None, *, run_id: int | None = None, pending_only: bool = True,
             target_id: str | None = None, error: str | None = None, clear_error: bool = False,
             touch: bool = False, unless: str | None = None) -> list[int]:
        """Set the status (and the target or the error) of the rows of ``key`` (those not ``unless``);
        returns their ids."""
        with self.store.session() as s:
            rows = self._rows(s, key, run_id, pending_only, unless)
            now = utcnow()
            for row in rows:
                if status is not None:
                    row.status = status
                if target_id is not None:
                    row.target_id = target_id
                if error is not None or clear_error:
                    row.error = error
                if touch:
                    row.updated_at = now
            return [row.id for row in rows]

    def finish(self, key: str, target_id: str | None) -> None:
        """The provider accepted the write: its pending rows are done."""
        with self.store.session() as s:
            for row in self._rows(s, key, None, True):
                row.status, row.target_id, row.updated_at = "done", target_id, utcnow()

    def pending(self, op: str) -> list[JournalRecord]:
        with self.store.session() as s:
            return [_record(r) for r in s.scalars(select(Journal).where(
                Journal.workspace_id == self.ws_id, Journal.status == "pending", Journal.op == op))]

    def failed_with(self, op: str, error: str) -> list[JournalRecord]:
        """Rows of ``op`` that failed with exactly this error (a refusal the ledger may replay for its key)."""
        with self.store.session() as s:
            return [_record(r) for r in s.scalars(select(Journal).where(
                Journal.workspace_id == self.ws_id, Journal.op == op, Journal.status == "failed",
                Journal.error == error).order_by(Journal.id))]

    def settle(self, outcomes: dict[int, tuple[str, str | None, str | None]]) -> None:
        """Rows of an earlier run settled by looking them up: id -> (status, target id, error)."""
        if not outcomes:
            return
        with self.store.session() as s:
            for row_id, (status, target, error) in outcomes.items():
                row = s.get(Journal, row_id)
                if row is None:
                    continue
                row.status = status
                if target is not None:
                    row.target_id = target
                if error is not None:
                    row.error = error

    def done_refs(self, op: str) -> list[tuple[str, str]]:
        """The CRM record of each done row of ``op``, once a row."""
        with self.store.session() as s:
            return [(row.crm_type or "", row.crm_id or "") for row in s.scalars(select(Journal).where(
                Journal.workspace_id == self.ws_id, Journal.op == op, Journal.status == "done"))]

    def record_done(self, run_id: int, done: Sequence[Done]) -> None:
        """One batch of accepted writes: journal rows done, field changes and link snapshots, in one
        transaction. Until it commits, the batch's journal rows stay pending, so a crash between the
        provider's answer and here is settled by the next run, which looks them up before re-sending."""
        if not done:
            return
        with self.store.session() as s:
            keys = list({d.key for d in done})
            journals: dict[str, list[Journal]] = {}
            for start in range(0, len(keys), CHUNK):
                for row in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id,
                                                           Journal.key.in_(keys[start:start + CHUNK]))
                                     .order_by(Journal.id)):
                    journals.setdefault(row.key, []).append(row)
            now = utcnow()
            audit: list[dict[str, Any]] = []
            for d in done:
                rows = journals.get(d.key, [])
                for row in rows:
                    if row.status == "pending":
                        row.status, row.target_id, row.updated_at = "done", d.target_id, now
                audit += change_rows(run_id, rows[0].id if rows else None, d.side, d.target_id, d.changes, d.rule)
            insert_changes(s, audit)
            set_snapshots(s, self.ws_id, [w for d in done if (w := d.snapshot()) is not None])

    def record_changes(self, run_id: int, key: str, side: str, record_id: str | None, changes: dict[str, Any],
                       rule: Any) -> None:
        """The fields one write changed, kept with the first journal row of its key."""
        with self.store.session() as s:
            journal = s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id, Journal.key == key)).first()
            add_changes(s, run_id, journal.id if journal else None, side, record_id, changes, rule)
