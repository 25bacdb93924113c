"""The invoice planner's lifecycle part as pure functions: tables of deals, invoices and rules in, plan entries
out (issue 21, points 1 and 2). No database, connector or clock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from app.domain.models import Deal, LineItem
from app.store.repos import LinkRecord
from app.sync.invoice_lifecycle import CustomerState, customer_hold, customer_states, deal_lost
from app.sync.invoice_plan import InvoicePlanInput, deal_digest, flag_mark, plan_invoices

LINES = (LineItem("Widget", Decimal(2), Decimal("50.00"), sku="W-1"),)  # 100.00
SHRUNK = (LineItem("Widget", Decimal(1), Decimal("50.00"), sku="W-1"),)  # 50.00


def deal(*, won: bool = True, lines=LINES, props=None, archived: bool = False) -> Deal:
    return Deal("d1", "Rollout", won, "USD", None, dt.date(2026, 11, 2), "c1", (), lines, properties=props or {},
                archived=archived)


def invoice_row(status: str = "awaiting_payment", *, paid: str = "0", total: str = "100.00") -> dict:
    balance = str(Decimal(total) - Decimal(paid))
    return {"customer_id": "A1", "currency": "USD", "status": status, "total": total, "sub_total": total,
            "balance": balance, "amount_paid": paid, "number": "INV-7"}


def plan(d: Deal, *, invoiced: Deal | None = None, row=None, rule: str = "flag", ledger: str = "xero",
         credited: str = "0", lost: bool = False, snap=None, edited: str = "update_draft", states=None):
    link = LinkRecord(7, "invoice", "deal", d.id, "I1", "created",
                      {"deal": deal_digest(invoiced or d), "written": {}, **(snap or {})})
    customer = LinkRecord(1, "customer", "company", "c1", "A1", "created", {})
    return plan_invoices(InvoicePlanInput(
        ws_name="ws", crm="hubspot", ledger=ledger, today=dt.date(2026, 11, 20), deals={d.id: d},
        customer_links={customer.ref: customer}, invoice_links={} if row is False else {d.id: link},
        invoices={} if row is False else {"I1": invoice_row() if row is None else row},
        items={"IT1": {"name": "Widget", "sku": "W-1"}},
        settings={"after_invoice": rule, "edited_deal": edited}, credited={"I1": Decimal(credited)},
        lost=frozenset({d.id}) if lost else frozenset(), customer_states=states or {}))


# -- deals changed after invoicing -------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "kw", "want"), [
    ("lost, rule flag", {"d": deal(won=False), "lost": True}, "flag:won:deal_lost"),
    ("reopened, rule flag", {"d": deal(won=False)}, "flag:won:deal_reopened"),
    ("lost, rule void, unpaid", {"d": deal(won=False), "rule": "void", "lost": True}, "void"),
    ("lost, rule void, part paid", {"d": deal(won=False), "rule": "void", "row": invoice_row(paid="10.00")},
     "flag:won:deal_reopened"),
    ("lost, rule credit", {"d": deal(won=False), "rule": "credit", "lost": True}, "credit:100.00"),
    ("lost, rule credit, half credited", {"d": deal(won=False), "rule": "credit", "credited": "50.00"},
     "credit:50.00"),
    ("lost, rule credit, a draft", {"d": deal(won=False), "rule": "credit", "row": invoice_row("draft")}, "void"),
    ("shrank, rule credit, sent", {"d": deal(lines=SHRUNK), "invoiced": deal(), "rule": "credit"}, "credit:50.00"),
    ("shrank, rule flag", {"d": deal(lines=SHRUNK), "invoiced": deal()}, "flag:lines:deal_lines"),
    ("shrank, a draft follows", {"d": deal(lines=SHRUNK), "invoiced": deal(), "row": invoice_row("draft")},
     "update"),
    ("shrank, rule void", {"d": deal(lines=SHRUNK), "invoiced": deal(), "rule": "void"}, "void+create"),
    ("won again after our void", {"d": deal(), "row": invoice_row("void"), "snap": {"left_won": True}}, "create"),
    ("voided by the bookkeeper while won", {"d": deal(), "row": invoice_row("void")}, "nothing"),
    ("unchanged", {"d": deal()}, "nothing"),
    ("not mirrored yet", {"d": deal(won=False), "row": {}}, "nothing"),
])
def test_an_invoiced_deal_follows_the_workspace_rule(case, kw, want):
    p = plan(**kw)
    got = [f"flag:{f.what}:{f.code}" for f in p.flags] + [f"credit:{c.amount:.2f}" for c in p.credits]
    got += ["void"] * len(p.voids) + ["update"] * len(p.updates) + ["create"] * len(p.creates)
    assert ("+".join(got) or "nothing") == want, case


def test_a_deal_seen_not_won_is_remembered_so_a_later_void_means_invoice_it_again():
    p = plan(deal(won=False), rule="void")
    [(_link, marks)] = p.marks
    assert marks == {"left_won": True}
    [create] = plan(deal(), row=invoice_row("void"), snap={"left_won": True}).creates
    assert create.replaces is not None and create.replaces.acct_id == "I1"


def test_a_deal_won_again_with_its_invoice_standing_is_not_invoiced_again_when_the_bookkeeper_voids_it_later():
    """Found by the 365-day simulation (hubspot-zohobooks): lost after invoicing, won again with the invoice
    still standing, then the bookkeeper voids that invoice. The deal must not get a second invoice."""
    [(_link, marks)] = plan(deal(), snap={"left_won": True}).marks  # won again, its invoice still live
    assert marks == {"left_won": False}
    voided_later = plan(deal(), row=invoice_row("void"), snap={"left_won": False})
    assert not voided_later.creates and not voided_later.flags


def test_a_flag_is_raised_once_and_closed_when_its_cause_is_gone():
    lost = deal(won=False)
    [flag] = plan(lost, lost=True).flags
    assert not plan(lost, lost=True, snap={"flagged": flag_mark(lost, flag.code)}).flags
    again = plan(deal(), snap={"flagged": flag_mark(lost, flag.code)})
    assert [c.deal.id for c in again.closes] == ["d1"] and not again.flags
    assert not plan(deal()).closes  # nothing flagged: nothing to close
    assert not plan(lost, lost=True, snap={"flagged": flag_mark(lost, "won")}).flags  # flagged by an older version


def test_a_credit_note_key_stays_while_the_facts_stay_and_changes_with_them():
    one = plan(deal(won=False), rule="credit").credits[0].key
    assert plan(deal(won=False), rule="credit").credits[0].key == one
    assert plan(deal(won=False), rule="credit", credited="50.00").credits[0].key != one


# -- customers archived, merged or deleted in the ledger ---------------------------------------------------
@pytest.mark.parametrize(("state", "ref", "want_kind", "want_target", "words"), [
    (CustomerState("archived", "Acme Ltd"), ("company", "c1"), "reactivate", "A1",
     "Acme Ltd is archived in QuickBooks, so this deal's invoice is waiting. Reactivate it there, or from here"),
    (CustomerState("merged", "Acme Ltd", "A2", "Acme Limited"), ("person", "p9"), "link_to_survivor", "A2",
     "Acme Ltd was merged into Acme Limited in QuickBooks"),
    (CustomerState("deleted", "Acme Ltd"), ("company", "c1"), "unlink", None, "Acme Ltd was deleted in QuickBooks"),
])
def test_a_deal_of_a_customer_not_active_waits_with_its_way_out(state, ref, want_kind, want_target, words):
    message, way = customer_hold(state, "A1", ref, "quickbooks")
    assert message.startswith(words) and "the next sync" in message
    assert way == {"kind": want_kind, "label": way["label"], "target_id": want_target, "side": "accounting",
                   "crm_type": "contact" if ref[0] == "person" else "company", "crm_id": ref[1]}
    assert way["label"]


def test_the_planner_holds_a_won_deal_of_an_archived_customer_with_the_way_out():
    p = plan(deal(), row=False, states={"A1": CustomerState("archived", "Acme Ltd")}, ledger="quickbooks")
    [hold] = p.holds
    assert not p.creates and hold.way_out["kind"] == "reactivate" and hold.way_out["target_id"] == "A1"
    assert hold.reasons[0].startswith("Acme Ltd is archived in QuickBooks")
    assert [c.deal.id for c in plan(deal(), row=False).creates] == ["d1"]  # active again: invoiced


@pytest.mark.parametrize(("rows", "want"), [
    ({"A1": {"raw_name": "Acme Ltd (deleted)", "fate_name": "Acme Ltd"}}, {"A1": ("archived", "Acme Ltd", None)}),
    ({"A1": {"raw_name": "Acme", "fate": "merged", "merged_into": "A2"}}, {"A1": ("merged", "Acme", "A2")}),
    ({"A1": {"name": "Acme", "fate": "active"}}, {}),
    ({"A1": {}}, {"A1": ("archived", "A1", None)}),
])
def test_customer_states_come_from_the_mirror_rows(rows, want):
    got = {k: (v.state, v.name, v.survivor_id) for k, v in customer_states(rows).items()}
    assert got == want


@pytest.mark.parametrize(("props", "won", "lost"), [
    ({"dealstage": "closedlost"}, False, True),
    ({"hs_is_closed_lost": "true"}, False, True),
    ({"IsClosed": True, "IsWon": False}, False, True),
    ({"status": "lost"}, False, True),
    ({"Stage": "Closed Lost"}, False, True),
    ({"status": "open"}, False, False),
    ({"dealstage": "contractsent"}, False, False),
    ({"status": "lost"}, True, False),
])
def test_a_lost_deal_is_told_from_a_reopened_one(props, won, lost):
    assert deal_lost(deal(won=won, props=props)) is lost
