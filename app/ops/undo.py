"""Undo a sync run from its journal (issue 14). Plain Python, no Qt; the CLI and the Activity page call it.

What an undo does, and what it leaves alone:
- a field the run updated goes back to what it held before, only where the target (read from the
  provider now, not from the mirror) still holds what the run wrote; otherwise it is refused;
- customers the run created are made inactive / archived (never deleted), unless an invoice that
  stays (sent, paid, or made later) still needs them;
- invoices the run created are voided only while unpaid and unsent. Xero and Zoho Books know drafts
  and a "sent" flag; QuickBooks has no drafts, so there an invoice counts as sent once its
  EmailStatus is EmailSent, and as paid once any payment is applied (Balance below Total);
- the links the run made are removed, and the CRM records behind them are held back (a Quarantine
  row marked ``undone_run``) so the next sync does not create or link them again; the user lifts
  that with :func:`release_undone` and the following sync makes them again;
- products, invoice line edits and payment details copied to deals are listed as refusals.

The undo is itself a run (``Run.trigger == "undo"``, ``counts["undo_of"]``) with a Journal row per
write, committed before it is sent, under a key derived from the run undone and the step. A second
attempt after a crash finds those keys: a step whose target already holds the undone value is
marked done without writing again.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from app.connectors.errors import ConnectorError
from app.connectors.tokens import TokenStore
from app.domain.settings import settings_of
from app.ops import changes
from app.ops.undo_apply import UndoApplier
from app.ops.undo_model import (
    Action,
    PlannedUndo,
    Progress,
    UndoError,
    UndoPlan,
    UndoRefusal,
    UndoResult,
    UndoStep,
    as_text,
    day_text,
    provider_label,
    same_value,
)
from app.ops.workspaces import UserError, get_workspace, open_connectors
from app.store.db import Store
from app.store.models import FieldChange, Journal, Link, Mirror, Quarantine, Run, Workspace
from app.sync.mapping import map_record, reverse_map
from app.sync.run_context import RunContext

__all__ = ["UndoError", "UndoPlan", "UndoRefusal", "UndoResult", "UndoStep", "apply_undo", "held_by_undo",
           "plan_undo", "release_undone", "undoable_runs", "workspace_of_run"]


def _undo_runs(s: Any, ws_id: int) -> list[Run]:
    return list(s.scalars(select(Run).where(Run.workspace_id == ws_id, Run.trigger == "undo")))


def _undone_by(s: Any, ws_id: int, run_id: int) -> Run | None:
    for r in _undo_runs(s, ws_id):
        if (r.counts or {}).get("undo_of") == run_id and r.status == "ok":
            return r
    return None


def undoable_runs(store: Store, workspace: str) -> list[int]:
    """Run ids (newest first) that wrote something and were not undone yet."""
    with store.session() as s:
        ws = s.scalars(select(Workspace).where(Workspace.name == workspace)).first()
        if ws is None:
            return []
        undone = {(r.counts or {}).get("undo_of") for r in _undo_runs(s, ws.id) if r.status == "ok"}
        wrote = set(s.scalars(select(Journal.run_id).where(Journal.workspace_id == ws.id,
                                                           Journal.status == "done")))
        linked = set(s.scalars(select(Link.run_id).where(Link.workspace_id == ws.id)))
        runs = s.scalars(select(Run).where(Run.workspace_id == ws.id, Run.trigger != "undo", Run.dry_run == 0,
                                           Run.status != "running").order_by(Run.id.desc()))
        return [r.id for r in runs if r.id not in undone and (r.id in wrote or r.id in linked)]


def _check(store: Store, workspace: str | None, run_id: int) -> tuple[Any, Run]:
    """The workspace and run, or UndoError saying why this run cannot be undone."""
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise UndoError(f"There is no run {run_id}. 'crossledger status --json' lists the recent runs.")
        ws_row = s.get(Workspace, run.workspace_id)
        if workspace is not None and ws_row.name != workspace:
            raise UndoError(f"Run {run_id} belongs to workspace '{ws_row.name}', not '{workspace}'.")
        if run.trigger == "undo":
            raise UndoError(f"Run {run_id} is itself an undo. Sync again to put those changes back.")
        if run.dry_run:
            raise UndoError(f"Run {run_id} was a dry run and changed nothing, so there is nothing to undo.")
        if run.status == "running":
            raise UndoError(f"Run {run_id} has not finished yet. Undo it once it has ended.")
        done = _undone_by(s, ws_row.id, run_id)
        if done is not None:
            raise UndoError(f"Run {run_id} was already undone on {day_text(done.started_at)} (undo run {done.id}).")
        s.expunge(run)
    return get_workspace(store, ws_row.name), run


def _summary(run: Run, ops: dict[str, int]) -> str:
    kind = "Sync" if run.trigger != "migration" else "Migration"
    parts = []
    for op, one, many in (("create_customer", "customer created", "customers created"),
                          ("create_invoice", "invoice created", "invoices created"),
                          ("fields", "field update", "field updates"), ("links", "link made", "links made")):
        if ops.get(op):
            parts.append(f"{ops[op]} {one if ops[op] == 1 else many}")
    return (f"{kind} of {day_text(run.started_at)} {run.started_at:%H:%M} ({run.trigger}): "
            + (", ".join(parts) or "no changes"))


class _Planner:
    def __init__(self, store: Store, ws: Any, run: Run, crm: Any, acct: Any) -> None:
        self.store, self.ws, self.run, self.crm, self.acct = store, ws, run, crm, acct
        self.crm_name = provider_label(ws.crm)
        self.acct_name = provider_label(ws.accounting)
        self.actions: list[Action] = []
        self.refusals: list[UndoRefusal] = []
        self._deal_props: dict[str, dict[str, Any]] | None = None  # the CRM's deals, read once when needed

    def key(self, kind: str, record_id: str, fld: str | None = None) -> str:
        return f"undo-{self.run.id}-{kind}-{record_id}" + (f"-{fld}" if fld else "")

    def refuse(self, record_type: str, record_id: str, label: str, reason: str, fld: str | None = None) -> None:
        self.refusals.append(UndoRefusal(record_type, record_id, label, fld, reason))

    def add(self, step: UndoStep, do: dict[str, Any], after: str | None = None, settled: bool = False) -> str:
        key = self.key(step.kind, f"{step.record_type}:{step.record_id}", step.field)
        self.actions.append(Action(step, key, do, after, settled))
        return key

    def tried(self, kind: str, record_type: str, record_id: str, fld: str | None = None) -> bool:
        return self.key(kind, f"{record_type}:{record_id}", fld) in self.prior

    # -- reading the journal ----------------------------------------------------------------------
    def load(self) -> None:
        ws_id, run_id = self.ws.id, self.run.id
        with self.store.session() as s:
            self.journal = list(s.scalars(select(Journal).where(Journal.run_id == run_id, Journal.status == "done")
                                          .order_by(Journal.id)))
            self.changes = list(s.scalars(select(FieldChange).where(FieldChange.run_id == run_id)
                                          .order_by(FieldChange.id)))
            self.links = list(s.scalars(select(Link).where(Link.workspace_id == ws_id, Link.run_id == run_id)))
            prefix = f"undo-{run_id}-"
            self.prior = {j.key: j.status for j in s.scalars(select(Journal).where(
                Journal.workspace_id == ws_id, Journal.key.like(prefix + "%")))}
            mirror = list(s.scalars(select(Mirror).where(Mirror.workspace_id == ws_id)))
            self.settings = settings_of(s.get(Workspace, ws_id))
            for row in (*self.journal, *self.changes, *self.links, *mirror):
                s.expunge(row)
        self.names: dict[tuple[str, str, str], str] = {}
        self.invoice_rows: dict[str, dict] = {}
        for m in mirror:
            data = m.data or {}
            name = data.get("raw_name") or data.get("name") or ""
            if m.side == "crm" and not name:
                props = data.get("properties") or {}
                name = props.get("name") or props.get("Name") or " ".join(
                    str(props[k]) for k in ("firstname", "lastname") if props.get(k)) or ""
            self.names[(m.side, m.object_type, m.remote_id)] = name
            if m.side == "accounting" and m.object_type == "invoice":
                self.invoice_rows[m.remote_id] = data

    def name(self, side: str, otype: str, rid: str, fallback: str | None = None) -> str:
        return self.names.get((side, otype, rid)) or fallback or f"{otype} {rid}"

    # -- the plan ---------------------------------------------------------------------------------
    def plan(self) -> PlannedUndo:
        self.load()
        ops: dict[str, int] = {}
        for j in self.journal:
            ops[j.op] = ops.get(j.op, 0) + 1
        ops["fields"] = sum(1 for c in self.changes if c.rule.partition("+")[0] != "created")
        ops["links"] = sum(1 for lk in self.links if lk.how not in ("created",) and lk.object_type == "customer")
        kept_customers = self._invoices()
        created = self._customers(kept_customers)
        self._customer_fields(created)
        self._crm_fields()
        self._matched_links(created)
        self._other_ops()
        return PlannedUndo(self.ws.id, self.ws.name, self.run.id, _summary(self.run, ops), self.actions, self.refusals)

    def _invoices(self) -> dict[str, str]:
        """Invoices the run created: void or refuse. Returns customer id -> why it must stay active."""
        kept: dict[str, str] = {}
        made = [j for j in self.journal if j.op == "create_invoice" and j.target_id]
        if not made:
            return kept
        states = {st.invoice.id: st for st in self.acct.get_invoice_states([j.target_id for j in made])}
        invoice_links = {lk.acct_id: lk for lk in self.links if lk.object_type == "invoice"}
        deal_writes = {}
        for j in self.journal:
            if j.op == "update_deal" and j.crm_id:
                deal_writes.setdefault(j.crm_id, []).append(j)
        for j in made:
            deal_id = j.crm_id or ""
            deal = self.name("crm", "deal", deal_id, f"deal {deal_id}")
            st = states.get(j.target_id)
            number = (st.invoice.number if st else None) or (self.invoice_rows.get(j.target_id) or {}).get("number")
            label = f"Invoice {number}" if number else f"The invoice for {deal}"
            link = invoice_links.get(j.target_id)
            reason = None
            if st is None:
                reason = f"{label} is no longer in {self.acct_name}, so there is nothing to void."
            elif st.invoice.status == "void":
                if self.tried("void_invoice", "invoice", j.target_id):
                    void_key = self.add(self._void_step(j.target_id, label, deal, "void"), {"invoice_id": j.target_id},
                                        settled=True)
                    self._unlink_deal(link, deal, void_key)
                    if deal_id in deal_writes:
                        self._deal_fields(deal_id, deal, deal_writes[deal_id], void_key)
                    continue
                reason = f"{label} is already void in {self.acct_name}; nothing to do."
            elif (st.invoice.amount_paid or 0) > 0 or st.invoice.status in ("paid", "partly_paid"):
                reason = (f"{label} has a payment recorded, so it stays. Remove the payment and void the invoice "
                          f"in {self.acct_name} if it is wrong.")
            elif st.sent:
                reason = (f"{label} has been sent to the customer, so it stays. Void it in {self.acct_name} if it "
                          "is wrong.")
            if reason:
                self.refuse("invoice", j.target_id, label, reason)
                if st is not None and st.invoice.status != "void":
                    kept.setdefault(st.invoice.customer_id, label)
                if deal_id in deal_writes and st is not None and st.invoice.status != "void":
                    self.refuse("deal", deal_id, deal, f"The invoice details on {deal} stay, because {label} "
                                                       "stays.")
                continue
            void_key = self.add(self._void_step(j.target_id, label, deal, st.invoice.status or ""),
                                {"invoice_id": j.target_id, "version": st.version})
            self._unlink_deal(link, deal, void_key)
            if deal_id in deal_writes:
                self._deal_fields(deal_id, deal, deal_writes[deal_id], void_key)
        return kept

    def _void_step(self, invoice_id: str, label: str, deal: str, status: str) -> UndoStep:
        return UndoStep("void_invoice", "accounting", "invoice", invoice_id, label, None, status, "void",
                        f"Void {label} (made for {deal}) in {self.acct_name}")

    def _unlink_deal(self, link: Link | None, deal: str, after: str) -> None:
        if link is None:
            return
        self.add(UndoStep("unlink", "local", "link", str(link.id), deal, None, None, None,
                          f"Forget that {deal} was invoiced, and hold the deal back from the next syncs"),
                 {"link_id": link.id, "hold": ("deal", link.crm_id, deal)}, after=after,
                 settled=self.tried("unlink", "link", str(link.id)) and self.prior.get(
                     self.key("unlink", f"link:{link.id}")) == "done")

    def _deal_fields(self, deal_id: str, deal: str, writes: list[Journal], after: str) -> None:
        """Invoice details the run wrote on the deal: cleared back to what they were, where unchanged."""
        ids = {j.id for j in writes}
        changes = _net([c for c in self.changes if c.journal_id in ids])
        if not changes:
            return
        field_map = dict(self.settings.deal_fields)
        current_props = self._deals_now().get(deal_id)
        for fname, (before, wrote) in changes.items():
            key = field_map.get(fname)
            words = fname.replace("crossledger_", "").replace("_", " ")
            if current_props is None or key is None or key not in current_props:
                self.refuse("deal", deal_id, deal, f"The {words} on {deal} could not be read back from "
                                                   f"{self.crm_name}, so it is left as it is. Clear it there.", fname)
                continue
            now = as_text(current_props.get(key))
            now = None if now == "" else now
            if self.tried("restore_field", "deal", deal_id, fname) and same_value(now, before):
                self.add(self._restore_step("crm", "deal", deal_id, deal, fname, now, before), {}, settled=True)
            elif same_value(now, wrote):
                self.add(self._restore_step("crm", "deal", deal_id, deal, fname, now, before),
                         {"deal": deal_id, "props": {key: before if before is not None else ""}}, after=after)
            else:
                self.refuse("deal", deal_id, deal, f"The {words} on {deal} changed again since, so it stays.", fname)

    def _deals_now(self) -> dict[str, dict[str, Any]]:
        """Every deal's properties as the CRM holds them now, read once per plan (not once per invoice);
        empty when the CRM could not be read, so each field is then refused with its reason."""
        if self._deal_props is None:
            try:
                self._deal_props = {d.id: dict(d.properties or {}) for d in self.crm.read_deals(None).records}
            except ConnectorError:
                self._deal_props = {}
        return self._deal_props

    def _customers(self, kept: dict[str, str]) -> set[str]:
        """Customers the run created: deactivate, or refuse. Returns the ids being deactivated."""
        made = [j for j in self.journal if j.op == "create_customer" and j.target_id]
        out: set[str] = set()
        if not made:
            return out
        current = {c.id: c for c in self.acct.get_customers([j.target_id for j in made])}
        voided = {a.do.get("invoice_id") for a in self.actions if a.step.kind == "void_invoice"}
        later: dict[str, str] = {}
        for inv_id, row in self.invoice_rows.items():
            if inv_id not in voided and row.get("customer_id") and row.get("status") != "void":
                later.setdefault(row["customer_id"], f"Invoice {row.get('number') or inv_id}")
        customer_links = [lk for lk in self.links if lk.object_type == "customer"]
        for j in made:
            cid = j.target_id
            cust = current.get(cid)
            label = (cust.raw_name or cust.party.name) if cust else self.name("accounting", "customer", cid,
                                                                               j.payload.get("display_name"))
            links = [lk for lk in customer_links if lk.acct_id == cid]
            reason = None
            if cust is None:
                reason = f"{label} is no longer in {self.acct_name}."
            elif not cust.active and not self.tried("deactivate_customer", "customer", cid):
                reason = f"{label} is already inactive in {self.acct_name}; nothing to do."
            elif cid in kept:
                reason = f"{label} stays active, because {kept[cid]} stays."
            elif cid in later:
                reason = (f"{label} has {later[cid]}, which this run did not make, so it stays active. "
                          f"Make it inactive in {self.acct_name} if it is not needed.")
            if reason:
                self.refuse("customer", cid, label, reason)
                for lk in links:
                    self.refuse("link", str(lk.id), self._crm_label(lk), f"The link to {label} stays, because "
                                                                           f"{label} stays.")
                continue
            out.add(cid)
            step = UndoStep("deactivate_customer", "accounting", "customer", cid, label, None, "active", "inactive",
                            f"Make {label} inactive in {self.acct_name} (it is kept, not deleted)")
            key = self.add(step, {"customer_id": cid}, settled=not cust.active)
            for lk in links:
                self._unlink(lk, key, label)
        return out

    def _crm_label(self, lk: Link) -> str:
        return ((lk.snapshot or {}).get("crm") or {}).get("name") or self.name("crm", lk.crm_type, lk.crm_id)

    def _unlink(self, lk: Link, after: str | None, acct: str | None = None) -> None:
        label = self._crm_label(lk)
        acct = acct or self.name("accounting", "customer", lk.acct_id, label)
        done = self.prior.get(self.key("unlink", f"link:{lk.id}")) == "done"
        self.add(UndoStep("unlink", "local", "link", str(lk.id), label, None, None, None,
                          f"Unlink {label} in {self.crm_name} from {acct} in {self.acct_name}, and hold "
                          f"{label} back from the next syncs"),
                 {"link_id": lk.id, "hold": (lk.crm_type, lk.crm_id, label)}, after=after, settled=done)

    def _matched_links(self, created: set[str]) -> None:
        for lk in self.links:
            if lk.object_type == "customer" and lk.acct_id not in created and lk.how != "created" \
                    and not any(r.record_type == "link" and r.record_id == str(lk.id) for r in self.refusals):
                self._unlink(lk, None)

    def _restore_step(self, side: str, rtype: str, rid: str, label: str, fld: str, now: str | None,
                      before: str | None) -> UndoStep:
        where = self.acct_name if side == "accounting" else self.crm_name
        words = fld.replace("crossledger_", "").replace("_", " ")
        target = f"back to {before}" if before not in (None, "") else "back to blank"
        return UndoStep("restore_field", side, rtype, rid, label, fld, now, before,
                        f"Put {words} on {label} in {where} {target}")

    def _customer_fields(self, created: set[str]) -> None:
        ids = {j.id for j in self.journal if j.op == "update_customer" and j.target_id not in created}
        per: dict[str, dict[str, tuple[str | None, str | None]]] = {}
        for c in self.changes:
            if c.side == "accounting" and c.journal_id in ids:
                per.setdefault(c.record_id, {})
        for rid in per:
            per[rid] = _net([c for c in self.changes if c.side == "accounting" and c.journal_id in ids
                             and c.record_id == rid])
        if not per:
            return
        current = {c.id: c for c in self.acct.get_customers(list(per))}
        for rid, fields in per.items():
            cust = current.get(rid)
            label = (cust.raw_name or cust.party.name) if cust else self.name("accounting", "customer", rid)
            for fld, (before, wrote) in fields.items():
                if cust is None:
                    self.refuse("customer", rid, label, f"{label} is no longer in {self.acct_name}.", fld)
                    continue
                now = as_text(cust.party.fields().get(fld))
                step = self._restore_step("accounting", "customer", rid, label, fld, now, before)
                if same_value(now, before) and self.tried("restore_field", "customer", rid, fld):
                    self.add(step, {}, settled=True)
                elif same_value(now, wrote):
                    self.add(step, {"customer_id": rid, "field": fld, "value": before})
                else:
                    self.refuse("customer", rid, label, _changed(fld, label, self.acct_name, now), fld)

    def _crm_fields(self) -> None:
        jobs = {j.id: j for j in self.journal if j.op == "update_crm" and j.crm_id}
        per: dict[tuple[str, str], list[FieldChange]] = {}
        for c in self.changes:
            if c.side == "crm" and c.journal_id in jobs:
                j = jobs[c.journal_id]
                per.setdefault((j.crm_type or "company", c.record_id), []).append(c)
        if not per:
            return
        mapping = self.settings.mapping_or(self.crm.default_mapping())
        current: dict[tuple[str, str], dict[str, Any]] = {}
        for otype in {t for t, _ in per}:
            for rec in self.crm.get_records(otype, [rid for t, rid in per if t == otype]):
                current[(otype, rec.id)] = map_record(rec, mapping).fields()
        for (otype, rid), rows in per.items():
            fields = _net(rows)
            now_fields = current.get((otype, rid))
            label = (now_fields or {}).get("name") or self.name("crm", otype, rid)
            for fld, (before, wrote) in fields.items():
                if now_fields is None:
                    self.refuse(otype, rid, label, f"{label} is no longer in {self.crm_name}.", fld)
                    continue
                now = as_text(now_fields.get(fld))
                props = reverse_map({fld: before}, otype, mapping)
                step = self._restore_step("crm", otype, rid, label, fld, now, before)
                if same_value(now, before) and self.tried("restore_field", otype, rid, fld):
                    self.add(step, {}, settled=True)
                elif not props:
                    self.refuse(otype, rid, label, f"Crossledger does not write {fld.replace('_', ' ')} back to "
                                                   f"{self.crm_name}; change it there if needed.", fld)
                elif same_value(now, wrote):
                    self.add(step, {"crm_type": otype, "crm_id": rid, "field": fld, "props": props})
                else:
                    self.refuse(otype, rid, label, _changed(fld, label, self.crm_name, now), fld)

    def _other_ops(self) -> None:
        invoices_made = {j.crm_id for j in self.journal if j.op == "create_invoice"}
        for j in self.journal:
            if j.op == "create_item":
                name = j.payload.get("name") or j.target_id or "a product"
                self.refuse("item", j.target_id or "", name,
                            f"The product {name} stays in {self.acct_name}: other invoices may use it. "
                            "Make it inactive there if it is not needed.")
            elif j.op == "update_invoice":
                label = self.name("crm", "deal", j.crm_id or "", f"deal {j.crm_id}")
                self.refuse("invoice", j.target_id or "", f"The invoice for {label}",
                            f"The new lines on the invoice for {label} stay: Crossledger does not keep the old "
                            f"lines. Edit the invoice in {self.acct_name} if needed.")
            elif j.op == "void_invoice":
                label = self.name("crm", "deal", j.crm_id or "", f"deal {j.crm_id}")
                self.refuse("invoice", j.target_id or "", f"The invoice for {label}",
                            f"The invoice for {label} stays void: {self.acct_name} cannot make a voided invoice "
                            "valid again. If the deal is won again, the next sync invoices it anew.")
            elif j.op == "credit_note":
                label = self.name("crm", "deal", j.crm_id or "", f"deal {j.crm_id}")
                amount = j.payload.get("amount")
                self.refuse("credit_note", j.target_id or "", f"The credit note for {label}",
                            f"The credit note{f' of {amount}' if amount else ''} for {label} stays: it may already "
                            f"be applied or sent. Void it in {self.acct_name} if it was not wanted.")
            elif j.op == "update_deal" and j.crm_id not in invoices_made:
                label = self.name("crm", "deal", j.crm_id or "", f"deal {j.crm_id}")
                if not any(r.record_type == "deal" and r.record_id == j.crm_id for r in self.refusals):
                    self.refuse("deal", j.crm_id or "", label,
                                f"The payment details on {label} copy the invoice in {self.acct_name}, so they "
                                "stay as the ledger has them.")


def _net(rows: list[FieldChange]) -> dict[str, tuple[str | None, str | None]]:
    """Per field: what it held before the run's first write and what its last write left."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for c in rows:
        before = out[c.field][0] if c.field in out else c.before
        out[c.field] = (before, c.after)
    return out


