"""A migration's run: the dry run that makes and saves the plan, and the apply of exactly that plan."""

from __future__ import annotations

import gc
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select

from app.connectors.http import RateLimiter
from app.connectors.tokens import TokenStore
from app.domain.models import CrmRecord
from app.domain.text import normalise_name
from app.ops.migration.estimate import (
    ACTIONS,
    MigrationResult,
    PlanRow,
    RowView,
    batch_limits,
    bulk_objects,
    estimate,
    plan_rows,
)
from app.ops.migration.plan import PlanInput, build_plan
from app.ops.migration.words import provider_words
from app.ops.migration.writes import _Writes
from app.ops.workspaces import UserError, get_workspace, open_connectors
from app.store.db import Store
from app.store.models import Journal, Link, MigrationPlan, MigrationRow, utcnow
from app.store.serial import jsonable
from app.sync.deal_checks import normal_currency
from app.sync.engine import CRM_TYPES, Progress, RunResult
from app.sync.invoice_plan import prior_invoice
from app.sync.planner import DEFAULT_RULES


class _MigrationEngine(_Writes):
    """A migration's own run, with the lease, run record, journal and cancel every run has (RunContext)."""

    def __init__(self, *args: Any, mode: str, exclude: Iterable[int] = (), wait_for_quota: bool = True,
                 sleep: Callable[[float], None] = time.sleep, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.mode = mode
        self.exclude = set(exclude)
        self.wait_for_quota = wait_for_quota
        self.sleep = sleep
        self.result: MigrationResult | None = None
        self.plan_id: int | None = None

    def run(self) -> RunResult:
        ctx = self.ctx
        status, _ = ctx.run(self._run)
        return RunResult(ctx.run_id, ctx.ws_name, status, ctx.dry_run, dict(ctx.counts), list(ctx.errors))

    def _run(self) -> Any:
        label_crm, label_acct = provider_words(self.crm.provider), provider_words(self.acct.provider)
        self.result = MigrationResult(self.ws_name, self.mode, "planned", None, crm_label=label_crm,
                                      ledger_label=label_acct)
        if self.mode == "dry_run":
            self._make_plan()
        elif self.mode == "exclude":
            self._exclude(self.plan_id)
            self._finish_view(self.plan_id, "planned")
        else:
            self._apply_plan()
        return None

    # -- dry run ---------------------------------------------------------------------------------
    def _make_plan(self) -> None:
        res = self.result
        mapping = self.settings.mapping_or(self.crm.default_mapping())
        rules = {**DEFAULT_RULES, **self.settings.effective_rules}
        direction = self.settings.direction.customer
        records: dict[tuple[str, str], CrmRecord] = {}
        cursors: dict[str, str | None] = {}
        for n, otype in enumerate(CRM_TYPES):
            self.progress(f"Reading every {otype} record from {res.crm_label}", n, 3)
            changes = self.crm.read_records(otype, None)
            self.counts["read"] += len(changes.records)
            self.ctx.mirror.put_crm(otype, changes.records, changes.deleted_ids)
            cursors[f"crm:{otype}"] = changes.cursor
            for rec in changes.records:
                records[(otype, rec.id)] = rec
            self.ctx.check_cancel()
        self.progress(f"Reading every customer from {res.ledger_label}", 2, 3)
        acct_changes = self.acct.read_customers(None)
        self.counts["read"] += len(acct_changes.records)
        self.ctx.mirror.put_customers(acct_changes.records, acct_changes.deleted_ids)
        cursors["accounting:customer"] = acct_changes.cursor
        self.ctx.check_cancel()
        with self.store.session() as s:
            linked = {(lk.crm_type, lk.crm_id): lk.acct_id for lk in s.scalars(
                select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "customer"))}
        self.progress("Matching and checking records", 3, 3)
        specs, already = build_plan(PlanInput(records, {c.id: c for c in acct_changes.records}, linked, mapping,
                                              rules, direction, getattr(self.acct, "party_problems", None)))
        deals = self._deals_outlook(specs, linked)
        with self.store.session() as s:
            for old in s.scalars(select(MigrationPlan).where(MigrationPlan.workspace_id == self.ws_id,
                                                             MigrationPlan.status == "planned")):
                old.status = "superseded"
            plan = MigrationPlan(workspace_id=self.ws_id, status="planned", cursors=cursors, run_id=self.run_id,
                                 counts={"already_linked": already, "deals": deals})
            s.add(plan)
            s.flush()
            rows = [MigrationRow(plan_id=plan.id, action=r.action, name=(r.name or "")[:300],
                                 crm_type=r.crm_ref[0] if r.crm_ref else None,
                                 crm_id=r.crm_ref[1] if r.crm_ref else None, acct_id=r.acct_id, score=r.score,
                                 explanation=r.explanation, before=jsonable(r.before), after=jsonable(r.after),
                                 payload=jsonable(r.payload), excluded=0, status="pending") for r in specs]
            s.add_all(rows)
            plan_id = plan.id
        self._finish_view(plan_id, "planned")

    def _deals_outlook(self, specs: list[Any], linked: dict[tuple[str, str], str]) -> dict[str, int]:
        """What the first sync after this migration will do with the CRM's won deals, so the plan can say
        it: those whose customer is linked here and that the ledger already invoiced (by hand, before
        Crossledger) will be linked to that invoice, never invoiced twice; the rest invoiced."""
        res = self.result
        self.progress(f"Reading won deals from {res.crm_label} and invoices from {res.ledger_label}", 3, 3)
        deals = [d for d in self.crm.read_deals(None).records if d.won and not d.archived]
        invoices = self.acct.read_invoices(None).records
        self.counts["read"] += len(deals) + len(invoices)
        self.ctx.check_cancel()
        customer = dict(linked)
        customer.update({tuple(r.crm_ref): r.acct_id for r in specs if r.action == "link" and r.crm_ref})
        with self.store.session() as s:
            invoiced = {(lk.crm_id, lk.acct_id) for lk in s.scalars(
                select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "invoice"))}
        taken = {acct for _, acct in invoiced}
        by_customer: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        for inv in invoices:
            if inv.id and inv.id not in taken and inv.status != "void":
                by_customer[inv.customer_id].append((inv.id, {
                    "reference": inv.reference, "currency": inv.currency, "number": inv.number,
                    "total": str(inv.total) if inv.total is not None else None,
                    "issue_date": inv.issue_date.isoformat() if inv.issue_date else None}))
        out = dict.fromkeys(("won", "already_invoiced", "invoiced_before", "to_invoice", "unsure"), 0)
        done = {crm_id for crm_id, _ in invoiced}
        for deal in sorted(deals, key=lambda d: d.id):
            out["won"] += 1
            if deal.id in done:
                out["already_invoiced"] += 1
                continue
            refs = [("company", deal.company_id)] if deal.company_id else []
            refs += [("person", c) for c in deal.contact_ids]
            acct_id = next((customer[r] for r in refs if r in customer), None)
            if acct_id is None:  # a new customer, or none yet: nothing in the ledger can be its invoice
                out["to_invoice"] += 1
                continue
            found, doubt = prior_invoice(deal, normal_currency(deal.currency), deal.line_items,
                                         by_customer.get(acct_id, []), self.acct.provider)
            if found is not None:
                by_customer[acct_id] = [c for c in by_customer[acct_id] if c[0] != found]
                out["invoiced_before"] += 1
            else:
                out["unsure" if doubt else "to_invoice"] += 1
        return out

    def _exclude(self, plan_id: int) -> None:
        if not self.exclude:
            return
        with self.store.session() as s:
            for r in s.scalars(select(MigrationRow).where(MigrationRow.plan_id == plan_id,
                                                          MigrationRow.id.in_(self.exclude))):
                if r.status == "pending":
                    r.excluded = 1

    def _finish_view(self, plan_id: int, status: str, rows: list[PlanRow] | None = None, *,
                     fresh: bool = False) -> None:
        """The plan's counts, estimate and rows as the result shows them; ``rows``: the plan's rows as
        loaded already (``fresh``: just now; otherwise their state is read again), else they are loaded."""
        res = self.result
        with self.store.session() as s, bulk_objects():
            plan = s.get(MigrationPlan, plan_id)
            if rows is None:
                rows = plan_rows(s, plan_id)
            elif not fresh:  # what the apply changed: states only, not the payloads again
                by_id = {r.id: r for r in rows}
                for i, *state in s.execute(select(
                        MigrationRow.id, MigrationRow.status, MigrationRow.error, MigrationRow.target_id,
                        MigrationRow.crm_type, MigrationRow.crm_id, MigrationRow.excluded).where(
                        MigrationRow.plan_id == plan_id)):
                    if (r := by_id.get(i)) is not None:
                        r.status, r.error, r.target_id, r.crm_type, r.crm_id, r.excluded = state
            res.counts = dict.fromkeys(ACTIONS, 0)
            for r in rows:
                if not r.excluded:
                    res.counts[r.action] += 1
            res.excluded = sum(r.excluded for r in rows)
            res.already_linked = int((plan.counts or {}).get("already_linked", 0))
            res.deals = dict((plan.counts or {}).get("deals") or {})
            res.estimate = estimate(rows, self.crm.limits, self.acct.limits, res.ledger_label, res.crm_label,
                                    acct_batch=batch_limits(self.acct), crm_batch=batch_limits(self.crm))
            plan.counts = {**res.counts, "already_linked": res.already_linked, "excluded": res.excluded,
                           "deals": res.deals}
            plan.estimate = res.estimate.to_json()
            res.rows = [RowView(r.id, r.action, r.name, r.crm_id and f"{r.crm_type} {r.crm_id}", r.acct_id,
                                r.score, r.explanation, r.before, r.after, bool(r.excluded), r.status, r.error)
                        for r in rows]
        res.plan_id = plan_id
        res.status = status
        self.counts.update({f"plan_{k}": v for k, v in res.counts.items()})

    # -- apply -----------------------------------------------------------------------------------
    def _apply_plan(self) -> None:
        res = self.result
        plan_id = self.plan_id
        with self.store.session() as s:
            plan = s.get(MigrationPlan, plan_id)
            cursors = dict(plan.cursors or {})
            plan.status = "applying"
        self._exclude(plan_id)
        with self.store.session() as s, bulk_objects():  # the plan's rows, read once for the whole apply
            every = plan_rows(s, plan_id)
            self.link_ids = {(t, i): lid for lid, t, i in s.execute(
                select(Link.id, Link.crm_type, Link.crm_id).where(Link.workspace_id == self.ws_id,
                                                                  Link.object_type == "customer"))}
            linked_acct = set(s.scalars(select(Link.acct_id).where(Link.workspace_id == self.ws_id,
                                                                   Link.object_type == "customer")))
        self.links_made = set()
        self._finish_view(plan_id, "applying", every, fresh=True)
        before = res.estimate
        self.progress(f"Applying the plan: {res.estimate.text} at the providers' limits", 0, 1)
        with bulk_objects():
            self.done_targets = self._done_keys(every)
        self.keys_done = set(self.done_targets)
        self._settle(plan_id, cursors)
        rows = [r for r in every if r.status == "pending" and not r.excluded]
        linked = set(self.link_ids)
        self.mapping = self.settings.mapping_or(self.crm.default_mapping())
        self.total = len(rows) or 1
        self._pacers = {}
        for side, connector in (("accounting", self.acct), ("crm", self.crm)):
            if (b := batch_limits(connector)) is not None:
                # a second a minute of margin (our clock and theirs never start a minute together)
                self._pacers[side] = RateLimiter(b.requests, b.window_seconds * 61 / 60, sleep=self.sleep)
        self.done_rows = 0
        self.started = time.monotonic()
        self.calls_before = (self._requests(self.crm), self._requests(self.acct))
        res.calls = {"crm": 0, "ledger": 0}
        by_action: dict[str, list[PlanRow]] = defaultdict(list)
        for r in rows:
            # a sync since the plan was made may have linked it: never make it twice
            if r.action in ("create_ledger", "link") and (r.crm_type, r.crm_id) in linked:
                self._mark(r.id, "done", error="already linked by a sync since the plan was made")
                continue
            if r.action == "create_crm" and r.acct_id in linked_acct:
                self._mark(r.id, "done", error="already linked by a sync since the plan was made")
                continue
            by_action[r.action].append(r)
        # The plan's rows and all else loaded by now stay until the end: the collector need not walk them
        # again for every page written.
        gc.freeze()
        try:
            self._create_ledger(by_action["create_ledger"])
            self._links(by_action["link"])
            self._create_crm(by_action["create_crm"])
            self._hold(by_action["invalid"] + by_action["review"])
        finally:
            gc.unfreeze()
        with self.store.session() as s:
            left = s.scalar(select(MigrationRow.id).where(MigrationRow.plan_id == plan_id,
                                                          MigrationRow.status == "pending",
                                                          MigrationRow.excluded == 0).limit(1))
            res.done = dict.fromkeys(ACTIONS, 0)
            for action, status in s.execute(select(MigrationRow.action, MigrationRow.status).where(
                    MigrationRow.plan_id == plan_id, MigrationRow.excluded == 0)):
                if status == "done":
                    res.done[action] += 1
            plan = s.get(MigrationPlan, plan_id)
            if left is None:
                plan.status, plan.applied_at = "applied", utcnow()
        if left is None:
            self.ctx.cursors.save({tuple(k.split(":", 1)): v for k, v in cursors.items()})
        self._finish_view(plan_id, "applied" if left is None and not self.errors
                          else ("partial" if left is None else "applying"), every)
        res.estimate = before
        res.calls = {"crm": self._requests(self.crm) - self.calls_before[0],
                     "ledger": self._requests(self.acct) - self.calls_before[1]}
        res.writes = self.counts["writes"]
        self.counts.update({f"done_{k}": v for k, v in res.done.items()})
        self.progress("Done", self.total, self.total)

    def _done_keys(self, rows: list[PlanRow]) -> dict[str, str | None]:
        """The writes of these rows an earlier apply made (journalled done): key -> the id it made."""
        parts = {"create_ledger": ("create",), "create_crm": ("create",), "link": ("acct", "crm")}
        keys = [self._key(r.id, p) for r in rows if r.status == "pending" for p in parts.get(r.action, ())]
        done: dict[str, str | None] = {}
        with self.store.session() as s:
            for start in range(0, len(keys), 500):
                done.update(s.execute(select(Journal.key, Journal.target_id).where(
                    Journal.workspace_id == self.ws_id, Journal.key.in_(keys[start:start + 500]),
                    Journal.status == "done")).all())
        return done

    # -- after a crash -------------------------------------------------------------------------
    def _settle(self, plan_id: int, cursors: dict[str, str | None]) -> None:
        """Writes journalled by a run that stopped before recording their answer: were they made?"""
        with self.store.session() as s:
            pending = list(s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id,
                                                           Journal.status == "pending",
                                                           Journal.op.in_(("create_customer", "create_crm")))))
            pending = [j for j in pending if "migration_row" in (j.payload or {})]
        if not pending:
            return
        crm_seen: dict[str, list[CrmRecord]] = {}
        for j in pending:
            target = None
            name = j.payload.get("display_name")
            if j.op == "create_customer":
                hits = self.acct.find_customers(name=name) if name else []
                email = j.payload.get("email")
                if not hits and email:
                    hits = [h for h in self.acct.find_customers(email=email)
                            if normalise_name(h.party.name) == normalise_name(name)]
                target = hits[0].id if hits else None
            else:
                otype = j.crm_type or "company"
                if otype not in crm_seen:
                    crm_seen[otype] = self.crm.read_records(otype, cursors.get(f"crm:{otype}")).records
                props = j.payload.get("properties") or {}
                for rec in crm_seen[otype]:
                    if all(str(rec.properties.get(k) or "") == str(v or "") for k, v in props.items()):
                        target = rec.id
                        break
            with self.store.session() as s:
                row = s.get(Journal, j.id)
                if target:
                    row.status, row.target_id, row.updated_at = "done", target, utcnow()
                    self.keys_done.add(j.key)
                    self.done_targets[j.key] = target
                else:
                    row.status, row.error = "failed", "not made; sent again"


