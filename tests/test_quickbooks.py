"""QuickBooks Online: the sandbox behaves as the reference says, and the connector copes with all of it."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.connectors.base import Connection, CustomerWrite, InvoiceWrite, ItemWrite
from app.connectors.errors import (
    AuthExpired,
    DuplicateName,
    Forbidden,
    NotFound,
    StaleVersion,
    ValidationRejected,
)
from app.connectors.oauth import build_authorize
from app.connectors.quickbooks import Connector, json_dumps, oauth_config, quote, web_root
from app.domain.models import Invoice, InvoiceLine, Item, Party
from app.domain.money import invoice_totals
from app.sandbox.base import Fault
from app.sandbox.demo_data import PRODUCTS
from app.sandbox.server import InProcessTransport
from tests.support import in_process, over_http

DAY = 86400


def world(seed: str = "demo", **kw):
    """A connected sandbox; the connector's waits move the sandbox clock (so 500/min holds at no wall time)."""
    return in_process("quickbooks", seed, **kw)


def raw(c, method: str, path: str, *, params=None, body=None, token: str | None = None, text: str | None = None,
        realm: str | None = None) -> httpx.Response:
    """A request straight to the sandbox, bypassing the connector (to see QBO's own answers)."""
    token = token or c.tokens.load(c.conn.id).access_token
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    content = None
    if body is not None:
        content, headers["Content-Type"] = json_dumps(body).encode(), "application/json"
    elif text is not None:
        content, headers["Content-Type"] = text.encode(), "application/text"
    with httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.conn.base_url) as http:
        return http.request(method, f"/v3/company/{realm or c.conn.tenant_id}{path}", params=params,
                            headers=headers, content=content)


def q(c, statement: str) -> httpx.Response:
    return raw(c, "GET", "/query", params={"query": statement})


def error_code(resp: httpx.Response) -> str:
    return resp.json()["Fault"]["Error"][0]["code"]


def party(name: str, **kw) -> Party:
    return Party(kind=kw.pop("kind", "company"), name=name, **kw)


def bulk(sandbox, n: int, prefix: str = "Bulk Customer") -> list[str]:
    return [sandbox.add("Customer", {"DisplayName": f"{prefix} {i:04d}", "CompanyName": f"{prefix} {i:04d}",
                                     "PrimaryEmailAddr": {"Address": f"c{i}@bulk.example"}}) for i in range(n)]


def calls(sandbox, tail: str, method: str | None = None) -> int:
    return sum(1 for m, p, _ in sandbox.request_log if p.endswith(tail) and (method is None or m == method))


def items_by_sku(c) -> dict[str, str]:
    return {i.sku: i.id for i in c.connector.read_items(None).records}


# -- OAuth and connecting -------------------------------------------------------------------------
def test_oauth_config_uses_intuits_two_hosts_basic_auth_and_the_accounting_scope():
    conn = Connection("c1", "quickbooks", "https://quickbooks.api.intuit.com")
    config = oauth_config(conn, "secret")
    assert config.authorize_url == "https://appcenter.intuit.com/connect/oauth2"
    assert config.token_url == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    assert config.secret_in_basic_auth and config.pkce  # PKCE and state on every authorization request
    query = urllib.parse.parse_qs(urllib.parse.urlparse(build_authorize(config, "http://127.0.0.1:5/cb").url).query)
    assert query["scope"] == ["com.intuit.quickbooks.accounting"] and query["response_type"] == ["code"]
    local = oauth_config(Connection("c2", "quickbooks", "http://127.0.0.1:9", auth_url="http://127.0.0.1:9"), "s")
    assert local.authorize_url == "http://127.0.0.1:9/connect/oauth2"
    assert local.token_url == "http://127.0.0.1:9/oauth2/v1/tokens/bearer"
    assert web_root("https://sandbox-quickbooks.api.intuit.com") == "https://app.sandbox.qbo.intuit.com"
    assert web_root("http://127.0.0.1:41909") == "https://app.qbo.intuit.com"  # stable across sandbox ports


def test_oauth_over_http_takes_the_realm_from_the_callback_and_rotates_refresh_tokens():
    with over_http("quickbooks", "demo") as c:
        assert c.conn.tenant_id == c.sandbox.state["default_realm"]
        assert c.conn.label == "Crossledger Demo Inc." == c.connector.company_name()
        assert c.conn.extra["home_currency"] == "USD" and c.conn.extra["multicurrency"] is True
        saved = c.tokens.load(c.conn.id)
        assert saved.extra["x_refresh_token_expires_in"] == 8726400
        assert ("POST", "/oauth2/v1/tokens/bearer", 200) in c.sandbox.request_log
        c.sandbox.advance(3601)  # the hour is up: 401, refresh, retry
        assert len(c.connector.read_items(None).records) == 7
        again = c.tokens.load(c.conn.id)
        assert again.access_token != saved.access_token
        assert again.refresh_token != saved.refresh_token  # rotated, and the new value was saved
        assert c.connector.customer_url("58") == "https://app.qbo.intuit.com/app/customerdetail?nameId=58"
        assert c.connector.invoice_url("130") == "https://app.qbo.intuit.com/app/invoice?txnId=130"
        with httpx.Client() as http:
            page = http.get(f"{c.url}/app/invoice?txnId=130")  # the sandbox's stand-in page
            assert page.status_code == 200 and "Crossledger Demo Inc." in page.text

            def refresh(token: str) -> httpx.Response:
                return http.post(f"{c.url}/oauth2/v1/tokens/bearer", auth=(c.conn.client_id, "sandbox-secret"),
                                 data={"grant_type": "refresh_token", "refresh_token": token})

            assert refresh(saved.refresh_token).status_code == 200  # the old value lasts a short while
            c.sandbox.advance(601)
            dead = refresh(saved.refresh_token)
            assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"
            assert "intuit_tid" in dead.headers


