"""The invoice planner as a pure function: tables of deals, links and ledger rows in, operations out.

No database, no connector, no clock: "today" is passed in.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from app.domain.models import Deal, LineItem
from app.store.repos import HeldRecord, LinkRecord
from app.sync.invoice_plan import (
    InvoicePlanInput,
    create_key,
    deal_digest,
    flag_mark,
    missing_items,
    needs_ledger_currencies,
    plan_invoices,
    plan_write_backs,
    reference_for,
    with_items,
)

TODAY = dt.date(2026, 11, 20)
CLOSED = dt.date(2026, 11, 2)


def deal(did: str = "d1", *, won: bool = True, company: str | None = "c1", currency: str = "USD",
         lines: tuple[LineItem, ...] | None = None, close: dt.date | None = CLOSED, archived: bool = False,
         contacts: tuple[str, ...] = ()) -> Deal:
    if lines is None:
        lines = (LineItem("Widget", Decimal(2), Decimal("50.00"), sku="W-1"),)
    return Deal(did, f"Deal {did}", won, currency, None, close, company, contacts, lines, archived=archived)


def customer(crm_id: str = "c1", acct_id: str = "A1", kind: str = "company") -> LinkRecord:
    return LinkRecord(1, "customer", kind, crm_id, acct_id, "created", {})


def invoice_link(d: Deal, acct_id: str = "I1", *, digest: str | None = None, **snap) -> LinkRecord:
    return LinkRecord(7, "invoice", "deal", d.id, acct_id, "created",
                      {"deal": digest if digest is not None else deal_digest(d), "written": {}, **snap})


def inp(deals, *, links=(), invoice_links=(), invoices=None, items=None, ledger="xero", **kw) -> InvoicePlanInput:
    return InvoicePlanInput(
        ws_name="ws", crm="hubspot", ledger=ledger, today=TODAY, deals={d.id: d for d in deals},
        customer_links={lk.ref: lk for lk in links}, invoice_links={lk.crm_id: lk for lk in invoice_links},
        invoices=invoices or {}, items=items or {"IT1": {"name": "Widget", "sku": "W-1"}}, **kw)


# -- new invoices --------------------------------------------------------------------------------------
def test_a_won_deal_of_a_linked_company_becomes_one_invoice():
    p = plan_invoices(inp([deal()], links=[customer()]))
    [c] = p.creates
    assert c.key == create_key(inp([deal()]), deal())
    assert (c.invoice.customer_id, c.invoice.currency, c.invoice.reference) == ("A1", "USD", reference_for("d1"))
    assert (c.invoice.issue_date, c.invoice.due_date) == (CLOSED, CLOSED + dt.timedelta(days=30))
    assert [li.item_id for li in c.invoice.lines] == ["IT1"]
    assert not (p.holds or p.flags or p.links or p.items or p.updates)


@pytest.mark.parametrize(("d", "links"), [
    (deal(won=False), [customer()]),  # not won
    (deal(archived=True), [customer()]),  # archived
])
def test_deals_not_to_invoice_give_nothing(d, links):
    p = plan_invoices(inp([d], links=links))
    assert not (p.creates or p.holds or p.flags or p.links)


def test_without_a_close_date_the_invoice_is_dated_today_with_the_workspaces_terms():
    p = plan_invoices(inp([deal(close=None)], links=[customer()], settings={"payment_terms_days": 14}))
    assert (p.creates[0].invoice.issue_date, p.creates[0].invoice.due_date) == (TODAY, TODAY + dt.timedelta(days=14))


def test_a_deal_billed_to_its_contact_when_it_has_no_company():
    p = plan_invoices(inp([deal(company=None, contacts=("p9",))], links=[customer("p9", "A9", "person")]))
    assert p.creates[0].invoice.customer_id == "A9"


# -- holds, with reasons -------------------------------------------------------------------------------
@pytest.mark.parametrize(("d", "kw", "words"), [
    (deal(company=None), {}, "no company or contact"),
    (deal(company="c2"), {}, "customer is not in the ledger yet"),
    (deal(company="c2"), {"held": {("company", "c2"): HeldRecord("company", "c2", "Cedar", {
        "items": [{"field": "email", "message": "The email is not valid."}]})}}, "'Cedar' is held back"),
    (deal(currency=""), {}, "no currency"),
    (deal(currency="EUR"), {"ledger_currencies": frozenset({"USD"})}, "cannot invoice in EUR"),
    (deal(close=dt.date(1800, 1, 1)), {}, "cannot be an invoice date"),
])
def test_a_deal_that_cannot_be_invoiced_is_held_with_its_reason(d, kw, words):
    links = [customer()] if d.company_id == "c1" else []
    p = plan_invoices(inp([d], links=links, **kw))
    [hold] = p.holds
    assert hold.deal.id == d.id and any(words in r for r in hold.reasons), hold.reasons
    assert not p.creates


def test_a_customer_with_invoices_in_another_currency_holds_the_deal_where_the_ledger_locks_it():
    invoices = {"I0": {"customer_id": "A1", "currency": "GBP", "status": "paid", "total": "10"}}
    held = plan_invoices(inp([deal()], links=[customer()], invoices=invoices, ledger="quickbooks"))
    assert "already has invoices in GBP" in held.holds[0].reasons[0]
    assert plan_invoices(inp([deal()], links=[customer()], invoices=invoices, ledger="xero")).creates


def test_the_first_deal_of_a_new_customer_locks_its_currency_for_the_next():
    deals = [deal("d1", currency="USD"), deal("d2", currency="EUR")]
    p = plan_invoices(inp(deals, links=[customer()], ledger="zohobooks"))
    assert [c.deal.id for c in p.creates] == ["d1"]
    assert [h.deal.id for h in p.holds] == ["d2"]


def test_the_ledgers_currencies_are_asked_for_only_when_a_deal_needs_them():
    assert needs_ledger_currencies(inp([deal()], links=[customer()]))
    assert not needs_ledger_currencies(inp([deal(currency="")], links=[customer()]))
    assert not needs_ledger_currencies(inp([deal(won=False)], links=[customer()]))
    d = deal()
    assert not needs_ledger_currencies(inp([d], links=[customer()], invoice_links=[invoice_link(d)]))


# -- invoices the ledger already has ------------------------------------------------------------------
def test_an_invoice_made_before_crossledger_is_matched_never_made_again():
    invoices = {"I5": {"customer_id": "A1", "currency": "USD", "total": "100.00", "issue_date": "2026-11-03",
                       "status": "awaiting_payment"}}
    p = plan_invoices(inp([deal()], links=[customer()], invoices=invoices))
    assert [(lk.deal.id, lk.invoice_id, lk.how) for lk in p.links] == [("d1", "I5", "matched")]
    assert p.matched == 1 and not p.creates


def test_two_equally_likely_invoices_hold_the_deal_for_a_person():
    row = {"customer_id": "A1", "currency": "USD", "total": "100.00", "issue_date": "2026-11-03", "status": "paid"}
    p = plan_invoices(inp([deal()], links=[customer()], invoices={"I5": row, "I6": dict(row)}))
    assert "already has 2 invoices" in p.holds[0].reasons[0]


def test_one_invoice_is_matched_to_one_deal_only():
    invoices = {"I5": {"customer_id": "A1", "currency": "USD", "total": "100.00", "issue_date": "2026-11-03"}}
    p = plan_invoices(inp([deal("d1"), deal("d2")], links=[customer()], invoices=invoices))
    assert [lk.deal.id for lk in p.links] == ["d1"]
    assert [c.deal.id for c in p.creates] == ["d2"]


def test_an_invoice_an_earlier_run_made_is_linked_under_its_key():
    d = deal()
    settled = {create_key(inp([d]), d): "I8"}
    p = plan_invoices(inp([d], links=[customer()], settled=settled))
    assert [(lk.invoice_id, lk.how) for lk in p.links] == [("I8", "created")]
    assert not p.creates and p.matched == 0


def test_an_undone_or_replanned_invoice_gets_a_new_key():
    d = deal()
    plain = create_key(inp([d]), d)
    undone = create_key(inp([d], undone={("deal", "d1"): "undone-1"}), d)
    both = create_key(inp([d], undone={("deal", "d1"): "undone-1"}, replanned={"d1": "replan-4"}), d)
    assert len({plain, undone, both}) == 3


# -- items ---------------------------------------------------------------------------------------------
def test_a_product_the_ledger_lacks_is_created_and_the_line_waits_for_it():
    d = deal(lines=(LineItem("Gadget", Decimal(1), Decimal(5), sku="G-1", product_name="Gadget"),))
    p = plan_invoices(inp([d], links=[customer()]))
    assert list(p.items) == ["new-item:g-1"] and p.items["new-item:g-1"].name == "Gadget"
    invoice = p.creates[0].invoice
    assert with_items(invoice, {}) is None and missing_items(invoice, {}) == ["new-item:g-1"]
    assert [li.item_id for li in with_items(invoice, {"new-item:g-1": "IT9"}).lines] == ["IT9"]


def test_a_new_item_whose_name_is_taken_gets_its_sku_where_names_must_be_unique():
    d = deal(lines=(LineItem("Widget", Decimal(1), Decimal(5), sku="W-2", product_name="Widget"),))
    assert plan_invoices(inp([d], links=[customer()], ledger="quickbooks")).items["new-item:w-2"].name == "Widget (W-2)"
    assert plan_invoices(inp([d], links=[customer()], ledger="xero")).items["new-item:w-2"].name == "Widget"


def test_the_default_item_and_tax_codes_come_from_the_settings():
    d = deal(lines=(LineItem("Consulting", Decimal(1), Decimal(5)),))
    p = plan_invoices(inp([d], links=[customer()], settings={"default_item": "IT0", "tax_codes": {"default": "T"}}))
    [line] = p.creates[0].invoice.lines
    assert (line.item_id, line.tax_code) == ("IT0", "T") and not p.items


# -- deals invoiced before -----------------------------------------------------------------------------
EDITED = (LineItem("Widget", Decimal(3), Decimal("50.00"), sku="W-1"),)


@pytest.mark.parametrize(("status", "ledger", "settings", "outcome"), [
    ("draft", "xero", {}, "update"),
    ("awaiting_payment", "quickbooks", {}, "update"),  # QuickBooks has no drafts: unpaid and unchanged
    ("paid", "xero", {}, "flag"),
    ("draft", "xero", {"edited_deal": "review"}, "flag"),
])
def test_an_edited_deal_updates_its_draft_or_is_flagged(status, ledger, settings, outcome):
    old, new = deal(), deal(lines=EDITED)
    link = invoice_link(new, digest=deal_digest(old))
    invoices = {"I1": {"customer_id": "A1", "currency": "USD", "status": status, "total": "100", "balance": "100"}}
    p = plan_invoices(inp([new], links=[customer()], invoice_links=[link], invoices=invoices, ledger=ledger,
                          settings=settings))
    if outcome == "update":
        [u] = p.updates
        assert (u.invoice.id, u.invoice.customer_id, [li.quantity for li in u.invoice.lines]) == ("I1", "A1", [3])
        assert not p.flags
    else:
        [flag] = p.flags
        assert flag.what == "lines" and "changed after it was invoiced" in flag.message and not p.updates
    assert not p.creates


def test_an_unchanged_invoiced_deal_gives_nothing_and_a_lost_one_is_flagged_once():
    invoices = {"I1": {"customer_id": "A1", "currency": "USD", "status": "awaiting_payment", "total": "100",
                       "balance": "100", "amount_paid": "0"}}
    d = deal()
    assert not plan_invoices(inp([d], invoice_links=[invoice_link(d)], invoices=invoices)).flags
    lost = deal(won=False)
    [flag] = plan_invoices(inp([lost], invoice_links=[invoice_link(lost)], invoices=invoices)).flags
    assert flag.what == "won" and "no longer won" in flag.message and flag.code == "deal_reopened"
    again = inp([lost], invoice_links=[invoice_link(lost, flagged=flag_mark(lost, "deal_reopened"))],
                invoices=invoices)
    assert not plan_invoices(again).flags


# -- invoice status -> deal ----------------------------------------------------------------------------
def test_write_backs_carry_status_payments_and_link_once():
    d = deal()
    link = invoice_link(d)
    invoices = {"I1": {"status": "partly_paid", "amount_paid": "40", "balance": "60", "number": "INV-1"}}
    payments = {"P1": {"invoice_id": "I1", "date": "2026-11-05"}, "P2": {"invoice_id": "I1", "date": "2026-11-09"}}
    [w] = plan_write_backs("ws", [link], invoices, payments, {"I1": "https://ledger/I1"})
    assert w.values == {"crossledger_invoice_status": "Partly paid", "crossledger_amount_paid": "40",
                        "crossledger_balance_due": "60", "crossledger_last_payment": "2026-11-09",
                        "crossledger_invoice_number": "INV-1", "crossledger_invoice_link": "https://ledger/I1"}
    assert w.changes()["crossledger_invoice_status"] == (None, "Partly paid")
    shown = invoice_link(d, written=w.values)
    assert plan_write_backs("ws", [shown], invoices, payments, {"I1": "https://ledger/I1"}) == []
