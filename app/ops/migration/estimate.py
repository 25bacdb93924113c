"""What a migration plan holds and how long applying it takes at the providers' limits."""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app.connectors.base import Limits
from app.ops.workspaces import get_workspace
from app.store.db import Store
from app.store.models import MigrationPlan, MigrationRow

ACTIONS = ("link", "create_ledger", "create_crm", "invalid", "review")
# Batch endpoints with a throttle of their own, below the provider's general rate (see the provider notes:
# QuickBooks Online allows 40 batch requests a minute per company). A connector may say otherwise
# through a ``batch_limits`` attribute (an embedded sandbox with scaled limits does).
BATCH_CALLS = {"quickbooks": Limits(requests=40, window_seconds=60.0)}
WRITE_ORDER = {"create_ledger": 0, "link": 1, "create_crm": 2, "invalid": 3, "review": 4}
JOURNAL_GROUP = 25  # single-record providers: journal this many writes per database commit


@dataclass(slots=True)
class PlanRow:
    """A plan row as the apply works with it: the columns of MigrationRow, read once, plain Python."""

    id: int
    action: str
    name: str
    crm_type: str | None
    crm_id: str | None
    acct_id: str | None
    score: float | None
    explanation: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    payload: dict[str, Any]
    excluded: int
    status: str
    target_id: str | None
    error: str | None

    COLUMNS = ("id", "action", "name", "crm_type", "crm_id", "acct_id", "score", "explanation", "before", "after",
               "payload", "excluded", "status", "target_id", "error")


@contextlib.contextmanager
def bulk_objects() -> Iterator[None]:
    """The cyclic garbage collector paused while thousands of lasting, acyclic objects are made (a plan's
    rows and their views): each collection they set off would walk the whole heap again."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def plan_rows(s: Any, plan_id: int) -> list[PlanRow]:
    """Every row of a plan, in order, in one query (no ORM objects: thousands of them in a migration;
    decoding their JSON was half the time of this read with the collector running)."""
    with bulk_objects():
        return [PlanRow(*t) for t in s.execute(select(*(getattr(MigrationRow, c) for c in PlanRow.COLUMNS))
                                               .where(MigrationRow.plan_id == plan_id).order_by(MigrationRow.id))]


# -- results ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Estimate:
    """How long applying takes at the providers' published limits."""

    crm_calls: int = 0
    acct_calls: int = 0
    seconds: float = 0.0
    days: int = 0  # extra days spent waiting for a daily cap to reset
    note: str = ""

    @property
    def text(self) -> str:
        return describe_duration(self.seconds)

    def to_json(self) -> dict[str, Any]:
        return {"crm_calls": self.crm_calls, "ledger_calls": self.acct_calls, "seconds": round(self.seconds, 1),
                "days": self.days, "text": self.text, "note": self.note}


@dataclass(slots=True)
class RowView:
    id: int
    action: str
    name: str
    crm: str | None
    ledger: str | None
    score: float | None
    explanation: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    excluded: bool
    status: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "name": self.name, "crm": self.crm, "ledger": self.ledger,
                "score": self.score, "explanation": self.explanation, "before": self.before,
                "after": self.after, "excluded": self.excluded, "status": self.status, "error": self.error}


@dataclass(slots=True)
class MigrationResult:
    workspace: str
    mode: str  # dry_run | apply
    status: str  # planned | applied | nothing_to_do | cancelled | waiting | failed | partial
    plan_id: int | None
    counts: dict[str, int] = field(default_factory=dict)  # per action, excluded rows left out
    done: dict[str, int] = field(default_factory=dict)  # per action, rows this apply completed
    excluded: int = 0
    already_linked: int = 0
    writes: int = 0  # records written
    calls: dict[str, int] = field(default_factory=dict)  # write calls per side
    call_seconds: float = 0.0  # time spent inside the providers' write calls (waits for their limits included)
    estimate: Estimate = field(default_factory=Estimate)
    rows: list[RowView] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    crm_label: str = "the CRM"
    ledger_label: str = "the ledger"
    seconds: float = 0.0
    # Won deals, as the first sync after the migration will treat them (read in the dry run; nothing is
    # written for them by the migration): won, already_invoiced, invoiced_before, to_invoice, unsure.
    deals: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"workspace": self.workspace, "mode": self.mode, "status": self.status, "plan_id": self.plan_id,
                "counts": {a: self.counts.get(a, 0) for a in ACTIONS},
                "done": {a: self.done.get(a, 0) for a in ACTIONS}, "excluded": self.excluded,
                "already_linked": self.already_linked, "writes": self.writes, "write_calls": self.calls,
                "estimate": self.estimate.to_json(), "errors": len(self.errors), "error_messages": self.errors,
                "seconds": round(self.seconds, 2), "deals": dict(self.deals),
                "rows": [r.to_json() for r in self.rows]}


