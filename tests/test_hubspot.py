"""HubSpot: OAuth, reads (list, search window, deletions), batch writes, limits, deals and properties."""

from __future__ import annotations

import datetime as dt
import re
import signal
import subprocess
import sys
import urllib.parse
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from app.connectors import hubspot as hs
from app.connectors import oauth
from app.connectors.base import Connection, FieldInfo, RecordWrite
from app.connectors.errors import (
    AuthExpired,
    Conflict,
    Forbidden,
    NotFound,
    TransportError,
    ValidationRejected,
)
from app.connectors.tokens import MemoryTokenStore
from app.ops import sandboxes
from app.ops.connect import connect, connect_with_grant
from app.sandbox import hubspot as sandbox_module
from app.sandbox.base import Fault
from app.sandbox.demo_data import COUNTRY_NAMES, demo_data
from app.sandbox.hubspot import search as search_module
from app.sandbox.server import InProcessTransport
from app.store.db import Store
from app.store.models import Link, Workspace
from app.sync.engine import SyncEngine
from app.sync.mapping import map_record
from tests.support import in_process, over_http

ROOT = Path(__file__).resolve().parent.parent


def _count(sandbox, method: str, pattern: str, status: int | None = None) -> int:
    return sum(1 for m, p, s in sandbox.request_log
               if m == method and re.fullmatch(pattern, p) and (status is None or s == status))


def _raw(c, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.url, headers=headers)


def _token(c) -> str:
    return c.tokens.load(c.conn.id).access_token


# -- OAuth ---------------------------------------------------------------------------------------

def test_connect_over_http_uses_hubspots_authorize_and_v3_token_endpoints():
    seen = []
    original = sandbox_module.HubSpotSandbox.handle

    def spy(self, req):
        resp = original(self, req)
        seen.append((req, resp))
        return resp

    sandbox_module.HubSpotSandbox.handle = spy
    try:
        with over_http("hubspot", "demo") as c:
            assert c.conn.tenant_id == "48151623"  # hub_id from the token response
            assert c.conn.label == "crossledger-demo.com"  # hub_domain: HubSpot exposes no account name
            assert c.conn.extra["currency"] == "USD" and c.conn.extra["ui_domain"] == "app.hubspot.com"
            saved = c.tokens.load(c.conn.id)
            assert saved.refresh_token and 1700 < saved.expires_at - dt.datetime.now(dt.UTC).timestamp() <= 1800
            assert saved.extra["hub_id"] == 48151623 and "crm.objects.contacts.read" in saved.extra["scopes"]
            assert len(c.connector.read_records("company", None).records) == 162
    finally:
        sandbox_module.HubSpotSandbox.handle = original
    authorize = next(req for req, _ in seen if req.path == "/oauth/authorize")
    scopes = authorize.arg("scope").split(" ")
    assert {"crm.objects.companies.write", "crm.schemas.deals.write", "oauth"} <= set(scopes)
    assert authorize.arg("code_challenge_method") == "S256" and authorize.arg("state")
    token_req = next(req for req, _ in seen if req.path == "/oauth/v3/token")
    form = token_req.form()
    assert form["grant_type"] == "authorization_code" and form["client_secret"] == "sandbox-secret"
    assert form["code_verifier"] and "authorization" not in token_req.headers


def test_authorize_url_shape_for_the_real_service():
    from app.connectors.base import Connection

    config = hs.oauth_config(Connection("x", "hubspot", hs.PROVIDER.default_base_url,
                                        auth_url=hs.PROVIDER.default_auth_url), "s")
    assert config.authorize_url == "https://app.hubspot.com/oauth/authorize"
    assert config.token_url == "https://api.hubapi.com/oauth/v3/token"
    req = oauth.build_authorize(config, "http://127.0.0.1:5000/callback")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(req.url).query)
    assert query["client_id"] == ["crossledger-desktop"] and "crm.objects.deals.read" in query["scope"][0].split()


def test_access_token_expires_after_30_minutes_and_refresh_keeps_the_refresh_token():
    with over_http("hubspot", "demo") as c:
        before = c.tokens.load(c.conn.id)
        c.sandbox.advance(1801)
        with _raw(c, before.access_token) as http:
            resp = http.get("/crm/v3/objects/companies")
        assert resp.status_code == 401 and resp.json()["category"] == "EXPIRED_AUTHENTICATION"
        assert len(c.connector.get_records("company", ["9800001"])) == 1  # 401 -> refresh -> retried
        after = c.tokens.load(c.conn.id)
        assert after.access_token != before.access_token
        assert after.refresh_token == before.refresh_token  # HubSpot refresh tokens do not rotate
        assert _count(c.sandbox, "POST", r"/oauth/v3/token") == 2
        again = oauth.refresh_tokens(hs.oauth_config(c.conn, "sandbox-secret"), after)  # still valid
        assert again.refresh_token == before.refresh_token


