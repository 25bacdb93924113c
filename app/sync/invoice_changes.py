"""Invoices changed after their deal: voids and credit notes sent through the run's journal, and the
ledger's credit notes mirrored so the rules and the reconciliation see what is credited.

A mixin of ``InvoiceSync`` (``app.sync.invoice_apply``). Each void and credit note is journalled with its
idempotency key before it is sent. A void is sent once: a key already done is not sent again, and the
ledger's own void of an invoice already void answers as done. A credit note's key is derived from the
deal, the invoice and what was credited on it before and after, and is the ledger's idempotency key (QuickBooks'
requestid, Xero's Idempotency-Key, Zoho Books' reference): sent again after a crash between send and
record, the ledger answers with the credit note it made, and no second one is raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from app.domain.lifecycle import INVOICE_FLAG, CreditNote, CreditNoteWrite
from app.domain.models import Invoice
from app.store.serial import invoice_json
from app.sync.invoice_lifecycle import CreditInvoice, VoidInvoice

if TYPE_CHECKING:
    from app.connectors.base import AccountingConnector
    from app.sync.invoice_apply import InvoiceCounts
    from app.sync.run_context import RunContext


class InvoiceChanges:
    if TYPE_CHECKING:
        ctx: RunContext
        acct: AccountingConnector
        counts: InvoiceCounts
        _changed: set[str]  # invoices whose deals are written back this run

        def _mirror(self, side: str, otype: str, rows: list[tuple[str, dict[str, Any], str | None, bool]]) -> None: ...
        def _flag(self, deal: Any, link: Any, what: str, message: str, code: str = "") -> None: ...

    _note_cursor: tuple[str | None, dict[tuple[str, str], str | None]] | None = None

    # -- reading --------------------------------------------------------------------------------
    def read_credit_notes(self, cursors: dict[tuple[str, str], str | None],
                          new_cursors: dict[tuple[str, str], str | None]) -> None:
        """The ledger's credit notes since the cursor, one mirror row per (credit note, invoice)."""
        reader = getattr(self.acct, "read_credit_notes", None)
        if reader is None:
            return
        cursor = cursors.get(("accounting", "creditnote"))
        self._note_cursor = (cursor, new_cursors)
        notes = reader(cursor)
        self._mirror_notes(notes.records, notes.deleted_ids)
        new_cursors[("accounting", "creditnote")] = notes.cursor

    def _mirror_notes(self, notes: Sequence[CreditNote], deleted: Sequence[str]) -> None:
        self._mirror("accounting", "creditnote", [
            (n.id or "", {"invoice_id": n.invoice_id, "customer_id": n.customer_id, "amount": str(n.amount),
                          "currency": n.currency, "number": n.number, "status": n.status, "reference": n.reference},
             None, False) for n in notes if n.id])
        self.ctx.mirror.mark_archived("accounting", "creditnote", list(deleted))

    def credited(self) -> dict[str, Decimal]:
        """Invoice id -> what the ledger's credit notes took off it, as mirrored."""
        out: dict[str, Decimal] = {}
        for row in self.ctx.mirror.records("accounting", "creditnote").values():
            inv, amount = row.data.get("invoice_id"), row.data.get("amount")
            if inv and amount and not row.archived:
                out[inv] = out.get(inv, Decimal(0)) + Decimal(str(amount))
        return out

    def is_void(self, invoice_id: str) -> bool:
        row = self.ctx.mirror.records("accounting", "invoice", [invoice_id]).get(invoice_id)
        return row is not None and row.data.get("status") == "void"

    # -- writing --------------------------------------------------------------------------------
    def _sent_before(self, key: str) -> bool:
        return any(r.status == "done" for r in self.ctx.journal.by_key(key))

    def void_invoices(self, voids: Sequence[VoidInvoice]) -> set[int]:
        """Void each invoice (once); returns the ids of the links whose invoice is now void."""
        ctx = self.ctx
        done: set[int] = set()
        for v in voids:
            ctx.check_cancel()
            if self._sent_before(v.key) and self.is_void(v.link.acct_id):
                done.add(v.link.id)
                continue
            ctx.journal_writes([(v.key, "void_invoice", "accounting", ("deal", v.deal.id), v.link.acct_id,
                                 {"reason": v.reason})])
            res = self.acct.void_invoice(v.link.acct_id)
            if res.ok:
                ctx.finish(v.key, v.link.acct_id)
                ctx.count("writes")
                self.counts.voided += 1
                row = self.ctx.mirror.records("accounting", "invoice", [v.link.acct_id]).get(v.link.acct_id)
                data = invoice_json(res.record) if isinstance(res.record, Invoice) else {
                    **(row.data if row is not None else {}), "status": "void"}
                self._mirror("accounting", "invoice", [(v.link.acct_id, {**data, "status": "void"}, None, True)])
                ctx.conflicts.close("deal", v.deal.id, INVOICE_FLAG)
                self._changed.add(v.link.acct_id)  # its deal shows the void this run
                done.add(v.link.id)
            elif res.error is not None and res.error.retryable:
                ctx.fail(v.key, ("deal", v.deal.id), v.deal.name, res.error)
            else:
                why = res.error.message if res.error else "no reason given"
                ctx.journal.mark(v.key, "failed", error=why)
                self._flag(v.deal, v.link, "won", f"{v.reason} The ledger did not void it: {why} Void it in the "
                           "ledger, or credit the customer.", "void_refused")
        return done

    def credit_invoices(self, credits: Sequence[CreditInvoice]) -> None:
        """Raise each credit note (once) against its invoice, then read the ledger's credit notes again."""
        ctx = self.ctx
        maker = getattr(self.acct, "create_credit_notes", None)
        made = 0
        for c in credits:
            ctx.check_cancel()
            if maker is None or self._sent_before(c.key):
                continue
            ctx.journal_writes([(c.key, "credit_note", "accounting", ("deal", c.deal.id), c.link.acct_id,
                                 {"amount": str(c.amount), "reason": c.reason})])
            [res] = maker([CreditNoteWrite(c.key, c.customer_id, c.currency, c.link.acct_id, c.amount,
                                           f"Credit: {c.deal.name}"[:200])])
            if res.ok:
                ctx.finish(c.key, res.id)
                ctx.count("writes")
                self.counts.credited += 1
                made += 1
                ctx.conflicts.close("deal", c.deal.id, INVOICE_FLAG)
                self._changed.add(c.link.acct_id)
            elif res.error is not None and res.error.retryable:
                ctx.fail(c.key, ("deal", c.deal.id), c.deal.name, res.error)
            else:
                why = res.error.message if res.error else "no reason given"
                ctx.journal.mark(c.key, "failed", error=why)
                self._flag(c.deal, c.link, "lines", f"{c.reason} The ledger did not take the credit note: {why}",
                           "credit_refused")
        if made and self._note_cursor is not None:  # what the ledger now shows as credited, for the next plan
            cursor, new_cursors = self._note_cursor
            reader: Any = self.acct
            notes = reader.read_credit_notes(cursor)
            self._mirror_notes(notes.records, notes.deleted_ids)
            new_cursors[("accounting", "creditnote")] = notes.cursor
