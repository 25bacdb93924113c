"""The planner as a pure function: a table of cases, no network, no database."""

from __future__ import annotations

import datetime as dt

from app.domain.models import AccountingCustomer, CrmRecord, Party
from app.sync.planner import LinkState, PlanInput, plan

MAPPING = {
    "company": {"name": "name", "email": "email", "phone": "phone", "country": "country", "tax_id": "vat"},
    "person": {"first_name": "firstname", "last_name": "lastname", "email": "email", "country": "country"},
}


def company(cid: str, **props) -> CrmRecord:
    return CrmRecord("company", cid, {"country": "GB", **props},
                     updated_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))


def ledger(cid: str, name: str, **fields) -> AccountingCustomer:
    return AccountingCustomer(cid, Party("company", name).with_fields({"country": "GB", **fields}),
                              version="0", raw_name=name)


def inp(records, ledger_customers=(), links=None, touched_acct=(), **kw) -> PlanInput:
    return PlanInput("ws", {(r.object_type, r.id): r for r in records}, {c.id: c for c in ledger_customers},
                     links or {}, set(touched_acct), MAPPING, **kw)


def test_new_company_is_created_once():
    p = plan(inp([company("1", name="Maple Bakery Ltd", email="a@maple.co")]))
    assert [c.display_name for c in p.creates] == ["Maple Bakery Ltd"]
    assert p.writes == 1


def test_existing_customer_is_matched_by_email_then_tax_id_then_name():
    records = [company("1", name="Maple Bakery Ltd", email="a@maple.co"),
               company("2", name="Cedar Ltd", vat="GB824504000"),
               company("3", name="HARBOUR DESIGN LIMITED")]
    customers = [ledger("L1", "Maple (old)", email="A@maple.co"), ledger("L2", "Cedar", tax_id="GB824504000"),
                 ledger("L3", "Harbour Design Ltd")]
    p = plan(inp(records, customers))
    assert p.creates == []
    assert {(lk.ref[1], lk.acct_id, lk.how) for lk in p.links} == {("1", "L1", "email"), ("2", "L2", "tax_id"),
                                                                   ("3", "L3", "name")}


def test_the_same_company_twice_in_the_crm_makes_one_customer():
    p = plan(inp([company("1", name="Acme Widgets Ltd"), company("2", name="ACME WIDGETS LIMITED")]))
    assert len(p.creates) == 1
    assert sorted(p.creates[0].refs) == [("company", "1"), ("company", "2")]


def test_invalid_record_is_quarantined_and_does_not_stop_the_rest():
    p = plan(inp([company("1", name="Good Ltd"), company("2", name="Bad Ltd", email="bad@@x.com")]))
    assert [q.ref for q in p.quarantined] == [("company", "2")]
    assert len(p.creates) == 1


def test_ambiguous_match_is_held_back_with_both_candidates_named():
    p = plan(inp([company("1", name="X", email="ops@shared.com")],
                 [ledger("L1", "One", email="ops@shared.com"), ledger("L2", "Two", email="ops@shared.com")]))
    assert p.creates == [] and p.links == []
    assert "'One'" in p.quarantined[0].problems[0].message and "'Two'" in p.quarantined[0].problems[0].message


def test_a_taken_display_name_is_disambiguated_not_duplicated():
    # An inactive customer still holds the name in the ledger.
    inactive = AccountingCustomer("L9", Party("company", "Maple Bakery Ltd"), active=False, raw_name="Maple Bakery Ltd")
    p = plan(inp([company("1", name="Maple Bakery Ltd")], [inactive]))
    assert p.creates[0].display_name == "Maple Bakery Ltd (2)"


def linked(crm_fields: dict, acct_fields: dict) -> dict:
    return {("company", "1"): LinkState("L1", "created", {"crm": crm_fields, "acct": acct_fields})}


BASE = {"name": "Maple Ltd", "email": "a@maple.co", "phone": None, "address_line1": None, "address_line2": None,
        "city": None, "region": None, "postal_code": None, "country": "GB", "tax_id": None}


def test_nothing_changed_means_no_writes():
    p = plan(inp([company("1", name="Maple Ltd", email="a@maple.co")], [ledger("L1", "Maple Ltd", email="a@maple.co")],
                 linked(BASE, BASE)))
    assert p.writes == 0 and p.conflicts == []