def _engine(store: Store, ws_id: int, crm: Any, acct: Any, **kw: Any) -> _MigrationEngine:
    return _MigrationEngine(store, ws_id, crm, acct, trigger="migration", **kw)


def _saved_plan(store: Store, ws_id: int, ws_name: str, *, apply: bool, exclude: set[int]) -> int | None:
    """The plan an apply or an exclusion works on (None: already applied), after checking the request."""
    with store.session() as s:
        plans = list(s.scalars(select(MigrationPlan).where(MigrationPlan.workspace_id == ws_id)
                               .order_by(MigrationPlan.id.desc())))
        current = next((p for p in plans if p.status in ("planned", "applying")), None)
        if not apply and not exclude:
            if current is not None and current.status == "applying":
                raise UserError(f"A migration of '{ws_name}' was started and has not finished. Finish it first "
                                f"with 'crossledger migrate \"{ws_name}\" --apply'.")
            return None
        if current is None:
            if apply and any(p.status == "applied" for p in plans):
                return None
            raise UserError(f"There is no migration plan for '{ws_name}' yet. Make one with 'crossledger migrate "
                            f"\"{ws_name}\"' (a dry run), check it, then apply it.")
        if exclude:
            ids = set(s.scalars(select(MigrationRow.id).where(MigrationRow.plan_id == current.id,
                                                              MigrationRow.id.in_(exclude))))
            unknown = sorted(exclude - ids)
            if unknown:
                raise UserError(f"The plan has no row {', '.join(map(str, unknown))}. Use the row numbers shown "
                                "by the dry run.")
        return current.id


