"""Where an invoice is decided: won deals in, invoice creates, updates, holds, items and deal write-backs out.

A pure function, like the customer planner (``app.sync.planner``): no store, no connector, no clock.
The deals, their links and snapshots, the ledger's invoices and items (as mirrored), the workspace's
invoice settings and "today" come in; :func:`plan_invoices` says what to do with each deal, and
:func:`plan_write_backs` what each linked deal should show of its invoice. ``app.sync.invoice_apply``
carries the plan out through the run's journal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from app.domain.models import Deal, Invoice, InvoiceLine, Item, LineItem
from app.domain.money import LEDGER_TAX_ROUNDING, invoice_totals
from app.domain.settings import InvoiceOptions
from app.store.repos import HeldRecord, LinkRecord
from app.sync.deal_checks import check_currency, check_dates, check_lines, normal_currency, provider_name
from app.sync.invoice_lifecycle import (
    CloseFlags,
    CreditInvoice,
    CustomerState,
    VoidInvoice,
    after_invoice,
    customer_hold,
)
from app.sync.planner import op_key

STATUS_WORDS = {"draft": "Draft", "awaiting_payment": "Awaiting payment", "partly_paid": "Partly paid",
                "paid": "Paid", "overdue": "Overdue", "void": "Void"}

CHANGED_LINES = ("The deal's line items changed after it was invoiced, and the invoice was left as it is "
                 "(it is sent or paid, or this workspace asks for review). Review the invoice in the ledger: "
                 "change it there, or issue a credit note or a new invoice if needed.")
CURRENCY_PER_CUSTOMER = {"quickbooks", "zohobooks"}
PRIOR_DAYS = 45  # an invoice issued this many days from a deal's close date can be that deal's invoice
REFERENCE_FIELD = {"quickbooks": "memo (private note)", "xero": "Reference", "zohobooks": "Reference#"}
UNIQUE_ITEM_NAMES = frozenset({"quickbooks", "zohobooks"})  # ledgers that refuse two items of the same name
ITEM_NAME_MAX = 100  # QuickBooks Online's Item.Name limit; Zoho Books allows more
NEW_ITEM = "new-item:"  # an invoice line's item still to be made: "new-item:<sku or name>"


def reference_for(deal_id: str) -> str:
    """The stamp on the invoice that finds it again: short enough for every ledger's field."""
    return f"CRM deal {deal_id}"


def deal_digest(deal: Deal) -> str:
    lines = sorted((li.description, str(li.quantity), str(li.unit_price), str(li.discount_percent), li.sku or "")
                   for li in deal.line_items)
    return hashlib.sha256(json.dumps([deal.currency, deal.company_id, lines]).encode()).hexdigest()[:16]


def flag_mark(deal: Deal, what: str) -> str:
    """What a flagged link remembers, so that the same cause (``app.sync.lifecycle``'s code) of the same
    deal is flagged once."""
    return f"{what}:{deal_digest(deal)}:{deal.won}"


# -- in and out ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InvoicePlanInput:
    ws_name: str
    crm: str  # the providers, for their limits and names
    ledger: str
    today: dt.date  # the issue date of a deal without a close date
    deals: Mapping[str, Deal]  # the deals to look at: read this run, or held back earlier
    customer_links: Mapping[tuple[str, str], LinkRecord]
    invoice_links: Mapping[str, LinkRecord]  # deal id -> its invoice's link
    invoices: Mapping[str, dict[str, Any]]  # the ledger's invoices as mirrored (with "_archived")
    items: Mapping[str, dict[str, Any]]  # the ledger's items as mirrored
    settings: InvoiceOptions = field(default_factory=InvoiceOptions)  # the workspace's invoice settings
    held: Mapping[tuple[str, str], HeldRecord] = field(default_factory=dict)  # CRM records held back
    undone: Mapping[tuple[str, str], str] = field(default_factory=dict)  # undone invoices: a new key part
    replanned: Mapping[str, str] = field(default_factory=dict)  # deal id -> key part, journalled but not made
    settled: Mapping[str, str] = field(default_factory=dict)  # create key -> the invoice found made
    ledger_currencies: frozenset[str] | None = None  # None: the ledger cannot tell (or was not asked)
    customer_states: Mapping[str, CustomerState] = field(default_factory=dict)  # ledger customers not active
    credited: Mapping[str, Decimal] = field(default_factory=dict)  # invoice id -> credit notes on it
    lost: frozenset[str] = frozenset()  # deals the CRM marks lost (not merely reopened)

    def __post_init__(self) -> None:
        if not isinstance(self.settings, InvoiceOptions):  # the stored shape, as tables of cases give it
            object.__setattr__(self, "settings", InvoiceOptions.from_json(self.settings))


