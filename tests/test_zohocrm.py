"""Zoho CRM: OAuth and data centres, COQL change feeds, deletions, batch writes, credits, deals."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import httpx
import pytest

from app.connectors import oauth
from app.connectors import zohocrm as zc
from app.connectors.base import Connection, FieldInfo, RecordWrite
from app.connectors.errors import (
    AuthExpired,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    TransportError,
    ValidationRejected,
)
from app.connectors.tokens import MemoryTokenStore
from app.sandbox.base import Fault, Request, Response
from app.sandbox.demo_data import demo_data
from app.sandbox.server import InProcessTransport
from app.sandbox.zohocrm import Coql, CoqlError, ZohoCrmSandbox
from app.sync.mapping import map_record
from tests.support import in_process, over_http


def _count(sandbox, method: str, pattern: str, status: int | None = None) -> int:
    return sum(1 for m, p, s in sandbox.request_log
               if m == method and re.fullmatch(pattern, p) and (status is None or s == status))


def _record(sandbox) -> list[tuple[Request, Response]]:
    seen: list[tuple[Request, Response]] = []
    sandbox.exchange_hooks.append(lambda req, resp: seen.append((req, resp)))
    return seen


def _queries(seen) -> list[str]:
    return [json.loads(r.body)["select_query"] for r, _ in seen if r.path == "/crm/v8/coql"]


def _raw(c) -> httpx.Client:
    return httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.url)


# -- OAuth and data centres -------------------------------------------------------------------------

def test_connect_over_http_takes_the_dc_urls_the_org_and_offline_tokens():
    with over_http("zohocrm", "demo") as c:
        assert c.conn.base_url == c.url  # api_domain from the token answer
        assert c.conn.auth_url == c.url  # accounts-server from the callback
        assert c.conn.extra["location"] == "us"
        assert c.conn.label == "Crossledger Demo GmbH" and c.conn.tenant_id == "60034123"
        assert c.conn.extra["daily_credits"] == 55_000 and c.conn.extra["currency"] == "EUR"
        assert c.connector.limits.batch_max == 100 and c.connector.limits.daily_cap == 55_000
        saved = c.tokens.load(c.conn.id)
        assert saved.refresh_token and saved.extra["api_domain"] == c.url
        assert 3500 < saved.expires_at - dt.datetime.now(dt.UTC).timestamp() <= 3600
        assert "ZohoCRM.coql.READ" in saved.extra["scope"].split()
        assert len(c.connector.read_records("company", None).records) == 162


def test_authorize_url_asks_for_offline_access_with_comma_separated_scopes_and_pkce():
    conn = Connection(id="x", provider="zohocrm", base_url="https://www.zohoapis.com")
    req = oauth.build_authorize(zc.oauth_config(conn, "secret"), "http://127.0.0.1:5000/callback")
    url = httpx.URL(req.url)
    assert str(url).startswith("https://accounts.zoho.com/oauth/v2/auth?")
    assert url.params["access_type"] == "offline" and url.params["prompt"] == "consent"
    assert "ZohoCRM.modules.deals.ALL,ZohoCRM.modules.products.READ" in url.params["scope"]
    assert url.params["code_challenge_method"] == "S256"


def test_finish_connect_keeps_a_real_zoho_dc_and_ignores_a_foreign_host():
    class Flow:
        token_body = {"api_domain": "https://www.zohoapis.eu"}
        callback = {"accounts-server": "https://accounts.zoho.eu", "location": "eu"}

    conn = Connection(id="x", provider="zohocrm", base_url="https://www.zohoapis.com",
                      auth_url="https://accounts.zoho.com")
    with pytest.raises(AuthExpired):  # no tokens saved: the org lookup stops, the URLs are already taken
        zc.finish_connect(conn, Flow(), MemoryTokenStore(), httpx.MockTransport(lambda r: httpx.Response(599)))
    assert (conn.base_url, conn.auth_url, conn.extra["location"]) == (
        "https://www.zohoapis.eu", "https://accounts.zoho.eu", "eu")
    Flow.token_body = {"api_domain": "https://evil.example.com"}
    Flow.callback = {"accounts-server": "http://accounts.zoho.eu.evil.example"}
    conn = Connection(id="y", provider="zohocrm", base_url="https://www.zohoapis.com",
                      auth_url="https://accounts.zoho.com")
    with pytest.raises(AuthExpired):
        zc.finish_connect(conn, Flow(), MemoryTokenStore(), httpx.MockTransport(lambda r: httpx.Response(599)))
    assert (conn.base_url, conn.auth_url) == ("https://www.zohoapis.com", "https://accounts.zoho.com")
    assert zc.Connector(Connection(id="z", provider="zohocrm", base_url="https://www.zohoapis.eu"),
                        MemoryTokenStore()).record_url("deal", "42") == "https://crm.zoho.eu/crm/tab/Potentials/42"


def test_expired_access_token_is_refreshed_and_the_refresh_token_does_not_rotate():
    with over_http("zohocrm", "demo") as c:
        seen = _record(c.sandbox)
        before = c.tokens.load(c.conn.id)
        c.sandbox.advance(3600)  # past the one-hour access token
        assert c.connector.company_name() == "Crossledger Demo GmbH"
        token_calls = [(r, s) for r, s in seen if r.path == "/oauth/v2/token"]
        assert len(token_calls) == 1
        assert "refresh_token" not in json.loads(token_calls[0][1].encode())
        after = c.tokens.load(c.conn.id)
        assert after.access_token != before.access_token
        assert after.refresh_token == before.refresh_token
        api = [r for r, _ in seen if r.path.startswith("/crm/")]
        assert all(r.header("authorization").startswith("Zoho-oauthtoken ") for r in api)
        assert c.connector.company_name()  # the same refresh token works again
        assert len([r for r, _ in seen if r.path == "/oauth/v2/token"]) == 1


def test_revoked_refresh_token_asks_to_reconnect():
    c = in_process("zohocrm", "demo")
    c.sandbox._revoke(c.tokens.load(c.conn.id).refresh_token)
    with pytest.raises(AuthExpired):
        c.connector.company_name()
    with _raw(c) as http:  # Zoho Accounts says so with HTTP 200
        resp = http.post("/oauth/v2/token", params={"grant_type": "refresh_token", "refresh_token": "nope",
                                                     "client_id": c.conn.client_id})
    assert resp.status_code == 200 and resp.json() == {"error": "invalid_code"}


def test_too_many_refreshes_are_a_rate_limit_not_a_dead_sign_in():
    c = in_process("zohocrm", "demo")
    for _ in range(10):
        c.connector.api.refresh()
    with pytest.raises(RateLimited) as info:
        c.connector.api.refresh()
    assert info.value.retry_after == 600


def test_api_errors_use_zohos_bodies_and_a_missing_scope_is_forbidden():
    c = in_process("zohocrm", "demo")
    with _raw(c) as http:
        resp = http.get("/crm/v8/Accounts", params={"fields": "Account_Name"})
        assert resp.status_code == 401 and resp.json()["code"] == "AUTHENTICATION_FAILURE"
        resp = http.get("/crm/v8/Accounts", params={"fields": "Account_Name"},
                        headers={"Authorization": "Bearer " + c.tokens.load(c.conn.id).access_token})
        assert resp.status_code == 401 and resp.json() == {"code": "INVALID_TOKEN", "details": {},
                                                           "message": "invalid oauth token", "status": "error"}
        resp = http.get("/crm/v8/Leeds", params={"fields": "x"},
                        headers={"Authorization": "Zoho-oauthtoken " + c.tokens.load(c.conn.id).access_token})
        assert resp.status_code == 400 and resp.json()["code"] == "INVALID_MODULE"
    narrow = c.sandbox.grant_tokens(c.conn.client_id, "ZohoCRM.modules.contacts.READ,ZohoCRM.org.READ")
    c.tokens.save(c.conn.id, oauth.tokens_from(narrow))
    with pytest.raises(Forbidden):
        c.connector.read_deals(None)


def test_sign_in_and_single_record_routes_answer_over_http():
    """What client libraries call while signing in and reading one record: the current user, the
    module list, and GET / DELETE of one record by id."""
    with over_http("zohocrm", "demo") as c:
        ours = {"Authorization": "Zoho-oauthtoken " + c.tokens.load(c.conn.id).access_token}
        for path in ("/crm/v8/users", "/crm/v8/settings/modules"):  # scopes Crossledger does not ask for
            refused = httpx.get(c.url + path, params={"type": "CurrentUser"} if "users" in path else {},
                                headers=ours, timeout=10)
            assert refused.status_code == 401 and refused.json()["code"] == "OAUTH_SCOPE_MISMATCH"
        headers = {"Authorization": "Zoho-oauthtoken " + c.sandbox.grant_tokens(c.conn.client_id)["access_token"]}
        with httpx.Client(base_url=c.url, headers=headers, timeout=10) as http:
            me = http.get("/crm/v8/users", params={"type": "CurrentUser"})
            assert me.status_code == 200
            [user] = me.json()["users"]
            assert user["email"] == "jane.admin@crossledger-demo.test" and user["full_name"] == "Jane Admin"
            assert user["profile"]["name"] == "Administrator" and user["status"] == "active"
            assert me.json()["info"] == {"per_page": 200, "count": 1, "page": 1, "more_records": False}
            assert http.get(f"/crm/v8/users/{user['id']}").json()["users"][0]["id"] == user["id"]
            assert http.get("/crm/v8/users", params={"type": "DeactiveUsers"}).status_code == 204
            bad = http.get("/crm/v8/users", params={"type": "Everyone"})
            assert bad.status_code == 400 and bad.json()["code"] == "INVALID_DATA"

            modules = http.get("/crm/v8/settings/modules")
            assert modules.status_code == 200
            by_name = {m["api_name"]: m for m in modules.json()["modules"]}
            assert {"Accounts", "Contacts", "Deals", "Products"} <= set(by_name)
            assert by_name["Accounts"]["singular_label"] == "Account" and by_name["Deals"]["api_supported"]
            assert by_name["Contacts"]["display_field"]["api_name"] == "Full_Name"

            full = c.connector.read_records("company", None)
            companies = full.records
            account = companies[0]
            one = http.get(f"/crm/v8/Accounts/{account.id}")
            assert one.status_code == 200
            [rec] = one.json()["data"]
            assert rec["id"] == account.id and rec["Account_Name"] == account.properties["Account_Name"]
            assert "Billing_City" in rec  # every field when none are asked for
            narrow = http.get(f"/crm/v8/Accounts/{account.id}", params={"fields": "Account_Name"}).json()
            assert set(narrow["data"][0]) == {"Account_Name", "id"}
            contact = next(iter(c.sandbox.state["records"]["Contacts"]))
            deal = next(iter(c.sandbox.state["records"]["Deals"]))
            assert http.get(f"/crm/v8/Contacts/{contact}").json()["data"][0]["id"] == contact
            assert http.get(f"/crm/v8/Deals/{deal}").json()["data"][0]["id"] == deal

            gone = companies[1].id
            deleted = http.delete(f"/crm/v8/Accounts/{gone}")
            assert deleted.status_code == 200
            assert deleted.json()["data"] == [{"code": "SUCCESS", "details": {"id": gone},
                                               "message": "record deleted", "status": "success"}]
            missing = http.get(f"/crm/v8/Accounts/{gone}")
            assert missing.status_code == 404 and missing.json()["code"] == "INVALID_DATA"
            again = http.delete(f"/crm/v8/Accounts/{gone}")
            assert again.status_code == 400 and again.json()["data"][0]["code"] == "INVALID_DATA"
            trash = http.get("/crm/v8/Accounts/deleted").json()["data"]
            assert [d["id"] for d in trash] == [gone]
        c.sandbox.advance(zc.DELETED_EVERY)  # the connector looks at the recycle bin every few minutes
        changes = c.connector.read_records("company", full.cursor)
        assert changes.deleted_ids == [gone] and changes.records == []  # the next run hears of the deletion


# -- reading ----------------------------------------------------------------------------------------

def test_full_read_pages_coql_2000_rows_at_a_time_by_id():
    c = in_process("zohocrm", "empty")
    c.sandbox.add_contacts(4100)
    seen = _record(c.sandbox)
    changes = c.connector.read_records("person", None)
    assert changes.full and len({r.id for r in changes.records}) == 4100
    queries = _queries(seen)
    assert len(queries) == 3 and changes.requests == 4  # field metadata + three COQL pages
    assert all(q.endswith("order by id asc limit 2000") for q in queries)
    assert "where id is not null" in queries[0] and re.search(r"where id > \d{19} order", queries[1])


def test_list_api_pages_with_page_up_to_2000_then_page_token():
    c = in_process("zohocrm", "empty")
    c.sandbox.add_contacts(2500)
    api = c.connector.api
    ids: list[str] = []
    page = api.request("GET", "/crm/v8/Contacts", params={"fields": "Last_Name", "per_page": 200, "page": 10})
    assert page.status_code == 200 and page.json()["info"]["more_records"] is True
    refused = api.request("GET", "/crm/v8/Contacts", params={"fields": "Last_Name", "per_page": 200, "page": 11})
    assert refused.status_code == 400 and refused.json()["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
    params = {"fields": "Last_Name", "per_page": 200, "sort_order": "asc"}
    while True:
        body = api.request("GET", "/crm/v8/Contacts", params=params).json()
        ids += [r["id"] for r in body["data"]]
        assert set(body["data"][0]) == {"Last_Name", "id"}  # only the asked fields, and the id
        if not body["info"]["more_records"]:
            break
        params = {"fields": "Last_Name", "per_page": 200, "page_token": body["info"]["next_page_token"]}
    assert len(ids) == len(set(ids)) == 2500 and ids == sorted(ids)
    c.sandbox.advance(86401)  # page tokens live 24 hours
    stale = api.request("GET", "/crm/v8/Contacts", params=params)
    assert stale.status_code == 400
    missing = api.request("GET", "/crm/v8/Contacts", params={"per_page": 200})
    assert missing.status_code == 400 and missing.json()["code"] == "REQUIRED_PARAM_MISSING"


def test_if_modified_since_on_a_list_answers_304_or_only_the_changes():
    c = in_process("zohocrm", "demo")
    api = c.connector.api
    c.sandbox.advance(10)
    later = dt.datetime.fromtimestamp(c.sandbox.now() - 5, tz=dt.UTC).isoformat()
    resp = api.request("GET", "/crm/v8/Accounts", params={"fields": "Account_Name"},
                       headers={"If-Modified-Since": later})
    assert resp.status_code == 304 and resp.content == b""
    rid = next(iter(c.sandbox.state["records"]["Accounts"]))
    c.sandbox.edit("Accounts", rid, Phone="+49 30 555")
    resp = api.request("GET", "/crm/v8/Accounts", params={"fields": "Phone"}, headers={"If-Modified-Since": later})
    assert [r["id"] for r in resp.json()["data"]] == [rid]


def test_incremental_read_with_nothing_changed_costs_one_request_per_type():
    c = in_process("zohocrm", "demo")
    c.sandbox.advance(60)  # the demo was seeded a minute ago: outside the overlap, so COQL answers 204
    k = c.connector
    cursors = {t: k.read_records(t, None).cursor for t in ("company", "person")}
    deals = k.read_deals(None)
    fresh = zc.Connector(c.conn, c.tokens, transport=InProcessTransport(c.sandbox), sleep=c.sandbox.advance)
    for connector in (k, fresh):  # a new process has no cached metadata: the cursor carries the columns
        for otype, cursor in cursors.items():
            again = connector.read_records(otype, cursor)
            assert again.requests == 1 and again.records == [] and again.deleted_ids == []
        idle = connector.read_deals(deals.cursor)
        assert idle.requests == 1 and idle.records == []
    assert _count(c.sandbox, "POST", "/crm/v8/coql", 204) == 6


def test_an_edit_is_seen_once_and_a_deletion_after_the_recycle_bin_interval():
    c = in_process("zohocrm", "demo")
    k, sb = c.connector, c.sandbox
    first = k.read_records("company", None)
    target, gone = first.records[10], first.records[20]
    sb.advance(3)
    sb.edit("Accounts", target.id, Billing_City="Hamburg")
    sb.delete("Accounts", gone.id)
    changed = k.read_records("company", first.cursor)
    assert [r.id for r in changed.records] == [target.id] and changed.records[0].properties["Billing_City"] == \
        "Hamburg"
    assert changed.deleted_ids == [] and changed.requests == 1  # the recycle bin is asked every few minutes
    again = k.read_records("company", changed.cursor)
    assert again.records == []  # the overlap brings the edit back; the cursor knows it already
    sb.advance(zc.DELETED_EVERY)
    later = k.read_records("company", again.cursor)
    assert later.deleted_ids == [gone.id] and later.requests == 2
    assert _count(sb, "GET", "/crm/v8/Accounts/deleted", 200) == 1
    sb.advance(zc.DELETED_EVERY)
    quiet = k.read_records("company", later.cursor)
    assert quiet.deleted_ids == []  # not reported twice
    close = first.records[30].id  # deleted just before a look: inside the next look's overlap too
    sb.advance(zc.DELETED_EVERY - 2)
    sb.delete("Accounts", close)
    sb.advance(2)
    seen_once = k.read_records("company", quiet.cursor)
    assert seen_once.deleted_ids == [close]
    sb.advance(zc.DELETED_EVERY)
    assert k.read_records("company", seen_once.cursor).deleted_ids == []


def test_a_record_changed_during_a_full_read_is_not_missed():
    c = in_process("zohocrm", "empty")
    ids = c.sandbox.add_contacts(2500)
    state = {"done": False}

    def edit_after_first_page(req, resp):
        if req.path == "/crm/v8/coql" and not state["done"]:
            state["done"] = True
            c.sandbox.advance(1)
            c.sandbox.edit("Contacts", ids[5], Title="Changed mid-read")  # on the page already read
            c.sandbox.state["records"]["Contacts"].pop(ids[100])  # and one vanishes: no row is skipped
    c.sandbox.exchange_hooks.append(edit_after_first_page)
    full = c.connector.read_records("person", None)
    assert len(full.records) == 2500
    c.sandbox.advance(2)
    changed = c.connector.read_records("person", full.cursor)
    assert [r.id for r in changed.records] == [ids[5]]
    assert changed.records[0].properties["Title"] == "Changed mid-read"


def test_get_records_keeps_the_input_order_and_the_persons_company():
    c = in_process("zohocrm", "demo")
    people = c.connector.read_records("person", None).records
    linked = [p for p in people if p.company_id][:3]
    got = c.connector.get_records("person", [linked[2].id, "4876876000009999999", linked[0].id])
    assert [g.id for g in got] == [linked[2].id, linked[0].id]
    assert got[0].company_id == linked[2].company_id == got[0].properties["Account_Name"]


def test_server_errors_on_reads_are_retried():
    c = in_process("zohocrm", "demo")
    c.sandbox.faults.append(Fault("500", nth=1, match=r"POST /crm/v8/coql"))
    c.sandbox.faults.append(Fault("500", nth=1, match=r"GET /crm/v8/settings/fields"))
    assert len(c.connector.read_records("company", None).records) == 162
    assert all(f.fired == 1 for f in c.sandbox.faults)


def test_default_mapping_finds_the_custom_tax_and_email_fields():
    c = in_process("zohocrm", "demo")
    mapping = c.connector.default_mapping()
    assert mapping["company"]["tax_id"] == "Tax_ID" and mapping["company"]["email"] == "Billing_Email"
    fields = {f.name: f for f in c.connector.list_fields("company")}
    assert fields["Tax_ID"].custom and not fields["Account_Name"].custom and fields["Amount" if False else
                                                                                       "Exchange_Rate"].type == "number"
    record = next(r for r in c.connector.read_records("company", None).records
                  if r.properties["Billing_Country"] == "Germany" and r.properties["Tax_ID"])
    party = map_record(record, mapping)
    assert party.country == "DE" and party.tax_id == record.properties["Tax_ID"]
    person = next(r for r in c.connector.read_records("person", None).records if r.properties["First_Name"])
    assert map_record(person, mapping).name == f"{person.properties['First_Name']} {person.properties['Last_Name']}"


# -- writing ----------------------------------------------------------------------------------------

def test_creates_and_updates_go_out_100_a_request_in_input_order():
    c = in_process("zohocrm", "demo")
    people = c.connector.read_records("person", None).records
    writes = [RecordWrite(f"u{n}", "person", p.id, {"Title": f"Title {n}"}) for n, p in enumerate(people)]
    writes += [RecordWrite(f"c{n}", "company", None, {"Account_Name": f"New Company {n:03d}", "Currency": "USD"})
               for n in range(150)]
    results = c.connector.update_records(writes)
    assert [r.key for r in results] == [w.key for w in writes] and all(r.ok for r in results)
    assert _count(c.sandbox, "PUT", "/crm/v8/Contacts") == 2 and _count(c.sandbox, "POST", "/crm/v8/Accounts") == 2
    assert c.sandbox.state["records"]["Contacts"][people[7].id]["Title"] == "Title 7"
    created = c.sandbox.state["records"]["Accounts"][results[-1].id]
    assert created["Account_Name"] == "New Company 149" and created["Exchange_Rate"] == "1.08"


def test_per_record_errors_and_duplicates_are_typed():
    c = in_process("zohocrm", "demo")
    companies = c.connector.read_records("company", None).records
    existing = companies[3]
    results = c.connector.update_records([
        RecordWrite("ok", "company", companies[0].id, {"Phone": "+44 20 1234"}),
        RecordWrite("gone", "company", "4876876000009999999", {"Phone": "1"}),
        RecordWrite("bad-email", "company", companies[1].id, {"Billing_Email": "not an email"}),
        RecordWrite("dup", "company", None, {"Account_Name": existing.properties["Account_Name"].upper()}),
        RecordWrite("no-name", "company", None, {"Phone": "1"}),
        RecordWrite("unknown", "company", companies[2].id, {"Fax_Number": "1"}),
        RecordWrite("new", "company", None, {"Account_Name": "Fresh Start Ltd"}),
    ])
    by = {r.key: r for r in results}
    assert by["ok"].ok and by["new"].ok and by["new"].id
    assert isinstance(by["gone"].error, NotFound)
    assert isinstance(by["bad-email"].error, ValidationRejected) and by["bad-email"].error.field == "Billing_Email"
    assert isinstance(by["dup"].error, Conflict) and by["dup"].error.existing_id == existing.id
    assert by["dup"].error.code == "DUPLICATE_DATA"
    assert isinstance(by["no-name"].error, ValidationRejected) and by["no-name"].error.field == "Account_Name"
    assert isinstance(by["unknown"].error, ValidationRejected) and by["unknown"].error.field == "Fax_Number"
    assert _count(c.sandbox, "PUT", "/crm/v8/Accounts", 207) == 1 and _count(c.sandbox, "POST", "/crm/v8/Accounts",
                                                                             207) == 1


def test_a_rate_limited_write_is_retried_once_and_creates_one_record():
    c = in_process("zohocrm", "empty")
    c.sandbox.faults.append(Fault("429", nth=1, match="POST .*"))
    [res] = c.connector.update_records([RecordWrite("k", "company", None, {"Account_Name": "Only Once Ltd"})])
    assert res.ok and c.sandbox.faults[0].fired == 1
    assert _count(c.sandbox, "POST", "/crm/v8/Accounts") == 2
    assert [r["Account_Name"] for r in c.sandbox.state["records"]["Accounts"].values()] == ["Only Once Ltd"]


def test_a_create_whose_answer_was_lost_is_settled_without_a_duplicate():
    c = in_process("zohocrm", "empty")
    c.sandbox.faults.append(Fault("reset_after_commit", nth=1, match="POST /crm/v8/Accounts"))
    writes = [RecordWrite("a", "company", None, {"Account_Name": "Lost Answer Ltd"}),
              RecordWrite("b", "company", None, {"Account_Name": "Lost Answer Two Ltd"})]
    results = c.connector.update_records(writes)
    assert all(r.ok for r in results), [r.error for r in results]
    stored = {r["Account_Name"]: r["id"] for r in c.sandbox.state["records"]["Accounts"].values()}
    assert stored == {"Lost Answer Ltd": results[0].id, "Lost Answer Two Ltd": results[1].id}
    c.sandbox.faults.append(Fault("timeout", nth=1, match="POST /crm/v8/Contacts"))
    [res] = c.connector.update_records([RecordWrite("p", "person", None, {"Last_Name": "No Email"})])
    assert isinstance(res.error, TransportError)  # nothing unique to look it up by: said, not guessed


def test_spent_credits_are_a_daily_rate_limit_and_the_header_counts_down():
    c = in_process("zohocrm", "demo")
    seen = _record(c.sandbox)
    limit = c.sandbox.credit_limit
    c.connector.list_fields("company")  # the field metadata is read (1 credit) before the count starts
    c.sandbox.set_credits_used(limit // 2)
    c.connector.update_records([RecordWrite(f"c{n}", "company", None, {"Account_Name": f"Credit Test {n}"})
                                for n in range(25)])  # 25 records: 3 credits
    assert seen[-1][1].headers["X-API-CREDITS-REMAINING"] == str(limit - limit // 2 - 3)
    c.sandbox.set_credits_used(limit)
    with pytest.raises(RateLimited) as info:
        c.connector.read_records("company", None)
    assert info.value.daily and info.value.code == "TOO_MANY_REQUESTS"
    body = json.loads(seen[-1][1].encode())
    assert seen[-1][1].status == 429 and body["code"] == "TOO_MANY_REQUESTS"
    assert "Retry-After" not in seen[-1][1].headers
    c.sandbox.advance(86400)  # the rolling day has passed
    assert len(c.connector.read_records("company", None).records) == 187


# -- deals --------------------------------------------------------------------------------------------

def test_deals_are_won_by_forecast_type_with_line_items_and_currency():
    c = in_process("zohocrm", "demo")
    demo = {d.name + d.close_date: d for d in demo_data().deals}
    deals = c.connector.read_deals(None)
    assert len(deals.records) == 60
    renewed = 0
    for deal in deals.records:
        source = demo[deal.name + deal.close_date.isoformat()]
        assert deal.won == (source.stage == "won")
        renewed += deal.properties["Stage"] == "Renewed"
        assert deal.currency == source.currency and deal.amount == source.amount
        assert [(li.sku, li.quantity, li.unit_price, li.discount_percent) for li in deal.line_items] == [
            (line.sku, line.quantity, line.unit_price, line.discount_percent) for line in source.lines]
        assert deal.company_id and all(li.product_name and li.id for li in deal.line_items)
    assert renewed > 0  # won in the Renewals pipeline under a stage not called "Closed Won"
    assert all(isinstance(li.unit_price, Decimal) for d in deals.records for li in d.line_items)


def test_a_renamed_won_stage_still_counts_as_won():
    c = in_process("zohocrm", "demo")
    c.sandbox.advance(60)
    k, api = c.connector, c.connector.api
    deals = k.read_deals(None)
    won = [d for d in deals.records if d.properties["Stage"] == "Closed Won"]
    layout = api.request("GET", "/crm/v8/settings/layouts", params={"module": "Deals"}).json()["layouts"][0]["id"]
    pipe = api.request("GET", "/crm/v8/settings/pipeline", params={"layout_id": layout}).json()["pipeline"][0]
    stage = next(m for m in pipe["maps"] if m["actual_value"] == "Closed Won")
    resp = api.request("PUT", f"/crm/v8/settings/pipeline/{pipe['id']}", params={"layout_id": layout},
                       json_body={"pipeline": [{"maps": [{"id": stage["id"], "display_value": "Contract signed"}]}]})
    assert resp.json()["pipeline"][0]["status"] == "success"
    c.sandbox.advance(2)
    c.sandbox.edit("Deals", won[0].id, Description="Signed on paper")
    changed = k.read_deals(deals.cursor)  # the cached stage list does not know the new name: read again
    assert [d.id for d in changed.records] == [won[0].id]
    assert changed.records[0].properties["Stage"] == "Contract signed" and changed.records[0].won
    assert all(d.won for d in zc.Connector(c.conn, c.tokens, transport=InProcessTransport(c.sandbox))
               .read_deals(None).records if d.properties["Stage"] == "Contract signed")


def test_ensure_deal_fields_creates_them_once_and_update_deals_writes_exact_values():
    c = in_process("zohocrm", "demo")
    k = c.connector
    wanted = [FieldInfo("crossledger_invoice_status", "Invoice status"),
              FieldInfo("crossledger_amount_paid", "Amount paid", "number"),
              FieldInfo("crossledger_last_payment", "Last payment date", "date")]
    names = k.ensure_deal_fields(wanted)
    assert names == {"crossledger_invoice_status": "Invoice_status", "crossledger_amount_paid": "Amount_paid",
                     "crossledger_last_payment": "Last_payment_date"}
    assert k.ensure_deal_fields(wanted) == names
    assert _count(c.sandbox, "POST", "/crm/v8/settings/fields") == 1
    fields = {f.name: f for f in k.list_fields("deal")}
    assert fields["Amount_paid"].custom and fields["Amount_paid"].type == "number"
    deal = next(d for d in k.read_deals(None).records if d.won)
    seen = _record(c.sandbox)
    results = k.update_deals([RecordWrite("d", "deal", deal.id, {"Invoice_status": "Paid", "Amount_paid": "120.505",
                                                                 "Last_payment_date": "2026-03-01"})])
    assert results[0].ok
    body = json.loads(seen[-1][0].body, parse_float=Decimal)
    assert body["trigger"] == [] and body["data"][0]["Amount_paid"] == Decimal("120.505")
    stored = c.sandbox.state["records"]["Deals"][deal.id]
    assert (stored["Invoice_status"], stored["Amount_paid"], stored["Last_payment_date"]) == (
        "Paid", "120.51", "2026-03-01")  # Zoho rounds to the field's two decimals
    cleared = k.update_deals([RecordWrite("d2", "deal", deal.id, {"Amount_paid": ""}),
                              RecordWrite("d3", "deal", deal.id, {"Amount_paid": "lots"})])
    assert cleared[0].ok and c.sandbox.state["records"]["Deals"][deal.id]["Amount_paid"] is None
    assert isinstance(cleared[1].error, ValidationRejected) and cleared[1].error.field == "Amount_paid"


# -- the sandbox's own rules ----------------------------------------------------------------------------

def test_coql_parser_follows_zohos_grammar():
    q = Coql("select Last_Name, Account_Name.Account_Name from Contacts where (Last_Name like 'Sm%' and "
             "Email is not null) or Mailing_City in ('Berlin', 'O\\'Brien''s') order by Last_Name desc, id "
             "limit 10, 5").parse()
    assert q["where"][2][2] == ["Berlin", "O'Brien's"]
    assert q["module"] == "Contacts" and q["offset"] == 10 and q["limit"] == 5
    assert q["where"][0] == "or" and q["where"][1][0] == "and" and q["order"] == [("Last_Name", True), ("id", False)]
    with pytest.raises(CoqlError) as info:  # three conditions need parentheses
        Coql("select id from Contacts where id > 1 and id < 5 and id != 3").parse()
    assert info.value.code == "SYNTAX_ERROR"
    with pytest.raises(CoqlError) as info:
        Coql("select id from Contacts").parse()
    assert info.value.details == {"clause": "where"}
    c = in_process("zohocrm", "demo")
    api = c.connector.api

    def coql(text):
        return api.request("POST", "/crm/v8/coql", json_body={"select_query": text})

    rows = coql("select Deal_Name, Amount, Account_Name.Account_Name from Deals where Amount between 1000 and "
                "2000 order by Amount desc limit 50").json()["data"]
    amounts = [r["Amount"] for r in rows]
    assert amounts == sorted(amounts, reverse=True) and all(1000 <= a <= 2000 for a in amounts)
    assert all(r["Account_Name.Account_Name"] for r in rows)
    assert coql("select id from Deals where Stage = 'Closed Won' limit 2001").json()["code"] == "LIMIT_EXCEEDED"
    bad = coql("select Nope from Deals where id is not null").json()
    assert bad["code"] == "INVALID_QUERY" and bad["details"]["column_name"] == "Nope"
    assert coql("select Line_Items from Deals where id is not null").json()["message"] == "data type not supported"
    assert coql("select id from Deals where Modified_Time > '2100-01-01T00:00:00+00:00'").status_code == 204


def test_search_by_email_and_criteria_and_upsert_by_email():
    c = in_process("zohocrm", "demo")
    api = c.connector.api
    person = next(p for p in demo_data().people if p.email and "@" in p.email and " " not in p.email)
    found = api.request("GET", "/crm/v8/Contacts/search", params={"email": person.email.upper()}).json()["data"]
    assert person.email in {r["Email"] for r in found}
    hits = api.request("GET", "/crm/v8/Accounts/search", params={
        "criteria": "((Billing_Country:equals:Germany)and(Account_Name:starts_with:C))"}).json()["data"]
    assert hits and all(h["Billing_Country"] == "Germany" and h["Account_Name"].startswith("C") for h in hits)
    assert api.request("GET", "/crm/v8/Accounts/search", params={"criteria": "(Account_Name:equals"}).status_code == 400
    resp = api.request("POST", "/crm/v8/Contacts/upsert", json_body={
        "data": [{"Last_Name": "Upserted", "Email": person.email}, {"Last_Name": "Brand New", "Email": "bn@ex.com"}],
        "duplicate_check_fields": ["Email"]})
    assert [(d["action"], d.get("duplicate_field")) for d in resp.json()["data"]] == [("update", "Email"),
                                                                                     ("insert", None)]


def test_write_limits_and_validation_answers():
    c = in_process("zohocrm", "demo")
    api = c.connector.api
    big = api.request("POST", "/crm/v8/Accounts", json_body={"data": [{"Account_Name": f"x{n}"} for n in range(101)]})
    assert big.status_code == 400 and big.json()["code"] == "LIMIT_EXCEEDED"
    resp = api.request("POST", "/crm/v8/Deals", json_body={"data": [
        {"Deal_Name": "No stage", "Closing_Date": "2026-01-01"},
        {"Deal_Name": "Bad amount", "Stage": "Qualification", "Closing_Date": "2026-01-01", "Amount": "12"},
        {"Deal_Name": "Bad stage", "Stage": "Nope", "Closing_Date": "2026-01-01"},
        {"Deal_Name": "Good", "Stage": "Closed Won", "Closing_Date": "2026-01-01", "Amount": 10,
         "Line_Items": [{"Product": {"id": next(iter(c.sandbox.state["records"]["Products"]))}, "Quantity": 2,
                         "Unit_Price": 5}]}]})
    data = resp.json()["data"]
    assert resp.status_code == 207
    assert [d["code"] for d in data] == ["MANDATORY_NOT_FOUND", "INVALID_DATA", "INVALID_DATA", "SUCCESS"]
    assert data[1]["details"] == {"api_name": "Amount", "json_path": "$.data[1].Amount",
                                  "expected_data_type": "currency"}
    good = c.sandbox.state["records"]["Deals"][data[3]["details"]["id"]]
    assert good["Probability"] == 100 and good["Line_Items"][0]["Line_Total"] == "10.00"
    assert [e[2] for e in c.sandbox.request_log[-2:]] == [400, 207]


def test_custom_fields_get_api_names_from_their_labels():
    c = in_process("zohocrm", "empty")
    api = c.connector.api
    resp = api.request("POST", "/crm/v8/settings/fields", params={"module": "Accounts"}, json_body={"fields": [
        {"field_label": "VAT number", "data_type": "text", "length": 30},
        {"field_label": "Tax ID", "data_type": "text"},
        {"field_label": "Weird", "data_type": "hologram"}]})
    assert resp.status_code == 201
    assert [f["status"] for f in resp.json()["fields"]] == ["success", "error", "error"]
    fields = api.request("GET", "/crm/v8/settings/fields", params={"module": "Accounts"}).json()["fields"]
    vat = next(f for f in fields if f["field_label"] == "VAT number")
    assert vat["api_name"] == "VAT_number" and vat["custom_field"] and vat["length"] == 30
    seeded = ZohoCrmSandbox()
    seeded.seed("empty")
    assert not seeded.state["records"]["Accounts"]
