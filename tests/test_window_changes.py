"""The window follows what operations change (app/ops/changes.py): one record per change, whichever
thread made it, and the window's own writes to one workspace run one after the other."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading

import pytest
from PySide6.QtCore import Qt

from app.connectors.tokens import MemoryTokenStore
from app.ops import changes
from app.ops.changes import Changed
from app.store.models import ConflictRow, Link, Quarantine, Run, Workspace
from app.sync.engine import RunResult
from tests.test_ui_window import T0, make_window, populate, store, utc_clock  # noqa: F401 - fixtures

LATER = T0  # an hour after the last run in populate()


@pytest.fixture
def ids(store):  # noqa: F811 - the window tests' store fixture
    return populate(store)


def _tile(window, which: str) -> str:
    return getattr(window.page.header, f"{which}_tile").value.text()


def test_a_change_record_is_typed_and_folds_with_another() -> None:
    a = Changed(3, frozenset({"runs"}))
    b = Changed(3, frozenset({"quarantine"}))
    assert (a | b) == Changed(3, frozenset({"runs", "quarantine"}))
    assert (a | Changed(4, frozenset({"runs"}))).workspace_id is None  # two workspaces: re-read both
    assert (a | b).touches("quarantine", "settings") and not a.touches("customers")
    with pytest.raises(ValueError, match="unknown kinds"):
        Changed(3, frozenset({"everything"}))


def test_a_scheduled_sync_moves_last_sync_and_the_counts_without_a_click(make_window, store, ids, qtbot) -> None:  # noqa: F811
    """A scheduled sync runs on the scheduler's thread and announces what it changed, as run_sync does:
    "Last sync", the held-back and linked counts, the list and the tabs follow without a click."""
    from app.ui.app import window_scheduler

    window = make_window()
    assert window.page.header.last_sync.text().startswith("Last sync: Today, 14:40")
    assert (_tile(window, "held"), window.page.tabs.tabText(window.page.LINKED_TAB)) == ("2", "Linked records  5")

    def scheduled(_ctx: object, name: str) -> RunResult:  # what a scheduled run leaves behind, and tells
        with store.session() as s:
            ws = s.query(Workspace).filter_by(name=name).one()
            s.add(Run(workspace_id=ws.id, trigger="schedule", status="ok", started_at=LATER, finished_at=LATER,
                      counts={"read": 4, "created": 1, "quarantined": 1}))
            s.add(Link(workspace_id=ws.id, object_type="customer", crm_type="company", crm_id="new-9", acct_id="77",
                       how="created", snapshot={"crm": {"name": "Zest Juice Bar"}}))
            s.add(Quarantine(workspace_id=ws.id, side="crm", record_type="company", record_id="q9", name="New Hold",
                             reasons={"items": [{"field": "email", "message": "The email address is not valid."}]}))
            ws_id = ws.id
        changes.announce(store, ws_id, changes.SYNC)
        return RunResult(9, name, "ok", False, {"read": 4, "created": 1, "quarantined": 1})

    scheduler = window_scheduler(window, store, MemoryTokenStore(), runners={"realtime": scheduled})
    scheduler.start()
    try:
        scheduler.run_now("Acme Books")
        qtbot.waitUntil(lambda: window.page.header.last_sync.text().startswith("Last sync: Today, 15:40"),
                        timeout=5000)
    finally:
        scheduler.shutdown(wait=True)
    assert _tile(window, "held") == "3"
    assert window.page.tabs.tabText(window.page.HELD_TAB) == "Held back  3"
    assert window.page.tabs.tabText(window.page.LINKED_TAB) == "Linked records  6"
    assert window.list_model.data(window.list_model.index(0), window.list_model.StateRole) == "Synced today, 15:40"


def test_a_change_announced_on_another_thread_refreshes_only_the_workspace_it_names(make_window, store, ids,  # noqa: F811
                                                                                    qtbot) -> None:
    """No scheduler hook at all (a job of another part of the app): the change record alone refreshes the
    window; a change to a workspace not shown updates its line in the list, not the page."""
    window = make_window()
    shown = window.page.workspace_id
    assert shown == ids["acme"]

    def elsewhere() -> None:
        with store.session() as s:
            s.add(Run(workspace_id=ids["beta"], trigger="schedule", status="ok", started_at=LATER,
                      finished_at=LATER, counts={"read": 1}))
        changes.announce(store, ids["beta"], changes.RUNS)
        with store.session() as s:
            s.add(Quarantine(workspace_id=ids["acme"], side="crm", record_type="company", record_id="q8",
                             name="Another Hold", reasons={"items": [{"field": "country",
                                                                        "message": "The country is missing."}]}))
        changes.announce(store, ids["acme"], changes.QUARANTINE)

    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: _tile(window, "held") == "3", timeout=60_000)
    assert window.page.tabs.tabText(window.page.HELD_TAB) == "Held back  3"
    assert window.page.workspace_id == shown  # the page stays on Acme
    beta = window.list_model.row_of(ids["beta"])
    assert window.list_model.item(beta).last_run is not None  # Beta's line shows its new run


def test_a_choice_saved_on_the_review_page_lowers_the_headers_count(make_window, store, ids, qtbot) -> None:  # noqa: F811
    with store.session() as s:
        for n, (field, crm, ledger) in enumerate((("city", "Bramley", "Bramley Village"),
                                                  ("phone", "01483 100200", "01483 100 200"))):
            s.add(ConflictRow(workspace_id=ids["acme"], crm_type="company", crm_id="crm-0", acct_id="1", field=field,
                              crm_value=crm, acct_value=ledger, base_value=None, rule="ask", outcome="open",
                              created_at=T0.replace(minute=n)))
    window = make_window()
    review = window.page.review
    window.page.tabs.setCurrentWidget(review)
    assert _tile(window, "review") == "1"  # one record with two fields to decide
    diff = review.diff
    assert len(diff.rows) == 2
    qtbot.mouseClick(diff.rows[0].use_left, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(diff.rows[1].use_right, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(diff.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _tile(window, "review") == "0", timeout=60_000)
    assert window.page.tabs.tabText(window.page.tabs.indexOf(review)) == "Review  0"
    assert window.list_model.item(window.list_model.row_of(ids["acme"])).to_review == 0


def test_two_quick_writes_to_one_workspace_run_one_after_the_other(make_window, store, ids, qtbot,  # noqa: F811
                                                                   monkeypatch) -> None:
    """"Sync again" on two records held by an undo, clicked quickly: the second release waits for the first
    (one writer per workspace), and both records leave the undo's group."""
    from app.ops import undo

    with store.session() as s:
        for rid, name in (("u1", "Harbour Bakery"), ("u2", "Stone Mill")):
            s.add(Quarantine(workspace_id=ids["acme"], side="crm", record_type="company", record_id=rid, name=name,
                             reasons={"undone_run": 2, "items": [{"field": "undo", "message": "Undone."}]}))
    window = make_window()
    real = undo.release_undone
    gate = threading.Event()
    events: list[str] = []

    def release(store_, workspace, record_type, record_id):  # the real release, with its start and end seen
        events.append(f"start {record_id}")
        if record_id == "u1":
            gate.wait(10)
        done = real(store_, workspace, record_type, record_id)
        events.append(f"end {record_id}")
        return done

    monkeypatch.setattr(undo, "release_undone", release)
    page = window.page
    page.held.release_many.emit([("company", "u1")])
    qtbot.waitUntil(lambda: events == ["start u1"], timeout=60_000)
    page.held.release_many.emit([("company", "u2")])
    assert page.writes.pool(ids["acme"]).activeThreadCount() == 1
    assert events == ["start u1"]  # the second waits behind the first
    gate.set()
    qtbot.waitUntil(lambda: len(events) == 4, timeout=60_000)
    assert events == ["start u1", "end u1", "start u2", "end u2"]
    qtbot.waitUntil(lambda: "Stone Mill will be synced again" in page.banner.title.text(), timeout=60_000)
    rows = page.held.model
    qtbot.waitUntil(lambda: not [r for r in (rows.row(n) for n in range(rows.rowCount())) if r.undone], timeout=60_000)