@dataclass(frozen=True)
class HoldDeal:
    deal: Deal
    reasons: tuple[str, ...]
    way_out: dict[str, Any] | None = None  # the first reason's one click (its customer archived or merged)


@dataclass(frozen=True)
class FlagDeal:
    """A deal invoiced earlier that a person has to look at (listed on the Review page)."""

    deal: Deal
    link: LinkRecord
    what: str  # "lines" | "won"
    message: str
    code: str = ""  # the cause (app.sync.lifecycle's codes): the flag is marked by it


@dataclass(frozen=True)
class LinkInvoice:
    deal: Deal
    invoice_id: str
    how: str  # "created": made by an earlier run that stopped | "matched": the ledger had it already
    replaces: LinkRecord | None = None  # the deal's link to its voided invoice


@dataclass(frozen=True)
class CreateInvoice:
    deal: Deal
    invoice: Invoice  # lines whose item starts with NEW_ITEM wait for that item
    key: str
    replaces: LinkRecord | None = None  # the deal's link to its voided invoice: invoiced again


@dataclass(frozen=True)
class UpdateInvoice:
    deal: Deal
    link: LinkRecord
    invoice: Invoice
    key: str


@dataclass
class InvoicePlan:
    links: list[LinkInvoice] = field(default_factory=list)
    flags: list[FlagDeal] = field(default_factory=list)
    holds: list[HoldDeal] = field(default_factory=list)
    items: dict[str, Item] = field(default_factory=dict)  # NEW_ITEM token -> the item to create
    updates: list[UpdateInvoice] = field(default_factory=list)
    creates: list[CreateInvoice] = field(default_factory=list)
    voids: list[VoidInvoice] = field(default_factory=list)
    credits: list[CreditInvoice] = field(default_factory=list)
    closes: list[CloseFlags] = field(default_factory=list)
    marks: list[tuple[LinkRecord, dict[str, Any]]] = field(default_factory=list)  # invoice link snapshot additions

    @property
    def matched(self) -> int:
        return sum(1 for lk in self.links if lk.how == "matched")


@dataclass(frozen=True)
class DealWriteBack:
    link: LinkRecord
    values: dict[str, Any]
    key: str

    def changes(self) -> dict[str, tuple[Any, Any]]:
        before = self.link.snapshot.get("written") or {}
        return {n: (before.get(n), v) for n, v in self.values.items() if before.get(n) != v}


# -- deals -> invoices ----------------------------------------------------------------------------------
def create_key(inp: InvoicePlanInput, deal: Deal) -> str:
    """The create's idempotency key: an undone invoice, or one journalled but never made, gets a new one."""
    again = "+".join(filter(None, (inp.undone.get(("deal", deal.id)), inp.replanned.get(deal.id)))) or None
    return op_key(inp.ws_name, "create_invoice", deal.id, *([again] if again else []))


def _to_invoice(inp: InvoicePlanInput) -> list[Deal]:
    """Won deals without an invoice, not made by an earlier run: the ones a new invoice may be due for."""
    return [d for d in sorted(inp.deals.values(), key=lambda d: d.id)
            if d.id not in inp.invoice_links and d.won and not d.archived and create_key(inp, d) not in inp.settled]


