"""The HubSpot sandbox answers a search sorted by modification time alone (how an incremental read asks what
changed) without working out every record's values; the page, its order and the total must be exactly what the
general search gives, ties in modification time included (issue 20: the sandbox stands in for HubSpot's own
indexed search, so an idle cycle at 100,000 companies is not timed on a scan)."""

from __future__ import annotations

import httpx
import pytest

from app.sandbox.server import InProcessTransport
from tests.support import in_process

EVERYONE = {"filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "HAS_PROPERTY"}]}]}


@pytest.mark.parametrize("lag", [0.0, 5.0])
def test_a_search_by_modification_time_gives_the_general_search_s_pages(lag):
    c = in_process("hubspot", "demo", search_lag=lag)
    box = c.sandbox
    companies = list(box.state["objects"]["companies"])
    contacts = list(box.state["objects"]["contacts"])
    for rid in companies[:6]:  # a bulk edit: six companies at one millisecond
        box.edit("companies", rid, city="Leeds")
    with box.lock:
        stamp = box.state["objects"]["companies"][companies[0]]["u"]
        for rid in companies[:6]:
            box.state["objects"]["companies"][rid]["u"] = stamp
    box.archive("companies", companies[7])
    box.merge("contacts", contacts[0], contacts[1])
    box.advance(60)  # past the index's lag
    token = c.tokens.load(c.conn.id).access_token
    with httpx.Client(transport=InProcessTransport(box), base_url=c.url,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        def search(otype: str, body: dict) -> dict:
            box.advance(1)  # HubSpot answers 5 searches a second
            resp = http.post(f"/crm/v3/objects/{otype}/search", json=body)
            assert resp.status_code == 200, resp.text
            return resp.json()

        for otype, prop in (("companies", "hs_lastmodifieddate"), ("contacts", "lastmodifieddate"),
                            ("deals", "hs_lastmodifieddate")):
            for direction in ("DESCENDING", "ASCENDING"):
                for after, limit in ((0, 200), (0, 4), (3, 5), (40, 10), (0, 0)):
                    body = {"sorts": [{"propertyName": prop, "direction": direction}], "limit": limit,
                            "after": after, "properties": ["name", "city", "dealstage", "email", prop]}
                    fast, general = search(otype, body), search(otype, {**body, **EVERYONE})
                    assert fast == general, (otype, direction, after, limit)
        newest = search("companies", {"sorts": ["-hs_lastmodifieddate"], "limit": 10})
        assert [r["id"] for r in newest["results"]][:6] == sorted(companies[:6], key=int)
        assert companies[7] not in {r["id"] for r in newest["results"]}
        assert newest["total"] == len(companies) - 1
    c.connector.close()
