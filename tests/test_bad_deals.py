"""The deal-level bad-input corpus (tests/data/bad_deals.json): every awkward won deal is held back with
a reason a bookkeeper can act on, or invoiced exactly once with exact totals; nothing crashes, nothing
else is held back, and the good deals in the same run are invoiced."""

from __future__ import annotations

import json
import re
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from app.domain.models import Deal, Invoice, LineItem
from app.domain.money import plain
from app.reconcile.engine import Discrepancy, Report
from app.reconcile.workbook import write_workbook
from app.store.db import Store
from app.store.models import ConflictRow, Quarantine, Workspace
from app.sync.deal_checks import check_lines
from app.sync.engine import SyncEngine
from app.sync.invoices import reference_for
from tests.support import Connected, in_process, over_http

CORPUS = json.loads((Path(__file__).parent / "data" / "bad_deals.json").read_text())
LEDGERS = ("quickbooks", "xero", "zohobooks")
TECHNICAL = ("Traceback", "Exception", "Error:", "None", "KeyError", "ValueError", "InvalidOperation", "<class",
             "Decimal(")
GOOD = [("Good deal one", [("Consulting hour", "7.5", "125.00", "12.5")], "820.31"),
        ("Good deal two", [("Seat", "3", "19.99", None), ("Kit", "1", "249.50", "5")], "297.00"),
        ("Good deal three", [("Support plan", "1", "1200.00", None)], "1200.00")]


def for_ledger(value, ledger: str):
    return value.get(ledger) if isinstance(value, dict) else value


def _line(hs, deal: str, name: str, quantity: str, price: str, discount: str | None = None,
          description: str | None = None, sku: str | None = None) -> None:
    props = {"name": name, "quantity": quantity, "price": price, "hs_discount_percentage": discount,
             "description": description, "hs_sku": sku}
    item = hs.create("line_items", **{k: v for k, v in props.items() if v is not None})
    hs.associate("line_items", item, "deals", deal, [20])


def _deal(hs, name: str, company: str | None, currency: str, amount: str | None = None,
          closedate: str | None = None) -> str:
    props = {"dealname": name, "dealstage": "closedwon", "pipeline": "default", "deal_currency_code": currency,
             "closedate": closedate or "2026-11-20T00:00:00.000Z"}
    if amount:
        props["amount"] = amount
    deal = hs.create("deals", **props)
    if company:
        hs.associate("deals", deal, "companies", company, [5, 341])
    return deal


def seed(hs, rows: list[dict]) -> tuple[dict[str, dict], list[tuple[str, str]], str]:
    """The corpus and the good deals as won HubSpot deals, typed in as a salesperson would (no API checks).

    Returns deal id -> corpus row, [(good deal id, its exact total)], and the held-back company's id.
    """
    good_co = hs.create("companies", name="Good Customer Inc", country="United States")
    held_co = hs.create("companies", name="Held Back Ltd", billing_email="billing@@heldback.example")
    by_id: dict[str, dict] = {}
    for n, row in enumerate(rows):
        company = {"own": None, "none": None, "held": held_co}[row["company"]]
        if row["company"] == "own":
            company = hs.create("companies", name=f"Corpus Customer {n:02d} Ltd", country="United States")
        deal = _deal(hs, row["name"], company, row["currency"], row.get("amount"), row.get("closedate"))
        for li in row["lines"]:
            for _ in range(li.get("repeat") or 1):
                _line(hs, deal, li["name"], li["quantity"], li["price"], li.get("discount"), li.get("description"),
                      li.get("sku"))
        by_id[deal] = row
    goods = []
    for name, lines, total in GOOD:
        deal = _deal(hs, name, good_co, "USD")
        for li_name, qty, price, discount in lines:
            _line(hs, deal, li_name, qty, price, discount)
        goods.append((deal, total))
    return by_id, goods, held_co


def invoice_lines(acct: Connected, inv: Invoice):
    if inv.lines or acct.conn.provider != "zohobooks":
        return inv.lines
    data, _ = acct.connector._call("GET", f"/invoices/{inv.id}", resource="invoice")  # Zoho lists omit lines
    return acct.connector.to_invoice(data["invoice"]).lines


