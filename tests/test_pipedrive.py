"""Pipedrive: OAuth, reads with paging and /recents, writes, limits, deals and custom fields."""

from __future__ import annotations

import base64
import datetime as dt
import re
from decimal import Decimal

import httpx
import pytest

from app.connectors import oauth
from app.connectors import pipedrive as pd
from app.connectors.base import FieldInfo, RecordWrite
from app.connectors.errors import AuthExpired, Conflict, NotFound, RateLimited, ValidationRejected
from app.sandbox.base import Fault
from app.sandbox.demo_data import demo_data
from app.sandbox.server import InProcessTransport
from app.sync.mapping import map_record
from tests.support import in_process, over_http

HASH = re.compile(r"^[0-9a-f]{40}$")


def _count(sandbox, method: str, pattern: str, status: int | None = None) -> int:
    return sum(1 for m, p, s in sandbox.request_log
               if m == method and re.fullmatch(pattern, p) and (status is None or s == status))


def _pacing_connector(c):
    """A connector whose waits move the sandbox clock (so real rate-limit windows pass without sleeping)."""
    return pd.Connector(c.conn, c.tokens, transport=InProcessTransport(c.sandbox), sleep=c.sandbox.advance)


# -- OAuth ----------------------------------------------------------------------------------------

def test_connect_over_http_sets_api_domain_company_and_tokens():
    with over_http("pipedrive", "demo") as c:
        assert c.conn.base_url == c.url  # api_domain from the token response
        assert c.conn.label == "Crossledger Demo Company"
        assert c.conn.tenant_id == "13049877"
        assert c.conn.extra["company_domain"] == "crossledger-demo"
        saved = c.tokens.load(c.conn.id)
        assert saved.refresh_token and saved.extra["api_domain"] == c.url
        assert 3500 < saved.expires_at - dt.datetime.now(dt.UTC).timestamp() <= 3600
        assert "base" in saved.extra["scope"]
        assert len(c.connector.read_records("company", None).records) == 162


def test_expired_access_token_is_refreshed_with_basic_auth_and_rotated():
    with over_http("pipedrive", "demo") as c:
        seen = []
        c.sandbox.exchange_hooks.append(lambda req, resp: seen.append((req, resp)))
        before = c.tokens.load(c.conn.id)
        c.sandbox.advance(3600)  # past the 1 h access token
        assert c.connector.company_name() == "Crossledger Demo Company"
        token_calls = [(r, s) for r, s in seen if r.path == "/oauth/token"]
        assert len(token_calls) == 1
        req, _ = token_calls[0]
        assert req.header("authorization").startswith("Basic ")
        client, _, secret = base64.b64decode(req.header("authorization")[6:]).decode().partition(":")
        assert (client, secret) == (c.conn.client_id, "sandbox-secret")
        assert "client_secret" not in req.form()
        after = c.tokens.load(c.conn.id)
        assert after.access_token != before.access_token
        assert after.refresh_token != before.refresh_token  # rotated on every use
        config = pd.oauth_config(c.conn, "sandbox-secret")
        with pytest.raises(AuthExpired):  # the exchanged refresh token is dead
            oauth.refresh_tokens(config, before)


def test_token_endpoint_requires_client_authentication():
    c = in_process("pipedrive")
    with httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.url) as http:
        resp = http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x",
                                                "client_id": "crossledger-desktop"})
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


def test_refresh_without_a_client_secret_asks_to_reconnect():
    c = in_process("pipedrive", "demo")
    saved = c.tokens.load(c.conn.id)
    saved.client_secret = None  # e.g. a sign-in saved by an older version, before secrets were kept
    c.tokens.save(c.conn.id, saved)
    c.sandbox.advance(3600)
    with pytest.raises(AuthExpired):
        c.connector.company_name()


