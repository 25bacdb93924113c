"""Salesforce: OAuth and sessions, SOQL reads with paging and change feeds, Collections writes,
limits, deals with stage metadata and line items, custom fields with field-level security."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from app.connectors import oauth
from app.connectors import salesforce as sf
from app.connectors.base import Connection, FieldInfo, RecordWrite
from app.connectors.errors import AuthExpired, Conflict, Forbidden, NotFound, RateLimited, ValidationRejected
from app.connectors.tokens import MemoryTokenStore
from app.domain.text import country_code
from app.ops.connect import connect
from app.sandbox.base import Fault
from app.sandbox.demo_data import demo_data
from app.sandbox.salesforce import SESSION_TTL, SalesforceSandbox, fmt_dt
from app.sandbox.server import InProcessTransport, serve
from app.sync.mapping import map_record
from tests.support import Connected, in_process, no_sleep

V = "/services/data/v64.0"


def _count(sandbox, method: str, pattern: str, status: int | None = None) -> int:
    return sum(1 for m, p, s in sandbox.request_log
               if m == method and re.fullmatch(pattern, p) and (status is None or s == status))


@contextlib.contextmanager
def _connected_over_http(seed: str = "demo", **kw) -> Iterator[tuple[Connected, list]]:
    """Like tests.support.over_http, but recording the OAuth exchanges too."""
    sandbox = SalesforceSandbox(**kw)
    sandbox.seed(seed)
    seen: list = []
    sandbox.exchange_hooks.append(lambda req, resp: seen.append((req, resp)))
    server = serve(sandbox, timeout_delay=1.0)
    tokens = MemoryTokenStore()
    conn = Connection(id=f"sf-{uuid.uuid4().hex[:8]}", provider="salesforce", base_url=server.url,
                      auth_url=server.url)
    try:
        connect(conn, tokens, client_secret="sandbox-secret", timeout=20)
        connector = sf.Connector(conn, tokens, sleep=no_sleep)
        yield Connected(sandbox, conn, tokens, connector, server.url), seen
        connector.close()
    finally:
        server.stop()


def _client(c) -> httpx.Client:
    token = c.tokens.load(c.conn.id).access_token
    return httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.url,
                        headers={"Authorization": f"Bearer {token}"})


# -- OAuth and sessions ---------------------------------------------------------------------------

def test_connect_over_http_uses_pkce_instance_url_and_the_identity_url():
    with _connected_over_http() as (c, seen):
        sb = c.sandbox
        authorize = next(r for r, _ in seen if r.path == "/services/oauth2/authorize")
        assert authorize.arg("code_challenge_method") == "S256" and authorize.arg("code_challenge")
        assert authorize.arg("scope") == "api refresh_token" and authorize.arg("response_type") == "code"
        req, resp = next((r, s) for r, s in seen if r.path == "/services/oauth2/token")
        assert req.form()["grant_type"] == "authorization_code" and req.form()["code_verifier"]
        body = json.loads(resp.encode())
        assert set(body) == {"access_token", "refresh_token", "signature", "scope", "instance_url", "id",
                             "token_type", "issued_at"}  # no expires_in: sessions end by policy
        assert body["instance_url"] == c.url and body["token_type"] == "Bearer"
        assert body["id"] == f"{c.url}/id/{sb.state['org_id']}/{sb.state['user_id']}"
        assert body["access_token"].startswith(sb.state["org_id"][:15] + "!")
        assert abs(int(body["issued_at"]) / 1000 - sb.now()) < 60
        assert c.conn.base_url == c.url and c.conn.tenant_id == sb.state["org_id"]
        assert c.conn.label == "Crossledger Demo Company" and c.conn.extra["user_id"] == sb.state["user_id"]
        saved = c.tokens.load(c.conn.id)
        assert saved.expires_at is None and saved.refresh_token == body["refresh_token"]
        assert saved.extra["instance_url"] == c.url and saved.extra["scope"] == "refresh_token api"
        assert len(c.connector.read_records("company", None).records) == 162


def test_an_expired_session_is_refreshed_once_and_the_refresh_token_is_kept():
    with _connected_over_http() as (c, seen):
        before = c.tokens.load(c.conn.id)
        c.sandbox.advance(SESSION_TTL + 1)
        del seen[:]
        assert c.connector.company_name() == "Crossledger Demo Company"
        statuses = [(r.path, s.status) for r, s in seen]
        assert statuses == [(f"{V}/query", 401), ("/services/oauth2/token", 200), (f"{V}/query", 200)]
        assert json.loads(seen[0][1].encode()) == [{"message": "Session expired or invalid",
                                                    "errorCode": "INVALID_SESSION_ID"}]
        refreshed = json.loads(seen[1][1].encode())
        assert "refresh_token" not in refreshed and {"instance_url", "id", "issued_at", "signature"} <= set(refreshed)
        after = c.tokens.load(c.conn.id)
        assert after.access_token != before.access_token and after.refresh_token == before.refresh_token
        # Not rotated: the same refresh token keeps working.
        again = oauth.refresh_tokens(sf.oauth_config(c.conn, "sandbox-secret"), after)
        assert again.refresh_token == before.refresh_token


def test_activity_past_half_time_extends_the_session():
    c = in_process("salesforce", "demo")
    c.sandbox.advance(SESSION_TTL * 0.75)
    c.connector.company_name()  # extends the session by another two hours
    c.sandbox.advance(SESSION_TTL * 0.75)
    c.connector.company_name()
    assert _count(c.sandbox, "POST", "/services/oauth2/token") == 0
    c.sandbox.advance(SESSION_TTL + 1)
    c.connector.company_name()
    assert _count(c.sandbox, "GET", f"{V}/query", 401) == 1 and _count(c.sandbox, "POST", "/services/oauth2/token") == 1


def test_rotating_refresh_tokens_are_saved_and_the_old_one_dies():
    c = in_process("salesforce", "demo", rotate_refresh=True)
    before = c.tokens.load(c.conn.id)
    c.sandbox.advance(SESSION_TTL + 1)
    assert c.connector.company_name()
    after = c.tokens.load(c.conn.id)
    assert after.refresh_token and after.refresh_token != before.refresh_token
    with pytest.raises(AuthExpired):
        oauth.refresh_tokens(sf.oauth_config(c.conn, None), before, InProcessTransport(c.sandbox))


def test_a_revoked_refresh_token_asks_to_reconnect():
    c = in_process("salesforce", "demo")
    with _client(c) as http:
        resp = http.post("/services/oauth2/revoke", data={"token": c.tokens.load(c.conn.id).refresh_token})
    assert resp.status_code == 200
    with pytest.raises(AuthExpired):  # revoking the refresh token revoked its sessions too
        c.connector.company_name()


def test_token_endpoint_errors_and_pkce_for_public_clients():
    sb = SalesforceSandbox()
    sb.seed("empty")
    with httpx.Client(transport=InProcessTransport(sb), base_url=sb.public_url) as http:
        bad = http.post("/services/oauth2/token", data={"grant_type": "authorization_code", "code": "nope",
                                                        "client_id": "x", "redirect_uri": "http://127.0.0.1/cb",
                                                        "code_verifier": "v"})
        assert bad.status_code == 400 and bad.json() == {"error": "invalid_grant",
                                                         "error_description": "authentication failure"}
        verifier, challenge = oauth.pkce_pair()
        for use_pkce in (False, True):
            params = {"response_type": "code", "client_id": "x", "redirect_uri": "http://127.0.0.1:9/cb",
                      "state": "s", **({"code_challenge": challenge, "code_challenge_method": "S256"}
                                       if use_pkce else {})}
            loc = http.get("/services/oauth2/authorize", params=params).headers["Location"]
            code = urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)["code"][0]
            form = {"grant_type": "authorization_code", "code": code, "client_id": "x",
                    "redirect_uri": "http://127.0.0.1:9/cb", **({"code_verifier": verifier} if use_pkce else {})}
            resp = http.post("/services/oauth2/token", data=form)  # a public client: no secret
            if use_pkce:
                assert resp.status_code == 200 and "expires_in" not in resp.json()
            else:
                assert resp.status_code == 400 and resp.json()["error"] == "invalid_client"
        refresh = http.post("/services/oauth2/token", data={"grant_type": "refresh_token", "client_id": "x",
                                                            "refresh_token": "stale"})
        assert refresh.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}


def test_login_hosts_follow_the_environment_and_auth_url_overrides():
    def urls(**extra):
        conn = Connection(id="c", provider="salesforce", base_url="", auth_url=extra.pop("auth_url", None),
                          extra=extra)
        config = sf.oauth_config(conn, None)
        return config.authorize_url, config.token_url

    assert urls() == ("https://login.salesforce.com/services/oauth2/authorize",
                      "https://login.salesforce.com/services/oauth2/token")
    assert urls(environment="sandbox")[1] == "https://test.salesforce.com/services/oauth2/token"
    assert urls(environment="mydomain", my_domain="acme")[0] == "https://acme.my.salesforce.com/services/oauth2/authorize"
    assert urls(environment="mydomain", my_domain="https://acme--uat.sandbox.my.salesforce.com/")[1] == \
        "https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token"
    # The Lightning UI host never signs anyone in: it is turned into the My Domain host.
    assert urls(environment="mydomain", my_domain="acme.lightning.force.com")[1] == \
        "https://acme.my.salesforce.com/services/oauth2/token"
    assert urls(environment="sandbox", auth_url="http://127.0.0.1:9999")[1] == \
        "http://127.0.0.1:9999/services/oauth2/token"
    with pytest.raises(ValidationRejected):
        urls(environment="mydomain")
    config = sf.oauth_config(Connection(id="c", provider="salesforce", base_url=""), None)
    assert config.pkce and config.scopes == ("api", "refresh_token") and not config.secret_in_basic_auth


# -- reads ----------------------------------------------------------------------------------------

def test_full_read_pages_through_2000_at_a_time():
    c = in_process("salesforce", "empty")
    c.sandbox.add_contacts(4500)
    batches = []
    c.sandbox.exchange_hooks.append(lambda req, resp: "/query" in req.path and batches.append(
        len(json.loads(resp.encode())["records"])))
    changes = c.connector.read_records("person", None)
    assert changes.full and len({r.id for r in changes.records}) == 4500
    assert batches == [2000, 2000, 500]
    assert changes.requests == 4  # describe, then three batches
    assert _count(c.sandbox, "GET", rf"{V}/query/01g\w+-\d+") == 2  # nextRecordsUrl


def test_an_idle_incremental_read_costs_one_request_per_object_type():
    c = in_process("salesforce", "demo")
    k = c.connector
    cursors = {t: k.read_records(t, None).cursor for t in ("company", "person")}
    deal_cursor = k.read_deals(None).cursor
    for wait in (30, 200, 200):  # the later polls also carry a getDeleted window
        c.sandbox.advance(wait)
        for t in ("company", "person"):
            before = k.api.request_count
            changes = k.read_records(t, cursors[t])
            assert k.api.request_count - before == changes.requests == 1
            assert changes.records == [] and changes.deleted_ids == [] and not changes.full
            cursors[t] = changes.cursor
        deals = k.read_deals(deal_cursor)
        assert deals.requests == 1 and deals.records == [] and deals.deleted_ids == []
        deal_cursor = deals.cursor
    assert _count(c.sandbox, "POST", f"{V}/composite") >= 6


def test_edits_are_seen_incrementally_even_twice_in_one_second():
    c = in_process("salesforce", "demo")
    k = c.connector
    cursor = k.read_records("company", None).cursor
    acct = c.sandbox.ids("Account")[4]
    c.sandbox.advance(5)
    c.sandbox.edit("Account", acct, Name="Changed Name GmbH")
    changes = k.read_records("company", cursor)
    assert [(r.id, r.properties["Name"]) for r in changes.records] == [(acct, "Changed Name GmbH")]
    c.sandbox.edit("Account", acct, Name="Changed Again GmbH")  # the same second as the read
    again = k.read_records("company", changes.cursor)
    assert [r.properties["Name"] for r in again.records] == ["Changed Again GmbH"]
    assert k.read_records("company", again.cursor).records == []


def test_deletions_show_at_once_and_hard_deletes_through_get_deleted():
    c = in_process("salesforce", "demo")
    k, sb = c.connector, c.sandbox
    people = k.read_records("person", None)
    companies = k.read_records("company", None)
    sb.advance(3)
    gone = sb.ids("Contact")[6]
    sb.delete("Contact", gone)
    changed = k.read_records("person", people.cursor)
    assert changed.deleted_ids == [gone] and changed.records == [] and changed.requests == 1
    # A record deleted and purged from the Recycle Bin is only in the delete log (getDeleted),
    # which the next polls read for the window up to the previous one.
    purged = sb.ids("Account")[10]
    sb.purge("Account", purged)
    cursor, reported = companies.cursor, []
    for _ in range(3):
        sb.advance(120)
        step = k.read_records("company", cursor)
        assert step.requests == 1
        reported += step.deleted_ids
        cursor = step.cursor
    assert reported == [purged]
    assert k.get_records("person", [gone, sb.ids("Contact")[7]])[0].id == sb.ids("Contact")[7]


def test_a_field_removed_after_the_cursor_was_made_is_dropped_from_the_next_read():
    c = in_process("salesforce", "demo")
    cursor = c.connector.read_records("company", None).cursor
    assert "Billing_Email__c" in json.loads(cursor)["fields"]
    c.sandbox.remove_custom_field("Account", "Billing_Email__c")
    c.sandbox.advance(2)
    acct = c.sandbox.ids("Account")[0]
    c.sandbox.edit("Account", acct, Phone="+1 512 555 0000")
    fresh = sf.Connector(c.conn, c.tokens, transport=InProcessTransport(c.sandbox))  # a later run
    changes = fresh.read_records("company", cursor)
    assert [r.id for r in changes.records] == [acct] and "Billing_Email__c" not in changes.records[0].properties
    assert changes.requests == 3  # the query refused, describe, the query again
    assert "Billing_Email__c" not in json.loads(changes.cursor)["fields"]


def test_a_merge_is_a_deletion_that_names_the_winner():
    c = in_process("salesforce", "demo")
    k, sb = c.connector, c.sandbox
    cursor = k.read_records("company", None).cursor
    winner, loser = sb.ids("Account")[0], sb.ids("Account")[1]
    sb.advance(2)
    sb.merge("Account", winner, loser)
    changes = k.read_records("company", cursor)
    assert changes.deleted_ids == [loser]
    by_id = {r.id: r for r in changes.records}
    assert by_id[loser].archived and by_id[loser].merged_into == winner and not by_id[winner].archived


def test_people_carry_their_account_and_those_without_one_have_none():
    c = in_process("salesforce", "demo")
    data = demo_data()
    people = {r.id: r for r in c.connector.read_records("person", None).records}
    for person in data.people:
        rec = people[c.sandbox.demo_ids[person.key]]
        assert rec.properties["Email"] == person.email and rec.properties["FirstName"] == person.first_name
        assert rec.company_id == (c.sandbox.demo_ids[person.company_key] if person.company_key else None)
    assert any(r.company_id is None for r in people.values())


def test_mapping_maps_demo_accounts_to_parties():
    c = in_process("salesforce", "demo")
    k = c.connector
    mapping = k.default_mapping()
    assert mapping["company"]["tax_id"] == "Tax_Id__c" and mapping["company"]["email"] == "Billing_Email__c"
    records = {r.id: r for r in k.read_records("company", None).records}
    for company in demo_data().companies:
        party = map_record(records[c.sandbox.demo_ids[company.key]], mapping)
        assert party.name == company.name and party.tax_id == company.tax_id and party.email == company.email
        assert party.country == (country_code(company.country_name) if company.country_name else None)
        assert (party.city, party.postal_code, party.region) == (company.city, company.postal_code, company.region)
        assert party.address_line1 == company.address_line1 and party.phone == company.phone
    fields = {f.name: f for f in k.list_fields("company")}
    assert fields["Tax_Id__c"].custom and fields["Tax_Id__c"].label == "Tax ID"
    assert not fields["BillingCity"].custom and fields["CurrencyIsoCode"].type == "enum"
    assert {"FirstName", "Email", "MailingCity", "AccountId"} <= {f.name for f in k.list_fields("person")}


def test_company_name_record_urls_and_get_records():
    c = in_process("salesforce", "demo")
    k = c.connector
    assert k.company_name() == "Crossledger Demo Company"
    acct = c.sandbox.ids("Account")[2]
    assert k.record_url("company", acct) == f"{c.url}/lightning/r/Account/{acct}/view"
    with httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.url) as http:
        assert http.get(f"/lightning/r/Account/{acct}/view").status_code == 200
    for host, ui in (("https://acme.my.salesforce.com", "https://acme.lightning.force.com"),
                     ("https://acme--uat.sandbox.my.salesforce.com", "https://acme--uat.sandbox.lightning.force.com")):
        other = sf.Connector(Connection(id="x", provider="salesforce", base_url=host), c.tokens)
        assert other.record_url("deal", "006A0000001AbCd") == f"{ui}/lightning/r/Opportunity/006A0000001AbCdIAK/view"
    ids = [c.sandbox.ids("Account")[5], acct[:15], "001000000000000AAA"]
    found = k.get_records("company", ids)
    assert [r.id for r in found] == [ids[0], acct]  # 15-character IDs work; unknown ones are skipped


# -- writes ---------------------------------------------------------------------------------------

def test_creates_and_updates_go_200_at_a_time_through_collections():
    c = in_process("salesforce", "demo")
    k, sb = c.connector, c.sandbox
    k.list_fields("company"), k.list_fields("person")  # describe each object once
    accounts = sb.ids("Account")
    writes = [RecordWrite(f"u{n}", "company", accounts[n % len(accounts)], {"Tax_Id__c": f"T-{n}"})
              for n in range(150)]
    writes += [RecordWrite(f"c{n}", "company", None, {"Name": f"Batch Company {n} Ltd", "BillingCity": "Leeds"})
               for n in range(250)]
    writes.insert(3, RecordWrite("p0", "person", sb.ids("Contact")[0], {"Title": "Buyer"}))
    before = k.api.request_count
    results = k.update_records(writes)
    assert k.api.request_count - before == 3  # one PATCH (151), two POSTs (200 + 50)
    assert _count(sb, "PATCH", f"{V}/composite/sobjects") == 1 and _count(sb, "POST", f"{V}/composite/sobjects") == 2
    assert [r.key for r in results] == [w.key for w in writes] and all(r.ok for r in results)
    assert sb.record("Account", results[-1].id)["Name"] == "Batch Company 249 Ltd"
    assert sb.record("Contact", sb.ids("Contact")[0])["Title"] == "Buyer"


def test_per_record_errors_do_not_stop_the_batch():
    c = in_process("salesforce", "demo")
    k, sb = c.connector, c.sandbox
    acct, contact = sb.ids("Account")[0], sb.ids("Contact")[0]
    results = k.update_records([
        RecordWrite("ok", "company", acct, {"Name": "Fine Ltd"}),
        RecordWrite("unknown", "company", acct, {"Favourite_Colour__c": "blue"}),
        RecordWrite("readonly", "company", acct, {"MasterRecordId": sb.ids("Account")[1]}),
        RecordWrite("missing", "company", "001" + "5g0000009999" + "AAA", {"Name": "Ghost"}),
        RecordWrite("toolong", "company", sb.ids("Account")[2], {"Tax_Id__c": "X" * 41}),
        RecordWrite("email", "person", contact, {"Email": "not an address"}),
        RecordWrite("badref", "person", contact, {"AccountId": "001" + "5g0000008888" + "AAA"}),
        RecordWrite("nolast", "person", None, {"FirstName": "Only"}),
        RecordWrite("ok2", "person", sb.ids("Contact")[1], {"Title": "Buyer"}),
    ])
    assert [r.key for r in results] == ["ok", "unknown", "readonly", "missing", "toolong", "email", "badref",
                                        "nolast", "ok2"]
    assert results[0].ok and results[-1].ok
    errors = {r.key: r.error for r in results}
    assert isinstance(errors["unknown"], ValidationRejected) and errors["unknown"].field == "Favourite_Colour__c"
    assert isinstance(errors["readonly"], ValidationRejected) and errors["readonly"].field == "MasterRecordId"
    assert isinstance(errors["missing"], NotFound)
    for key, field in (("toolong", "Tax_Id__c"), ("email", "Email"), ("badref", "AccountId"), ("nolast", "LastName")):
        assert isinstance(errors[key], ValidationRejected) and errors[key].field == field, key
    assert errors["toolong"].code == "STRING_TOO_LONG" and errors["email"].code == "INVALID_EMAIL_ADDRESS"
    assert _count(sb, "PATCH", f"{V}/composite/sobjects") == 1 and _count(sb, "POST", f"{V}/composite/sobjects") == 1


def test_duplicate_rules_answer_with_the_existing_record():
    c = in_process("salesforce", "demo")
    k, sb = c.connector, c.sandbox
    acct = sb.ids("Account")[3]
    contact = next(i for i in sb.ids("Contact") if re.fullmatch(r"[a-z.]+@[a-z.]+", sb.record("Contact", i)["Email"]
                                                                 or ""))
    results = k.update_records([
        RecordWrite("a", "company", None, {"Name": "  " + sb.record("Account", acct)["Name"].upper()}),
        RecordWrite("p", "person", None, {"LastName": "Else", "Email": sb.record("Contact", contact)["Email"].upper()}),
        RecordWrite("n", "company", None, {"Name": "Entirely New Widgets Ltd"}),
    ])
    assert isinstance(results[0].error, Conflict) and results[0].error.existing_id == acct
    assert results[0].error.code == "DUPLICATES_DETECTED"
    assert isinstance(results[1].error, Conflict) and results[1].error.existing_id == contact
    assert results[2].ok
    # One record at a time, Salesforce also says which rule matched and which records.
    with _client(c) as http:
        resp = http.post(f"{V}/sobjects/Account", json={"Name": sb.record("Account", acct)["Name"]})
        assert resp.status_code == 400
        [error] = resp.json()
        assert error["errorCode"] == "DUPLICATES_DETECTED" and error["fields"] == []
        dup = error["duplicateResult"]
        assert dup["duplicateRule"] == "Standard_Account_Duplicate_Rule" and dup["allowSave"] is True
        assert dup["matchResults"][0]["matchRecords"][0]["record"]["Id"] == acct
        forced = http.post(f"{V}/sobjects/Account", json={"Name": sb.record("Account", acct)["Name"]},
                           headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"})
        assert forced.status_code == 201 and forced.json()["success"] is True


def test_a_create_whose_answer_is_lost_is_settled_without_a_duplicate():
    c = in_process("salesforce", "demo")
    sb = c.sandbox
    fault = Fault("reset_after_commit", nth=1, match=rf"POST {V}/composite/sobjects$")
    sb.faults.append(fault)
    results = c.connector.update_records([
        RecordWrite("a", "company", None, {"Name": "Lost Answer Ltd"}),
        RecordWrite("p", "person", None, {"LastName": "Lost", "Email": "lost.answer@example.com"})])
    assert all(r.ok for r in results)
    assert [r["Id"] for r in sb.state["records"]["Account"].values() if r["Name"] == "Lost Answer Ltd"] == \
        [results[0].id]
    assert fault.seen == 1  # found by a lookup, not sent again


def test_a_429_on_a_write_is_retried():
    c = in_process("salesforce", "demo")
    c.sandbox.faults.append(Fault("429", nth=1, match="POST .*"))
    results = c.connector.update_records([RecordWrite("n", "company", None, {"Name": "Retry Me Ltd"})])
    assert results[0].ok
    assert _count(c.sandbox, "POST", f"{V}/composite/sobjects", 429) == 1
    assert _count(c.sandbox, "POST", f"{V}/composite/sobjects", 200) == 1
    assert [a["Name"] for a in c.sandbox.state["records"]["Account"].values()].count("Retry Me Ltd") == 1


def test_a_500_on_a_read_is_retried():
    c = in_process("salesforce", "demo")
    c.sandbox.faults.append(Fault("500", nth=1, match=f"GET {V}/query$"))
    assert len(c.connector.read_records("company", None).records) == 162
    assert _count(c.sandbox, "GET", f"{V}/query", 500) == 1


def test_the_daily_allocation_is_a_403_and_usage_comes_in_every_answer():
    c = in_process("salesforce", "demo")
    k, sb = c.connector, c.sandbox
    headers = []
    sb.exchange_hooks.append(lambda req, resp: headers.append((resp.status, resp.headers.get("Sforce-Limit-Info"))))
    cursor = k.read_records("company", None).cursor
    used, maximum = sb.api_usage()
    assert headers[-1] == (200, f"api-usage={used}/{maximum}") and k.api_usage == (used, maximum)
    sb.advance(300)
    k.read_deals(k.read_deals(None).cursor)  # a Composite of several subrequests counts once
    assert sb.api_usage()[0] == used + 3
    sb.set_api_usage(14_999, 15_000)
    assert k.read_records("company", cursor).requests == 1
    with pytest.raises(RateLimited) as info:
        k.read_records("company", cursor)
    assert info.value.daily and info.value.status == 403 and info.value.code == "REQUEST_LIMIT_EXCEEDED"
    assert headers[-1] == (403, "api-usage=15000/15000")
    with _client(c) as http:
        resp = http.get(f"{V}/limits")
        assert resp.status_code == 403 and resp.json() == [{"message": "TotalRequests Limit exceeded.",
                                                            "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    with pytest.raises(RateLimited):  # writes stop too instead of failing every record
        k.update_records([RecordWrite("x", "company", sb.ids("Account")[0], {"Name": "Blocked"})])
    sb.advance(25 * 3600)  # a rolling 24 hours
    assert k.company_name()


# -- deals ----------------------------------------------------------------------------------------

def test_deals_come_with_lines_amounts_and_won_from_stage_metadata():
    c = in_process("salesforce", "demo")
    changes = c.connector.read_deals(None)
    assert changes.full and len(changes.records) == 60 and changes.requests == 2  # describe + one Composite
    by_id = {d.id: d for d in changes.records}
    data = demo_data()
    for demo in data.deals:
        deal = by_id[c.sandbox.demo_ids[demo.key]]
        assert deal.won == (demo.stage == "won") and deal.currency == demo.currency
        assert isinstance(deal.amount, Decimal) and deal.amount == demo.amount
        assert [(li.sku, li.quantity, li.unit_price, li.discount_percent, li.product_name) for li in deal.line_items] \
            == [(ln.sku, ln.quantity, ln.unit_price, ln.discount_percent, ln.name) for ln in demo.lines]
        assert deal.company_id == c.sandbox.demo_ids[demo.company_key]
        assert deal.close_date == dt.date.fromisoformat(demo.close_date)
    assert any(d.contact_ids for d in changes.records)


def test_renamed_stage_labels_change_nothing_and_only_is_won_wins():
    c = in_process("salesforce", "demo")
    k, sb = c.connector, c.sandbox
    first = {d.id: d.won for d in k.read_deals(None).records}
    sb.rename_stage("Closed Won", "Signed")
    sb.rename_stage("Prospecting", "Closed Won")  # a label that looks won, on an open stage
    again = k.read_deals(None)
    assert {d.id: d.won for d in again.records} == first
    assert sum(first.values()) == sum(1 for d in demo_data().deals if d.stage == "won")
    with _client(c) as http:
        stage = next(f for f in http.get(f"{V}/sobjects/Opportunity/describe").json()["fields"]
                     if f["name"] == "StageName")
    assert {"value": "Closed Won", "label": "Signed", "active": True, "defaultValue": False} in stage["picklistValues"]
    open_deal = next(i for i, won in first.items() if not won and sb.record("Opportunity", i)["StageName"] ==
                     "Prospecting")
    sb.advance(2)
    assert k.update_deals([RecordWrite("w", "deal", open_deal, {"StageName": "Closed Won"})])[0].ok
    moved = k.read_deals(again.cursor).records
    assert [(d.id, d.won) for d in moved] == [(open_deal, True)]


def test_a_single_currency_org_gives_deals_the_org_currency():
    c = in_process("salesforce", "demo", multicurrency=False)
    deals = c.connector.read_deals(None).records
    assert {d.currency for d in deals} == {"USD"} and all("CurrencyIsoCode" not in d.properties for d in deals)
    assert "CurrencyIsoCode" not in {f.name for f in c.connector.list_fields("company")}


def test_line_item_changes_and_deal_deletions_are_seen():
    c = in_process("salesforce", "demo")
    k, sb = c.connector, c.sandbox
    cursor = k.read_deals(None).cursor
    opps = sb.ids("Opportunity")
    sb.advance(2)
    sb.delete("Opportunity", opps[2])
    line = next(li for li in sb.state["records"]["OpportunityLineItem"].values() if li["OpportunityId"] == opps[4])
    sb.edit("OpportunityLineItem", line["Id"], touch_parent=False, Quantity="7")
    entry = next(e for e in sb.state["records"]["PricebookEntry"].values()
                 if e["CurrencyIsoCode"] == sb.record("Opportunity", opps[5])["CurrencyIsoCode"])
    with _client(c) as http:
        resp = http.post(f"{V}/sobjects/OpportunityLineItem", json={
            "OpportunityId": opps[5], "PricebookEntryId": entry["Id"], "Quantity": 2, "UnitPrice": 100,
            "Discount": 25})
        assert resp.status_code == 201
    changes = k.read_deals(cursor)
    assert changes.deleted_ids == [opps[2]]
    by_id = {d.id: d for d in changes.records}
    assert set(by_id) == {opps[4], opps[5]} and changes.requests == 2  # one Composite, then the opportunity
    assert Decimal(7) in [li.quantity for li in by_id[opps[4]].line_items]
    added = by_id[opps[5]].line_items[-1]
    assert (added.quantity, added.unit_price, added.discount_percent) == (Decimal(2), Decimal(100), Decimal(25))
    assert sb.record("Opportunity", opps[5])["Amount"] == str(sum(
        Decimal(li["TotalPrice"]) for li in sb.state["records"]["OpportunityLineItem"].values()
        if li["OpportunityId"] == opps[5]))
    assert k.read_deals(changes.cursor).records == []


def test_ensure_deal_fields_creates_them_grants_access_and_update_deals_writes_them():
    c = in_process("salesforce", "demo")
    k, sb = c.connector, c.sandbox
    wanted = [FieldInfo("crossledger_invoice_status", "Invoice status"),
              FieldInfo("crossledger_amount_paid", "Amount paid", "number"),
              FieldInfo("crossledger_last_payment", "Last payment date", "date")]
    made = k.ensure_deal_fields(wanted)
    assert made == {"crossledger_invoice_status": "Crossledger_Invoice_Status__c",
                    "crossledger_amount_paid": "Crossledger_Amount_Paid__c",
                    "crossledger_last_payment": "Crossledger_Last_Payment__c"}
    assert _count(sb, "POST", f"{V}/tooling/sobjects/CustomField") == 3
    types = {n: f["type"] for n, f in sb.state["custom_fields"]["Opportunity"].items()}
    assert [types[made[f.name]] for f in wanted] == ["string", "currency", "date"]
    perms = sb.state["records"]["FieldPermissions"].values()
    assert sorted(p["Field"] for p in perms) == sorted(f"Opportunity.{v}" for v in made.values())
    assert k.ensure_deal_fields(wanted) == made and _count(sb, "POST", f"{V}/tooling/sobjects/CustomField") == 3
    opp, other = sb.ids("Opportunity")[0], sb.ids("Opportunity")[1]
    before = k.api.request_count
    results = k.update_deals([
        RecordWrite("d1", "deal", opp, {made["crossledger_invoice_status"]: "Paid",
                                        made["crossledger_amount_paid"]: Decimal("1234.56"),
                                        made["crossledger_last_payment"]: "2026-04-30"}),
        RecordWrite("d2", "deal", other, {made["crossledger_amount_paid"]: "abc"}),
        RecordWrite("d3", "deal", other, {made["crossledger_last_payment"]: ""}),
    ])
    assert k.api.request_count - before == 1 and results[0].ok and results[2].ok
    assert isinstance(results[1].error, ValidationRejected)  # never sent
    rec = sb.record("Opportunity", opp)
    assert rec["Crossledger_Amount_Paid__c"] == "1234.56" and rec["Crossledger_Invoice_Status__c"] == "Paid"
    assert rec["Crossledger_Last_Payment__c"] == "2026-04-30"
    deal = next(d for d in k.read_deals(None).records if d.id == opp)
    assert deal.properties["Crossledger_Amount_Paid__c"] == "1234.56"


def test_a_field_made_through_the_tooling_api_is_hidden_until_access_is_granted():
    c = in_process("salesforce", "demo")
    with _client(c) as http:
        resp = http.post(f"{V}/tooling/sobjects/CustomField", json={
            "FullName": "Opportunity.Hidden_Flag__c", "Metadata": {"label": "Hidden flag", "type": "Checkbox"}})
        assert resp.status_code == 201 and resp.json()["id"].startswith("00N")
        names = [f["name"] for f in http.get(f"{V}/sobjects/Opportunity/describe").json()["fields"]]
        assert "Hidden_Flag__c" not in names
        query = http.get(f"{V}/query", params={"q": "SELECT Hidden_Flag__c FROM Opportunity"})
        assert query.status_code == 400 and query.json()[0]["errorCode"] == "INVALID_FIELD"
        again = http.post(f"{V}/tooling/sobjects/CustomField", json={
            "FullName": "Opportunity.Hidden_Flag__c", "Metadata": {"label": "Hidden flag", "type": "Checkbox"}})
        assert again.json()[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    # ensure_deal_fields finds it by name, grants access, and then it is there.
    made = c.connector.ensure_deal_fields([FieldInfo("hidden_flag", "Hidden flag", "boolean")])
    assert made == {"hidden_flag": "Hidden_Flag__c"}
    assert "Hidden_Flag__c" in {f.name for f in c.connector.list_fields("deal")}


def test_without_customize_application_the_admin_gets_the_field_spec():
    c = in_process("salesforce", "demo", admin=False)
    with pytest.raises(Forbidden) as info:
        c.connector.ensure_deal_fields([FieldInfo("crossledger_amount_paid", "Amount paid", "number")])
    assert "Crossledger_Amount_Paid__c: Currency labelled 'Amount paid'" in info.value.message


# -- the sandbox's own API ------------------------------------------------------------------------

def _q(http, soql: str, path: str = "query"):
    return http.get(f"{V}/{path}", params={"q": soql})


def test_sosl_search_over_http_finds_accounts_contacts_and_opportunities():
    with _connected_over_http() as (c, _), httpx.Client(
            base_url=c.url, headers={"Authorization": f"Bearer {c.tokens.load(c.conn.id).access_token}"}) as http:
        def made(obj, **values):
            resp = http.post(f"{V}/sobjects/{obj}", json=values)
            assert resp.status_code == 201, resp.text
            return resp.json()["id"]

        account = made("Account", Name="Quillfeather Stationers Ltd", BillingCity="Leeds", Phone="+44 113 496 0321")
        contact = made("Contact", FirstName="Ottoline", LastName="Quillfeather", AccountId=account,
                       Email="ottoline@quillfeather.example")
        deal = made("Opportunity", Name="Quillfeather – renewal", StageName="Prospecting", CloseDate="2026-12-31",
                    AccountId=account, Amount=1200)

        def sosl(text, version=V):
            return http.get(f"{version}/search/", params={"q": text})

        found = sosl("FIND {Quillfeather} IN NAME FIELDS RETURNING Account(Id, Name, BillingCity), "
                     "Contact(Id, FirstName, Email, Account.Name), Opportunity(Id, Name, Amount, StageName)")
        assert found.status_code == 200
        rows = found.json()["searchRecords"]
        assert [(r["attributes"]["type"], r["Id"]) for r in rows] == [
            ("Account", account), ("Contact", contact), ("Opportunity", deal)]
        assert rows[0] == {"attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{account}"},
                           "Id": account, "Name": "Quillfeather Stationers Ltd", "BillingCity": "Leeds"}
        assert rows[1]["Account"]["Name"] == "Quillfeather Stationers Ltd" and rows[2]["Amount"] == 1200
        by_email = sosl("FIND {ottoline@quillfeather.example} IN EMAIL FIELDS RETURNING Contact(Id)")
        assert by_email.json()["searchRecords"] == [
            {"attributes": {"type": "Contact", "url": f"{V}/sobjects/Contact/{contact}"}, "Id": contact}]
        by_phone = sosl("FIND {441134960321} IN PHONE FIELDS RETURNING Account(Name)").json()["searchRecords"]
        assert [r["Name"] for r in by_phone] == ["Quillfeather Stationers Ltd"]
        wild = sosl("FIND {Quill*} RETURNING Opportunity(Name WHERE Amount > 1000), Account").json()
        assert [r["attributes"]["url"].rsplit("/", 1)[1] for r in wild["searchRecords"]] == [deal, account]
        assert wild["searchRecords"][0]["Name"] == "Quillfeather – renewal" and "Id" not in wild["searchRecords"][0]
        assert set(wild["searchRecords"][1]) == {"attributes", "Id"}  # no field list: the Id alone
        assert sosl("FIND {Quillfeather AND NOT renewal} RETURNING Opportunity(Id)").json()["searchRecords"] == []
        assert sosl("FIND {\"Stationers Ltd\"} RETURNING Account(Id)").json()["searchRecords"] == [
            {"attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{account}"}, "Id": account}]
        every = sosl("FIND {Quillfeather OR Ottoline} RETURNING Contact(Id), Account(Id) LIMIT 1").json()
        assert [r["Id"] for r in every["searchRecords"]] == [contact]
        old = sosl("FIND {Quillfeather} RETURNING Account(Id)", "/services/data/v36.0").json()
        assert isinstance(old, list) and old[0]["Id"] == account  # before API 37.0 the answer is a bare list
        http.delete(f"{V}/sobjects/Contact/{contact}")
        assert sosl("FIND {Ottoline} RETURNING Contact(Id)").json()["searchRecords"] == []

        for text, code in (("FIND {Q}", "INVALID_SEARCH"), ("FIND {Quillfeather", "MALFORMED_SEARCH"),
                           ("Quillfeather", "MALFORMED_SEARCH"), ("FIND {Quill} RETURNING Widget__x", "INVALID_TYPE"),
                           ("FIND {Quill} RETURNING Account(Nope)", "INVALID_FIELD"),
                           ("FIND {Quill} RETURNING Account LIMIT", "MALFORMED_SEARCH")):
            bad = sosl(text)
            assert bad.status_code == 400 and bad.json()[0]["errorCode"] == code, (text, bad.text)
        assert http.get(f"{V}/search/").json()[0]["errorCode"] == "MALFORMED_SEARCH"


def test_soql_subset_and_its_errors():
    c = in_process("salesforce", "demo")
    with _client(c) as http:
        rows = _q(http, "SELECT Id, Name, BillingCountry FROM Account WHERE (BillingCountry = 'germany' OR "
                        "BillingCountry LIKE 'De%') AND NOT Name LIKE '%GMBH%' ORDER BY Name DESC LIMIT 3 OFFSET 1"
                  ).json()
        assert rows["done"] and rows["totalSize"] == len(rows["records"]) <= 3
        names = [r["Name"] for r in rows["records"]]
        assert names == sorted(names, key=str.casefold, reverse=True)
        assert all(r["BillingCountry"] in ("Germany", "DE") and "gmbh" not in r["Name"].lower()
                   for r in rows["records"])
        ids = c.sandbox.ids("Contact")[:3]
        picked = _q(http, f"SELECT Id, Account.Name, Owner.Name FROM Contact WHERE Id IN ('{ids[0]}', "
                          f"'{ids[1][:15]}', '{ids[2].lower()}')").json()
        assert {r["Id"] for r in picked["records"]} == set(ids)
        assert all(r["Owner"]["Name"] == "Dana Owner" for r in picked["records"])
        assert _q(http, "SELECT COUNT() FROM Contact WHERE AccountId = null").json()["records"] == []
        assert _q(http, "select count() from contact where accountid != null").json()["totalSize"] + \
            _q(http, "SELECT COUNT() FROM Contact WHERE AccountId = null").json()["totalSize"] == 110
        sub = _q(http, "SELECT Name, (SELECT Quantity, Product2.ProductCode FROM OpportunityLineItems) "
                       "FROM Opportunity WHERE Amount > 1000 AND CloseDate < 2026-06-01").json()["records"]
        assert sub and all(r["OpportunityLineItems"]["records"][0]["Product2"]["ProductCode"] for r in sub)
        for soql, code in (("SELECT Id FORM Account", "MALFORMED_QUERY"),
                           ("SELECT Id, Nmae FROM Account", "INVALID_FIELD"),
                           ("SELECT Id FROM Acount", "INVALID_TYPE"),
                           ("SELECT Id FROM Account WHERE SystemModstamp > '2026-01-01T00:00:00Z'",
                            "INVALID_QUERY_FILTER_OPERATOR"),
                           ("SELECT Id FROM Account OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE")):
            resp = _q(http, soql)
            assert resp.status_code == 400 and resp.json()[0]["errorCode"] == code, soql


def test_query_all_sees_the_recycle_bin_and_locators_expire():
    c = in_process("salesforce", "empty")
    sb = c.sandbox
    sb.add_contacts(2300)
    sb.delete("Contact", sb.ids("Contact")[0])
    with _client(c) as http:
        assert _q(http, "SELECT COUNT() FROM Contact").json()["totalSize"] == 2299
        assert _q(http, "SELECT COUNT() FROM Contact WHERE IsDeleted = true", "queryAll").json()["totalSize"] == 1
        first = http.get(f"{V}/query", params={"q": "SELECT Id FROM Contact"},
                         headers={"Sforce-Query-Options": "batchSize=500"}).json()
        assert len(first["records"]) == 500 and first["nextRecordsUrl"].endswith("-500")
        assert http.get(first["nextRecordsUrl"]).json()["nextRecordsUrl"].endswith("-1000")
        sb.advance(16 * 60)
        stale = http.get(first["nextRecordsUrl"].replace("-500", "-1000"))
        assert stale.status_code == 400 and stale.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_get_updated_and_get_deleted_follow_the_replication_rules():
    c = in_process("salesforce", "demo")
    sb = c.sandbox
    start = sb.now()
    sb.advance(90)
    sb.edit("Account", sb.ids("Account")[0], Phone="+1 555 0100")
    sb.delete("Account", sb.ids("Account")[1])
    sb.advance(120)

    def stamp(t):
        return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")

    with _client(c) as http:
        updated = http.get(f"{V}/sobjects/Account/updated/", params={"start": stamp(start), "end": stamp(sb.now())})
        assert updated.json()["ids"] == [sb.ids("Account")[0]]
        assert updated.json()["latestDateCovered"].endswith(":00.000+0000")  # whole minutes
        deleted = http.get(f"{V}/sobjects/Account/deleted/", params={"start": stamp(start), "end": stamp(sb.now())})
        body = deleted.json()
        assert [r["id"] for r in body["deletedRecords"]] == [sb.ids("Account", deleted=True)[1]]
        assert set(body) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
        short = http.get(f"{V}/sobjects/Account/deleted/", params={"start": stamp(sb.now() - 30),
                                                                   "end": stamp(sb.now())})
        old = http.get(f"{V}/sobjects/Account/deleted/", params={"start": stamp(sb.now() - 16 * 86400),
                                                                 "end": stamp(sb.now())})
        for resp in (short, old):
            assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"
        versions = http.get("/services/data/").json()
        assert {"label": "Summer '25", "url": "/services/data/v64.0", "version": "64.0"} in versions
        assert http.get("/services/data/v29.0/limits").status_code == 404


def test_composite_references_and_all_or_none():
    c = in_process("salesforce", "demo")
    sb = c.sandbox
    accounts = len(sb.ids("Account"))
    with _client(c) as http:
        ok = http.post(f"{V}/composite", json={"allOrNone": True, "compositeRequest": [
            {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "acct", "body": {"Name": "Ref Co"}},
            {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "who",
             "body": {"LastName": "Ref", "AccountId": "@{acct.id}"}},
            {"method": "GET", "url": f"{V}/sobjects/Contact/@{{who.id}}?fields=AccountId", "referenceId": "check"}]})
        out = ok.json()["compositeResponse"]
        assert [o["httpStatusCode"] for o in out] == [201, 201, 200]
        assert out[2]["body"]["AccountId"] == out[0]["body"]["id"]
        bad = http.post(f"{V}/composite", json={"allOrNone": True, "compositeRequest": [
            {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "a1", "body": {"Name": "Rolled Co"}},
            {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "c1", "body": {"FirstName": "No"}}]})
        codes = [(o["httpStatusCode"], o["body"][0]["errorCode"]) for o in bad.json()["compositeResponse"]]
        assert codes == [(400, "PROCESSING_HALTED"), (400, "REQUIRED_FIELD_MISSING")]
        assert len(sb.ids("Account")) == accounts + 1  # the rolled-back account is not there
        coll = http.post(f"{V}/composite/sobjects", json={"allOrNone": True, "records": [
            {"attributes": {"type": "Account"}, "Name": "All Or None Co"},
            {"attributes": {"type": "Contact"}, "FirstName": "NoLast"}]}).json()
        assert [e["statusCode"] for r in coll for e in r["errors"]] == ["ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                                                       "REQUIRED_FIELD_MISSING"]
        assert "All Or None Co" not in [sb.record("Account", i)["Name"] for i in sb.ids("Account")]
        too_many = http.post(f"{V}/composite/sobjects", json={"records": [
            {"attributes": {"type": "Account"}, "Name": f"N{n}"} for n in range(201)]})
        assert too_many.status_code == 400 and too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_line_items_follow_price_book_and_currency_rules():
    c = in_process("salesforce", "demo")
    sb = c.sandbox
    opp = sb.ids("Opportunity")[0]
    currency = sb.record("Opportunity", opp)["CurrencyIsoCode"]
    wrong = next(e for e in sb.state["records"]["PricebookEntry"].values() if e["CurrencyIsoCode"] != currency)
    right = next(e for e in sb.state["records"]["PricebookEntry"].values() if e["CurrencyIsoCode"] == currency)
    with _client(c) as http:
        resp = http.post(f"{V}/sobjects/OpportunityLineItem", json={
            "OpportunityId": opp, "PricebookEntryId": wrong["Id"], "Quantity": 1, "UnitPrice": 10})
        assert resp.json()[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION" and "currency" in resp.json()[0]["message"]
        both = http.post(f"{V}/sobjects/OpportunityLineItem", json={
            "OpportunityId": opp, "PricebookEntryId": right["Id"], "Quantity": 1, "UnitPrice": 10, "TotalPrice": 10})
        assert both.status_code == 400
        amount = http.patch(f"{V}/sobjects/Opportunity/{opp}", json={"Amount": 1})
        assert amount.json()[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
        total = http.post(f"{V}/sobjects/OpportunityLineItem", content=b'{"OpportunityId": "%s", "PricebookEntryId":'
                          b' "%s", "Quantity": 3, "TotalPrice": 100.00}' % (opp.encode(), right["Id"].encode()),
                          headers={"Content-Type": "application/json"})
        assert total.status_code == 201
        line = http.get(f"{V}/sobjects/OpportunityLineItem/{total.json()['id']}").text
        assert '"UnitPrice": 33.33' in line and '"TotalPrice": 99.99' in line  # exact numbers, not strings
        stage = http.patch(f"{V}/sobjects/Opportunity/{opp}", json={"StageName": "Won Somehow"})
        assert stage.json()[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert fmt_dt(0) == "1970-01-01T00:00:00.000+0000"