def describe_duration(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute"
    if seconds < 3600:
        minutes = math.ceil(seconds / 60)
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    if seconds < 2 * 86400:
        hours = math.ceil(seconds / 3600)
        return f"about {hours} hour{'s' if hours != 1 else ''}"
    days = math.ceil(seconds / 86400)
    return f"about {days} days"


def estimate_calls(calls: int, limits: Limits, used_today: int = 0) -> tuple[float, int]:
    """Seconds needed for ``calls`` write requests at the sustained rate the limits allow, and the
    number of daily-cap resets waited for on the way (each write costing ``write_cost`` of the cap:
    Pipedrive's tokens)."""
    if calls <= 0:
        return 0.0, 0
    seconds = calls * limits.window_seconds / max(1, limits.requests)
    days = 0
    if limits.daily_cap:
        units = calls * limits.write_cost
        left_today = max(0, limits.daily_cap - used_today)
        if units > left_today:
            days = math.ceil((units - left_today) / limits.daily_cap)
    return seconds, days


def batch_limits(connector: Any) -> Limits | None:
    """The separate throttle on a connector's batch calls, if its provider has one."""
    return getattr(connector, "batch_limits", None) or BATCH_CALLS.get(getattr(connector, "provider", ""))


def estimate(rows: Iterable[MigrationRow | PlanRow], crm_limits: Limits, acct_limits: Limits,
             acct_label: str = "the ledger", crm_label: str = "the CRM", *, acct_batch: Limits | None = None,
             crm_batch: Limits | None = None) -> Estimate:
    acct_writes = crm_writes = 0
    for r in rows:
        if r.excluded or r.status != "pending":
            continue
        if r.action == "create_ledger":
            acct_writes += 1
        elif r.action == "create_crm":
            crm_writes += 1
        elif r.action == "link":
            acct_writes += bool(r.payload.get("acct_changes"))
            crm_writes += bool(r.payload.get("crm_props"))
    acct_calls = math.ceil(acct_writes / max(1, acct_limits.batch_max))
    crm_calls = math.ceil(crm_writes / max(1, crm_limits.batch_max))
    a_s, a_days = estimate_calls(acct_calls, acct_limits)
    c_s, c_days = estimate_calls(crm_calls, crm_limits)
    if acct_batch is not None:
        a_s = max(a_s, estimate_calls(acct_calls, acct_batch)[0])
    if crm_batch is not None:
        c_s = max(c_s, estimate_calls(crm_calls, crm_batch)[0])
    days = max(a_days, c_days)
    note = ""
    if a_days or c_days:  # the ledger's cap is told when both bind
        label, capped = (acct_label, acct_limits) if a_days else (crm_label, crm_limits)
        note = (f"{label} allows {capped.daily_cap:,} {capped.cap_unit} a day: the import pauses "
                "when they are used up and continues by itself the next day.")
    return Estimate(crm_calls, acct_calls, a_s + c_s + days * 86400, days, note)


def saved_estimate(store: Store, name: str) -> Estimate | None:
    """How long applying the saved plan takes, as worked out when it was made (None: no plan to apply)."""
    ws = get_workspace(store, name)
    with store.session() as s:
        plan = s.scalars(select(MigrationPlan).where(MigrationPlan.workspace_id == ws.id,
                                                     MigrationPlan.status.in_(("planned", "applying")))
                         .order_by(MigrationPlan.id.desc())).first()
        if plan is None:
            return None
        e = plan.estimate or {}
    return Estimate(int(e.get("crm_calls", 0)), int(e.get("ledger_calls", 0)), float(e.get("seconds", 0.0)),
                    int(e.get("days", 0)), str(e.get("note", "")))