def test_api_errors_use_pipedrives_envelope():
    c = in_process("pipedrive", "demo")
    resp = c.connector.api.request("GET", "/api/v2/persons/99999")
    assert resp.status_code == 404
    assert resp.json()["success"] is False and resp.json()["error"] == "Person not found"
    with httpx.Client(transport=InProcessTransport(c.sandbox), base_url=c.url) as http:
        resp = http.get("/api/v2/persons", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401 and resp.json() == {
        "success": False, "error": "unauthorized access", "errorCode": 401, "error_info": pd_error_info()}
    c.sandbox.app_scopes = "base,contacts:read"
    with pytest.raises(Exception) as info:
        c.connector.read_deals(None)
    assert getattr(info.value, "status", None) == 403


def pd_error_info() -> str:
    from app.sandbox.pipedrive import ERROR_INFO

    return ERROR_INFO


# -- reads -------------------------------------------------------------------------------------------

def test_full_read_pages_through_500_at_a_time():
    c = in_process("pipedrive", "empty")
    c.sandbox.add_people(1100)
    changes = c.connector.read_records("person", None)
    assert changes.full and changes.requests == 3  # 500 + 500 + 100
    assert len({r.id for r in changes.records}) == 1100
    assert all(q.get("limit") == ["500"] for q in _queries(c, "/api/v2/persons"))


def _queries(c, path):
    seen = []
    c.sandbox.exchange_hooks.append(lambda req, resp: req.path == path and seen.append(req.query))
    c.connector.read_records("person", None)
    return seen


def test_incremental_read_with_nothing_changed_costs_one_request_per_type():
    c = in_process("pipedrive", "demo")
    k = c.connector
    cursors = {t: k.read_records(t, None).cursor for t in ("company", "person")}
    deal_cursor = k.read_deals(None).cursor
    for _ in range(2):
        c.sandbox.advance(30)
        for t in ("company", "person"):
            before = k.api.request_count
            changes = k.read_records(t, cursors[t])
            assert k.api.request_count - before == changes.requests == 1
            assert changes.records == [] and changes.deleted_ids == [] and not changes.full
            cursors[t] = changes.cursor
        deals = k.read_deals(deal_cursor)
        assert deals.requests == 1 and deals.records == [] and deals.deleted_ids == []
        deal_cursor = deals.cursor


def test_edits_are_seen_incrementally_even_twice_in_one_second():
    c = in_process("pipedrive", "demo")
    k = c.connector
    cursor = k.read_records("company", None).cursor
    c.sandbox.advance(5)
    c.sandbox.edit("organizations", 5, name="Changed Name GmbH")
    changes = k.read_records("company", cursor)
    assert [(r.id, r.properties["name"]) for r in changes.records] == [("5", "Changed Name GmbH")]
    assert changes.requests == 2  # /recents, then the changed records by ids in v2 shape
    c.sandbox.edit("organizations", 5, name="Changed Again GmbH")  # same second as the first edit
    again = k.read_records("company", changes.cursor)
    assert [r.properties["name"] for r in again.records] == ["Changed Again GmbH"]
    assert k.read_records("company", again.cursor).records == []


def test_deletions_are_seen_through_recents():
    c = in_process("pipedrive", "demo")
    k = c.connector
    people, orgs = k.read_records("person", None), k.read_records("company", None)
    c.sandbox.advance(3)
    c.sandbox.delete("persons", 4)
    c.sandbox.delete("organizations", 9)
    changed = k.read_records("person", people.cursor)
    assert changed.deleted_ids == ["4"] and changed.records == []
    assert k.read_records("company", orgs.cursor).deleted_ids == ["9"]
    assert k.get_records("person", ["4", "5"])[0].id == "5"  # deleted persons are gone from v2


def test_person_record_shape_and_company_link():
    c = in_process("pipedrive", "demo")
    data = demo_data()
    people = {r.id: r for r in c.connector.read_records("person", None).records}
    for n, person in enumerate(data.people[:30], start=1):
        rec = people[str(n)]
        assert rec.properties["email"] == person.email
        assert rec.properties["first_name"] == person.first_name
        expected_org = data.companies.index(next(co for co in data.companies if co.key == person.company_key)) + 1 \
            if person.company_key else None
        assert rec.company_id == (str(expected_org) if expected_org else None)


def test_mapping_resolves_the_tax_id_hash_and_maps_companies():
    c = in_process("pipedrive", "demo")
    k = c.connector
    mapping = k.default_mapping()
    assert mapping["company"]["tax_id"] == c.sandbox.field_key("organization", "Tax ID")
    assert HASH.match(mapping["company"]["email"]) and HASH.match(mapping["company"]["phone"])
    records = {r.id: r for r in k.read_records("company", None).records}
    data = demo_data()
    for n, company in enumerate(data.companies, start=1):
        party = map_record(records[str(n)], mapping)
        assert party.name == company.name
        assert party.tax_id == company.tax_id
        assert party.country == company.country
        assert party.city == company.city and party.postal_code == company.postal_code
        assert party.address_line1 == company.address_line1
        assert party.email == company.email
    fields = {f.name: f for f in k.list_fields("company")}
    assert fields[mapping["company"]["tax_id"]].label == "Tax ID" and fields[mapping["company"]["tax_id"]].custom
    assert {"address_locality", "address_street", "address_country"} <= set(fields)
    assert {"email", "phone", "postal_address_locality"} <= {f.name for f in k.list_fields("person")}


def test_company_name_and_record_urls():
    c = in_process("pipedrive", "demo")
    k = c.connector
    assert k.company_name() == "Crossledger Demo Company"
    assert k.record_url("deal", "5") == "https://crossledger-demo.pipedrive.com/deal/5"
    assert k.record_url("company", "7") == "https://crossledger-demo.pipedrive.com/organization/7"
    assert k.record_url("person", "3") == "https://crossledger-demo.pipedrive.com/person/3"


def test_updated_since_and_sort_by_update_time_in_the_sandbox():
    c = in_process("pipedrive", "demo")
    c.sandbox.advance(60)
    c.sandbox.edit("persons", 12, job_title="CFO")
    since = c.sandbox.state["persons"]["12"]["update_time"]
    body = c.connector.api.request("GET", "/api/v2/persons", params={
        "updated_since": since, "sort_by": "update_time", "sort_direction": "desc", "limit": 5}).json()
    assert [p["id"] for p in body["data"]] == [12] and body["additional_data"]["next_cursor"] is None
    too_many = c.connector.api.request("GET", "/api/v2/persons", params={"limit": 501})
    assert too_many.status_code == 400


# -- writes -----------------------------------------------------------------------------------------

def test_updates_send_one_patch_per_record_with_custom_fields_nested():
    c = in_process("pipedrive", "demo")
    k = c.connector
    tax = k.default_mapping()["company"]["tax_id"]
    before = k.api.request_count
    results = k.update_records([RecordWrite(f"k{n}", "company", str(n), {"name": f"Org {n}", tax: f"TAX-{n}"})
                                for n in (3, 1, 2)])
    assert k.api.request_count - before == 3 and _count(c.sandbox, "PATCH", r"/api/v2/organizations/\d+") == 3
    assert [(r.key, r.id, r.ok) for r in results] == [("k3", "3", True), ("k1", "1", True), ("k2", "2", True)]
    org = c.sandbox.state["organizations"]["1"]
    assert org["name"] == "Org 1" and org["custom_fields"][tax] == "TAX-1"
    assert results[1].record.properties[tax] == "TAX-1"
    # v2 refuses a custom-field hash at the root of the body: the connector never sends one there.
    resp = k.api.request("PATCH", "/api/v2/organizations/1", json_body={tax: "X"})
    assert resp.status_code == 400 and resp.json()["code"] == "ERR_SCHEMA_VALIDATION_FAILED"


def test_address_and_email_updates_keep_the_other_parts():
    c = in_process("pipedrive", "demo")
    k = c.connector
    old = dict(c.sandbox.state["organizations"]["2"]["address"])
    res = k.update_records([RecordWrite("a", "company", "2", {"address_locality": "York",
                                                               "address_country": "United Kingdom"})])
    assert res[0].ok
    new = c.sandbox.state["organizations"]["2"]["address"]
    assert new["locality"] == "York" and new["route"] == old["route"] and new["postal_code"] == old["postal_code"]
    assert "York" in new["value"]
    c.sandbox.edit("persons", 3, emails=[{"value": "a@x.test", "primary": True, "label": "work"},
                                         {"value": "b@x.test", "primary": False, "label": "home"}])
    assert k.update_records([RecordWrite("e", "person", "3", {"email": "c@x.test"})])[0].ok
    assert [e["value"] for e in c.sandbox.state["persons"]["3"]["emails"]] == ["c@x.test", "b@x.test"]


def test_creates_search_first_and_duplicates_are_typed():
    c = in_process("pipedrive", "demo")
    k = c.connector
    existing = c.sandbox.state["organizations"]["4"]["name"]
    email = c.sandbox.state["persons"]["2"]["emails"][0]["value"]
    results = k.update_records([
        RecordWrite("o1", "company", None, {"name": existing.upper()}),
        RecordWrite("p1", "person", None, {"name": "Someone Else", "email": email}),
        RecordWrite("o2", "company", None, {"name": "Entirely New Widgets Ltd", "address_locality": "Leeds"}),
    ])
    assert isinstance(results[0].error, Conflict) and results[0].error.existing_id == "4"
    assert isinstance(results[1].error, Conflict) and results[1].error.existing_id == "2"
    assert results[2].ok and c.sandbox.state["organizations"][results[2].id]["name"] == "Entirely New Widgets Ltd"
    assert _count(c.sandbox, "GET", r"/api/v2/(persons|organizations)/search") == 3
    assert _count(c.sandbox, "POST", r"/api/v2/(persons|organizations)") == 1


def test_a_create_whose_answer_is_lost_is_settled_by_search():
    c = in_process("pipedrive", "demo")
    c.sandbox.faults.append(Fault("reset_after_commit", nth=1, match=r"POST /api/v2/organizations$"))
    res = c.connector.update_records([RecordWrite("o", "company", None, {"name": "Lost Answer Ltd"})])
    assert res[0].ok
    names = [o["name"] for o in c.sandbox.state["organizations"].values()]
    assert names.count("Lost Answer Ltd") == 1 and res[0].id == str(len(names))


def test_per_record_errors_do_not_stop_the_batch():
    c = in_process("pipedrive", "demo")
    k = c.connector
    tax = k.default_mapping()["company"]["tax_id"]
    results = k.update_records([
        RecordWrite("ok", "company", "1", {"name": "Fine Ltd"}),
        RecordWrite("unknown", "company", "1", {"favourite_colour": "blue"}),
        RecordWrite("missing", "company", "99999", {"name": "Ghost"}),
        RecordWrite("toolong", "company", "2", {tax: "X" * 300}),
        RecordWrite("blank", "company", "3", {"name": ""}),
        RecordWrite("ok2", "person", "1", {"job_title": "Buyer"}),
    ])
    assert [r.key for r in results] == ["ok", "unknown", "missing", "toolong", "blank", "ok2"]
    assert results[0].ok and results[5].ok
    assert isinstance(results[1].error, ValidationRejected) and results[1].error.field == "favourite_colour"
    assert isinstance(results[2].error, NotFound)
    assert isinstance(results[3].error, ValidationRejected) and results[3].error.field == tax
    assert isinstance(results[4].error, ValidationRejected) and results[4].error.field == "name"


# -- limits -------------------------------------------------------------------------------------------

def test_a_429_on_a_write_is_retried():
    c = in_process("pipedrive", "demo")
    c.sandbox.faults.append(Fault("429", nth=1, match="POST .*"))
    res = c.connector.update_records([RecordWrite("n", "company", None, {"name": "Retry Me Ltd"})])
    assert res[0].ok
    assert _count(c.sandbox, "POST", "/api/v2/organizations", 429) == 1
    assert _count(c.sandbox, "POST", "/api/v2/organizations", 200) == 1
    assert [o["name"] for o in c.sandbox.state["organizations"].values()].count("Retry Me Ltd") == 1


def test_a_500_on_a_read_is_retried():
    c = in_process("pipedrive", "demo")
    c.sandbox.faults.append(Fault("500", nth=1, match="GET /api/v2/organizations$"))
    assert len(c.connector.read_records("company", None).records) == 162
    assert _count(c.sandbox, "GET", "/api/v2/organizations", 500) == 1


def test_burst_limit_answers_429_with_retry_after_and_ratelimit_headers():
    c = in_process("pipedrive", "demo")
    c.sandbox.burst_limit = 3
    headers = []
    c.sandbox.exchange_hooks.append(lambda req, resp: headers.append((resp.status, dict(resp.headers))))
    k = _pacing_connector(c)
    for n in range(1, 9):
        assert k.get_records("company", [str(n)])[0].id == str(n)
    limited = [h for s, h in headers if s == 429]
    assert limited and all(int(h["Retry-After"]) >= 1 for h in limited)
    ok = [h for s, h in headers if s == 200]
    assert all(h["x-ratelimit-limit"] == "3" and "x-ratelimit-remaining" in h and "x-ratelimit-reset" in h
               for h in ok)


def test_search_has_its_own_tighter_limit():
    c = in_process("pipedrive", "demo")
    k = _pacing_connector(c)
    writes = [RecordWrite(f"n{n}", "company", None, {"name": f"Search Limited {n} Ltd"}) for n in range(14)]
    assert all(r.ok for r in k.update_records(writes))
    assert _count(c.sandbox, "GET", "/api/v2/organizations/search", 429) == 0  # the connector paces itself


def test_token_costs_are_charged_from_the_daily_budget_and_exhaustion_is_daily():
    noon = dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(12), tzinfo=dt.UTC).timestamp()
    c = in_process("pipedrive", "demo", clock=lambda: noon)  # the budget's day never turns during the test
    k = c.connector
    start = c.sandbox.tokens_used_today()
    k.read_records("company", None)  # one v2 list: 10 tokens
    assert c.sandbox.tokens_used_today() - start == 10
    c.sandbox.state["budget"]["used"] = c.sandbox.daily_budget - 5
    with pytest.raises(RateLimited) as info:
        k.read_records("person", None)
    assert info.value.daily and info.value.retry_after > 60
    assert k.company_name()  # users/me costs 2 tokens: still inside the budget


