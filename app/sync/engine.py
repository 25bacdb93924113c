"""A sync run: lease, read the change feeds, plan, apply in journalled batches, record.

Every write is journalled (with its idempotency key) and committed before it is sent. After a
crash, a create that was sent but never recorded is settled by looking it up on the ledger, then
re-sent with the same key only if it is not there, so a customer is never created twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import delete, select

from app.connectors.base import AccountingConnector, CrmConnector, CustomerWrite, RecordWrite
from app.connectors.errors import ConnectorError, DuplicateName, StaleVersion
from app.domain.models import PARTY_FIELDS, AccountingCustomer, CrmRecord, Party, PartyKind
from app.domain.text import compact_tax_id, has_broken, name_key, normalise_email
from app.domain.text import mend_broken as safe_text
from app.store import lease, runs
from app.store.db import Store
from app.store.models import (
    ConflictRow,
    Cursor,
    FieldChange,
    Journal,
    Link,
    Mirror,
    Quarantine,
    Run,
    Workspace,
    utcnow,
)
from app.sync.planner import DEFAULT_RULES, Direction, LinkState, Plan, PlanInput, UpdateCrm, UpdateCustomer, plan

log = logging.getLogger("crossledger.sync")

Progress = Callable[[str, int, int], None]
CRM_TYPES: tuple[PartyKind, ...] = ("company", "person")


class Cancelled(Exception):
    pass


class Busy(Exception):
    """Another sync of this workspace is running (here or on another machine)."""


class LeaseLost(Exception):
    """This run could not renew its hold on the workspace (another run may have taken it): it stopped
    before its next write, so two runs never write to the same workspace at once."""

    MESSAGE = ("This run stopped before its next change because it lost its hold on the workspace (it was "
               "held up too long, and another run may have started). Nothing was sent twice; sync again "
               "and it carries on from what was recorded.")

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class MassChange(Exception):
    """A run would change more linked records than the workspace's safety limit: nothing was written."""

    def __init__(self, changes: int, limit: int, linked: int) -> None:
        self.changes, self.limit, self.linked = changes, limit, linked
        super().__init__(
            f"This sync would change {changes:,} of the {linked:,} linked records at once, more than the safety "
            f"limit of {limit:,}, so it stopped before writing anything. If you expected this (for example "
            "after a bulk edit or an import), check the changes with a dry run, then sync again allowing "
            "large changes.")


MASS_CHANGE_PERCENT = 20  # defaults: 20% of linked records or 50 records, whichever is smaller
MASS_CHANGE_RECORDS = 50
MASS_CHANGE_FLOOR = 3  # a tiny workspace can always change a couple of records


