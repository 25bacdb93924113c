"""Won deals become invoices; invoice status flows back to the deal: reading, then carrying out the plan.

Runs inside a sync run, after customers, so a deal's company is already linked. What to do with each
deal is decided by ``app.sync.invoice_plan``; this module reads what the plan needs, asks it, and
sends its writes through the run's journal (``RunContext``), as the customer writes are sent.
One invoice per deal, ever: the create is journalled with a key derived from the deal, sent with
the ledger's idempotency mechanism, and settled by the stamped reference after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from app.connectors.base import AccountingConnector, CrmConnector, FieldInfo, InvoiceWrite, ItemWrite, RecordWrite
from app.connectors.errors import CustomerInactive, NotFound, StaleVersion, ValidationRejected
from app.domain.lifecycle import INVOICE_FLAG
from app.domain.models import Deal, Invoice, Item
from app.domain.money import LEDGER_TAX_ROUNDING, invoice_totals
from app.domain.text import mend_broken
from app.store.repos import ConflictRecord, Hold, LinkRecord
from app.store.serial import deal_from_json, deal_to_json, invoice_json, iso
from app.sync.deal_checks import provider_name
from app.sync.invoice_changes import InvoiceChanges
from app.sync.invoice_lifecycle import CustomerState, customer_hold, customer_states, deal_lost
from app.sync.invoice_plan import (
    CHANGED_LINES,
    CreateInvoice,
    InvoicePlanInput,
    UpdateInvoice,
    deal_digest,
    flag_mark,
    missing_items,
    needs_ledger_currencies,
    plan_invoices,
    plan_write_backs,
    reference_for,
    with_items,
)
from app.sync.planner import op_key
from app.sync.run_context import RunContext

DEAL_FIELDS = (
    FieldInfo("crossledger_invoice_status", "Invoice status"),
    FieldInfo("crossledger_amount_paid", "Amount paid", "number"),
    FieldInfo("crossledger_balance_due", "Balance due", "number"),
    FieldInfo("crossledger_last_payment", "Last payment date", "date"),
    FieldInfo("crossledger_invoice_number", "Invoice number"),
    FieldInfo("crossledger_invoice_link", "Invoice link"),
)


INACTIVE_REFUSAL = "the customer is inactive in the ledger; the deal is held"


@dataclass
class InvoiceCounts:
    created: int = 0
    updated: int = 0
    deals_updated: int = 0
    held: int = 0
    flagged: int = 0
    matched: int = 0  # won deals linked to the invoice the ledger already had for them
    items_created: int = 0
    voided: int = 0
    credited: int = 0
    errors: list[str] = field(default_factory=list)


def registry_label(provider: str) -> str:
    from app.connectors import registry

    return registry.info(provider).label


class InvoiceSync(InvoiceChanges):
    def __init__(self, ctx: RunContext, crm: CrmConnector, acct: AccountingConnector) -> None:
        self.ctx, self.crm, self.acct = ctx, crm, acct
        self.counts = InvoiceCounts()
        self._deal_ids: list[str] = []
        self._item_refused: dict[str, str] = {}  # new-item token -> why the ledger refused it, in words
        self._marks: dict[int, str] = {}  # link id -> the flag this run left on it
        self._changed: set[str] = set()  # invoices read, paid, made or linked this run: their deals may be behind

    def _batch(self, connector: Any) -> int:
        return max(1, getattr(connector.limits, "batch_max", 1))

    def _mirror(self, side: str, otype: str, rows: list[tuple[str, dict[str, Any], str | None, bool]]) -> None:
        self.ctx.mirror.upsert(side, otype, ((rid, data, ver, arch, None) for rid, data, ver, arch in rows))

    # -- entry --------------------------------------------------------------------------------
    def read(self, cursors: dict[tuple[str, str], str | None], new_cursors: dict[tuple[str, str], str | None]) -> None:
        """Read deals, items, invoices and payments since their cursors into the mirror."""
        ctx = self.ctx
        deals = self.crm.read_deals(cursors.get(("crm", "deal")))
        ctx.count("read", len(deals.records))
        self._mirror("crm", "deal", [(d.id, {**deal_to_json(d), "lost": deal_lost(d)}, None, d.archived)
                                     for d in deals.records])
        new_cursors[("crm", "deal")] = deals.cursor
        items = self.acct.read_items(cursors.get(("accounting", "item")))
        self._mirror("accounting", "item", [(i.id, {"name": i.name, "sku": i.sku}, None, not i.active)
                                            for i in items.records if i.id])
        new_cursors[("accounting", "item")] = items.cursor
        invoices = self.acct.read_invoices(cursors.get(("accounting", "invoice")))
        ctx.count("read", len(invoices.records))
        self._mirror("accounting", "invoice", [(i.id, invoice_json(i), None, i.status == "void")
                                               for i in invoices.records if i.id])
        new_cursors[("accounting", "invoice")] = invoices.cursor
        payments = self.acct.read_payments(cursors.get(("accounting", "payment")))
        self._mirror("accounting", "payment", [(p.id, {"invoice_id": p.invoice_id, "amount": str(p.amount),
                                                       "date": p.date.isoformat(), "recorded_at": iso(p.recorded_at)},
                                                None, False) for p in payments.records])
        self.ctx.mirror.mark_archived("accounting", "payment", payments.deleted_ids)
        new_cursors[("accounting", "payment")] = payments.cursor
        self.read_credit_notes(cursors, new_cursors)
        self._deal_ids = [d.id for d in deals.records]
        self._changed = {i.id for i in invoices.records if i.id} | {p.invoice_id for p in payments.records
                                                                     if p.invoice_id}
        ctx.check_cancel()

    def apply(self) -> InvoiceCounts:
        held = self.ctx.quarantine.of_type("deal")  # deals held back earlier are looked at again every run
        undone = {q.record_id for q in held if q.reasons.get("undone_run")}  # held until released
        self._invoice_deals(sorted((set(self._deal_ids) | {q.record_id for q in held}) - undone))
        self._write_back()
        return self.counts

    # -- deals -> invoices ----------------------------------------------------------------------
    def plan_input(self, deal_ids: list[str]) -> InvoicePlanInput:
        """What the invoice plan needs, from the store (and, only when needed, the ledger's currencies)."""
        ctx = self.ctx
        settled, replanned = self._settle_pending()
        for row in ctx.journal.failed_with("create_invoice", INACTIVE_REFUSAL):  # the ledger may replay that key's
            if row.crm_id:                                                      # refusal: a new key once active
                replanned[row.crm_id] = "+".join(filter(None, (replanned.get(row.crm_id), f"refused-{row.id}")))
        rows = ctx.mirror.records("crm", "deal", deal_ids)
        deals = {rid: deal_from_json(rid, r.data) for rid, r in rows.items()}
        customer_links, invoice_links, invoices = self._plan_links(deals)
        inp = InvoicePlanInput(
            ws_name=ctx.ws_name, crm=self.crm.provider, ledger=self.acct.provider, today=ctx.today(),
            deals=deals, customer_links=customer_links, invoice_links=invoice_links, invoices=invoices,
            items=ctx.mirror.rows("accounting", "item") if deals else {},
            settings=ctx.settings.invoices, held={q.ref: q for q in ctx.quarantine.crm()},
            undone=ctx.undone_generations(), replanned=replanned, settled=settled,
            customer_states=customer_states({rid: r.data for rid, r in
                                             ctx.mirror.archived("accounting", "customer").items()}),
            credited=self.credited(), lost=frozenset(rid for rid, r in rows.items() if (r.data or {}).get("lost")))
        if needs_ledger_currencies(inp):  # asked once a run, and only when needed
            inp = replace(inp, ledger_currencies=frozenset(self._ledger_currencies()))
        return inp

    def _plan_links(self, deals: dict[str, Deal]) -> tuple[dict[tuple[str, str], LinkRecord], dict[str, LinkRecord],
                                                           dict[str, dict[str, Any]]]:
        """The links and ledger invoices planning ``deals`` looks at, and no more: their customers' links,
        their invoices, and every invoice of the customers of deals without one (an invoice made before
        Crossledger may be theirs; its currency may lock the customer's), with the links to those."""
        ctx = self.ctx
        refs = [("company", d.company_id) for d in deals.values() if d.company_id]
        refs += [("person", c) for d in deals.values() for c in d.contact_ids]
        customer_links = ctx.links.of("customer", refs)
        invoice_links = {ref[1]: lk for ref, lk in ctx.links.of("invoice", [("deal", d) for d in deals]).items()}
        to_invoice = [d for d in deals.values() if d.id not in invoice_links and d.won and not d.archived]
        invoices = ctx.mirror.rows("accounting", "invoice", [lk.acct_id for lk in invoice_links.values()])
        if to_invoice:
            billed = {lk.acct_id for lk in customer_links.values()}
            invoices.update(ctx.mirror.rows_with("accounting", "invoice", "customer_id", sorted(billed)))
            linked = {lk.acct_id for lk in invoice_links.values()}
            others = ctx.links.to_accounts("invoice", [i for i in invoices if i not in linked])
            invoice_links.update({ref[1]: lk for ref, lk in others.items() if ref[0] == "deal"})
        return customer_links, invoice_links, invoices

    def _invoice_deals(self, deal_ids: list[str]) -> None:
        plan = plan_invoices(self.plan_input(deal_ids))
        for lk in plan.links:
            self._link_invoice(lk.deal, lk.invoice_id, None, how=lk.how, replaces=lk.replaces)
        self.counts.matched += plan.matched
        for f in plan.flags:
            self._flag(f.deal, f.link, f.what, f.message, f.code)
        for c in plan.closes:
            self.ctx.conflicts.close("deal", c.deal.id, INVOICE_FLAG)
        for link, marks in plan.marks:
            self.ctx.links.merge_snapshot(link.id, marks, touch=False)
        for h in plan.holds:
            self._hold(h.deal, list(h.reasons), h.way_out)
        voided = self.void_invoices(plan.voids)
        self.credit_invoices(plan.credits)
        item_ids = self._create_items(plan.items)
        self._update_drafts(plan.updates, item_ids)
        self._create_invoices([c for c in plan.creates if c.replaces is None or c.replaces.id in voided
                               or self.is_void(c.replaces.acct_id)], item_ids)

    def _create_invoices(self, creates: list[CreateInvoice], item_ids: dict[str, str]) -> None:
        ctx = self.ctx
        ready: list[tuple[Deal, Invoice, str]] = []
        replaces = {c.key: c.replaces for c in creates if c.replaces is not None}
        for c in creates:
            invoice = with_items(c.invoice, item_ids)
            if invoice is None:
                self._hold(c.deal, [self._item_refused.get(t or "", "One of its products could not be created in the "
                                                           "ledger. See the run's errors.")
                                    for t in missing_items(c.invoice, item_ids)[:1]])
                continue
            ready.append((c.deal, invoice, c.key))
        batch = self._batch(self.acct)
        for start in range(0, len(ready), batch):
            ctx.check_cancel()
            chunk = ready[start:start + batch]
            ctx.progress("Creating invoices for won deals", start, len(ready))
            ctx.journal_writes([(key, "create_invoice", "accounting", ("deal", deal.id), None,
                                 {"reference": inv.reference}) for deal, inv, key in chunk])
            results = self.acct.create_invoices([InvoiceWrite(key, inv) for _, inv, key in chunk])
            for (deal, inv, key), res in zip(chunk, results, strict=True):
                if res.ok:
                    ctx.finish(key, res.id)
                    ctx.count("writes")
                    self.counts.created += 1
                    created = res.record if isinstance(res.record, Invoice) else None
                    assert res.id is not None  # an invoice the ledger made has its id
                    self._link_invoice(deal, res.id, created, replaces=replaces.get(key))
                    self._check_total(deal, inv, created)
                elif isinstance(res.error, CustomerInactive):
                    self._inactive_customer(deal, key, inv.customer_id)
                elif isinstance(res.error, ValidationRejected) and res.error.field == "currency":
                    self._refused_currency(deal, key, inv.currency, res.error.message)
                else:
                    ctx.fail(key, ("deal", deal.id), deal.name, res.error)

    def _inactive_customer(self, deal: Deal, key: str, customer_id: str) -> None:
        """The ledger refused the invoice because its customer is inactive: the mirror learns it, and the deal
        waits with the way out (reactivate it), in plain words; a data problem of this deal, not a failed run."""
        ctx = self.ctx
        ctx.journal.mark(key, "failed", error=INACTIVE_REFUSAL)
        row = ctx.mirror.records("accounting", "customer", [customer_id]).get(customer_id)
        data = row.data if row is not None else {}
        ctx.mirror.add_data("accounting", "customer", {customer_id: {"fate": "archived"}}, archived=True)
        links = ctx.links.all("customer")
        ref = next((r for r in [("company", deal.company_id or ""), *(("person", c) for c in deal.contact_ids)]
                    if r in links and links[r].acct_id == customer_id), ("company", deal.company_id or ""))
        name = data.get("raw_name") or data.get("name") or customer_id
        why, way_out = customer_hold(CustomerState("archived", name), customer_id, ref, self.acct.provider)
        self._hold(deal, [why], way_out)

    def _refused_currency(self, deal: Deal, key: str, currency: str, message: str) -> None:
        """The ledger cannot bill in the deal's currency: the deal waits with the ledger's words and what to do;
        a data problem of this one deal, not a failed run."""
        self.ctx.journal.mark(key, "failed", error=message)
        if "deal's currency" not in message:
            message = (f"{message.rstrip('.')}. Add {currency} to the ledger's currencies (Settings → Currencies), or "
                       f"change the deal's currency in {provider_name(self.crm.provider)}.")
        self._hold(deal, message)

    def _ledger_currencies(self) -> set[str]:
        """The currencies the ledger can invoice in, when it can tell (empty set: it cannot, any ISO code goes)."""
        acct: Any = self.acct
        listed = getattr(acct, "invoice_currencies", None)
        if callable(listed):
            return set(listed() or ())
        if acct.provider == "zohobooks" and hasattr(acct, "currency_ids"):
            return set(acct.currency_ids())
        extra = getattr(getattr(acct, "conn", None), "extra", None) or {}
        if acct.provider == "quickbooks" and extra.get("multicurrency") is False and extra.get("home_currency"):
            return {extra["home_currency"]}
        return set()

    def _update_drafts(self, updates: list[UpdateInvoice], item_ids: dict[str, str]) -> None:
        """Deals edited after invoicing whose invoice may still change: send the new lines.

        The ledger connector refuses an invoice that is no longer a draft (sent, paid, void); that deal
        is flagged for review instead, as is one whose new product could not be created.
        """
        ctx = self.ctx
        ready: list[tuple[UpdateInvoice, Invoice]] = []
        for u in updates:
            invoice = with_items(u.invoice, item_ids)
            if invoice is None:
                self._flag(u.deal, u.link, "lines", CHANGED_LINES, "deal_lines")
                continue
            ready.append((u, invoice))
        batch = self._batch(self.acct)
        for start in range(0, len(ready), batch):
            ctx.check_cancel()
            chunk = ready[start:start + batch]
            ctx.journal_writes([(u.key, "update_invoice", "accounting", ("deal", u.deal.id), u.link.acct_id,
                                 {"reference": inv.reference}) for u, inv in chunk])
            results = self.acct.update_invoices([InvoiceWrite(u.key, inv) for u, inv in chunk])
            for (u, _inv), res in zip(chunk, results, strict=True):
                if res.ok:
                    ctx.finish(u.key, u.link.acct_id)
                    ctx.count("writes")
                    self.counts.updated += 1
                    ctx.links.merge_snapshot(u.link.id, {"deal": deal_digest(u.deal)})
                    self._changed.add(u.link.acct_id)
                    if isinstance(res.record, Invoice):
                        self._mirror("accounting", "invoice", [(u.link.acct_id, invoice_json(res.record), None,
                                                                False)])
                elif isinstance(res.error, ValidationRejected | StaleVersion):  # not a draft any more: a person decides
                    ctx.journal.mark(u.key, "failed", run_id=ctx.run_id,
                                     error="invoice no longer a draft; flagged for review")
                    self._flag(u.deal, u.link, "lines", CHANGED_LINES, "deal_lines")
                else:
                    ctx.fail(u.key, ("deal", u.deal.id), u.deal.name, res.error)

    def _create_items(self, wanted: dict[str, Item]) -> dict[str, str]:
        if not wanted:
            return {}
        ctx = self.ctx
        out: dict[str, str] = {}
        tokens = list(wanted)
        batch = self._batch(self.acct)
        for start in range(0, len(tokens), batch):
            chunk = tokens[start:start + batch]
            keys = [op_key(ctx.ws_name, "create_item", t) for t in chunk]
            ctx.journal_writes([(k, "create_item", "accounting", ("item", t), None, {"name": wanted[t].name})
                                for k, t in zip(keys, chunk, strict=True)])
            results = self.acct.create_items([ItemWrite(k, wanted[t]) for k, t in zip(keys, chunk, strict=True)])
            for k, t, res in zip(keys, chunk, results, strict=True):
                if res.ok:
                    assert res.id is not None  # an item the ledger made has its id
                    out[t] = res.id
                    ctx.finish(k, res.id)
                    ctx.count("writes")
                    self.counts.items_created += 1
                    self._mirror("accounting", "item", [(res.id, {"name": wanted[t].name, "sku": wanted[t].sku},
                                                         None, False)])
                else:
                    ctx.fail(k, ("item", t), wanted[t].name, res.error)
                    reason = res.error.message if res.error else "no reason given"
                    self._item_refused[t] = (f"Its product '{wanted[t].name}' could not be created in "
                                             f"{registry_label(self.acct.provider)}: {reason} Correct the product "
                                             "and the deal follows on the next sync.")
        return out

    def _settle_pending(self) -> tuple[dict[str, str], dict[str, str]]:
        """Invoices journalled by a run that stopped before it heard back: find them by reference.
        Returns the keys found made (-> invoice id), and the deals whose invoice was not (-> a new key part)."""
        found: dict[str, str] = {}
        replanned: dict[str, str] = {}
        outcomes: dict[int, tuple[str, str | None, str | None]] = {}
        for row in self.ctx.journal.pending("create_invoice"):
            hits = self.acct.find_invoices(row.payload.get("reference") or reference_for(str(row.crm_id)))
            if hits:
                assert hits[0].id is not None  # an invoice read from the ledger has its id
                found[row.key] = hits[0].id
                outcomes[row.id] = ("done", hits[0].id, None)
            else:
                outcomes[row.id] = ("failed", None, "not made; planned again")
                if row.crm_id:
                    replanned[row.crm_id] = f"replan-{row.id}"
        self.ctx.journal.settle(outcomes)
        return found, replanned

    def _link_invoice(self, deal: Deal, invoice_id: str, invoice: Invoice | None, *, how: str = "created",
                      replaces: LinkRecord | None = None) -> None:
        snapshot = {"deal": deal_digest(deal), "written": {}}
        if replaces is not None:  # invoiced again after its invoice was voided: the link moves to the new one
            self.ctx.links.repoint(replaces.id, invoice_id, how, self.ctx.run_id, snapshot)
            self.ctx.quarantine.release([("deal", deal.id)])
            self.ctx.conflicts.close("deal", deal.id, INVOICE_FLAG)
        else:
            self.ctx.links.add("invoice", ("deal", deal.id), invoice_id, how, self.ctx.run_id, snapshot,
                               release_hold=True)
        self._changed.add(invoice_id)
        if invoice is not None:
            self._mirror("accounting", "invoice", [(invoice_id, invoice_json(invoice), None, False)])

    def _check_total(self, deal: Deal, sent: Invoice, made: Invoice | None) -> None:
        if made is None or made.total is None:
            return
        rounding = LEDGER_TAX_ROUNDING.get(self.acct.provider, "invoice")
        expected = invoice_totals(((li.quantity, li.unit_price, li.discount_percent, Decimal(0))
                                   for li in sent.lines), rounding=rounding)
        if made.total != expected.total and not any(li.tax_code for li in sent.lines):
            self.counts.errors.append(f"{deal.name}: the ledger's total {made.total} differs from the deal's "
                                      f"{expected.total}. Check the invoice in the ledger.")

    def _hold(self, deal: Deal, reason: str | list[str], way_out: dict[str, Any] | None = None) -> None:
        self.counts.held += 1
        reasons = [reason] if isinstance(reason, str) else reason
        items: list[dict[str, Any]] = [{"field": "deal", "message": r} for r in reasons]
        if way_out is not None and items:  # the first reason is the customer's, with its one click
            items[0] = {"field": "customer", "message": reasons[0], "way_out": way_out}
        self.ctx.hold([Hold(("deal", deal.id), deal.name, items)], counted=True)  # counted once, as deals_held

    def _flag(self, deal: Deal, link: LinkRecord, what: str, message: str, code: str = "") -> None:
        mark = flag_mark(deal, code or what)
        if self._marks.get(link.id, (link.snapshot or {}).get("flagged")) == mark:
            return
        self.ctx.conflicts.flag(ConflictRecord("deal", deal.id, link.acct_id, f"{INVOICE_FLAG}{what}",
                                               mend_broken(deal.name), message, None, "ask", "open", link_id=link.id),
                                self.ctx.run_id, mark)
        self._marks[link.id] = mark
        self.counts.flagged += 1
        self.ctx.count("conflicts")

    # -- invoice status -> deal ---------------------------------------------------------------
    def _write_back(self) -> None:
        ctx = self.ctx
        # an invoice nothing changed keeps what its deal was last given (a write that failed stops the
        # run's cursors, so the same invoices are read, and their deals written, again)
        gone = set(ctx.mirror.archived("crm", "deal"))  # deleted in the CRM: nothing to show it on
        links = [lk for lk in ctx.links.to_accounts("invoice", sorted(self._changed)).values() if lk.crm_id not in gone]
        if not links:
            return
        invoices = ctx.mirror.rows("accounting", "invoice", [lk.acct_id for lk in links])
        urls = {lk.acct_id: self.acct.invoice_url(lk.acct_id) for lk in links
                if lk.acct_id in invoices and not invoices[lk.acct_id].get("web_url")}
        payments = ctx.mirror.rows_with("accounting", "payment", "invoice_id", [lk.acct_id for lk in links])
        writes = plan_write_backs(ctx.ws_name, links, invoices, payments, urls)
        if not writes:
            return
        field_map = self._deal_fields()
        batch = self._batch(self.crm)
        for start in range(0, len(writes), batch):
            ctx.check_cancel()
            chunk = writes[start:start + batch]
            ctx.journal_writes([(w.key, "update_deal", "crm", ("deal", w.link.crm_id), w.link.crm_id,
                                 {"values": w.values}) for w in chunk])
            results = self.crm.update_deals([
                RecordWrite(w.key, "deal", w.link.crm_id,
                            {field_map[name]: ("" if value is None else value) for name, value in w.values.items()})
                for w in chunk])
            for w, res in zip(chunk, results, strict=True):
                if res.ok:
                    ctx.finish(w.key, w.link.crm_id)
                    ctx.count("writes")
                    self.counts.deals_updated += 1
                    ctx.journal.record_changes(ctx.run_id, w.key, "crm", w.link.crm_id, w.changes(), "ledger-owns")
                    ctx.links.merge_snapshot(w.link.id, {"written": w.values})
                elif isinstance(res.error, NotFound):  # deleted in the CRM (a feed that hides deletions)
                    ctx.journal.mark(w.key, "failed", error="the deal is gone from the CRM")
                    ctx.mirror.mark_archived("crm", "deal", [w.link.crm_id])
                else:
                    ctx.fail(w.key, ("deal", w.link.crm_id), w.link.crm_id, res.error)

    def _deal_fields(self) -> dict[str, str]:
        known = dict(self.ctx.settings.deal_fields)
        if all(f.name in known for f in DEAL_FIELDS):
            return known
        created = self.crm.ensure_deal_fields(DEAL_FIELDS)
        merged = {**known, **created}
        self.ctx.workspace.save_setting("deal_fields", merged)
        self.ctx.settings = replace(self.ctx.settings, deal_fields=merged)
        return merged