def test_token_endpoint_errors_use_hubspots_codes():
    c = in_process("hubspot")
    with _raw(c) as http:
        resp = http.post("/oauth/v1/token", data={"grant_type": "refresh_token", "refresh_token": "nope",
                                                   "client_id": "crossledger-desktop", "client_secret": "s"})
        assert resp.status_code == 400
        assert resp.json()["status"] == "BAD_REFRESH_TOKEN" and resp.json()["error"] == "invalid_grant"
        resp = http.post("/oauth/v3/token", data={"grant_type": "refresh_token", "refresh_token": "x",
                                                   "client_id": "crossledger-desktop"})
        assert resp.status_code == 400 and resp.json()["status"] == "BAD_CLIENT_SECRET"
    saved = c.tokens.load(c.conn.id)
    c.sandbox.revoke_refresh(saved.refresh_token)
    with pytest.raises(AuthExpired):
        oauth.refresh_tokens(hs.oauth_config(c.conn, "sandbox-secret"), saved,
                             transport=InProcessTransport(c.sandbox))


def test_a_sign_in_without_the_secret_cannot_refresh():
    c = in_process("hubspot", "demo")
    tokens = MemoryTokenStore()
    conn = c.conn
    connect_with_grant(conn, tokens, c.sandbox.grant_tokens(conn.client_id), transport=InProcessTransport(c.sandbox))
    k = hs.Connector(conn, tokens, transport=InProcessTransport(c.sandbox), sleep=c.sandbox.advance)
    c.sandbox.advance(1801)
    with pytest.raises(AuthExpired):
        k.read_records("company", None)


def test_missing_scope_is_a_typed_forbidden_error():
    c = in_process("hubspot", "demo")
    grant = c.sandbox.grant_tokens(c.conn.client_id, scope="crm.objects.contacts.read")
    with _raw(c, grant["access_token"]) as http:
        resp = http.get("/crm/v3/objects/deals")
        assert resp.status_code == 403 and resp.json()["category"] == "MISSING_SCOPES"
        assert resp.json()["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.deals.read"]
        assert http.get("/crm/v3/objects/contacts").status_code == 200
        assert http.get("/account-info/v3/details").status_code == 200  # `oauth` is always granted
    tokens = MemoryTokenStore()
    connect_with_grant(c.conn, tokens, grant, transport=InProcessTransport(c.sandbox), client_secret="s")
    k = hs.Connector(c.conn, tokens, transport=InProcessTransport(c.sandbox))
    with pytest.raises(Forbidden) as info:
        k.read_deals(None)
    assert "crm" in info.value.message


def test_unauthenticated_calls_get_hubspots_401_body():
    c = in_process("hubspot")
    with _raw(c, "wrong") as http:
        resp = http.get("/crm/v3/objects/contacts")
    assert resp.status_code == 401
    assert resp.json()["status"] == "error" and resp.json()["category"] == "INVALID_AUTHENTICATION"
    assert resp.json()["correlationId"]


# -- reads ---------------------------------------------------------------------------------------

def test_full_read_pages_through_100_at_a_time():
    c = in_process("hubspot")
    ids = c.sandbox.add_companies(250)
    seen = []
    c.sandbox.exchange_hooks.append(lambda req, resp: seen.append(req))
    changes = c.connector.read_records("company", None)
    assert changes.full and sorted(r.id for r in changes.records) == sorted(ids)
    lists = [r for r in seen if r.method == "GET" and r.path == "/crm/v3/objects/companies"]
    assert len(lists) == 3 and all(r.arg("limit") == "100" for r in lists)
    assert changes.requests == 1 + 1 + 3  # properties, snapshot search, three pages
    props = lists[0].arg("properties").split(",")
    assert {"name", "tax_id", "billing_email", "hs_lastmodifieddate"} <= set(props)


def test_demo_seed_holds_every_demo_record():
    c = in_process("hubspot", "demo")
    data = demo_data()
    k = c.connector
    companies = k.read_records("company", None).records
    people = k.read_records("person", None).records
    deals = k.read_deals(None).records
    assert len(companies) == len(data.companies) and len(people) == len(data.people)
    assert len(deals) == len(data.deals)
    by_name = {r.properties["name"]: r for r in companies}
    for demo in data.companies[:40]:
        props = by_name[demo.name].properties
        assert props["tax_id"] == demo.tax_id and props["country"] == demo.country_name
        assert props["billing_email"] == demo.email and props["state"] == demo.region
    company_of = {c2.key: by_name[c2.name].id for c2 in data.companies if c2.mess is None}
    by_email = {r.properties["email"]: r for r in people}
    for person in data.people:
        rec = by_email[person.email]
        if person.company_key in company_of:
            assert rec.company_id == company_of[person.company_key]
        elif person.company_key is None:
            assert rec.company_id is None
            assert rec.properties["country"] == COUNTRY_NAMES.get(person.country, person.country)
    assert sum(d.won for d in deals) == sum(d.stage == "won" for d in data.deals)
    products = {r["properties"]["hs_sku"] for r in c.sandbox.state["objects"]["products"].values()
                for r in [{"properties": r["p"]}]}
    assert products == {sku for sku, _, _ in data.products}


