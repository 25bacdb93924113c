"""Records held back from syncing, each with the reasons in a bookkeeper's words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select

from app.domain.text import mend_broken
from app.store.db import Store
from app.store.models import Quarantine


@dataclass(slots=True)
class HeldRecord:
    record_type: str
    record_id: str
    name: str
    reasons: dict[str, Any] = field(default_factory=dict)
    side: str = "crm"
    run_id: int | None = None

    @property
    def ref(self) -> tuple[str, str]:
        return self.record_type, self.record_id

    def why(self) -> str:
        """The reasons' messages as one sentence."""
        items = self.reasons.get("items") or []
        return " ".join(i.get("message", "") for i in items if i.get("message")).strip()


@dataclass(frozen=True, slots=True)
class Hold:
    """One CRM record to hold back: its reasons ({"field", "message"}) and any candidates to pick from."""

    ref: tuple[str, str]
    name: str
    reasons: list[dict[str, Any]]
    candidates: tuple[Any, ...] = ()


def _record(q: Quarantine) -> HeldRecord:
    return HeldRecord(q.record_type, q.record_id, q.name, dict(q.reasons or {}), q.side, q.run_id)


class QuarantineRepo:
    def __init__(self, store: Store, ws_id: int) -> None:
        self.store, self.ws_id = store, ws_id

    def crm(self) -> list[HeldRecord]:
        with self.store.session() as s:
            return [_record(q) for q in s.scalars(select(Quarantine).where(
                Quarantine.workspace_id == self.ws_id, Quarantine.side == "crm"))]

    def of_type(self, record_type: str) -> list[HeldRecord]:
        with self.store.session() as s:
            return [_record(q) for q in s.scalars(select(Quarantine).where(
                Quarantine.workspace_id == self.ws_id, Quarantine.record_type == record_type))]

    def hold(self, holds: Sequence[Hold], run_id: int | None) -> int:
        """Hold these CRM records back (again); returns how many were not held before."""
        new = 0
        if not holds:
            return new
        with self.store.session() as s:
            rows = {(q.record_type, q.record_id): q for q in s.scalars(select(Quarantine).where(
                Quarantine.workspace_id == self.ws_id, Quarantine.side == "crm"))}
            for h in holds:
                row = rows.get(h.ref)
                if row is None:
                    row = Quarantine(workspace_id=self.ws_id, side="crm", record_type=h.ref[0], record_id=h.ref[1])
                    s.add(row)
                    rows[h.ref] = row
                    new += 1
                reasons: dict[str, Any] = {"items": h.reasons}
                if h.candidates:  # the Review page offers these to pick from
                    reasons["candidates"] = list(h.candidates)
                row.name, row.reasons, row.run_id = mend_broken(h.name)[:300], reasons, run_id
        return new

    def release(self, refs: Sequence[tuple[str, str]]) -> None:
        if not refs:
            return
        with self.store.session() as s:
            for ref in refs:
                s.execute(delete(Quarantine).where(
                    Quarantine.workspace_id == self.ws_id, Quarantine.side == "crm",
                    Quarantine.record_type == ref[0], Quarantine.record_id == ref[1]))