def needs_ledger_currencies(inp: InvoicePlanInput) -> bool:
    """Whether the plan looks at the ledger's currencies (then ask the ledger once, and only then)."""
    return any(check_currency(d.currency, crm=inp.crm, ledger=inp.ledger, allowed=None) is None
               for d in _to_invoice(inp))


def plan_invoices(inp: InvoicePlanInput) -> InvoicePlan:
    out = InvoicePlan()
    linked_now: set[str] = set()  # invoices linked by this plan
    lines = _Lines(inp, out.items)
    prior = _Prior(inp, linked_now)
    locked = _locked_currencies(inp)
    allowed = set(inp.ledger_currencies or ()) or None
    terms = inp.settings.payment_terms_days
    for deal in sorted(inp.deals.values(), key=lambda d: d.id):
        link = inp.invoice_links.get(deal.id)
        if link is not None:
            again = _invoiced(inp, deal, link, lines, out)
            if again is None:
                continue
            key = again
        elif not deal.won or deal.archived:
            continue
        else:
            key = create_key(inp, deal)
        if key in inp.settled:
            out.links.append(LinkInvoice(deal, inp.settled[key], "created", link))
            linked_now.add(inp.settled[key])
            continue
        cust_link = inp.customer_links.get(("company", deal.company_id or "")) or next(
            (inp.customer_links.get(("person", c)) for c in deal.contact_ids if ("person", c) in inp.customer_links),
            None)
        currency = normal_currency(deal.currency)
        reasons = check_lines(deal, crm=inp.crm, ledger=inp.ledger)
        issue = deal.close_date or inp.today
        if bad_date := check_dates(issue, terms, crm=inp.crm, ledger=inp.ledger):
            reasons.append(bad_date)
        problem = check_currency(deal.currency, crm=inp.crm, ledger=inp.ledger, allowed=allowed)
        reasons += [problem] if problem else []
        if cust_link is None:
            reasons.insert(0, no_customer(inp, deal))
        elif not reasons:
            billed = locked.get(cust_link.acct_id)
            if billed and currency and billed != currency:
                reasons.append(f"The deal is in {currency} but the customer already has invoices in {billed}, "
                               "and the ledger keeps one currency per customer. Change the deal's currency, or "
                               "bill it to another customer record in the ledger.")
        way_out = None
        if cust_link is not None and (state := inp.customer_states.get(cust_link.acct_id)) is not None:
            why, way_out = customer_hold(state, cust_link.acct_id, cust_link.ref, inp.ledger)
            reasons.insert(0, why)
        if reasons:
            out.holds.append(HoldDeal(deal, tuple(reasons), way_out))
            continue
        assert cust_link is not None  # no customer link is one of the reasons above
        deal_lines = [lines.line(li) for li in deal.line_items]
        found, doubt = prior.find(deal, cust_link.acct_id, currency, deal_lines) if link is None else (None, None)
        if found is not None:  # invoiced before Crossledger (by hand, or another tool): link, never re-make
            out.links.append(LinkInvoice(deal, found, "matched"))
            linked_now.add(found)
            continue
        if doubt:
            out.holds.append(HoldDeal(deal, (doubt,)))
            continue
        if inp.ledger in CURRENCY_PER_CUSTOMER and currency:
            locked.setdefault(cust_link.acct_id, currency)  # later deals of this plan see the lock
        out.creates.append(CreateInvoice(deal, Invoice(
            None, cust_link.acct_id, currency, tuple(deal_lines), reference=reference_for(deal.id), issue_date=issue,
            due_date=issue + dt.timedelta(days=terms)), key, link))
    if inp.ledger in UNIQUE_ITEM_NAMES:
        named = unique_item_names(out.items, lines.by_name)
        out.items.clear()
        out.items.update(named)
    return out