# -- deals -------------------------------------------------------------------------------------------

def test_deals_read_with_products_and_won_from_status():
    c = in_process("pipedrive", "demo")
    changes = c.connector.read_deals(None)
    assert changes.full and len(changes.records) == 60
    assert changes.requests == 4  # deals, archived deals, deal products (60 deals), product codes
    data = demo_data()
    for deal, demo in zip(sorted(changes.records, key=lambda d: int(d.id)), data.deals, strict=True):
        assert deal.won == (demo.stage == "won")
        assert deal.currency == demo.currency
        assert isinstance(deal.amount, Decimal) and deal.amount == demo.amount
        assert [(li.sku, li.quantity, li.unit_price, li.discount_percent) for li in deal.line_items] == [
            (line.sku, line.quantity, line.unit_price, line.discount_percent) for line in demo.lines]
        assert deal.company_id == str(data.companies.index(
            next(co for co in data.companies if co.key == demo.company_key)) + 1)
        if deal.won:
            assert deal.close_date == dt.date.fromisoformat(demo.close_date)


def test_a_renamed_won_stage_still_counts_as_won():
    c = in_process("pipedrive", "demo")
    k = c.connector
    first = {d.id: d.won for d in k.read_deals(None).records}
    stages = {s["name"]: s["id"] for s in c.sandbox.state["stages"].values()}
    c.sandbox.rename_stage(stages["Closed"], "Lost cause")  # where every won deal sits
    c.sandbox.rename_stage(stages["Qualified"], "Won")  # a stage of open and lost deals
    again = {d.id: d.won for d in k.read_deals(None).records}
    assert again == first and sum(again.values()) == sum(1 for d in demo_data().deals if d.stage == "won")
    # Moving a deal into the last stage does not win it; setting the status does.
    open_deal = next(d for d in c.sandbox.state["deals"].values() if d["status"] == "open")
    cursor = k.read_deals(None).cursor
    c.sandbox.advance(2)
    k.update_deals([RecordWrite("s", "deal", str(open_deal["id"]), {"stage_id": str(stages["Closed"])})])
    moved = k.read_deals(cursor)
    assert [(d.id, d.won) for d in moved.records] == [(str(open_deal["id"]), False)]
    k.update_deals([RecordWrite("w", "deal", str(open_deal["id"]), {"status": "won"})])
    won = k.read_deals(moved.cursor).records
    assert [(d.id, d.won) for d in won] == [(str(open_deal["id"]), True)]
    assert won[0].close_date == dt.datetime.fromtimestamp(c.sandbox.now(), dt.UTC).date()


