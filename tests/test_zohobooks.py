"""Zoho Books: the sandbox behaves as the reference says, and the connector copes with all of it."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest

from app.connectors.base import Connection, CustomerWrite, InvoiceWrite, ItemWrite
from app.connectors.errors import (
    AuthExpired,
    Conflict,
    DuplicateName,
    NotFound,
    RateLimited,
    StaleVersion,
    ValidationRejected,
)
from app.connectors.oauth import build_authorize
from app.connectors.zohobooks import Connector, json_dumps, oauth_config, web_root
from app.domain.models import Invoice, InvoiceLine, Item, Party
from app.domain.money import invoice_totals
from app.sandbox.base import Fault
from app.sandbox.registry import sandbox_class
from app.sandbox.server import InProcessTransport
from tests.support import in_process, over_http

API = "/books/v3"


def world(seed: str = "demo", **kw):
    """A connected sandbox; the connector's waits move the sandbox clock (so 100/min holds at no wall time)."""
    return in_process("zohobooks", seed, **kw)


def raw(c, method: str, path: str, *, params=None, body=None, token: str | None = None, scheme="Zoho-oauthtoken"):
    """A request straight to the sandbox, bypassing the connector (to see Zoho's own answers)."""
    token = token or c.tokens.load(c.conn.id).access_token
    with httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.conn.base_url) as http:
        return http.request(method, path, params=params, headers={"Authorization": f"{scheme} {token}"},
                            content=json_dumps(body).encode() if body is not None else None)


def party(name: str, **kw) -> Party:
    return Party(kind=kw.pop("kind", "company"), name=name, **kw)


def bulk(sandbox, n: int, prefix: str = "Bulk Customer") -> list[str]:
    return [sandbox.add_contact({"contact_name": f"{prefix} {i:04d}", "company_name": f"{prefix} {i:04d}",
                                 "contact_persons": [{"email": f"c{i}@bulk.example", "is_primary_contact": True}]})
            for i in range(n)]


def list_calls(sandbox, path: str) -> int:
    return sum(1 for m, p, _ in sandbox.request_log if m == "GET" and p == API + path)


# -- OAuth and connecting -------------------------------------------------------------------------
def test_oauth_config_targets_the_accounts_server_with_offline_access_and_comma_scopes():
    conn = Connection("c1", "zohobooks", "https://www.zohoapis.eu", auth_url="https://accounts.zoho.eu")
    config = oauth_config(conn, "secret")
    assert config.authorize_url == "https://accounts.zoho.eu/oauth/v2/auth"
    assert config.token_url == "https://accounts.zoho.eu/oauth/v2/token"
    query = urllib.parse.parse_qs(urllib.parse.urlparse(build_authorize(config, "http://127.0.0.1:5/cb").url).query)
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert "ZohoBooks.contacts.ALL" in query["scope"][0].split(",")
    assert query["code_challenge_method"] == ["S256"]
    default = oauth_config(Connection("c2", "zohobooks", "https://www.zohoapis.com"), None)
    assert default.authorize_url == "https://accounts.zoho.com/oauth/v2/auth"


def test_oauth_over_http_takes_api_domain_accounts_server_and_the_organisation():
    with over_http("zohobooks", "demo") as c:
        assert c.conn.base_url == c.url and c.conn.auth_url == c.url  # api_domain / accounts-server
        assert c.conn.extra["location"] == "us"
        assert c.conn.tenant_id in c.sandbox.state["orgs"]
        assert c.conn.label == "Crossledger Demo Ltd" == c.connector.company_name()
        saved = c.tokens.load(c.conn.id)
        assert saved.refresh_token and saved.extra["api_domain"] == c.url
        assert saved.refresh_token in c.sandbox.state["oauth"]["refresh"]  # access_type=offline was honoured
        # An hour later the access token is dead; the refresh answer has no new refresh token.
        c.sandbox.advance(3601)
        assert len(c.connector.read_items(None).records) == 7
        again = c.tokens.load(c.conn.id)
        assert again.access_token != saved.access_token and again.refresh_token == saved.refresh_token
        assert ("POST", "/oauth/v2/token", 200) in c.sandbox.request_log


def test_refresh_on_expiry_in_process_and_token_shape():
    c = world("empty")
    before = c.tokens.load(c.conn.id)
    c.sandbox.advance(3601)
    assert c.connector.company_name() == "Crossledger Test Ltd"
    after = c.tokens.load(c.conn.id)
    assert after.access_token != before.access_token and after.refresh_token == before.refresh_token
    assert after.extra["api_domain"] == c.sandbox.public_url and "ZohoBooks.contacts.ALL" in after.extra["scope"]
    assert c.sandbox.request_log.count(("POST", "/oauth/v2/token", 200)) == 1