def test_incremental_read_with_nothing_changed_costs_one_request_per_type():
    c = in_process("hubspot", "demo")
    k = c.connector
    cursors = {t: k.read_records(t, None).cursor for t in ("company", "person")}
    deal_cursor = k.read_deals(None).cursor
    for _ in range(3):
        c.sandbox.advance(45)
        for t in ("company", "person"):
            before = k.api.request_count
            changes = k.read_records(t, cursors[t])
            assert k.api.request_count - before == changes.requests == 1
            assert changes.records == [] and changes.deleted_ids == [] and not changes.full
            cursors[t] = changes.cursor
        deals = k.read_deals(deal_cursor)
        assert deals.requests == 1 and deals.records == [] and deals.deleted_ids == []
        deal_cursor = deals.cursor


def test_edits_are_seen_incrementally_with_the_primary_company():
    c = in_process("hubspot", "demo")
    k = c.connector
    company_cursor = k.read_records("company", None).cursor
    person_cursor = k.read_records("person", None).cursor
    company = next(iter(c.sandbox.state["objects"]["companies"]))
    c.sandbox.edit("companies", company, city="Bath")
    c.sandbox.edit("companies", company, zip="BA1 1AA")  # twice, within the same second
    changes = k.read_records("company", company_cursor)
    assert [r.id for r in changes.records] == [company] and changes.records[0].properties["zip"] == "BA1 1AA"
    assert changes.records[0].properties["city"] == "Bath"
    again = k.read_records("company", changes.cursor)
    assert again.records == [] and again.requests == 1  # the overlap re-reads it; the cursor drops it
    person = c.sandbox.add_contacts(1)[0]
    c.sandbox.associate("contacts", person, "companies", company, [1])
    people = k.read_records("person", person_cursor)
    assert [r.id for r in people.records] == [person] and people.records[0].company_id == company
    assert people.requests == 2  # the search, then the v4 association read
    other = list(c.sandbox.state["objects"]["companies"])[5]
    c.sandbox.associate("companies", other, "contacts", person, [2])  # a new primary, from the company side
    moved = k.read_records("person", people.cursor)
    assert [r.company_id for r in moved.records] == [other]


def test_archived_and_merged_records_are_reported_as_deleted():
    c = in_process("hubspot", "demo")
    k = c.connector
    cursor = k.read_records("company", None).cursor
    ids = list(c.sandbox.state["objects"]["companies"])
    c.sandbox.archive("companies", ids[3])
    new = c.sandbox.create("companies", name="Brand New Ltd")  # a create hides nothing
    changes = k.read_records("company", cursor)
    assert changes.deleted_ids == [ids[3]] and [r.id for r in changes.records] == [new]
    assert changes.requests == 1 + 1  # the search, then one page of archived records
    quiet = k.read_records("company", changes.cursor)
    assert quiet.requests == 1 and quiet.deleted_ids == []
    with _raw(c, _token(c)) as http:
        resp = http.get(f"/crm/v3/objects/companies/{ids[3]}", params={"archived": "true"})
        assert resp.json()["archived"] is True and resp.json()["archivedAt"]
        assert http.get(f"/crm/v3/objects/companies/{ids[3]}").status_code == 404
    c.sandbox.merge("companies", ids[10], ids[11])
    merged = k.read_records("company", quiet.cursor)
    assert ids[11] in merged.deleted_ids and [r.id for r in merged.records] == [ids[10]]
    assert ids[11] in merged.records[0].properties["hs_merged_object_ids"].split(";")


def test_search_index_lag_is_covered_by_the_overlap():
    c = in_process("hubspot", "demo")
    k = c.connector
    cursor = k.read_records("company", None).cursor
    c.sandbox.search_lag = 5.0
    company = list(c.sandbox.state["objects"]["companies"])[7]
    c.sandbox.edit("companies", company, name="Renamed While Indexing")
    first = k.read_records("company", cursor)
    assert first.records == []  # not in the index yet
    c.sandbox.advance(6)
    second = k.read_records("company", first.cursor)
    assert [r.properties["name"] for r in second.records] == ["Renamed While Indexing"]


def _searches(c, hs_type: str = "companies") -> int:
    return _count(c.sandbox, "POST", rf"/crm/v3/objects/{hs_type}/search", 200)


def _companies_read(count: int):
    """``count`` companies, read in full; five minutes later on the sandbox's (frozen) clock."""
    c = in_process("hubspot", "empty", clock=lambda: 1_800_000_000.0)
    ids = c.sandbox.add_companies(count)
    cursor = c.connector.read_records("company", None).cursor
    c.sandbox.advance(300)
    return c, ids, c.connector, cursor