def run_corpus(tmp_path, crm: Connected, acct: Connected, rows: list[dict]) -> None:
    ledger = acct.conn.provider
    by_id, goods, held_co = seed(crm.sandbox, rows)
    store = Store(f"sqlite:///{tmp_path}/deals-{ledger}.db")
    with store.session() as s:
        ws = Workspace(name="bad deals", crm_provider="hubspot", accounting_provider=ledger, settings={})
        s.add(ws)
        s.flush()
        ws_id = ws.id
    result = SyncEngine(store, ws_id, crm.connector, acct.connector).run()
    assert result.status == "ok", result.errors  # held-back deals are not run errors

    with store.session() as s:
        held = {(q.record_type, q.record_id): [i["message"] for i in q.reasons["items"]]
                for q in s.query(Quarantine).filter_by(workspace_id=ws_id)}
    invoices: dict[str, list[Invoice]] = {}
    for inv in acct.connector.read_invoices(None).records:
        invoices.setdefault(inv.reference or "", []).append(inv)

    for deal_id, row in by_id.items():
        label, expect = row["label"], for_ledger(row["expect"], ledger)
        made = invoices.get(reference_for(deal_id), [])
        if expect == "hold":
            assert ("deal", deal_id) in held, f"{label}: not held back on {ledger}"
            assert made == [], f"{label}: invoiced on {ledger} although held back"
            messages = held[("deal", deal_id)]
            assert for_ledger(row["reason"], ledger) in " ".join(messages), (label, messages)
            for message in messages:
                assert message.endswith(".") and len(message) > 30, (label, message)
                assert not any(t in message for t in TECHNICAL), (label, message)
        else:
            assert ("deal", deal_id) not in held, (label, held.get(("deal", deal_id)))
            assert len(made) == 1, f"{label}: {len(made)} invoices on {ledger}"
            inv = made[0]
            assert inv.total == Decimal(row["total"]), (label, inv.total)
            assert inv.currency == (row.get("invoice_currency") or "USD"), (label, inv.currency)
            lines = invoice_lines(acct, inv)
            wanted = sum(li.get("repeat") or 1 for li in row["lines"])
            assert len(lines) == wanted, (label, len(lines))
            if row.get("text"):  # written as text, character for character
                assert [li.description for li in lines] == [row["text"]], (label, [li.description for li in lines])
    for deal_id, total in goods:
        made = invoices.get(reference_for(deal_id), [])
        assert len(made) == 1 and made[0].total == Decimal(total), (deal_id, made)
    # Held back: the corpus' holds and the one bad company; nothing else.
    holds = {("deal", d) for d, r in by_id.items() if for_ledger(r["expect"], ledger) == "hold"}
    assert set(held) == holds | {("company", held_co)}, set(held) ^ (holds | {("company", held_co)})

    again = SyncEngine(store, ws_id, crm.connector, acct.connector).run()
    assert again.status == "ok", again.errors
    assert again.counts["writes"] == 0, again.counts
    assert again.counts.get("invoices_created") == 0
    with store.session() as s:
        assert {(q.record_type, q.record_id) for q in s.query(Quarantine).filter_by(workspace_id=ws_id)} == set(held)


def test_the_corpus_covers_the_deal_cases():
    assert len(CORPUS) >= 40
    labels = " ".join(r["label"] for r in CORPUS)
    for word in ("negative quantity", "zero quantity", "negative unit price", "zero-amount", "1,000 line items",
                 "XYZ", "empty currency", "lowercase eur", "JPY", "over 100%", "negative discount", "decimals",
                 "empty line name", "very long description", "NUL", "HTML", "formula", "no company",
                 "company held back", "no line items but an amount"):
        assert word in labels, word
    for row in CORPUS:
        for ledger in LEDGERS:
            expect = for_ledger(row["expect"], ledger)
            assert expect in ("hold", "invoice"), row["label"]
            assert (for_ledger(row["reason"], ledger) if expect == "hold" else row["total"]), row["label"]


@pytest.mark.parametrize("ledger", LEDGERS)
def test_every_bad_deal_is_held_with_a_reason_and_the_rest_are_invoiced_once(tmp_path, ledger):
    run_corpus(tmp_path, in_process("hubspot", "empty"), in_process(ledger, "empty"), CORPUS)


def test_the_corpus_over_http_to_xero(tmp_path):
    """The same corpus with the ledger on a real port, through the real OAuth flow."""
    with over_http("xero", "empty") as acct:
        run_corpus(tmp_path, in_process("hubspot", "empty"), acct, CORPUS)