def _invoiced(inp: InvoicePlanInput, deal: Deal, link: LinkRecord, lines: _Lines, out: InvoicePlan) -> str | None:
    """A deal with an invoice, as the workspace's rule for deals changed after invoicing says
    (``app.sync.lifecycle``): its draft follows its new lines, the invoice is voided or credited, or the
    deal is flagged, once per change; flags whose cause is gone are closed. Returns the key of a new
    invoice when the deal is to be invoiced again (its invoice voided), else None."""
    invoice = inp.invoices.get(link.acct_id) or {}
    decided = after_invoice(deal, link, invoice, ledger=inp.ledger, rule_options=inp.settings,
                            credited=inp.credited.get(link.acct_id, Decimal(0)), lost=deal.id in inp.lost,
                            digest=deal_digest(deal), key=lambda *parts: op_key(inp.ws_name, *parts))
    flags = list(decided.flags)
    if decided.update:
        if problems := check_lines(deal, crm=inp.crm, ledger=inp.ledger):  # a person decides
            flags.append(("lines", " ".join(problems) + " The invoice was left as it is.", "deal_lines"))
        else:
            new_lines = tuple(lines.line(li) for li in deal.line_items)
            out.updates.append(UpdateInvoice(deal, link, Invoice(
                link.acct_id, invoice.get("customer_id") or "", invoice.get("currency") or deal.currency, new_lines,
                reference=invoice.get("reference") or reference_for(deal.id)),
                op_key(inp.ws_name, "update_invoice", deal.id, deal_digest(deal))))
    out.flags += [FlagDeal(deal, link, what, message, code) for what, message, code in flags]
    out.voids += decided.voids
    out.credits += decided.credits
    if decided.close and not flags:
        out.closes.append(CloseFlags(deal, link))
    if decided.marks:
        out.marks.append((link, decided.marks))
    return decided.reinvoice if deal.won and not deal.archived else None


def no_customer(inp: InvoicePlanInput, deal: Deal) -> str:
    """Why a deal has no customer in the ledger: no company at all, or its company is held back."""
    crm = provider_name(inp.crm)
    if not deal.company_id and not deal.contact_ids:
        return (f"The deal has no company or contact in {crm}, so there is no one to bill. Associate the deal "
                f"with a company in {crm}; the invoice follows on the next sync.")
    refs = [("company", deal.company_id)] if deal.company_id else []
    refs += [("person", c) for c in deal.contact_ids]
    for ref in refs:
        q = inp.held.get(ref)
        if q is not None:
            why = q.why()
            return (f"Its company '{q.name or ref[1]}' is held back, so it is not in the ledger yet"
                    f"{': ' + why if why else '.'} Fix the company in {crm} first; the invoice follows on "
                    "the next sync.")
    return ("Its customer is not in the ledger yet (the company is missing or could not be created). "
            f"Check the deal's company in {crm}; the invoice follows on the next sync.")


class _Lines:
    """Invoice lines for deal lines: the product by SKU, then name, else the default item or a new one."""

    def __init__(self, inp: InvoicePlanInput, wanted: dict[str, Item]) -> None:
        self.settings, self.wanted = inp.settings, wanted
        self.by_sku = {(r.get("sku") or "").casefold(): rid for rid, r in inp.items.items() if r.get("sku")}
        self.by_name = {(r.get("name") or "").casefold(): (rid, r.get("sku")) for rid, r in inp.items.items()}

    def line(self, li: LineItem) -> InvoiceLine:
        item_id = self.by_sku.get((li.sku or "").casefold()) if li.sku else None
        if item_id is None:  # by name, unless that item is another product (another SKU) of the same name
            named_id, named_sku = self.by_name.get((li.product_name or li.description).casefold(), (None, None))
            if named_id and not (li.sku and named_sku and named_sku.casefold() != li.sku.casefold()):
                item_id = named_id
        if item_id is None and self.settings.default_item:
            item_id = self.settings.default_item
        if item_id is None:
            token = f"{NEW_ITEM}{(li.sku or li.product_name or li.description).casefold()}"
            self.wanted.setdefault(token, Item(None, li.product_name or li.description, li.sku, li.unit_price))
            item_id = token
        codes = self.settings.tax_codes
        return InvoiceLine(li.description, li.quantity, li.unit_price, li.discount_percent, item_id,
                           li.tax_code or codes.get(li.sku or "") or codes.get("default"))