def test_refresh_on_expiry_in_process_costs_one_token_call():
    c = world("empty")
    before = c.tokens.load(c.conn.id)
    c.sandbox.advance(3601)
    assert c.connector.company_name() == "Crossledger Test Inc."
    assert c.connector.read_customers(None).records == []
    after = c.tokens.load(c.conn.id)
    assert after.access_token != before.access_token and after.refresh_token != before.refresh_token
    assert c.sandbox.request_log.count(("POST", "/oauth2/v1/tokens/bearer", 200)) == 1


def test_the_token_endpoint_requires_the_client_secret_and_a_dead_refresh_token_means_reconnect():
    c = world("empty")
    rt = c.tokens.load(c.conn.id).refresh_token
    with httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.sandbox.public_url) as http:
        no_secret = http.post("/oauth2/v1/tokens/bearer", auth=(c.conn.client_id, ""),
                              data={"grant_type": "refresh_token", "refresh_token": rt})
        assert no_secret.status_code == 401 and no_secret.json()["error"] == "invalid_client"
        revoked = http.post("/v2/oauth2/tokens/revoke", auth=(c.conn.client_id, "sandbox-secret"),
                            json={"token": rt})
        assert revoked.status_code == 200
    with pytest.raises(AuthExpired):
        c.connector.company_name()


def test_authentication_and_company_errors_use_qbos_envelopes():
    c = world("empty")
    resp = raw(c, "GET", "/query", params={"query": "select * from Customer"}, token="nope")
    assert resp.status_code == 401
    assert resp.json()["fault"]["error"][0]["code"] == "3200" and resp.json()["fault"]["type"] == "AUTHENTICATION"
    other = raw(c, "GET", "/companyinfo/1", realm="123")
    assert other.status_code == 403 and other.json()["Fault"]["type"] == "AuthorizationFault"
    stranger = Connector(Connection(c.conn.id, "quickbooks", c.conn.base_url, c.conn.auth_url, tenant_id="123"),
                         c.tokens, transport=InProcessTransport(c.sandbox))
    with pytest.raises(Forbidden):
        stranger.company_name()
    assert raw(c, "GET", "/customer/1", params={"minorversion": "75"}).status_code == 400  # accepted, not found
    assert raw(c, "GET", "/nonsense").json()["Fault"]["Error"][0]["code"] == "500"


# -- the query language and CDC in the sandbox --------------------------------------------------------
def test_query_language_filters_pages_and_rejects_what_qbo_rejects():
    c = world("demo")
    names = q(c, "select * from Customer where DisplayName LIKE '%Dental%'").json()["QueryResponse"]
    assert [x["DisplayName"] for x in names["Customer"]] == ["Harbourview Dental Group"]
    assert names["startPosition"] == 1 and names["maxResults"] == 1
    active = q(c, "select count(*) from Customer").json()["QueryResponse"]["totalCount"]
    every = q(c, "select count(*) from Customer where Active IN (true, false)").json()["QueryResponse"]["totalCount"]
    assert every == active + 1  # inactive names are hidden unless asked for
    flowers = q(c, f"select * from Customer where DisplayName = {quote(chr(79) + 'ttoline' + chr(39) + 's Flowers')}")
    assert flowers.json()["QueryResponse"]["Customer"][0]["CompanyName"] == "Ottoline's Flowers"
    two = q(c, "select * from Item where Sku IN ('SETUP', 'HW-KIT') AND UnitPrice > '0' ORDERBY Name DESC")
    assert two.status_code == 400 and error_code(two) == "4001"  # UnitPrice is not filterable
    two = q(c, "select * from Item where Sku IN ('SETUP', 'HW-KIT') ORDERBY Name DESC")
    assert [i["Name"] for i in two.json()["QueryResponse"]["Item"]] == ["Onboarding and setup", "Hardware starter kit"]
    page = q(c, "select * from Customer ORDERBY Id STARTPOSITION 3 MAXRESULTS 2").json()["QueryResponse"]
    assert [x["Id"] for x in page["Customer"]] == ["3", "4"]
    assert q(c, "select * from Customer where DisplayName = 'Nobody'").json()["QueryResponse"] == {}
    balance = q(c, "select * from Invoice where Balance > '0' AND TotalAmt >= '249.50'").json()["QueryResponse"]
    assert [i["DocNumber"] for i in balance["Invoice"]] == ["1002"]
    since = q(c, "select * from Customer where Metadata.LastUpdatedTime > '2000-01-01T00:00:00-08:00'")
    assert since.json()["QueryResponse"]["maxResults"] == 26
    for bad, code in (("select * from Customer where DisplayName = 'a' OR Active = true", "4000"),
                      ("select * from Customer MAXRESULTS 1001", "4001"),
                      ("select * from Customer where Notes = 'x'", "4001"),
                      ("select * from Nothing", "4001"),
                      ("select * from Customer where DisplayName = 'unterminated", "4000")):
        resp = q(c, bad)
        assert resp.status_code == 400 and error_code(resp) == code, bad
    posted = raw(c, "POST", "/query", text="select * from Customer where Id = '2'")
    assert posted.json()["QueryResponse"]["Customer"][0]["Id"] == "2"


