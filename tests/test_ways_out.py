"""One-click ways out of invoices held because their ledger customer was archived, merged or deleted (issue 21).

Each ledger's sandbox, in-process: the customer is archived, merged or deleted through the ledger's API (or its
web app's helper), the deals are held as the sync holds them, and taking the way out makes the customer active
again, moves the link or removes it, then releases every hold waiting on it; a refusal changes nothing and
says why.
"""

from __future__ import annotations

import pytest

from app.ops import changes, status, ways_out
from app.ops.history import field_changes
from app.ops.undo import undoable_runs
from app.ops.workspaces import UserError
from app.store import lease
from tests.ways_out_world import World, make_world

HARBOUR = "Harbour Lights Ltd"
REACTIVATE = "Make 'Harbour Lights Ltd' active again"
ARCHIVED = "'Harbour Lights Ltd' is archived (inactive) in the ledger. New invoices wait until it is made active again."


@pytest.fixture(params=["quickbooks", "xero", "zohobooks"])
def world(request, tmp_path):
    with make_world(tmp_path, request.param) as w:
        yield w


def _archived_with_two_deals(w: World) -> str:
    cid = w.acct_ids[HARBOUR]
    w.archive(HARBOUR)
    assert w.fate(cid) == "archived"
    w.hold("901", "Lighthouse refit", HARBOUR, "reactivate", cid, REACTIVATE, ARCHIVED)
    w.hold("902", "Lantern order", HARBOUR, "reactivate", cid, REACTIVATE, ARCHIVED)
    return cid


def test_reactivating_an_archived_customer_releases_every_invoice_waiting_on_it(world: World):
    w = world
    cid = _archived_with_two_deals(w)
    other = w.acct_ids["Quayside Joinery"]
    w.hold("903", "Quay steps", "Quayside Joinery", "reactivate", other, "Make 'Quayside Joinery' active again",
           "'Quayside Joinery' is archived (inactive) in the ledger.")

    offers = ways_out.ways_out(w.store, w.ws_id)
    [way] = [o for o in offers if o.target_id == cid]  # two deals wait on it: one way out
    assert len(offers) == 2
    assert (way.kind, way.label, way.reason, way.target_name, way.crm_name) == (
        "reactivate", REACTIVATE, ARCHIVED, HARBOUR, HARBOUR)
    assert [x.name for x in way.waiting] == ["Lighthouse refit", "Lantern order"]

    heard: list[changes.Changed] = []
    stop = changes.listen(w.store, heard.append)
    try:
        taken = ways_out.take(w.store, w.tokens, w.name, way.key, **w.options())
    finally:
        stop()
    label = {"quickbooks": "QuickBooks Online"}.get(w.ledger, w.label)
    assert taken.ok, taken.message
    assert taken.message == (f"'{HARBOUR}' is active again in {label}. The next sync makes the invoices for "
                             "'Lighthouse refit' and 'Lantern order'.")
    assert w.fate(cid) == "active"  # in the ledger itself
    assert heard and heard[-1].workspace_id == w.ws_id and heard[-1].touches(changes.QUARANTINE)

    # Both holds are released (the next sync plans them again); the other customer's still waits.
    held = w.held()
    for deal in ("901", "902"):
        assert held[deal]["release"] is True
        assert held[deal]["items"] == [{"field": "customer", "message": f"Released by you: {taken.message}"}]
    assert "release" not in held["903"]
    assert [o.target_id for o in ways_out.ways_out(w.store, w.ws_id)] == [other]

    # The history tells it, under its own run.
    [change] = [c for c in field_changes(w.store, w.name) if c.run_id == taken.run_id]
    assert (change.side, change.record_id, change.field, change.before, change.after, change.trigger) == (
        "accounting", cid, "active", "false", "true", "activate")

    # A run of its own in the Activity, but the header's and tray's "last sync" is still the sync's.
    [shown] = status.workspace_statuses(w.store)
    assert shown.last_run is not None and shown.last_run.trigger == "manual" and shown.last_run.id < taken.run_id
    assert status.recent_runs(w.store, w.ws_id)[0].trigger == "activate"

    with pytest.raises(UserError, match="no longer waiting"):  # taken already
        ways_out.take(w.store, w.tokens, w.name, way.key, **w.options())


def test_a_ledger_refusal_leaves_the_hold_and_says_why(tmp_path):
    with make_world(tmp_path, "xero") as w:
        loser, survivor = w.acct_ids[HARBOUR], w.acct_ids["Quayside Joinery"]
        w.books.user_merge_contacts(loser, survivor)  # Xero will not reactivate a merged contact
        w.hold("901", "Lighthouse refit", HARBOUR, "reactivate", loser, REACTIVATE, ARCHIVED)
        [way] = ways_out.ways_out(w.store, w.ws_id)
        before = w.held()

        taken = ways_out.take(w.store, w.tokens, w.name, way.key, **w.options())
        assert taken.status == "provider"
        assert taken.message == (
            f"Xero did not make '{HARBOUR}' active again: Xero merged this contact into another one; link the CRM "
            "record to that contact instead. Nothing was changed; the invoice for 'Lighthouse refit' still waits.")
        assert w.held() == before and [o.key for o in ways_out.ways_out(w.store, w.ws_id)] == [way.key]
        assert [c for c in field_changes(w.store, w.name) if c.trigger == "activate"] == []