def test_a_bulk_edit_is_read_once_and_idle_reads_stay_one_search_each():
    """10,000 companies edited within 30 s used to be searched again on every idle cycle (53 searches each)."""
    c, ids, k, cursor = _companies_read(2500)
    for n, rid in enumerate(ids):  # a bulk edit: 2,500 companies within 25 s
        c.sandbox.edit("companies", rid, city="Leeds")
        if n % 100 == 99:
            c.sandbox.advance(1)
    c.sandbox.advance(40)
    before = _searches(c)
    edited = k.read_records("company", cursor)
    assert sorted(r.id for r in edited.records) == sorted(ids)
    assert {r.properties["city"] for r in edited.records} == {"Leeds"}
    assert _searches(c) - before <= 2500 // 199 + 2  # newest first, 200 a page, each page once
    cursor = edited.cursor
    for _ in range(3):  # idle cycles: one search each, counted at the sandbox
        c.sandbox.advance(120)
        before = _searches(c)
        idle = k.read_records("company", cursor)
        assert idle.records == [] and idle.deleted_ids == [] and _searches(c) - before == 1
        cursor = idle.cursor


def test_a_bulk_edit_read_while_it_is_recent_is_searched_again_once_and_never_given_twice():
    c, ids, k, cursor = _companies_read(1000)
    for rid in ids:
        c.sandbox.edit("companies", rid, city="York")
    during = k.read_records("company", cursor)  # within the index's lag: it may not hold everything yet
    assert len(during.records) == 1000
    c.sandbox.advance(120)
    again = k.read_records("company", during.cursor)
    assert again.records == []  # searched again (the lag), never handed to the sync twice
    c.sandbox.advance(120)
    before = _searches(c)
    idle = k.read_records("company", again.cursor)
    assert idle.records == [] and _searches(c) - before == 1


def test_a_bulk_import_sharing_one_modification_time_is_read_by_time_and_id():
    c, ids, k, cursor = _companies_read(600)
    stamp = int(c.sandbox.now() * 1000)
    for rid in ids[:450]:  # an import stamps all of them with one time
        c.sandbox.state["objects"]["companies"][rid]["u"] = stamp
    before = _searches(c)
    changes = k.read_records("company", cursor)
    assert sorted(r.id for r in changes.records) == sorted(ids[:450])
    # the first page, then that time by ID in three pages, then the window below it
    assert _searches(c) - before == 1 + 3 + 1


def test_a_company_added_in_hubspot_while_a_run_reads_is_picked_up_by_the_next_run(tmp_path):
    """HubSpot's search trails writes by seconds: what is added mid-run is missed once, never lost."""
    store = Store(f"sqlite:///{tmp_path}/w.db")
    with store.session() as s:
        ws = Workspace(name="t", crm_provider="hubspot", accounting_provider="quickbooks", settings={})
        s.add(ws)
        s.flush()
        ws_id = ws.id
    crm = in_process("hubspot", "demo", search_lag=sandbox_module.SERVED_SEARCH_LAG)
    ledger = in_process("quickbooks", "demo")

    def run():
        return SyncEngine(store, ws_id, crm.connector, ledger.connector).run()

    def customer_named(name):
        return [c for c in ledger.connector.read_customers(None).records if c.party.name == name]

    assert run().status == "ok"
    crm.sandbox.advance(60)
    added: list[str] = []

    def add_while_reading(req, _resp):  # a colleague saves a company as the run reads companies
        if not added and req.path == "/crm/v3/objects/companies/search":
            added.append(crm.sandbox.create("companies", name="Harbourside Ceramics Ltd", city="Bristol",
                                            country="United Kingdom"))

    crm.sandbox.exchange_hooks.append(add_while_reading)
    during = run()
    crm.sandbox.exchange_hooks.remove(add_while_reading)
    assert added and during.status == "ok" and during.counts["created"] == 0
    assert customer_named("Harbourside Ceramics Ltd") == []  # not in HubSpot's search index yet
    crm.sandbox.advance(sandbox_module.SERVED_SEARCH_LAG)  # the index catches up (the sandbox's clock)
    after = run()
    assert after.status == "ok" and after.counts["created"] == 1
    [customer] = customer_named("Harbourside Ceramics Ltd")
    with store.session() as s:
        link = s.query(Link).filter_by(workspace_id=ws_id, crm_id=added[0]).one()
    assert link.acct_id == customer.id
    assert run().counts["writes"] == 0