def test_cdc_returns_changes_and_tombstones_refuses_thirty_days_and_caps_at_a_thousand():
    c = world("demo")
    start = c.sandbox.now()
    since = dt.datetime.fromtimestamp(start - 2, dt.UTC).isoformat()
    c.sandbox.advance(10)
    c.sandbox.user_edit("Customer", "2", Notes="called")
    c.sandbox.user_delete("Invoice", "131")
    body = raw(c, "GET", "/cdc", params={"entities": "Customer,Invoice", "changedSince": since}).json()
    customers, invoices = body["CDCResponse"][0]["QueryResponse"]
    assert [x["Id"] for x in customers["Customer"]] == ["2"]
    assert invoices["Invoice"] == [{"Id": "131", "domain": "QBO", "status": "Deleted",
                                    "MetaData": {"LastUpdatedTime": invoices["Invoice"][0]["MetaData"]
                                                 ["LastUpdatedTime"]}}]
    old = dt.datetime.fromtimestamp(c.sandbox.now() - 31 * DAY, dt.UTC).isoformat()
    refused = raw(c, "GET", "/cdc", params={"entities": "Customer", "changedSince": old})
    assert refused.status_code == 400 and "older than fixed days" in refused.json()["Fault"]["Error"][0]["Detail"]
    bulk(c.sandbox, 1005)
    capped = raw(c, "GET", "/cdc", params={"entities": "Customer,Item", "changedSince": since}).json()
    assert sum(len(qr.get("Customer", [])) for qr in capped["CDCResponse"][0]["QueryResponse"]) == 1000


def _over_the_wire(c, path: str, params: dict) -> httpx.Response:
    """A GET on the sandbox's real port, with the connection's own access token."""
    token = c.tokens.load(c.conn.id).access_token
    return httpx.get(f"{c.url}/v3/company/{c.conn.tenant_id}{path}", params=params, timeout=20,
                     headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})


def test_a_changed_since_without_an_offset_is_read_as_pacific_time_as_qbo_reads_it():
    """QBO takes ``changedSince=2026-12-06T22:14:10`` as Pacific time: sent as if it were UTC, the window
    silently starts seven or eight hours later and misses the change."""
    with over_http("quickbooks", "demo") as c:
        edited = c.sandbox.now()
        c.sandbox.user_edit("Customer", "2", Notes="called back")
        pacific = dt.datetime.fromtimestamp(edited - 60, ZoneInfo("America/Los_Angeles"))
        as_utc = dt.datetime.fromtimestamp(edited - 60, dt.UTC)
        assert pacific.utcoffset() in (dt.timedelta(hours=-8), dt.timedelta(hours=-7))

        def changed(since: str) -> list[str]:
            resp = _over_the_wire(c, "/cdc", {"entities": "Customer,Invoice", "changedSince": since})
            assert resp.status_code == 200, resp.text
            return [x["Id"] for qr in resp.json()["CDCResponse"][0]["QueryResponse"] for x in qr.get("Customer", [])]

        assert changed(pacific.strftime("%Y-%m-%dT%H:%M:%S")) == ["2"]
        assert changed(pacific.isoformat(timespec="seconds")) == ["2"]  # the same instant, offset given
        assert changed(as_utc.strftime("%Y-%m-%dT%H:%M:%S")) == []  # UTC wall time, read as Pacific: too late


def test_a_query_may_project_every_property_and_more_as_qbo_allows():
    with over_http("quickbooks", "demo") as c:
        resp = _over_the_wire(c, "/query", {"query": "SELECT *, Sku FROM Item MAXRESULTS 5"})
        assert resp.status_code == 200, resp.text
        items = resp.json()["QueryResponse"]["Item"]
        assert len(items) == 5 and all(i["sparse"] is False and i["Name"] and "UnitPrice" in i for i in items)
        assert {i["Sku"] for i in items} <= {sku for sku, _, _ in PRODUCTS}
        again = _over_the_wire(c, "/query", {"query": "select Sku, * from Item MAXRESULTS 5"}).json()
        assert again["QueryResponse"]["Item"] == items
        narrow = _over_the_wire(c, "/query", {"query": "select Id, Sku from Item MAXRESULTS 5"}).json()
        assert [(i["sparse"], set(i)) for i in narrow["QueryResponse"]["Item"]] == [
            (True, {"Id", "SyncToken", "domain", "sparse", "Sku"})] * 5
        broken = _over_the_wire(c, "/query", {"query": "select *, from Item"})
        assert broken.status_code == 400 and error_code(broken) == "4000"


# -- customers --------------------------------------------------------------------------------------
def test_full_read_pages_by_a_thousand_and_an_idle_incremental_read_costs_one_request():
    c = world("empty")
    bulk(c.sandbox, 1050)
    c.sandbox.add("Customer", {"DisplayName": "Gone Ltd", "CompanyName": "Gone Ltd"})
    gone = c.sandbox.find("Customer", DisplayName="Gone Ltd")[0]["Id"]
    c.sandbox.user_edit("Customer", gone, Active=False)
    full = c.connector.read_customers(None)
    assert full.full and full.requests == 2 and len(full.records) == 1051
    archived = next(r for r in full.records if r.id == gone)
    assert not archived.active and archived.party.name == "Gone Ltd" and archived.raw_name == "Gone Ltd (deleted)"
    assert calls(c.sandbox, "/query") == 2
    again = c.connector.read_customers(full.cursor)  # all 1051 sit inside the overlap: CDC is saturated
    assert again.records == [] and again.requests == 3  # ... so a query, and nothing is handed back twice
    c.sandbox.advance(30)
    later = c.connector.read_customers(again.cursor)
    assert later.records == []
    idle = c.connector.read_customers(later.cursor)
    assert idle.records == [] and idle.requests == 1


