"""Won deals that were invoiced by hand before Crossledger: linked to that invoice, never invoiced twice."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from app.connectors.base import InvoiceWrite, ItemWrite
from app.domain.models import Invoice, InvoiceLine, Item
from app.store.models import Link, Quarantine
from app.sync.invoices import reference_for
from tests.support import in_process
from tests.test_invoice_pairs import THREE_LINES, WON, Pair, crm_seeded, small_world

TODAY = dt.date.today()


def _world(tmp_path, ledger: str, deals) -> Pair:
    with crm_seeded("hubspot", small_world(deals), http=False) as c:
        pass
    w = Pair(tmp_path, c, in_process(ledger, "empty"))
    w.sync()  # the company becomes a customer; its deals are still open
    return w


def _customer(w: Pair) -> str:
    with w.store.session() as s:
        return s.scalars(select(Link.acct_id).where(Link.object_type == "customer")).one()


def _by_hand(w: Pair, lines, *, days_ago: int = 3, reference: str | None = "PO 4471",
             customer: str | None = None) -> str:
    """The bookkeeper's own invoice, made in the ledger before Crossledger was connected."""
    acct = w.acct.connector
    known = {i.sku: i.id for i in acct.read_items(None).records}
    new = [li for li in lines if li.sku not in known]
    made = acct.create_items([ItemWrite(f"i-{li.sku}", Item(None, li.name, li.sku, li.unit_price)) for li in new])
    assert all(r.ok for r in made), [r.error for r in made]
    known.update({li.sku: r.id for li, r in zip(new, made, strict=True)})
    ids = [known[li.sku] for li in lines]
    issued = TODAY - dt.timedelta(days=days_ago)
    inv = Invoice(None, customer or _customer(w), "USD", tuple(InvoiceLine(li.name, li.quantity, li.unit_price,
                                                              li.discount_percent, item_id=i)
                                                  for li, i in zip(lines, ids, strict=True)),
                  reference=reference, issue_date=issued, due_date=issued + dt.timedelta(days=30))
    [res] = acct.create_invoices([InvoiceWrite(f"hand-{days_ago}-{reference}", inv)])
    assert res.ok, res.error
    return res.id


@pytest.mark.parametrize("ledger", ["quickbooks", "xero", "zohobooks"])
def test_a_deal_invoiced_by_hand_is_linked_and_its_payments_flow_back(tmp_path, ledger):
    w = _world(tmp_path, ledger, [("Rollout with three lines", THREE_LINES)])
    hand = _by_hand(w, THREE_LINES)
    [deal] = w.deals()
    w.mark(deal.id, WON["hubspot"])

    run = w.sync()
    assert run.counts["invoices_created"] == 0 and run.counts["invoices_matched"] == 1
    assert [i.id for i in w.invoices()] == [hand]  # no second invoice
    with w.store.session() as s:
        link = s.scalars(select(Link).where(Link.object_type == "invoice")).one()
        assert (link.crm_id, link.acct_id, link.how) == (deal.id, hand, "matched")
    w.pay(hand, D("1117.31"), TODAY.isoformat())
    w.sync()
    assert w.deal_fields(deal.id)["crossledger_invoice_status"] == "Paid"
    assert w.sync().counts["writes"] == 0 and len(w.invoices()) == 1


def test_a_different_amount_or_a_far_date_is_not_taken_for_the_deals_invoice(tmp_path):
    w = _world(tmp_path, "quickbooks", [("Seats", THREE_LINES[1:2]), ("Kit", THREE_LINES[2:3])])
    _by_hand(w, [dataclasses.replace(THREE_LINES[1], quantity=D(4))])  # 4 seats, where the deal has 3
    _by_hand(w, THREE_LINES[2:3], days_ago=200)  # the same kit, sold months ago
    for deal in w.deals():
        w.mark(deal.id, WON["hubspot"])
    run = w.sync()
    assert run.counts["invoices_created"] == 2 and run.counts["invoices_matched"] == 0
    assert len(w.invoices()) == 4


def test_two_equally_likely_invoices_hold_the_deal_until_the_reference_says_which(tmp_path):
    w = _world(tmp_path, "xero", [("Seats", THREE_LINES[1:2])])
    first = _by_hand(w, THREE_LINES[1:2], reference="Order 1")
    second = _by_hand(w, THREE_LINES[1:2], reference="Order 2")
    [deal] = w.deals()
    w.mark(deal.id, WON["hubspot"])

    run = w.sync()
    assert run.counts["invoices_created"] == 0 and run.counts["deals_held"] == 1
    with w.store.session() as s:
        [held] = s.scalars(select(Quarantine).where(Quarantine.record_type == "deal")).all()
        reason = held.reasons["items"][0]["message"]
    assert "already has 2 invoices" in reason and f"'{reference_for(deal.id)}' in the Reference" in reason

    w.acct.sandbox.user_edit("invoice", second, Reference=reference_for(deal.id))
    run = w.sync()
    assert run.counts["invoices_matched"] == 1 and run.counts["invoices_created"] == 0
    with w.store.session() as s:
        assert s.scalars(select(Link.acct_id).where(Link.object_type == "invoice")).one() == second
        assert not s.scalars(select(Quarantine).where(Quarantine.record_type == "deal")).all()
    assert {i.id for i in w.invoices()} == {first, second}


def test_the_migration_plan_says_which_won_deals_the_ledger_already_invoiced(tmp_path):
    """Before the first sync: the customer and its invoice exist in QuickBooks already. The dry run
    counts the deal as invoiced before; after the apply, the first sync links that invoice."""
    from app.connectors.base import CustomerWrite
    from app.domain.models import Party
    from app.ops.migration import describe_result, run_migration
    from app.sync.engine import SyncEngine
    from tests.test_invoice_pairs import _one_company

    company = _one_company()
    with crm_seeded("hubspot", small_world([("Rollout", THREE_LINES), ("Extra seats", THREE_LINES[1:2])]),
                    http=False) as crm:
        pass
    acct = in_process("quickbooks", "empty")
    [cust] = acct.connector.create_customers([CustomerWrite("pre", Party("company", company.name,
                                                                          email=company.email))])
    assert cust.ok, cust.error
    w = Pair(tmp_path, crm, acct)
    for deal in w.deals():
        w.mark(deal.id, WON["hubspot"])
    hand = _by_hand(w, THREE_LINES, customer=cust.id)  # the Rollout was invoiced by hand; the seats were not

    plan = run_migration(w.store, w.ws_id, crm.connector, acct.connector)
    assert plan.counts["link"] == 1
    assert plan.deals == {"won": 2, "already_invoiced": 0, "invoiced_before": 1, "to_invoice": 1, "unsure": 0}
    assert "1 already has an invoice in QuickBooks Online, which the first sync links" in describe_result(plan)
    applied = run_migration(w.store, w.ws_id, crm.connector, acct.connector, apply=True)
    assert applied.deals == plan.deals and [i.id for i in w.invoices()] == [hand]  # the migration writes none

    first = SyncEngine(w.store, w.ws_id, crm.connector, acct.connector).run()
    assert first.counts["invoices_matched"] == 1 and first.counts["invoices_created"] == 1
    assert hand in {i.id for i in w.invoices()} and len(w.invoices()) == 2