def _changed(fld: str, label: str, where: str, now: str | None) -> str:
    words = fld.replace("_", " ")
    shown = f"'{now}'" if now not in (None, "") else "blank"
    return f"The {words} on {label} was changed again in {where} since (it is now {shown}), so it stays."


# -- public API -------------------------------------------------------------------------------------
def plan_undo(store: Store, tokens: TokenStore, workspace: str, run_id: int) -> UndoPlan:
    """What undoing the run would do and leave alone; reads both providers, writes nothing."""
    ws, run = _checked(store, workspace, run_id)
    crm, acct = open_connectors(store, tokens, ws)
    try:
        return _Planner(store, ws, run, crm, acct).plan().public()
    except ConnectorError as exc:
        raise UndoError(f"Could not read the current records: {exc.message}") from exc
    finally:
        crm.close()
        acct.close()


def _checked(store: Store, workspace: str | None, run_id: int) -> tuple[Any, Run]:
    try:
        return _check(store, workspace, run_id)
    except UserError as exc:
        raise UndoError(str(exc)) from exc


def workspace_of_run(store: Store, run_id: int) -> str:
    with store.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise UndoError(f"There is no run {run_id}. 'crossledger status --json' lists the recent runs.")
        return s.get(Workspace, run.workspace_id).name


