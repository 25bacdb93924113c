"""Money: Decimal end to end, rounded the way each ledger rounds.

They serve the connectors (reading and writing amounts) and the pre-flight check (to know before
sending what total the ledger will show). The sandboxes compute their totals with their own code, so a
rounding bug here cannot pass for the ledger's (an import contract keeps it so).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

CENT = Decimal("0.01")
ZERO = Decimal(0)
HUNDRED = Decimal(100)

# How each ledger rounds tax: Xero per line; QuickBooks Online and Zoho Books on the invoice's
# total per tax rate (their documented defaults).
TaxRounding = Literal["line", "invoice"]
LEDGER_TAX_ROUNDING: dict[str, TaxRounding] = {"xero": "line", "quickbooks": "invoice", "zohobooks": "invoice"}


def plain(value: Decimal) -> Decimal:
    """Trailing zeros dropped without exponent notation (12.500 -> 12.5, 100.00 -> 100). A value too large to
    write out that way (1E+999999), or not a number at all, is kept as it is, for the deal checks to hold."""
    if not value.is_finite():
        return value
    try:
        if value == value.to_integral_value():
            return value.quantize(Decimal(1))
        return value.normalize()
    except InvalidOperation:
        return value


def decimal_or_none(value: object) -> Decimal | None:
    """An amount as a provider wrote it (a JSON number, or text), exactly; None when it is blank or not a
    number (a boolean included)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def money(value: Decimal | int | str, places: Decimal = CENT) -> Decimal:
    return Decimal(value).quantize(places, rounding=ROUND_HALF_UP)


def line_net(quantity: Decimal, unit_price: Decimal, discount_percent: Decimal = ZERO) -> Decimal:
    """Quantity x price less a percentage discount, rounded to the cent (all three ledgers agree)."""
    gross = quantity * unit_price
    return money(gross - gross * discount_percent / HUNDRED)


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def invoice_totals(
    lines: Iterable[tuple[Decimal, Decimal, Decimal, Decimal]],
    *,
    rounding: TaxRounding,
    inclusive: bool = False,
) -> Totals:
    """Totals for lines of (quantity, unit price, discount %, tax rate %).

    Exclusive amounts add tax on top; inclusive amounts already hold it. ``rounding`` says whether
    tax is rounded per line or once per rate on the whole invoice.
    """
    nets: list[tuple[Decimal, Decimal]] = [(line_net(q, p, d), r) for q, p, d, r in lines]
    if rounding == "line":
        taxes = [_tax(n, r, inclusive) for n, r in nets]
        tax = sum(taxes, ZERO)
    else:
        by_rate: dict[Decimal, Decimal] = {}
        for net, rate in nets:
            by_rate[rate] = by_rate.get(rate, ZERO) + net
        tax = sum((_tax(n, r, inclusive) for r, n in by_rate.items()), ZERO)
    amount = sum((n for n, _ in nets), ZERO)
    if inclusive:
        return Totals(amount - tax, tax, amount)
    return Totals(amount, tax, amount + tax)


def _tax(net: Decimal, rate: Decimal, inclusive: bool) -> Decimal:
    if not rate:
        return ZERO
    if inclusive:
        return money(net - net * HUNDRED / (HUNDRED + rate))
    return money(net * rate / HUNDRED)
