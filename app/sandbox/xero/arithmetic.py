"""Xero's invoice arithmetic, from its documentation (reference §11, "Money, numbers"):

- a line's amount is Quantity x UnitAmount less its DiscountRate (a percentage), to the cent;
- tax is worked out on each line from that amount and rounded to the cent there, then summed
  ("other systems that tax the subtotal can differ by a cent");
- ``LineAmountTypes`` says how to read the amounts: ``Exclusive`` adds the tax on top, ``Inclusive``
  amounts already hold it (the tax is the rate's share of the amount, rate / (100 + rate)), ``NoTax``
  has none.

Written apart from the product's own money code, so the two can disagree when one of them is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from app.sandbox.common import half_up

ZERO = Decimal(0)
HUNDRED = Decimal(100)


def line_amount(quantity: Decimal, unit_amount: Decimal, discount_rate: Decimal = ZERO) -> Decimal:
    """The LineAmount Xero shows: after the discount, rounded to the cent."""
    return half_up(quantity * unit_amount * (HUNDRED - discount_rate) / HUNDRED)


def line_tax(amount: Decimal, tax_rate: Decimal, amount_type: str) -> Decimal:
    """The TaxAmount of one line, rounded on that line."""
    if amount_type == "NoTax" or not tax_rate:
        return ZERO
    if amount_type == "Inclusive":
        return half_up(amount * tax_rate / (HUNDRED + tax_rate))
    return half_up(amount * tax_rate / HUNDRED)


def invoice_sums(lines: Iterable[tuple[Decimal, Decimal]], amount_type: str) -> tuple[Decimal, Decimal, Decimal]:
    """(SubTotal, TotalTax, Total) of lines given as (LineAmount, TaxAmount)."""
    amounts = taxes = ZERO
    for amount, tax in lines:
        amounts += amount
        taxes += tax
    if amount_type == "Inclusive":
        return amounts - taxes, taxes, amounts
    return amounts, taxes, amounts + taxes
