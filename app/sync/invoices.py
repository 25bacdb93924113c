"""Won deals become invoices; invoice status flows back to the deal.

Runs inside a SyncEngine run, after customers, so a deal's company is already linked.
One invoice per deal, ever: the create is journalled with a key derived from the deal, sent with
the ledger's idempotency mechanism, and settled by the stamped reference after a crash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from app.connectors.base import FieldInfo, InvoiceWrite, ItemWrite, RecordWrite
from app.connectors.errors import StaleVersion, ValidationRejected
from app.domain.models import Deal, Invoice, InvoiceLine, Item, LineItem
from app.domain.money import LEDGER_TAX_ROUNDING, invoice_totals
from app.domain.text import mend_broken
from app.store.models import ConflictRow, Journal, Link, Mirror, Quarantine, Workspace, utcnow
from app.sync.deal_checks import check_currency, check_dates, check_lines, normal_currency, provider_name
from app.sync.planner import op_key

if TYPE_CHECKING:
    from app.sync.engine import SyncEngine

STATUS_WORDS = {"draft": "Draft", "awaiting_payment": "Awaiting payment", "partly_paid": "Partly paid",
                "paid": "Paid", "overdue": "Overdue", "void": "Void"}

CHANGED_LINES = ("The deal's line items changed after it was invoiced, and the invoice was left as it is "
                 "(it is sent or paid, or this workspace asks for review). Review the invoice in the ledger: "
                 "change it there, or issue a credit note or a new invoice if needed.")
CURRENCY_PER_CUSTOMER = {"quickbooks", "zohobooks"}

DEAL_FIELDS = (
    FieldInfo("crossledger_invoice_status", "Invoice status"),
    FieldInfo("crossledger_amount_paid", "Amount paid", "number"),
    FieldInfo("crossledger_balance_due", "Balance due", "number"),
    FieldInfo("crossledger_last_payment", "Last payment date", "date"),
    FieldInfo("crossledger_invoice_number", "Invoice number"),
    FieldInfo("crossledger_invoice_link", "Invoice link"),
)


PRIOR_DAYS = 45  # an invoice issued this many days from a deal's close date can be that deal's invoice


REFERENCE_FIELD = {"quickbooks": "memo (private note)", "xero": "Reference", "zohobooks": "Reference#"}


def reference_for(deal_id: str) -> str:
    """The stamp on the invoice that finds it again: short enough for every ledger's field."""
    return f"CRM deal {deal_id}"


def deal_digest(deal: Deal) -> str:
    lines = sorted((li.description, str(li.quantity), str(li.unit_price), str(li.discount_percent), li.sku or "")
                   for li in deal.line_items)
    return hashlib.sha256(json.dumps([deal.currency, deal.company_id, lines]).encode()).hexdigest()[:16]


def _deal_to_json(deal: Deal) -> dict[str, Any]:
    return {
        "name": deal.name, "won": deal.won, "currency": deal.currency,
        "amount": str(deal.amount) if deal.amount is not None else None,
        "close_date": deal.close_date.isoformat() if deal.close_date else None,
        "company_id": deal.company_id, "contact_ids": list(deal.contact_ids),
        "lines": [{"description": li.description, "quantity": str(li.quantity), "unit_price": str(li.unit_price),
                   "discount_percent": str(li.discount_percent), "sku": li.sku, "product_name": li.product_name,
                   "tax_code": li.tax_code} for li in deal.line_items],
        "archived": deal.archived,
    }


def _deal_from_json(deal_id: str, d: dict[str, Any]) -> Deal:
    return Deal(
        id=deal_id, name=d.get("name") or "", won=bool(d.get("won")), currency=d.get("currency") or "",
        amount=Decimal(d["amount"]) if d.get("amount") else None,
        close_date=dt.date.fromisoformat(d["close_date"]) if d.get("close_date") else None,
        company_id=d.get("company_id"), contact_ids=tuple(d.get("contact_ids") or ()),
        line_items=tuple(LineItem(li["description"], Decimal(li["quantity"]), Decimal(li["unit_price"]),
                                  Decimal(li.get("discount_percent") or 0), li.get("sku"), li.get("product_name"),
                                  li.get("tax_code")) for li in d.get("lines", [])),
        archived=bool(d.get("archived")))


def _invoice_json(inv: Invoice) -> dict[str, Any]:
    return {"customer_id": inv.customer_id, "currency": inv.currency, "reference": inv.reference,
            "number": inv.number, "status": inv.status,
            "total": str(inv.total) if inv.total is not None else None,
            "amount_paid": str(inv.amount_paid) if inv.amount_paid is not None else None,
            "balance": str(inv.balance) if inv.balance is not None else None,
            "issue_date": inv.issue_date.isoformat() if inv.issue_date else None,
            "due_date": inv.due_date.isoformat() if inv.due_date else None, "web_url": inv.web_url}


