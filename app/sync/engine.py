"""A sync run: read the change feeds, plan, apply in journalled batches, record.

Every write is journalled (with its idempotency key) and committed before it is sent. After a
crash, a create that was sent but never recorded is settled by looking it up on the ledger, then
re-sent with the same key only if it is not there, so a customer is never created twice.
The lease, the run record, the journal, progress and cancel are the run's ``RunContext``
(``app.sync.run_context``); won deals become invoices in ``app.sync.invoice_apply``. Between reading
and planning, linked records archived, deleted or merged on either side are looked into
(``app.sync.fates``): links follow merges, and what a person must decide is flagged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from app.connectors.base import AccountingConnector, CrmConnector, CustomerWrite, RecordWrite
from app.connectors.errors import ConnectorError, CustomerInactive, DuplicateName, NotFound, StaleVersion
from app.domain.clock import SYSTEM_CLOCK, Clock
from app.domain.models import AccountingCustomer, CrmRecord, Party, PartyKind
from app.domain.settings import (
    WorkspaceSettings,
    settings_of,
)
from app.domain.text import compact_tax_id, has_broken, name_key, normalise_email
from app.store.repos import ConflictRecord, Done, Hold, SnapshotWrite
from app.store.serial import text_value
from app.sync.fates import FLAG_PREFIX, LinkFates, customer_refused
from app.sync.invoice_apply import InvoiceSync
from app.sync.planner import (
    DEFAULT_RULES,
    CustomersFrom,
    Direction,
    LinkState,
    Plan,
    PlanInput,
    UpdateCrm,
    UpdateCustomer,
    customer_candidates,
    plan,
)
from app.sync.run_context import Busy, Cancelled, Held, LeaseLost, Progress, RunContext, WithRunContext

log = logging.getLogger("crossledger.sync")

CRM_TYPES: tuple[PartyKind, ...] = ("company", "person")
__all__ = ["CRM_TYPES", "Busy", "Cancelled", "Done", "LeaseLost", "MassChange", "Progress", "RunResult", "SyncEngine",
           "mass_change_limit", "resolve_create_error"]


class MassChange(Held):
    """A run would change more linked records than the workspace's safety limit: nothing was written."""

    def __init__(self, changes: int, limit: int, linked: int) -> None:
        self.changes, self.limit, self.linked = changes, limit, linked
        super().__init__(
            f"This sync would change {changes:,} of the {linked:,} linked records at once, more than the safety "
            f"limit of {limit:,}, so it stopped before writing anything. If you expected this (for example "
            "after a bulk edit or an import), check the changes with a dry run, then sync again allowing "
            "large changes.")


def mass_change_limit(linked: int, settings: WorkspaceSettings | Mapping[str, Any] | None) -> int:
    """The most linked records one run may change without asking (per-workspace ``safety`` settings)."""
    return settings_of(settings).safety.mass_change_limit(linked)


@dataclass
class RunResult:
    run_id: int | None
    workspace: str
    status: str
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    plan: Plan | None = None
    seconds: float | None = None  # the run's own duration, set by whoever timed it
    requests: dict[str, int] | None = None  # {"crm": n, "accounting": m}: requests sent during the run

    def to_json(self) -> dict[str, Any]:
        keys = ("read", "created", "updated", "linked", "quarantined", "conflicts", "writes", "errors")
        out: dict[str, Any] = {k: self.counts.get(k, 0) for k in keys}
        out.update({k: v for k, v in self.counts.items() if k not in out})
        out["errors"] = len(self.errors)
        extra: dict[str, Any] = {}
        if self.seconds is not None:
            extra["seconds"] = round(self.seconds, 3)
        if self.requests is not None:
            extra["requests"] = dict(self.requests)
        return {"workspace": self.workspace, "run_id": self.run_id, "status": self.status,
                "dry_run": self.dry_run, **out, "error_messages": self.errors, **extra}


def _ref_of(key: str) -> tuple[str, str]:
    """'company:123' -> ('company', '123')."""
    kind, _, rid = key.partition(":")
    return kind, rid