def test_quickbooks_without_multicurrency_holds_foreign_deals_before_sending(tmp_path):
    """With multicurrency off, QuickBooks bills only in its home currency: a EUR deal is held back with
    that reason before anything is sent, and the USD deals of the same customer are invoiced."""
    crm, acct = in_process("hubspot", "empty"), in_process("quickbooks", "empty")
    acct.sandbox.company()["multicurrency"] = False
    acct.conn.extra["multicurrency"] = False  # what the connection reads from QuickBooks' preferences
    hs = crm.sandbox
    company = hs.create("companies", name="Single Currency Co", country="United States")
    euro = _deal(hs, "Euro deal", company, "EUR")
    _line(hs, euro, "Widget", "2", "10.00")
    dollars = []
    for n in range(2):
        dollars.append(_deal(hs, f"Dollar deal {n}", company, "USD"))
        _line(hs, dollars[-1], "Widget", "3", "9.99")
    store = Store(f"sqlite:///{tmp_path}/qbo.db")
    with store.session() as s:
        ws = Workspace(name="qbo", crm_provider="hubspot", accounting_provider="quickbooks", settings={})
        s.add(ws)
        s.flush()
        ws_id = ws.id
    sent: list[str] = []
    acct.sandbox.exchange_hooks.append(lambda req, _resp: sent.append(req.body.decode(errors="replace")))
    result = SyncEngine(store, ws_id, crm.connector, acct.connector).run()
    assert result.status == "ok", result.errors
    with store.session() as s:
        [q] = s.query(Quarantine).filter_by(workspace_id=ws_id).all()
    assert q.record_id == euro
    assert q.reasons["items"][0]["message"] == (
        "QuickBooks cannot invoice in EUR: it is not one of the ledger's currencies. Add EUR to the ledger's "
        "currencies (multicurrency), or change the deal's currency in HubSpot.")
    assert not any('"EUR"' in body for body in sent)  # held before anything was sent
    refs = [inv.reference for inv in acct.connector.read_invoices(None).records]
    assert sorted(refs) == sorted(reference_for(d) for d in dollars)


def test_a_zero_quantity_typed_in_hubspot_stays_zero(tmp_path):
    """HubSpot line items with quantity 0 used to be read as 1 (and invoiced); now they are held back."""
    crm = in_process("hubspot", "empty")
    deal = _deal(crm.sandbox, "Zero", None, "USD")
    _line(crm.sandbox, deal, "Widget", "0", "10.00")
    [read] = [d for d in crm.connector.read_deals(None).records if d.id == deal]
    assert read.line_items[0].quantity == 0


FORMULAS = ['=HYPERLINK("http://evil.example","Click")', "+SUM(A1:A9)", "-2+3", "@cmd", "=1+1", "\t=tab"]


def test_formula_looking_text_stays_inert_in_the_reconciliation_workbook(tmp_path):
    deals = [Deal(id=f"d{n}", name=text, won=True, currency="USD", line_items=(LineItem(text, Decimal(1),
                                                                                        Decimal("10.00")),))
             for n, text in enumerate(FORMULAS)]
    deals.append(Deal(id="dx", name="Odd currency", won=True, currency="=2+2",
                      line_items=(LineItem("Widget", Decimal(1), Decimal(5)),)))
    discrepancies = [Discrepancy("won_without_invoice", "high", f"Check {text}", crm_id=f"d{n}", crm_name=text,
                                 acct_name=text, currency="USD", crm_amount=Decimal("10.00"))
                     for n, text in enumerate(FORMULAS)]
    report = Report("2026-11", discrepancies, {"USD": Decimal(60), "=2+2": Decimal(5)}, {}, deals, [], [])
    path = write_workbook(report, tmp_path / "rec.xlsx", workspace="=cmd|' /C calc'!A0", crm_label="HubSpot",
                          ledger_label="Xero")
    wb = load_workbook(path)
    texts = set(FORMULAS) | {"=2+2"}
    seen: set[str] = set()
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value in texts:
                    assert cell.data_type == "s", (ws.title, cell.coordinate, cell.value)
                    assert cell.quotePrefix, (ws.title, cell.coordinate)
                    seen.add(cell.value)
    assert seen == texts
    assert wb["Summary"]["A2"].data_type == "s" and wb["Summary"]["A2"].value.startswith("Workspace: ")
    # In the file itself: the only formulas are the Summary's own (COUNTIF, SUMIFS, SUM, B-C).
    with zipfile.ZipFile(path) as z:
        xml = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/"))
    formulas = re.findall(r"<f>(.*?)</f>", xml)
    assert formulas and all(f.startswith(("COUNTIF(", "SUMIFS(", "SUM(B", "B")) for f in formulas), formulas


