"""The discrepancy rules: a pure function of one month's deals, invoices, payments and links."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from app.domain.lifecycle import RecordFate
from app.domain.models import Deal, Invoice, Party, Payment
from app.domain.text import compact_tax_id, normalise_email, normalise_name
from app.reconcile.changes import NEW_KINDS, NEW_MONEY_KINDS, credited_flag, deal_flags, late_payments, link_items

TOLERANCE = Decimal("0.01")
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
# Discrepancies that move money between the two sides: listed first, largest gap first.
MONEY_KINDS = frozenset({"won_without_invoice", "invoice_without_deal", "amount_mismatch", "currency_mismatch",
                         "void_while_won"}) | NEW_MONEY_KINDS

KINDS = {
    "won_without_invoice": ("high", "Won deal with no invoice"),
    "invoice_without_deal": ("medium", "Invoice with no deal"),
    "amount_mismatch": ("high", "Amounts differ"),
    "currency_mismatch": ("high", "Currencies differ"),
    "customer_mismatch": ("medium", "Different customer"),
    "payment_status_mismatch": ("medium", "Payment status out of date in the CRM"),
    "duplicate_customer": ("low", "Possible duplicate customers in the ledger"),
    "held_back": ("medium", "Record held back or in conflict"),
    "void_while_won": ("high", "Invoice voided or deleted, deal still won"),
    **NEW_KINDS,
}


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: str
    severity: str
    explanation: str
    crm_id: str | None = None
    crm_name: str | None = None
    crm_url: str | None = None
    acct_id: str | None = None
    acct_name: str | None = None
    acct_url: str | None = None
    currency: str | None = None
    crm_amount: Decimal | None = None
    acct_amount: Decimal | None = None

    @property
    def title(self) -> str:
        return KINDS[self.kind][1]

    @property
    def gap(self) -> Decimal | None:
        """CRM minus ledger when either side has an amount (a missing side counts as zero); None for two
        currencies, which have no gap to show."""
        if (self.crm_amount is None and self.acct_amount is None) or self.kind == "currency_mismatch":
            return None
        return (self.crm_amount or Decimal(0)) - (self.acct_amount or Decimal(0))

    @property
    def is_money(self) -> bool:
        return self.kind in MONEY_KINDS


def priority(d: Discrepancy) -> tuple:
    """Money first, largest gap first; then the rest by severity: the order a bookkeeper works through them."""
    gap = d.gap
    return (not d.is_money, -abs(gap) if gap is not None else Decimal(0), SEVERITY_ORDER[d.severity], d.kind,
            d.crm_name or d.acct_name or "")


@dataclass(frozen=True, slots=True)
class HeldRecord:
    record_type: str
    record_id: str
    name: str
    reason: str
    side: str = "crm"  # which app holds the record: "crm" or "accounting"
    url: str | None = None  # the record in that app's web pages


@dataclass
class MonthData:
    month: str  # YYYY-MM
    deals: list[Deal]
    invoices: list[Invoice]  # every invoice we know of (the month's are picked here)
    payments: list[Payment]
    customers: dict[str, Party]  # ledger customers by id (active only)
    customer_names: dict[str, str] = field(default_factory=dict)
    deal_invoice: dict[str, str] = field(default_factory=dict)  # deal id -> invoice id
    company_customer: dict[str, str] = field(default_factory=dict)  # CRM company/person id -> customer id
    # ledger customer id -> the CRM records (type, id) linked to it
    customer_records: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    deal_status_written: dict[str, str] = field(default_factory=dict)  # deal id -> status shown on the deal
    deleted_invoices: set[str] = field(default_factory=set)
    held: list[HeldRecord] = field(default_factory=list)
    crm_url: Callable[[str], str | None] = lambda deal_id: None
    acct_url: Callable[[str], str | None] = lambda invoice_id: None
    customer_url: Callable[[str], str | None] = lambda customer_id: None  # a ledger customer's page
    company_url: Callable[[str], str | None] = lambda crm_id: None  # a CRM company's (or person's) page
    status_words: dict[str, str] = field(default_factory=dict)
    # What months of operation bring (app/reconcile/changes.py):
    crm_fates: dict[str, RecordFate] = field(default_factory=dict)  # linked CRM company/person -> its fate
    ledger_fates: dict[str, RecordFate] = field(default_factory=dict)  # linked customer -> its fate
    crm_names: dict[str, str] = field(default_factory=dict)  # CRM company/person id -> name
    credited: dict[str, Decimal] = field(default_factory=dict)  # invoice id -> credit notes allocated to it
    lost_deals: set[str] = field(default_factory=set)  # deals marked lost (not merely reopened)
    closed: dict[str, dt.datetime] = field(default_factory=dict)  # month -> when its report was last made


@dataclass
class Report:
    month: str
    discrepancies: list[Discrepancy]
    crm_totals: dict[str, Decimal]
    ledger_totals: dict[str, Decimal]
    deals: list[Deal]
    invoices: list[Invoice]
    payments: list[Payment]
    # Data quality: every record held back or waiting in Review and every group of duplicate customers,
    # whether or not it touches the month; only those that touch it (its deals, its invoices, their companies
    # and customers) are also the month's discrepancies.
    data_quality: list[Discrepancy] = field(default_factory=list)

    @property
    def money(self) -> list[Discrepancy]:
        return [d for d in self.discrepancies if d.is_money]

    @property
    def set_apart(self) -> list[Discrepancy]:
        """The data-quality items that do not touch this month: shown apart, folded away."""
        listed = {id(d) for d in self.discrepancies}
        return [d for d in self.data_quality if id(d) not in listed]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for d in self.discrepancies:
            out[d.kind] += 1
        return dict(out)

    def gap(self, currency: str) -> Decimal:
        return self.crm_totals.get(currency, Decimal(0)) - self.ledger_totals.get(currency, Decimal(0))


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    year, mon = (int(x) for x in month.split("-"))
    start = dt.date(year, mon, 1)
    end = dt.date(year + (mon == 12), mon % 12 + 1, 1)
    return start, end


def reconcile(data: MonthData) -> Report:
    start, end = month_bounds(data.month)
    in_month = lambda d: d is not None and start <= d < end  # noqa: E731
    invoices = {i.id: i for i in data.invoices if i.id}
    won = [d for d in data.deals if d.won and not d.archived and in_month(d.close_date)]
    month_invoices = [i for i in invoices.values() if in_month(i.issue_date)]
    linked_invoice_ids = set(data.deal_invoice.values())
    out: list[Discrepancy] = []

    def flag(kind: str, text: str, deal: Deal | None = None, inv: Invoice | None = None, **kw) -> None:
        acct_id = inv.id if inv else kw.pop("acct_id", None)
        acct_name = (inv.number or inv.reference) if inv else kw.pop("acct_name", None)
        kw.pop("acct_id", None)
        kw.pop("acct_name", None)
        out.append(Discrepancy(
            kind, KINDS[kind][0], text,
            crm_id=deal.id if deal else None, crm_name=deal.name if deal else None,
            crm_url=data.crm_url(deal.id) if deal else None, acct_id=acct_id, acct_name=acct_name,
            acct_url=data.acct_url(inv.id) if inv and inv.id else None, **kw))

    crm_totals: dict[str, Decimal] = defaultdict(Decimal)
    for deal in won:
        amount = deal.net
        crm_totals[deal.currency] += amount
        inv_id = data.deal_invoice.get(deal.id)
        inv = invoices.get(inv_id) if inv_id else None
        if inv_id is None:
            flag("won_without_invoice", f"'{deal.name}' was won on {deal.close_date:%d %b %Y} for "
                 f"{deal.currency} {amount:,.2f} but has no invoice. Sync the workspace, or check why the deal "
                 "is held back.", deal, currency=deal.currency, crm_amount=amount)
            continue
        if inv is None or inv_id in data.deleted_invoices or inv.status == "void":
            flag("void_while_won", f"The invoice for '{deal.name}' was voided or deleted in the ledger, but the "
                 "deal is still won in the CRM. Re-invoice it, or mark the deal lost.", deal, inv,
                 acct_id=inv_id, currency=deal.currency, crm_amount=amount)
            continue
        credited = data.credited.get(inv.id or "", Decimal(0))
        if inv.currency == deal.currency and credited_flag(flag, deal, inv, amount, credited):
            pass
        elif inv.currency != deal.currency:
            flag("currency_mismatch", f"'{deal.name}' is in {deal.currency} but its invoice is in {inv.currency}.",
                 deal, inv, currency=deal.currency, crm_amount=amount, acct_amount=inv.total)
        elif inv.total is not None and not credited and abs(inv.total - amount) > TOLERANCE:
            flag("amount_mismatch", f"'{deal.name}' is worth {deal.currency} {amount:,.2f} in the CRM but its "
                 f"invoice totals {inv.currency} {inv.total:,.2f} (a gap of {amount - inv.total:+,.2f}).",
                 deal, inv, currency=deal.currency, crm_amount=amount, acct_amount=inv.total)
        expected_customer = data.company_customer.get(deal.company_id or "")
        if expected_customer and inv.customer_id != expected_customer:
            flag("customer_mismatch", f"'{deal.name}' belongs to "
                 f"'{data.customer_names.get(expected_customer, expected_customer)}' but its invoice is billed "
                 f"to '{data.customer_names.get(inv.customer_id, inv.customer_id)}'.", deal, inv)
        shown = data.deal_status_written.get(deal.id)
        actual = data.status_words.get(inv.status or "", inv.status)
        if shown is not None and actual and shown != actual:
            flag("payment_status_mismatch", f"The CRM shows '{shown}' on '{deal.name}' but the ledger says "
                 f"'{actual}'. The next sync updates the deal.", deal, inv)

    deal_flags(flag, data.deals, invoices, data.deal_invoice, data.credited, data.deleted_invoices, in_month,
               data.lost_deals)
    ledger_totals: dict[str, Decimal] = defaultdict(Decimal)
    for inv in month_invoices:
        if inv.status == "void" or inv.id in data.deleted_invoices:
            continue
        ledger_totals[inv.currency] += (inv.total or Decimal(0)) - data.credited.get(inv.id or "", Decimal(0))
        if inv.id not in linked_invoice_ids:
            flag("invoice_without_deal", f"Invoice {inv.number or inv.id} to "
                 f"'{data.customer_names.get(inv.customer_id, inv.customer_id)}' for {inv.currency} "
                 f"{(inv.total or 0):,.2f} has no deal in the CRM. Record the sale in the CRM if it is one.",
                 None, inv, currency=inv.currency, acct_amount=inv.total)

    quality: list[Discrepancy] = []
    touched = month_records(data, won, month_invoices)
    for group in duplicate_groups(data.customers):
        names = [data.customer_names.get(cid, cid) for cid in group["ids"]]
        d = Discrepancy(
            "duplicate_customer", KINDS["duplicate_customer"][0],
            f"{len(names)} customers share the same {group['key']}: " + ", ".join(f"'{n}'" for n in names)
            + ". Merge them in the ledger.",
            acct_id=", ".join(group["ids"]), acct_name=", ".join(names),
            acct_url=data.customer_url(group["ids"][0]))
        quality.append(d)
        if any(("accounting", "", cid) in touched for cid in group["ids"]):
            out.append(d)

    for held in data.held:
        text = f"{held.record_type.title()} '{held.name}': {held.reason}"
        if held.side == "crm":
            d = Discrepancy("held_back", KINDS["held_back"][0], text, crm_id=held.record_id,
                            crm_name=held.name, crm_url=held.url)
        else:
            d = Discrepancy("held_back", KINDS["held_back"][0], text, acct_id=held.record_id,
                            acct_name=held.name, acct_url=held.url)
        quality.append(d)
        if (held.side, held.record_type if held.side == "crm" else "", held.record_id) in touched:
            out.append(d)

    parties = {i for side, kind, i in touched if side == "crm" and kind != "deal"}  # linked companies and people
    open_invoices: dict[str, int] = defaultdict(int)
    for i in invoices.values():
        if i.status not in ("void", "paid") and i.id not in data.deleted_invoices:
            open_invoices[i.customer_id] += 1
    for kind, fields in link_items(data.crm_fates, data.ledger_fates, data.company_customer, data.crm_names,
                                   data.customer_names, open_invoices, data.company_url, data.customer_url):
        d = Discrepancy(kind, KINDS[kind][0], **fields)
        quality.append(d)
        if d.crm_id in parties or ("accounting", "", d.acct_id or "") in touched:
            out.append(d)
    for p, pinv, text in late_payments(data.month, data.payments, invoices, data.closed, data.customer_names):
        out.append(Discrepancy("late_payment", KINDS["late_payment"][0], text, acct_id=p.invoice_id,
                               acct_name=(pinv.number or pinv.reference) if pinv else p.id,
                               acct_url=data.acct_url(p.invoice_id) if pinv else None, currency=p.currency))

    out.sort(key=priority)
    quality.sort(key=lambda d: (d.kind, (d.crm_name or d.acct_name or "").lower()))
    month_ids = {i.id for i in month_invoices}
    return Report(data.month, out, dict(crm_totals), dict(ledger_totals), won, month_invoices,
                  [p for p in data.payments if p.invoice_id in month_ids], quality)


def month_records(data: MonthData, won: list[Deal], month_invoices: list[Invoice]) -> set[tuple[str, str, str]]:
    """(side, type, id) of every record a month's money depends on: its won deals and their companies and
    people, its invoices and their customers, and the CRM records linked to those customers. CRM records
    carry their type, because some CRMs number people and companies alike (Pipedrive's person 23 and
    organization 23); ledger records are named by id alone (type "")."""
    out: set[tuple[str, str, str]] = set()
    for deal in won:
        out.add(("crm", "deal", deal.id))
        if deal.company_id:
            out.add(("crm", "company", deal.company_id))
            if deal.company_id in data.company_customer:
                out.add(("accounting", "", data.company_customer[deal.company_id]))
        for person in deal.contact_ids:
            out.add(("crm", "person", person))
        if deal.id in data.deal_invoice:
            out.add(("accounting", "", data.deal_invoice[deal.id]))
    for inv in month_invoices:
        if inv.id:
            out.add(("accounting", "", inv.id))
        if inv.customer_id:
            out.add(("accounting", "", inv.customer_id))
            for crm_type, crm_id in data.customer_records.get(inv.customer_id, ()):
                out.add(("crm", crm_type, crm_id))
    return out


def duplicate_groups(customers: dict[str, Party]) -> list[dict]:
    """Ledger customers sharing an email, a tax ID or a normalised name: each group once."""
    groups: list[dict] = []
    seen: set[frozenset[str]] = set()
    for key, fn in (("email address", lambda p: normalise_email(p.email)),
                    ("tax ID", lambda p: compact_tax_id(p.tax_id)),
                    ("name", lambda p: normalise_name(p.name))):
        buckets: dict[str, list[str]] = defaultdict(list)
        for cid, party in customers.items():
            value = fn(party)
            if value:
                buckets[value].append(cid)
        for ids in buckets.values():
            if len(ids) > 1 and frozenset(ids) not in seen:
                seen.add(frozenset(ids))
                groups.append({"key": key, "ids": sorted(ids)})
    return groups
