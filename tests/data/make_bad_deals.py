"""Writes tests/data/bad_deals.json: the deal-level bad-input corpus (run once; the JSON is what tests read).

Each record is one won HubSpot deal. ``expect`` is "hold" (held back; ``reason`` is text the bookkeeper
must see) or "invoice" (exactly one invoice; ``total`` its exact total, ``currency`` its currency), either
for every ledger or per ledger. ``company``: "own" (a clean company of its own), "none" (no company),
"held" (a company that is itself held back). A line's ``repeat`` makes that many copies of it.
"""

import json
from pathlib import Path

rows = []
LEDGERS = ("quickbooks", "xero", "zohobooks")


def line(name="Widget", quantity="1", price="10.00", discount=None, description=None, repeat=None, sku=None):
    out = {"name": name, "quantity": quantity, "price": price}
    for key, value in (("discount", discount), ("description", description), ("repeat", repeat), ("sku", sku)):
        if value is not None:
            out[key] = value
    return out


def add(label, expect, reason=None, *, lines=None, currency="USD", company="own", total=None, amount=None,
        invoice_currency=None, name=None, text=None):
    rows.append({"label": label, "name": name or label, "expect": expect, "reason": reason, "currency": currency,
                 "company": company, "lines": [line()] if lines is None else lines, "total": total,
                 "amount": amount, "invoice_currency": invoice_currency, "text": text})


def per(**kw):
    return {ledger: kw.get(ledger, kw.get("other")) for ledger in LEDGERS}


H, INV = "hold", "invoice"
# quantities
add("negative quantity", H, "Line 1 has a quantity of -2. Invoices need positive quantities; use a credit note in "
    "the ledger or fix the deal in HubSpot.", lines=[line(quantity="-2")])
add("negative quantity on line 3", H, "Line 3 has a quantity of -2.",
    lines=[line("A"), line("B"), line("C", quantity="-2")])
add("zero quantity", H, "Line 1 has a quantity of 0. Remove the line or set its quantity in HubSpot.",
    lines=[line(quantity="0")])
add("quantity with six decimals", H, "Line 1 has a quantity of 1.123456, with more decimal places than",
    lines=[line(quantity="1.123456")])
add("quantity with three decimals", INV, lines=[line(quantity="1.125", price="10.00")], total="11.25")
add("quantity with four decimals", INV, lines=[line(quantity="0.3333", price="30.00")], total="10.00")
add("quantity with two decimals", INV, lines=[line(quantity="7.25", price="125.00")], total="906.25")
add("huge quantity and price", INV, lines=[line(quantity="99999", price="12345.67")], total="1234554654.33")
# prices
add("negative unit price", H, "Line 2 has a negative unit price (-50). Invoices need prices of zero or more",
    lines=[line("Service", price="200.00"), line("Refund", price="-50.00")])
add("zero unit price on one line", INV, lines=[line("Paid", price="80.00"), line("Free gift", price="0")],
    total="80.00")
add("zero-amount deal", H, "The deal's lines add up to 0.00, so there is nothing to bill.",
    lines=[line("Free A", price="0"), line("Free B", price="0.00")])
add("unit price with six decimals", H, "Line 1 has a unit price of 19.999999, with more decimal places than",
    lines=[line(price="19.999999")])
add("unit price with three decimals", per(zohobooks=H, other=INV),
    per(zohobooks="Line 1 has a unit price of 0.125, with more decimal places than Zoho Books keeps (2)."),
    lines=[line(quantity="8", price="0.125")], total="1.00")
add("cents that add up exactly", INV,
    lines=[line("A", quantity="3", price="0.10"), line("B", quantity="7", price="0.10")], total="1.00")
# discounts
add("discount over 100%", H, "Line 1 has a discount of 150%. A discount must be between 0% and 100%.",
    lines=[line(discount="150")])
add("negative discount", H, "Line 1 has a discount of -10%. A discount must be between 0% and 100%.",
    lines=[line(discount="-10")])
add("100% discount on every line", H, "The deal's lines add up to 0.00",
    lines=[line("A", discount="100"), line("B", discount="100")])