def test_the_served_sandbox_trails_search_by_default(tmp_path):
    """The demo's HubSpot (and `sandbox serve`) answers search from an index a few seconds behind."""
    server = sandboxes.ensure("hubspot", str(tmp_path / "hs.json"), seed="empty")
    try:
        box = server.app
        assert box.search_lag == sandbox_module.SERVED_SEARCH_LAG == 3.0
        frozen = box.now()
        box._clock = lambda: frozen  # only advance() moves it, not a busy machine's slow requests
        token = box.grant_tokens()["access_token"]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
            made = http.post("/crm/v3/objects/companies", json={"properties": {"name": "Lagging Lanterns Ltd"}})
            assert made.status_code == 201
            query = {"filterGroups": [{"filters": [{"propertyName": "name", "operator": "EQ",
                                                    "value": "Lagging Lanterns Ltd"}]}]}
            assert http.post("/crm/v3/objects/companies/search", json=query).json()["total"] == 0
            assert http.get(f"/crm/v3/objects/companies/{made.json()['id']}").status_code == 200  # reads see it
            box.advance(2.9)
            assert http.post("/crm/v3/objects/companies/search", json=query).json()["total"] == 0
            box.advance(0.2)
            found = http.post("/crm/v3/objects/companies/search", json=query).json()
            assert [r["id"] for r in found["results"]] == [made.json()["id"]]
    finally:
        sandboxes.stop_all()