def test_revoked_refresh_token_means_reconnect():
    c = world("empty")
    tokens = c.tokens.load(c.conn.id)
    resp = raw(c, "POST", "/oauth/v2/token/revoke", params={"token": tokens.refresh_token})
    assert resp.json() == {"status": "success"}
    with pytest.raises(AuthExpired):  # revoking the refresh token killed its access tokens too
        c.connector.company_name()


def test_zoho_accounts_refuses_a_dead_refresh_token_with_http_200_invalid_code():
    c = world("empty")
    with httpx.Client(transport=InProcessTransport(c.sandbox)) as http:
        resp = http.post(f"{c.sandbox.public_url}/oauth/v2/token",
                         params={"grant_type": "refresh_token", "client_id": c.conn.client_id,
                                 "refresh_token": "1000.nope"})
    assert resp.status_code == 200 and resp.json() == {"error": "invalid_code"}


def test_ten_access_tokens_per_refresh_token_per_ten_minutes():
    c = world("empty")
    rt = c.tokens.load(c.conn.id).refresh_token
    form = {"grant_type": "refresh_token", "client_id": c.conn.client_id, "refresh_token": rt}
    with httpx.Client(transport=InProcessTransport(c.sandbox)) as http:
        answers = [http.post(f"{c.sandbox.public_url}/oauth/v2/token", data=form).json() for _ in range(11)]
        assert all("access_token" in a and "refresh_token" not in a for a in answers[:10])
        assert answers[10]["error"] == "Access Denied"
        c.sandbox.advance(601)
        assert "access_token" in http.post(f"{c.sandbox.public_url}/oauth/v2/token", data=form).json()


def test_several_organisations_preselect_the_default_and_list_them():
    sandbox = sandbox_class("zohobooks")()
    sandbox.seed("empty")
    second = sandbox.add_organization("Second Books Ltd", is_default=True)
    from app.connectors.tokens import MemoryTokenStore
    from app.ops.connect import connect_with_grant

    transport = InProcessTransport(sandbox)
    tokens = MemoryTokenStore()
    conn = Connection("z1", "zohobooks", sandbox.public_url, auth_url=sandbox.public_url)
    connect_with_grant(conn, tokens, sandbox.grant_tokens(conn.client_id), sandbox.test_callback_params(), transport)
    assert conn.tenant_id == second and conn.label == "Second Books Ltd"
    assert conn.extra["choose_organization"] and len(conn.extra["organizations"]) == 2
    connector = Connector(conn, tokens, transport=transport)
    assert {t.name for t in connector.list_tenants()} == {"Crossledger Test Ltd", "Second Books Ltd"}


def test_the_api_insists_on_its_header_scheme_and_organization_id():
    c = world("empty")
    bearer = raw(c, "GET", f"{API}/contacts", params={"organization_id": c.conn.tenant_id}, scheme="Bearer")
    assert bearer.status_code == 401 and bearer.json()["code"] == 57
    missing = raw(c, "GET", f"{API}/contacts")
    assert missing.status_code == 400 and missing.json()["code"] == 6041
    assert set(missing.json()) == {"code", "message"}
    wrong = raw(c, "GET", f"{API}/contacts", params={"organization_id": "999"})
    assert wrong.json()["code"] == 6041
    c.conn.tenant_id = "999"
    with pytest.raises(NotFound, match="organization 999"):
        c.connector.read_items(None)
    nowhere = raw(c, "GET", f"{API}/nowhere", params={"organization_id": "1"})
    assert nowhere.status_code == 404 and nowhere.json() == {"code": 5, "message": "Invalid URL Passed"}


def test_a_timestamp_filter_needs_its_plus_sign_encoded():
    c = world("empty")
    org = c.conn.tenant_id
    good = raw(c, "GET", f"{API}/invoices", params={"organization_id": org,
                                                     "last_modified_time": "2026-01-01T00:00:00+0000"})
    assert good.status_code == 200 and good.json()["code"] == 0
    token = c.tokens.load(c.conn.id).access_token
    with httpx.Client(transport=InProcessTransport(c.sandbox)) as http:  # '+' sent raw becomes a space
        bad = http.get(f"{c.sandbox.public_url}{API}/invoices?organization_id={org}"
                       "&last_modified_time=2026-01-01T00:00:00+0000",
                       headers={"Authorization": f"Zoho-oauthtoken {token}"})
    assert bad.status_code == 400 and bad.json() == {"code": 2,
                                                     "message": "Invalid value passed for last_modified_time"}