def test_an_edit_and_an_archive_are_seen_incrementally_and_the_cursor_moves_on():
    c = world("demo")
    first = c.connector.read_customers(None)
    c.sandbox.advance(30)
    c.sandbox.user_edit("Customer", "3", PrimaryEmailAddr={"Address": "new@orchard.example"})
    c.sandbox.user_edit("Customer", "5", Active=False)
    changed = c.connector.read_customers(first.cursor)
    assert changed.requests == 1 and not changed.full
    by_id = {r.id: r for r in changed.records}
    assert set(by_id) == {"3", "5"}
    assert by_id["3"].party.email == "new@orchard.example" and by_id["3"].version == "1"
    assert by_id["5"].active is False
    c.sandbox.advance(30)
    assert c.connector.read_customers(changed.cursor).records == []


def test_past_thirty_days_and_on_a_saturated_cdc_the_read_falls_back_to_a_query():
    c = world("demo")
    cursor = c.connector.read_customers(None).cursor
    c.sandbox.advance(31 * DAY)
    c.sandbox.user_edit("Customer", "4", Notes="a month later")
    c.connector.company_name()  # (the access token died a month ago: refresh it outside the count)
    late = c.connector.read_customers(cursor)
    assert [r.id for r in late.records] == ["4"] and late.requests == 2  # CDC refused, then the query
    c.sandbox.advance(60)
    bulk(c.sandbox, 1001, "Wave")
    busy = c.connector.read_customers(late.cursor)
    assert len(busy.records) == 1001 and busy.requests == 1 + 2  # saturated CDC, then two query pages


def test_get_and_find_customers_escape_quotes_and_include_inactive_names():
    c = world("demo")
    [flowers] = c.connector.find_customers(name="Ottoline's Flowers")
    assert flowers.party.name == "Ottoline's Flowers"
    [by_email] = c.connector.find_customers(email="diego.ramirez@example.org")
    assert by_email.party.kind == "person" and by_email.party.name == "Diego Ramírez"
    assert c.connector.find_customers(name="Lumen Bicycle Repair (deleted)")[0].active is False
    got = c.connector.get_customers(["3", "1", "999"])
    assert [x.id for x in got] == ["3", "1"]


def test_create_customers_in_batches_of_thirty_with_per_record_errors_in_order():
    c = world("demo")
    writes = [CustomerWrite(f"key-{i}", party(f"New Co {i:02d}", email=f"a{i}@new.example", country="DE",
                                              city="Berlin", tax_id="DE123456789", currency="EUR"))
              for i in range(65)]
    writes[10] = CustomerWrite("key-dup", party("Harbourview Dental Group"))  # taken: 6240
    writes[20] = CustomerWrite("key-vendor", party("Northwind Office Supplies"))  # a vendor's name: 6240 too
    writes[30] = CustomerWrite("key-bad", party("Bad Email Ltd", email="not-an-email"))
    before = calls(c.sandbox, "/batch")
    results = c.connector.create_customers(writes)
    assert calls(c.sandbox, "/batch") - before == 3
    assert [r.key for r in results] == [w.key for w in writes]
    assert isinstance(results[10].error, DuplicateName) and isinstance(results[20].error, DuplicateName)
    assert isinstance(results[30].error, ValidationRejected) and results[30].error.field == "email"
    ok = [r for r in results if r.ok]
    assert len(ok) == 62 and len({r.id for r in ok}) == 62
    made = c.sandbox.find("Customer", DisplayName="New Co 00")[0]
    assert made["PrimaryTaxIdentifier"] == "DE123456789" and made["CurrencyRef"]["value"] == "EUR"
    assert made["BillAddr"]["Country"] == "DE" and results[0].record.party.tax_id == "DE123456789"


def test_a_repeated_request_id_returns_the_original_answer_and_creates_nothing():
    c = world("empty")
    writes = [CustomerWrite(f"same-{i}", party(f"Replay {i}")) for i in range(3)]
    first = c.connector.create_customers(writes)
    again = c.connector.create_customers(writes)  # e.g. the answer was lost and the run resumed
    assert [r.id for r in again] == [r.id for r in first] and all(r.ok for r in again)
    assert len(c.connector.read_customers(None).records) == 3
    body = {"DisplayName": "Raw Replay"}
    one = raw(c, "POST", "/customer", params={"requestid": "rid-1"}, body=body)
    two = raw(c, "POST", "/customer", params={"requestid": "rid-1"}, body=body)
    assert one.json()["Customer"]["Id"] == two.json()["Customer"]["Id"]
    three = raw(c, "POST", "/customer", params={"requestid": "rid-2"}, body=body)
    assert three.status_code == 400 and error_code(three) == "6240"


def test_a_write_whose_answer_was_lost_is_sent_again_under_the_same_request_id():
    c = world("empty")
    c.sandbox.faults.append(Fault("reset_after_commit", nth=1, match="POST .*/batch"))
    [res] = c.connector.create_customers([CustomerWrite("lost", party("Lost Answer Ltd"))])
    assert res.ok, res.error
    assert len(c.sandbox.find("Customer", DisplayName="Lost Answer Ltd")) == 1
    assert c.connector.api.request_count == 2  # the dropped one, and the same request id again