def test_crm_edit_flows_to_the_ledger():
    p = plan(inp([company("1", name="Maple Ltd", email="new@maple.co")],
                 [ledger("L1", "Maple Ltd", email="a@maple.co")], linked(BASE, BASE)))
    assert [(u.acct_id, u.changes) for u in p.updates] == [("L1", {"email": ("a@maple.co", "new@maple.co")})]


def test_ledger_edit_flows_back_to_the_crm_when_two_way():
    p = plan(inp([company("1", name="Maple Ltd", email="a@maple.co")],
                 [ledger("L1", "Maple Ltd", email="ledger@maple.co")], linked(BASE, BASE), touched_acct={"L1"}))
    assert p.updates == []
    assert p.crm_updates[0].properties == {"email": "ledger@maple.co"}


def test_one_way_crm_to_accounting_never_writes_the_crm():
    p = plan(inp([company("1", name="Maple Ltd", email="a@maple.co")],
                 [ledger("L1", "Maple Ltd", email="ledger@maple.co")], linked(BASE, BASE), touched_acct={"L1"},
                 direction="crm_to_acct"))
    assert p.crm_updates == [] and p.updates == []


def test_both_sides_changed_crm_owns_contact_details_by_default():
    p = plan(inp([company("1", name="Maple Ltd", email="crm@maple.co")],
                 [ledger("L1", "Maple Ltd", email="ledger@maple.co")], linked(BASE, BASE), touched_acct={"L1"}))
    assert [(c.field, c.outcome) for c in p.conflicts] == [("email", "crm")]
    assert p.updates[0].changes == {"email": ("ledger@maple.co", "crm@maple.co")}


def test_ask_me_rule_leaves_the_conflict_open_and_writes_nothing():
    p = plan(inp([company("1", name="Maple Ltd", email="crm@maple.co")],
                 [ledger("L1", "Maple Ltd", email="ledger@maple.co")], linked(BASE, BASE), touched_acct={"L1"},
                 rules={"email": "ask"}))
    assert [(c.field, c.outcome) for c in p.conflicts] == [("email", "open")]
    assert p.writes == 0


def test_our_own_write_coming_back_is_not_a_change():
    after = {**BASE, "email": "new@maple.co"}
    p = plan(inp([company("1", name="Maple Ltd", email="new@maple.co")],
                 [ledger("L1", "Maple Ltd", email="new@maple.co")], linked(after, after), touched_acct={"L1"}))
    assert p.writes == 0 and p.conflicts == []


def test_person_in_a_company_is_not_a_customer_but_a_loose_person_is():
    people = [CrmRecord("person", "p1", {"firstname": "Ann", "lastname": "Lee"}, company_id="c1"),
              CrmRecord("person", "p2", {"firstname": "Bo", "lastname": "Chen", "email": "bo@gmail.com"})]
    p = plan(inp(people))
    assert [c.refs for c in p.creates] == [[("person", "p2")]]


def test_the_crms_echo_of_our_own_write_is_not_a_change_and_a_later_ledger_edit_wins():
    """We wrote '+44 20 7916 0013' to HubSpot, which keeps it as '+442079160013'. Then the bookkeeper
    changes the phone in the ledger: that edit must reach the CRM, not be undone as a 'conflict'."""
    written = {**BASE, "phone": "+44 20 7916 0013"}
    crm_now = company("1", name="Maple Ltd", email="a@maple.co", phone="+442079160013")
    p = plan(inp([crm_now], [ledger("L1", "Maple Ltd", email="a@maple.co", phone="+44 20 7946 0999")],
                 linked(written, written), touched_acct={"L1"}))
    assert p.conflicts == [] and p.updates == []
    assert p.crm_updates[0].properties == {"phone": "+44 20 7946 0999"}
    echo_only = plan(inp([crm_now], [ledger("L1", "Maple Ltd", email="a@maple.co", phone="+44 20 7916 0013")],
                         linked(written, written)))
    assert echo_only.writes == 0 and echo_only.conflicts == []  # nothing to send back either way


def test_case_of_an_email_and_spacing_are_not_changes():
    before = {**BASE, "email": "Accounts@Maple.co"}
    p = plan(inp([company("1", name="Maple  Ltd", email="accounts@maple.co")],
                 [ledger("L1", "Maple Ltd", email="Accounts@Maple.co")], linked(before, before)))
    assert p.writes == 0 and p.conflicts == []