def apply_undo(store: Store, tokens: TokenStore, workspace: str, run_id: int, *,
               progress: Progress | None = None, cancel: threading.Event | None = None) -> UndoResult:
    """Undo the run as planned now, as its own journalled run. Resumes an attempt that stopped."""
    ws, run = _checked(store, workspace, run_id)
    ctx = RunContext(store, ws.id, trigger="undo", progress=progress, cancel=cancel)
    ctx.load()
    if not ctx.acquire():  # holding the lease, a run still "running" here was killed: marked interrupted
        raise UndoError(f"A sync (or another undo) of '{ws.name}' is running. Undo the run when it has "
                        "finished.")
    try:
        ws, run = _checked(store, workspace, run_id)  # again, holding the lease: it may just have been undone
        crm, acct = open_connectors(store, tokens, ws)
        try:
            return UndoApplier(ctx, ws, run, crm, acct, _Planner(store, ws, run, crm, acct).plan).run()
        finally:
            crm.close()
            acct.close()
    finally:
        ctx.release()
        changes.announce(store, ws.id, changes.UNDO)


def held_by_undo(store: Store, workspace: str) -> list[tuple[str, str, str]]:
    """CRM records an undo holds back: (record type, record id, name)."""
    with store.session() as s:
        ws = s.scalars(select(Workspace).where(Workspace.name == workspace)).first()
        if ws is None:
            return []
        return [(q.record_type, q.record_id, q.name) for q in s.scalars(select(Quarantine).where(
            Quarantine.workspace_id == ws.id, Quarantine.side == "crm")) if (q.reasons or {}).get("undone_run")]


def release_undone(store: Store, workspace: str, record_type: str, record_id: str) -> bool:
    """Lift an undo's hold on a CRM record: the next sync creates or links (or invoices) it again,
    without waiting for the record to change, and then drops the hold."""
    with store.session() as s:
        ws = s.scalars(select(Workspace).where(Workspace.name == workspace)).first()
        if ws is None:
            return False
        for q in s.scalars(select(Quarantine).where(Quarantine.workspace_id == ws.id, Quarantine.side == "crm",
                                                    Quarantine.record_type == record_type,
                                                    Quarantine.record_id == record_id)):
            if (q.reasons or {}).get("undone_run"):
                q.reasons = {"items": [{"field": "undo", "message": "Released by you: the next sync makes it "
                                                                     "again."}], "release": True}
                released = ws.id
                break
        else:
            return False
    changes.announce(store, released, changes.RELEASE)
    return True