@dataclass
class InvoiceCounts:
    created: int = 0
    updated: int = 0
    deals_updated: int = 0
    held: int = 0
    flagged: int = 0
    matched: int = 0  # won deals linked to the invoice the ledger already had for them
    items_created: int = 0
    errors: list[str] = field(default_factory=list)


def prior_invoice(deal: Deal, currency: str | None, lines: Sequence[InvoiceLine | LineItem],
                  candidates: list[tuple[str, dict[str, Any]]], ledger: str) -> tuple[str | None, str | None]:
    """Which of one customer's unlinked ledger invoices (id, mirror row) is this deal's, made before
    Crossledger: the one stamped with the deal's reference, else the one of the same currency and total
    (before tax) issued closest to the close date, within PRIOR_DAYS. (id, None); (None, why) when two
    fit equally well; (None, None) when none does. Pure: the sync and the migration plan both ask it."""
    stamped = [rid for rid, row in candidates if (row.get("reference") or "").strip() == reference_for(deal.id)]
    if stamped:
        return stamped[0], None
    rounding = LEDGER_TAX_ROUNDING.get(ledger, "invoice")
    total = invoice_totals(((li.quantity, li.unit_price, li.discount_percent, Decimal(0)) for li in lines),
                           rounding=rounding).total
    close = deal.close_date
    fits: list[tuple[int, str, dict[str, Any]]] = []
    for rid, row in candidates:
        if currency and row.get("currency") and row["currency"] != currency:
            continue
        if row.get("total") is None or Decimal(row["total"]) != total:
            continue
        issued = row.get("issue_date")
        gap = abs((dt.date.fromisoformat(issued) - close).days) if issued and close else PRIOR_DAYS
        if gap <= PRIOR_DAYS:
            fits.append((gap, rid, row))
    if not fits:
        return None, None
    fits.sort(key=lambda f: (f[0], f[1]))
    if len(fits) > 1 and fits[0][0] == fits[1][0]:
        numbers = ", ".join(row.get("number") or rid for _, rid, row in fits[:3])
        where = REFERENCE_FIELD.get(ledger, "reference")
        amount = f"{total} {currency}" if currency else str(total)
        return None, (f"The ledger already has {len(fits)} invoices for this customer of {amount} "
                      f"around the deal's close date ({numbers}), so Crossledger did not make another. Put "
                      f"'{reference_for(deal.id)}' in the {where} of the one that belongs to this deal and "
                      "sync again; it is then linked. If none of them does, create the invoice in the ledger "
                      f"with that {where}.")
    return fits[0][1], None


