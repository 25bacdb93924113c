"""Xero: the sandbox behaves as the reference says, and the connector copes with all of it.

Every exchange of every test here is also checked against Xero's OpenAPI schemas (the autouse
``conformance`` fixture), so a field the sandbox or the connector misspells fails the test that sent it.
"""

from __future__ import annotations

import datetime as dt
import threading
import urllib.parse
from decimal import Decimal

import httpx
import pytest

import app.connectors.xero as xero
from app.connectors import registry
from app.connectors.base import Connection, CustomerWrite, InvoiceWrite, ItemWrite
from app.connectors.errors import (
    AuthExpired,
    Conflict,
    DuplicateName,
    Forbidden,
    NotFound,
    RateLimited,
    StaleVersion,
    ValidationRejected,
)
from app.connectors.oauth import build_authorize
from app.connectors.tokens import MemoryTokenStore
from app.connectors.xero import Connector, dumps, msdate_ms, oauth_config
from app.domain.models import Invoice, InvoiceLine, Item, Party
from app.domain.money import invoice_totals
from app.ops.connect import connect, connect_with_grant
from app.sandbox.base import Fault
from app.sandbox.demo_data import demo_data
from app.sandbox.registry import sandbox_class
from app.sandbox.server import InProcessTransport, serve
from tests.support import in_process, over_http
from tests.test_xero_conformance import RAW_HEADER, Recorder

API = "/api.xro/2.0"
_RECORDERS: list[Recorder] = []


@pytest.fixture(autouse=True)
def conformance():
    """Record every exchange of the test's sandboxes and check it against the spec at the end (pages of
    more than 60 records are checked by their first and last 30; the conformance module checks all)."""
    recorder = Recorder(sample=60)
    _RECORDERS.append(recorder)
    yield recorder
    _RECORDERS.remove(recorder)
    problems, _ = recorder.problems()
    assert problems == []


def world(seed: str = "demo", **kw):
    """A connected in-process sandbox; the connector's waits move the sandbox clock."""
    c = in_process("xero", seed, **kw)
    _RECORDERS[-1].attach(c.sandbox)
    return c


def raw(c, method: str, path: str, *, params=None, body=None, headers=None, tenant: bool = True,
        token: str | None = None) -> httpx.Response:
    """A request straight to the sandbox, bypassing the connector (to see Xero's own answers)."""
    token = token or c.tokens.load(c.conn.id).access_token
    hdrs = {"Authorization": f"Bearer {token}", "Accept": "application/json", RAW_HEADER: "raw"}
    if tenant:
        hdrs["xero-tenant-id"] = c.conn.tenant_id
    hdrs.update(headers or {})
    with httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.conn.base_url) as http:
        return http.request(method, path, params=params, headers=hdrs,
                            content=dumps(body).encode() if body is not None else None)


def token_post(c, form: dict[str, str]) -> httpx.Response:
    with httpx.Client(transport=InProcessTransport(c.sandbox)) as http:
        return http.post(f"{c.sandbox.public_url}/connect/token", data=form, headers={RAW_HEADER: "raw"})


def party(name: str, **kw) -> Party:
    return Party(kind=kw.pop("kind", "company"), name=name, **kw)


def calls(sandbox, method: str, fragment: str) -> list[int]:
    return [status for m, p, status in sandbox.request_log if m == method and fragment in p]


def customer(c, name: str = "Invoice Customer Ltd") -> str:
    [res] = c.connector.create_customers([CustomerWrite(f"cust-{name}", party(name, currency="GBP"))])
    assert res.ok, res.error
    return res.id


def line(desc: str, qty: str, price: str, disc: str = "0", item_id: str | None = None,
         tax: str | None = None) -> InvoiceLine:
    return InvoiceLine(desc, Decimal(qty), Decimal(price), Decimal(disc), item_id, tax)


# -- OAuth and connecting ---------------------------------------------------------------------------
def test_oauth_config_uses_xero_identity_with_pkce_and_offline_access():
    real = oauth_config(Connection("c1", "xero", "https://api.xero.com"), None)
    assert real.authorize_url == "https://login.xero.com/identity/connect/authorize"
    assert real.token_url == "https://identity.xero.com/connect/token"
    assert real.client_secret is None and real.pkce
    query = urllib.parse.parse_qs(urllib.parse.urlparse(build_authorize(real, "http://127.0.0.1:5/cb").url).query)
    scopes = query["scope"][0].split(" ")
    assert {"offline_access", "accounting.contacts", "accounting.invoices", "accounting.payments"} <= set(scopes)
    assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
    sandbox = oauth_config(Connection("c2", "xero", "http://127.0.0.1:9", auth_url="http://127.0.0.1:9"), "s3cret")
    assert sandbox.authorize_url == "http://127.0.0.1:9/identity/connect/authorize"
    assert sandbox.token_url == "http://127.0.0.1:9/connect/token"
    assert sandbox.client_secret == "s3cret" and sandbox.secret_in_basic_auth  # a web app's secret: Basic auth
    legacy = oauth_config(Connection("c3", "xero", "x", extra={"scopes": "offline_access accounting.transactions"}),
                          None)
    assert legacy.scopes == ("offline_access", "accounting.transactions")
    assert registry.info("xero").needs_client_secret is False


def test_oauth_over_http_finds_the_organisation_and_refreshes_with_rotation():
    with over_http("xero", "demo") as c:
        _RECORDERS[-1].attach(c.sandbox)
        assert c.conn.tenant_id == c.sandbox.default_tenant
        assert c.conn.label == "Crossledger Demo Ltd" == c.connector.company_name()
        assert c.conn.extra["connection_id"]
        saved = c.tokens.load(c.conn.id)
        assert saved.refresh_token and saved.expires_at - saved.refresh_issued_at == pytest.approx(1800, abs=5)
        assert "accounting.contacts" in saved.extra["scope"] and saved.extra["id_token"].count(".") == 2
        c.sandbox.advance(1801)  # thirty minutes on: the access token is dead
        assert len(c.connector.read_items(None).records) == 7
        again = c.tokens.load(c.conn.id)
        assert again.access_token != saved.access_token and again.refresh_token != saved.refresh_token
        assert ("POST", "/connect/token", 200) in c.sandbox.request_log