def test_deal_deletions_archiving_and_product_changes_are_seen():
    c = in_process("pipedrive", "demo")
    k = c.connector
    cursor = k.read_deals(None).cursor
    c.sandbox.advance(2)
    c.sandbox.delete("deals", 3)
    c.sandbox.edit("deals", 4, is_archived=True)
    resp = k.api.request("POST", "/api/v2/deals/5/products", json_body={
        "product_id": 1, "item_price": 100, "quantity": 2, "discount": 50, "discount_type": "amount",
        "tax": 20, "tax_method": "exclusive"})
    assert resp.status_code == 201 and resp.json()["data"]["sum"] == 180
    changes = k.read_deals(cursor)
    assert changes.deleted_ids == ["3"]
    by_id = {d.id: d for d in changes.records}
    assert set(by_id) == {"4", "5"} and by_id["4"].archived and not by_id["5"].archived
    added = by_id["5"].line_items[-1]
    assert (added.sku, added.quantity, added.unit_price, added.discount_percent) == \
        ("CONS-HR", Decimal(2), Decimal(100), Decimal(25))
    full = k.read_deals(None)
    assert "3" not in {d.id for d in full.records} and {d.id: d.archived for d in full.records}["4"]


def test_ensure_deal_fields_creates_missing_once_and_update_deals_writes_them():
    c = in_process("pipedrive", "demo")
    k = c.connector
    wanted = [FieldInfo("crossledger_invoice_status", "Invoice status"),
              FieldInfo("crossledger_amount_paid", "Amount paid", "number"),
              FieldInfo("crossledger_last_payment", "Last payment date", "date")]
    made = k.ensure_deal_fields(wanted)
    assert set(made) == {f.name for f in wanted} and all(HASH.match(v) for v in made.values())
    assert _count(c.sandbox, "POST", "/api/v1/dealFields") == 3
    types = {f["key"]: f["field_type"] for f in c.sandbox.state["fields"]["deal"]}
    assert [types[made[f.name]] for f in wanted] == ["varchar", "double", "date"]
    assert k.ensure_deal_fields(wanted) == made and _count(c.sandbox, "POST", "/api/v1/dealFields") == 3
    before = k.api.request_count
    results = k.update_deals([
        RecordWrite("d1", "deal", "1", {made["crossledger_invoice_status"]: "Paid",
                                        made["crossledger_amount_paid"]: "1234.56",
                                        made["crossledger_last_payment"]: "2026-04-30"}),
        RecordWrite("d2", "deal", "2", {made["crossledger_amount_paid"]: "abc"}),
        RecordWrite("d3", "deal", "1", {made["crossledger_last_payment"]: ""}),
    ])
    assert k.api.request_count - before == 2  # one PATCH per deal; the bad number never leaves
    assert results[0].ok and results[2].ok and isinstance(results[1].error, ValidationRejected)
    custom = c.sandbox.state["deals"]["1"]["custom_fields"]
    assert custom[made["crossledger_amount_paid"]] == "1234.56" and custom[made["crossledger_invoice_status"]] == "Paid"
    assert custom[made["crossledger_last_payment"]] is None
    deal = next(d for d in k.read_deals(None).records if d.id == "1")
    assert deal.properties[made["crossledger_amount_paid"]] == "1234.56"
