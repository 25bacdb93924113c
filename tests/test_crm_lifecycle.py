"""CRM companies and people deleted or merged, as each CRM connector reports them: against its sandbox over
real HTTP on 127.0.0.1, the merges done through the providers' own merge endpoints where they have one."""

from __future__ import annotations

import httpx

from tests.support import over_http


def call(c, method: str, path: str, *, scheme: str = "Bearer", **kw) -> httpx.Response:
    token = c.tokens.load(c.conn.id).access_token
    with httpx.Client(base_url=c.url, timeout=10) as http:
        return http.request(method, path, headers={"Authorization": f"{scheme} {token}"}, **kw)


def fates(c, object_type: str, ids: list[str], names: dict[str, str] | None = None) -> dict[str, tuple]:
    return {f.id: (f.state, f.survivor_id, f.certain) for f in c.connector.record_fates(object_type, ids, names)}


def test_hubspot_merged_companies_name_their_survivor_and_deleted_ones_are_archived():
    with over_http("hubspot", "demo") as c:
        keep, lose, gone, live = "9800001", "9800002", "9800003", "9800004"
        merged = call(c, "POST", "/crm/v3/objects/companies/merge",
                      json={"primaryObjectId": keep, "objectIdToMerge": lose})
        assert merged.status_code == 200 and merged.json()["id"] == keep
        assert call(c, "DELETE", f"/crm/v3/objects/companies/{gone}").status_code == 204
        got = c.connector.record_fates("company", [keep, lose, gone, live, "1"])
        assert [(f.id, f.state, f.survivor_id) for f in got] == [
            (keep, "active", None), (lose, "merged", keep), (gone, "deleted", None), (live, "active", None),
            ("1", "missing", None)]
        assert got[1].survivor_name == "Oakridge Analytics Co" and got[1].certain
        assert got[2].name == "Fjord Dental KG"


def test_salesforce_merge_losers_carry_their_master_and_deleted_records_are_seen_with_query_all():
    with over_http("salesforce", "demo") as c:
        sb = c.sandbox
        winner, loser, gone, live = sb.ids("Account")[:4]
        sb.merge("Account", winner, loser)  # Salesforce merges through SOAP merge() or the web app
        sb.delete("Account", gone)
        got = {f.id: f for f in c.connector.record_fates("company", [winner, loser, gone, live, "001000000000000AAA"])}
        assert (got[loser].state, got[loser].survivor_id, got[loser].certain) == ("merged", winner, True)
        assert got[loser].survivor_name == sb.record("Account", winner)["Name"]
        assert got[gone].state == "deleted" and got[winner].state == got[live].state == "active"
        assert got["001000000000000AAA"].state == "missing"
        person = sb.ids("Contact")[0]
        assert c.connector.record_fates("person", [person])[0].state == "active"


def test_pipedrive_merge_through_its_api_reads_as_a_deletion_and_is_proposed_by_name():
    with over_http("pipedrive", "demo") as c:
        sb = c.sandbox
        org = next(d["org_id"] for d in sb.state["deals"].values() if d.get("org_id"))
        name = sb.state["organizations"][str(org)]["name"]
        live, gone = [k for k in sb.state["organizations"] if k != str(org)][:2]
        twin = call(c, "POST", "/api/v2/organizations", json={"name": name}).json()["data"]["id"]
        deals = [d["id"] for d in sb.state["deals"].values() if d.get("org_id") == org]
        merged = call(c, "PUT", f"/v1/organizations/{org}/merge", json={"merge_with_id": twin})
        assert merged.status_code == 200 and merged.json()["data"]["id"] == twin
        assert all(sb.state["deals"][str(d)]["org_id"] == twin for d in deals)  # its deals moved over
        assert call(c, "GET", f"/api/v2/organizations/{org}").status_code == 404
        assert call(c, "DELETE", f"/api/v2/organizations/{gone}").status_code == 200
        got = fates(c, "company", [live, str(org), gone], {str(org): name, gone: "Someone Else Ltd"})
        assert got == {live: ("active", None, True), str(org): ("merged", str(twin), False),
                       gone: ("deleted", None, True)}
        assert fates(c, "company", [str(org)]) == {str(org): ("deleted", None, True)}  # no name known
        bad = call(c, "PUT", f"/v1/organizations/{live}/merge", json={"merge_with_id": int(live)})
        assert bad.status_code == 400


def test_zoho_crm_merge_through_its_api_leaves_the_child_in_the_recycle_bin_and_is_proposed_by_name():
    with over_http("zohocrm", "demo") as c:
        sb = c.sandbox
        accounts = list(sb.state["records"]["Accounts"])
        keep, gone, live = accounts[1], accounts[2], accounts[0]
        made = call(c, "POST", "/crm/v8/Accounts", scheme="Zoho-oauthtoken",
                    json={"data": [{"Account_Name": "Granite Brewing Ltd (dup)"}]}).json()["data"][0]
        twin = made["details"]["id"]
        merged = call(c, "POST", f"/crm/v8/Accounts/{keep}/actions/merge", scheme="Zoho-oauthtoken",
                      json={"merge": [{"data": [{"id": twin, "_fields": []}]}]})
        assert merged.status_code == 200 and merged.json()["merge"][0]["code"] == "SUCCESS"
        status = call(c, "GET", f"/crm/v8/Accounts/{keep}/actions/merge", scheme="Zoho-oauthtoken")
        assert status.json()["merge"][0]["status"] == "COMPLETED"
        sb.delete("Accounts", gone)
        got = fates(c, "company", [live, twin, gone, "4876876999999999999"])
        assert got[live] == ("active", None, True) and got[gone] == ("deleted", None, True)
        assert got[twin] == ("deleted", None, True)  # its own name is not the survivor's: no guess
        assert got["4876876999999999999"] == ("missing", None, True)
        # Account names are unique in Zoho CRM, people's are not: a duplicate person with the survivor's exact
        # name is proposed as merged into it.
        people = [call(c, "POST", "/crm/v8/Contacts", scheme="Zoho-oauthtoken",
                       json={"data": [{"First_Name": "Ada", "Last_Name": "Byron", "Email": f"ada{n}@example.org"}]}
                       ).json()["data"][0]["details"]["id"] for n in (1, 2)]
        call(c, "POST", f"/crm/v8/Contacts/{people[0]}/actions/merge", scheme="Zoho-oauthtoken",
             json={"merge": [{"data": [{"id": people[1], "_fields": [{"api_name": "Email"}]}]}]})
        assert sb.state["records"]["Contacts"][people[0]]["Email"] == "ada2@example.org"  # the field kept
        got = c.connector.record_fates("person", [people[1]])[0]
        assert (got.state, got.survivor_id, got.certain, got.survivor_name) == ("merged", people[0], False,
                                                                                 "Ada Byron")