# -- reading customers ------------------------------------------------------------------------------
def test_demo_seed_maps_contacts_to_parties():
    c = world("demo")
    customers = {x.raw_name: x for x in c.connector.read_customers(None).records}
    from app.sandbox.demo_data import demo_data

    ledger = [co for co in demo_data().companies if co.in_ledger]
    assert len(customers) == len(ledger) + 4
    by_tax = next(co for co in ledger if co.in_ledger == "tax_id")
    cust = customers[by_tax.ledger_name]
    assert cust.party.kind == "company" and cust.party.tax_id == by_tax.tax_id
    assert cust.party.country == by_tax.country and cust.party.city == by_tax.city
    assert cust.party.currency == by_tax.currency
    by_email = next(co for co in ledger if co.in_ledger == "email")
    assert customers[by_email.ledger_name].party.email == by_email.email
    assert customers["Margaret Hale"].party.kind == "person"
    assert customers["Margaret Hale"].party.email == "m.hale@example.org"
    assert customers["Old Mill Tearooms Ltd"].active is False


def test_full_read_pages_through_and_an_idle_incremental_read_costs_one_request():
    c = world("empty")
    ids = bulk(c.sandbox, 450)
    c.sandbox.advance(30)
    full = c.connector.read_customers(None)
    assert full.full and {x.id for x in full.records} == set(ids)
    assert list_calls(c.sandbox, "/contacts") == 3  # 200 + 200 + 50
    # The list has no addresses or tax numbers: one GET per contact (4.5 minutes at 100 a minute).
    details = [r for r in c.sandbox.request_log if r[0] == "GET" and r[1].startswith(API + "/contacts/")]
    assert len(details) == 450 and all(r[2] == 200 for r in details) and full.requests == 453
    record = next(x for x in full.records if x.raw_name == "Bulk Customer 0007")
    assert record.party.email == "c7@bulk.example"
    c.sandbox.advance(60)
    before = c.connector.api.request_count
    idle = c.connector.read_customers(full.cursor)
    assert idle.records == [] and idle.deleted_ids == [] and not idle.full
    assert c.connector.api.request_count - before == 1 == idle.requests
    for read in (c.connector.read_items, c.connector.read_invoices, c.connector.read_payments):
        first = read(None)
        c.sandbox.advance(10)
        before = c.connector.api.request_count
        again = read(first.cursor)
        assert again.records == [] and c.connector.api.request_count - before == 1


def test_an_edit_in_zoho_is_seen_incrementally_with_one_detail_fetch():
    c = world("demo")
    first = c.connector.read_customers(None)
    target = first.records[3]
    c.sandbox.advance(120)
    c.sandbox.user_edit("contacts", target.id, contact_name="Renamed By Bookkeeper Ltd")
    c.sandbox.advance(30)
    before = c.connector.api.request_count
    changes = c.connector.read_customers(first.cursor)
    assert [x.id for x in changes.records] == [target.id]
    assert changes.records[0].party.name == "Renamed By Bookkeeper Ltd"
    assert c.connector.api.request_count - before == 2  # the page, then the contact
    c.sandbox.advance(60)
    assert c.connector.read_customers(changes.cursor).records == []


def test_a_change_in_the_same_second_as_a_read_is_not_lost():
    c = world("demo")
    first = c.connector.read_customers(None)  # the sandbox clock has not moved: same second as the edit
    target = first.records[0]
    c.sandbox.user_edit("contacts", target.id, website="https://changed.example")
    changes = c.connector.read_customers(first.cursor)
    assert target.id in {x.id for x in changes.records}


def test_archive_is_seen_and_deletions_are_found_by_the_daily_sweep():
    c = world("demo")
    first = c.connector.read_customers(None)
    archived, deleted = first.records[1], first.records[2]
    c.sandbox.advance(10)
    c.connector.set_customer_active(archived.id, False)
    c.sandbox.user_delete("contacts", deleted.id)
    c.sandbox.advance(10)
    changes = c.connector.read_customers(first.cursor)
    assert [(x.id, x.active) for x in changes.records] == [(archived.id, False)]
    assert changes.deleted_ids == []  # Zoho leaves no trace of a delete in the change feed
    c.sandbox.advance(86400)
    swept = c.connector.read_customers(changes.cursor)
    assert swept.deleted_ids == [deleted.id]
    c.sandbox.advance(60)
    assert c.connector.read_customers(swept.cursor).deleted_ids == []


def test_find_customers_by_name_and_email():
    c = world("demo")
    hits = c.connector.find_customers(name="margaret hale")
    assert [h.raw_name for h in hits] == ["Margaret Hale"]
    assert [h.raw_name for h in c.connector.find_customers(email="IVY@oldmilltearooms.co.uk")] == [
        "Old Mill Tearooms Ltd"]
    assert c.connector.find_customers(name="Nobody Here") == []


