"""The sync follows the lifecycle rules end to end, on the sandboxes (issue 21, points 1 and 2): a customer
archived in the ledger holds its deal with a way out and is released when reactivated; a CRM merge moves the
link; deals lost, reopened or changed after invoicing are voided, credited or flagged as the workspace says,
once, and their flags close when the cause is gone."""

from __future__ import annotations

import contextlib
from decimal import Decimal as D
from unittest import mock

from app.connectors.base import Changes
from app.store.models import ConflictRow, Journal, Link, Quarantine
from tests.support import in_process
from tests.test_invoice_pairs import LOST, THREE_LINES, WON, Pair, crm_seeded, small_world

RAW = ("Object Not Found", "made inactive", "HTTP", "fault")


def _world(tmp_path, crm: str, ledger: str, settings: dict | None = None, *, won: bool = True):
    data = small_world([("Lifecycle deal", THREE_LINES)])
    c = crm_seeded(crm, data, http=False).__enter__()
    a = in_process(ledger, "empty")
    w = Pair(tmp_path, c, a, settings)
    w.sync()
    if won:
        [deal] = w.deals()
        w.mark(deal.id, WON[crm])
    return w


def _holds(w: Pair) -> list[Quarantine]:
    with w.store.session() as s:
        return list(s.query(Quarantine).filter_by(workspace_id=w.ws_id, record_type="deal"))


def _flags(w: Pair, deal_id: str) -> list[tuple[str, str]]:
    with w.store.session() as s:
        return [(c.field, c.outcome) for c in s.query(ConflictRow).filter_by(crm_id=deal_id).order_by(ConflictRow.id)]


def _run(w: Pair):
    from app.sync.engine import SyncEngine

    return SyncEngine(w.store, w.ws_id, w.crm.connector, w.acct.connector).run()


def _qbo_customer(w: Pair) -> str:
    with w.store.session() as s:
        [link] = s.query(Link).filter_by(workspace_id=w.ws_id, object_type="customer").all()
        return link.acct_id


def _check_way_out(w: Pair, deal_id: str, customer_id: str) -> None:
    [held] = _holds(w)
    assert held.record_id == deal_id and held.side == "crm"
    [item] = held.reasons["items"]
    assert item["field"] == "customer"
    assert "is archived in QuickBooks, so this deal's invoice is waiting" in item["message"]
    assert not any(raw in item["message"] for raw in RAW)
    way = item["way_out"]
    company = w.crm.connector.read_records("company", None).records[0]
    assert way == {"kind": "reactivate", "label": way["label"], "target_id": customer_id, "side": "accounting",
                   "crm_type": "company", "crm_id": company.id}
    assert way["label"].startswith("Reactivate ") and way["label"].endswith(" in QuickBooks")


def test_a_deal_of_an_archived_quickbooks_customer_waits_with_a_way_out_and_goes_once_reactivated(tmp_path):
    w = _world(tmp_path, "hubspot", "quickbooks", won=False)
    cust = _qbo_customer(w)
    w.acct.sandbox.user_edit("Customer", cust, Active=False)  # the bookkeeper archives it
    [deal] = w.deals()
    w.mark(deal.id, WON["hubspot"])
    run = _run(w)
    assert run.status == "ok", run.errors
    assert not any(raw in e for e in run.errors for raw in RAW)
    assert w.invoices() == [] and run.counts["deals_held"] == 1
    _check_way_out(w, deal.id, cust)
    assert _run(w).status == "ok" and len(_holds(w)) == 1  # still waiting, still one hold

    w.acct.sandbox.user_edit("Customer", cust, Active=True)  # reactivated in QuickBooks
    again = _run(w)
    assert again.status == "ok", again.errors
    [inv] = w.invoices()
    assert inv.customer_id == cust and _holds(w) == []


def test_an_invoice_quickbooks_refuses_for_an_inactive_customer_holds_the_deal_not_the_run(tmp_path):
    """The mirror did not know yet (archived between our read and the create): the refusal becomes the hold."""
    w = _world(tmp_path, "hubspot", "quickbooks", won=False)
    cust = _qbo_customer(w)
    [deal] = w.deals()
    w.mark(deal.id, WON["hubspot"])
    w.acct.sandbox.user_edit("Customer", cust, Active=False)
    with mock.patch.object(w.acct.connector, "read_customers", return_value=Changes([], None)):
        run = _run(w)
    assert run.status == "ok", run.errors
    assert run.errors == [] and w.invoices() == []
    _check_way_out(w, deal.id, cust)
    with w.store.session() as s:
        assert {j.status for j in s.query(Journal).filter_by(op="create_invoice")} == {"failed"}
    w.acct.sandbox.user_edit("Customer", cust, Active=True)
    assert _run(w).status == "ok"
    assert len(w.invoices()) == 1 and _holds(w) == []


def test_a_hubspot_company_merged_into_a_new_one_keeps_its_ledger_customer(tmp_path):
    w = _world(tmp_path, "hubspot", "xero", won=False)
    box = w.crm.sandbox
    [old] = w.crm.connector.read_records("company", None).records
    customers = w.acct.connector.read_customers(None).records
    newer = box.create("companies", name="Renamed Holdings", domain="renamed.example")
    box.merge("companies", newer, old.id)  # the old company is merged into the new one
    run = _run(w)
    assert run.status == "ok", run.errors
    assert run.counts.get("links_followed") == 1
    after = w.acct.connector.read_customers(None).records
    assert sorted(c.id for c in after) == sorted(c.id for c in customers)  # no new customer, none deleted
    with w.store.session() as s:
        [link] = s.query(Link).filter_by(workspace_id=w.ws_id, object_type="customer").all()
        assert (link.crm_id, link.acct_id) == (str(newer), customers[0].id)
    assert _run(w).counts["created"] == 0