def test_nothing_is_taken_while_a_sync_runs(tmp_path):
    with make_world(tmp_path, "zohobooks") as w:
        _archived_with_two_deals(w)
        [way] = ways_out.ways_out(w.store, w.ws_id)
        assert lease.acquire(w.store, w.ws_id, "another-sync")
        taken = ways_out.take(w.store, w.tokens, w.name, way.key, **w.options())
        assert taken.status == "refused" and "A sync of 'Harbour Books' is running" in taken.message
        assert w.fate(w.acct_ids[HARBOUR]) == "archived" and "release" not in w.held()["901"]


def _merged_into_a_new_customer(w: World) -> str:
    """The ledger customer merged into another one, made in the ledger by a bookkeeper: that one's id."""
    survivor = w.new_customer("Harbour Lights Limited")
    if w.ledger == "xero":
        w.books.user_merge_contacts(w.acct_ids[HARBOUR], survivor)
    else:
        w.books.user_merge(w.acct_ids[HARBOUR], survivor)
    label = "Link 'Harbour Lights Ltd' to 'Harbour Lights Limited'"
    for deal, name in (("901", "Lighthouse refit"), ("902", "Lantern order")):
        w.hold(deal, name, HARBOUR, "link_to_survivor", survivor, label,
               "'Harbour Lights Ltd' was merged into 'Harbour Lights Limited' in the ledger.")
    return survivor


@pytest.mark.parametrize("ledger", ["quickbooks", "xero"])
def test_linking_to_the_surviving_customer_moves_the_link_and_can_be_undone(tmp_path, ledger):
    with make_world(tmp_path, ledger) as w:
        loser = w.acct_ids[HARBOUR]
        survivor = _merged_into_a_new_customer(w)
        [way] = ways_out.ways_out(w.store, w.ws_id)
        assert way.kind == "link_to_survivor" and len(way.waiting) == 2

        taken = ways_out.take(w.store, w.tokens, w.name, way.key, **w.options())
        label = {"quickbooks": "QuickBooks Online"}.get(ledger, w.label)
        assert taken.ok and taken.message == (
            f"'{HARBOUR}' is now linked to 'Harbour Lights Limited' in {label}. The next sync makes the invoices "
            "for 'Lighthouse refit' and 'Lantern order' for 'Harbour Lights Limited'.")
        link = w.link_of(HARBOUR)
        assert (link.acct_id, link.how) == (survivor, "link")
        assert all(r["release"] for r in w.held().values()) and ways_out.ways_out(w.store, w.ws_id) == []
        [change] = [c for c in field_changes(w.store, w.name) if c.run_id == taken.run_id]
        assert (change.side, change.field, change.before, change.after, change.trigger) == (
            "local", "linked_customer", loser, survivor, "relink")
        assert taken.run_id in undoable_runs(w.store, w.name)  # 'crossledger undo' takes the link back


def test_a_survivor_linked_to_another_crm_record_is_refused_with_what_to_do(tmp_path):
    with make_world(tmp_path, "quickbooks") as w:
        loser, survivor = w.acct_ids[HARBOUR], w.acct_ids["Quayside Joinery"]
        w.books.user_merge(loser, survivor)
        w.hold("901", "Lighthouse refit", HARBOUR, "link_to_survivor", survivor,
               "Link 'Harbour Lights Ltd' to 'Quayside Joinery'", "merged")
        [way] = ways_out.ways_out(w.store, w.ws_id)
        taken = ways_out.take(w.store, w.tokens, w.name, way.key, **w.options())
        assert taken.status == "refused"
        assert taken.message.startswith("'Quayside Joinery' is already linked to 'Quayside Joinery' in HubSpot")
        assert f"crossledger unlink \"Harbour Books\" {w.crm_ids['Quayside Joinery']}" in taken.message
        assert taken.message.endswith("Nothing was changed.")
        assert w.link_of(HARBOUR).acct_id == loser and "release" not in w.held()["901"]


def test_unlinking_a_deleted_customer_lets_the_next_sync_make_it_again(tmp_path):
    with make_world(tmp_path, "zohobooks") as w:
        gone = w.acct_ids[HARBOUR]
        w.books.user_delete("contacts", gone)  # never invoiced: Zoho Books deletes it for good
        assert w.fate(gone) == "deleted"
        w.hold("901", "Lighthouse refit", HARBOUR, "unlink", None, "Unlink 'Harbour Lights Ltd'",
               "'Harbour Lights Ltd' was deleted in the ledger.")
        [way] = ways_out.ways_out(w.store, w.ws_id)
        taken = ways_out.take(w.store, w.tokens, w.name, way.key, **w.options())
        assert taken.ok and taken.message == (
            "'Harbour Lights Ltd' is no longer linked to a customer in Zoho Books. The next sync creates it there "
            "again (or links a customer with the same details), then makes the invoice for 'Lighthouse refit'.")
        assert w.crm_ids[HARBOUR] not in {lk.crm_id for lk in _links(w)}
        held = w.held()
        assert held["901"]["release"] and held[w.crm_ids[HARBOUR]]["release"]  # the company is planned again
        [change] = [c for c in field_changes(w.store, w.name) if c.run_id == taken.run_id]
        assert (change.field, change.before, change.after) == ("linked_customer", gone, None)

        result = w.sync()  # the customer is made again and linked
        assert result.status == "ok", result.errors
        again = w.link_of(HARBOUR).acct_id
        assert again != gone and w.fate(again) == "active"


def _links(w: World):
    from app.ops.status import linked_records

    return linked_records(w.store, w.ws_id)