# -- writing customers ------------------------------------------------------------------------------
def test_creates_are_one_request_each_and_updates_reuse_what_was_read():
    c = world("empty")
    writes = [CustomerWrite(f"k{i}", party(f"Harbour Print {i} Ltd", email=f"ap{i}@harbour.example",
                                           address_line1=f"{i} Quay St", city="Leeds", postal_code="LS1 1AB",
                                           country="GB", tax_id="GB123456789", currency="USD"))
              for i in range(3)]
    before = c.connector.api.request_count
    results = c.connector.create_customers(writes)
    assert [r.key for r in results] == ["k0", "k1", "k2"] and all(r.ok for r in results)
    assert c.connector.api.request_count - before == 3 + 1  # + the currency list, once
    made = results[1].record
    assert made.party.email == "ap1@harbour.example" and made.party.country == "GB" and made.party.currency == "USD"
    stored = c.sandbox.state["books"][c.conn.tenant_id]["contacts"][made.id]
    assert stored["billing_address"]["country"] == "United Kingdom" and stored["vat_reg_no"] == "GB123456789"
    assert stored["customer_sub_type"] == "business"
    # Updates with the version we read: one PUT each, persons kept by id.
    before = c.connector.api.request_count
    updates = [CustomerWrite(f"u{i}", r.record.party.with_fields({"email": f"new{i}@harbour.example"}), id=r.id,
                             version=r.version) for i, r in enumerate(results)]
    done = c.connector.update_customers(updates)
    assert all(r.ok for r in done) and c.connector.api.request_count - before == 3
    assert c.connector.get_customers([results[0].id])[0].party.email == "new0@harbour.example"
    person_ids = [p["contact_person_id"] for p in stored["contact_persons"]]
    assert [p["contact_person_id"] for p in c.sandbox.state["books"][c.conn.tenant_id]["contacts"][made.id][
        "contact_persons"]] == person_ids
    # An unknown version costs a read first.
    before = c.connector.api.request_count
    [res] = c.connector.update_customers([CustomerWrite("u9", made.party, id=made.id, version="stale")])
    assert res.ok and c.connector.api.request_count - before == 2


def test_a_person_customer_keeps_its_names_on_the_contact_person():
    c = world("empty")
    [res] = c.connector.create_customers([CustomerWrite("p1", party("Grace van Dijk", kind="person",
                                                                    email="grace@example.org"))])
    stored = c.sandbox.state["books"][c.conn.tenant_id]["contacts"][res.id]
    assert stored["customer_sub_type"] == "individual" and stored["company_name"] == ""
    assert (stored["contact_persons"][0]["first_name"], stored["contact_persons"][0]["last_name"]) == (
        "Grace van", "Dijk")
    assert res.record.party.kind == "person"


def test_per_record_errors_come_back_in_order_and_duplicates_are_typed():
    c = world("demo")
    writes = [
        CustomerWrite("a", party("Brand New Co Ltd", email="hello@brandnew.example")),
        CustomerWrite("b", party("margaret HALE")),  # the display name is taken (case does not matter)
        CustomerWrite("c", party("Bad Email Ltd", email="not an email")),
        CustomerWrite("d", party("Yen Trading KK", currency="JPY")),
        CustomerWrite("e", party("Another Fine Co")),
    ]
    results = c.connector.create_customers(writes)
    assert [r.key for r in results] == ["a", "b", "c", "d", "e"]
    assert results[0].ok and results[4].ok
    assert isinstance(results[1].error, DuplicateName) and results[1].error.code == "1001"
    assert "already exists" in results[1].error.message
    assert isinstance(results[2].error, ValidationRejected) and results[2].error.field == "email"
    assert isinstance(results[3].error, ValidationRejected) and results[3].error.field == "currency"
    [missing] = c.connector.update_customers([CustomerWrite("f", party("Ghost Ltd"), id="460000999999999")])
    assert isinstance(missing.error, NotFound)


def test_429_on_a_create_is_retried_without_a_duplicate():
    c = world("empty")
    c.sandbox.faults.append(Fault("429", nth=1, match="POST .*"))
    [res] = c.connector.create_customers([CustomerWrite("k", party("Retry Me Ltd"))])
    assert res.ok and c.sandbox.faults[0].fired == 1
    assert len(c.connector.find_customers(name="Retry Me Ltd")) == 1


def test_500_on_reads_is_retried():
    c = world("demo")
    c.sandbox.faults.append(Fault("500", nth=1, match=f"GET {API}/contacts$"))
    c.sandbox.faults.append(Fault("500", nth=2, match=f"GET {API}/contacts/"))
    changes = c.connector.read_customers(None)
    assert len(changes.records) == 26 and all(f.fired for f in c.sandbox.faults)


