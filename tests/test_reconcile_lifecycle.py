"""The reconciliation's lifecycle kinds: each appears with its cause and is gone once the cause is gone."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal as D

from app.domain.lifecycle import RecordFate
from app.domain.models import Deal, Invoice, LineItem, Party, Payment
from app.reconcile.engine import MonthData, reconcile

NOV = dt.date(2026, 11, 10)


def base() -> MonthData:
    deals = [Deal("d1", "Maple fit-out", True, "USD", close_date=NOV, company_id="c1",
                  line_items=(LineItem("Consulting", D(1), D("400.00")),)),
             Deal("d2", "Cedar survey", True, "USD", close_date=NOV, company_id="c2",
                  line_items=(LineItem("Survey", D(1), D("150.00")),))]
    invoices = [Invoice("i1", "L1", "USD", (), number="1001", issue_date=NOV, total=D("400.00"),
                        balance=D("400.00"), amount_paid=D(0), status="awaiting_payment"),
                Invoice("i2", "L2", "USD", (), number="1002", issue_date=NOV, total=D("150.00"),
                        balance=D("150.00"), amount_paid=D(0), status="awaiting_payment")]
    return MonthData(
        month="2026-11", deals=deals, invoices=invoices, payments=[],
        customers={"L1": Party("company", "Maple Ltd"), "L2": Party("company", "Cedar Ltd")},
        customer_names={"L1": "Maple Ltd", "L2": "Cedar Ltd", "L9": "Maple Group"},
        deal_invoice={"d1": "i1", "d2": "i2"}, company_customer={"c1": "L1", "c2": "L2"},
        crm_names={"c1": "Maple", "c2": "Cedar", "c7": "Maple Holdings"},
        company_url=lambda i: f"https://crm.example/company/{i}", customer_url=lambda i: f"https://ledger/c/{i}")


def kinds(data: MonthData) -> dict[str, int]:
    return reconcile(data).counts()


def only(data: MonthData, kind: str):
    found = [d for d in reconcile(data).discrepancies if d.kind == kind]
    assert len(found) == 1, found
    return found[0]


def test_the_base_month_is_clean():
    assert kinds(base()) == {}


def test_a_deal_lost_after_invoicing_is_flagged_until_won_again_or_its_invoice_voided_or_credited():
    data = base()
    lost = dataclasses.replace(data, deals=[dataclasses.replace(data.deals[0], won=False), data.deals[1]],
                               lost_deals={"d1"})
    d = only(lost, "not_won_invoiced")
    assert d.crm_name == "Maple fit-out" and d.acct_name == "1001" and d.is_money
    assert "'Maple fit-out' was lost in the CRM after it was invoiced" in d.explanation
    assert "USD 400.00 still stands" in d.explanation
    reopened = dataclasses.replace(lost, lost_deals=set())
    assert "is no longer won" in only(reopened, "not_won_invoiced").explanation
    assert kinds(data) == {}  # won again: gone
    void = dataclasses.replace(lost, invoices=[dataclasses.replace(data.invoices[0], status="void"),
                                               data.invoices[1]])
    assert kinds(void) == {}  # voided: gone
    assert kinds(dataclasses.replace(lost, credited={"i1": D("400.00")})) == {}  # credited in full: gone
    part = only(dataclasses.replace(lost, credited={"i1": D("100.00")}), "not_won_invoiced")
    assert "USD 300.00 still stands" in part.explanation and part.gap == D("-300.00")


def test_a_deal_deleted_after_invoicing_says_so():
    data = base()
    gone = dataclasses.replace(data, deals=[dataclasses.replace(data.deals[0], archived=True), data.deals[1]])
    assert "'Maple fit-out' was deleted in the CRM" in only(gone, "not_won_invoiced").explanation


def test_an_invoice_credited_while_its_deal_is_still_won_is_flagged_until_they_agree():
    data = base()
    credited = dataclasses.replace(data, credited={"i1": D("50.00")})
    d = only(credited, "credited_while_won")
    assert d.crm_name == "Maple fit-out" and d.crm_amount == D("400.00") and d.acct_amount == D("350.00")
    assert "credit notes of USD 50.00 leave invoice 1001 at USD 350.00" in d.explanation
    assert "amount_mismatch" not in kinds(credited)  # the same gap is not told twice
    assert reconcile(credited).ledger_totals == {"USD": D("500.00")}  # the credit comes off the ledger's side
    shrunk = dataclasses.replace(credited, deals=[dataclasses.replace(
        data.deals[0], line_items=(LineItem("Consulting", D(1), D("350.00")),)), data.deals[1]])
    assert kinds(shrunk) == {}  # the deal changed to match the credit: gone
    assert kinds(dataclasses.replace(credited, credited={})) == {}  # the credit note removed: gone


def test_a_linked_company_deleted_in_the_crm_is_named_and_closes_when_restored():
    data = base()
    deleted = dataclasses.replace(data, crm_fates={"c1": RecordFate("c1", "deleted")})
    d = only(deleted, "crm_record_gone")
    assert (d.crm_name, d.acct_name) == ("Maple", "Maple Ltd") and d.crm_url == "https://crm.example/company/c1"
    assert "'Maple' was deleted in the CRM; 'Maple Ltd' stays in the ledger. 1 of its invoices is still open." \
        in d.explanation
    assert kinds(dataclasses.replace(deleted, crm_fates={})) == {}  # restored: gone


def test_a_company_merged_in_the_crm_names_the_survivor():
    data = base()
    merged = dataclasses.replace(data, crm_fates={"c1": RecordFate("c1", "merged", survivor_id="c7")})
    assert "'Maple' was merged into 'Maple Holdings' in the CRM" in only(merged, "crm_record_gone").explanation
    guessed = dataclasses.replace(data, crm_fates={"c1": RecordFate("c1", "merged", survivor_id="c7",
                                                                    certain=False)})
    assert "it looks merged" in only(guessed, "crm_record_gone").explanation
    relinked = dataclasses.replace(merged, crm_fates={}, company_customer={"c7": "L1", "c2": "L2"})
    assert "crm_record_gone" not in kinds(relinked)  # the link follows the survivor: gone


def test_a_linked_customer_archived_or_merged_in_the_ledger_is_flagged_until_active_again():
    data = base()
    archived = dataclasses.replace(data, ledger_fates={"L2": RecordFate("L2", "archived")})
    d = only(archived, "ledger_customer_gone")
    assert (d.crm_name, d.acct_name, d.acct_url) == ("Cedar", "Cedar Ltd", "https://ledger/c/L2")
    assert "make it active again" in d.explanation
    assert kinds(dataclasses.replace(archived, ledger_fates={})) == {}  # reactivated: gone
    merged = dataclasses.replace(data, ledger_fates={"L1": RecordFate("L1", "merged", survivor_id="L9")})
    assert "'Maple Ltd' was merged into 'Maple Group' in the ledger" in only(merged, "ledger_customer_gone").explanation


def test_a_gone_record_that_no_deal_or_invoice_of_the_month_touches_is_set_apart():
    data = dataclasses.replace(base(), month="2026-06", ledger_fates={"L2": RecordFate("L2", "archived")})
    report = reconcile(data)
    assert report.discrepancies == [] and [d.kind for d in report.set_apart] == ["ledger_customer_gone"]


def test_a_payment_recorded_after_its_month_was_reconciled_is_flagged_until_that_month_is_reconciled_again():
    oct_closed = dt.datetime(2026, 11, 1, 6, 0)
    late = Payment("p1", "i0", D("75.00"), "USD", dt.date(2026, 10, 28), recorded_at=dt.datetime(2026, 11, 3, 9))
    early = Payment("p2", "i0", D("10.00"), "USD", dt.date(2026, 10, 20), recorded_at=dt.datetime(2026, 10, 21))
    october_invoice = Invoice("i0", "L1", "USD", (), number="0998", issue_date=dt.date(2026, 10, 2),
                              total=D("85.00"), balance=D(0), amount_paid=D("85.00"), status="paid")
    data = dataclasses.replace(base(), payments=[late, early], invoices=[*base().invoices, october_invoice],
                               closed={"2026-10": oct_closed})
    d = only(data, "late_payment")
    assert d.acct_name == "0998" and d.currency == "USD"
    assert ("A payment of USD 75.00 from 'Maple Ltd' on invoice 0998, dated 28 Oct 2026, was recorded on 03 Nov 2026, "
            "after October 2026 was reconciled on 01 Nov 2026") in d.explanation
    assert "late_payment" in kinds(dataclasses.replace(data, month="2026-10"))  # the changed month shows it too
    assert "late_payment" not in kinds(dataclasses.replace(data, month="2026-12"))
    again = dataclasses.replace(data, closed={"2026-10": dt.datetime(2026, 11, 4, 8)})
    assert kinds(again) == {}  # October reconciled again after the payment: gone
    aware = dataclasses.replace(data, payments=[dataclasses.replace(
        late, recorded_at=dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2))))])
    assert "late_payment" in kinds(aware)  # 07:30 UTC, after the 06:00 UTC report


def test_merges_are_read_from_what_the_mirror_holds():
    from app.ops.reconcile_feed import recorded_at, survivors
    from app.store.models import Mirror

    rows = [Mirror(remote_id="101", data={"properties": {"hs_merged_object_ids": "102;103"}}),  # HubSpot survivor
            Mirror(remote_id="001B", data={"properties": {"MasterRecordId": "001A"}}),  # Salesforce loser
            Mirror(remote_id="7", data={"properties": {}, "merged_into": "8"}),
            Mirror(remote_id="9", data={"properties": {"hs_merged_object_ids": ""}})]
    assert survivors(rows) == {"102": "101", "103": "101", "001B": "001A", "7": "8"}
    assert recorded_at({"recorded_at": "2026-11-03T09:00:00"}) == dt.datetime(2026, 11, 3, 9)
    assert recorded_at({}) is None and recorded_at({"recorded_at": "yesterday"}) is None


def test_month_data_reads_credits_recording_times_merges_and_past_reconciliations_from_the_store(tmp_path):
    """The store as a sync leaves it (credit notes, payments with their recording time, a merged CRM company,
    an archived customer) and a reconciliation of October made on 1 November: every new kind is fed."""
    from app.ops.reconcile_month import month_data
    from app.store.db import Store
    from app.store.models import Link, Mirror, Reconciliation, Workspace

    store = Store(f"sqlite:///{tmp_path}/feed.db")
    with store.session() as s:
        ws = Workspace(name="feed", crm_provider="hubspot", accounting_provider="xero", settings={})
        s.add(ws)
        s.flush()
        w = ws.id
        deal = {"name": "Maple fit-out", "won": True, "currency": "USD", "amount": "400.00",
                "close_date": "2026-11-10", "company_id": "c1", "lines": [], "archived": False}
        inv = {"customer_id": "L1", "currency": "USD", "number": "1001", "status": "awaiting_payment",
               "total": "400.00", "amount_paid": "0", "balance": "350.00", "issue_date": "2026-11-10"}
        s.add_all([
            Mirror(workspace_id=w, side="crm", object_type="deal", remote_id="d1", data=deal),
            Mirror(workspace_id=w, side="crm", object_type="company", remote_id="c1", data={"properties": {
                "name": "Maple"}}, archived=1),
            Mirror(workspace_id=w, side="crm", object_type="company", remote_id="c7", data={"properties": {
                "name": "Maple Holdings", "hs_merged_object_ids": "c1"}}),
            Mirror(workspace_id=w, side="accounting", object_type="invoice", remote_id="i1", data=inv),
            Mirror(workspace_id=w, side="accounting", object_type="creditnote", remote_id="cn1:i1",
                   data={"invoice_id": "i1", "amount": "50.00"}),
            Mirror(workspace_id=w, side="accounting", object_type="payment", remote_id="p1",
                   data={"invoice_id": "i1", "amount": "75.00", "date": "2026-10-28",
                         "recorded_at": "2026-11-03T09:00:00+00:00"}),
            Mirror(workspace_id=w, side="accounting", object_type="customer", remote_id="L1",
                   data={"name": "Maple Ltd", "raw_name": "Maple Ltd"}, archived=1),
            Link(workspace_id=w, object_type="customer", crm_type="company", crm_id="c1", acct_id="L1", how="name",
                 snapshot={"crm": {"name": "Maple"}}),
            Link(workspace_id=w, object_type="invoice", crm_type="deal", crm_id="d1", acct_id="i1", how="created"),
            Reconciliation(workspace_id=w, month="2026-10", status="ok", finished_at=dt.datetime(2026, 11, 1, 6)),
        ])
    data = month_data(store, w, "2026-11")
    assert data.credited == {"i1": D("50.00")}
    assert data.crm_fates["c1"].state == "merged" and data.crm_fates["c1"].survivor_id == "c7"
    assert data.ledger_fates["L1"].state == "archived"
    assert data.closed == {"2026-10": dt.datetime(2026, 11, 1, 6)}
    assert data.payments[0].recorded_at == dt.datetime(2026, 11, 3, 9, tzinfo=dt.UTC)
    assert kinds(data) == {"credited_while_won": 1, "crm_record_gone": 1, "ledger_customer_gone": 1,
                           "late_payment": 1}
    gone = next(d for d in reconcile(data).discrepancies if d.kind == "crm_record_gone")
    assert "'Maple' was merged into 'Maple Holdings' in the CRM" in gone.explanation
    store.dispose()


def test_a_held_person_is_not_the_months_because_a_company_shares_its_number():
    """Pipedrive numbers people and organizations alike: person c1 held back is not organization c1's."""
    from app.reconcile.engine import HeldRecord

    held_person = HeldRecord("person", "c1", "Jo Bloggs", "no e-mail address")
    held_company = HeldRecord("company", "c2", "Cedar", "tax ID is not valid")
    data = dataclasses.replace(base(), held=[held_person, held_company],
                               customer_records={"L1": [("company", "c1")], "L2": [("company", "c2")]})
    report = reconcile(data)
    month = [d.crm_name for d in report.discrepancies if d.kind == "held_back"]
    assert month == ["Cedar"]  # the month's deal d2 is Cedar's; nothing of the month is Jo's
    assert sorted(d.crm_name for d in report.data_quality if d.kind == "held_back") == ["Cedar", "Jo Bloggs"]