class InvoiceSync:
    def __init__(self, engine: SyncEngine) -> None:
        self.e = engine
        self.store = engine.store
        self.ws_id = engine.ws_id
        self.settings = engine.settings.get("invoices") or {}
        self.counts = InvoiceCounts()
        # customer id -> ledger invoices no deal has
        self._unlinked: dict[str, list[tuple[str, dict[str, Any]]]] | None = None
        self._claimed: set[str] = set()  # ledger invoices matched to a deal in this run
        self._item_refused: dict[str, str] = {}  # new-item token -> why the ledger refused it, in words
        self._replanned: dict[str, str] = {}  # deal id -> a new key part, for invoices journalled but not made

    # -- entry --------------------------------------------------------------------------------
    def read(self, cursors: dict[tuple[str, str], str | None], new_cursors: dict[tuple[str, str], str | None]) -> None:
        """Read deals, items, invoices and payments since their cursors into the mirror."""
        e = self.e
        deals = e.crm.read_deals(cursors.get(("crm", "deal")))
        e.counts["read"] += len(deals.records)
        self._mirror("crm", "deal", [(d.id, _deal_to_json(d), None, d.archived) for d in deals.records])
        new_cursors[("crm", "deal")] = deals.cursor
        items = e.acct.read_items(cursors.get(("accounting", "item")))
        self._mirror("accounting", "item", [(i.id, {"name": i.name, "sku": i.sku}, None, not i.active)
                                            for i in items.records if i.id])
        new_cursors[("accounting", "item")] = items.cursor
        invoices = e.acct.read_invoices(cursors.get(("accounting", "invoice")))
        e.counts["read"] += len(invoices.records)
        self._mirror("accounting", "invoice", [(i.id, _invoice_json(i), None, i.status == "void")
                                               for i in invoices.records if i.id])
        new_cursors[("accounting", "invoice")] = invoices.cursor
        payments = e.acct.read_payments(cursors.get(("accounting", "payment")))
        self._mirror("accounting", "payment", [(p.id, {"invoice_id": p.invoice_id, "amount": str(p.amount),
                                                       "date": p.date.isoformat()}, None, False)
                                               for p in payments.records])
        new_cursors[("accounting", "payment")] = payments.cursor
        self._deal_ids = [d.id for d in deals.records]
        e._check_cancel()

    def apply(self) -> InvoiceCounts:
        with self.store.session() as s:  # deals held back earlier are looked at again every run
            rows = list(s.scalars(select(Quarantine).where(
                Quarantine.workspace_id == self.ws_id, Quarantine.record_type == "deal")))
        held = [q.record_id for q in rows]
        undone = {q.record_id for q in rows if (q.reasons or {}).get("undone_run")}  # held until released
        self._invoice_deals(sorted((set(self._deal_ids) | set(held)) - undone))
        self._write_back()
        return self.counts

    # -- state --------------------------------------------------------------------------------
    def _mirror(self, side: str, otype: str, rows: list[tuple[str, dict[str, Any], str | None, bool]]) -> None:
        self.e._upsert_mirror(side, otype, ((rid, data, ver, arch, None) for rid, data, ver, arch in rows))

    def _mirror_rows(self, side: str, otype: str, ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
        with self.store.session() as s:
            q = select(Mirror).where(Mirror.workspace_id == self.ws_id, Mirror.side == side,
                                     Mirror.object_type == otype)
            if ids is not None:
                q = q.where(Mirror.remote_id.in_(ids))
            return {m.remote_id: {**m.data, "_archived": bool(m.archived)} for m in s.scalars(q)}

    def _links(self, object_type: str) -> dict[tuple[str, str], Link]:
        with self.store.session() as s:
            return {(lk.crm_type, lk.crm_id): lk for lk in s.scalars(
                select(Link).where(Link.workspace_id == self.ws_id, Link.object_type == object_type))}

    # -- deals -> invoices ----------------------------------------------------------------------
    def _invoice_deals(self, deal_ids: list[str]) -> None:
        e = self.e
        settled = self._settle_pending()
        deals = {rid: _deal_from_json(rid, d) for rid, d in self._mirror_rows("crm", "deal", deal_ids).items()}
        customer_links = self._links("customer")
        invoice_links = self._links("invoice")
        item_rows = self._mirror_rows("accounting", "item")
        items_by_sku = {(r.get("sku") or "").casefold(): rid for rid, r in item_rows.items() if r.get("sku")}
        items_by_name = {(r.get("name") or "").casefold(): (rid, r.get("sku")) for rid, r in item_rows.items()}
        locked_currency = self._locked_currencies()
        ledger_currencies: set[str] | None = None

        creates: list[tuple[Deal, Invoice, str]] = []
        updates: list[tuple[Deal, Link, Invoice]] = []
        invoice_rows = self._mirror_rows("accounting", "invoice", [lk.acct_id for lk in invoice_links.values()])
        wanted_items: dict[str, Item] = {}
        for deal in sorted(deals.values(), key=lambda d: d.id):
            link = invoice_links.get(("deal", deal.id))
            if link is not None:
                if self._check_invoiced(deal, link, invoice_rows.get(link.acct_id)):
                    problems = check_lines(deal, crm=e.crm.provider, ledger=e.acct.provider)
                    if problems:  # the edited lines cannot go on the invoice: a person decides
                        self._flag(deal, link, "lines", " ".join(problems) + " The invoice was left as it is.")
                        continue
                    lines = [self._line(li, items_by_sku, items_by_name, wanted_items) for li in deal.line_items]
                    inv_row = invoice_rows[link.acct_id]
                    updates.append((deal, link, Invoice(link.acct_id, inv_row.get("customer_id") or "",
                                                        inv_row.get("currency") or deal.currency, tuple(lines),
                                                        reference=inv_row.get("reference") or reference_for(deal.id))))
                continue
            if not deal.won or deal.archived:
                continue
            again = e.undone_generations().get(("deal", deal.id))  # an undone invoice is made under a new key
            # and one an earlier run journalled but never made is planned again from the deal as it is now
            again = "+".join(filter(None, (again, self._replanned.get(deal.id)))) or None
            key = op_key(e.ws_name, "create_invoice", deal.id, *([again] if again else []))
            if key in settled:
                self._link_invoice(deal, settled[key], None)
                continue
            cust_link = customer_links.get(("company", deal.company_id or "")) or next(
                (customer_links.get(("person", c)) for c in deal.contact_ids if ("person", c) in customer_links),
                None)
            currency = normal_currency(deal.currency)
            reasons = check_lines(deal, crm=e.crm.provider, ledger=e.acct.provider)
            issue = deal.close_date or dt.datetime.now(dt.UTC).date()
            terms = int(self.settings.get("payment_terms_days", 30))
            if bad_date := check_dates(issue, terms, crm=e.crm.provider, ledger=e.acct.provider):
                reasons.append(bad_date)
            if ledger_currencies is None and check_currency(deal.currency, crm=e.crm.provider,
                                                            ledger=e.acct.provider, allowed=None) is None:
                ledger_currencies = self._ledger_currencies()  # asked once a run, and only when needed
            problem = check_currency(deal.currency, crm=e.crm.provider, ledger=e.acct.provider,
                                     allowed=ledger_currencies or None)
            reasons += [problem] if problem else []
            if cust_link is None:
                reasons.insert(0, self._no_customer(deal))
            elif not reasons:
                billed = locked_currency.get(cust_link.acct_id)
                if billed and currency and billed != currency:
                    reasons.append(f"The deal is in {currency} but the customer already has invoices in {billed}, "
                                   "and the ledger keeps one currency per customer. Change the deal's currency, or "
                                   "bill it to another customer record in the ledger.")
            if reasons:
                self._hold(deal, reasons)
                continue
            assert cust_link is not None  # no customer link is one of the reasons above
            lines = [self._line(li, items_by_sku, items_by_name, wanted_items) for li in deal.line_items]
            prior, doubt = self._prior_invoice(deal, cust_link.acct_id, currency, lines)
            if prior is not None:  # invoiced before Crossledger (by hand, or another tool): link, never re-make
                self._link_invoice(deal, prior, None, how="matched")
                self.counts.matched += 1
                continue
            if doubt:
                self._hold(deal, doubt)
                continue
            if self.e.acct.provider in CURRENCY_PER_CUSTOMER and currency:
                locked_currency.setdefault(cust_link.acct_id, currency)  # later deals this run see the lock
            invoice = Invoice(None, cust_link.acct_id, currency, tuple(lines), reference=reference_for(deal.id),
                              issue_date=issue, due_date=issue + dt.timedelta(days=terms))
            creates.append((deal, invoice, key))

        if e.acct.provider in UNIQUE_ITEM_NAMES:
            wanted_items = unique_item_names(wanted_items, items_by_name)
        item_ids = self._create_items(wanted_items)
        self._update_drafts(updates, item_ids)
        batch = max(1, getattr(e.acct.limits, "batch_max", 1))
        ready = []
        for deal, invoice, key in creates:
            with_items = tuple(_with_item(line, item_ids) for line in invoice.lines)
            missing = [line.item_id for line in with_items
                       if line.item_id is None or line.item_id.startswith("new-item:")]
            if missing:
                self._hold(deal, [self._item_refused.get(t or "", "One of its products could not be created in the "
                                                         "ledger. See the run's errors.") for t in missing[:1]])
                continue
            ready.append((deal, _replace_lines(invoice, with_items), key))
        for start in range(0, len(ready), batch):
            e._check_cancel()
            chunk = ready[start:start + batch]
            e.progress("Creating invoices for won deals", start, len(ready))
            e._journal([(key, "create_invoice", "accounting", ("deal", deal.id), None,
                         {"reference": inv.reference}) for deal, inv, key in chunk])
            results = e.acct.create_invoices([InvoiceWrite(key, inv) for _, inv, key in chunk])
            for (deal, inv, key), res in zip(chunk, results, strict=True):
                if res.ok:
                    e._finish(key, res.id)
                    e.counts["writes"] += 1
                    self.counts.created += 1
                    created = res.record if isinstance(res.record, Invoice) else None
                    assert res.id is not None  # an invoice the ledger made has its id
                    self._link_invoice(deal, res.id, created)
                    self._check_total(deal, inv, created)
                elif isinstance(res.error, ValidationRejected) and res.error.field == "currency":
                    self._refused_currency(deal, key, inv.currency, res.error.message)
                else:
                    e._fail(key, ("deal", deal.id), deal.name, res.error)

    def _locked_currencies(self) -> dict[str, str]:
        """Customer id -> the currency its invoices are in, where the ledger then refuses any other.

        QuickBooks and Zoho Books keep one currency per customer, fixed by its first transaction (the
        connectors give a customer without transactions the invoice's currency). Xero contacts take
        invoices in any currency, so nothing is locked there.
        """
        if self.e.acct.provider not in CURRENCY_PER_CUSTOMER:
            return {}
        out: dict[str, str] = {}
        for row in self._mirror_rows("accounting", "invoice").values():
            if row.get("customer_id") and row.get("currency") and row.get("status") != "void":
                out.setdefault(row["customer_id"], row["currency"])
        return out

    def _refused_currency(self, deal: Deal, key: str, currency: str, message: str) -> None:
        """The ledger cannot bill in the deal's currency: the deal waits with the ledger's words and what to do;
        a data problem of this one deal, not a failed run."""
        with self.store.session() as s:
            for row in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id, Journal.key == key,
                                                       Journal.status == "pending")):
                row.status, row.error = "failed", message
        if "deal's currency" not in message:
            message = (f"{message.rstrip('.')}. Add {currency} to the ledger's currencies (Settings → Currencies), or "
                       f"change the deal's currency in {provider_name(self.e.crm.provider)}.")
        self._hold(deal, message)

    def _ledger_currencies(self) -> set[str]:
        """The currencies the ledger can invoice in, when it can tell (empty set: it cannot, any ISO code goes)."""
        acct = self.e.acct
        listed = getattr(acct, "invoice_currencies", None)
        if callable(listed):
            return set(listed() or ())
        if acct.provider == "zohobooks" and hasattr(acct, "currency_ids"):
            return set(acct.currency_ids())
        extra = getattr(getattr(acct, "conn", None), "extra", None) or {}
        if acct.provider == "quickbooks" and extra.get("multicurrency") is False and extra.get("home_currency"):
            return {extra["home_currency"]}
        return set()

    def _no_customer(self, deal: Deal) -> str:
        """Why a deal has no customer in the ledger: no company at all, or its company is held back."""
        crm = provider_name(self.e.crm.provider)
        if not deal.company_id and not deal.contact_ids:
            return (f"The deal has no company or contact in {crm}, so there is no one to bill. Associate the deal "
                    f"with a company in {crm}; the invoice follows on the next sync.")
        refs = [("company", deal.company_id)] if deal.company_id else []
        refs += [("person", c) for c in deal.contact_ids]
        with self.store.session() as s:
            for rtype, rid in refs:
                q = s.scalars(select(Quarantine).where(Quarantine.workspace_id == self.ws_id,
                                                       Quarantine.record_type == rtype,
                                                       Quarantine.record_id == rid)).first()
                if q is not None:
                    items = (q.reasons or {}).get("items") or []
                    why = " ".join(i.get("message", "") for i in items if i.get("message")).strip()
                    return (f"Its company '{q.name or rid}' is held back, so it is not in the ledger yet"
                            f"{': ' + why if why else '.'} Fix the company in {crm} first; the invoice follows on "
                            "the next sync.")
        return ("Its customer is not in the ledger yet (the company is missing or could not be created). "
                f"Check the deal's company in {crm}; the invoice follows on the next sync.")

    def _line(self, li: LineItem, by_sku: dict[str, str], by_name: dict[str, tuple[str, str | None]],
              wanted: dict[str, Item]) -> InvoiceLine:
        """An invoice line for a deal line: its product by SKU, then name, else the default item or a new one."""
        item_id = by_sku.get((li.sku or "").casefold()) if li.sku else None
        if item_id is None:  # by name, unless that item is another product (another SKU) of the same name
            named_id, named_sku = by_name.get((li.product_name or li.description).casefold(), (None, None))
            if named_id and not (li.sku and named_sku and named_sku.casefold() != li.sku.casefold()):
                item_id = named_id
        if item_id is None and self.settings.get("default_item"):
            item_id = self.settings["default_item"]
        if item_id is None:
            token = f"new-item:{(li.sku or li.product_name or li.description).casefold()}"
            wanted.setdefault(token, Item(None, li.product_name or li.description, li.sku, li.unit_price))
            item_id = token
        return InvoiceLine(li.description, li.quantity, li.unit_price, li.discount_percent, item_id,
                           li.tax_code or self._tax_code(li))

    def _update_drafts(self, updates: list[tuple[Deal, Link, Invoice]], item_ids: dict[str, str]) -> None:
        """Deals edited after invoicing whose invoice may still change: send the new lines.

        The ledger connector refuses an invoice that is no longer a draft (sent, paid, void); that deal
        is flagged for review instead, as is one whose new product could not be created.
        """
        e = self.e
        ready: list[tuple[Deal, Link, Invoice]] = []
        for deal, link, invoice in updates:
            lines = tuple(_with_item(line, item_ids) for line in invoice.lines)
            if any(line.item_id is None or line.item_id.startswith("new-item:") for line in lines):
                self._flag(deal, link, "lines", CHANGED_LINES)
                continue
            ready.append((deal, link, _replace_lines(invoice, lines)))
        batch = max(1, getattr(e.acct.limits, "batch_max", 1))
        for start in range(0, len(ready), batch):
            e._check_cancel()
            chunk = ready[start:start + batch]
            keys = [op_key(e.ws_name, "update_invoice", deal.id, deal_digest(deal)) for deal, _, _ in chunk]
            e._journal([(k, "update_invoice", "accounting", ("deal", deal.id), link.acct_id,
                         {"reference": inv.reference}) for k, (deal, link, inv) in zip(keys, chunk, strict=True)])
            results = e.acct.update_invoices([InvoiceWrite(k, inv) for k, (_, _, inv) in zip(keys, chunk,
                                                                                           strict=True)])
            for k, (deal, link, _inv), res in zip(keys, chunk, results, strict=True):
                if res.ok:
                    e._finish(k, link.acct_id)
                    e.counts["writes"] += 1
                    self.counts.updated += 1
                    with self.store.session() as s:
                        kept = s.get(Link, link.id)
                        assert kept is not None  # read from the store at the start of this step
                        kept.snapshot = {**(kept.snapshot or {}), "deal": deal_digest(deal)}
                        kept.updated_at = utcnow()
                    if isinstance(res.record, Invoice):
                        self._mirror("accounting", "invoice", [(link.acct_id, _invoice_json(res.record), None,
                                                                False)])
                elif isinstance(res.error, ValidationRejected | StaleVersion):
                    with self.store.session() as s:  # not a draft any more: a person decides
                        for row in s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id,
                                                                   Journal.run_id == e.run_id, Journal.key == k,
                                                                   Journal.status == "pending")):
                            row.status, row.error = "failed", "invoice no longer a draft; flagged for review"
                    self._flag(deal, link, "lines", CHANGED_LINES)
                else:
                    e._fail(k, ("deal", deal.id), deal.name, res.error)

    def _tax_code(self, li: LineItem) -> str | None:
        codes = self.settings.get("tax_codes") or {}
        return codes.get(li.sku or "") or codes.get("default")

    def _create_items(self, wanted: dict[str, Item]) -> dict[str, str]:
        if not wanted:
            return {}
        e = self.e
        out: dict[str, str] = {}
        tokens = list(wanted)
        batch = max(1, getattr(e.acct.limits, "batch_max", 1))
        for start in range(0, len(tokens), batch):
            chunk = tokens[start:start + batch]
            keys = [op_key(e.ws_name, "create_item", t) for t in chunk]
            e._journal([(k, "create_item", "accounting", ("item", t), None, {"name": wanted[t].name})
                        for k, t in zip(keys, chunk, strict=True)])
            results = e.acct.create_items([ItemWrite(k, wanted[t]) for k, t in zip(keys, chunk, strict=True)])
            for k, t, res in zip(keys, chunk, results, strict=True):
                if res.ok:
                    assert res.id is not None  # an item the ledger made has its id
                    out[t] = res.id
                    e._finish(k, res.id)
                    e.counts["writes"] += 1
                    self.counts.items_created += 1
                    self._mirror("accounting", "item", [(res.id, {"name": wanted[t].name, "sku": wanted[t].sku},
                                                         None, False)])
                else:
                    e._fail(k, ("item", t), wanted[t].name, res.error)
                    reason = res.error.message if res.error else "no reason given"
                    self._item_refused[t] = (f"Its product '{wanted[t].name}' could not be created in "
                                             f"{registry_label(e.acct.provider)}: {reason} Correct the product "
                                             "and the deal follows on the next sync.")
        return out

    def _settle_pending(self) -> dict[str, str]:
        """Invoices journalled by a run that stopped before it heard back: find them by reference."""
        found: dict[str, str] = {}
        with self.store.session() as s:
            rows = s.scalars(select(Journal).where(Journal.workspace_id == self.ws_id, Journal.status == "pending",
                                                   Journal.op == "create_invoice")).all()
            for row in rows:
                hits = self.e.acct.find_invoices(row.payload.get("reference") or reference_for(str(row.crm_id)))
                if hits:
                    assert hits[0].id is not None  # an invoice read from the ledger has its id
                    found[row.key] = hits[0].id
                    row.status, row.target_id = "done", hits[0].id
                else:
                    row.status, row.error = "failed", "not made; planned again"
                    if row.crm_id:
                        self._replanned[row.crm_id] = f"replan-{row.id}"
        return found

    def _prior_invoice(self, deal: Deal, customer_id: str, currency: str | None,
                       lines: list[InvoiceLine]) -> tuple[str | None, str | None]:
        """The ledger's own invoice for this deal, when it was invoiced before Crossledger linked it.

        It is the invoice stamped with the deal's reference, or else the one invoice of the same customer,
        currency and total (before tax) issued closest to the close date and within PRIOR_DAYS of it that
        no other deal has. Returns (invoice id, None); (None, why) when two fit equally well, so that a
        person says which; (None, None) when there is none and a new invoice is due.
        """
        if self._unlinked is None:
            linked = {lk.acct_id for lk in self._links("invoice").values()}
            self._unlinked = {}
            for rid, row in self._mirror_rows("accounting", "invoice").items():
                if rid not in linked and not row.get("_archived") and row.get("status") != "void":
                    self._unlinked.setdefault(row.get("customer_id") or "", []).append((rid, row))
        mine = [(rid, row) for rid, row in self._unlinked.get(customer_id, []) if rid not in self._claimed]
        found, doubt = prior_invoice(deal, currency, lines, mine, self.e.acct.provider)
        if found is not None:
            self._claimed.add(found)
        return found, doubt

    def _link_invoice(self, deal: Deal, invoice_id: str, invoice: Invoice | None, *, how: str = "created") -> None:
        with self.store.session() as s:
            s.add(Link(workspace_id=self.ws_id, object_type="invoice", crm_type="deal", crm_id=deal.id,
                       acct_id=invoice_id, how=how, run_id=self.e.run_id,
                       snapshot={"deal": deal_digest(deal), "written": {}}))
            for q in s.scalars(select(Quarantine).where(Quarantine.workspace_id == self.ws_id,
                                                        Quarantine.record_type == "deal",
                                                        Quarantine.record_id == deal.id)):
                s.delete(q)
        if invoice is not None:
            self._mirror("accounting", "invoice", [(invoice_id, _invoice_json(invoice), None, False)])

    def _check_total(self, deal: Deal, sent: Invoice, made: Invoice | None) -> None:
        if made is None or made.total is None:
            return
        rounding = LEDGER_TAX_ROUNDING.get(self.e.acct.provider, "invoice")
        expected = invoice_totals(((li.quantity, li.unit_price, li.discount_percent, Decimal(0))
                                   for li in sent.lines), rounding=rounding)
        if made.total != expected.total and not any(li.tax_code for li in sent.lines):
            self.counts.errors.append(f"{deal.name}: the ledger's total {made.total} differs from the deal's "
                                      f"{expected.total}. Check the invoice in the ledger.")

    def _hold(self, deal: Deal, reason: str | list[str]) -> None:
        self.counts.held += 1
        reasons = [reason] if isinstance(reason, str) else reason
        self.e._quarantine_one(("deal", deal.id), deal.name, [{"field": "deal", "message": r} for r in reasons],
                               counted=True)  # a held deal is counted once, as deals_held

    def _check_invoiced(self, deal: Deal, link: Link, invoice: dict[str, Any] | None) -> bool:
        """A deal changed after its invoice was made. True when its still-draft invoice should follow
        the deal's new lines; anything else is flagged for review, once per change."""
        snap = link.snapshot or {}
        digest = deal_digest(deal)
        if not deal.won or deal.archived:
            self._flag(deal, link, "won", "The deal is no longer won but has an invoice. Void the invoice in the "
                                          "ledger if the sale fell through (Crossledger never voids on its own).")
            return False
        if digest == snap.get("deal"):
            return False
        status = (invoice or {}).get("status")
        may_change = status == "draft" or (
            self.e.acct.provider == "quickbooks" and status in ("awaiting_payment", "overdue")
            and (invoice or {}).get("balance") == (invoice or {}).get("total"))  # QBO has no drafts
        if may_change and self.settings.get("edited_deal", "update_draft") == "update_draft" and deal.line_items:
            return True
        self._flag(deal, link, "lines", CHANGED_LINES)
        return False

    def _flag(self, deal: Deal, link: Link, what: str, message: str) -> None:
        snap = link.snapshot or {}
        mark = f"{what}:{deal_digest(deal)}:{deal.won}"
        if snap.get("flagged") == mark:
            return
        with self.store.session() as s:
            row = s.get(Link, link.id)
            assert row is not None  # read from the store earlier in this run
            s.add(ConflictRow(workspace_id=self.ws_id, link_id=link.id, crm_type="deal", crm_id=deal.id,
                              acct_id=link.acct_id, field=f"invoice:{what}", crm_value=mend_broken(deal.name),
                              acct_value=message, base_value=None, rule="ask", outcome="open",
                              run_id=self.e.run_id))
            row.snapshot = {**(row.snapshot or {}), "flagged": mark}
        link.snapshot = {**snap, "flagged": mark}
        self.counts.flagged += 1
        self.e.counts["conflicts"] = self.e.counts.get("conflicts", 0) + 1

    # -- invoice status -> deal ---------------------------------------------------------------
    def _write_back(self) -> None:
        e = self.e
        links = list(self._links("invoice").values())
        if not links:
            return
        invoices = self._mirror_rows("accounting", "invoice", [lk.acct_id for lk in links])
        payments = self._mirror_rows("accounting", "payment")
        last_paid: dict[str, str] = {}
        for p in payments.values():
            inv_id = p.get("invoice_id")
            if inv_id and p.get("date") and p["date"] > last_paid.get(inv_id, ""):
                last_paid[inv_id] = p["date"]
        writes: list[tuple[Link, dict[str, Any]]] = []
        for lk in links:
            inv = invoices.get(lk.acct_id)
            if inv is None:
                continue
            values = {
                "crossledger_invoice_status": STATUS_WORDS.get(inv.get("status") or "", inv.get("status") or ""),
                "crossledger_amount_paid": inv.get("amount_paid"),
                "crossledger_balance_due": inv.get("balance"),
                "crossledger_last_payment": last_paid.get(lk.acct_id),
                "crossledger_invoice_number": inv.get("number"),
                "crossledger_invoice_link": inv.get("web_url") or e.acct.invoice_url(lk.acct_id),
            }
            if values != (lk.snapshot or {}).get("written"):
                writes.append((lk, values))
        if not writes:
            return
        field_map = self._deal_fields()
        batch = max(1, getattr(e.crm.limits, "batch_max", 1))
        for start in range(0, len(writes), batch):
            e._check_cancel()
            chunk = writes[start:start + batch]
            keys = [op_key(e.ws_name, "deal_status", lk.crm_id, json.dumps(v, sort_keys=True)) for lk, v in chunk]
            e._journal([(k, "update_deal", "crm", ("deal", lk.crm_id), lk.crm_id, {"values": v})
                        for k, (lk, v) in zip(keys, chunk, strict=True)])
            results = e.crm.update_deals([
                RecordWrite(k, "deal", lk.crm_id,
                            {field_map[name]: ("" if value is None else value) for name, value in v.items()})
                for k, (lk, v) in zip(keys, chunk, strict=True)])
            for k, (lk, v), res in zip(keys, chunk, results, strict=True):
                if res.ok:
                    e._finish(k, lk.crm_id)
                    e.counts["writes"] += 1
                    self.counts.deals_updated += 1
                    before = (lk.snapshot or {}).get("written") or {}
                    e._record_changes(k, "crm", lk.crm_id, {n: (before.get(n), val) for n, val in v.items()
                                                            if before.get(n) != val}, "ledger-owns")
                    with self.store.session() as s:
                        row = s.get(Link, lk.id)
                        assert row is not None  # read from the store at the start of this step
                        row.snapshot = {**(row.snapshot or {}), "written": v}
                        row.updated_at = utcnow()
                else:
                    e._fail(k, ("deal", lk.crm_id), lk.crm_id, res.error)

    def _deal_fields(self) -> dict[str, str]:
        known = (self.e.settings.get("deal_fields") or {})
        if all(f.name in known for f in DEAL_FIELDS):
            return known
        created = self.e.crm.ensure_deal_fields(DEAL_FIELDS)
        merged = {**known, **created}
        with self.store.session() as s:
            ws = s.get(Workspace, self.ws_id)
            assert ws is not None
            ws.settings = {**(ws.settings or {}), "deal_fields": merged}
        self.e.settings["deal_fields"] = merged
        return merged


