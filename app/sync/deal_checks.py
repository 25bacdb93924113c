"""Pre-flight checks on a won deal before it becomes an invoice.

Pure functions: a deal in, the sentences a bookkeeper reads out (what is wrong, what to do). A deal
with any problem is held back on its own; the rest of the run goes on. Nothing here talks to a ledger:
the caller passes what the ledger allows (its currencies, when it can tell).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pycountry

from app.domain.models import Deal, LineItem
from app.domain.money import LEDGER_TAX_ROUNDING, invoice_totals
from app.domain.text import has_broken

PROVIDER_NAMES = {"hubspot": "HubSpot", "salesforce": "Salesforce", "pipedrive": "Pipedrive", "zohocrm": "Zoho CRM",
                  "quickbooks": "QuickBooks", "xero": "Xero", "zohobooks": "Zoho Books"}
# Decimal places each ledger keeps on a line (reference notes, section "Money"): Xero 4 for quantity and
# unit price (with unitdp=4); QuickBooks up to 5 (unverified upper bound); Zoho Books rounds rates to the
# organisation's price precision (2 by default); its references say nothing of quantity places, and its
# sandbox keeps them, so 4 as for Xero (a third of an hour, 0.3333, is a real consulting quantity). More
# places would be rounded away by the ledger, so the invoice would not match the deal.
QUANTITY_PLACES = {"xero": 4, "quickbooks": 5, "zohobooks": 4}
PRICE_PLACES = {"xero": 4, "quickbooks": 5, "zohobooks": 2}
# Longest line description each ledger keeps (QuickBooks documents 4,000; Xero and Zoho Books take at
# least 2,000; past that a ledger would cut or refuse it).
DESCRIPTION_MAX = {"quickbooks": 4000, "xero": 4000, "zohobooks": 2000}
# None of the ledgers' references documents a line cap; past this a deal is more likely a mistake (or
# an export gone wrong) than a sale, and a half-accepted invoice is worse than a held-back deal.
MAX_LINES = 1000
# No quantity, price or discount on a line reaches a trillion; past it the ledgers' own number fields
# overflow (and so would the totals worked out here).
LARGEST = 10**12
TEXT_CONTROLS = "\t\n\r"  # line breaks and tabs are normal in a description
# Invoice and due dates each ledger takes. ASSUMED: none of the reference notes gives a range, so each
# ledger is taken to accept 1901-01-01 to 2099-12-31, inside every range its date pickers and
# spreadsheet exports can show (a serial before 1900-03-01 is misread by spreadsheets). A close date
# outside it (0001-01-01, 1900-02-28, 9999-12-31) is a typing or import mistake more often than a sale.
DEFAULT_DATE_RANGE = (dt.date(1901, 1, 1), dt.date(2099, 12, 31))
DATE_RANGE = dict.fromkeys(("quickbooks", "xero", "zohobooks"), DEFAULT_DATE_RANGE)


def provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider or "the CRM")


def normal_currency(code: str | None) -> str:
    """' eur ' -> 'EUR': the same currency written loosely. Anything else is left for check_currency."""
    return (code or "").strip().upper()


def is_iso_currency(code: str) -> bool:
    return len(code) == 3 and code.isalpha() and code.isascii() and pycountry.currencies.get(alpha_3=code) is not None


def check_currency(raw: str | None, *, crm: str, ledger: str, allowed: set[str] | None) -> str | None:
    """Why the deal cannot be invoiced in its currency, or None. ``allowed``: the ledger's currencies,
    when it can tell (None: any ISO 4217 currency; the ledger has the last word)."""
    crm_name, ledger_name = provider_name(crm), provider_name(ledger)
    code = normal_currency(raw)
    if not code:
        return (f"The deal has no currency. Set the deal's currency in {crm_name}, then sync again.")
    if not is_iso_currency(code):
        return (f"The deal's currency '{raw}' is not a currency code. Set the deal's currency in {crm_name} to a "
                "three-letter code such as USD, EUR or GBP.")
    if allowed is not None and code not in allowed:
        return (f"{ledger_name} cannot invoice in {code}: it is not one of the ledger's currencies. Add {code} to "
                f"the ledger's currencies (multicurrency), or change the deal's currency in {crm_name}.")
    return None


def check_dates(issue: dt.date, terms_days: int, *, crm: str, ledger: str) -> str | None:
    """Why an invoice issued on ``issue`` (the deal's close date) and due ``terms_days`` later cannot go to
    the ledger, or None."""
    first, last = DATE_RANGE.get(ledger, DEFAULT_DATE_RANGE)
    crm_name, ledger_name = provider_name(crm), provider_name(ledger)
    accepted = f"{ledger_name} takes dates from {first.day} {first:%B} {first.year} to {last.day} {last:%B} {last.year}"
    if not first <= issue <= last:
        return (f"The deal's close date is {issue.isoformat()}, which cannot be an invoice date ({accepted}). "
                f"Correct the close date in {crm_name}.")
    if (last - issue).days < terms_days:
        return (f"The deal's close date is {issue.isoformat()}, so the invoice would fall due after "
                f"{last.isoformat()} ({accepted}). Correct the close date in {crm_name}.")
    return None


def _has_controls(text: str) -> bool:
    return any((ord(c) < 32 and c not in TEXT_CONTROLS) or 127 <= ord(c) < 160 for c in text)


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}"


def check_lines(deal: Deal, *, crm: str, ledger: str) -> list[str]:
    """Every problem with the deal's lines, one sentence each, lines numbered from 1 as the CRM shows them."""
    crm_name, ledger_name = provider_name(crm), provider_name(ledger)
    lines = deal.line_items
    if not lines:
        if deal.amount and deal.amount.is_finite() and abs(deal.amount) < LARGEST:
            return [f"The deal has an amount of {_plain(deal.amount)} but no line items, so Crossledger cannot tell "
                    f"what to bill. Add the products to the deal in {crm_name}."]
        return [f"It has no line items, so there is nothing to invoice. Add products to the deal in {crm_name}."]
    if len(lines) > MAX_LINES:
        return [f"The deal has {len(lines):,} line items; Crossledger puts at most {MAX_LINES:,} on one invoice. "
                f"Split the deal in {crm_name}, or create this invoice in {ledger_name} by hand."]
    out: list[str] = []
    q_places, p_places = QUANTITY_PLACES.get(ledger, 4), PRICE_PLACES.get(ledger, 4)
    longest = DESCRIPTION_MAX.get(ledger, 2000)
    for n, li in enumerate(lines, 1):
        out += _line_problems(n, li, crm_name, ledger_name, q_places, p_places, longest)
    if not out and _total(deal, ledger) == 0:
        out.append(f"The deal's lines add up to 0.00, so there is nothing to bill. Check the prices and discounts in "
                   f"{crm_name}; if the sale really is free, no invoice is needed.")
    return out


def _line_problems(n: int, li: LineItem, crm: str, ledger: str, q_places: int, p_places: int,
                   longest: int) -> list[str]:
    out: list[str] = []
    odd = [what for what, v in (("quantity", li.quantity), ("unit price", li.unit_price),
                                ("discount", li.discount_percent)) if not v.is_finite()]
    if odd:
        return [f"Line {n}'s {' and '.join(odd)} is not a number. Correct the line in {crm}."]
    huge = [what for what, v in (("quantity", li.quantity), ("unit price", li.unit_price),
                                 ("discount", li.discount_percent)) if abs(v) >= LARGEST]
    if huge:
        return [f"Line {n}'s {' and '.join(huge)} is {LARGEST:,} or more, larger than any invoice line a ledger "
                f"takes. Correct the line in {crm}."]
    if li.quantity < 0:
        out.append(f"Line {n} has a quantity of {_plain(li.quantity)}. Invoices need positive quantities; use a "
                   f"credit note in the ledger or fix the deal in {crm}.")
    elif li.quantity == 0:
        out.append(f"Line {n} has a quantity of 0. Remove the line or set its quantity in {crm}.")
    elif _places(li.quantity) > q_places:
        out.append(f"Line {n} has a quantity of {_plain(li.quantity)}, with more decimal places than {ledger} keeps "
                   f"({q_places}). Round the quantity in {crm} so the invoice matches the deal.")
    if li.unit_price < 0:
        out.append(f"Line {n} has a negative unit price ({_plain(li.unit_price)}). Invoices need prices of zero or "
                   f"more; give the line a discount instead, or use a credit note in the ledger.")
    elif _places(li.unit_price) > p_places:
        out.append(f"Line {n} has a unit price of {_plain(li.unit_price)}, with more decimal places than {ledger} "
                   f"keeps ({p_places}). Round the price in {crm} so the invoice matches the deal.")
    if li.discount_percent < 0 or li.discount_percent > 100:
        out.append(f"Line {n} has a discount of {_plain(li.discount_percent)}%. A discount must be between 0% and "
                   f"100%. Correct the discount in {crm}.")
    text = li.description or ""
    if not text.strip() and not (li.product_name or "").strip():
        out.append(f"Line {n} has no name or description, so the invoice line would be blank. Name the product "
                   f"on the line in {crm}.")
    elif len(text) > longest:
        out.append(f"Line {n}'s description is {len(text):,} characters long; {ledger} keeps at most {longest:,}. "
                   f"Shorten it in {crm}.")
    elif _has_controls(text) or _has_controls(li.product_name or ""):
        out.append(f"Line {n}'s description contains invisible control characters. Retype it in {crm}.")
    elif has_broken(text) or has_broken(li.product_name or "") or has_broken(li.sku or ""):
        out.append(f"Line {n}'s product or description contains a broken character (often half of an emoji or "
                   f"symbol cut off on import). Retype it in {crm}.")
    return out


def _total(deal: Deal, ledger: str) -> Decimal:
    return invoice_totals(((li.quantity, li.unit_price, li.discount_percent, Decimal(0)) for li in deal.line_items),
                          rounding=LEDGER_TAX_ROUNDING.get(ledger, "invoice")).total