def mass_change_limit(linked: int, settings: dict[str, Any]) -> int:
    """The most linked records one run may change without asking (per-workspace ``safety`` settings)."""
    safety = settings.get("safety") or {}
    percent = int(safety.get("mass_change_percent", MASS_CHANGE_PERCENT))
    records = int(safety.get("mass_change_records", MASS_CHANGE_RECORDS))
    return max(min(linked * percent // 100, records), MASS_CHANGE_FLOOR)


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


def _ts(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _ref_of(key: str) -> tuple[str, str]:
    """'company:123' -> ('company', '123')."""
    kind, _, rid = key.partition(":")
    return kind, rid


def _party_data(party: Party, raw_name: str | None = None) -> dict[str, Any]:
    return {**party.fields(), "kind": party.kind, "currency": party.currency, "raw_name": raw_name}


def _party_from(data: dict[str, Any]) -> Party:
    return Party(kind=data.get("kind") or "company", name=data.get("name") or "").with_fields(
        {k: data.get(k) for k in (*PARTY_FIELDS, "currency") if k != "name"})


class SyncEngine:
    def __init__(
        self,
        store: Store,
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
    ) -> None:
        self.store = store
        self.allow_mass_change = allow_mass_change
        self.ws_id = workspace_id
        self.crm = crm
        self.acct = acct
        self.trigger = trigger
        self.dry_run = dry_run
        self.progress = progress or (lambda *_: None)
        self.cancel = cancel or threading.Event()
        self.holder = holder or lease.holder_id()
        self.full = full  # a full sweep reads everything, ignoring the change-feed cursors
        self.errors: list[str] = []
        self.failure: ConnectorError | None = None  # what stopped the run, if a connector did
        self.counts: dict[str, int] = {"read": 0, "created": 0, "updated": 0, "linked": 0, "quarantined": 0,
                                       "conflicts": 0, "writes": 0}

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> RunResult:
        with self.store.session() as s:
            ws = s.get(Workspace, self.ws_id)
            assert ws is not None
            self.ws_name = ws.name
            self.settings = dict(ws.settings or {})
        if not lease.acquire(self.store, self.ws_id, self.holder):
            raise Busy(f"A sync of '{self.ws_name}' is already running. It will be picked up when that one ends.")
        try:
            runs.mark_interrupted(self.store, self.ws_id)  # holding the lease: any "running" run here is dead
            with self.store.session() as s:
                run = Run(workspace_id=self.ws_id, trigger=self.trigger, dry_run=int(self.dry_run))
                s.add(run)
                s.flush()
                self.run_id = run.id
            status = "ok"
            plan_obj = None
            try:
                plan_obj = self._run()
                if self.errors:
                    status = "partial"
            except Cancelled:
                status = "cancelled"
            except MassChange as exc:
                status = "held"
                self.errors.append(str(exc))
            except LeaseLost as exc:
                status = "failed"
                self.errors.append(str(exc))
            except ConnectorError as exc:
                status = "failed"
                self.errors.append(exc.message)
                self.failure = exc
            except BaseException as exc:  # a fault of Crossledger's own: the run is closed, then it is raised
                log.exception("sync of %r stopped", self.ws_name)
                try:
                    self._close_run("failed" if isinstance(exc, Exception) else "cancelled", [
                        "Something unexpected stopped this sync before it finished. Nothing was lost: the next "
                        "sync carries on from here. If it keeps happening, send the log file to support."])
                except Exception:  # the database itself may be what failed: the original error is the one raised
                    log.exception("could not record the end of run %s", self.run_id)
                raise
            self._close_run(status)
            return RunResult(self.run_id, self.ws_name, status, self.dry_run, dict(self.counts), list(self.errors),
                             plan_obj)
        finally:
            lease.release(self.store, self.ws_id, self.holder)

    def _close_run(self, status: str, more_errors: Sequence[str] = ()) -> None:
        self.errors.extend(more_errors)
        self.counts["errors"] = len(self.errors)
        with self.store.session() as s:
            run = s.get(Run, self.run_id)
            assert run is not None  # made at the start of this run
            run.status = status
            run.counts = dict(self.counts)
            run.message = safe_text("\n".join(self.errors[:50])) or None
            run.finished_at = utcnow()

    def _check_cancel(self) -> None:
        """Called before each group of writes: stop if asked to, or if this run no longer holds the workspace."""
        if self.cancel.is_set():
            raise Cancelled()
        if not lease.renew(self.store, self.ws_id, self.holder):
            raise LeaseLost()

    def _run(self) -> Plan:
        mapping = self.settings.get("mapping") or self.crm.default_mapping()
        rules = {**DEFAULT_RULES, **(self.settings.get("rules") or {})}
        direction = cast(Direction, (self.settings.get("direction") or {}).get("customer", "both"))
        if direction == "off":
            return Plan()

        # 1. Read both change feeds.
        cursors = {} if self.full else self._cursors()
        touched: dict[tuple[str, str], CrmRecord] = {}
        new_cursors: dict[tuple[str, str], str | None] = {}
        for n, otype in enumerate(CRM_TYPES):
            self.progress(f"Reading {otype} records from the CRM", n, 3)
            changes = self.crm.read_records(otype, cursors.get(("crm", otype)))
            self.counts["read"] += len(changes.records)
            for rec in changes.records:
                touched[(otype, rec.id)] = rec
            self._mirror_crm(changes.records, otype, changes.deleted_ids)
            new_cursors[("crm", otype)] = changes.cursor
            self._check_cancel()
        self.progress("Reading customers from the ledger", 2, 3)
        acct_changes = self.acct.read_customers(cursors.get(("accounting", "customer")))
        self.counts["read"] += len(acct_changes.records)
        self._mirror_acct(acct_changes.records, acct_changes.deleted_ids)
        new_cursors[("accounting", "customer")] = acct_changes.cursor
        touched_acct = {c.id for c in acct_changes.records}
        self._check_cancel()

        invoice_sync = None
        if (self.settings.get("direction") or {}).get("invoice", "both") != "off" and hasattr(self.crm, "read_deals"):
            from app.sync.invoices import InvoiceSync

            invoice_sync = InvoiceSync(self)
            invoice_sync.read(cursors, new_cursors)

        # 2. Plan.
        inp = self._plan_input(touched, touched_acct, mapping, rules, direction)
        result = plan(inp)
        counts = result.counts()
        self.counts.update(counts)
        self.counts["writes"] = 0
        if self.dry_run:
            self.counts["would_write"] = result.writes
            return result
        # records already linked only: a first sync filling blanks while linking is not a mass change
        moving: list[UpdateCustomer | UpdateCrm] = [*result.updates, *result.crm_updates]
        changing = len({u.ref for u in moving if u.ref in inp.links})
        limit = mass_change_limit(len(inp.links), self.settings)
        if changing > limit and not self.allow_mass_change:
            self.counts["would_change"] = changing
            raise MassChange(changing, limit, len(inp.links))

        # 3. Apply.
        self._apply(result, inp)

        # 4. Won deals -> invoices, invoice status -> deals.
        if invoice_sync is not None:
            inv = invoice_sync.apply()
            self.counts.update({"invoices_created": inv.created, "deals_updated": inv.deals_updated,
                                "deals_held": inv.held, "items_created": inv.items_created,
                                "deals_flagged": inv.flagged, "invoices_matched": inv.matched})
            self.errors.extend(inv.errors)
        if not self.errors:
            self._save_cursors(new_cursors)
        return result

    # -- reading ------------------------------------------------------------------------------
    def _cursors(self) -> dict[tuple[str, str], str | None]:
        with self.store.session() as s:
            rows = s.scalars(select(Cursor).where(Cursor.workspace_id == self.ws_id)).all()
            return {(r.side, r.object_type): r.value for r in rows}

    def _save_cursors(self, values: dict[tuple[str, str], str | None]) -> None:
        with self.store.session() as s:
            rows = {(r.side, r.object_type): r for r in
                    s.scalars(select(Cursor).where(Cursor.workspace_id == self.ws_id)).all()}
            for (side, otype), value in values.items():
                row = rows.get((side, otype))
                if row is None:
                    s.add(Cursor(workspace_id=self.ws_id, side=side, object_type=otype, value=value))
                else:
                    row.value = value

    def _upsert_mirror(self, side: str, otype: str,
                       items: Iterable[tuple[str, dict[str, Any], str | None, bool, Any]]) -> None:
        items = list(items)
        if not items:
            return
        with self.store.session() as s:
            ids = [i[0] for i in items]
            existing = {}
            for chunk in range(0, len(ids), 500):
                existing.update({m.remote_id: m for m in s.scalars(select(Mirror).where(
                    Mirror.workspace_id == self.ws_id, Mirror.side == side, Mirror.object_type == otype,
                    Mirror.remote_id.in_(ids[chunk:chunk + 500])))})
            for rid, data, version, archived, updated in items:
                row = existing.get(rid)
                if row is None:
                    row = Mirror(workspace_id=self.ws_id, side=side, object_type=otype, remote_id=rid)
                    s.add(row)
                    existing[rid] = row
                row.data, row.version, row.archived, row.updated_at = data, version, int(archived), updated

    def _mirror_crm(self, records: list[CrmRecord], otype: str, deleted: list[str]) -> None:
        self._upsert_mirror("crm", otype, (
            (r.id, {"properties": r.properties, "company_id": r.company_id, "updated_at": _ts(r.updated_at)},
             None, r.archived, _naive(r.updated_at)) for r in records))
        if deleted:
            with self.store.session() as s:
                for m in s.scalars(select(Mirror).where(Mirror.workspace_id == self.ws_id, Mirror.side == "crm",
                                                        Mirror.object_type == otype, Mirror.remote_id.in_(deleted))):
                    m.archived = 1

    def _mirror_acct(self, customers: list[AccountingCustomer], deleted: Sequence[str] = ()) -> None:
        self._upsert_mirror("accounting", "customer", (
            (c.id, _party_data(c.party, c.raw_name), c.version, not c.active, _naive(c.updated_at))
            for c in customers))
        if deleted:
            with self.store.session() as s:
                for m in s.scalars(select(Mirror).where(
                        Mirror.workspace_id == self.ws_id, Mirror.side == "accounting",
                        Mirror.object_type == "customer", Mirror.remote_id.in_(list(deleted)))):
                    m.archived = 1

    def _plan_input(self, touched: dict[tuple[str, str], CrmRecord], touched_acct: set[str],
                    mapping: dict[str, dict[str, str]], rules: dict[str, Any], direction: Direction) -> PlanInput:
        with self.store.session() as s:
            ledger = {
                m.remote_id: AccountingCustomer(m.remote_id, _party_from(m.data), m.updated_at, not m.archived,
                                                m.version, m.data.get("raw_name"))
                for m in s.scalars(select(Mirror).where(Mirror.workspace_id == self.ws_id,
                                                        Mirror.side == "accounting", Mirror.object_type == "customer"))
            }
            links = {
                (lk.crm_type, lk.crm_id): LinkState(lk.acct_id, lk.how, lk.snapshot or {})
                for lk in s.scalars(select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "customer"))
            }
            held_rows = list(s.scalars(select(Quarantine).where(Quarantine.workspace_id == self.ws_id,
                                                                Quarantine.side == "crm")))
            quarantined = {(q.record_type, q.record_id) for q in held_rows}
            for q in held_rows:  # undone by the user (app/ops/undo.py): left alone until released
                if (q.reasons or {}).get("undone_run"):
                    touched.pop((q.record_type, q.record_id), None)
            released = [(q.record_type, q.record_id) for q in held_rows if (q.reasons or {}).get("release")]
            # CRM records linked to ledger customers that changed: plan them from the mirror.
            wanted = [ref for ref, lk in links.items() if lk.acct_id in touched_acct and ref not in touched]
            wanted += [ref for ref in released if ref not in touched]  # released after an undo: plan them again
            for otype in CRM_TYPES:
                ids = [rid for t, rid in wanted if t == otype]
                for chunk in range(0, len(ids), 500):
                    for m in s.scalars(select(Mirror).where(
                            Mirror.workspace_id == self.ws_id, Mirror.side == "crm", Mirror.object_type == otype,
                            Mirror.remote_id.in_(ids[chunk:chunk + 500]))):
                        touched[(otype, m.remote_id)] = CrmRecord(
                            otype, m.remote_id, m.data.get("properties", {}),
                            _parse_ts(m.data.get("updated_at")), bool(m.archived), m.data.get("company_id"))
            pending = self._settle_pending(s, ledger)
            held: dict[tuple[str, str], set[str]] = {}
            for c in s.scalars(select(ConflictRow).where(ConflictRow.workspace_id == self.ws_id,
                                                         ConflictRow.outcome.in_(("open", "chosen")))):
                held.setdefault((c.crm_type, c.crm_id), set()).add(c.field)
        return PlanInput(self.ws_name, touched, ledger, links, touched_acct, mapping, rules, direction,
                         quarantined, pending, held, getattr(self.acct, "party_problems", None),
                         customers_from=self.settings.get("customers_from") or "both",
                         field_directions=dict(self.settings.get("field_direction") or {}),
                         recreate={**self.undone_generations(), **{
                             ref: "+".join(filter(None, (self.undone_generations().get(ref), gen)))
                             for ref, gen in self._replanned.items()}},
                         pins={_ref_of(k): v for k, v in (self.settings.get("pinned_matches") or {}).items()},
                         inactive_names_taken=getattr(self.acct, "inactive_names_taken", True))

    def undone_generations(self) -> dict[tuple[str, str], str]:
        """CRM records a person unlinked with an undo (app/ops/undo.py), and how many times: making them
        again needs a new idempotency key, or the ledger would replay the first create's answer."""
        if getattr(self, "_undone", None) is None:
            with self.store.session() as s:
                counts: dict[tuple[str, str], int] = {}
                for row in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id,
                                                           Journal.op == "undo_unlink", Journal.status == "done")):
                    ref = (row.crm_type or "", row.crm_id or "")
                    counts[ref] = counts.get(ref, 0) + 1
            self._undone = {ref: f"undone-{n}" for ref, n in counts.items()}
        return self._undone

    def _settle_pending(self, s: Any, ledger: dict[str, AccountingCustomer]) -> dict[str, str]:
        """Creates journalled by an earlier run that never recorded an answer: were they made?

        One that was made is linked (and the planner brings it up to the record's current data); one
        that was not is planned again from the record as it is now, under a new key, so the ledger
        cannot answer it with the earlier request's outcome."""
        rows = s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id, Journal.status == "pending",
                                               Journal.op == "create_customer")).all()
        found: dict[str, str] = {}
        self._replanned = {}
        for row in rows:
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
                row.status, row.target_id = "done", hit.id
                log.info("settled an earlier create of %r: found as %s", name, hit.id)
            else:
                row.status = "failed"
                row.error = "not made; planned again"
                self._replanned[(row.crm_type or "", row.crm_id or "")] = f"replan-{row.id}"
        return found

    # -- applying -----------------------------------------------------------------------------
    def _apply(self, p: Plan, inp: PlanInput) -> None:
        created_ids: dict[str, str | None] = {}
        total = p.writes or 1
        done = 0
        batch = max(1, getattr(self.acct.limits, "batch_max", 1))

        for start in range(0, len(p.creates), batch):
            self._check_cancel()
            chunk = p.creates[start:start + batch]
            self.progress("Creating customers in the ledger", done, total)
            self._journal([(c.key, "create_customer", "accounting", c.refs[0], None,
                            {"display_name": c.display_name, "email": c.party.email, "refs": c.refs})
                           for c in chunk])
            results = self.acct.create_customers(
                [CustomerWrite(c.key, c.party, display_name=c.display_name) for c in chunk])
            recorded: list[Done] = []
            for create, res in zip(chunk, results, strict=True):
                if res.ok:
                    created_ids[create.key] = res.id
                    self.counts["writes"] += 1
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
            self._check_cancel()
            upd_chunk = updates[start:start + batch]
            self.progress("Updating customers in the ledger", done, total)
            self._journal([(u.key, "update_customer", "accounting", u.ref, u.acct_id,
                            {"changes": {f: list(v) for f, v in u.changes.items()}}) for u in upd_chunk])
            results = self.acct.update_customers(
                [CustomerWrite(u.key, u.party, id=u.acct_id, version=u.version) for u in upd_chunk])
            recorded = []
            for upd, res in zip(upd_chunk, results, strict=True):
                if not res.ok and isinstance(res.error, StaleVersion):
                    res = self._retry_stale(upd)
                if res.ok:
                    self.counts["writes"] += 1
                    recorded.append(Done(upd.key, upd.acct_id, "accounting", upd.changes, upd.rule, upd.ref,
                                         upd.crm_fields, upd.party.fields(), share_acct=upd.acct_id))
                else:
                    self._fail(upd.key, upd.ref, upd.party.name, res.error)
            self._record_done(recorded)
            done += len(upd_chunk)

        crm_batch = max(1, getattr(self.crm.limits, "batch_max", 1))
        for start in range(0, len(p.crm_updates), crm_batch):
            self._check_cancel()
            crm_chunk = p.crm_updates[start:start + crm_batch]
            self.progress("Updating records in the CRM", done, total)
            self._journal([(u.key, "update_crm", "crm", u.ref, u.ref[1],
                            {"changes": {f: list(v) for f, v in u.changes.items()}}) for u in crm_chunk])
            results = self.crm.update_records(
                [RecordWrite(u.key, cast(PartyKind, u.ref[0]), u.ref[1], u.properties) for u in crm_chunk])
            recorded = []
            for edit, res in zip(crm_chunk, results, strict=True):
                if res.ok:
                    self.counts["writes"] += 1
                    recorded.append(Done(edit.key, edit.ref[1], "crm", edit.changes, edit.rule, edit.ref,
                                         {**edit.acct_fields}, edit.acct_fields, merge_crm=True))
                else:
                    self._fail(edit.key, edit.ref, edit.ref[1], res.error)
            self._record_done(recorded)
            done += len(crm_chunk)

        if p.snapshots:
            with self.store.session() as s:
                self._set_snapshots(s, [Done("", None, "", {}, None, ref, snap["crm"], snap["acct"])
                                        for ref, snap in p.snapshots.items()])
        self._save_quarantine(p)
        self._save_conflicts(p, inp)
        self._apply_resolutions(inp)
        self.progress("Done", total, total)

    def _journal(self, entries: list[tuple[str, str, str, tuple[str, str], str | None, dict[str, Any]]]) -> None:
        with self.store.session() as s:
            for key, op, side, ref, target, payload in entries:
                s.add(Journal(workspace_id=self.ws_id, run_id=self.run_id, key=key, op=op, side=side,
                              crm_type=ref[0], crm_id=ref[1], target_id=target,
                              payload=_jsonable(payload)))

    def _record_done(self, done: list[Done]) -> None:
        """One batch of accepted writes: journal rows done, field changes and link snapshots, in one
        transaction. Until it commits, the batch's journal rows stay pending, so a crash between the
        provider's answer and here is settled by the next run, which looks them up before re-sending."""
        if not done:
            return
        with self.store.session() as s:
            keys = list({d.key for d in done})
            journals: dict[str, list[Journal]] = {}
            for start in range(0, len(keys), 500):
                for row in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id,
                                                           Journal.key.in_(keys[start:start + 500]))
                                     .order_by(Journal.id)):
                    journals.setdefault(row.key, []).append(row)
            now = utcnow()
            for d in done:
                rows = journals.get(d.key, [])
                for row in rows:
                    if row.status == "pending":
                        row.status, row.target_id, row.updated_at = "done", d.target_id, now
                self._add_changes(s, rows[0].id if rows else None, d.side, d.target_id, d.changes, d.rule)
            self._set_snapshots(s, done)

    def _set_snapshots(self, s: Any, done: list[Done]) -> None:
        """Each write's link takes what was written as last seen; shared ledger customers tell their
        other links (CRM duplicates) too. In order, as one record at a time would."""
        items = [(d.ref, d) for d in done if d.ref is not None]
        if not items:
            return
        by_ref: dict[tuple[str, str], Link] = {}
        by_acct: dict[str, list[Link]] = {}
        base = (Link.workspace_id == self.ws_id, Link.object_type == "customer")
        crm_ids = list({ref[1] for ref, _ in items})
        for start in range(0, len(crm_ids), 500):
            for row in s.scalars(select(Link).where(*base, Link.crm_id.in_(crm_ids[start:start + 500]))):
                by_ref.setdefault((row.crm_type, row.crm_id), row)
        acct_ids = list({d.share_acct for _, d in items if d.share_acct})
        for start in range(0, len(acct_ids), 500):
            for row in s.scalars(select(Link).where(*base, Link.acct_id.in_(acct_ids[start:start + 500]))):
                by_acct.setdefault(row.acct_id, []).append(row)
        now = utcnow()
        for ref, d in items:
            row = by_ref.get(ref)
            if row is not None:
                snap = dict(row.snapshot or {})
                snap["crm"] = {**snap.get("crm", {}), **(d.crm or {})} if d.merge_crm else d.crm
                snap["acct"] = d.acct
                row.snapshot = snap
                row.updated_at = now
            for other in by_acct.get(d.share_acct, []) if d.share_acct else []:
                snap = dict(other.snapshot or {})
                if snap.get("acct") != d.acct:
                    snap["acct"] = d.acct
                    other.snapshot = snap

    def _finish(self, key: str, target_id: str | None) -> None:
        with self.store.session() as s:
            for row in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id, Journal.key == key,
                                                       Journal.status == "pending")):
                row.status, row.target_id, row.updated_at = "done", target_id, utcnow()

    def _fail(self, key: str, ref: tuple[str, str], name: str, error: ConnectorError | None) -> None:
        message = error.message if error else "unknown error"
        retry = bool(error and error.retryable)
        with self.store.session() as s:
            for row in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id, Journal.key == key,
                                                       Journal.status == "pending")):
                if not retry:
                    row.status = "failed"
                row.error = message
        self.errors.append(f"{name}: {message}")
        if not retry:
            self._quarantine_one(ref, name, [{"field": getattr(error, "field", None) or "record",
                                              "message": f"The ledger refused it: {message}"}])

    def _handle_create_error(self, create: Any, error: ConnectorError | None) -> str | None:
        if isinstance(error, DuplicateName):
            # The name is taken by a customer we did not match: link if it is plainly the same
            # customer, otherwise create it under a distinguishable name.
            hits = self.acct.find_customers(name=create.display_name)
            for hit in hits:  # a ledger's name search may be looser than ours: the names must be the same
                if name_key(hit.raw_name or hit.party.name) == name_key(create.display_name) \
                        and _same_customer(hit.party, create.party):
                    self._mirror_acct([hit])
                    self._finish(create.key, hit.id)
                    return hit.id
            existing = {h.raw_name or h.party.name for h in hits}
            n = 2
            while f"{create.display_name} ({n})" in existing:
                n += 1
            name = f"{create.display_name} ({n})"
            retry = self.acct.create_customers([CustomerWrite(create.key + "-2", create.party, display_name=name)])[0]
            if retry.ok:
                self._finish(create.key, retry.id)
                self.counts["writes"] += 1
                return retry.id
            error = retry.error
        self._fail(create.key, create.refs[0], create.party.name, error)
        return None

    def _retry_stale(self, upd: Any) -> Any:
        fresh = self.acct.get_customers([upd.acct_id])
        if not fresh:
            return self.acct.update_customers([CustomerWrite(upd.key, upd.party, id=upd.acct_id)])[0]
        self._mirror_acct(fresh)
        party = fresh[0].party.with_fields({f: v[1] for f, v in upd.changes.items()})
        return self.acct.update_customers([CustomerWrite(upd.key, party, id=upd.acct_id, version=fresh[0].version)])[0]

    def _save_links(self, p: Plan, created_ids: dict[str, str | None]) -> None:
        first_ref = {c.key: c.refs[0] for c in p.creates}
        with self.store.session() as s:
            existing = {(lk.crm_type, lk.crm_id): lk for lk in s.scalars(
                select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "customer"))}
            for link in p.links:
                acct_id = link.acct_id
                how = link.how
                if acct_id.startswith("create:"):
                    made = created_ids.get(acct_id.split(":", 1)[1])
                    if made is None:
                        continue
                    acct_id = made
                    how = "created" if link.ref == first_ref.get(link.how.split(":", 1)[1]) else "duplicate"
                row = existing.get(link.ref)
                if row is None:
                    row = Link(workspace_id=self.ws_id, object_type="customer", crm_type=link.ref[0],
                               crm_id=link.ref[1], acct_id=acct_id, how=how, run_id=self.run_id)
                    s.add(row)
                    if how != "created":
                        self.counts["linked"] = self.counts.get("linked", 0)
                row.acct_id, row.how = acct_id, how
                row.snapshot = {"crm": link.crm_fields, "acct": link.acct_fields}
                row.updated_at = utcnow()
        self.counts["linked"] = sum(1 for lk in p.links if not lk.how.startswith("created"))

    def _update_snapshot(self, ref: tuple[str, str], *, crm: dict[str, Any], acct: dict[str, Any],
                         merge_crm: bool = False) -> None:
        with self.store.session() as s:
            row = s.scalars(select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "customer",
                                               Link.crm_type == ref[0], Link.crm_id == ref[1])).first()
            if row is None:
                return
            snap = dict(row.snapshot or {})
            snap["crm"] = {**snap.get("crm", {}), **crm} if merge_crm else crm
            snap["acct"] = acct
            row.snapshot = snap
            row.updated_at = utcnow()

    def _share_acct_snapshot(self, acct_id: str, acct: dict[str, Any]) -> None:
        """Other CRM records linked to the same ledger customer (CRM duplicates) take our write as
        already seen, so it does not echo back into them as a ledger-side change."""
        with self.store.session() as s:
            for row in s.scalars(select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == "customer",
                                                    Link.acct_id == acct_id)):
                snap = dict(row.snapshot or {})
                if snap.get("acct") != acct:
                    snap["acct"] = acct
                    row.snapshot = snap

    def _record_changes(self, key: str, side: str, record_id: str, changes: dict[str, Any], rule: Any) -> None:
        with self.store.session() as s:
            journal = s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id, Journal.key == key)).first()
            self._add_changes(s, journal.id if journal else None, side, record_id, changes, rule)

    def _add_changes(self, s: Any, journal_id: int | None, side: str, record_id: str | None, changes: dict[str, Any],
                     rule: Any) -> None:
        for f, (before, after) in changes.items():
            s.add(FieldChange(run_id=self.run_id, journal_id=journal_id, side=side,
                              record_id=record_id, field=f, before=_str(before), after=_str(after),
                              rule=(rule.get(f, "") if isinstance(rule, dict) else str(rule))[:40]))

    def _quarantine_one(self, ref: tuple[str, str], name: str, reasons: list[dict[str, Any]], *,
                        counted: bool = False) -> None:
        with self.store.session() as s:
            row = s.scalars(select(Quarantine).where(
                Quarantine.workspace_id == self.ws_id, Quarantine.side == "crm", Quarantine.record_type == ref[0],
                Quarantine.record_id == ref[1])).first()
            self._quarantine_row(s, row, ref, name, reasons, counted=counted)

    def _quarantine_row(self, s: Any, row: Quarantine | None, ref: tuple[str, str], name: str,
                        reasons: list[dict[str, Any]], *, counted: bool = False) -> Quarantine:
        """Hold one CRM record back; ``counted``: the plan has counted it already (once per record)."""
        if row is None:
            row = Quarantine(workspace_id=self.ws_id, side="crm", record_type=ref[0], record_id=ref[1])
            s.add(row)
            if not counted:
                self.counts["quarantined"] = self.counts.get("quarantined", 0) + 1
        row.name, row.reasons, row.run_id = safe_text(name)[:300], {"items": reasons}, self.run_id
        return row

    def _save_quarantine(self, p: Plan) -> None:
        if p.quarantined:
            with self.store.session() as s:
                rows = {(q.record_type, q.record_id): q for q in s.scalars(select(Quarantine).where(
                    Quarantine.workspace_id == self.ws_id, Quarantine.side == "crm"))}
                for q in p.quarantined:
                    rows[q.ref] = self._quarantine_row(s, rows.get(q.ref), q.ref, q.name,
                                                       [{"field": pr.field, "message": pr.message}
                                                        for pr in q.problems], counted=True)
                    if q.candidates:  # the Review page offers these to pick from
                        rows[q.ref].reasons = {**rows[q.ref].reasons, "candidates": list(q.candidates)}
        if p.released:
            with self.store.session() as s:
                for ref in p.released:
                    s.execute(delete(Quarantine).where(
                        Quarantine.workspace_id == self.ws_id, Quarantine.side == "crm",
                        Quarantine.record_type == ref[0], Quarantine.record_id == ref[1]))

    def _apply_resolutions(self, inp: PlanInput) -> None:
        """Choices made on the Review page: put the chosen value on both sides, then close."""
        with self.store.session() as s:
            chosen = list(s.scalars(select(ConflictRow).where(
                ConflictRow.workspace_id == self.ws_id, ConflictRow.outcome == "chosen",
                ConflictRow.crm_type.in_(CRM_TYPES))))
        if not chosen:
            return
        from app.sync.mapping import reverse_map

        for c in chosen:
            ref = (c.crm_type, c.crm_id)
            link = inp.links.get(ref)
            value = c.chosen_value
            if link is None:
                continue
            ledger = inp.ledger.get(link.acct_id)
            key = f"resolve-{c.id}"
            ok = True
            if ledger is not None and ledger.party.fields().get(c.field) != value:
                self._journal([(key + "-acct", "update_customer", "accounting", ref, link.acct_id,
                                {"changes": {c.field: [ledger.party.fields().get(c.field), value]}})])
                res = self.acct.update_customers([CustomerWrite(key + "-acct", ledger.party.with_fields(
                    {c.field: value}), id=link.acct_id, version=ledger.version)])[0]
                if not res.ok and isinstance(res.error, StaleVersion):
                    fresh = self.acct.get_customers([link.acct_id])
                    if fresh:
                        res = self.acct.update_customers([CustomerWrite(key + "-acct", fresh[0].party.with_fields(
                            {c.field: value}), id=link.acct_id, version=fresh[0].version)])[0]
                if res.ok:
                    self._finish(key + "-acct", link.acct_id)
                    self.counts["writes"] += 1
                    self._record_changes(key + "-acct", "accounting", link.acct_id,
                                         {c.field: (ledger.party.fields().get(c.field), value)}, "review")
                else:
                    ok = False
                    self._fail(key + "-acct", ref, c.crm_value or c.crm_id, res.error)
            crm_value = link.snapshot.get("crm", {}).get(c.field)
            record = inp.crm_records.get(ref)
            if record is not None:
                from app.sync.mapping import map_record

                crm_value = map_record(record, inp.mapping).fields().get(c.field)
            props = reverse_map({c.field: value}, c.crm_type, inp.mapping)
            crm_after = value if props else crm_value  # a field we cannot write back stays as the CRM has it
            if ok and props and crm_value != value:
                self._journal([(key + "-crm", "update_crm", "crm", ref, c.crm_id,
                                {"changes": {c.field: [crm_value, value]}})])
                res = self.crm.update_records(
                    [RecordWrite(key + "-crm", cast(PartyKind, c.crm_type), c.crm_id, props)])[0]
                if res.ok:
                    self._finish(key + "-crm", c.crm_id)
                    self.counts["writes"] += 1
                    self._record_changes(key + "-crm", "crm", c.crm_id, {c.field: (crm_value, value)}, "review")
                else:
                    ok = False
                    self._fail(key + "-crm", ref, c.crm_value or c.crm_id, res.error)
            if ok:
                snap_crm = {**link.snapshot.get("crm", {}), c.field: crm_after}
                snap_acct = {**link.snapshot.get("acct", {}), c.field: value}
                self._update_snapshot(ref, crm=snap_crm, acct=snap_acct)
                with self.store.session() as s:
                    row = s.get(ConflictRow, c.id)
                    assert row is not None  # read at the start of this step
                    row.outcome, row.applied_at = "resolved", utcnow()
                    row.resolved_at = row.resolved_at or utcnow()

    def _save_conflicts(self, p: Plan, inp: PlanInput) -> None:
        if not p.conflicts:
            return
        with self.store.session() as s:
            for c in p.conflicts:
                s.add(ConflictRow(workspace_id=self.ws_id, crm_type=c.ref[0], crm_id=c.ref[1], acct_id=c.acct_id,
                                  field=c.field, crm_value=_str(c.crm_value), acct_value=_str(c.acct_value),
                                  base_value=_str(c.base_value), rule=c.rule, outcome=c.outcome,
                                  run_id=self.run_id))


def _same_customer(a: Party, b: Party) -> bool:
    """A name clash is the same customer when nothing that identifies them disagrees."""
    for left, right in ((normalise_email(a.email), normalise_email(b.email)),
                        (compact_tax_id(a.tax_id), compact_tax_id(b.tax_id))):
        if left and right and left != right:
            return False
    return True


def _str(value: Any) -> str | None:
    return None if value is None else safe_text(str(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _naive(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def _parse_ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None