UNIQUE_ITEM_NAMES = frozenset({"quickbooks", "zohobooks"})  # ledgers that refuse two items of the same name
ITEM_NAME_MAX = 100  # QuickBooks Online's Item.Name limit; Zoho Books allows more


def unique_item_names(wanted: dict[str, Item], ledger: dict[str, tuple[str, str | None]]) -> dict[str, Item]:
    """New items whose name another product already has get their SKU in the name: "Widget (W-2)".

    ``ledger``: the ledger's items by folded name, with their SKU. Deterministic: the same products and
    ledger give the same names, whatever order the deals come in. A product without a SKU keeps its
    name (the ledger's item of that name is that product).
    """
    by_name: dict[str, set[str]] = {}
    for token, item in wanted.items():
        by_name.setdefault(item.name.casefold(), set()).add(token)
    out: dict[str, Item] = {}
    for token, item in wanted.items():
        folded = item.name.casefold()
        clash = folded in ledger or len(by_name[folded]) > 1
        if clash and item.sku:
            suffix = f" ({item.sku})"
            out[token] = replace(item, name=item.name[:ITEM_NAME_MAX - len(suffix)].rstrip() + suffix)
        else:
            out[token] = item
    return out


def registry_label(provider: str) -> str:
    from app.connectors import registry

    return registry.info(provider).label


def _with_item(line: InvoiceLine, item_ids: dict[str, str]) -> InvoiceLine:
    if line.item_id and line.item_id.startswith("new-item:"):
        return replace(line, item_id=item_ids.get(line.item_id, line.item_id))
    return line


def _replace_lines(invoice: Invoice, lines: tuple[InvoiceLine, ...]) -> Invoice:
    return replace(invoice, lines=lines)