def _serve_cli(*flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app", "sandbox", "serve", *flags, "--port", "0", "--seed",
                             "empty"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(("flags", "found_at_once"), [((), False), (("--search-lag", "0"), True)])
def test_sandbox_serve_search_lag_flag(flags, found_at_once):
    proc = _serve_cli("hubspot", *flags)
    try:
        url = proc.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
        conn = Connection(id="served", provider="hubspot", base_url=url, auth_url=url)
        tokens = MemoryTokenStore()
        connect(conn, tokens, client_secret="sandbox-secret", timeout=20)
        headers = {"Authorization": f"Bearer {tokens.load(conn.id).access_token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
            assert http.post("/crm/v3/objects/companies", json={"properties": {"name": "Flagged Ltd"}}).is_success
            query = {"filterGroups": [{"filters": [{"propertyName": "name", "operator": "EQ",
                                                    "value": "Flagged Ltd"}]}]}
            assert http.post("/crm/v3/objects/companies/search", json=query).json()["total"] == int(found_at_once)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_search_lag_is_refused_for_other_providers():
    proc = _serve_cli("pipedrive", "--search-lag", "2")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "HubSpot sandbox only" in err and out == ""


def test_many_changes_page_by_keyset_and_never_hit_the_10000_cap(monkeypatch):
    monkeypatch.setattr(search_module, "SEARCH_CAP", 300)  # a small cap proves the window never needs it
    c = in_process("hubspot")
    ids = c.sandbox.add_companies(40)
    cursor = c.connector.read_records("company", None).cursor
    c.sandbox.advance(60)
    ids += c.sandbox.add_companies(650)
    for rid in ids[:40]:
        c.sandbox.edit("companies", rid, city="Leeds")
    changes = c.connector.read_records("company", cursor)
    assert sorted(r.id for r in changes.records) == sorted(ids)
    searches = _count(c.sandbox, "POST", r"/crm/v3/objects/companies/search")
    assert _count(c.sandbox, "POST", r"/crm/v3/objects/companies/search", 400) == 0
    assert searches == 1 + 4  # the full read's snapshot; then 690 changes: 200 + 3 windows of 199 new
    c.sandbox.advance(1)  # search allows 5 a second; the connector paced itself, this raw client does not
    with _raw(c, _token(c)) as http:
        resp = http.post("/crm/v3/objects/companies/search", json={"after": "300", "limit": 10})
        assert resp.status_code == 400 and resp.json()["category"] == "VALIDATION_ERROR"
        resp = http.post("/crm/v3/objects/companies/search", json={"limit": 201})
        assert resp.status_code == 400


def test_server_errors_on_reads_are_retried():
    c = in_process("hubspot", "demo")
    k = c.connector
    cursor = k.read_records("company", None).cursor
    c.sandbox.faults.append(Fault("500", nth=1, match="POST /crm/v3/objects/companies/search"))
    c.sandbox.faults.append(Fault("500", nth=1, match="GET /crm/v3/objects/contacts"))
    changes = k.read_records("company", cursor)
    assert changes.requests == 2 and changes.records == []
    assert len(k.read_records("person", None).records) == 110


def test_get_records_batches_and_follows_merges():
    c = in_process("hubspot", "demo")
    ids = list(c.sandbox.state["objects"]["contacts"])
    before = c.connector.api.request_count
    records = c.connector.get_records("person", [*ids, "999999"])
    assert [r.id for r in records] == ids
    assert c.connector.api.request_count - before == 1 + 2 + 1  # properties, 2 batch reads, associations
    with_company = [r for r in records if r.company_id]
    assert with_company and all(r.properties.get("associatedcompanyid") == r.company_id for r in with_company)


# -- writes --------------------------------------------------------------------------------------

def test_batch_updates_go_100_at_a_time_in_input_order():
    c = in_process("hubspot", "demo")
    ids = list(c.sandbox.state["objects"]["companies"])[:150]
    writes = [RecordWrite(f"k{n}", "company", rid, {"city": f"City {n}", "numberofemployees": Decimal("12.0")})
              for n, rid in enumerate(ids)]
    before = _count(c.sandbox, "POST", r"/crm/v3/objects/companies/batch/update")
    results = c.connector.update_records(writes)
    assert _count(c.sandbox, "POST", r"/crm/v3/objects/companies/batch/update") - before == 2
    assert [r.key for r in results] == [w.key for w in writes] and all(r.ok for r in results)
    assert [r.id for r in results] == ids
    assert c.sandbox.values("companies", ids[149])["city"] == "City 149"
    assert c.sandbox.values("companies", ids[0])["numberofemployees"] == "12"
    assert results[0].record.properties["city"] == "City 0"


def test_batch_creates_and_a_duplicate_email_is_a_typed_conflict():
    c = in_process("hubspot", "demo")
    existing = next(r for r in c.sandbox.state["objects"]["contacts"].values() if "@" in r["p"].get("email", "")
                    and " " not in r["p"]["email"])
    writes = [RecordWrite(f"new{n}", "person", None, {"firstname": f"New{n}", "lastname": "Person",
                                                      "email": f"new{n}@example.org"}) for n in range(130)]
    writes.insert(57, RecordWrite("dup", "person", None, {"firstname": "Dup",
                                                          "email": existing["p"]["email"].upper()}))
    results = c.connector.update_records(writes)
    dup = results[57]
    assert isinstance(dup.error, Conflict) and dup.error.existing_id == existing["id"]
    assert dup.error.status == 409
    good = [r for r in results if r.key != "dup"]
    assert all(r.ok and r.id for r in good) and len({r.id for r in good}) == 130
    for write, result in zip(writes, results, strict=True):
        if result.ok:
            assert c.sandbox.values("contacts", result.id)["email"] == write.properties["email"]
    calls = _count(c.sandbox, "POST", r"/crm/v3/objects/contacts/batch/create")
    assert calls <= 2 + 2 * 7  # two chunks, the failing one split down to the duplicate
    with _raw(c, _token(c)) as http:
        resp = http.post("/crm/v3/objects/contacts", json={"properties": {"email": existing["p"]["email"]}})
    assert resp.status_code == 409
    assert resp.json()["message"] == f"Contact already exists. Existing ID: {existing['id']}"


def test_per_record_errors_come_back_typed_without_failing_the_rest():
    c = in_process("hubspot", "demo")
    ids = list(c.sandbox.state["objects"]["contacts"])[:4]
    results = c.connector.update_records([
        RecordWrite("a", "person", ids[0], {"city": "Austin"}),
        RecordWrite("b", "person", ids[1], {"vat_numbr": "x"}),
        RecordWrite("c", "person", "424242", {"city": "Nowhere"}),
        RecordWrite("d", "person", ids[2], {"email": "not an email"}),
        RecordWrite("e", "person", ids[3], {"createdate": "2026-01-01"}),
        RecordWrite("f", "company", None, {"name": "Fresh Co", "numberofemployees": "many"}),
    ])
    assert results[0].ok and c.sandbox.values("contacts", ids[0])["city"] == "Austin"
    assert isinstance(results[1].error, ValidationRejected) and results[1].error.field == "vat_numbr"
    assert "PROPERTY_DOESNT_EXIST" in results[1].error.message
    assert isinstance(results[2].error, NotFound)
    assert isinstance(results[3].error, ValidationRejected) and results[3].error.field == "email"
    assert isinstance(results[4].error, ValidationRejected) and results[4].error.field == "createdate"
    assert isinstance(results[5].error, ValidationRejected) and results[5].error.field == "numberofemployees"


def test_rate_limited_writes_are_retried():
    c = in_process("hubspot", "demo")
    c.sandbox.faults.append(Fault("429", nth=1, match="POST .*"))
    rid = next(iter(c.sandbox.state["objects"]["companies"]))
    results = c.connector.update_records([RecordWrite("k", "company", rid, {"city": "Hull"})])
    assert results[0].ok and c.sandbox.values("companies", rid)["city"] == "Hull"
    assert _count(c.sandbox, "POST", r"/crm/v3/objects/companies/batch/update", 429) == 1


def test_hubspot_429_without_retry_after_waits_for_the_ten_second_window(monkeypatch):
    frozen = dt.datetime.now(dt.UTC).timestamp()
    c = in_process("hubspot", "demo", clock=lambda: frozen)  # only advance() moves it, not a busy machine
    c.sandbox.advance(11)  # past the window the connect's own calls used
    with _raw(c, _token(c)) as http:
        statuses = [http.get("/crm/v3/objects/products").status_code for _ in range(111)]
        assert statuses.count(200) == 110 and statuses[-1] == 429
        body = http.get("/crm/v3/objects/products").json()
        assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        for _ in range(6):  # search is exempt from the 10-second window but allows 5 a second
            resp = http.post("/crm/v3/objects/products/search", json={})
        assert resp.status_code == 429 and resp.json()["policyName"] == "SECONDLY"
    c.sandbox.advance(11)
    # paced on the sandbox's own clock: on the computer's, a slow machine's real seconds would count as
    # passing for our limiter and not for HubSpot's frozen window, and it would be refused
    pacing = hs.Connector(c.conn, c.tokens, transport=InProcessTransport(c.sandbox), sleep=c.sandbox.advance,
                          clock=c.sandbox.now)
    rid = next(iter(c.sandbox.state["objects"]["contacts"]))
    for _ in range(300):  # our limiter keeps under 110 per 10 s, so HubSpot never has to refuse
        pacing.get_records("person", [rid])
    assert _count(c.sandbox, "POST", r"/crm/v3/objects/contacts/batch/read", 429) == 0
    greedy = hs.Connector(c.conn, c.tokens, transport=InProcessTransport(c.sandbox), sleep=c.sandbox.advance)
    greedy.api.limiter.requests = 10_000  # as if another program shared the account's budget
    start = c.sandbox.now()
    for _ in range(150):
        greedy.get_records("person", [rid])
    assert _count(c.sandbox, "POST", r"/crm/v3/objects/contacts/batch/read", 429) >= 1
    assert c.sandbox.now() - start >= 10  # waited for the window to roll instead of failing


def test_a_create_whose_answer_is_lost_is_not_resent():
    c = in_process("hubspot", "demo")
    fault = Fault("reset_after_commit", nth=1, match="POST /crm/v3/objects/companies/batch/create")
    c.sandbox.faults.append(fault)
    results = c.connector.update_records([RecordWrite("k", "company", None, {"name": "Lost Answer Ltd"})])
    assert isinstance(results[0].error, TransportError)
    assert fault.seen == 1  # sent once: a batch create has no idempotency key, so it is never resent
    assert len(c.sandbox.find("companies", "name", "Lost Answer Ltd")) == 1  # committed once


# -- deals ---------------------------------------------------------------------------------------

def _deal_by_name(deals, name):
    return next(d for d in deals if d.name == name)


def test_deals_carry_line_items_money_as_decimal_and_won_from_stage_metadata():
    c = in_process("hubspot", "demo")
    deals = c.connector.read_deals(None).records
    data = demo_data()
    for demo in data.deals:
        deal = next(d for d in deals if d.name == demo.name and d.amount == demo.amount)
        assert deal.won == (demo.stage == "won") and deal.currency == demo.currency
        assert deal.close_date == dt.date.fromisoformat(demo.close_date)
        assert isinstance(deal.amount, Decimal) and deal.company_id
        lines = sorted(deal.line_items, key=lambda x: x.sku)
        wanted = sorted(demo.lines, key=lambda x: x.sku)
        assert [(x.sku, x.quantity, x.unit_price, x.discount_percent) for x in lines] == \
            [(x.sku, x.quantity, x.unit_price, x.discount_percent) for x in wanted]
        assert all(isinstance(x.unit_price, Decimal) for x in lines)


def test_won_ignores_stage_labels():
    c = in_process("hubspot", "demo")
    k = c.connector
    first = k.read_deals(None)
    won_before = {d.id for d in first.records if d.won}
    c.sandbox.rename_stage("closedwon", "Signed and sealed")
    c.sandbox.rename_stage("contractsent", "Closed Won")  # a misleading label; metadata says 0.9, open
    deals = k.read_deals(None).records
    assert {d.id for d in deals if d.won} == won_before
    assert not any(d.won for d in deals if d.properties["dealstage"] == "contractsent")
    renewals = next(p for p in c.sandbox.state["pipelines"]["deals"] if p["label"] == "Renewals")
    won_stage = next(s for s in renewals["stages"] if s["metadata"]["probability"] == "1.0")
    deal = next(d for d in deals if d.properties["pipeline"] == renewals["id"] and not d.won)
    c.sandbox.edit("deals", deal.id, dealstage=won_stage["id"])
    changed = k.read_deals(first.cursor)
    assert [(d.id, d.won) for d in changed.records] == [(deal.id, True)]


def test_a_line_item_change_reaches_the_deal_feed():
    c = in_process("hubspot", "demo")
    k = c.connector
    cursor = k.read_deals(None).cursor
    deal_id = next(iter(c.sandbox.state["objects"]["deals"]))
    line_id = c.sandbox._linked("deals", deal_id, "line_items")[0]
    c.sandbox.edit("line_items", line_id, quantity="7")
    changes = k.read_deals(cursor)
    assert [d.id for d in changes.records] == [deal_id]
    line = next(x for x in changes.records[0].line_items if x.id == line_id)
    assert line.quantity == Decimal(7)
    assert changes.records[0].amount == sum(
        (Decimal(c.sandbox.values("line_items", i)["amount"]) for i in c.sandbox._linked("deals", deal_id,
                                                                                         "line_items")), Decimal(0))


def test_ensure_deal_fields_creates_missing_properties_once_and_update_deals_writes_them():
    c = in_process("hubspot", "demo")
    k = c.connector
    fields = (FieldInfo("crossledger_invoice_status", "Invoice status"),
              FieldInfo("crossledger_amount_paid", "Amount paid", "number"),
              FieldInfo("crossledger_last_payment", "Last payment date", "date"))
    c.sandbox.add_property("deals", "crossledger_invoice_status", "Invoice status")
    mapping = k.ensure_deal_fields(fields)
    assert mapping == {f.name: f.name for f in fields}
    assert _count(c.sandbox, "POST", r"/crm/v3/properties/deals/batch/create") == 1
    defs = c.sandbox.state["properties"]["deals"]
    assert defs["crossledger_amount_paid"]["type"] == "number" and defs["crossledger_last_payment"]["type"] == "date"
    assert "hubspotDefined" not in defs["crossledger_amount_paid"]
    assert k.ensure_deal_fields(fields) == mapping
    assert _count(c.sandbox, "POST", r"/crm/v3/properties/deals/batch/create") == 1
    ids = list(c.sandbox.state["objects"]["deals"])[:3]
    results = k.update_deals([
        RecordWrite("a", "deal", ids[0], {"crossledger_amount_paid": Decimal("1500.50"),
                                          "crossledger_last_payment": dt.date(2026, 5, 1),
                                          "crossledger_invoice_status": "paid"}),
        RecordWrite("b", "deal", ids[1], {"crossledger_last_payment": "2026-05-01T13:00:00Z"}),
        RecordWrite("c", "deal", ids[2], {"crossledger_invoice_status": None}),
    ])
    assert results[0].ok and results[2].ok
    values = c.sandbox.values("deals", ids[0])
    assert values["crossledger_amount_paid"] == "1500.5" and values["crossledger_last_payment"] == "2026-05-01"
    assert isinstance(results[1].error, ValidationRejected) and "midnight" in results[1].error.message
    # One refused value fails a whole batch; it is split until the refused write stands alone.
    assert _count(c.sandbox, "POST", r"/crm/v3/objects/deals/batch/update") == 5
    with _raw(c, _token(c)) as http:
        resp = http.post("/crm/v3/properties/deals", json={"name": "crossledger_amount_paid", "label": "x",
                                                           "type": "number", "fieldType": "number",
                                                           "groupName": "dealinformation"})
    assert resp.status_code == 409


# -- metadata ------------------------------------------------------------------------------------

def test_fields_mapping_and_record_urls():
    c = in_process("hubspot", "demo")
    k = c.connector
    fields = {f.name: f for f in k.list_fields("company")}
    assert fields["tax_id"].custom and not fields["name"].custom and fields["numberofemployees"].type == "number"
    mapping = k.default_mapping()
    assert mapping["company"]["tax_id"] == "tax_id" and mapping["company"]["email"] == "billing_email"
    assert mapping["person"]["first_name"] == "firstname"
    record = next(r for r in k.read_records("company", None).records if r.properties.get("country") == "Germany")
    party = map_record(record, mapping)
    assert party.country == "DE" and party.tax_id == record.properties["tax_id"]
    assert k.record_url("company", "9800001") == "https://app.hubspot.com/contacts/48151623/record/0-2/9800001"
    assert k.record_url("person", "101").endswith("/record/0-1/101")
    assert k.company_name() == "crossledger-demo.com"


def test_associations_on_read_and_v4_endpoints():
    c = in_process("hubspot", "demo")
    contact = next(r for r in c.sandbox.state["objects"]["contacts"].values()
                   if c.sandbox._primary("contacts", r["id"], "companies"))
    company = c.sandbox._primary("contacts", contact["id"], "companies")
    with _raw(c, _token(c)) as http:
        one = http.get(f"/crm/v3/objects/contacts/{contact['id']}", params={"associations": "companies"}).json()
        assert {"id": company, "type": "contact_to_company"} in one["associations"]["companies"]["results"]
        v4 = http.get(f"/crm/v4/objects/contacts/{contact['id']}/associations/companies").json()
        assert v4["results"][0]["toObjectId"] == int(company)
        assert {t["typeId"] for t in v4["results"][0]["associationTypes"]} == {1, 279}
        other = c.sandbox.create("companies", name="Second Home")
        resp = http.put(f"/crm/v4/objects/contacts/{contact['id']}/associations/default/companies/{other}")
        assert resp.status_code == 200 and resp.json()["results"][0]["associationSpec"]["associationTypeId"] == 279
        dated = http.get(f"/crm/objects/2026-03/contacts/{contact['id']}", params={"properties": "email"})
        assert dated.status_code == 200 and dated.json()["properties"]["email"] == contact["p"]["email"]
    assert c.sandbox._primary("contacts", contact["id"], "companies") == company  # primary kept