class _Prior:
    """The ledger's own invoice for a deal, when it was invoiced before Crossledger linked it."""

    def __init__(self, inp: InvoicePlanInput, linked_now: set[str]) -> None:
        self.inp, self.linked_now = inp, linked_now
        self.unlinked: dict[str, list[tuple[str, dict[str, Any]]]] | None = None  # customer -> invoices
        self.claimed: set[str] = set()  # matched to a deal by this plan

    def find(self, deal: Deal, customer_id: str, currency: str | None,
             lines: list[InvoiceLine]) -> tuple[str | None, str | None]:
        if self.unlinked is None:  # the invoices no deal has, as of the first deal that asks
            linked = {lk.acct_id for lk in self.inp.invoice_links.values()} | self.linked_now
            self.unlinked = {}
            for rid, row in self.inp.invoices.items():
                if rid not in linked and not row.get("_archived") and row.get("status") != "void":
                    self.unlinked.setdefault(row.get("customer_id") or "", []).append((rid, row))
        mine = [(rid, row) for rid, row in self.unlinked.get(customer_id, []) if rid not in self.claimed]
        found, doubt = prior_invoice(deal, currency, lines, mine, self.inp.ledger)
        if found is not None:
            self.claimed.add(found)
        return found, doubt


def _locked_currencies(inp: InvoicePlanInput) -> dict[str, str]:
    """Customer id -> the currency its invoices are in, where the ledger then refuses any other.

    QuickBooks and Zoho Books keep one currency per customer, fixed by its first transaction (the
    connectors give a customer without transactions the invoice's currency). Xero contacts take
    invoices in any currency, so nothing is locked there.
    """
    if inp.ledger not in CURRENCY_PER_CUSTOMER:
        return {}
    out: dict[str, str] = {}
    for row in inp.invoices.values():
        if row.get("customer_id") and row.get("currency") and row.get("status") != "void":
            out.setdefault(row["customer_id"], row["currency"])
    return out


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


def with_items(invoice: Invoice, item_ids: Mapping[str, str]) -> Invoice | None:
    """The invoice with its new items' ids, or None when one of them was not made."""
    lines = tuple(replace(li, item_id=item_ids.get(li.item_id, li.item_id))
                  if li.item_id and li.item_id.startswith(NEW_ITEM) else li for li in invoice.lines)
    if any(li.item_id is None or li.item_id.startswith(NEW_ITEM) for li in lines):
        return None
    return replace(invoice, lines=lines)


def missing_items(invoice: Invoice, item_ids: Mapping[str, str]) -> list[str | None]:
    """The new-item tokens (or None for a line without an item) this invoice still waits for."""
    out: list[str | None] = []
    for li in invoice.lines:
        item_id = item_ids.get(li.item_id, li.item_id) if li.item_id and li.item_id.startswith(NEW_ITEM) \
            else li.item_id
        if item_id is None or item_id.startswith(NEW_ITEM):
            out.append(item_id)
    return out


# -- invoice status -> deal ----------------------------------------------------------------------------
def plan_write_backs(ws_name: str, links: Sequence[LinkRecord], invoices: Mapping[str, dict[str, Any]],
                     payments: Mapping[str, dict[str, Any]], urls: Mapping[str, str]) -> list[DealWriteBack]:
    """What each invoiced deal should show of its invoice (status, paid, balance, last payment, number,
    link), for the deals that do not show it yet. ``urls``: the ledger's link to each invoice whose
    mirrored row has none."""
    last_paid: dict[str, str] = {}
    for p in payments.values():
        inv_id = p.get("invoice_id")
        if inv_id and p.get("date") and p["date"] > last_paid.get(inv_id, ""):
            last_paid[inv_id] = p["date"]
    out: list[DealWriteBack] = []
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
            "crossledger_invoice_link": inv.get("web_url") or urls.get(lk.acct_id),
        }
        if values != (lk.snapshot or {}).get("written"):
            out.append(DealWriteBack(lk, values, op_key(ws_name, "deal_status", lk.crm_id,
                                                        json.dumps(values, sort_keys=True))))
    return out