def test_a_lost_answer_on_create_is_settled_by_lookup_not_sent_twice():
    c = world("demo")
    c.sandbox.faults.append(Fault("reset_after_commit", nth=1, match=f"POST {API}/contacts$"))
    [res] = c.connector.create_customers([CustomerWrite("k", party("Lost Answer Ltd", email="x@lost.example"))])
    assert res.ok and res.record.raw_name == "Lost Answer Ltd"
    assert [h.id for h in c.connector.find_customers(name="Lost Answer Ltd")] == [res.id]
    assert c.sandbox.faults[0].fired == 1
    assert not any(m == "POST" and p == f"{API}/contacts" for m, p, _ in c.sandbox.request_log)  # not re-sent


def test_a_create_that_never_arrived_is_sent_again():
    c = world("demo")
    c.sandbox.faults.append(Fault("timeout", nth=1, match=f"POST {API}/contacts$"))
    [res] = c.connector.create_customers([CustomerWrite("k", party("Try Again Ltd"))])
    assert res.ok
    assert len(c.connector.find_customers(name="Try Again Ltd")) == 1


def test_the_minute_limit_answers_429_with_zohos_body_and_the_connector_paces_itself():
    c = world("empty")
    org = c.conn.tenant_id
    answers = [raw(c, "GET", f"{API}/items", params={"organization_id": org}) for _ in range(101)]
    assert [a.status_code for a in answers[:100]] == [200] * 100
    assert answers[100].status_code == 429 and answers[100].json()["code"] == 45
    assert "Retry-After" not in answers[100].headers
    c.sandbox.advance(61)
    # The connector keeps under 100 a minute by itself (its waits move the sandbox clock here).
    mark, clock = len(c.sandbox.request_log), c.sandbox.now()
    for _ in range(150):
        c.connector.read_items(None)
    assert [s for _, _, s in c.sandbox.request_log[mark:]] == [200] * 150
    assert c.sandbox.now() - clock >= 60


def test_the_daily_cap_of_the_free_plan():
    c = world("empty", plan="Free")
    assert c.connector.limits.daily_cap == 1000 and c.connector.limits.page_max == 200
    c.sandbox.set_daily_usage(1000)
    resp = raw(c, "GET", f"{API}/items", params={"organization_id": c.conn.tenant_id})
    assert resp.status_code == 429 and resp.json()["code"] == 45 and "per day" in resp.json()["message"]
    before = len(c.sandbox.request_log)
    results = c.connector.create_customers([CustomerWrite(f"k{i}", party(f"Capped {i} Ltd")) for i in range(5)])
    assert all(isinstance(r.error, RateLimited) for r in results)
    assert len(c.sandbox.request_log) - before <= 7  # the first one and its retries; the rest never sent
    c.sandbox.advance(86400)
    assert c.connector.create_customers([CustomerWrite("n", party("Next Day Ltd"))])[0].ok


# -- items, invoices, payments ----------------------------------------------------------------------
def test_items_read_and_create_with_duplicate_names_refused():
    c = world("demo")
    items = c.connector.read_items(None)
    assert {i.sku for i in items.records} >= {"CONS-HR", "LIC-SEAT"}
    seat = next(i for i in items.records if i.sku == "LIC-SEAT")
    assert seat.unit_price == Decimal("19.99")
    res = c.connector.create_items([ItemWrite("i1", Item(None, "Workshop day", "WS-D", Decimal("640.00"))),
                                    ItemWrite("i2", Item(None, "consulting HOUR", "X", Decimal("1")))])
    assert res[0].ok and res[0].record.unit_price == Decimal("640.00")
    assert isinstance(res[1].error, Conflict)
    c.sandbox.advance(10)
    changes = c.connector.read_items(items.cursor)
    assert [i.name for i in changes.records] == ["Workshop day"]


def _invoice(customer_id: str, items: dict[str, str], reference: str = "CRM deal 7") -> Invoice:
    return Invoice(None, customer_id, "GBP", (
        InvoiceLine("Consulting, May", Decimal("3"), Decimal("125.00"), Decimal("12.5"), items["CONS-HR"]),
        InvoiceLine("Seats", Decimal("7"), Decimal("19.99"), Decimal("0"), items["LIC-SEAT"]),
        InvoiceLine("Support", Decimal("1"), Decimal("333.33"), Decimal("5"), items["SUPP-PR"]),
    ), reference=reference, issue_date=dt.date(2026, 3, 1), due_date=dt.date(2026, 3, 31))