def test_a_draft_invoice_is_not_changed_to_bad_lines_after_the_deal_is_edited(tmp_path):
    """A deal invoiced as a draft, then edited to a negative quantity: the draft stays as it is and the
    deal is flagged for review with the line's problem, instead of the ledger refusing the update."""
    crm, acct = in_process("hubspot", "empty"), in_process("xero", "empty")
    hs = crm.sandbox
    company = hs.create("companies", name="Edited Deal Co", country="United States")
    deal = _deal(hs, "Edited deal", company, "USD")
    _line(hs, deal, "Widget", "3", "10.00")
    store = Store(f"sqlite:///{tmp_path}/edit.db")
    with store.session() as s:
        ws = Workspace(name="edit", crm_provider="hubspot", accounting_provider="xero", settings={})
        s.add(ws)
        s.flush()
        ws_id = ws.id
    assert SyncEngine(store, ws_id, crm.connector, acct.connector).run().status == "ok"
    [line_id] = hs._linked("deals", deal, "line_items")
    hs.edit("line_items", line_id, quantity="-3")
    result = SyncEngine(store, ws_id, crm.connector, acct.connector).run()
    assert result.status == "ok", result.errors
    assert result.counts.get("deals_flagged") == 1
    with store.session() as s:
        [flag] = s.query(ConflictRow).filter_by(workspace_id=ws_id, crm_id=deal).all()
    assert flag.acct_value.startswith("Line 1 has a quantity of -3. Invoices need positive quantities;")
    assert flag.acct_value.endswith("The invoice was left as it is.")
    [inv] = acct.connector.read_invoices(None).records
    assert inv.total == Decimal("30.00") and inv.status == "draft"


def test_numbers_that_are_not_numbers_are_held_not_crashed_on():
    """A CRM export can carry NaN or Infinity; comparing them would raise, so they are named instead."""
    deal = Deal(id="1", name="Odd numbers", won=True, currency="USD", line_items=(
        LineItem("Widget", Decimal("NaN"), Decimal("10")), LineItem("Gadget", Decimal(1), Decimal("Infinity")),
        LineItem("Gizmo", Decimal(1), Decimal(1), Decimal("sNaN"))))
    assert check_lines(deal, crm="pipedrive", ledger="xero") == [
        "Line 1's quantity is not a number. Correct the line in Pipedrive.",
        "Line 2's unit price is not a number. Correct the line in Pipedrive.",
        "Line 3's discount is not a number. Correct the line in Pipedrive."]


def test_numbers_too_large_to_invoice_are_read_and_held():
    """A CRM number of 1E+28 or more used to stop every deal read (it cannot be written without an exponent)."""
    assert plain(Decimal("1E+999999")) == Decimal("1E+999999") and plain(Decimal("12.500")) == Decimal("12.5")
    assert str(plain(Decimal("1E+3"))) == "1000" and plain(Decimal("NaN")).is_nan()
    deal = Deal(id="1", name="Huge", won=True, currency="USD", amount=Decimal("1E+999999"), line_items=(
        LineItem("Widget", plain(Decimal("1E+30")), Decimal("10")),))
    assert check_lines(deal, crm="hubspot", ledger="quickbooks") == [
        "Line 1's quantity is 1,000,000,000,000 or more, larger than any invoice line a ledger takes. Correct the "
        "line in HubSpot."]


@pytest.mark.parametrize("ledger", ["quickbooks", "zohobooks"])
def test_two_currencies_for_one_new_customer_in_one_run(tmp_path, ledger):
    """These ledgers keep one currency per customer, fixed by its first invoice. Two won deals of one new
    customer in different currencies: the first is invoiced, the second waits with that reason (it used
    to reach the ledger and fail the run, or take the other's currency lock)."""
    crm, acct = in_process("hubspot", "empty"), in_process(ledger, "empty")
    hs = crm.sandbox
    company = hs.create("companies", name="Two Currencies Ltd", country="United States")
    dollars = _deal(hs, "Dollar deal", company, "USD")
    _line(hs, dollars, "Widget", "2", "10.00")
    euros = _deal(hs, "Euro deal", company, "EUR")
    _line(hs, euros, "Widget", "2", "10.00")
    store = Store(f"sqlite:///{tmp_path}/two.db")
    with store.session() as s:
        ws = Workspace(name="two", crm_provider="hubspot", accounting_provider=ledger, settings={})
        s.add(ws)
        s.flush()
        ws_id = ws.id
    result = SyncEngine(store, ws_id, crm.connector, acct.connector).run()
    assert result.status == "ok", result.errors
    [inv] = acct.connector.read_invoices(None).records
    assert (inv.reference, inv.currency, inv.total) == (reference_for(dollars), "USD", Decimal("20.00"))
    with store.session() as s:
        [q] = s.query(Quarantine).filter_by(workspace_id=ws_id).all()
    assert q.record_id == euros
    assert q.reasons["items"][0]["message"].startswith(
        "The deal is in EUR but the customer already has invoices in USD, and the ledger keeps one currency per "
        "customer.")