def run_migration(store: Store, ws_id: int, crm: Any, acct: Any, *, apply: bool = False,
                  exclude: Iterable[int] = (), progress: Progress | None = None,
                  cancel: threading.Event | None = None, wait_for_quota: bool = True,
                  sleep: Callable[[float], None] = time.sleep) -> MigrationResult:
    """A dry run (makes and saves the plan), an exclusion of rows from the saved plan (``exclude``
    without ``apply``), or an apply of the saved plan, with connected connectors."""
    started = time.monotonic()
    exclude = set(exclude)
    with store.session() as s:
        from app.store.models import Workspace

        ws_name = s.get(Workspace, ws_id).name
    plan_id = _saved_plan(store, ws_id, ws_name, apply=apply, exclude=exclude)
    mode = "apply" if apply else ("exclude" if exclude else "dry_run")
    if apply and plan_id is None:
        with store.session() as s:
            last = s.scalars(select(MigrationPlan).where(MigrationPlan.workspace_id == ws_id,
                                                         MigrationPlan.status == "applied")
                             .order_by(MigrationPlan.id.desc())).first()
        return MigrationResult(ws_name, "apply", "nothing_to_do", last.id if last else None,
                               counts=dict.fromkeys(ACTIONS, 0), done=dict.fromkeys(ACTIONS, 0),
                               crm_label=provider_words(crm.provider), ledger_label=provider_words(acct.provider))
    engine = _engine(store, ws_id, crm, acct, dry_run=not apply, mode=mode, exclude=exclude, progress=progress,
                     cancel=cancel, wait_for_quota=wait_for_quota, sleep=sleep)
    engine.plan_id = plan_id
    run = engine.run()
    result = engine.result or MigrationResult(run.workspace, mode, run.status, plan_id)
    if run.status == "cancelled":
        result.status = "cancelled"
    elif run.status == "failed":
        result.status = "failed"
    result.errors = list(run.errors)
    result.seconds = time.monotonic() - started
    return result


def migrate(store: Store, tokens: TokenStore, name: str, *, apply: bool = False, exclude: Iterable[int] = (),
            progress: Progress | None = None, cancel: threading.Event | None = None) -> MigrationResult:
    """The use case behind `crossledger migrate` and the migration wizard."""
    ws = get_workspace(store, name)
    crm, acct = open_connectors(store, tokens, ws)
    try:
        return run_migration(store, ws.id, crm, acct, apply=apply, exclude=exclude, progress=progress,
                             cancel=cancel)
    finally:
        crm.close()
        acct.close()
