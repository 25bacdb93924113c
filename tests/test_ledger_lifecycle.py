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
def _qbo_invoice(c, key: str, sku: str, qty: str, price: str):
    """An invoice to Harbourview Dental Group for one line: (customer id, the create's result)."""
    cust = c.sandbox.find("Customer", DisplayName="Harbourview Dental Group")[0]["Id"]
    line = InvoiceLine(sku, Decimal(qty), Decimal(price), Decimal(0), _items(c)[sku])
    [made] = c.connector.create_invoices([InvoiceWrite(key, Invoice(None, cust, "USD", (line,),
                                                                    reference=f"CRM deal {key}"))])
    return cust, made


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
        cust, made = _qbo_invoice(c, "7", "LIC-SEAT", "3", "333.33")
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
        credits = k.read_credit_notes(None)
        assert sorted(n.amount for n in credits.records if n.invoice_id == made.id) == [Decimal("333.33"),
                                                                                      Decimal("666.66")]
        assert k.read_credit_notes(credits.cursor).records == []  # nothing new since
        # The same key again (a lost answer resent) makes nothing twice.
        [same] = k.create_credit_notes([CreditNoteWrite("cn-1", cust, "USD", made.id, Decimal("333.33"),
                                                        "One seat returned", reference="CRM deal 7")])
        assert len(sb.find("CreditMemo")) == 2 and same.record.id == note.id


# -- Xero ---------------------------------------------------------------------------------------------
def _xero_customer(c, name: str) -> str:
    from app.connectors.base import CustomerWrite
    from app.domain.models import Party

    [res] = c.connector.create_customers([CustomerWrite(f"cust-{name}", Party("company", name, currency="GBP"))])
    assert res.ok, res.error
    return res.id


def _xero_invoice(c, cid: str, key: str, price: str, status: str = "awaiting_payment") -> str:
    [res] = c.connector.create_invoices([InvoiceWrite(key, Invoice(
        None, cid, "GBP", (InvoiceLine("Work", Decimal(1), Decimal(price)),), reference=f"CRM deal {key}",
        status=status))])
    assert res.ok, res.error
    return res.id


def test_xero_archived_and_merged_contacts_and_reactivation():
    with over_http("xero", "demo") as c:
        k, sb = c.connector, c.sandbox
        keep, lose, old = (_xero_customer(c, n) for n in ("Bremen GmbH", "Bremen G.m.b.H.", "Old Bremen"))
        inv = _xero_invoice(c, lose, "m1", "10.00")
        sb.user_merge_contacts(lose, keep)
        assert k.deactivate_customer(old).ok
        fates = {f.id: f for f in k.customer_fates([keep, lose, old, "00000000-0000-4000-8000-000000000000"])}
        assert fates[keep].state == "active"
        assert (fates[lose].state, fates[lose].survivor_id, fates[lose].survivor_name) == ("merged", keep,
                                                                                          "Bremen GmbH")
        assert fates[lose].certain and fates[old].state == "archived"
        assert fates["00000000-0000-4000-8000-000000000000"].state == "missing"
        assert k.get_invoice_states([inv])[0].invoice.customer_id == keep  # the merge moved its invoice
        refused = k.reactivate_customer(lose)
        assert refused.error is not None and "merged this contact" in refused.error.message
        back = k.reactivate_customer(old)
        assert back.ok and back.record.active and k.customer_fates([old])[0].state == "active"


def test_xero_credit_note_is_allocated_with_xeros_per_line_tax_and_a_paid_invoice_cannot_be_voided():
    with over_http("xero", "demo") as c:
        k, sb = c.connector, c.sandbox
        cid = _xero_customer(c, "Credit Customer Ltd")
        inv = _xero_invoice(c, cid, "c1", "99.99")
        before = k.get_invoice_states([inv])[0].invoice
        [res] = k.create_credit_notes([CreditNoteWrite("cn-x1", cid, "GBP", inv, Decimal("33.33"), "Returned",
                                                       reference="CRM deal c1")])
        assert res.ok, res.error
        note = res.record
        ratio = before.total / Decimal("99.99")  # the invoice's tax rate carries over to the credit
        assert note.amount == (Decimal("33.33") * ratio).quantize(Decimal("0.01"))
        assert note.remaining == 0 and note.status == "PAID" and note.number == "CN-0001"
        after = k.get_invoice_states([inv])[0].invoice
        assert after.balance == before.total - note.amount and after.total == before.total
        # Credit allocated: Xero no longer lets the invoice be voided.
        refused = k.void_invoice(inv)
        assert refused.error is not None
        assert k.get_invoice_states([inv])[0].invoice.status != "void"
        # A credit note bigger than what is owed keeps the rest as credit; a draft cannot take one.
        [big] = k.create_credit_notes([CreditNoteWrite("cn-x2", cid, "GBP", inv, Decimal("200.00"), "All of it")])
        assert big.ok and big.record.remaining == big.record.amount - after.balance
        assert k.get_invoice_states([inv])[0].invoice.status == "paid"
        read = k.read_credit_notes(None)
        assert sorted((n.invoice_id, n.amount) for n in read.records) == sorted(
            [(inv, note.amount), (inv, after.balance)])
        draft = _xero_invoice(c, cid, "c3", "10.00", status="draft")
        [on_draft] = k.create_credit_notes([CreditNoteWrite("cn-x3", cid, "GBP", draft, Decimal("5.00"), "x")])
        assert on_draft.ok and on_draft.record.remaining == on_draft.record.amount  # nothing allocated
        assert len(sb.state["tenants"][sb.default_tenant]["credit_notes"]) == 3