def test_an_archived_name_is_free_where_the_ledger_frees_it():
    """Xero frees an archived contact's name; QuickBooks and Zoho Books keep it taken."""
    inactive = AccountingCustomer("L9", Party("company", "Maple Bakery Ltd"), active=False, raw_name="Maple Bakery Ltd")
    p = plan(inp([company("1", name="Maple Bakery Ltd")], [inactive], inactive_names_taken=False))
    assert p.creates[0].display_name == "Maple Bakery Ltd" and p.links[0].acct_id != "L9"


def test_a_name_differing_in_a_symbol_or_digit_is_a_customer_of_its_own():
    records = [company("1", name="C# Academy", email="hello@csharp.academy"), company("2", name="A&B"),
               company("3", name="Unit 1"), company("4", name="\t=1+1"), company("5", name="\uff1d1+1")]
    customers = [ledger("L1", "C++ Academy"), ledger("L2", "A+B"), ledger("L3", "Unit 7"), ledger("L4", "-1+1")]
    p = plan(inp(records, customers))
    assert p.links and all(lk.acct_id.startswith("create:") for lk in p.links)
    assert sorted(c.display_name for c in p.creates) == ["=1+1", "A&B", "C# Academy", "Unit 1"]
    assert sorted(c.refs for c in p.creates if c.display_name == "=1+1")[0] == [("company", "4"), ("company", "5")]


def test_a_look_alike_name_matches_the_same_customer():
    records = [company("1", name="Zw\u200bsp Trading"), company("2", name="\ufeffMAPLE BAKERY"),
               company("3", name="\uff28\uff41\uff52\uff42\uff4f\uff55\uff52 Design, Ltd.")]
    customers = [ledger("L1", "Zwsp Trading"), ledger("L2", "Maple Bakery Ltd"), ledger("L3", "Harbour Design")]
    p = plan(inp(records, customers))
    assert p.creates == []
    assert {(lk.ref[1], lk.acct_id) for lk in p.links} == {("1", "L1"), ("2", "L2"), ("3", "L3")}


def test_a_name_match_with_another_domain_or_tax_id_waits_for_a_person():
    records = [company("1", name="Atlas Motors Ltd", email="accounts@atlasmotors.com"),
               company("2", name="Cedar Foods", vat="GB824504000"),
               company("3", name="Heron Clinic", email="heron.clinic@gmail.com")]
    customers = [ledger("L1", "Atlas Motors", email="info@atlas-motors.de"),
                 ledger("L2", "Cedar Foods Ltd", tax_id="GB410423468"),
                 ledger("L3", "Heron Clinic", email="bookings@heronclinic.co.uk")]
    p = plan(inp(records, customers))
    assert p.creates == [] and [(lk.ref[1], lk.acct_id) for lk in p.links] == [("3", "L3")]
    held = {q.ref[1]: q for q in p.quarantined}
    assert held["1"].candidates == ("L1",) and held["2"].candidates == ("L2",)
    assert "atlasmotors.com" in held["1"].problems[0].message and "atlas-motors.de" in held["1"].problems[0].message
    assert "GB410423468" in held["2"].problems[0].message and "Review page" in held["2"].problems[0].message


def test_two_crm_companies_with_one_name_and_different_domains_are_two_customers():
    p = plan(inp([company("1", name="Atlas Motors", email="a@atlasmotors.com"),
                  company("2", name="Atlas Motors", email="b@atlas-motors.de")]))
    assert sorted(c.display_name for c in p.creates) == ["Atlas Motors", "Atlas Motors (2)"]


def test_hidden_characters_are_taken_out_of_what_is_written_and_the_history_says_so():
    p = plan(inp([company("1", name="\u202eevil.exe Trading"), company("2", name="Plain Ltd")]))
    made = {c.display_name: c for c in p.creates}
    assert set(made) == {"evil.exe Trading", "Plain Ltd"}
    assert made["evil.exe Trading"].rules()["name"] == "created+cleaned"
    assert made["Plain Ltd"].rules() == "created"
    from app.ops.history_export import rule_label
    assert "hidden characters" in rule_label("created+cleaned") and rule_label("created+cleaned").startswith("New")


def test_an_invisible_only_name_is_held_and_the_rest_go_on():
    p = plan(inp([company("1", name="\u200b\u200b"), company("2", name="Plain Ltd")]))
    assert [q.ref for q in p.quarantined] == [("company", "1")]
    assert "invisible" in p.quarantined[0].problems[0].message
    assert [c.display_name for c in p.creates] == ["Plain Ltd"]