def test_invoice_totals_follow_zoho_rounding_and_decimals_travel_as_json_numbers():
    c = world("demo")
    seen: list[bytes] = []
    c.sandbox.exchange_hooks.append(lambda req, resp: seen.append(req.body) if req.method == "POST" else None)
    items = {i.sku: i.id for i in c.connector.read_items(None).records}
    [cust] = c.connector.create_customers([CustomerWrite("c", party("Invoice Me Ltd", currency="GBP"))])
    inv = _invoice(cust.id, items)
    [res] = c.connector.create_invoices([InvoiceWrite("i", inv)])
    assert res.ok, res.error
    made = res.record
    expected = invoice_totals(((li.quantity, li.unit_price, li.discount_percent, Decimal(0)) for li in inv.lines),
                              rounding="invoice")
    assert made.total == expected.total == Decimal("784.72")
    assert made.status == "draft" and made.number == "INV-000001" and made.reference == "CRM deal 7"
    assert [li.amount for li in made.lines] == [Decimal("328.13"), Decimal("139.93"), Decimal("316.66")]
    assert made.lines[0].discount_percent == Decimal("12.5")
    body = json.loads(seen[-1])
    assert '"rate":125.00' in seen[-1].decode() and body["line_items"][0]["discount"] == "12.5%"
    # With a 20 % tax on every line, tax is rounded once on the invoice total.
    tax = next(t for t in c.sandbox.state["books"][c.conn.tenant_id]["taxes"] if t["tax_percentage"] == "20")
    taxed = Invoice(None, cust.id, "GBP", tuple(InvoiceLine(li.description, li.quantity, li.unit_price,
                                                            li.discount_percent, li.item_id, tax["tax_id"])
                                                for li in inv.lines), reference="CRM deal 8")
    [res2] = c.connector.create_invoices([InvoiceWrite("t", taxed)])
    with_tax = invoice_totals(((li.quantity, li.unit_price, li.discount_percent, Decimal(20)) for li in inv.lines),
                              rounding="invoice")
    assert res2.record.total == with_tax.total == Decimal("941.66")  # per-line rounding would give 941.67


def test_invoice_status_and_payments_flow_back():
    c = world("demo")
    items = {i.sku: i.id for i in c.connector.read_items(None).records}
    [cust] = c.connector.create_customers([CustomerWrite("c", party("Pays Late Ltd", currency="GBP"))])
    inv = replace(_invoice(cust.id, items), status="awaiting_payment", due_date=dt.date(2099, 1, 1))
    [res] = c.connector.create_invoices([InvoiceWrite("i", inv)])
    assert res.record.status == "awaiting_payment"
    invoices = c.connector.read_invoices(None)
    payments = c.connector.read_payments(None)
    c.sandbox.advance(30)
    pay1 = c.sandbox.record_payment(res.id, Decimal("300.00"), "2026-04-02")
    c.sandbox.advance(30)
    changed = c.connector.read_invoices(invoices.cursor)
    [inv1] = changed.records
    assert (inv1.status, inv1.amount_paid, inv1.balance) == ("partly_paid", Decimal("300.00"), Decimal("484.72"))
    paid = c.connector.read_payments(payments.cursor)
    assert [(p.invoice_id, p.amount, p.date) for p in paid.records] == [(res.id, Decimal("300.00"),
                                                                          dt.date(2026, 4, 2))]
    assert paid.records[0].currency == "GBP" and pay1
    c.sandbox.advance(30)
    c.sandbox.record_payment(res.id, Decimal("484.72"), "2026-04-09")
    c.sandbox.advance(30)
    [inv2] = c.connector.read_invoices(changed.cursor).records
    assert (inv2.status, inv2.balance) == ("paid", Decimal("0.00"))
    assert len(c.connector.read_payments(paid.cursor).records) == 1


def test_overdue_and_void_are_mapped():
    c = world("demo")
    items = {i.sku: i.id for i in c.connector.read_items(None).records}
    [cust] = c.connector.create_customers([CustomerWrite("c", party("Overdue Ltd", currency="GBP"))])
    inv = replace(_invoice(cust.id, items), status="awaiting_payment")
    [res] = c.connector.create_invoices([InvoiceWrite("i", inv)])  # due 2026-03-31, in the sandbox's past
    assert c.connector.find_invoices("CRM deal 7")[0].status == "overdue"
    raw(c, "POST", f"{API}/invoices/{res.id}/status/void", params={"organization_id": c.conn.tenant_id})
    assert c.connector.find_invoices("CRM deal 7")[0].status == "void"