def test_update_customers_sends_sparse_changes_and_stale_versions_are_typed():
    c = world("demo")
    [cust] = c.connector.get_customers(["2"])
    moved = cust.party.with_fields({"city": "York", "postal_code": "YO1 7HH", "email": "ap@tundra.example"})
    [res] = c.connector.update_customers([CustomerWrite("u1", moved, id="2", version=cust.version)])
    assert res.ok and res.version == "1"
    rec = c.sandbox.find("Customer", Id="2")[0]
    assert rec["BillAddr"]["City"] == "York" and rec["BillAddr"]["Line1"] == "166 Alder Avenue"
    assert rec["PrimaryTaxIdentifier"] == cust.party.tax_id and rec["DisplayName"] == "Tundra Roasters"
    [stale] = c.connector.update_customers([CustomerWrite("u2", moved.with_fields({"city": "Hull"}), id="2",
                                                          version=cust.version)])
    assert isinstance(stale.error, StaleVersion)
    server = raw(c, "POST", "/customer", body={"Id": "2", "SyncToken": "0", "sparse": True, "Notes": "x"})
    assert server.status_code == 400 and error_code(server) == "5010"
    assert server.json()["Fault"]["type"] == "ValidationFault" and "time" in server.json()
    renamed = cust.party.with_fields({"name": "Tundra Coffee Roasters"})
    [res] = c.connector.update_customers([CustomerWrite("u3", renamed, id="2")])
    rec = c.sandbox.find("Customer", Id="2")[0]
    assert res.ok and rec["DisplayName"] == rec["CompanyName"] == "Tundra Coffee Roasters"
    [missing] = c.connector.update_customers([CustomerWrite("u4", renamed, id="9999")])
    assert isinstance(missing.error, NotFound)


def test_a_full_update_clears_omitted_fields_and_sparse_keeps_them():
    c = world("demo")
    rec = c.sandbox.find("Customer", Id="2")[0]
    full = raw(c, "POST", "/customer", body={"Id": "2", "SyncToken": rec["SyncToken"], "DisplayName": "Tundra"})
    assert full.status_code == 200
    assert "PrimaryTaxIdentifier" not in full.json()["Customer"] and "BillAddr" not in full.json()["Customer"]
    assert full.json()["Customer"]["CurrencyRef"]["value"] == "GBP"  # set at creation, kept
    unknown = raw(c, "POST", "/customer", body={"DisplayName": "X", "TaxNumber": "1"})
    assert error_code(unknown) == "2010" and unknown.json()["Fault"]["Error"][0]["element"] == "TaxNumber"
    long_name = raw(c, "POST", "/customer", body={"GivenName": "G" * 26})
    assert error_code(long_name) == "2050"
    colon = raw(c, "POST", "/customer", body={"DisplayName": "A:B"})
    assert error_code(colon) == "6000"


def test_rate_limits_are_retried_on_writes_and_server_errors_on_reads():
    c = world("demo")
    c.sandbox.faults.append(Fault("429", nth=1, match="POST .*/batch"))
    c.sandbox.faults.append(Fault("500", nth=1, match="GET .*/query"))
    [res] = c.connector.create_customers([CustomerWrite("r1", party("Retried Ltd"))])
    assert res.ok
    assert len(c.connector.read_customers(None).records) == 28  # 26 active + 1 inactive + the new one
    assert all(f.fired == 1 for f in c.sandbox.faults)
    assert len(c.sandbox.find("Customer", DisplayName="Retried Ltd")) == 1


def test_qbos_own_throttle_has_no_retry_after_so_the_connector_waits_a_minute():
    c = world("empty")
    c.sandbox.rate_limit = (5, 60.0)
    codes = [q(c, "select * from Customer").status_code for _ in range(6)]
    assert codes[-1] == 429 and "Retry-After" not in q(c, "select * from Item").headers
    assert q(c, "select * from Item").json()["Fault"]["Error"][0]["code"] == "3001"
    before = c.sandbox.now()
    assert c.connector.read_customers(None).records == []
    assert c.sandbox.now() - before >= 60  # it waited (on the sandbox clock) rather than giving up


def test_batch_limits_and_per_item_faults_keyed_by_bid():
    c = world("demo")
    big = {"BatchItemRequest": [{"bId": f"b{i}", "operation": "create", "Customer": {"DisplayName": f"B{i}"}}
                                for i in range(31)]}
    too_big = raw(c, "POST", "/batch", body=big)
    assert too_big.status_code == 400 and not c.sandbox.find("Customer", DisplayName="B0")
    mixed = raw(c, "POST", "/batch", body={"BatchItemRequest": [
        {"bId": "ok", "operation": "create", "Customer": {"DisplayName": "Batch Ok"}},
        {"bId": "dup", "operation": "create", "Customer": {"DisplayName": "Batch Ok"}},  # serial: sees the first
        {"bId": "q", "Query": "select * from Item where Sku = 'SETUP'"}]})
    answers = {a["bId"]: a for a in mixed.json()["BatchItemResponse"]}
    assert mixed.status_code == 200 and answers["ok"]["Customer"]["DisplayName"] == "Batch Ok"
    assert answers["dup"]["Fault"]["Error"][0]["code"] == "6240"
    assert answers["q"]["QueryResponse"]["Item"][0]["Sku"] == "SETUP"
    long_bid = raw(c, "POST", "/batch", params={"requestid": "r" * 36},
                   body={"BatchItemRequest": [{"bId": "x" * 11, "Customer": {"DisplayName": "Long Bid"}}]})
    assert long_bid.status_code == 400
    assert raw(c, "POST", "/batch", params={"requestid": "r" * 37},
               body={"BatchItemRequest": [{"bId": "x", "Customer": {"DisplayName": "Long Rid"}}]}).status_code == 400


