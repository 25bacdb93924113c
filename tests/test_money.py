"""Exact money, rounded as each ledger rounds."""

from decimal import Decimal as D

import pytest

from app.domain.money import decimal_or_none, invoice_totals, line_net


def test_line_net_rounds_half_up_to_the_cent():
    assert line_net(D("0.3333"), D("100.00")) == D("33.33")
    assert line_net(D(3), D("19.99"), D("12.5")) == D("52.47")  # 59.97 - 7.49625
    assert line_net(D("0.5"), D("249.50"), D("12.5")) == D("109.16")


def test_per_line_and_per_invoice_tax_rounding_differ_as_the_ledgers_do():
    lines = [(D(1), D("0.05"), D(0), D(10))] * 3  # three lines of 5 cents at 10%
    assert invoice_totals(lines, rounding="line").tax == D("0.03")  # 0.005 -> 0.01 each (half up)
    assert invoice_totals(lines, rounding="invoice").tax == D("0.02")  # 0.015 -> 0.02 once


def test_mixed_rates_and_inclusive_amounts():
    lines = [(D(2), D("10.00"), D(0), D(20)), (D(1), D("5.00"), D(0), D(0))]
    t = invoice_totals(lines, rounding="line")
    assert (t.subtotal, t.tax, t.total) == (D("25.00"), D("4.00"), D("29.00"))
    inc = invoice_totals([(D(1), D("12.00"), D(0), D(20))], rounding="line", inclusive=True)
    assert (inc.subtotal, inc.tax, inc.total) == (D("10.00"), D("2.00"), D("12.00"))


@pytest.mark.parametrize(("written", "read"), [
    ("150.00", D("150.00")), (150, D(150)), (0.1, D("0.1")), ("-0.005", D("-0.005")),
    (D("12.5"), D("12.5")), ("", None), (None, None), ("twelve", None), (True, None), (False, None),
])
def test_an_amount_is_read_as_the_provider_wrote_it_or_not_at_all(written, read):
    assert decimal_or_none(written) == read  # a float's shortest text (0.1), never its binary value
