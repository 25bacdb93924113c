"""A saved migration plan's rows as the migration wizard reads and settles them: plain records out.

``app.ops.migration`` makes, saves and applies the plan; the wizard asks here whether an apply was left
unfinished, which possible matches were left for later, and writes the bookkeeper's choices on possible
matches into the saved plan when Apply is pressed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app.ops.migration import ACTIONS, RowSpec
from app.ops.workspaces import UserError
from app.store.db import Store
from app.store.models import Link, MigrationPlan, MigrationRow, Workspace
from app.store.serial import jsonable


@dataclass(slots=True)
class Unfinished:
    """A plan whose apply stopped before the end (Cancel, a crash, a restart)."""

    plan_id: int
    done: int
    left: int
    counts: dict[str, int]
    started: Any


@dataclass(frozen=True, slots=True)
class LaterRow:
    """A possible match the migration left for later, as planned."""

    crm_type: str | None
    crm_id: str | None
    acct_id: str | None
    name: str
    before: dict[str, Any]
    explanation: str


@dataclass(frozen=True, slots=True)
class LeftForLater:
    crm_provider: str
    accounting_provider: str
    decided_at: dt.datetime | None  # when the plan was applied (else made)
    rows: list[LaterRow] = field(default_factory=list)


def unfinished_plan(store: Store, workspace_id: int) -> Unfinished | None:
    """The newest plan still being applied, with how far it got; None when there is none."""
    with store.session() as s:
        plan = s.scalars(select(MigrationPlan).where(MigrationPlan.workspace_id == workspace_id,
                                                     MigrationPlan.status == "applying")
                         .order_by(MigrationPlan.id.desc())).first()
        if plan is None:
            return None
        rows = list(s.scalars(select(MigrationRow).where(MigrationRow.plan_id == plan.id,
                                                         MigrationRow.excluded == 0)))
        counts = dict.fromkeys(ACTIONS, 0)
        for r in rows:
            counts[r.action] += 1
        done = sum(r.status == "done" for r in rows)
        return Unfinished(plan.id, done, len(rows) - done, counts, plan.created_at)


def left_for_later(store: Store, workspace_id: int) -> LeftForLater | None:
    """Possible matches the newest applied migration left for later that nobody has linked since, by name;
    None when no migration was applied."""
    with store.session() as s:
        plan = s.scalars(select(MigrationPlan).where(MigrationPlan.workspace_id == workspace_id,
                                                     MigrationPlan.status.in_(("applying", "applied")))
                         .order_by(MigrationPlan.id.desc())).first()
        if plan is None:
            return None
        ws = s.get(Workspace, workspace_id)
        if ws is None:
            return None
        links = list(s.scalars(select(Link).where(Link.workspace_id == workspace_id)))
        linked_crm = {(lk.crm_type, lk.crm_id) for lk in links}
        linked_acct = {lk.acct_id for lk in links}
        rows = [LaterRow(r.crm_type, r.crm_id, r.acct_id, r.name, dict(r.before or {}), r.explanation or "")
                for r in s.scalars(select(MigrationRow).where(
                    MigrationRow.plan_id == plan.id, MigrationRow.action == "review", MigrationRow.excluded == 0,
                    MigrationRow.status == "done").order_by(MigrationRow.name))
                if not (r.crm_id and (r.crm_type, r.crm_id) in linked_crm)
                and not (not r.crm_id and r.acct_id in linked_acct)]
        return LeftForLater(ws.crm_provider, ws.accounting_provider, plan.applied_at or plan.created_at, rows)


def _values(spec: RowSpec) -> dict[str, Any]:
    return {"action": spec.action, "crm_type": spec.crm_ref[0] if spec.crm_ref else None,
            "crm_id": spec.crm_ref[1] if spec.crm_ref else None, "acct_id": spec.acct_id, "score": spec.score,
            "explanation": spec.explanation, "before": jsonable(spec.before), "after": jsonable(spec.after),
            "payload": jsonable(spec.payload)}


def settle_rows(store: Store, plan_id: int, choices: Iterable[tuple[int, Sequence[RowSpec]]]) -> None:
    """Write the choices into the saved plan in one transaction: each row becomes its first spec, the others
    are added as new rows. UserError when the plan was replaced or applied meanwhile."""
    with store.session() as s:
        plan = s.get(MigrationPlan, plan_id)
        if plan is None or plan.status != "planned":
            raise UserError("This plan was replaced or applied meanwhile. Read both sides again.")
        for row_id, (first, *more) in choices:
            row = s.get(MigrationRow, row_id)
            if row is None:
                raise UserError("This plan was replaced or applied meanwhile. Read both sides again.")
            for name, value in _values(first).items():
                setattr(row, name, value)
            row.name = (first.name or row.name)[:300]
            for spec in more:
                s.add(MigrationRow(plan_id=plan.id, name=(spec.name or "")[:300], excluded=0, status="pending",
                                   **_values(spec)))
