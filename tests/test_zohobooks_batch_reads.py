"""Zoho Books: many invoices' states or customers are read from the list pages, not one GET each (issue 25.5).

Undo planning of a ~300-invoice run asked Zoho once per invoice and once per customer: at Zoho's 100
requests a minute that was 13 minutes, and most of a Free plan's 1,000 calls a day for a dry run.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from app.connectors.base import CustomerWrite, InvoiceWrite
from app.connectors.zohobooks import Connector
from app.domain.models import Invoice, InvoiceLine, Party
from app.sandbox.server import InProcessTransport
from tests.support import in_process

API = "/books/v3"


def _gets(sandbox, since: int) -> tuple[int, int, int]:
    """(invoice list pages, contact list pages, single-record GETs) asked since ``since`` in the request log."""
    log = [(m, p) for m, p, _ in sandbox.request_log[since:] if m == "GET"]
    return (sum(1 for _, p in log if p == API + "/invoices"), sum(1 for _, p in log if p == API + "/contacts"),
            sum(1 for _, p in log if p.startswith((API + "/invoices/", API + "/contacts/"))))


def _fresh(c) -> Connector:
    """A connector with nothing in memory (a new process), its own minute already behind it."""
    c.sandbox.advance(61)
    return Connector(c.conn, c.tokens, transport=InProcessTransport(c.sandbox), sleep=c.sandbox.advance)


def _state(st) -> tuple:
    i = st.invoice
    return (i.id, i.number, i.reference, i.customer_id, i.currency, i.status, i.total, i.balance, i.amount_paid,
            i.issue_date, i.due_date, st.sent, st.version)


def test_states_of_300_invoices_cost_a_few_list_pages_and_match_the_one_by_one_reads():
    c = in_process("zohobooks", "demo")
    items = {i.sku: i.id for i in c.connector.read_items(None).records}
    [cust] = c.connector.create_customers([CustomerWrite("c", Party(kind="company", name="Batch Ltd",
                                                                    currency="GBP"))])
    writes = [InvoiceWrite(f"i{n}", Invoice(
        id=None, customer_id=cust.id, currency="GBP", reference=f"CRM deal {n}", status=(
            "awaiting_payment" if n % 3 else "draft"),
        lines=(InvoiceLine(f"Work {n}", Decimal("2"), Decimal("10.05"), Decimal("0"), items["CONS-HR"]),),
        issue_date=dt.date(2026, 3, 1), due_date=dt.date(2026, 3, 31))) for n in range(301)]
    made = c.connector.create_invoices(writes)
    assert all(r.ok for r in made), [r.error for r in made if not r.ok][:1]
    ids = [r.id for r in made]
    c.sandbox.record_payment(ids[1], Decimal("7.35"), "2026-03-02")
    assert c.connector.void_invoice(ids[2]).ok
    gone = ids.pop()  # deleted in Zoho since the run: no state, as before
    c.sandbox.state["books"][c.conn.tenant_id]["invoices"].pop(gone)
    book = len(c.sandbox.state["books"][c.conn.tenant_id]["invoices"])
    assert book >= 300

    connector, before = _fresh(c), len(c.sandbox.request_log)
    states = connector.get_invoice_states([*ids, gone])
    pages, _, singles = _gets(c.sandbox, before)
    assert pages <= -(-book // 200) and singles == 1  # 2 list pages and the deleted one's GET, not 301 GETs

    one_by_one = _fresh(c)
    expected = [s for k in range(0, len(ids), 3) for s in one_by_one.get_invoice_states(ids[k:k + 3])]
    assert len(expected) == 300 and _gets(c.sandbox, before)[2] - singles == 300
    assert [_state(s) for s in states] == [_state(s) for s in expected]
    by_id = {s.invoice.id: s for s in states}
    assert by_id[ids[1]].invoice.amount_paid == Decimal("7.35") and by_id[ids[1]].sent
    assert isinstance(by_id[ids[1]].invoice.total, Decimal) and by_id[ids[1]].invoice.total == Decimal("20.10")
    assert by_id[ids[2]].invoice.status == "void" and not by_id[ids[2]].sent
    assert by_id[ids[0]].invoice.status == "draft" and not by_id[ids[0]].sent
    assert gone not in by_id


def test_a_few_invoices_are_still_one_get_each():
    c = in_process("zohobooks", "demo")
    items = {i.sku: i.id for i in c.connector.read_items(None).records}
    [cust] = c.connector.create_customers([CustomerWrite("c", Party(kind="company", name="Few Ltd", currency="GBP"))])
    some = [r.id for r in c.connector.create_invoices([InvoiceWrite(f"i{n}", Invoice(
        id=None, customer_id=cust.id, currency="GBP", reference=f"CRM deal {n}",
        lines=(InvoiceLine("Work", Decimal("1"), Decimal("5"), Decimal("0"), items["CONS-HR"]),))) for n in range(3)])]
    before = len(c.sandbox.request_log)
    assert [s.invoice.id for s in c.connector.get_invoice_states(some)] == some
    assert _gets(c.sandbox, before) == (0, 0, 3)


def test_many_customers_come_from_the_contact_list_and_the_kept_details(tmp_path):
    from app.ops import detail_cache
    from app.store.db import Store

    c = in_process("zohobooks", "demo")
    made = c.connector.create_customers([CustomerWrite(f"k{n}", Party(
        kind="company", name=f"Listed Customer {n:03d} Ltd", email=f"ap{n}@listed.example",
        address_line1=f"{n} Quay St", city="Leeds", postal_code="LS1 1AB", country="GB", tax_id="GB123456789",
        currency="GBP")) for n in range(250)])
    ids = [r.id for r in made]
    gone = ids.pop()
    c.sandbox.state["books"][c.conn.tenant_id]["contacts"].pop(gone)
    c.sandbox.user_edit("contacts", ids[5], contact_name="Renamed By Bookkeeper Ltd")
    book = len(c.sandbox.state["books"][c.conn.tenant_id]["contacts"])

    store = Store(f"sqlite:///{tmp_path}/w.db")
    first = _fresh(c)
    detail_cache.attach(store, first)
    before = len(c.sandbox.request_log)
    got = first.get_customers([*ids, gone])
    _, pages, singles = _gets(c.sandbox, before)
    assert pages <= -(-book // 200) and singles == len(ids) + 1  # nothing kept yet: each detail once

    one_by_one = _fresh(c)
    expected = [x for k in range(0, len(ids), 3) for x in one_by_one.get_customers(ids[k:k + 3])]
    assert got == expected and len(got) == len(ids)
    assert next(x for x in got if x.id == ids[5]).party.name == "Renamed By Bookkeeper Ltd"
    assert got[0].party.address_line1 == "0 Quay St" and got[0].party.tax_id == "GB123456789"

    again = _fresh(c)  # a new process on the same store: the details kept are used, only the list is asked
    detail_cache.attach(store, again)
    c.sandbox.user_edit("contacts", ids[7], contact_name="Changed Again Ltd")
    before = len(c.sandbox.request_log)
    second = again.get_customers([*ids, gone])
    _, pages, singles = _gets(c.sandbox, before)
    assert pages <= -(-book // 200) and singles == 2  # the one changed since, and the deleted one
    assert [x.id for x in second] == ids and next(x for x in second if x.id == ids[7]).party.name == (
        "Changed Again Ltd")
    store.dispose()


def test_the_sandbox_lists_page_as_zoho_says():
    """page/per_page (at most 200), page_context.has_more_page, contact_type and created_time sorting."""
    import httpx

    c = in_process("zohobooks", "demo")
    c.connector.create_customers([CustomerWrite(f"k{n}", Party(kind="company", name=f"Paged {n:03d} Ltd"))
                                  for n in range(230)])
    contacts = c.sandbox.state["books"][c.conn.tenant_id]["contacts"]
    customers = [k for k, v in contacts.items() if v["contact_type"] == "customer"]
    token = c.tokens.load(c.conn.id).access_token
    with httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.conn.base_url,
                      headers={"Authorization": f"Zoho-oauthtoken {token}"}) as http:
        def page(n: int, **kw) -> dict:
            return http.get(API + "/contacts", params={"organization_id": c.conn.tenant_id, "page": n,
                                                       "contact_type": "customer", **kw}).json()

        first = page(1, per_page=500, sort_column="created_time", sort_order="D")
        assert first["page_context"]["per_page"] == 200 and first["page_context"]["has_more_page"] is True
        assert first["page_context"]["sort_column"] == "created_time" and len(first["contacts"]) == 200
        times = [int(contacts[r["contact_id"]]["_created"]) for r in first["contacts"]]
        assert times == sorted(times, reverse=True)
        rest, n = [], 2
        while True:
            more = page(n, per_page=200, sort_column="created_time", sort_order="D")
            rest += more["contacts"]
            if not more["page_context"]["has_more_page"]:
                break
            n += 1
        listed = [r["contact_id"] for r in first["contacts"] + rest]
        assert sorted(listed) == sorted(customers) and len(set(listed)) == len(listed)
        assert page(n + 1)["contacts"] == [] and page(n + 1)["page_context"]["has_more_page"] is False
        assert all(r["contact_type"] == "customer" for r in first["contacts"] + rest)