# -- items ----------------------------------------------------------------------------------------------
def test_create_items_reuses_by_sku_then_name_and_creates_the_rest_on_the_income_account():
    c = world("demo")
    skus = items_by_sku(c)
    results = c.connector.create_items([
        ItemWrite("i1", Item(None, "Consulting (renamed in CRM)", "CONS-HR", Decimal("130"))),
        ItemWrite("i2", Item(None, "Training day", None, Decimal("780.00"))),
        ItemWrite("i3", Item(None, "Support: premium", "SUP-PREM", Decimal("99.95"), description="Premium")),
        ItemWrite("i4", Item(None, "", None)),
    ])
    assert results[0].id == skus["CONS-HR"] and results[1].id == skus["TRAIN-D"]
    assert results[2].ok and results[2].record.name == "Support - premium" and results[2].record.sku == "SUP-PREM"
    assert isinstance(results[3].error, ValidationRejected)
    made = c.sandbox.find("Item", Id=results[2].id)[0]
    assert made["IncomeAccountRef"] == {"value": "1", "name": "Services"} and made["Type"] == "Service"
    assert made["UnitPrice"] == Decimal("99.95")
    assert raw(c, "POST", "/item", body={"Name": "No Account", "Type": "Service"}).json()["Fault"]["Error"][0][
        "code"] == "2020"
    assert error_code(raw(c, "POST", "/item", body={"Name": "Training Day", "Type": "Service",
                                                    "IncomeAccountRef": {"value": "1"}})) == "6240"
    later = c.connector.read_items(None)
    assert len(later.records) == 8


# -- invoices and payments --------------------------------------------------------------------------------
def _invoice(c, customer_id: str, ref: str, lines, currency: str = "USD", **kw) -> Invoice:
    return Invoice(None, customer_id, currency, tuple(lines), reference=ref, **kw)


def test_invoices_are_created_in_batches_with_qbo_totals_and_found_by_reference():
    c = world("demo")
    skus = items_by_sku(c)
    cust = c.sandbox.find("Customer", DisplayName="Harbourview Dental Group")[0]["Id"]
    mixed = [InvoiceLine("Consulting", Decimal(3), Decimal("125.00"), Decimal("12.5"), skus["CONS-HR"]),
             InvoiceLine("Support", Decimal("0.5"), Decimal("333.33"), Decimal(0), skus["SUPP-PR"]),
             InvoiceLine("Seats", Decimal(12), Decimal("19.99"), Decimal(5), skus["LIC-SEAT"])]
    uniform = [InvoiceLine("Seats", Decimal(10), Decimal("19.99"), Decimal(10), skus["LIC-SEAT"]),
               InvoiceLine("Kit", Decimal(1), Decimal("249.50"), Decimal(10), skus["HW-KIT"])]
    writes = [InvoiceWrite(f"inv-{n}", _invoice(c, cust, f"CRM deal {n}", mixed if n % 2 else uniform,
                                                issue_date=dt.date(2026, 1, 5), due_date=dt.date(2026, 2, 4)))
              for n in range(32)]
    before = calls(c.sandbox, "/batch")
    results = c.connector.create_invoices(writes)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert calls(c.sandbox, "/batch") - before == 2
    for w, r in zip(writes, results, strict=True):
        expected = invoice_totals(((li.quantity, li.unit_price, li.discount_percent, Decimal(0))
                                   for li in w.invoice.lines), rounding="invoice")
        assert r.record.total == expected.total == r.record.balance
        assert r.record.reference == w.invoice.reference and r.record.status in ("awaiting_payment", "overdue")
    odd = c.sandbox.find("Invoice", Id=results[1].id)[0]
    assert odd["Line"][0]["Description"] == "Consulting (12.5% discount)"
    assert odd["Line"][0]["SalesItemLineDetail"]["UnitPrice"] == Decimal("109.375")
    assert results[1].record.lines[0].unit_price == Decimal("125.00")
    assert results[1].record.lines[0].discount_percent == Decimal("12.5")
    even = c.sandbox.find("Invoice", Id=results[0].id)[0]
    assert [li["DetailType"] for li in even["Line"]] == ["SalesItemLineDetail", "SalesItemLineDetail",
                                                          "DiscountLineDetail", "SubTotalLineDetail"]
    assert even["PrivateNote"] == "CRM deal 0" and even["DocNumber"].isdigit()
    assert [i.id for i in c.connector.find_invoices("CRM deal 7")] == [results[7].id]
    assert c.connector.find_invoices("CRM deal 99") == []
    again = c.connector.create_invoices(writes)  # resent: the request ids answer, nothing new is made
    assert [r.id for r in again] == [r.id for r in results]
    assert q(c, "select count(*) from Invoice").json()["QueryResponse"]["totalCount"] == 34