def test_a_pkce_app_connects_without_any_secret_and_must_send_a_challenge():
    sandbox = sandbox_class("xero")()
    sandbox.seed("empty")
    _RECORDERS[-1].attach(sandbox)
    server = serve(sandbox, timeout_delay=1.0)
    try:
        conn = Connection("pkce", "xero", server.url, auth_url=server.url)
        tokens = MemoryTokenStore()
        connect(conn, tokens, client_secret=None, timeout=20)
        assert conn.label == "Crossledger Test Ltd" and tokens.load("pkce").client_secret is None
        with httpx.Client(base_url=server.url) as http:
            plain = http.get("/identity/connect/authorize", params={
                "response_type": "code", "client_id": "x", "redirect_uri": "http://127.0.0.1:1/cb", "state": "s"})
        assert plain.status_code == 400 and plain.json() == {"error": "invalid_request"}
    finally:
        server.stop()


def test_refresh_tokens_rotate_and_the_old_one_dies_after_the_grace():
    c = world("empty")
    rt0 = c.tokens.load(c.conn.id).refresh_token
    c.sandbox.advance(1801)
    c.connector.company_name()  # refresh 1
    rt1 = c.tokens.load(c.conn.id).refresh_token
    c.sandbox.advance(1801)
    c.connector.company_name()  # refresh 2
    rt2 = c.tokens.load(c.conn.id).refresh_token
    assert len({rt0, rt1, rt2}) == 3 and c.sandbox.request_log.count(("POST", "/connect/token", 200)) == 2
    assert rt2 in c.sandbox.state["oauth"]["refresh"]  # the store always holds the newest
    form = {"grant_type": "refresh_token", "client_id": c.conn.client_id}
    assert token_post(c, {**form, "refresh_token": rt0}).json() == {"error": "invalid_grant"}  # its successor was used
    c.sandbox.advance(1801)  # rt1's 30 minutes of grace are over
    dead = token_post(c, {**form, "refresh_token": rt1})
    assert dead.status_code == 400 and dead.json() == {"error": "invalid_grant"}
    c.sandbox.advance(1801)
    assert c.connector.company_name() == "Crossledger Test Ltd"  # the stored (newest) one still works
    assert c.tokens.load(c.conn.id).refresh_token not in (rt0, rt1, rt2)


def test_a_lost_refresh_answer_is_survived_within_the_grace():
    c = world("empty")
    stored = c.tokens.load(c.conn.id).refresh_token
    c.sandbox.advance(1700)
    lost = token_post(c, {"grant_type": "refresh_token", "client_id": c.conn.client_id, "refresh_token": stored})
    assert lost.status_code == 200  # ... but the answer never reached us: the store still has the old token
    c.sandbox.advance(200)  # the access token has expired; the old refresh token was replaced 200 s ago
    assert c.connector.company_name() == "Crossledger Test Ltd"
    assert c.tokens.load(c.conn.id).refresh_token not in (stored, lost.json()["refresh_token"])


def test_without_offline_access_there_is_no_refresh_token():
    c = world("empty")
    body = c.sandbox.grant_tokens(c.conn.client_id, scope="openid accounting.contacts")
    assert "refresh_token" not in body and body["expires_in"] == 1800


def test_a_revoked_sign_in_means_reconnect():
    c = world("empty")
    rt = c.tokens.load(c.conn.id).refresh_token
    with httpx.Client(transport=InProcessTransport(c.sandbox)) as http:
        resp = http.post(f"{c.sandbox.public_url}/connect/revocation", data={"token": rt, "client_id": "x"},
                         headers={RAW_HEADER: "raw"})
    assert resp.status_code == 200
    with pytest.raises(AuthExpired):
        c.connector.read_items(None)


def test_connections_list_tenants_and_every_call_needs_the_tenant_header():
    c = world("empty")
    practice = c.sandbox.add_tenant("Ledger & Co Practice", tenant_type="PRACTICE")
    conns = raw(c, "GET", "/connections", tenant=False).json()
    assert {x["tenantType"] for x in conns} == {"ORGANISATION", "PRACTICE"}
    assert all(set(x) >= {"id", "tenantId", "tenantName", "tenantType", "createdDateUtc"} for x in conns)
    assert [t.name for t in c.connector.list_tenants()] == ["Crossledger Test Ltd"]  # organisations only
    missing = raw(c, "GET", f"{API}/Contacts", tenant=False)
    assert missing.status_code == 403 and missing.json()["Detail"] == "AuthenticationUnsuccessful"
    assert missing.json()["Title"] == "Forbidden" and missing.json()["Type"] is None
    other = raw(c, "GET", f"{API}/Contacts", headers={"xero-tenant-id": practice})
    assert other.status_code == 403  # a practice does not serve the Accounting API
    c.conn.tenant_id = "fe79f7dd-b6d4-4a92-ba7b-538af6289c58"
    with pytest.raises(Forbidden, match="AuthenticationUnsuccessful"):
        c.connector.read_items(None)


def test_several_organisations_preselect_the_newest_and_list_them():
    sandbox = sandbox_class("xero")()
    sandbox.seed("empty")
    sandbox.advance(60)
    second = sandbox.add_tenant("Second Books Ltd")
    transport = InProcessTransport(sandbox)
    tokens = MemoryTokenStore()
    conn = Connection("x2", "xero", sandbox.public_url, auth_url=sandbox.public_url)
    connect_with_grant(conn, tokens, sandbox.grant_tokens(conn.client_id), {}, transport)
    assert conn.tenant_id == second and conn.label == "Second Books Ltd"
    assert conn.extra["choose_organisation"] and len(conn.extra["tenants"]) == 2


def test_a_disconnected_organisation_is_refused():
    c = world("empty")
    conn_id = c.conn.extra["connection_id"]
    assert raw(c, "DELETE", f"/connections/{conn_id}", tenant=False).status_code == 204
    with pytest.raises(Forbidden):
        c.connector.company_name()


