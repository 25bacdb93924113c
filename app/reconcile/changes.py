"""What months of real operation bring: records archived, deleted or merged on one side, deals lost or
reopened after invoicing, invoices credited while their deal is still won, payments recorded after their
month was closed. Pure, like the rest of the reconciliation: every flag is computed from the state now,
so it is gone from the next report once its cause is gone.

* ``crm_record_gone`` / ``ledger_customer_gone``: a linked company (or person) deleted or merged in the
  CRM, or a linked customer archived, deleted or merged in the ledger. Data quality: listed always, and
  among a month's discrepancies when the month's deals or invoices touch it.
* ``not_won_invoiced``: an invoice of the month whose deal is lost, reopened or deleted, not voided nor
  credited in full. Closes when the deal is won again, or the invoice voided or credited.
* ``credited_while_won``: the deal is still won but credit notes took its invoice below the deal's amount.
  Closes when the deal is changed to match, or the credit note is removed.
* ``late_payment``: a payment dated in a month whose report was made before the payment was recorded:
  that month's figures changed. Shown in the report of the payment's month and of the month it was
  recorded in; closes when the payment's month is reconciled again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from app.domain.lifecycle import RecordFate
from app.domain.models import Deal, Invoice, Payment

TOLERANCE = Decimal("0.01")

NEW_KINDS = {
    "not_won_invoiced": ("high", "Deal lost or reopened after invoicing"),
    "credited_while_won": ("high", "Invoice credited, deal still won"),
    "crm_record_gone": ("medium", "Linked record deleted or merged in the CRM"),
    "ledger_customer_gone": ("medium", "Linked customer archived, deleted or merged in the ledger"),
    "late_payment": ("medium", "Payment recorded after its month was closed"),
}
NEW_MONEY_KINDS = frozenset({"not_won_invoiced", "credited_while_won"})

_CRM_WORDS = {"deleted": "was deleted", "archived": "was deleted", "missing": "is gone"}
_LEDGER_WORDS = {"archived": "is archived (inactive)", "deleted": "was deleted", "missing": "is gone"}


def _month_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _naive_utc(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def deal_flags(flag: Callable[..., None], deals: Iterable[Deal], invoices: dict[str, Invoice],
               deal_invoice: dict[str, str], credited: dict[str, Decimal], deleted_invoices: set[str],
               in_month: Callable[[dt.date | None], bool], lost: set[str]) -> set[str]:
    """Flag the month's invoices whose deal is no longer won; returns the ids of the invoices flagged."""
    out: set[str] = set()
    for deal in deals:
        if deal.won and not deal.archived:
            continue
        inv_id = deal_invoice.get(deal.id)
        inv = invoices.get(inv_id or "")
        if inv is None or inv.id in deleted_invoices or inv.status == "void" or not in_month(inv.issue_date):
            continue
        total = inv.total or Decimal(0)
        left = total - credited.get(inv.id or "", Decimal(0))
        if left <= TOLERANCE:
            continue  # credited in full: the sale is undone on both sides
        what = "was deleted" if deal.archived else "was lost" if deal.id in lost else "is no longer won"
        paid = inv.amount_paid or Decimal(0)
        tail = (f" {inv.currency} {paid:,.2f} is paid on it: credit or refund it in the ledger." if paid > 0 else
                " Void the invoice in the ledger if the sale fell through, or win the deal again.")
        flag("not_won_invoiced", f"'{deal.name}' {what} in the CRM after it was invoiced, but invoice "
             f"{inv.number or inv.id} for {inv.currency} {left:,.2f} still stands.{tail}", deal, inv,
             currency=inv.currency, crm_amount=Decimal(0), acct_amount=left)
        out.add(inv.id or "")
    return out


def credited_flag(flag: Callable[..., None], deal: Deal, inv: Invoice, amount: Decimal, credited: Decimal) -> bool:
    """True when the invoice's credits leave it away from the won deal's amount (and it was flagged)."""
    if credited <= 0:
        return False
    left = (inv.total or Decimal(0)) - credited
    if abs(left - amount) <= TOLERANCE:
        return False
    flag("credited_while_won", f"'{deal.name}' is still won for {deal.currency} {amount:,.2f}, but credit notes "
         f"of {inv.currency} {credited:,.2f} leave invoice {inv.number or inv.id} at {inv.currency} {left:,.2f}. "
         "Change the deal in the CRM if the sale shrank, or remove the credit note.", deal, inv,
         currency=deal.currency, crm_amount=amount, acct_amount=left)
    return True