add("100% discount on one line", INV,
    lines=[line("Paid", price="40.00"), line("Comped", price="15.00", discount="100")], total="40.00")
add("12.5% discount", INV, lines=[line(quantity="7.5", price="125.00", discount="12.5")], total="820.31")
add("two problems at once", H, "Line 1 has a quantity of -1.", lines=[line(quantity="-1", discount="150")])
# many lines
add("1,000 line items", INV, lines=[line("Bulk part", quantity="3", price="1.99", repeat=1000)], total="5970.00")
add("1,001 line items", H, "The deal has 1,001 line items; Crossledger puts at most 1,000 on one invoice.",
    lines=[line("Bulk part", repeat=1001)])
add("no line items but an amount", H, "The deal has an amount of 500 but no line items", lines=[], amount="500")
add("no line items and no amount", H, "It has no line items, so there is nothing to invoice.", lines=[])
# currencies
add("unknown currency XYZ", H, "The deal's currency 'XYZ' is not a currency code.", currency="XYZ")
add("numeric currency 978", H, "The deal's currency '978' is not a currency code.", currency="978")
add("four-letter currency", H, "The deal's currency 'EURO' is not a currency code.", currency="EURO")
add("empty currency (HubSpot: the account's currency)", INV, currency="", total="10.00", invoice_currency="USD")
add("lowercase eur", INV, currency="eur", total="10.00", invoice_currency="EUR")
add("currency the ledger does not carry (JPY)", H, per(
    quickbooks="QuickBooks does not have JPY in its currency list, so it cannot invoice in it.",
    xero="The currency JPY has not been added to this organisation. Add JPY to the ledger's currencies",
    zohobooks="Zoho Books cannot invoice in JPY: it is not one of the ledger's currencies."), currency="JPY")
# line text
add("empty line name", H, "Line 1 has no name or description, so the invoice line would be blank.",
    lines=[line(name="")])
add("blank line name with a SKU", H, "Line 2 has no name or description", lines=[line("A"), line(" ", sku="SKU-9")])
add("very long description", H, "Line 1's description is 5,009 characters long;",
    lines=[line("Widget", description="x" * 5000)])
add("description of 2,500 characters", per(zohobooks=H, other=INV),
    per(zohobooks="Line 1's description is 2,509 characters long; Zoho Books keeps at most 2,000."),
    lines=[line("Widget", description="y" * 2500)], total="10.00")
add("NUL in description", H, "Line 1's description contains invisible control characters. Retype it in HubSpot.",
    lines=[line("Null\x00Byte part")])
add("bell and escape in description", H, "Line 1's description contains invisible control characters.",
    lines=[line("Bell\x07 and \x1b[31mred")])
add("newline and tab in description", INV, lines=[line("Part A\n\tfitted on site")], total="10.00",
    text="Part A\n\tfitted on site")
add("HTML in description", INV, lines=[line("<b>Bold</b> & <script>alert(1)</script>")], total="10.00",
    text="<b>Bold</b> & <script>alert(1)</script>")
add("formula in description", INV, lines=[line('=HYPERLINK("http://evil.example","Click")')], total="10.00",
    text='=HYPERLINK("http://evil.example","Click")')
add("plus formula in description", INV, lines=[line("+SUM(A1:A9)")], total="10.00", text="+SUM(A1:A9)")
add("minus formula in description", INV, lines=[line("-2+3 cmd")], total="10.00", text="-2+3 cmd")
add("at formula in description", INV, lines=[line("@SUM(1,2)")], total="10.00", text="@SUM(1,2)")
add("formula-looking deal name", INV, name="=1+1 deal", total="10.00")
add("mixed-script description", INV, lines=[line("Ölçü 株式会社 Δέλτα ☕")], total="10.00",
    text="Ölçü 株式会社 Δέλτα ☕")
# the customer
add("no company or contact", H, "The deal has no company or contact in HubSpot, so there is no one to bill.",
    company="none")
add("company held back", H, "is held back, so it is not in the ledger yet", company="held")

Path(__file__).with_name("bad_deals.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
print(len(rows), "deals")