class SyncEngine(WithRunContext):
    def __init__(
        self,
        store: Any,
        workspace_id: int,
        crm: CrmConnector,
        acct: AccountingConnector,
        *,
        trigger: str = "manual",
        dry_run: bool = False,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        holder: str | None = None,
        full: bool = False,
        allow_mass_change: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.ctx = RunContext(store, workspace_id, trigger=trigger, dry_run=dry_run, progress=progress, cancel=cancel,
                              holder=holder, clock=clock, counts={"read": 0, "created": 0, "updated": 0, "linked": 0,
                                                                  "quarantined": 0, "conflicts": 0, "writes": 0})
        self.store = store
        self.allow_mass_change = allow_mass_change
        self.ws_id = workspace_id
        self.crm = crm
        self.acct = acct
        self.dry_run = dry_run
        self.full = full  # a full sweep reads everything, ignoring the change-feed cursors
        self._replanned: dict[tuple[str, str], str] = {}
        self.linked = 0  # customer links in the workspace, counted when planning
        self._fates = LinkFates(self.ctx, crm, acct)

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> RunResult:
        ctx = self.ctx
        status, plan_obj = ctx.run(self._run)
        return RunResult(ctx.run_id, ctx.ws_name, status, self.dry_run, dict(ctx.counts), list(ctx.errors), plan_obj)

    def _run(self) -> Plan:
        ctx = self.ctx
        settings = ctx.settings
        mapping = settings.mapping_or(self.crm.default_mapping())
        rules = {**DEFAULT_RULES, **settings.effective_rules}
        direction = cast(Direction, settings.direction.customer)
        if direction == "off":
            return Plan()

        # 1. Read both change feeds.
        cursors = {} if self.full else ctx.cursors.load()
        touched: dict[tuple[str, str], CrmRecord] = {}
        new_cursors: dict[tuple[str, str], str | None] = {}
        fates = self._fates = LinkFates(ctx, self.crm, self.acct)
        for n, otype in enumerate(CRM_TYPES):
            ctx.progress(f"Reading {otype} records from the CRM", n, 3)
            changes = self.crm.read_records(otype, cursors.get(("crm", otype)))
            ctx.count("read", len(changes.records))
            for rec in changes.records:
                touched[(otype, rec.id)] = rec
            self._mirror_crm(changes.records, otype, changes.deleted_ids)
            fates.crm_read(otype, changes)
            new_cursors[("crm", otype)] = changes.cursor
            ctx.check_cancel()
        ctx.progress("Reading customers from the ledger", 2, 3)
        acct_changes = self.acct.read_customers(cursors.get(("accounting", "customer")))
        ctx.count("read", len(acct_changes.records))
        self._mirror_acct(acct_changes.records, acct_changes.deleted_ids)
        fates.ledger_read(acct_changes)
        new_cursors[("accounting", "customer")] = acct_changes.cursor
        touched_acct = {c.id for c in acct_changes.records}
        ctx.check_cancel()

        invoice_sync = None
        if settings.direction.invoices_on and hasattr(self.crm, "read_deals"):
            invoice_sync = InvoiceSync(ctx, self.crm, self.acct)
            invoice_sync.read(cursors, new_cursors)

        # 2. Linked records archived, deleted or merged: links follow, flags; then plan.
        fates.settle()
        inp = self._plan_input(touched, touched_acct, mapping, rules, direction)
        result = plan(inp)
        result.crm_updates = [u for u in result.crm_updates if not fates.gone(inp.links.get(u.ref))]
        ctx.counts.update(result.counts())
        ctx.counts["writes"] = 0
        if self.dry_run:
            ctx.counts["would_write"] = result.writes
            return result
        # records already linked only: a first sync filling blanks while linking is not a mass change
        moving: list[UpdateCustomer | UpdateCrm] = [*result.updates, *result.crm_updates]
        changing = len({u.ref for u in moving if u.ref in inp.links})
        limit = mass_change_limit(self.linked, settings)
        if changing > limit and not self.allow_mass_change:
            ctx.counts["would_change"] = changing
            raise MassChange(changing, limit, self.linked)

        # 3. Apply.
        self._apply(result, inp)

        # 4. Won deals -> invoices, invoice status -> deals.
        if invoice_sync is not None:
            inv = invoice_sync.apply()
            ctx.counts.update({"invoices_created": inv.created, "deals_updated": inv.deals_updated,
                               "deals_held": inv.held, "items_created": inv.items_created,
                               "deals_flagged": inv.flagged, "invoices_matched": inv.matched,
                               "invoices_voided": inv.voided, "credit_notes": inv.credited})
            ctx.errors.extend(inv.errors)
        if not ctx.errors:
            ctx.cursors.save(new_cursors)
        return result

    # -- reading ------------------------------------------------------------------------------
    def _mirror_crm(self, records: list[CrmRecord], otype: str, deleted: list[str]) -> None:
        self.ctx.mirror.put_crm(otype, records, deleted)

    def _mirror_acct(self, customers: list[AccountingCustomer], deleted: Sequence[str] = ()) -> None:
        self.ctx.mirror.put_customers(customers, deleted)

    def _plan_input(self, touched: dict[tuple[str, str], CrmRecord], touched_acct: set[str],
                    mapping: dict[str, dict[str, str]], rules: dict[str, Any], direction: Direction) -> PlanInput:
        ctx = self.ctx
        held_rows = ctx.quarantine.crm()
        quarantined = {q.ref for q in held_rows}
        for q in held_rows:  # undone by the user (app/ops/undo.py): left alone until released
            if q.reasons.get("undone_run"):
                touched.pop(q.ref, None)
        released = [q.ref for q in held_rows if q.reasons.get("release")]
        held: dict[tuple[str, str], set[str]] = {}
        chosen: list[tuple[str, str]] = []  # answered on the Review page: applied after the plan
        for c in ctx.conflicts.with_outcome(("open", "chosen")):
            held.setdefault((c.crm_type, c.crm_id), set()).add(c.field)
            if c.outcome == "chosen":
                chosen.append((c.crm_type, c.crm_id))
        links, ledger = self._links_and_ledger(touched, touched_acct, released, chosen)
        # CRM records linked to ledger customers that changed: plan them from the mirror.
        wanted = [ref for ref, lk in links.items() if lk.acct_id in touched_acct and ref not in touched]
        wanted += [ref for ref in released if ref not in touched]  # released after an undo: plan them again
        for otype in CRM_TYPES:
            ids = [rid for t, rid in wanted if t == otype]
            if not ids:
                continue
            touched.update({(otype, rid): rec for rid, rec in ctx.mirror.crm_records(otype, ids).items()})
        pending = self._settle_pending(ledger)
        undone = ctx.undone_generations()
        return PlanInput(ctx.ws_name, touched, ledger, links, touched_acct, mapping, rules, direction,
                         quarantined, pending, held, getattr(self.acct, "party_problems", None),
                         customers_from=cast(CustomersFrom, ctx.settings.customers_from),
                         field_directions=cast(dict[str, Direction], dict(ctx.settings.field_direction)),
                         recreate={**undone, **{ref: "+".join(filter(None, (undone.get(ref), gen)))
                                                for ref, gen in self._replanned.items()}},
                         pins={_ref_of(k): v for k, v in ctx.settings.pinned_matches.items()},
                         inactive_names_taken=getattr(self.acct, "inactive_names_taken", True))

    def _links_and_ledger(self, touched: dict[tuple[str, str], CrmRecord], touched_acct: set[str],
                          released: list[tuple[str, str]], chosen: list[tuple[str, str]],
                          ) -> tuple[dict[tuple[str, str], LinkState], dict[str, AccountingCustomer]]:
        """What planning this run's changes needs, and no more: the links of the records read, released
        from review or answered there, and of the ledger customers read, with those links' ledger
        customers. Every ledger customer only when a record without a link is to be matched (or created
        under a free name). ``self.linked``: the workspace's customer links (for the mass-change limit)."""
        ctx = self.ctx
        found = ctx.links.of("customer", [*touched, *released, *chosen])
        found.update(ctx.links.to_accounts("customer", touched_acct))
        links = {ref: LinkState(lk.acct_id, lk.how, lk.snapshot) for ref, lk in found.items()}
        self.linked = ctx.links.count("customer")
        unlinked = [*customer_candidates(touched, ctx.settings.customers_from), *released]
        if any(ref not in links for ref in unlinked):
            return links, ctx.mirror.customers()
        return links, ctx.mirror.customers(sorted({lk.acct_id for lk in links.values()} | touched_acct))

    def undone_generations(self) -> dict[tuple[str, str], str]:
        return self.ctx.undone_generations()

    def _settle_pending(self, ledger: dict[str, AccountingCustomer]) -> dict[str, str]:
        """Creates journalled by an earlier run that never recorded an answer: were they made?

        One that was made is linked (and the planner brings it up to the record's current data); one
        that was not is planned again from the record as it is now, under a new key, so the ledger
        cannot answer it with the earlier request's outcome."""
        found: dict[str, str] = {}
        outcomes: dict[int, tuple[str, str | None, str | None]] = {}
        self._replanned = {}
        for row in self.ctx.journal.pending("create_customer"):
            name = row.payload.get("display_name")
            email = row.payload.get("email")
            # A request holding half a character could never be sent, so it was not made.
            unsendable = any(isinstance(v, str) and has_broken(v) for v in (name, email))
            hits = self.acct.find_customers(name=name) if name and not unsendable else []
            if not hits and email and not unsendable:
                hits = [h for h in self.acct.find_customers(email=email)
                        if name_key(h.raw_name or h.party.name) == name_key(name)]
            if hits:
                hit = hits[0]
                found[row.key] = hit.id
                ledger[hit.id] = hit
                outcomes[row.id] = ("done", hit.id, None)
                log.info("settled an earlier create of %r: found as %s", name, hit.id)
            else:
                outcomes[row.id] = ("failed", None, "not made; planned again")
                self._replanned[(row.crm_type or "", row.crm_id or "")] = f"replan-{row.id}"
        self.ctx.journal.settle(outcomes)
        return found

    # -- applying -----------------------------------------------------------------------------
    def _apply(self, p: Plan, inp: PlanInput) -> None:
        ctx = self.ctx
        created_ids: dict[str, str | None] = {}
        total = p.writes or 1
        done = 0
        batch = max(1, getattr(self.acct.limits, "batch_max", 1))

        for start in range(0, len(p.creates), batch):
            ctx.check_cancel()
            chunk = p.creates[start:start + batch]
            ctx.progress("Creating customers in the ledger", done, total)
            ctx.journal_writes([(c.key, "create_customer", "accounting", c.refs[0], None,
                                 {"display_name": c.display_name, "email": c.party.email, "refs": c.refs})
                                for c in chunk])
            results = self.acct.create_customers(
                [CustomerWrite(c.key, c.party, display_name=c.display_name) for c in chunk])
            recorded: list[Done] = []
            for create, res in zip(chunk, results, strict=True):
                if res.ok:
                    created_ids[create.key] = res.id
                    ctx.count("writes")
                    recorded.append(Done(create.key, res.id, "accounting",
                                         {f: (None, v) for f, v in create.party.fields().items() if v},
                                         create.rules()))
            self._record_done(recorded)
            for create, res in zip(chunk, results, strict=True):
                if not res.ok:
                    acct_id = self._handle_create_error(create, res.error)
                    if acct_id:
                        created_ids[create.key] = acct_id
            done += len(chunk)

        # Links (to existing customers and to those just created).
        self._save_links(p, created_ids)

        updates = [u for u in p.updates if not u.acct_id.startswith("create:")]
        for start in range(0, len(updates), batch):
            ctx.check_cancel()
            upd_chunk = updates[start:start + batch]
            ctx.progress("Updating customers in the ledger", done, total)
            ctx.journal_writes([(u.key, "update_customer", "accounting", u.ref, u.acct_id,
                                 {"changes": {f: list(v) for f, v in u.changes.items()}}) for u in upd_chunk])
            results = self.acct.update_customers(
                [CustomerWrite(u.key, u.party, id=u.acct_id, version=u.version) for u in upd_chunk])
            recorded = []
            for upd, res in zip(upd_chunk, results, strict=True):
                if not res.ok and isinstance(res.error, StaleVersion):
                    res = self._retry_stale(upd)
                if not res.ok and isinstance(res.error, CustomerInactive):
                    customer_refused(ctx, upd.key, upd.acct_id)
                elif res.ok:
                    ctx.count("writes")
                    recorded.append(Done(upd.key, upd.acct_id, "accounting", upd.changes, upd.rule, upd.ref,
                                         upd.crm_fields, upd.party.fields(), share_acct=upd.acct_id))
                else:
                    ctx.fail(upd.key, upd.ref, upd.party.name, res.error)
            self._record_done(recorded)
            done += len(upd_chunk)

        crm_batch = max(1, getattr(self.crm.limits, "batch_max", 1))
        for start in range(0, len(p.crm_updates), crm_batch):
            ctx.check_cancel()
            crm_chunk = p.crm_updates[start:start + crm_batch]
            ctx.progress("Updating records in the CRM", done, total)
            ctx.journal_writes([(u.key, "update_crm", "crm", u.ref, u.ref[1],
                                 {"changes": {f: list(v) for f, v in u.changes.items()}}) for u in crm_chunk])
            results = self.crm.update_records(
                [RecordWrite(u.key, cast(PartyKind, u.ref[0]), u.ref[1], u.properties) for u in crm_chunk])
            recorded = []
            for edit, res in zip(crm_chunk, results, strict=True):
                if res.ok:
                    ctx.count("writes")
                    recorded.append(Done(edit.key, edit.ref[1], "crm", edit.changes, edit.rule, edit.ref,
                                         {**edit.acct_fields}, edit.acct_fields, merge_crm=True))
                elif isinstance(res.error, NotFound):  # gone from the CRM, and its feed did not say: look into it
                    self._fates.vanished(edit.key, edit.ref)
                else:
                    ctx.fail(edit.key, edit.ref, edit.ref[1], res.error)
            self._record_done(recorded)
            done += len(crm_chunk)

        if p.snapshots:
            ctx.links.set_snapshots([SnapshotWrite(ref, snap["crm"], snap["acct"])
                                     for ref, snap in p.snapshots.items()])
        self._save_quarantine(p)
        self._save_conflicts(p)
        self._apply_resolutions(inp)
        ctx.progress("Done", total, total)

    def _record_done(self, done: list[Done]) -> None:
        """One batch of accepted writes, recorded in one transaction (see ``JournalRepo.record_done``)."""
        self.ctx.journal.record_done(self.ctx.run_id, done)

    def _handle_create_error(self, create: Any, error: ConnectorError | None) -> str | None:
        return resolve_create_error(self.ctx, self.acct, create, error)

    def _retry_stale(self, upd: Any) -> Any:
        fresh = self.acct.get_customers([upd.acct_id])
        if not fresh:
            return self.acct.update_customers([CustomerWrite(upd.key, upd.party, id=upd.acct_id)])[0]
        self._mirror_acct(fresh)
        party = fresh[0].party.with_fields({f: v[1] for f, v in upd.changes.items()})
        return self.acct.update_customers([CustomerWrite(upd.key, party, id=upd.acct_id, version=fresh[0].version)])[0]

    def _save_links(self, p: Plan, created_ids: dict[str, str | None]) -> None:
        first_ref = {c.key: c.refs[0] for c in p.creates}
        rows: list[tuple[tuple[str, str], str, str, dict[str, Any]]] = []
        for link in p.links:
            acct_id = link.acct_id
            how = link.how
            if acct_id.startswith("create:"):
                made = created_ids.get(acct_id.split(":", 1)[1])
                if made is None:
                    continue
                acct_id = made
                how = "created" if link.ref == first_ref.get(link.how.split(":", 1)[1]) else "duplicate"
            rows.append((link.ref, acct_id, how, {"crm": link.crm_fields, "acct": link.acct_fields}))
        self.ctx.links.save_customers(rows, self.ctx.run_id)
        self.ctx.counts["linked"] = sum(1 for lk in p.links if not lk.how.startswith("created"))

    def _save_quarantine(self, p: Plan) -> None:
        self.ctx.hold([Hold(q.ref, q.name, [{"field": pr.field, "message": pr.message} for pr in q.problems],
                            tuple(q.candidates or ())) for q in p.quarantined], counted=True)
        self.ctx.quarantine.release(list(p.released))

    def _apply_resolutions(self, inp: PlanInput) -> None:
        """Choices made on the Review page: put the chosen value on both sides, then close."""
        ctx = self.ctx
        chosen = ctx.conflicts.with_outcome(("chosen",), CRM_TYPES)
        if not chosen:
            return
        from app.sync.mapping import map_record, reverse_map

        for c in chosen:
            assert c.id is not None  # read from the store
            if c.field.startswith(FLAG_PREFIX):  # a linked record's fate, seen by a person: nothing to write
                ctx.conflicts.resolved(c.id)
                continue
            ref = (c.crm_type, c.crm_id)
            link = inp.links.get(ref)
            value = c.chosen_value
            if link is None:
                continue
            ledger = inp.ledger.get(link.acct_id)
            key = f"resolve-{c.id}"
            ok = True
            if ledger is not None and ledger.party.fields().get(c.field) != value:
                ctx.journal_writes([(key + "-acct", "update_customer", "accounting", ref, link.acct_id,
                                     {"changes": {c.field: [ledger.party.fields().get(c.field), value]}})])
                res = self.acct.update_customers([CustomerWrite(key + "-acct", ledger.party.with_fields(
                    {c.field: value}), id=link.acct_id, version=ledger.version)])[0]
                if not res.ok and isinstance(res.error, StaleVersion):
                    fresh = self.acct.get_customers([link.acct_id])
                    if fresh:
                        res = self.acct.update_customers([CustomerWrite(key + "-acct", fresh[0].party.with_fields(
                            {c.field: value}), id=link.acct_id, version=fresh[0].version)])[0]
                if res.ok:
                    ctx.finish(key + "-acct", link.acct_id)
                    ctx.count("writes")
                    ctx.journal.record_changes(ctx.run_id, key + "-acct", "accounting", link.acct_id,
                                               {c.field: (ledger.party.fields().get(c.field), value)}, "review")
                else:
                    ok = False
                    ctx.fail(key + "-acct", ref, c.crm_value or c.crm_id, res.error)
            crm_value = link.snapshot.get("crm", {}).get(c.field)
            record = inp.crm_records.get(ref)
            if record is not None:
                crm_value = map_record(record, inp.mapping).fields().get(c.field)
            props = reverse_map({c.field: value}, c.crm_type, inp.mapping)
            crm_after = value if props else crm_value  # a field we cannot write back stays as the CRM has it
            if ok and props and crm_value != value:
                ctx.journal_writes([(key + "-crm", "update_crm", "crm", ref, c.crm_id,
                                     {"changes": {c.field: [crm_value, value]}})])
                res = self.crm.update_records(
                    [RecordWrite(key + "-crm", cast(PartyKind, c.crm_type), c.crm_id, props)])[0]
                if res.ok:
                    ctx.finish(key + "-crm", c.crm_id)
                    ctx.count("writes")
                    ctx.journal.record_changes(ctx.run_id, key + "-crm", "crm", c.crm_id,
                                               {c.field: (crm_value, value)}, "review")
                else:
                    ok = False
                    ctx.fail(key + "-crm", ref, c.crm_value or c.crm_id, res.error)
            if ok:
                ctx.links.set_snapshots([SnapshotWrite(ref, {**link.snapshot.get("crm", {}), c.field: crm_after},
                                                       {**link.snapshot.get("acct", {}), c.field: value})])
                ctx.conflicts.resolved(c.id)

    def _save_conflicts(self, p: Plan) -> None:
        self.ctx.conflicts.add([ConflictRecord(c.ref[0], c.ref[1], c.acct_id, c.field, text_value(c.crm_value),
                                               text_value(c.acct_value), text_value(c.base_value), c.rule, c.outcome)
                                for c in p.conflicts], self.ctx.run_id)


def resolve_create_error(ctx: RunContext, acct: AccountingConnector, create: Any,
                         error: ConnectorError | None) -> str | None:
    """A customer create the ledger refused: the ledger id it ends up with, or None (the write failed).

    When the name is taken by a customer we did not match: link if it is plainly the same customer,
    otherwise create it under a distinguishable name. ``create``: its key, party, display name and refs."""
    if isinstance(error, DuplicateName):
        hits = acct.find_customers(name=create.display_name)
        for hit in hits:  # a ledger's name search may be looser than ours: the names must be the same
            if name_key(hit.raw_name or hit.party.name) == name_key(create.display_name) \
                    and _same_customer(hit.party, create.party):
                ctx.mirror.put_customers([hit])
                ctx.finish(create.key, hit.id)
                return hit.id
        existing = {h.raw_name or h.party.name for h in hits}
        n = 2
        while f"{create.display_name} ({n})" in existing:
            n += 1
        name = f"{create.display_name} ({n})"
        retry = acct.create_customers([CustomerWrite(create.key + "-2", create.party, display_name=name)])[0]
        if retry.ok:
            ctx.finish(create.key, retry.id)
            ctx.count("writes")
            return retry.id
        error = retry.error
    ctx.fail(create.key, create.refs[0], create.party.name, error)
    return None


def _same_customer(a: Party, b: Party) -> bool:
    """A name clash is the same customer when nothing that identifies them disagrees."""
    for left, right in ((normalise_email(a.email), normalise_email(b.email)),
                        (compact_tax_id(a.tax_id), compact_tax_id(b.tax_id))):
        if left and right and left != right:
            return False
    return True
