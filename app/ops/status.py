"""What the status command and the main window show: plain rows, no ORM objects."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sqlalchemy import func, select

from app.connectors import registry
from app.ops.budget import budget_today
from app.ops.conflicts import AmbiguousMatch, ambiguous_matches, conflict_json, open_conflicts
from app.store.db import Store
from app.store.models import ConflictRow, ConnectionRow, Link, Mirror, Quarantine, Run, Workspace

# A reconciliation's read-only refresh, while it runs (it is then dropped): never a sync, nor the last sync.
RECONCILE = "reconcile"
# A way out taken by hand (app/ops/ways_out.py): a run of its own, in the Activity, but not the last sync.
WAY_OUT_TRIGGERS = ("activate", "relink", "unlink")


@dataclass(frozen=True, slots=True)
class LinkRow:
    crm_type: str
    crm_id: str
    name: str
    email: str | None
    acct_id: str
    acct_name: str
    how: str
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    record_type: str
    record_id: str
    name: str
    reasons: list[str]
    since: dt.datetime
    undone: bool = False  # held because the user undid the run that synced it; released by hand


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    trigger: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    counts: dict[str, Any]
    message: str | None
    dry_run: bool


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    side: str
    provider: str
    label: str | None
    base_url: str
    status: str


@dataclass(frozen=True, slots=True)
class WorkspaceCounts:
    """The numbers a person sees for a workspace, in the words of docs/glossary.md.

    One source for the command line (the sync summary, ``status`` and ``status --json``), the tab
    titles, the header, the tray and its notifications, so they never disagree.
    """

    linked: int = 0  # customers linked to a ledger customer (the Linked records tab)
    held_back: int = 0  # records kept out of the sync, each with its reason (the Held back tab)
    conflicts: int = 0  # records with a field changed differently on both sides, not yet decided
    matches: int = 0  # CRM records that could be any of several ledger customers, not yet picked

    @property
    def to_review(self) -> int:
        """The Review tab: records with open conflicts plus possible matches."""
        return self.conflicts + self.matches

    def to_json(self) -> dict[str, int]:
        return {"linked": self.linked, "held_back": self.held_back, "to_review": self.to_review,
                "conflicts": self.conflicts, "possible_matches": self.matches}


def review_matches(store: Store, workspace_id: int) -> list[AmbiguousMatch]:
    """The possible matches the Review tab lists: held by a sync, or left for later by a migration."""
    from app.wizard.migration_flow import later_matches

    matches = ambiguous_matches(store, workspace_id)
    later = {(m.record_type, m.record_id): m for m in later_matches(store, workspace_id)}
    return [later.pop((m.record_type, m.record_id), m) for m in matches] + list(later.values())


def workspace_counts(store: Store, workspace_id: int) -> WorkspaceCounts:
    with store.session() as s:
        linked = s.scalar(select(func.count()).select_from(Link)  # customers; invoices are counted apart
                          .where(Link.workspace_id == workspace_id, Link.object_type == "customer")) or 0
        held = s.scalar(select(func.count()).select_from(Quarantine)
                        .where(Quarantine.workspace_id == workspace_id)) or 0
        conflicts = len(s.execute(select(ConflictRow.crm_type, ConflictRow.crm_id).distinct()
                                  .where(ConflictRow.workspace_id == workspace_id,
                                         ConflictRow.outcome == "open")).all())
    return WorkspaceCounts(linked, held, conflicts, len(review_matches(store, workspace_id)))


@dataclass(frozen=True, slots=True)
class WorkspaceStatus:
    id: int
    name: str
    crm: str
    accounting: str
    connections: list[ConnectionInfo] = field(default_factory=list)
    links: int = 0
    links_by_how: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0  # held back: always counts.held_back when read from the store
    last_run: RunRow | None = None
    counts: WorkspaceCounts = field(default_factory=WorkspaceCounts)
    budget: list[str] = field(default_factory=list)  # "Zoho Books: 312 of 1,000 calls today", per connection

    @property
    def to_review(self) -> int:
        return self.counts.to_review


def _run_row(run: Run) -> RunRow:
    return RunRow(run.id, run.trigger, run.status, run.started_at, run.finished_at, dict(run.counts or {}),
                  run.message, bool(run.dry_run))


def workspace_statuses(store: Store) -> list[WorkspaceStatus]:
    out = []
    with store.session() as s:
        for ws in s.scalars(select(Workspace).order_by(Workspace.name)):
            conns = [ConnectionInfo(c.side, c.provider, c.label, c.base_url, c.status)
                     for c in s.scalars(select(ConnectionRow).where(ConnectionRow.workspace_id == ws.id))]
            by_how = dict(s.execute(select(Link.how, func.count())  # customers; invoices are counted apart
                                    .where(Link.workspace_id == ws.id, Link.object_type == "customer")
                                    .group_by(Link.how)).all())
            last = s.scalars(select(Run).where(Run.workspace_id == ws.id,
                                               Run.trigger.notin_((RECONCILE, *WAY_OUT_TRIGGERS)))
                             .order_by(Run.id.desc())).first()
            out.append((ws.id, ws.name, ws.crm_provider, ws.accounting_provider, conns, by_how,
                        _run_row(last) if last else None))
    statuses = []
    for wid, name, crm, accounting, conns, by_how, last_run in out:
        counts = workspace_counts(store, wid)
        statuses.append(WorkspaceStatus(wid, name, crm, accounting, conns, counts.linked, by_how, counts.held_back,
                                        last_run, counts))
    return [replace(w, budget=[line.text for line in budget_today(store, w.name)]) for w in statuses]


def linked_records(store: Store, workspace_id: int) -> list[LinkRow]:
    # Columns, not ORM objects, and only the JSON members shown, picked out by the database (SQLite's
    # json_extract, PostgreSQL's ->>): this runs on the UI thread after every sync, for every linked record.
    with store.session() as s:
        acct_names = {rid: (raw or name or "") for rid, raw, name in s.execute(
            select(Mirror.remote_id, Mirror.data["raw_name"].as_string(), Mirror.data["name"].as_string())
            .where(Mirror.workspace_id == workspace_id, Mirror.side == "accounting",
                   Mirror.object_type == "customer"))}
        return [LinkRow(crm_type, crm_id, name or "", email, acct_id, acct_names.get(acct_id, ""), how, updated_at)
                for crm_type, crm_id, name, email, acct_id, how, updated_at in s.execute(
                    select(Link.crm_type, Link.crm_id, Link.snapshot[("crm", "name")].as_string(),
                           Link.snapshot[("crm", "email")].as_string(), Link.acct_id, Link.how, Link.updated_at)
                    .where(Link.workspace_id == workspace_id, Link.object_type == "customer").order_by(Link.id))]


def quarantined_records(store: Store, workspace_id: int) -> list[QuarantineRow]:
    with store.session() as s:
        return [QuarantineRow(q.record_type, q.record_id, q.name, [i["message"] for i in q.reasons.get("items", [])],
                              q.created_at, bool(q.reasons.get("undone_run")))
                for q in s.scalars(select(Quarantine).where(Quarantine.workspace_id == workspace_id)
                                   .order_by(Quarantine.name))]


def recent_runs(store: Store, workspace_id: int, limit: int = 20) -> list[RunRow]:
    with store.session() as s:
        return [_run_row(r) for r in s.scalars(select(Run).where(Run.workspace_id == workspace_id,
                                                             Run.trigger != RECONCILE)
                                                .order_by(Run.id.desc()).limit(limit))]


def status_json(store: Store) -> dict[str, Any]:
    """The `status --json` contract: stable keys, extended rather than renamed."""
    workspaces = []
    for ws in workspace_statuses(store):
        workspaces.append({
            "name": ws.name,
            "crm": ws.crm,
            "accounting": ws.accounting,
            "connections": [{"side": c.side, "provider": c.provider, "provider_label": registry.info(c.provider).label
                             if c.provider in registry.PROVIDER_MODULES else c.provider,
                             "company": c.label, "base_url": c.base_url, "status": c.status}
                            for c in ws.connections],
            "links": {"total": ws.links, "by_match": ws.links_by_how},
            "linked_customers": ws.links,
            "counts": ws.counts.to_json(),  # the same numbers as the window's tabs and the tray
            "quarantined": [
                {"record_type": q.record_type, "record_id": q.record_id, "name": q.name, "reasons": q.reasons}
                for q in quarantined_records(store, ws.id)
            ],
            "conflicts": [conflict_json(c) for c in open_conflicts(store, ws.id)],
            "last_runs": [_run_json(r) for r in recent_runs(store, ws.id, 5)],
            "invoices": invoice_summary(store, ws.id),
            # each connection's allowance used today, by every process (Pipedrive counts tokens, the rest calls)
            "budget": [{"side": b.side, "provider": b.provider, "used": b.used, "cap": b.cap, "unit": b.unit,
                        "text": b.text} for b in budget_today(store, ws.name)],
        })
    return {"workspaces": workspaces}


def invoice_summary(store: Store, workspace_id: int) -> dict[str, Any]:
    """Won deals invoiced and where their payment stands, as last read from the ledger."""
    with store.session() as s:
        links = list(s.scalars(select(Link).where(Link.workspace_id == workspace_id, Link.object_type == "invoice")
                               .order_by(Link.id)))
        invoices = {m.remote_id: m.data for m in s.scalars(
            select(Mirror).where(Mirror.workspace_id == workspace_id, Mirror.side == "accounting",
                                 Mirror.object_type == "invoice", Mirror.remote_id.in_([lk.acct_id for lk in links])))}
        deals = {m.remote_id: m.data for m in s.scalars(
            select(Mirror).where(Mirror.workspace_id == workspace_id, Mirror.side == "crm",
                                 Mirror.object_type == "deal", Mirror.remote_id.in_([lk.crm_id for lk in links])))}
    rows = []
    by_status: dict[str, int] = {}
    for lk in links:
        inv = invoices.get(lk.acct_id) or {}
        status = inv.get("status") or "unknown"
        by_status[status] = by_status.get(status, 0) + 1
        rows.append({"deal_id": lk.crm_id, "deal": (deals.get(lk.crm_id) or {}).get("name") or "",
                     "invoice_id": lk.acct_id, "number": inv.get("number"), "status": status,
                     "currency": inv.get("currency"), "total": inv.get("total"), "amount_paid": inv.get("amount_paid"),
                     "balance_due": inv.get("balance"), "link": inv.get("web_url")})
    return {"linked": len(rows), "by_status": by_status, "deals": rows}


def _run_json(r: RunRow) -> dict[str, Any]:
    d = asdict(r)
    d["started_at"] = r.started_at.isoformat() + "Z"
    d["finished_at"] = r.finished_at.isoformat() + "Z" if r.finished_at else None
    return d


def after_invoice_words(counts: dict[str, Any]) -> str | None:
    """'1 invoice voided, 2 credit notes raised, 1 link moved to the surviving record': what a run did
    about deals and records that changed after their invoice or link (the lifecycle rules), said the same
    way by the command line and the window; None when it did none of it."""
    def n(count: int, one: str, many: str) -> str:
        return f"{count:,} {one if count == 1 else many}"

    parts = [n(c, one, many) for key, one, many in (
        ("invoices_voided", "invoice voided", "invoices voided"),
        ("credit_notes", "credit note raised", "credit notes raised"),
        ("links_followed", "link moved to the surviving record", "links moved to the surviving record"),
        ("deals_flagged", "invoiced deal flagged for review", "invoiced deals flagged for review"),
    ) if (c := int(counts.get(key) or 0))]
    return ", ".join(parts) or None