def link_items(crm_fates: dict[str, RecordFate], ledger_fates: dict[str, RecordFate],
               company_customer: dict[str, str], crm_names: dict[str, str], customer_names: dict[str, str],
               open_invoices: dict[str, int], crm_url: Callable[[str], str | None],
               customer_url: Callable[[str], str | None]) -> list[tuple[str, dict[str, Any]]]:
    """(kind, Discrepancy fields) for each linked record gone on one side."""
    out: list[tuple[str, dict[str, Any]]] = []
    customer_company = {cust: crm_id for crm_id, cust in company_customer.items()}
    pairs: list[tuple[str, str | None, str | None, RecordFate]]
    pairs = [("crm_record_gone", crm_id, company_customer.get(crm_id), fate)
             for crm_id, fate in sorted(crm_fates.items())]
    pairs += [("ledger_customer_gone", customer_company.get(cust), cust, fate)
              for cust, fate in sorted(ledger_fates.items())]
    for kind, crm_id, cust, fate in pairs:
        if crm_id is None or cust is None or not fate.gone:
            continue
        name = crm_names.get(crm_id) or (fate.name if kind == "crm_record_gone" else None) or crm_id
        cname = customer_names.get(cust) or (fate.name if kind == "ledger_customer_gone" else None) or cust
        text = (_crm_text(fate, name, cname, crm_names, open_invoices.get(cust, 0)) if kind == "crm_record_gone"
                else _ledger_text(fate, name, cname, customer_names))
        out.append((kind, {"explanation": text, "crm_id": crm_id, "crm_name": name, "crm_url": crm_url(crm_id),
                           "acct_id": cust, "acct_name": cname, "acct_url": customer_url(cust)}))
    return out


def _crm_text(fate: RecordFate, name: str, cname: str, crm_names: dict[str, str], open_count: int) -> str:
    if fate.state == "merged" and fate.survivor_id:
        survivor = crm_names.get(fate.survivor_id) or fate.survivor_name or fate.survivor_id
        if fate.certain:
            return (f"'{name}' was merged into '{survivor}' in the CRM; '{cname}' in the ledger is still linked to the "
                    f"merged record. The next sync links it to '{survivor}'.")
        return (f"'{name}' was deleted in the CRM and '{survivor}' carries its name: it looks merged. Link '{cname}' "
                f"to '{survivor}' if they are one company.")
    owed = f" {open_count} of its invoices {'is' if open_count == 1 else 'are'} still open." if open_count else ""
    return (f"'{name}' {_CRM_WORDS.get(fate.state, 'is gone')} in the CRM; '{cname}' stays in the ledger.{owed} "
            "Restore it in the CRM if that was a mistake.")


def _ledger_text(fate: RecordFate, name: str, cname: str, customer_names: dict[str, str]) -> str:
    if fate.state == "merged" and fate.survivor_id:
        survivor = customer_names.get(fate.survivor_id) or fate.survivor_name or fate.survivor_id
        return (f"'{cname}' was merged into '{survivor}' in the ledger. New invoices for '{name}' wait until it is "
                f"linked to '{survivor}'.")
    fix = "make it active again" if fate.state == "archived" else "unlink it so the next sync creates it again"
    return (f"'{cname}' {_LEDGER_WORDS.get(fate.state, 'is gone')} in the ledger, but '{name}' in the CRM is linked "
            f"to it: new invoices for it wait. Either {fix}, or link '{name}' to another customer.")


def late_payments(month: str, payments: Iterable[Payment], invoices: dict[str, Invoice],
                  closed: dict[str, dt.datetime], customer_names: dict[str, str]
                  ) -> list[tuple[Payment, Invoice | None, str]]:
    """Payments dated in a closed month but recorded after its report was made, that concern ``month``
    (their own month, or the month they were recorded in): (payment, its invoice, explanation)."""
    out = []
    for p in payments:
        if p.recorded_at is None or p.date is None:
            continue
        own = _month_of(p.date)
        closed_at = closed.get(own)
        recorded = _naive_utc(p.recorded_at)
        if closed_at is None or recorded <= _naive_utc(closed_at) or month not in (own, _month_of(recorded.date())):
            continue
        inv = invoices.get(p.invoice_id)
        who = f" from '{customer_names.get(inv.customer_id, inv.customer_id)}'" if inv else ""
        on = f" on invoice {inv.number or inv.id}" if inv else ""
        text = (f"A payment of {p.currency} {p.amount:,.2f}{who}{on}, dated {p.date:%d %b %Y}, was recorded on "
                f"{recorded:%d %b %Y}, after {dt.date.fromisoformat(own + '-01'):%B %Y} was reconciled on "
                f"{_naive_utc(closed_at):%d %b %Y}: that month's figures changed. Reconcile {own} again.")
        out.append((p, inv, text))
    return out