def test_xero_answers_json_only_when_asked_and_counts_down_its_limits():
    c = world("empty")
    xml = raw(c, "GET", f"{API}/Items", headers={"Accept": "*/*"})
    assert xml.status_code == 406
    first = raw(c, "GET", f"{API}/Items")
    second = raw(c, "GET", f"{API}/Items")
    assert int(first.headers["X-MinLimit-Remaining"]) - 1 == int(second.headers["X-MinLimit-Remaining"])
    assert int(second.headers["X-DayLimit-Remaining"]) < 5000 and "X-AppMinLimit-Remaining" in second.headers
    assert "X-DayLimit-Remaining" not in raw(c, "GET", "/connections", tenant=False).headers


# -- reading customers ------------------------------------------------------------------------------
def test_demo_seed_maps_contacts_to_parties():
    c = world("demo")
    read = c.connector.read_customers(None)
    customers = {x.raw_name: x for x in read.records}
    ledger = [co for co in demo_data().companies if co.in_ledger]
    assert len(customers) == len(ledger) + 4 and read.full and read.requests == 1
    by_tax = next(co for co in ledger if co.in_ledger == "tax_id")
    cust = customers[by_tax.ledger_name]
    assert cust.party.kind == "company" and cust.party.tax_id == by_tax.tax_id
    assert cust.party.country == by_tax.country and cust.party.city == by_tax.city
    assert cust.party.currency == by_tax.currency and cust.party.phone == by_tax.phone
    assert cust.party.address_line1 == by_tax.address_line1 and cust.party.postal_code == by_tax.postal_code
    by_email = next(co for co in ledger if co.in_ledger == "email")
    assert customers[by_email.ledger_name].party.email == by_email.email
    hale = customers["Margaret Hale"]
    assert hale.party.kind == "person" and hale.party.email == "m.hale@example.org" and hale.party.city == "Bristol"
    mill = customers["Old Mill Tearooms Ltd"]
    assert mill.active is False and mill.party.email == "ivy@oldmilltearooms.co.uk"  # from ContactPersons
    assert msdate_ms(hale.version) and hale.updated_at.tzinfo is not None
    assert c.connector.customer_url(hale.id) == f"https://go.xero.com/Contacts/View/{hale.id}"


def test_a_full_read_pages_through_more_than_a_page_then_nothing_changed_costs_one_request():
    c = world("empty")
    for n in range(11):  # an import of 1,100 contacts at Xero's pace: one page of 1000 and one more
        c.sandbox.add_contacts(100, prefix=f"Bulk {n:02d}")
        c.sandbox.advance(1)
    queries = []
    c.sandbox.exchange_hooks.append(lambda req, resp: queries.append(dict(req.query)))
    read = c.connector.read_customers(None)
    assert len(read.records) == 1100 and len({r.id for r in read.records}) == 1100
    assert read.requests == 2 and all(q["pageSize"] == ["1000"] for q in queries)
    assert all(q["order"] == ["UpdatedDateUTC ASC"] and q["includeArchived"] == ["true"] for q in queries)
    idle = c.connector.read_customers(read.cursor)
    assert idle.records == [] and idle.requests == 1 and not idle.full


def test_edits_archiving_and_changes_during_the_read_are_seen_once():
    c = world("demo")
    read = c.connector.read_customers(None)
    hale = next(r for r in read.records if r.raw_name == "Margaret Hale")
    walk_in = next(r for r in read.records if r.raw_name == "Walk-in Customer")
    c.sandbox.user_edit("contact", hale.id, EmailAddress="margaret@hale.example")  # the same second as the read
    edited = c.connector.read_customers(read.cursor)
    assert [r.party.email for r in edited.records] == ["margaret@hale.example"] and edited.requests == 1
    c.sandbox.advance(30)
    c.sandbox.user_edit("contact", walk_in.id, ContactStatus="ARCHIVED")
    archived = c.connector.read_customers(edited.cursor)
    assert [(r.id, r.active) for r in archived.records] == [(walk_in.id, False)]
    assert c.connector.read_customers(archived.cursor).records == []  # the overlap hands nothing back twice


def test_records_edited_while_paging_are_not_skipped(monkeypatch):
    monkeypatch.setattr(xero, "PAGE", 10)
    c = world("empty")
    ids = []
    for n in range(25):
        ids.append(c.sandbox.add_contact({"Name": f"Paged Contact {n:02d}"}))
        c.sandbox.advance(2)
    edited = []

    def edit_during_first_page(req, resp):
        if req.method == "GET" and req.path.endswith("/Contacts") and not edited:
            c.sandbox.advance(5)
            c.sandbox.user_edit("contact", ids[0], EmailAddress="moved@paged.example")
            edited.append(ids[0])

    c.sandbox.exchange_hooks.append(edit_during_first_page)
    read = c.connector.read_customers(None)
    assert {r.id for r in read.records} == set(ids)
    assert next(r for r in read.records if r.id == ids[0]).party.email == "moved@paged.example"
    # Page numbers would have lost one: after the edit, the old 11th record sits on page 1.
    page2 = raw(c, "GET", f"{API}/Contacts", params={"page": 2, "pageSize": 10, "order": "UpdatedDateUTC ASC"})
    assert ids[10] not in {x["ContactID"] for x in page2.json()["Contacts"]}


def test_find_and_get_customers():
    c = world("demo")
    by_name = c.connector.find_customers(name="margaret hale")
    assert [x.raw_name for x in by_name] == ["Margaret Hale"]
    assert c.connector.find_customers(email="M.HALE@example.org")[0].id == by_name[0].id
    assert c.connector.find_customers(name="Old Mill Tearooms Ltd") == []  # archived: not a name clash
    assert c.connector.find_customers(name='Quote " Test') == []
    got = c.connector.get_customers([by_name[0].id, "00000000-0000-4000-8000-000000000000"])
    assert [g.raw_name for g in got] == ["Margaret Hale"]