def test_the_sandbox_enforces_amount_equals_qty_times_price_and_live_references():
    c = world("demo")
    line = {"DetailType": "SalesItemLineDetail", "Amount": Decimal("100.00"),
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 2, "UnitPrice": Decimal("49.99")}}
    wrong = raw(c, "POST", "/invoice", body={"CustomerRef": {"value": "1"}, "Line": [line]})
    assert error_code(wrong) == "6000" and "UnitPrice * Qty" in wrong.json()["Fault"]["Error"][0]["Detail"]
    inactive = raw(c, "POST", "/invoice", body={"CustomerRef": {"value": "27"},
                                                "Line": [{**line, "Amount": Decimal("99.98")}]})
    assert error_code(inactive) == "610"
    [res] = c.connector.create_invoices([InvoiceWrite("x", _invoice(c, "27", "r", [
        InvoiceLine("a", Decimal(1), Decimal(1), Decimal(0), "1")]))])
    assert isinstance(res.error, NotFound)


def test_payments_move_status_from_awaiting_to_partly_paid_to_paid_then_overdue_and_void():
    c = world("demo")
    skus = items_by_sku(c)
    cust = c.sandbox.find("Customer", DisplayName="Harbourview Dental Group")[0]["Id"]
    today = dt.date.fromisoformat(c.sandbox.today())
    lines = [InvoiceLine("Setup", Decimal(1), Decimal("950.00"), Decimal(0), skus["SETUP"])]
    first, second = c.connector.create_invoices([
        InvoiceWrite("p1", _invoice(c, cust, "CRM deal p1", lines, issue_date=today,
                                    due_date=today + dt.timedelta(days=14))),
        InvoiceWrite("p2", _invoice(c, cust, "CRM deal p2", lines, issue_date=today,
                                    due_date=today + dt.timedelta(days=14)))])
    assert first.record.status == "awaiting_payment"
    invoices = c.connector.read_invoices(None)
    payments = c.connector.read_payments(None)
    c.sandbox.advance(60)
    pid = c.sandbox.record_payment(first.id, Decimal("400.00"), today.isoformat())
    changed = c.connector.read_invoices(invoices.cursor)
    [inv] = [i for i in changed.records if i.id == first.id]
    assert inv.status == "partly_paid" and inv.balance == Decimal("550.00") and inv.amount_paid == Decimal("400.00")
    paid = c.connector.read_payments(payments.cursor)
    assert [(p.id, p.invoice_id, p.amount) for p in paid.records] == [(f"{pid}:{first.id}", first.id,
                                                                       Decimal("400.00"))]
    [not_now] = c.connector.update_invoices([InvoiceWrite("p1u", inv)])
    assert isinstance(not_now.error, ValidationRejected)  # payments applied: QBO's "draft" is over
    c.sandbox.record_payment(first.id, Decimal("550.00"), today.isoformat())
    c.sandbox.advance(20 * DAY)  # past the due date
    later = {i.id: i for i in c.connector.read_invoices(changed.cursor).records}
    assert later[first.id].status == "paid"
    everything = {i.id: i for i in c.connector.read_invoices(None).records}
    assert everything[second.id].status == "overdue"
    c.sandbox.user_void("Invoice", second.id)
    voided = {i.id: i for i in c.connector.read_invoices(changed.cursor).records}[second.id]
    assert voided.status == "void" and voided.total == 0 and voided.reference is None
    rec = c.sandbox.find("Invoice", Id=second.id)[0]
    assert rec["PrivateNote"] == "Voided" and rec["Line"][0]["Amount"] == 0


def test_unpaid_invoices_update_sparsely_with_their_sync_token_and_deletes_are_tombstones():
    c = world("demo")
    skus = items_by_sku(c)
    cust = c.sandbox.find("Customer", DisplayName="Harbourview Dental Group")[0]["Id"]
    [made] = c.connector.create_invoices([InvoiceWrite("e1", _invoice(c, cust, "CRM deal e1", [
        InvoiceLine("Training", Decimal(2), Decimal("780.00"), Decimal(0), skus["TRAIN-D"])]))])
    cursor = c.connector.read_invoices(None).cursor
    bigger = Invoice(made.id, cust, "USD", (InvoiceLine("Training", Decimal(3), Decimal("780.00"), Decimal(0),
                                                        skus["TRAIN-D"]),), reference="CRM deal e1")
    [res] = c.connector.update_invoices([InvoiceWrite("e1u", bigger, version=made.version)])
    assert res.ok and res.record.total == Decimal("2340.00") and res.version == "1"
    [stale] = c.connector.update_invoices([InvoiceWrite("e1v", bigger, version=made.version)])
    assert isinstance(stale.error, StaleVersion)
    c.sandbox.advance(30)
    c.sandbox.user_delete("Invoice", made.id)
    gone = c.connector.read_invoices(cursor)
    assert gone.deleted_ids == [made.id]


def test_an_invoice_in_another_currency_switches_a_fresh_customer_but_not_one_with_transactions():
    c = world("demo")
    skus = items_by_sku(c)
    [fresh] = c.connector.create_customers([CustomerWrite("f", party("Fresh GmbH", country="DE"))])
    line = [InvoiceLine("Kit", Decimal(1), Decimal("249.50"), Decimal(0), skus["HW-KIT"])]
    [ok] = c.connector.create_invoices([InvoiceWrite("eur", _invoice(c, fresh.id, "CRM deal eur", line, "EUR"))])
    assert ok.ok and ok.record.currency == "EUR"
    assert c.sandbox.find("Customer", Id=fresh.id)[0]["CurrencyRef"]["value"] == "EUR"
    busy = c.sandbox.find("Customer", DisplayName="Harbourview Dental Group")[0]["Id"]  # has invoices
    [refused] = c.connector.create_invoices([InvoiceWrite("gbp", _invoice(c, busy, "CRM deal gbp", line, "GBP"))])
    assert isinstance(refused.error, ValidationRejected) and refused.error.field == "currency"