def test_find_invoices_by_reference_and_update_only_while_draft():
    c = world("demo")
    items = {i.sku: i.id for i in c.connector.read_items(None).records}
    [cust] = c.connector.create_customers([CustomerWrite("c", party("Drafty Ltd", currency="GBP"))])
    [res] = c.connector.create_invoices([InvoiceWrite("i", _invoice(cust.id, items, "CRM deal 99"))])
    [found] = c.connector.find_invoices("CRM deal 99")
    assert found.id == res.id and found.total == res.record.total and found.lines == ()
    assert c.connector.find_invoices("CRM deal 9") == []
    fewer = replace(res.record, lines=res.record.lines[:1])
    [upd] = c.connector.update_invoices([InvoiceWrite("u", fewer, version=res.version)])
    assert upd.ok and upd.record.total == Decimal("328.13") and len(upd.record.lines) == 1
    [stale] = c.connector.update_invoices([InvoiceWrite("s", fewer, version="2000-01-01T00:00:00+0000")])
    assert isinstance(stale.error, StaleVersion)
    raw(c, "POST", f"{API}/invoices/{res.id}/status/sent", params={"organization_id": c.conn.tenant_id})
    [refused] = c.connector.update_invoices([InvoiceWrite("r", fewer)])
    assert isinstance(refused.error, ValidationRejected) and refused.error.field == "status"


def test_a_lost_invoice_answer_is_settled_by_its_reference():
    c = world("demo")
    items = {i.sku: i.id for i in c.connector.read_items(None).records}
    [cust] = c.connector.create_customers([CustomerWrite("c", party("Lossy Ltd", currency="GBP"))])
    c.sandbox.faults.append(Fault("reset_after_commit", nth=1, match=f"POST {API}/invoices$"))
    [res] = c.connector.create_invoices([InvoiceWrite("i", _invoice(cust.id, items, "CRM deal 314"))])
    assert res.ok and res.record.reference == "CRM deal 314"
    assert len(c.connector.find_invoices("CRM deal 314")) == 1


def test_web_urls_follow_the_data_centre():
    assert web_root("https://www.zohoapis.eu") == "https://books.zoho.eu"
    assert web_root("https://www.zohoapis.com.au") == "https://books.zoho.com.au"
    assert web_root("https://www.zohoapis.ca") == "https://books.zohocloud.ca"
    c = world("empty")
    c.conn.base_url = "https://www.zohoapis.com"
    org = c.conn.tenant_id
    assert c.connector.customer_url("77") == f"https://books.zoho.com/app/{org}#/contacts/77"
    assert c.connector.invoice_url("88") == f"https://books.zoho.com/app/{org}#/invoices/88"
    sandbox = world("empty")
    page = httpx.Client(transport=InProcessTransport(sandbox.sandbox)).get(
        sandbox.connector.customer_url("1").split("#")[0])
    assert page.status_code == 200 and "Zoho Books" in page.text


def test_an_invoice_brings_its_currency_to_a_new_customer_but_never_to_one_with_invoices():
    c = world("demo")
    items = {i.sku: i.id for i in c.connector.read_items(None).records}
    [cust] = c.connector.create_customers([CustomerWrite("c", party("Fresh Customer Ltd"))])  # CRMs send no currency
    assert cust.record.party.currency == "GBP"  # the organisation's base currency
    usd = replace(_invoice(cust.id, items, "CRM deal 50"), currency="USD")
    [res] = c.connector.create_invoices([InvoiceWrite("i", usd)])
    assert res.ok and res.record.currency == "USD"
    assert c.connector.get_customers([cust.id])[0].party.currency == "USD"
    [refused] = c.connector.create_invoices([InvoiceWrite("e", replace(usd, reference="CRM deal 51", currency="EUR"))])
    assert isinstance(refused.error, ValidationRejected) and refused.error.field == "currency"
    assert c.connector.find_invoices("CRM deal 51") == []
    [unknown] = c.connector.create_invoices([InvoiceWrite("j", replace(usd, reference="CRM deal 52", currency="JPY"))])
    assert isinstance(unknown.error, ValidationRejected) and "JPY" in unknown.error.message


def test_an_unreadable_answer_is_read_again_and_an_unreadable_create_is_settled():
    c = world("demo")
    c.sandbox.faults.append(Fault("truncated", nth=1, match=f"GET {API}/items$"))
    assert len(c.connector.read_items(None).records) == 7
    c.sandbox.faults.append(Fault("malformed", nth=1, match=f"POST {API}/contacts$"))
    [res] = c.connector.create_customers([CustomerWrite("k", party("Garbled Reply Ltd"))])
    assert res.ok and len(c.connector.find_customers(name="Garbled Reply Ltd")) == 1


