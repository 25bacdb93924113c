"""Ledger customers archived, merged and reactivated, invoices for them refused in plain words, and credit
notes: each ledger's connector against its sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

from decimal import Decimal

from app.connectors.base import InvoiceWrite
from app.connectors.errors import CustomerInactive
from app.domain.lifecycle import CreditNoteWrite
from app.domain.models import Invoice, InvoiceLine
from tests.support import over_http


def _items(c) -> dict[str, str]:
    return {i.sku: i.id for i in c.connector.read_items(None).records}


# -- QuickBooks Online ------------------------------------------------------------------------------
def test_quickbooks_archived_customer_refuses_invoices_in_plain_words_until_reactivated():
    with over_http("quickbooks", "demo") as c:
        k, sb = c.connector, c.sandbox
        cust = sb.find("Customer", DisplayName="Harbourview Dental Group")[0]["Id"]
        line = InvoiceLine("Setup", Decimal(1), Decimal("950.00"), Decimal(0), _items(c)["SETUP"])
        sb.user_edit("Customer", cust, Active=False)  # a bookkeeper archives it
        [fate] = k.customer_fates([cust])
        assert (fate.state, fate.name) == ("archived", "Harbourview Dental Group")
        [res] = k.create_invoices([InvoiceWrite("k1", Invoice(None, cust, "USD", (line,), reference="CRM deal 1"))])
        assert isinstance(res.error, CustomerInactive)
        assert res.error.message == ("QuickBooks refuses new invoices for this customer: it is inactive (archived) "
                                     "there. Make it active again, or link the CRM record to the customer that "
                                     "replaced it.")
        assert "Object Not Found" not in str(res.error)
        back = k.reactivate_customer(cust)
        assert back.ok and back.record.active and back.record.raw_name == "Harbourview Dental Group"
        assert k.customer_fates([cust])[0].state == "active"
        assert k.reactivate_customer(cust).ok  # already active: nothing to do
        [again] = k.create_invoices([InvoiceWrite("k2", Invoice(None, cust, "USD", (line,), reference="CRM deal 1"))])
        assert again.ok
        assert k.customer_fates(["999999"])[0].state == "missing"


def test_quickbooks_reactivating_a_customer_whose_name_was_taken_keeps_the_deleted_mark():
    with over_http("quickbooks", "demo") as c:
        k, sb = c.connector, c.sandbox
        cust = sb.find("Customer", DisplayName="Harbourview Dental Group")[0]["Id"]
        sb.user_edit("Customer", cust, Active=False)
        sb.add("Customer", {"DisplayName": "Harbourview Dental Group"})
        res = k.reactivate_customer(cust)
        assert res.ok and res.record.active and res.record.raw_name == "Harbourview Dental Group (deleted)"


def test_quickbooks_merged_customer_is_reported_merged_into_the_survivor():
    with over_http("quickbooks", "demo") as c:
        k, sb = c.connector, c.sandbox
        keep = sb.find("Customer", DisplayName="Harbourview Dental Group")[0]["Id"]
        lose = sb.find("Customer", DisplayName="Tundra Roasters")[0]["Id"]
        sb.user_merge(lose, keep)
        [fate] = k.customer_fates([lose])
        assert (fate.state, fate.survivor_id, fate.certain) == ("merged", keep, False)
        assert fate.survivor_name == "Harbourview Dental Group"


def test_quickbooks_credit_memo_is_applied_to_the_invoice_with_exact_money():
    with over_http("quickbooks", "demo") as c:
        k, sb = c.connector, c.sandbox
        cust = sb.find("Customer", DisplayName="Harbourview Dental Group")[0]["Id"]
        line = InvoiceLine("Seats", Decimal(3), Decimal("333.33"), Decimal(0), _items(c)["LIC-SEAT"])
        [made] = k.create_invoices([InvoiceWrite("c1", Invoice(None, cust, "USD", (line,), reference="CRM deal 7"))])
        assert made.record.total == Decimal("999.99")
        [res] = k.create_credit_notes([CreditNoteWrite("cn-1", cust, "USD", made.id, Decimal("333.33"),
                                                       "One seat returned", reference="CRM deal 7")])
        assert res.ok, res.error
        note = res.record
        assert (note.amount, note.remaining, note.invoice_id, note.status) == (Decimal("333.33"), Decimal(0),
                                                                                made.id, "closed")
        state = k.get_invoice_states([made.id])[0].invoice
        assert state.balance == Decimal("666.66") and state.total == Decimal("999.99")
        memo = sb.find("CreditMemo", Id=note.id)[0]
        assert Decimal(memo["RemainingCredit"]) == 0 and memo["Line"][0]["Description"] == "One seat returned"
        # More than is owed: the rest stays as the customer's credit.
        [big] = k.create_credit_notes([CreditNoteWrite("cn-2", cust, "USD", made.id, Decimal("700.00"), "Refund")])
        assert big.ok and big.record.remaining == Decimal("33.34")
        assert k.get_invoice_states([made.id])[0].invoice.balance == 0
        # The same key again (a lost answer resent) makes nothing twice.
        [same] = k.create_credit_notes([CreditNoteWrite("cn-1", cust, "USD", made.id, Decimal("333.33"),
                                                        "One seat returned", reference="CRM deal 7")])
        assert len(sb.find("CreditMemo")) == 2 and same.record.id == note.id