# -- the sandbox's query language and write semantics -------------------------------------------------
def test_where_search_ids_if_modified_since_and_dates():
    c = world("demo")
    everything = raw(c, "GET", f"{API}/Contacts").json()
    assert "pagination" not in everything and everything["Status"] == "OK"
    assert msdate_ms(everything["DateTimeUTC"]) and everything["DateTimeUTC"].endswith(")/")
    assert all(x["UpdatedDateUTC"].endswith("+0000)/") for x in everything["Contacts"])
    assert all(x["ContactStatus"] == "ACTIVE" for x in everything["Contacts"])  # archived left out by default

    def names(**params) -> list[str]:
        return [x["Name"] for x in raw(c, "GET", f"{API}/Contacts", params=params).json()["Contacts"]]

    assert names(where='Name=="MARGARET HALE"') == ["Margaret Hale"]
    assert names(where='EmailAddress=="m.hale@example.org"&&ContactStatus=="ACTIVE"') == ["Margaret Hale"]
    assert names(where='ContactStatus=="ARCHIVED"', includeArchived="true") == ["Old Mill Tearooms Ltd"]
    assert names(where='Name.StartsWith("kettle")') == ["Kettlewell Parish Council"]
    assert names(searchTerm="hale") == ["Margaret Hale"]
    hale = raw(c, "GET", f"{API}/Contacts", params={"where": 'Name=="Margaret Hale"'}).json()["Contacts"][0]
    assert names(IDs=hale["ContactID"]) == ["Margaret Hale"]
    bad = raw(c, "GET", f"{API}/Contacts", params={"where": 'Name=="x" ||| 1'})
    assert bad.status_code == 400 and bad.json()["Type"] == "QueryParseException"
    c.sandbox.advance(120)
    since = dt.datetime.fromtimestamp(c.sandbox.now(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    c.sandbox.user_edit("contact", hale["ContactID"], TaxNumber="GB999")
    changed = raw(c, "GET", f"{API}/Contacts", headers={"If-Modified-Since": since}).json()["Contacts"]
    assert [x["Name"] for x in changed] == ["Margaret Hale"]
    paged = raw(c, "GET", f"{API}/Contacts", params={"page": 1, "pageSize": 5000}).json()
    assert paged["pagination"]["pageSize"] == 1000 and "Balances" in paged["Contacts"][0]


def test_summarize_errors_by_default_fails_the_request_but_keeps_the_valid_elements():
    c = world("demo")
    body = {"Contacts": [{"Name": "Brand New Ltd"}, {"Name": "walk-in customer"}]}
    resp = raw(c, "PUT", f"{API}/Contacts", body=body)
    assert resp.status_code == 400
    err = resp.json()
    assert err["Type"] == "ValidationException" and err["ErrorNumber"] == 10
    assert [e["Name"] for e in err["Elements"]] == ["walk-in customer"]
    assert err["Elements"][0]["ValidationErrors"][0]["Message"] == (
        "The contact name walk-in customer is already assigned to another contact. "
        "The contact name must be unique across all active contacts.")
    assert c.connector.find_customers(name="Brand New Ltd")  # saved all the same
    split = raw(c, "PUT", f"{API}/Contacts", params={"summarizeErrors": "false"},
                body={"Contacts": [{"Name": "Second New Ltd"}, {"Name": "Brand New Ltd"}]})
    answers = split.json()["Contacts"]
    assert split.status_code == 200 and [a["StatusAttributeString"] for a in answers] == ["OK", "ERROR"]
    assert answers[1]["HasValidationErrors"] and answers[1]["ContactID"] == "00000000-0000-0000-0000-000000000000"


def test_post_with_a_known_name_updates_that_contact_and_archived_names_are_free():
    c = world("demo")
    before = len(c.connector.read_customers(None).records)
    resp = raw(c, "POST", f"{API}/Contacts", body={"Contacts": [{"Name": "Margaret Hale", "TaxNumber": "GB1"}]})
    assert resp.status_code == 200
    assert len(c.connector.read_customers(None).records) == before
    [reused] = c.connector.create_customers([CustomerWrite("k", party("Old Mill Tearooms Ltd"))])
    assert reused.ok  # the only other one is archived
    unarchive = raw(c, "POST", f"{API}/Contacts", body={"Contacts": [
        {"ContactID": next(x.id for x in c.connector.read_customers(None).records
                           if x.raw_name == "Old Mill Tearooms Ltd" and not x.active), "ContactStatus": "ACTIVE"}]})
    assert unarchive.status_code == 400  # restoring it now clashes


def test_an_idempotency_key_replays_the_first_answer():
    c = world("empty")
    body = {"Contacts": [{"Name": "Once Only Ltd"}]}
    first = raw(c, "PUT", f"{API}/Contacts", body=body, params={"summarizeErrors": "false"},
                headers={"Idempotency-Key": "k-1"})
    again = raw(c, "PUT", f"{API}/Contacts", body=body, params={"summarizeErrors": "false"},
                headers={"Idempotency-Key": "k-1"})
    assert first.content == again.content and first.json()["Contacts"][0]["StatusAttributeString"] == "OK"
    assert len(c.connector.find_customers(name="Once Only Ltd")) == 1
    long = raw(c, "PUT", f"{API}/Contacts", body=body, headers={"Idempotency-Key": "k" * 129})
    assert long.status_code == 400


# -- writing customers ------------------------------------------------------------------------------
def test_create_customers_in_batches_of_fifty_in_order():
    c = world("empty")
    writes = [CustomerWrite(f"k{n}", party(f"Batch Customer {n:03d}", email=f"b{n}@batch.example",
                                           address_line1=f"{n} Long Road", city="Leeds", postal_code="LS1 1AB",
                                           country="GB", phone="+44 113 496 0000", tax_id="GB980780684",
                                           currency="GBP"))
              for n in range(120)]
    writes.append(CustomerWrite("person", party("Ada Lovelace", kind="person", email="ada@example.org")))
    results = c.connector.create_customers(writes)
    assert [r.key for r in results] == [w.key for w in writes] and all(r.ok for r in results)
    assert calls(c.sandbox, "PUT", "/Contacts") == [200, 200, 200]  # 50 + 50 + 21
    first = results[0].record
    assert first.party == Party("company", "Batch Customer 000", "b0@batch.example", "+44 113 496 0000",
                                "0 Long Road", None, "Leeds", None, "LS1 1AB", "GB", "GB980780684", "GBP")
    ada = results[-1].record
    assert ada.party.kind == "person"
    stored = c.sandbox.state["tenants"][c.conn.tenant_id]["contacts"][ada.id]
    assert (stored["FirstName"], stored["LastName"]) == ("Ada", "Lovelace")


def test_per_record_errors_are_typed_and_do_not_stop_the_batch():
    c = world("demo")
    results = c.connector.create_customers([
        CustomerWrite("ok", party("Fine Customer Ltd")),
        CustomerWrite("dup", party("WALK-IN CUSTOMER")),
        CustomerWrite("mail", party("Bad Mail Ltd", email="not-an-email")),
        CustomerWrite("umlaut", party("Müller GmbH", email="jürgen@müller.example")),
        CustomerWrite("ok2", party("Fine Customer Two Ltd")),
    ])
    ok, dup, mail, umlaut, ok2 = results
    assert ok.ok and ok2.ok
    assert isinstance(dup.error, DuplicateName) and "must be unique across all active contacts" in dup.error.message
    assert isinstance(mail.error, ValidationRejected) and mail.error.field == "email"
    assert isinstance(umlaut.error, ValidationRejected) and umlaut.error.field == "email"
    assert "accented" in umlaut.error.message  # found before sending: Xero refuses umlauts in addresses
    assert c.connector.party_problems(party("x", email="jürgen@müller.example"))[0][0] == "email"
    assert calls(c.sandbox, "PUT", "/Contacts") == [200]


def test_update_customers_checks_the_version_and_keeps_what_it_does_not_manage():
    c = world("empty")
    [made] = c.connector.create_customers([CustomerWrite("k", party("Versioned Ltd", city="Leeds", country="GB"))])
    c.sandbox.advance(5)
    c.sandbox.user_edit("contact", made.id, Addresses=[
        {"AddressType": "STREET", "AddressLine1": "9 Mill Lane", "City": "Leeds"},
        {"AddressType": "POBOX", "City": "Leeds", "Country": "United Kingdom"}],
        Phones=[{"PhoneType": "FAX", "PhoneNumber": "0113 496 0001"}])
    fresh = c.connector.get_customers([made.id])[0]
    stale, gone = c.connector.update_customers([
        CustomerWrite("u1", party("Versioned Ltd", city="York"), id=made.id, version=made.version),
        CustomerWrite("u2", party("Nobody Ltd"), id="00000000-0000-4000-8000-000000000000"),
    ])
    assert isinstance(stale.error, StaleVersion) and isinstance(gone.error, NotFound)
    [done] = c.connector.update_customers([CustomerWrite("u3", party("Versioned Ltd", city="York", country="GB"),
                                                         id=made.id, version=fresh.version)])
    assert done.ok and done.record.party.city == "York" and done.version != fresh.version
    stored = c.sandbox.state["tenants"][c.conn.tenant_id]["contacts"][made.id]
    street = next(a for a in stored["Addresses"] if a["AddressType"] == "STREET")
    fax = next(p for p in stored["Phones"] if p["PhoneType"] == "FAX")
    assert street["AddressLine1"] == "9 Mill Lane" and fax["PhoneNumber"] == "0113 496 0001"
    assert calls(c.sandbox, "POST", "/Contacts") == [200]


def test_a_rename_onto_a_taken_name_is_a_duplicate():
    c = world("demo")
    [made] = c.connector.create_customers([CustomerWrite("k", party("Rename Me Ltd"))])
    [res] = c.connector.update_customers([CustomerWrite("u", party("Margaret Hale"), id=made.id)])
    assert isinstance(res.error, DuplicateName)


# -- limits, faults and retries ------------------------------------------------------------------------
def test_a_429_on_a_write_is_retried_with_the_same_key():
    c = world("empty")
    c.sandbox.faults.append(Fault("429", nth=1, match="PUT .*Contacts"))
    results = c.connector.create_customers([CustomerWrite(f"k{n}", party(f"Retry {n}")) for n in range(3)])
    assert all(r.ok for r in results)
    assert calls(c.sandbox, "PUT", "/Contacts") == [429, 200]
    c.sandbox.faults.append(Fault("429", nth=1, match="POST .*"))
    [upd] = c.connector.update_customers([CustomerWrite("u", party("Retry 0", city="Leeds"), id=results[0].id)])
    assert upd.ok and calls(c.sandbox, "POST", "/Contacts") == [429, 200]


def test_a_500_is_retried_on_reads_and_on_keyed_writes():
    c = world("demo")
    c.sandbox.faults.append(Fault("500", nth=1, match="GET .*Contacts"))
    assert len(c.connector.read_customers(None).records) == 26
    assert calls(c.sandbox, "GET", "/Contacts") == [500, 200]
    c.sandbox.faults.append(Fault("500", nth=1, match="PUT .*Items"))
    [res] = c.connector.create_items([ItemWrite("i", Item(None, "Retried item", "RET-1", Decimal("1.00")))])
    assert res.ok and calls(c.sandbox, "PUT", "/Items") == [500, 200]


def test_a_dropped_answer_after_the_write_replays_instead_of_writing_twice():
    c = world("empty")
    c.sandbox.faults.append(Fault("reset_after_commit", nth=1, match="PUT .*Contacts"))
    [res] = c.connector.create_customers([CustomerWrite("k", party("Exactly Once Ltd"))])
    assert res.ok
    assert len(c.sandbox.state["tenants"][c.conn.tenant_id]["contacts"]) == 1
    assert c.sandbox.faults[0].fired == 1  # the first PUT was committed, then the line dropped ...
    assert calls(c.sandbox, "PUT", "/Contacts") == [200]  # ... and the retry with the same key was a replay


def test_the_minute_limit_answers_429_with_retry_after():
    c = world("empty")
    left = int(raw(c, "GET", f"{API}/Items").headers["X-MinLimit-Remaining"])  # connecting made calls too
    for _ in range(left):
        assert raw(c, "GET", f"{API}/Items").status_code == 200
    over = raw(c, "GET", f"{API}/Items")
    assert over.status_code == 429 and over.headers["X-Rate-Limit-Problem"] == "minute"
    assert 1 <= int(over.headers["Retry-After"]) <= 60 and over.headers["X-MinLimit-Remaining"] == "0"
    c.sandbox.advance(61)
    assert raw(c, "GET", f"{API}/Items").status_code == 200


def test_the_connector_paces_itself_to_sixty_a_minute():
    c = world("empty")
    c.sandbox.advance(61)  # the calls made while connecting are out of the window
    c.connector.company_name()
    c.sandbox.request_log.clear()
    start = c.sandbox.now()
    for _ in range(70):
        c.connector.read_items(None)
    assert 429 not in [status for _, _, status in c.sandbox.request_log]
    assert c.sandbox.now() - start >= 60  # it waited (by moving the sandbox clock), it was not refused


def test_the_daily_limit_is_a_daily_rate_limit_error():
    c = world("empty")
    c.sandbox.set_daily_usage(5000)
    resp = raw(c, "GET", f"{API}/Items")
    assert resp.status_code == 429 and resp.headers["X-Rate-Limit-Problem"] == "day"
    assert int(resp.headers["Retry-After"]) > 3600
    with pytest.raises(RateLimited) as info:
        c.connector.read_items(None)
    assert info.value.daily and info.value.retry_after > 3600


def test_a_sixth_concurrent_call_is_refused():
    c = world("empty")
    answers: list[int] = []
    with c.sandbox.lock:  # the five in flight queue behind the state lock
        threads = [threading.Thread(target=lambda: answers.append(raw(c, "GET", f"{API}/Items").status_code))
                   for _ in range(5)]
        for t in threads:
            t.start()
        assert c.sandbox.wait_in_flight(c.conn.tenant_id, 5)
        sixth = raw(c, "GET", f"{API}/Items")
    for t in threads:
        t.join(5)
    assert sixth.status_code == 429 and sixth.headers["X-Rate-Limit-Problem"] == "concurrent"
    assert "Retry-After" not in sixth.headers and answers == [200] * 5


# -- items ----------------------------------------------------------------------------------------------
def test_items_read_whole_and_show_changes_and_deletions():
    c = world("demo")
    items = c.connector.read_items(None)
    assert len(items.records) == 7 and items.full and items.requests == 1
    hours = next(i for i in items.records if i.sku == "CONS-HR")
    assert hours.unit_price == Decimal("125.00") and hours.name == "Consulting hour"
    idle = c.connector.read_items(items.cursor)
    assert idle.records == [] and idle.requests == 1
    c.sandbox.advance(10)
    c.sandbox.user_edit("item", hours.id, SalesDetails={"UnitPrice": Decimal("130.00")})
    kit = next(i for i in items.records if i.sku == "HW-KIT")
    c.sandbox.user_delete_item(kit.id)
    changed = c.connector.read_items(idle.cursor)
    assert [(i.sku, i.unit_price) for i in changed.records] == [("CONS-HR", Decimal("130.00"))]
    assert changed.deleted_ids == [kit.id]


def test_create_items_by_code_and_an_existing_code_is_that_item():
    c = world("demo")
    long_name = "A very long product name that Xero would cut at fifty characters"
    results = c.connector.create_items([
        ItemWrite("a", Item(None, "Widget", "WID-1", Decimal("12.3456"))),
        ItemWrite("b", Item(None, long_name, None, Decimal("5.00"))),
        ItemWrite("c", Item(None, "Consulting hour", "CONS-HR", Decimal("125.00"))),
    ])
    assert all(r.ok for r in results)
    widget, named, existing = (r.record for r in results)
    assert widget.sku == "WID-1" and widget.unit_price == Decimal("12.3456")  # 4 dp kept (unitdp=4)
    assert len(named.name) == 50 and named.description == long_name and len(named.sku) <= 30
    assert existing.id == next(i.id for i in c.connector.read_items(None).records if i.sku == "CONS-HR")
    assert calls(c.sandbox, "PUT", "/Items") == [200]


# -- invoices and payments --------------------------------------------------------------------------
def test_invoice_totals_round_tax_per_line_and_apply_discount_rates():
    c = world("demo")
    cid = customer(c)
    hours = next(i for i in c.connector.read_items(None).records if i.sku == "CONS-HR")
    taxed = Invoice(None, cid, "GBP", tuple(line(f"Part {n}", "1", "1.03", tax="OUTPUT2") for n in range(3)),
                    reference="CRM deal tax")
    discounted = Invoice(None, cid, "GBP", (line("Consulting", "3", "125.00", "12.5", hours.id),),
                         reference="CRM deal disc")
    t, d = c.connector.create_invoices([InvoiceWrite("t", taxed), InvoiceWrite("d", discounted)])
    assert t.ok and d.ok, (t.error, d.error)
    lines = [(Decimal(1), Decimal("1.03"), Decimal(0), Decimal(20))] * 3
    per_line = invoice_totals(lines, rounding="line")
    assert t.record.total == per_line.total == Decimal("3.72")
    assert invoice_totals(lines, rounding="invoice").total == Decimal("3.71")  # what a subtotal-taxing ledger shows
    assert d.record.total == Decimal("328.13") and d.record.lines[0].discount_percent == Decimal("12.50")
    assert d.record.lines[0].item_id == hours.id and d.record.lines[0].tax_code == "NONE"  # no tax code: NoTax
    inclusive = raw(c, "PUT", f"{API}/Invoices", params={"summarizeErrors": "false"}, body={"Invoices": [{
        "Type": "ACCREC", "Contact": {"ContactID": cid}, "LineAmountTypes": "Inclusive",
        "LineItems": [{"Description": "Gross", "Quantity": 1, "UnitAmount": Decimal("120.00"), "AccountCode": "200",
                       "TaxType": "OUTPUT2"}]}]}).json()["Invoices"][0]
    assert (inclusive["SubTotal"], inclusive["TotalTax"], inclusive["Total"]) == (100, 20, 120)


def test_invoices_are_created_as_told_and_payments_flow_back():
    c = world("demo")
    cid = customer(c)
    start = c.connector.read_invoices(None)
    pays = c.connector.read_payments(None)
    today = dt.date.fromtimestamp(c.sandbox.now())
    draft, live = c.connector.create_invoices([
        InvoiceWrite("a", Invoice(None, cid, "GBP", (line("Setup", "1", "950.00"),), reference="CRM deal 1")),
        InvoiceWrite("b", Invoice(None, cid, "GBP", (line("Setup", "2", "500.00"),), reference="CRM deal 2",
                                  issue_date=today, due_date=today + dt.timedelta(days=30),
                                  status="awaiting_payment")),
    ])
    assert draft.record.status == "draft" and live.record.status == "awaiting_payment"
    assert live.record.number == "INV-0002" and live.record.web_url == c.connector.invoice_url(live.id)
    assert c.connector.invoice_url("x") == "https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=x"
    c.sandbox.advance(5)
    pay1 = c.sandbox.record_payment(live.id, Decimal("400.00"), today.isoformat())
    after = c.connector.read_invoices(start.cursor)
    partly = next(i for i in after.records if i.id == live.id)
    assert (partly.status, partly.amount_paid, partly.balance) == ("partly_paid", Decimal("400.00"),
                                                                   Decimal("600.00"))
    paid = c.connector.read_payments(pays.cursor)
    assert [(p.id, p.invoice_id, p.amount, p.currency) for p in paid.records] == [
        (pay1, live.id, Decimal("400.00"), "GBP")]
    with pytest.raises(ValueError, match=r"^Payment amount exceeds the amount outstanding on this document$"):
        c.sandbox.record_payment(live.id, Decimal("600.01"), today.isoformat())
    with pytest.raises(ValueError, match="Authorised documents"):
        c.sandbox.record_payment(draft.id, Decimal("1.00"), today.isoformat())
    c.sandbox.advance(5)
    c.sandbox.record_payment(live.id, Decimal("600.00"), today.isoformat())
    full = c.connector.read_invoices(after.cursor)
    assert [(i.status, i.balance) for i in full.records] == [("paid", Decimal("0.00"))]
    c.sandbox.advance(5)
    c.sandbox.delete_payment_record(pay1)
    undone = c.connector.read_payments(paid.cursor)
    assert undone.deleted_ids == [pay1]
    assert c.connector.find_invoices("CRM deal 2")[0].status == "partly_paid"


def test_idle_reads_of_every_feed_cost_one_request_each():
    c = world("demo")
    cid = customer(c)
    [inv] = c.connector.create_invoices([InvoiceWrite("a", Invoice(None, cid, "GBP", (line("x", "1", "9.00"),),
                                                                    status="awaiting_payment"))])
    c.sandbox.record_payment(inv.id, Decimal("1.00"), "2026-01-02")
    feeds = (c.connector.read_customers, c.connector.read_items, c.connector.read_invoices, c.connector.read_payments)
    cursors = [feed(None).cursor for feed in feeds]
    c.sandbox.advance(3600)
    c.connector.company_name()  # an hour on: a new access token first, so only the reads are counted
    start = c.connector.api.request_count
    idle = [feed(cursor) for feed, cursor in zip(feeds, cursors, strict=True)]
    assert [(x.records, x.deleted_ids, x.requests) for x in idle] == [([], [], 1)] * 4
    assert c.connector.api.request_count - start == 4


def test_overdue_void_and_deleted_invoices():
    c = world("demo")
    cid = customer(c)
    today = dt.date.fromtimestamp(c.sandbox.now())
    _late, voided, dropped = c.connector.create_invoices([
        InvoiceWrite(k, Invoice(None, cid, "GBP", (line("Work", "1", "10.00"),), reference=f"CRM deal {k}",
                                issue_date=today, due_date=today + dt.timedelta(days=7),
                                status="draft" if k == "drop" else "awaiting_payment"))
        for k in ("late", "void", "drop")])
    start = c.connector.read_invoices(None)
    c.sandbox.advance(8 * 86400)
    assert c.connector.company_name()  # a fresh access token for the raw calls below
    for invoice, status in ((voided, "VOIDED"), (dropped, "DELETED")):
        resp = raw(c, "POST", f"{API}/Invoices/{invoice.id}", body={"Invoices": [{"Status": status}]})
        assert resp.status_code == 200 and resp.json()["Invoices"][0]["Status"] == status
    changed = c.connector.read_invoices(start.cursor)
    status = {i.id: i.status for i in changed.records}
    assert status == {voided.id: "void", dropped.id: "void"} and changed.deleted_ids == [dropped.id]
    assert c.connector.find_invoices("CRM deal late")[0].status == "overdue"  # by Xero's clock, not ours
    assert c.connector.find_invoices("CRM deal drop") == []


def test_find_invoices_by_reference_and_invoice_errors_per_element():
    c = world("demo")
    cid = customer(c)
    made = c.connector.create_invoices([
        InvoiceWrite("a", Invoice(None, cid, "GBP", (line("One", "1", "1.00"),), reference="CRM deal 7")),
        InvoiceWrite("b", Invoice(None, cid, "GBP", (line("Two", "1", "2.00"),), reference="CRM deal 77")),
        InvoiceWrite("c", Invoice(None, "00000000-0000-4000-8000-000000000000", "GBP", (line("x", "1", "1"),))),
        InvoiceWrite("d", Invoice(None, cid, "JPY", (line("x", "1", "1"),))),  # not enabled in this organisation
    ])
    assert [r.ok for r in made] == [True, True, False, False]
    assert isinstance(made[2].error, ValidationRejected) and isinstance(made[3].error, ValidationRejected)
    assert [i.id for i in c.connector.find_invoices("CRM deal 7")] == [made[0].id]
    [again] = c.connector.create_invoices([InvoiceWrite("e", Invoice(None, cid, "GBP", (line("x", "1", "1"),),
                                                                      number=made[0].record.number))])
    assert isinstance(again.error, Conflict) and "Invoice # must be unique." in again.error.message
    assert calls(c.sandbox, "PUT", "/Invoices") == [200, 200]


def test_only_draft_invoices_are_updated_and_lines_are_replaced():
    c = world("demo")
    cid = customer(c)
    draft, live = c.connector.create_invoices([
        InvoiceWrite("a", Invoice(None, cid, "GBP", (line("Old", "1", "5.00"),), reference="CRM deal d")),
        InvoiceWrite("b", Invoice(None, cid, "GBP", (line("Live", "1", "5.00"),), reference="CRM deal l",
                                  status="awaiting_payment")),
    ])
    new_lines = (line("New A", "2", "3.00"), line("New B", "1", "4.00"))
    ok, refused, stale = c.connector.update_invoices([
        InvoiceWrite("u1", Invoice(draft.id, cid, "GBP", new_lines, reference="CRM deal d"), version=draft.version),
        InvoiceWrite("u2", Invoice(live.id, cid, "GBP", new_lines), version=live.version),
        InvoiceWrite("u3", Invoice(draft.id, cid, "GBP", new_lines), version="/Date(1+0000)/"),
    ])
    assert ok.ok and [li.description for li in ok.record.lines] == ["New A", "New B"]
    assert ok.record.total == Decimal("10.00") and ok.record.status == "draft"
    assert isinstance(refused.error, ValidationRejected) and refused.error.field == "status"
    assert isinstance(stale.error, StaleVersion)


def test_invoice_lines_name_new_items_by_code():
    c = world("empty")
    cid = customer(c)
    [item] = c.connector.create_items([ItemWrite("i", Item(None, "Gadget", "GAD-9", Decimal("7.50")))])
    fresh = Connector(c.conn, c.tokens, transport=InProcessTransport(c.sandbox), sleep=c.sandbox.advance)
    [inv] = fresh.create_invoices([InvoiceWrite("v", Invoice(None, cid, "GBP", (line("Gadget", "2", "7.50",
                                                                                      item_id=item.id),)))])
    assert inv.ok and inv.record.lines[0].item_id == item.id and inv.record.total == Decimal("15.00")
    assert calls(c.sandbox, "GET", "/Items") == [200]  # the new connector learnt the code once
    unknown = Invoice(None, cid, "GBP", (line("?", "1", "1", item_id="nope"),))
    [gone] = fresh.create_invoices([InvoiceWrite("w", unknown)])
    assert isinstance(gone.error, ValidationRejected) and gone.error.field == "item"


# -- undo: archive a contact, void or delete an invoice (issue 14) ----------------------------------
def test_deactivate_customer_archives_the_contact():
    c = world("empty")
    cid = customer(c, "Archive Me Ltd")
    res = c.connector.deactivate_customer(cid)
    assert res.ok and res.record.active is False
    [back] = c.connector.get_customers([cid])
    assert back.active is False
    posts = [p for m, p, _ in c.sandbox.request_log if m == "POST" and "/Contacts/" in p]
    assert len(posts) == 1
    assert c.connector.deactivate_customer(cid).ok  # already archived: nothing sent
    assert [p for m, p, _ in c.sandbox.request_log if m == "POST" and "/Contacts/" in p] == posts
    # Contact names are unique among active contacts only: the name is free again.
    [again] = c.connector.create_customers([CustomerWrite("second", party("Archive Me Ltd", currency="GBP"))])
    assert again.ok and again.id != cid


def test_void_invoice_deletes_a_draft_voids_an_approved_one_and_xero_refuses_a_paid_one():
    c = world("demo")
    cid = customer(c)
    draft, live, paid = c.connector.create_invoices([
        InvoiceWrite(k, Invoice(None, cid, "GBP", (line("Work", "1", "10.00"),), reference=f"CRM deal {k}",
                                status="draft" if k == "d" else "awaiting_payment")) for k in ("d", "l", "p")])
    c.sandbox.record_payment(paid.id, Decimal("4.00"), "2026-01-02")
    states = {s.invoice.id: s for s in c.connector.get_invoice_states([draft.id, live.id, paid.id])}
    assert [states[i].sent for i in (draft.id, live.id, paid.id)] == [False, False, False]
    assert c.connector.void_invoice(draft.id, states[draft.id].version).ok
    raw_draft = raw(c, "GET", f"{API}/Invoices/{draft.id}").json()["Invoices"][0]
    assert raw_draft["Status"] == "DELETED"
    res = c.connector.void_invoice(live.id)
    assert res.ok and res.record.status == "void"
    assert raw(c, "GET", f"{API}/Invoices/{live.id}").json()["Invoices"][0]["Status"] == "VOIDED"
    refused = c.connector.void_invoice(paid.id)
    assert isinstance(refused.error, ValidationRejected)
    assert raw(c, "GET", f"{API}/Invoices/{paid.id}").json()["Invoices"][0]["Status"] == "AUTHORISED"


def test_emailing_an_approved_invoice_marks_it_sent_to_contact():
    c = world("demo")
    cid = customer(c)
    draft, live = c.connector.create_invoices([
        InvoiceWrite(k, Invoice(None, cid, "GBP", (line("Work", "1", "10.00"),), reference=f"CRM deal {k}",
                                status="draft" if k == "d" else "awaiting_payment")) for k in ("d", "l")])
    assert raw(c, "POST", f"{API}/Invoices/{draft.id}/Email").status_code == 400  # a draft cannot be emailed
    assert raw(c, "POST", f"{API}/Invoices/{live.id}/Email").status_code == 204
    states = {s.invoice.id: s.sent for s in c.connector.get_invoice_states([draft.id, live.id])}
    assert states == {draft.id: False, live.id: True}
    marked = raw(c, "POST", f"{API}/Invoices/{draft.id}", body={"Invoices": [{"SentToContact": True}]})
    assert marked.status_code == 400
