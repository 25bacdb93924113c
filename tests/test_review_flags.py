"""A flag (a deal lost after its invoice, a linked customer merged away) is something to look at, not two
values to choose between: the Review page says what happened and lets the bookkeeper mark it as seen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

from PySide6.QtCore import QThreadPool

from app.ops import conflicts, status
from app.ops.workspaces import add_workspace
from app.store.db import Store
from app.store.models import ConflictRow, Link, Mirror
from app.ui.app import make_application
from app.ui.review_page import ReviewPage
from tests.shots import screenshot_dir

SHOTS = screenshot_dir()
LOST = ("'Alder Landscaping – Rollout' was lost after it was invoiced. Void invoice 1035 if the sale fell "
        "through, or leave it if the customer still pays.")


def _store(tmp_path: Path) -> tuple[Store, int]:
    """A workspace with a city conflict on a company and a flag on an invoiced deal. The deal's invoice
    is 1035 in QuickBooks, which numbers its customers alike: customer 1035 is someone else."""
    store = Store(f"sqlite:///{tmp_path}/flags.db")
    ws = add_workspace(store, "Alder Books", "hubspot", "quickbooks")
    with store.session() as s:
        s.add(Mirror(workspace_id=ws.id, side="accounting", object_type="customer", remote_id="1035",
                     data={"name": "Jack Walker"}))
        deal_link = Link(workspace_id=ws.id, object_type="invoice", crm_type="deal", crm_id="77", acct_id="1035",
                         how="created", snapshot={})
        s.add(deal_link)
        s.add(Link(workspace_id=ws.id, object_type="customer", crm_type="company", crm_id="5", acct_id="58",
                   how="created", snapshot={"crm": {"name": "Granite Brewing Ltd"}}))
        s.flush()
        s.add(ConflictRow(workspace_id=ws.id, link_id=deal_link.id, crm_type="deal", crm_id="77", acct_id="1035",
                          field="invoice:won", crm_value="Alder Landscaping – Rollout", acct_value=LOST,
                          rule="ask", outcome="open"))
        s.add(ConflictRow(workspace_id=ws.id, crm_type="company", crm_id="5", acct_id="58", field="city",
                          crm_value="Leeds", acct_value="Leeds LS1", base_value="York", rule="ask", outcome="open"))
    return store, ws.id


def test_a_flag_is_named_by_its_own_record_and_seeing_it_writes_nothing(tmp_path: Path) -> None:
    store, ws_id = _store(tmp_path)
    flag, city = conflicts.open_conflicts(store, ws_id)
    assert flag.is_flag and not city.is_flag
    assert flag.record_name == "Alder Landscaping – Rollout"  # not customer 1035 of the same number
    assert flag.field_label == "Deal lost or reopened after its invoice"
    assert conflicts.similar(store, flag.id) == []  # no "same choice for similar" across deals
    conflicts.choose(store, flag.id, "crm")
    with store.session() as s:
        row = s.get(ConflictRow, flag.id)
        assert (row.outcome, row.chosen_value, row.choice) == ("resolved", None, None)
    assert conflicts.pending_choices(store, ws_id) == 0  # nothing waits for the next sync to write it
    assert [c.field for c in conflicts.open_conflicts(store, ws_id)] == ["city"]


def test_the_review_page_says_what_happened_and_mark_as_seen_takes_it_off_the_list(tmp_path: Path, qtbot) -> None:
    make_application()
    store, ws_id = _store(tmp_path)
    page = ReviewPage(store, pool=QThreadPool())
    qtbot.addWidget(page)
    page.resize(1000, 640)
    page.set_workspace(next(ws for ws in status.workspace_statuses(store) if ws.id == ws_id))
    page.show()
    rows = [page.model.row(i) for i in range(page.count)]
    assert [(r.kind, r.name, r.what) for r in rows] == [
        ("flag", "Alder Landscaping – Rollout", "Deal lost or reopened after its invoice"),
        ("conflict", "Granite Brewing Ltd", "City changed differently on both sides")]
    page.select(0)
    assert page.detail.currentWidget() is page.flag_panel  # no diff: nothing to choose between
    assert page.flag_panel.body.text() == LOST
    assert page.flag_panel.seen_button.text() == "Mark as seen"
    if SHOTS:
        page.grab().save(str(SHOTS / "review-flag.png"))
    page.flag_panel.seen_button.click()
    qtbot.waitUntil(lambda: page.count == 1, timeout=10_000)
    assert page.model.row(0).kind == "conflict" and not page.pending.isVisible()
