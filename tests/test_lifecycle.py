"""The pure rules for archived, deleted and merged records and for deals changed after invoicing."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from app.domain.lifecycle import RecordFate
from app.domain.settings import SettingsError, WorkspaceSettings
from app.sync.lifecycle import DealFacts, LinkFacts, deal_actions, link_actions, rule_from

ACTIVE_CRM = RecordFate("c1", "active")
ACTIVE_LEDGER = RecordFate("L1", "active")


def link(crm: RecordFate = ACTIVE_CRM, ledger: RecordFate = ACTIVE_LEDGER, **kw) -> LinkFacts:
    return LinkFacts(crm=crm, ledger=ledger, crm_name="Bremen GmbH", ledger_name="Bremen GmbH (L)", **kw)


LINK_CASES = [
    # (case, facts, action kinds, way out kind, target, words in the first reason)
    ("both active", link(), ["close_flags"], None, None, "both active"),
    ("crm merged follows the survivor",
     link(RecordFate("c1", "merged", survivor_id="c9", survivor_name="Bremen AG")),
     ["follow_crm"], None, "c9", "merged into 'Bremen AG'"),
    ("crm merged into a record linked to another customer",
     link(RecordFate("c1", "merged", survivor_id="c9", survivor_name="Bremen AG"), survivor_linked_to="L7",
          survivor_linked_name="Bremen AG (L)"),
     ["flag"], "merge_in_ledger", None, "two customers"),
    ("crm merged into a record already linked to this customer",
     link(RecordFate("c1", "merged", survivor_id="c9"), survivor_linked_to="L1"), ["follow_crm"], None, "c9",
     "merged"),
    ("inferred merge is proposed, not followed",
     link(RecordFate("c1", "merged", survivor_id="c9", survivor_name="Bremen GmbH", certain=False)),
     ["flag"], "link_to_survivor", None, "looks merged"),
    ("crm deleted with open invoices", link(RecordFate("c1", "deleted"), open_invoices=2),
     ["flag"], "restore_in_crm", None, "2 invoices are still open"),
    ("crm deleted, nothing open", link(RecordFate("c1", "deleted")), ["unlink"], None, None,
     "stays in the ledger"),
    ("ledger archived holds invoices", link(ledger=RecordFate("L1", "archived")), ["hold_invoices"],
     "reactivate", None, "archived (inactive)"),
    ("ledger merged holds invoices until linked to the survivor",
     link(ledger=RecordFate("L1", "merged", survivor_id="L5", survivor_name="Bremen Group")),
     ["hold_invoices"], "link_to_survivor", "L5", "merged into 'Bremen Group'"),
    ("ledger deleted", link(ledger=RecordFate("L1", "deleted")), ["hold_invoices"], "unlink", None,
     "deleted in the ledger"),
    ("both sides gone", link(RecordFate("c1", "deleted"), RecordFate("L1", "archived"), open_invoices=1),
     ["flag", "hold_invoices"], "restore_in_crm", None, "1 invoice is still open"),
]


@pytest.mark.parametrize(("case", "facts", "kinds", "way", "target", "words"), LINK_CASES,
                         ids=[c[0] for c in LINK_CASES])
def test_link_rules(case, facts, kinds, way, target, words):
    out = link_actions(facts)
    assert out.kinds() == kinds
    first = out.actions[0]
    assert words in first.reason
    assert (first.way_out.kind if first.way_out else None) == way
    assert first.target_id == target
    assert "Object Not Found" not in first.reason and "Error" not in first.reason


def test_the_way_out_of_an_archived_customer_names_the_customer_to_reactivate():
    out = link_actions(link(ledger=RecordFate("L1", "archived")))
    assert out.holds_invoices
    way = out.actions[0].way_out
    assert way is not None and way.target_id == "L1" and way.label == "Make 'Bremen GmbH (L)' active again"


def deal(**kw) -> DealFacts:
    base = {"deal_name": "Bremen fit-out", "won": True, "lost": False, "lines_changed": False,
            "deal_total": D("1000.00"), "invoice_id": "INV1", "invoice_number": "1001",
            "invoice_status": "awaiting_payment",
            "invoice_total": D("1000.00"), "currency": "EUR", "ledger": "xero"}
    base.update(kw)
    return DealFacts(**base)


DEAL_CASES = [
    # (case, facts, rule, kinds, amount, way out, words)
    ("unchanged", deal(), "flag", ["close_flags"], None, None, "agree"),
    ("lost, flag", deal(won=False, lost=True), "flag", ["flag"], None, "void", "was lost after it was invoiced"),
    ("reopened, flag", deal(won=False), "flag", ["flag"], None, "void", "reopened"),
    ("lost, paid, flag", deal(won=False, lost=True, amount_paid=D("100")), "flag", ["flag"], None, "credit_note",
     "was lost"),
    ("lost, void, unpaid", deal(won=False, lost=True), "void", ["void_invoice"], None, None, "voided"),
    ("lost, void, draft", deal(won=False, lost=True, invoice_status="draft"), "void", ["void_invoice"], None,
     None, "voided"),
    ("lost, void, partly paid", deal(won=False, lost=True, amount_paid=D("1"), invoice_status="partly_paid"),
     "void", ["flag"], None, "credit_note", "EUR 1.00 paid"),
    ("lost, credit", deal(won=False, lost=True), "credit", ["credit_note"], D("1000.00"), None,
     "credit note for EUR 1,000.00"),
    ("lost, credit, part credited already", deal(won=False, lost=True, credited=D("250.50")), "credit",
     ["credit_note"], D("749.50"), None, "EUR 749.50"),
    ("lost, credit, credited in full", deal(won=False, lost=True, credited=D("1000")), "credit",
     ["close_flags"], None, None, "credited in full"),
    ("lost, credit, a draft is voided instead", deal(won=False, lost=True, invoice_status="draft"), "credit",
     ["void_invoice"], None, None, "voided"),
    ("lost, invoice already void", deal(won=False, lost=True, invoice_status="void"), "void", ["close_flags"],
     None, None, "is void"),
    ("won again after a void", deal(invoice_status="void"), "flag", ["reinvoice"], None, None,
     "invoiced again"),
    ("lines: draft follows", deal(lines_changed=True, deal_total=D("900"), invoice_status="draft"), "flag",
     ["update_invoice"], None, None, "the draft follows"),
    ("lines: draft, drafts kept", deal(lines_changed=True, deal_total=D("900"), invoice_status="draft",
                                       drafts_follow=False), "flag", ["flag"], None, "credit_note", "now EUR 900.00"),
    ("lines: shrank, flag", deal(lines_changed=True, deal_total=D("900")), "flag", ["flag"], None, "credit_note",
     "Credit the difference"),
    ("lines: shrank, credit", deal(lines_changed=True, deal_total=D("899.995")), "credit", ["credit_note"],
     D("100.01"), None, "credit note for EUR 100.01"),  # rounded half up, as the ledgers round
    ("lines: shrank, credit after a credit", deal(lines_changed=True, deal_total=D("800"), credited=D("100")),
     "credit", ["credit_note"], D("100.00"), None, "EUR 100.00"),
    ("lines: grew, credit", deal(lines_changed=True, deal_total=D("1200")), "credit", ["flag"], None,
     "review_invoice", "The deal grew"),
    ("lines: unpaid, void", deal(lines_changed=True, deal_total=D("1200")), "void", ["void_invoice", "reinvoice"],
     None, None, "voided and the deal invoiced again"),
    ("lines: paid, void", deal(lines_changed=True, deal_total=D("900"), amount_paid=D("1000")), "void", ["flag"],
     None, "credit_note", "not voided"),
    ("lines: changed back to what was invoiced", deal(lines_changed=True), "credit", ["close_flags"], None, None,
     "agree"),
]


@pytest.mark.parametrize(("case", "facts", "rule", "kinds", "amount", "way", "words"), DEAL_CASES,
                         ids=[c[0] for c in DEAL_CASES])
def test_deal_rules(case, facts, rule, kinds, amount, way, words):
    out = deal_actions(facts, rule)
    assert out.kinds() == kinds
    first = out.actions[0]
    assert words in first.reason
    assert first.amount == amount
    assert (first.way_out.kind if first.way_out else None) == way
    if first.kind in ("void_invoice", "credit_note", "update_invoice", "flag"):
        assert first.target_id == "INV1"


def test_a_ledger_without_credit_notes_is_flagged_instead():
    out = deal_actions(deal(won=False, lost=True, ledger="other"), "credit")
    assert out.kinds() == ["flag"] and "no credit notes" in out.actions[0].reason


@pytest.mark.parametrize(("settings", "rule"), [({}, "flag"), ({"after_invoice": "void"}, "void"),
                                           ({"after_invoice": "credit"}, "credit")])
def test_the_rule_comes_from_the_workspace_and_defaults_to_flag(settings, rule):
    assert rule_from(WorkspaceSettings.from_json({"invoices": settings}).invoices) == rule


def test_a_rule_the_app_does_not_know_is_refused_with_its_name():
    with pytest.raises(SettingsError, match="deal lost or changed after its invoice"):
        WorkspaceSettings.from_json({"invoices": {"after_invoice": "shred"}})


def test_flag_codes_are_stable_so_a_flag_closes_when_its_cause_is_gone():
    lost = deal_actions(deal(won=False, lost=True)).actions[0]
    back = deal_actions(deal()).actions[0]
    assert lost.code == "deal_lost" and back.kind == "close_flags"


def test_facts_come_from_the_deal_and_its_invoice_as_the_mirror_holds_them():
    import datetime as dt

    from app.domain.models import Deal, LineItem
    from app.sync.lifecycle import deal_facts, link_facts

    deal = Deal("d1", "Bremen fit-out", False, "EUR", close_date=dt.date(2026, 11, 2),
                line_items=(LineItem("Seats", D(3), D("33.335"), D("10")), LineItem("Setup", D(1), D("100"))))
    row = {"status": "partly_paid", "number": "1001", "total": "238.00", "sub_total": "200.00", "amount_paid": "20"}
    facts = deal_facts(deal, row, "INV1", lines_changed=False, ledger="zohobooks", lost=True)
    assert facts.deal_total == D("190.00")  # 3 x 33.335 less 10 % = 90.0045 -> 90.00, plus 100
    assert (facts.invoice_total, facts.amount_paid, facts.invoice_status) == (D("200.00"), D("20"), "partly_paid")
    assert not facts.won and facts.lost
    out = deal_actions(facts, "credit")
    assert out.kinds() == ["credit_note"] and out.actions[0].amount == D("200.00")
    odd = deal_facts(deal, {"status": "weird", "total": "x"}, "INV2", lines_changed=True, ledger="xero")
    assert odd.invoice_status is None and odd.invoice_total == 0 and not odd.lost
    merged = link_facts(RecordFate("c1", "merged", survivor_id="c9"), RecordFate("L1", "active"), "Bremen",
                        "Bremen (L)", links={"c9": "L7"}, ledger_names={"L7": "Bremen AG"})
    assert link_actions(merged).actions[0].reason.endswith("Merge 'Bremen (L)' into 'Bremen AG' in the ledger.")