def test_a_deal_lost_after_invoicing_is_voided_once_under_the_void_rule(tmp_path):
    w = _world(tmp_path, "hubspot", "quickbooks", {"invoices": {"after_invoice": "void"}})
    w.sync()
    [inv] = w.invoices()
    [deal] = w.deals()
    w.mark(deal.id, LOST["hubspot"])
    lost = _run(w)
    assert lost.status == "ok", lost.errors
    assert lost.counts["invoices_voided"] == 1 and w.invoices() == []
    again = _run(w)
    assert again.counts["invoices_voided"] == 0 and again.counts["writes"] == 0
    with w.store.session() as s:
        assert [(j.status, j.target_id) for j in s.query(Journal).filter_by(op="void_invoice")] == [("done", inv.id)]
    # undoing that run says why the void stays (a ledger cannot make a voided invoice valid again)
    from app.ops import undo

    with mock.patch.object(undo, "open_connectors", return_value=(w.crm.connector, w.acct.connector)), \
            mock.patch.object(w.crm.connector, "close"), mock.patch.object(w.acct.connector, "close"):
        plan = undo.plan_undo(w.store, None, "t", lost.run_id)
    [stays] = [r for r in plan.refusals if r.record_type == "invoice"]
    assert stays.reason.startswith("The invoice for ") and "stays void" in stays.reason
    assert "the next sync invoices it anew" in stays.reason


def _xero_approved(w: Pair) -> str:
    [inv] = w.invoices()
    w.acct.sandbox.user_edit("invoice", inv.id, Status="AUTHORISED")  # sent to the customer: no longer a draft
    return inv.id


def _credit_notes(w: Pair) -> list[dict]:
    box = w.acct.sandbox
    return list(box.state["tenants"][box.default_tenant].get("credit_notes", {}).values())


def test_a_deal_that_shrank_after_invoicing_gets_one_credit_note_for_the_difference_on_xero(tmp_path):
    w = _world(tmp_path, "hubspot", "xero", {"invoices": {"after_invoice": "credit"}})
    w.sync()
    inv_id = _xero_approved(w)
    [deal] = w.deals()
    seat = deal.line_items[1]  # 3 seats at 19.99
    resp = w.crm.connector.api.request("PATCH", f"/crm/v3/objects/line_items/{seat.id}",
                                       json_body={"properties": {"quantity": "1"}})
    assert resp.status_code == 200
    run = _run(w)
    assert run.status == "ok", run.errors
    [note] = _credit_notes(w)
    assert D(str(note["SubTotal"])) == D("39.98")  # two seats fewer
    assert [a["InvoiceID"] for a in note["Allocations"]] == [inv_id]
    assert _run(w).counts["credit_notes"] == 0 and len(_credit_notes(w)) == 1


def test_a_credit_note_sent_just_before_a_crash_is_not_sent_again(tmp_path):
    w = _world(tmp_path, "hubspot", "xero", {"invoices": {"after_invoice": "credit"}})
    w.sync()
    _xero_approved(w)
    [deal] = w.deals()
    w.mark(deal.id, LOST["hubspot"])
    real = w.acct.connector.create_credit_notes

    def sent_then_crash(writes):
        real(writes)
        raise KeyboardInterrupt  # the process dies before the answer is recorded

    with mock.patch.object(w.acct.connector, "create_credit_notes", sent_then_crash):
        with contextlib.suppress(KeyboardInterrupt):
            _run(w)
    assert len(_credit_notes(w)) == 1
    run = _run(w)
    assert run.status == "ok", run.errors
    assert len(_credit_notes(w)) == 1  # the ledger answered the same key with the note it made


def test_the_no_longer_won_flag_closes_when_the_deal_is_won_again(tmp_path):
    w = _world(tmp_path, "hubspot", "xero")
    w.sync()
    [deal] = w.deals()
    w.mark(deal.id, LOST["hubspot"])
    assert _run(w).counts["conflicts"] == 1
    assert _flags(w, deal.id) == [("invoice:won", "open")]
    assert _run(w).counts["conflicts"] == 0  # flagged once
    w.mark(deal.id, WON["hubspot"])
    assert _run(w).status == "ok"
    assert _flags(w, deal.id) == [("invoice:won", "resolved")]
    assert len(w.invoices()) == 1  # the invoice it had is still the only one


def test_a_hubspot_company_deleted_with_an_open_invoice_is_flagged_and_its_customer_stays(tmp_path):
    w = _world(tmp_path, "hubspot", "xero")
    w.sync()
    [company] = w.crm.connector.read_records("company", None).records
    [customer] = w.acct.connector.read_customers(None).records
    w.crm.sandbox.archive("companies", company.id)  # deleted in HubSpot (to its recycle bin)
    run = _run(w)
    assert run.status == "ok", run.errors
    with w.store.session() as s:
        [flag] = s.query(ConflictRow).filter_by(crm_id=company.id).all()
        [link] = s.query(Link).filter_by(workspace_id=w.ws_id, object_type="customer", crm_id=company.id).all()
    assert (flag.field, flag.outcome) == ("customer:crm_deleted_open_invoices", "open")
    assert "still open" in flag.acct_value and link.snapshot["fate"]["way_out"]["kind"] == "restore_in_crm"
    assert [c.id for c in w.acct.connector.read_customers(None).records if c.active] == [customer.id]
    assert _run(w).counts["conflicts"] == 0  # flagged once