# -- Zoho Books -----------------------------------------------------------------------------------------
def _books_world(c):
    from app.connectors.base import CustomerWrite
    from app.domain.models import Party

    [cust] = c.connector.create_customers([CustomerWrite("c", Party("company", "Credit Test Ltd", currency="GBP"))])
    items = {i.sku: i.id for i in c.connector.read_items(None).records}
    return cust.id, items


def _books_invoice(c, cust: str, items: dict[str, str], key: str, *, sent: bool = True) -> str:
    [res] = c.connector.create_invoices([InvoiceWrite(key, Invoice(None, cust, "GBP", (
        InvoiceLine("Seats", Decimal(3), Decimal("33.33"), Decimal(0), items["LIC-SEAT"]),), reference=key))])
    assert res.ok, res.error
    if sent:
        c.connector._call("POST", f"/invoices/{res.id}/status/sent", resource="invoice")
    return res.id


def test_zoho_books_inactive_and_deleted_contacts_and_reactivation():
    with over_http("zohobooks", "demo") as c:
        k = c.connector
        cust, _items = _books_world(c)
        assert k.deactivate_customer(cust).ok
        assert k.customer_fates([cust])[0].state == "archived"
        back = k.reactivate_customer(cust)
        assert back.ok and back.record.active and k.customer_fates([cust])[0].state == "active"
        assert k.reactivate_customer(cust).ok  # already active: nothing to do
        [unused] = [x.id for x in k.find_customers(name="Credit Test Ltd")]
        c.sandbox.user_delete("contacts", unused)  # never invoiced: Zoho Books deletes it for good
        assert k.customer_fates([unused])[0].state == "deleted"


def test_zoho_books_credit_note_is_applied_to_the_invoice_once_and_a_credited_invoice_cannot_be_voided():
    with over_http("zohobooks", "demo") as c:
        k = c.connector
        cust, items = _books_world(c)
        inv = _books_invoice(c, cust, items, "CRM deal 9")
        before = k.get_invoice_states([inv])[0].invoice
        assert before.total == Decimal("99.99")
        write = CreditNoteWrite("cn-b1", cust, "GBP", inv, Decimal("33.33"), "One seat returned",
                                reference="CRM deal 9")
        [res] = k.create_credit_notes([write])
        assert res.ok, res.error
        assert (res.record.amount, res.record.remaining, res.record.status) == (Decimal("33.33"), 0, "closed")
        assert res.record.number == "CN-00001"
        after = k.get_invoice_states([inv])[0].invoice
        assert after.balance == Decimal("66.66") and after.total == Decimal("99.99")
        [again] = k.create_credit_notes([write])  # sent again after a lost answer: found by its reference
        assert again.ok and again.record.id == res.record.id
        assert k.get_invoice_states([inv])[0].invoice.balance == Decimal("66.66")
        refused = k.void_invoice(inv)
        assert refused.error is not None and "credits" in refused.error.message
        read = k.read_credit_notes(None)
        assert [(n.invoice_id, n.amount, n.number) for n in read.records] == [(inv, Decimal("33.33"), "CN-00001")]
        draft = _books_invoice(c, cust, items, "CRM deal 10", sent=False)
        [on_draft] = k.create_credit_notes([CreditNoteWrite("cn-b2", cust, "GBP", draft, Decimal("5.00"), "x")])
        assert on_draft.ok and on_draft.record.remaining == Decimal("5.00")  # a draft takes no credit


def test_quickbooks_payments_carry_when_they_were_recorded_and_credits_applied_are_not_payments():
    with over_http("quickbooks", "demo") as c:
        k, sb = c.connector, c.sandbox
        cust, made = _qbo_invoice(c, "3", "SETUP", "1", "950.00")
        sb.record_payment(made.id, Decimal("400.00"), sb.today())
        [credit] = k.create_credit_notes([CreditNoteWrite("cn-p", cust, "USD", made.id, Decimal("150.00"), "Goodwill")])
        assert credit.ok
        mine = [p for p in k.read_payments(None).records if p.invoice_id == made.id]
        assert [p.amount for p in mine] == [Decimal("400.00")]  # the credit memo's application is not money in
        assert mine[0].recorded_at is not None and mine[0].recorded_at.tzinfo is not None
        assert k.get_invoice_states([made.id])[0].invoice.balance == Decimal("400.00")


def test_xero_payments_carry_when_they_were_recorded():
    with over_http("xero", "demo") as c:
        cid = _xero_customer(c, "Payer Ltd")
        inv = _xero_invoice(c, cid, "pay1", "50.00")
        c.sandbox.record_payment(inv, Decimal("10.00"), "2026-01-02")
        [pay] = [p for p in c.connector.read_payments(None).records if p.invoice_id == inv]
        assert pay.amount == Decimal("10.00") and pay.recorded_at is not None