def test_credit_memos_are_read_with_their_remaining_credit():
    c = world("demo")
    cust = c.sandbox.find("Customer", DisplayName="Harbourview Dental Group")[0]["Id"]
    memo = c.sandbox.add("CreditMemo", {"CustomerRef": {"value": cust}, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": Decimal("50.00"),
         "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": Decimal("50.00")}}]})
    [read] = c.connector.read_credit_memos(None).records
    assert read.id == memo and read.total == Decimal("50.00") and read.balance == Decimal("50.00")


def test_demo_seed_has_ledger_customers_for_the_demo_companies_and_items_for_products():
    from app.sandbox.demo_data import PRODUCTS, demo_data

    c = world("demo")
    data = demo_data()
    customers = c.connector.read_customers(None).records
    names = {x.raw_name for x in customers}
    in_ledger = [co for co in data.companies if co.in_ledger]
    assert {co.ledger_name for co in in_ledger} <= names
    for co in in_ledger:
        rec = next(x for x in customers if x.raw_name == co.ledger_name)
        if co.in_ledger == "email":
            assert rec.party.email == co.email
        if co.in_ledger == "tax_id":
            assert rec.party.tax_id == co.tax_id
    assert len(customers) == len(in_ledger) + 5
    assert {i.sku for i in c.connector.read_items(None).records} == {p[0] for p in PRODUCTS}
    assert json.loads(c.connector.read_items(None).cursor)["since"] > 0


# -- undo: deactivate a customer, void an invoice (issue 14) ----------------------------------------
def test_deactivate_customer_is_a_sparse_active_false_and_never_a_delete():
    c = world("empty")
    [made] = c.connector.create_customers([CustomerWrite("u1", party("Undo Me Ltd"))])
    res = c.connector.deactivate_customer(made.id, made.version)
    assert res.ok and res.record.active is False
    rec = c.sandbox.find("Customer", Id=made.id)[0]
    assert rec["Active"] is False and rec["DisplayName"] == "Undo Me Ltd (deleted)"
    sent = [p for m, p, _ in c.sandbox.request_log if m == "POST" and p.endswith("/customer")]
    assert len(sent) == 1
    again = c.connector.deactivate_customer(made.id)  # already inactive: nothing sent
    assert again.ok and [p for m, p, _ in c.sandbox.request_log if m == "POST" and p.endswith("/customer")] == sent
    stale = c.connector.get_customers([made.id])[0]
    [other] = c.connector.create_customers([CustomerWrite("u2", party("Edited Since Ltd"))])
    c.sandbox.user_edit("Customer", other.id, Notes="edited")
    refused = c.connector.deactivate_customer(other.id, other.version)
    assert isinstance(refused.error, StaleVersion) and stale.active is False
    assert c.sandbox.find("Customer", Id=other.id)[0]["Active"] is True


def test_void_invoice_uses_operation_void_and_sent_or_paid_show_in_the_state():
    c = world("demo")
    skus = items_by_sku(c)
    cust = c.sandbox.find("Customer", DisplayName="Harbourview Dental Group")[0]["Id"]
    lines = [InvoiceLine("Setup", Decimal(1), Decimal("950.00"), Decimal(0), skus["SETUP"])]
    a, b, d = c.connector.create_invoices([InvoiceWrite(k, _invoice(c, cust, f"CRM deal {k}", lines))
                                           for k in ("va", "vb", "vd")])
    states = {s.invoice.id: s for s in c.connector.get_invoice_states([a.id, b.id, d.id])}
    assert [states[i].sent for i in (a.id, b.id, d.id)] == [False, False, False]
    sent = raw(c, "POST", f"/invoice/{b.id}/send", params={"sendTo": "ap@harbourview.example"})
    assert sent.status_code == 200 and sent.json()["Invoice"]["EmailStatus"] == "EmailSent"
    no_address = raw(c, "POST", f"/invoice/{d.id}/send")
    assert no_address.status_code == 400
    assert c.connector.get_invoice_states([b.id])[0].sent is True
    c.sandbox.record_payment(d.id, Decimal("100.00"), c.sandbox.today())
    paid = c.connector.get_invoice_states([d.id])[0]
    assert paid.invoice.status == "partly_paid" and paid.invoice.amount_paid == Decimal("100.00")

    res = c.connector.void_invoice(a.id, states[a.id].version)
    assert res.ok and res.record.status == "void" and res.record.total == 0
    voids = [p for m, p, _ in c.sandbox.request_log if m == "POST" and p.endswith("/invoice")]
    assert c.sandbox.find("Invoice", Id=a.id)[0]["PrivateNote"] == "Voided"
    assert c.connector.void_invoice(a.id).ok  # already void: nothing more is sent
    assert [p for m, p, _ in c.sandbox.request_log if m == "POST" and p.endswith("/invoice")] == voids
    stale = c.connector.void_invoice(b.id, states[b.id].version)  # sending it moved its SyncToken
    assert isinstance(stale.error, StaleVersion)
    assert c.connector.get_invoice_states([b.id])[0].invoice.status != "void"
