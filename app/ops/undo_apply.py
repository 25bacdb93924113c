"""Applying an undo: the planned steps, in order, each journalled before it is sent, as a run of its own.

The lease, the run record, the journal, progress and cancel are the undo's ``RunContext``, as for a sync.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from app.connectors.base import CustomerWrite, RecordWrite
from app.connectors.errors import ConnectorError
from app.domain.text import plural
from app.ops.undo_model import Action, PlannedUndo, UndoResult, as_text, day_text, same_value
from app.store.models import FieldChange, Journal, Link, Quarantine, Run, utcnow
from app.sync.run_context import RunContext

UNEXPECTED = "The undo stopped unexpectedly. Run it again: it picks up where it stopped without repeating a change."


class UndoApplier:
    """One undo of ``run``, in ``ctx`` (which holds the workspace's lease): ``planner`` plans it afresh
    from the providers as they are now, then each step is sent."""

    def __init__(self, ctx: RunContext, ws: Any, run: Run, crm: Any, acct: Any,
                 planner: Callable[[], PlannedUndo]) -> None:
        self.ctx, self.store, self.ws, self.target, self.crm, self.acct = ctx, ctx.store, ws, run, crm, acct
        self.planner = planner
        self.progress = ctx.progress
        ctx.counts.update({"undo_of": run.id, "restored": 0, "deactivated": 0, "voided": 0, "unlinked": 0,
                           "refused": 0, "failed": 0, "writes": 0})
        self.counts = ctx.counts
        self.errors = ctx.errors

    def run(self) -> UndoResult:
        self.undo_id = self.ctx.start()
        planned: list[PlannedUndo] = []

        def plan_and_apply() -> None:
            self.progress("Reading the current values on both sides again", 0, 0)  # before the first change
            planned.append(self.planner())
            self.counts["refused"] = len(planned[0].refusals)
            self._apply(planned[0])

        try:
            status, _ = self.ctx.attempt(plan_and_apply)
        except Exception:
            self._finish_run("failed", UNEXPECTED)
            raise
        failed = self.counts["failed"]
        done = self.counts["restored"] + self.counts["deactivated"] + self.counts["voided"] + self.counts["unlinked"]
        if status == "ok" and failed:
            status = "partial" if done else "failed"
        message = self._message(status, done, failed, planned[0] if planned else None)
        self._finish_run(status, message)
        return UndoResult(self.undo_id, status, done, self.counts["refused"], failed, message, list(self.errors))

    def _message(self, status: str, done: int, failed: int, plan: PlannedUndo | None) -> str:
        refused = self.counts["refused"]
        if status == "cancelled":
            return (f"Undo of run {self.target.id} stopped when you cancelled it after {plural(done, 'change')}. "
                    "Undo it again to finish.")
        if status == "failed" and not done:
            first = self.errors[0] if self.errors else "nothing could be changed"
            return f"Undo of run {self.target.id} changed nothing: {first}. Check the connections and try again."
        text = f"Undid run {self.target.id}: {plural(done, 'change')} reversed"
        if refused:
            text += f", {refused} left as they are (see the reasons)"
        if failed:
            text += f", {failed} could not be reversed; undo the run again to retry them"
        return text + "."

    def _finish_run(self, status: str, message: str) -> None:
        self.ctx.close(status, message="\n".join([message, *self.errors[:50]]))

    # -- applying ------------------------------------------------------------------------------------
    def _apply(self, plan: PlannedUndo) -> int:
        order = {"void_invoice": 0, "restore_field": 1, "deactivate_customer": 2, "unlink": 3}
        actions = sorted(plan.actions, key=lambda a: order[a.step.kind])
        ok: set[str] = set()
        total = len(actions) or 1
        for n, a in enumerate(actions):
            self.ctx.check_cancel()
            self.progress(a.step.description, n, total)
            if a.after is not None and a.after not in ok:
                self.counts["failed"] += 1
                self.errors.append(f"{a.step.label}: left linked, because the change it depends on failed.")
                continue
            if a.settled:
                self._settle(a)
                ok.add(a.key)
                self._count(a)
                continue
            self._journal(a)
            error = self._send(a)
            if error is None:
                ok.add(a.key)
                self._count(a)
                self._done(a)
            else:
                self.counts["failed"] += 1
                self.errors.append(f"{a.step.label}: {error}")
                self.ctx.journal.mark(a.key, "failed", run_id=self.undo_id, pending_only=False, error=error,
                                      touch=True)
        self.progress("Done", total, total)
        return len(ok)

    def _count(self, a: Action) -> None:
        kind = a.step.kind
        name = {"restore_field": "restored", "deactivate_customer": "deactivated", "void_invoice": "voided",
                "unlink": "unlinked"}[kind]
        self.counts[name] += 1
        if kind != "unlink" and not a.settled:
            self.counts["writes"] += 1

    def _journal(self, a: Action) -> None:
        st = a.step
        crm_type = a.do.get("crm_type") or ("deal" if st.record_type == "deal" else None)
        crm_id = a.do.get("crm_id") or a.do.get("deal")
        if st.kind == "unlink":  # the CRM record unlinked (the sync makes it again under a new key)
            crm_type, crm_id = a.do["hold"][0], a.do["hold"][1]
        self.ctx.journal_writes([(a.key, f"undo_{st.kind}", st.side, (crm_type, crm_id), st.record_id,
                                  {"undo_of": self.target.id, "field": st.field, "from": st.current,
                                   "to": st.restore_to})])

    def _settle(self, a: Action) -> None:
        """An earlier attempt made this change but stopped before recording it: record it, write nothing."""
        rows = self.ctx.journal.by_key(a.key)
        if not rows:
            return
        self.ctx.journal.mark(a.key, "done", pending_only=False, clear_error=True, touch=True, unless="done")
        if a.step.kind == "unlink":
            return
        if a.step.kind == "restore_field":
            self._after_restore(a)
        self._field_change(a, rows[-1].id)

    def _send(self, a: Action) -> str | None:
        st, do = a.step, a.do
        try:
            if st.kind == "void_invoice":
                res = self.acct.void_invoice(do["invoice_id"], do.get("version"))
                return None if res.ok else res.error.message
            if st.kind == "deactivate_customer":
                res = self.acct.deactivate_customer(do["customer_id"])
                return None if res.ok else res.error.message
            if st.kind == "restore_field" and st.side == "accounting":
                fresh = self.acct.get_customers([do["customer_id"]])
                if not fresh:
                    return "it is no longer in the ledger"
                cust = fresh[0]
                if not same_value(as_text(cust.party.fields().get(do["field"])), st.current):
                    return "it was changed again a moment ago, so it was left as it is"
                party = cust.party.with_fields({do["field"]: do["value"]})
                name = (do["value"] or cust.party.name) if do["field"] == "name" else cust.raw_name
                res = self.acct.update_customers([CustomerWrite(a.key, party, id=cust.id, version=cust.version,
                                                                display_name=name)])[0]
                return None if res.ok else res.error.message
            if st.kind == "restore_field" and st.record_type == "deal":
                res = self.crm.update_deals([RecordWrite(a.key, "deal", do["deal"], do["props"])])[0]
                return None if res.ok else res.error.message
            if st.kind == "restore_field":
                res = self.crm.update_records([RecordWrite(a.key, do["crm_type"], do["crm_id"], do["props"])])[0]
                return None if res.ok else res.error.message
            if st.kind == "unlink":
                return None  # done in _done, with the journal row, in one transaction
        except ConnectorError as exc:
            if exc.retryable or exc.status in (401, 403):
                raise
            return exc.message
        return f"unknown step {st.kind}"

    def _done(self, a: Action) -> None:
        with self.store.session() as s:
            row = s.scalars(select(Journal).where(Journal.run_id == self.undo_id, Journal.key == a.key)).first()
            assert row is not None  # journalled before it was sent
            row.status, row.updated_at = "done", utcnow()
            journal_id = row.id
            if a.step.kind == "unlink":
                link = s.get(Link, a.do["link_id"])
                if link is not None:
                    s.add(FieldChange(run_id=self.undo_id, journal_id=journal_id, side="local",
                                      record_id=link.crm_id, field=f"linked_{link.object_type}",
                                      before=link.acct_id, after=None, rule="undo"))
                    s.delete(link)
                crm_type, crm_id, label = a.do["hold"]
                hold_undone(s, self.ws.id, crm_type, crm_id, label, self.target.id, self.undo_id)
                return
        if a.step.kind == "restore_field":
            self._after_restore(a)
        self._field_change(a, journal_id)

    def _field_change(self, a: Action, journal_id: int) -> None:
        st = a.step
        fld, before, after = {
            "restore_field": (st.field or "", st.current, st.restore_to),
            "deactivate_customer": ("active", "true", "false"),
            "void_invoice": ("status", st.current, "void"),
        }[st.kind]
        with self.store.session() as s:
            s.add(FieldChange(run_id=self.undo_id, journal_id=journal_id, side=st.side, record_id=st.record_id,
                              field=fld, before=before, after=after, rule="undo"))

    def _after_restore(self, a: Action) -> None:
        """The restored value becomes the last-synced one on that side and the run's value the
        last-synced one on the side it came from, so the next sync neither sends the run's value
        again nor copies the restored one over the other side: the two stay different until
        someone edits either."""
        st = a.step
        if st.record_type == "deal" or not st.field:
            return
        side = "acct" if st.side == "accounting" else "crm"
        # the value the run copied came from the other side, which still holds it (if it
        # changed since, that is a new change and flows as usual)
        self.ctx.links.restore_snapshots(field_name=st.field, side=side, record_type=st.record_type,
                                         record_id=st.record_id, value=st.restore_to, other_value=st.current)


def hold_undone(s: Any, ws_id: int, record_type: str, record_id: str, label: str, run_id: int, undo_id: int) -> None:
    when = day_text(utcnow())
    message = (f"Undone by you on {when} (run #{run_id}), so it is held back from syncing. To sync it again, "
               "select it under Held back › Undone by you and click Sync again; the next sync then creates or "
               "links it again.")
    row = s.scalars(select(Quarantine).where(Quarantine.workspace_id == ws_id, Quarantine.side == "crm",
                                             Quarantine.record_type == record_type,
                                             Quarantine.record_id == record_id)).first()
    if row is None:
        row = Quarantine(workspace_id=ws_id, side="crm", record_type=record_type, record_id=record_id)
        s.add(row)
    row.name = label[:300]
    row.reasons = {"items": [{"field": "undo", "message": message}], "undone_run": run_id, "undo_run": undo_id}
    row.run_id = undo_id
