"""An ambiguous match picked on the Review page: the next sync links the record to the customer the
bookkeeper chose (or makes a new one), with no duplicate and without the record having to change."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from sqlalchemy import select

from app.ops import conflicts, status
from app.store.db import Store
from app.store.models import Link, Quarantine, Workspace
from app.sync.engine import SyncEngine
from tests.shots import screenshot_dir
from tests.support import in_process


@pytest.fixture
def world(tmp_path):
    """Two Xero contacts share the CRM company's email: the sync cannot tell which one it is."""
    crm, acct = in_process("hubspot", "empty"), in_process("xero", "empty")
    first = acct.sandbox.add_contact({"Name": "Harbour Bakery (Leeds)", "EmailAddress": "accounts@harbour.example",
                                      "TaxNumber": ""})
    second = acct.sandbox.add_contact({"Name": "Harbour Bakery (York)", "EmailAddress": "accounts@harbour.example"})
    rid = crm.sandbox.create("companies", name="Harbour Bakery", billing_email="accounts@harbour.example",
                             country="GB")
    store = Store(f"sqlite:///{tmp_path}/w.db")
    with store.session() as s:
        ws = Workspace(name="Harbour Books", crm_provider="hubspot", accounting_provider="xero", settings={})
        s.add(ws)
        s.flush()
        ws_id = ws.id

    def sync():
        result = SyncEngine(store, ws_id, crm.connector, acct.connector).run()
        assert result.status == "ok", result.errors
        return result

    sync()
    yield store, ws_id, rid, (first, second), sync, acct
    crm.connector.close()
    acct.connector.close()


def _links(store, ws_id):
    with store.session() as s:
        return {(lk.crm_id, lk.acct_id, lk.how) for lk in s.scalars(select(Link).where(
            Link.workspace_id == ws_id, Link.object_type == "customer"))}


def test_picking_a_candidate_links_that_one_on_the_next_sync(world):
    store, ws_id, rid, (first, second), sync, acct = world
    [match] = conflicts.ambiguous_matches(store, ws_id)
    assert {c.acct_id for c in match.candidates} == {first, second}
    assert {c.name for c in match.candidates} == {"Harbour Bakery (Leeds)", "Harbour Bakery (York)"}
    assert "Pick the right one on the Review page" in match.explanation

    conflicts.pick_match(store, ws_id, "company", rid, second)
    assert conflicts.ambiguous_matches(store, ws_id)[0].picked == second
    before = len(acct.connector.read_customers(None).records)
    sync()  # the CRM record did not change: the pick alone makes the sync look at it again
    assert _links(store, ws_id) == {(rid, second, "manual")}
    assert conflicts.ambiguous_matches(store, ws_id) == []
    assert len(acct.connector.read_customers(None).records) == before  # nothing created
    assert sync().counts["writes"] == 0


def test_none_of_these_creates_one_customer_of_its_own(world):
    store, ws_id, rid, pair, sync, acct = world
    before = len(acct.connector.read_customers(None).records)
    conflicts.pick_match(store, ws_id, "company", rid, "new")
    sync()
    [(crm_id, acct_id, how)] = _links(store, ws_id)
    assert acct_id not in pair
    assert crm_id == rid and how == "created"
    assert len(acct.connector.read_customers(None).records) == before + 1
    with store.session() as s:
        assert not s.scalars(select(Quarantine)).all()


def test_the_review_page_offers_each_candidate_and_a_new_one(world, qtbot):
    from app.ui.app import make_application
    from app.ui.review_page import ReviewPage

    store, ws_id, rid, (first, second), sync, _acct = world
    make_application()
    page = ReviewPage(store)
    qtbot.addWidget(page)
    [ws] = [w for w in status.workspace_statuses(store) if w.id == ws_id]
    page.set_workspace(ws)
    page.resize(900, 600)
    page.show()
    panel = page.match_panel
    assert page.detail.currentWidget() is panel
    assert set(panel.buttons) == {first, second, "new"}
    assert "Pick the right one above" in panel.next_step.text()
    page.grab().save(str(screenshot_dir() / "review-pick-match.png"))
    panel.buttons[first].click()
    assert panel.buttons[first].text() == "Picked" and not panel.buttons[first].isEnabled()
    assert "You picked 'Harbour Bakery (Leeds)'" in panel.next_step.text()
    assert page.apply_button.isVisible()  # Apply now syncs straight away
    sync()
    assert _links(store, ws_id) == {(rid, first, "manual")}