# -- undo: mark a contact inactive, void an invoice (issue 14) --------------------------------------
def test_deactivate_customer_marks_the_contact_inactive_and_never_deletes():
    c = world("demo")
    [cust] = c.connector.create_customers([CustomerWrite("c", party("Inactive Soon Ltd", currency="GBP"))])
    res = c.connector.deactivate_customer(cust.id)
    assert res.ok and res.record.active is False
    assert [p for m, p, _ in c.sandbox.request_log if m == "DELETE"] == []
    assert [p for m, p, _ in c.sandbox.request_log if m == "POST" and p.endswith(f"/contacts/{cust.id}/inactive")]
    [back] = c.connector.get_customers([cust.id])
    assert back.active is False
    posts = len([1 for m, _p, _ in c.sandbox.request_log if m == "POST"])
    assert c.connector.deactivate_customer(cust.id).ok  # already inactive: nothing sent
    assert len([1 for m, _p, _ in c.sandbox.request_log if m == "POST"]) == posts


def test_void_invoice_posts_status_void_and_zoho_refuses_one_with_payments():
    c = world("demo")
    items = {i.sku: i.id for i in c.connector.read_items(None).records}
    [cust] = c.connector.create_customers([CustomerWrite("c", party("Void Test Ltd", currency="GBP"))])
    draft, sent, paid = c.connector.create_invoices([
        InvoiceWrite(k, _invoice(cust.id, items, f"CRM deal {k}")) for k in ("d", "s", "p")])
    raw(c, "POST", f"/books/v3/invoices/{sent.id}/status/sent", params={"organization_id": c.conn.tenant_id})
    c.sandbox.record_payment(paid.id, Decimal("10.00"), "2026-03-02")
    states = {s.invoice.id: s for s in c.connector.get_invoice_states([draft.id, sent.id, paid.id])}
    assert {i: (s.sent, s.invoice.status == "draft", s.invoice.amount_paid) for i, s in states.items()} == {
        draft.id: (False, True, Decimal(0)), sent.id: (True, False, Decimal(0)),
        paid.id: (True, False, Decimal("10.00"))}
    res = c.connector.void_invoice(draft.id, states[draft.id].version)
    assert res.ok and res.record.status == "void"
    refused = c.connector.void_invoice(paid.id)
    assert refused.error is not None and "payments" in refused.error.message
    assert c.connector.get_invoice_states([paid.id])[0].invoice.status != "void"
    voids = [p for m, p, _ in c.sandbox.request_log if p.endswith("/status/void")]
    assert c.connector.void_invoice(draft.id).ok  # already void: nothing more is sent
    assert [p for m, p, _ in c.sandbox.request_log if p.endswith("/status/void")] == voids


def test_a_new_process_takes_unchanged_contacts_from_the_store_and_fetches_only_the_changed_one(tmp_path):
    """The first sync in every new process used to GET every contact (165 for 143): the list lacks addresses."""
    from app.connectors import registry
    from app.ops import detail_cache
    from app.store.db import Store
    from app.store.models import Workspace
    from app.sync.engine import SyncEngine

    store = Store(f"sqlite:///{tmp_path}/w.db")
    with store.session() as s:
        ws = Workspace(name="t", crm_provider="hubspot", accounting_provider="zohobooks", settings={})
        s.add(ws)
        s.flush()
        ws_id = ws.id
    crm, books = in_process("hubspot", "demo"), world("demo")

    def new_process():  # a connector with nothing in memory, given the store as open_connectors does
        books.sandbox.advance(61)  # its own limiter starts empty: let the last one's minute pass
        connector = registry.make_connector(books.conn, books.tokens, transport=InProcessTransport(books.sandbox),
                                            sleep=books.sandbox.advance)
        detail_cache.attach(store, connector)
        return connector

    def details():
        return sum(1 for m, p, _ in books.sandbox.request_log if m == "GET" and p.startswith(API + "/contacts/"))

    def sync(**kw):
        return SyncEngine(store, ws_id, crm.connector, new_process(), **kw).run()

    assert sync().status == "ok"  # creates 143 customers (their details kept as Zoho answered)
    assert sync().status == "ok"  # reads what the invoices changed on their contacts
    books.sandbox.advance(61)
    fresh = Connector(books.conn, books.tokens, transport=InProcessTransport(books.sandbox),
                      sleep=books.sandbox.advance)
    expected = {x.id: x for x in fresh.read_customers(None).records}  # every contact GET as Zoho holds it
    before = details()
    again = new_process().read_customers(None)
    assert details() == before  # a full read in a new process: no contact fetched again
    assert {x.id: x for x in again.records} == expected
    books.sandbox.advance(120)
    target = next(iter(expected))
    books.sandbox.user_edit("contacts", target, contact_name="Renamed By Bookkeeper Ltd")
    books.sandbox.advance(30)
    before = details()
    run = sync(full=True)
    assert run.status == "ok" and details() - before == 1  # only the contact the list says changed
