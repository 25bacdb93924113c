"""The main window against a real store: tables, filtering, sorting, Sync now off the UI thread."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import datetime as dt
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication

from app.connectors.errors import AuthExpired, RateLimited, TransportError
from app.connectors.tokens import MemoryTokenStore
from app.ops.workspaces import UserError
from app.store.db import Store
from app.store.models import ConnectionRow, Link, Mirror, Quarantine, Run, Workspace
from app.sync.engine import Busy, RunResult
from app.ui import text
from app.ui.app import make_application, run_gui
from app.ui.main_window import MainWindow
from app.ui.models import HeldBackModel, LinkedModel, RowRole, RunsModel, SortRole

NOW = dt.datetime(2025, 3, 14, 15, 40, tzinfo=dt.UTC)
T0 = NOW.replace(tzinfo=None)

LINKS = [  # crm name, type, email, ledger name, how, minutes ago
    ("Acme Plumbing Supply", "company", "accounts@acmeplumbing.co.uk", "Acme Plumbing Supply Ltd", "created", 5),
    ("Birchwood Furniture", "company", "info@birchwood.co.uk", "BIRCHWOOD FURNITURE", "email", 60),
    ("Cobalt Software GmbH", "company", "billing@cobalt.de", "Cobalt Software", "tax_id", 600),
    ("Amelia Hart", "person", "amelia.hart@gmail.com", "Amelia Hart", "name", 3000),
    ("Acme Plumbing (old)", "company", "old@acmeplumbing.co.uk", "Acme Plumbing Supply Ltd", "duplicate", 9000),
]


def populate(store: Store) -> dict[str, int]:
    with store.session() as s:
        acme = Workspace(name="Acme Books", crm_provider="hubspot", accounting_provider="quickbooks", settings={})
        beta = Workspace(name="Beta Bakery", crm_provider="pipedrive", accounting_provider="xero", settings={})
        s.add_all([acme, beta])
        s.flush()
        s.add(ConnectionRow(id="a-crm", workspace_id=acme.id, side="crm", provider="hubspot",
                            base_url="http://127.0.0.1:8765/hubspot", auth_url=None, client_id="x", tenant_id=None,
                            label="Acme Trading", extra={}))
        s.add(ConnectionRow(id="a-acct", workspace_id=acme.id, side="accounting", provider="quickbooks",
                            base_url="https://quickbooks.api.intuit.com", auth_url=None, client_id="x",
                            tenant_id="123", label="Acme Trading Ltd", extra={}))
        for n, (name, kind, email, ledger, how, ago) in enumerate(LINKS):
            acct_id = "1" if how == "duplicate" else str(n + 1)
            s.add(Link(workspace_id=acme.id, object_type="customer", crm_type=kind, crm_id=f"crm-{n}",
                       acct_id=acct_id, how=how, snapshot={"crm": {"name": name, "email": email},
                                                           "acct": {"name": ledger}},
                       updated_at=T0 - dt.timedelta(minutes=ago)))
            if how != "duplicate":
                s.add(Mirror(workspace_id=acme.id, side="accounting", object_type="customer", remote_id=acct_id,
                             data={"name": ledger.casefold(), "raw_name": ledger}))
        s.add(Quarantine(workspace_id=acme.id, side="crm", record_type="company", record_id="q1",
                         name="Galway Bay Tours",
                         reasons={"items": [{"field": "country", "message": "The country is missing."},
                                            {"field": "tax_id", "message": "The VAT number cannot be checked."}]},
                         created_at=T0 - dt.timedelta(days=1)))
        s.add(Quarantine(workspace_id=acme.id, side="crm", record_type="person", record_id="q2", name="Tom Whitaker",
                         reasons={"items": [{"field": "email", "message": "The email address is not valid."}]},
                         created_at=T0 - dt.timedelta(hours=2)))
        s.add(Run(workspace_id=acme.id, trigger="demo", status="ok", started_at=T0 - dt.timedelta(days=2),
                  finished_at=T0 - dt.timedelta(days=2) + dt.timedelta(seconds=94),
                  counts={"read": 9, "created": 3, "linked": 2, "quarantined": 2}))
        s.add(Run(workspace_id=acme.id, trigger="manual", status="partial", started_at=T0 - dt.timedelta(hours=1),
                  finished_at=T0 - dt.timedelta(hours=1) + dt.timedelta(seconds=8), counts={"updated": 1},
                  message="Cobalt Software: the ledger refused the update."))
        return {"acme": acme.id, "beta": beta.id}


@pytest.fixture(autouse=True)
def utc_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The window shows local time; pin the zone so 'Today, 15:35' holds on any machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(f"sqlite:///{tmp_path}/t.db")
    yield st
    st.dispose()


@pytest.fixture
def ids(store: Store) -> dict[str, int]:
    return populate(store)


class FakeSync:
    """Stands in for run_sync: reports progress, waits until released (or cancelled), returns a result."""

    def __init__(self, store: Store, *, result: Callable[[str, threading.Event], RunResult] | None = None,
                 error: BaseException | None = None) -> None:
        self.store = store
        self.release = threading.Event()
        self.reached = threading.Event()
        self.cancel: threading.Event | None = None
        self.thread: threading.Thread | None = None
        self.calls: list[str] = []
        self.error = error
        self.result = result or self._ok

    def _ok(self, name: str, cancel: threading.Event) -> RunResult:
        if cancel.is_set():
            return RunResult(7, name, "cancelled", False, {"read": 2})
        with self.store.session() as s:  # what a real run leaves behind: one more link
            ws = s.query(Workspace).filter_by(name=name).one()
            s.add(Link(workspace_id=ws.id, object_type="customer", crm_type="company", crm_id="new-1", acct_id="99",
                       how="created", snapshot={"crm": {"name": "Zest Juice Bar", "email": "hi@zest.ie"}}))
            s.add(Run(workspace_id=ws.id, trigger="manual", status="ok", started_at=T0, finished_at=T0,
                      counts={"created": 3, "linked": 2, "quarantined": 1}))
        return RunResult(7, name, "ok", False, {"read": 6, "created": 3, "linked": 2, "quarantined": 1})

    def __call__(self, store: Store, tokens: object, name: str, *, trigger: str = "manual",
                 progress: Callable[[str, int, int], None] | None = None,
                 cancel: threading.Event | None = None) -> RunResult:
        assert progress is not None and cancel is not None
        self.thread = threading.current_thread()
        self.cancel = cancel
        self.calls.append(name)
        progress("Reading company records from the CRM", 1, 4)
        self.reached.set()
        # Held until the test releases or cancels it, however long the machine takes to get there
        # (the five minutes only save a broken test from hanging).
        give_up = time.monotonic() + 300
        while not (self.release.is_set() or cancel.is_set()) and time.monotonic() < give_up:
            self.release.wait(0.02)
        if self.error is not None:
            raise self.error
        progress("Creating customers in the ledger", 3, 4)
        return self.result(name, cancel)


@pytest.fixture
def make_window(qtbot, store: Store) -> Iterator[Callable[..., MainWindow]]:
    make_application()  # the theme and icon, on pytest-qt's QApplication
    made: list[MainWindow] = []

    def make(sync: FakeSync | None = None) -> MainWindow:
        window = MainWindow(store, MemoryTokenStore(), sync=sync or FakeSync(store), pool=QThreadPool(),
                            now=lambda: NOW)
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        made.append(window)
        return window

    yield make
    for window in made:
        assert window.shutdown(10000), "a sync thread did not finish"


def select(window: MainWindow, ws_id: int) -> None:
    window.sidebar.select(ws_id)
    assert window.page.workspace_id == ws_id


def column(model, col: int, role: int = Qt.ItemDataRole.DisplayRole) -> list:
    return [model.data(model.index(r, col), role) for r in range(model.rowCount())]


# -- the window and its tables ------------------------------------------------------------------

def test_window_title_icon_and_workspace_list(make_window, ids) -> None:
    window = make_window()
    assert window.windowTitle() == "Crossledger"
    assert not window.windowIcon().isNull()
    model = window.list_model
    assert [model.data(model.index(r)) for r in range(model.rowCount())] == ["Acme Books", "Beta Bakery"]
    assert model.data(model.index(0), model.SubtitleRole) == "HubSpot ↔ QuickBooks Online"
    assert model.data(model.index(1), model.SubtitleRole) == "Pipedrive ↔ Xero"
    assert model.data(model.index(0), model.StateRole) == "Partly synced today, 14:40"
    assert model.data(model.index(1), model.StateRole) == "Not synced yet"
    assert window.page.workspace_id == ids["acme"]  # the first is selected at start


def test_header_shows_connections_and_counts(make_window, ids) -> None:
    window = make_window()
    header = window.page.header
    assert header.title.text() == "Acme Books"
    assert header.crm_chip.text() == "HubSpot · Acme Trading (demo sandbox)"
    assert header.acct_chip.text() == "QuickBooks Online · Acme Trading Ltd"
    assert header.linked_tile.value.text() == "5"
    assert header.held_tile.value.text() == "2"
    assert window.page.tabs.tabText(0) == "Linked records  5"
    select(window, ids["beta"])
    assert header.linked_tile.value.text() == "0"
    assert header.crm_chip.text() == "Pipedrive · not connected"


def test_linked_records_table(make_window, ids) -> None:
    window = make_window()
    model = window.page.linked.model
    assert model.rowCount() == 5
    assert model.headerData(0, Qt.Orientation.Horizontal) == "CRM record"
    by_name = {model.data(model.index(r, LinkedModel.NAME)): r for r in range(5)}
    r = by_name["Birchwood Furniture"]
    assert model.data(model.index(r, LinkedModel.EMAIL)) == "info@birchwood.co.uk"
    assert model.data(model.index(r, LinkedModel.LEDGER)) == "BIRCHWOOD FURNITURE"  # the ledger's own spelling
    assert model.data(model.index(r, LinkedModel.TYPE)) == "Company"
    assert sorted(column(model, LinkedModel.HOW)) == sorted(
        ["Created", "Same email", "Same tax ID", "Same name", "Duplicate in CRM"])
    assert model.data(model.index(by_name["Acme Plumbing Supply"], LinkedModel.SYNCED)) == "Today, 15:35"
    assert model.data(model.index(by_name["Acme Plumbing (old)"], LinkedModel.LEDGER)) == "Acme Plumbing Supply Ltd"


def test_search_narrows_linked_records(make_window, ids, qtbot) -> None:
    window = make_window()
    linked = window.page.linked
    assert linked.visible_rows() == 5
    qtbot.keyClicks(linked.search, "acme")
    assert linked.visible_rows() == 2
    assert linked.count.text() == "Showing 2 of 5"
    linked.search.setText("acme old")  # every word must match
    assert linked.visible_rows() == 1
    linked.search.setText("old acme")  # in any order
    assert linked.visible_rows() == 1
    linked.search.setText("(old)")  # read as text, never as a pattern
    assert linked.visible_rows() == 1
    for typed in ("(x", "acme.", "c++", "[a-z]*", "\\"):
        linked.search.setText(typed)
        assert linked.visible_rows() == 0, typed
    linked.search.setText("BIRCHWOOD furn")  # the ledger name counts too, case does not
    assert linked.visible_rows() == 1
    linked.search.setText("same tax")  # and how it was matched
    assert [linked.proxy.index(r, 0).data() for r in range(linked.visible_rows())] == ["Cobalt Software GmbH"]
    linked.search.setText("nobody")
    assert linked.visible_rows() == 0
    assert linked.body.currentWidget() is linked.body.note
    linked.search.clear()
    assert linked.visible_rows() == 5
    assert linked.body.currentWidget() is linked.table


def test_sorting_linked_records(make_window, ids) -> None:
    window = make_window()
    proxy = window.page.linked.proxy
    names = lambda: [proxy.index(r, LinkedModel.NAME).data() for r in range(proxy.rowCount())]  # noqa: E731
    assert names() == sorted(names(), key=str.casefold)  # by name at start
    window.page.linked.table.sortByColumn(LinkedModel.NAME, Qt.SortOrder.DescendingOrder)
    assert names() == sorted(names(), key=str.casefold, reverse=True)
    window.page.linked.table.sortByColumn(LinkedModel.SYNCED, Qt.SortOrder.DescendingOrder)
    assert names()[0] == "Acme Plumbing Supply"  # newest first, by time, not by the text "Today…"
    assert names()[-1] == "Acme Plumbing (old)"
    stamps = [proxy.index(r, LinkedModel.SYNCED).data(SortRole) for r in range(proxy.rowCount())]
    assert stamps == sorted(stamps, reverse=True)


def test_held_back_table_one_reason_per_line(make_window, ids) -> None:
    window = make_window()
    held = window.page.held
    model = held.model
    assert model.rowCount() == 2
    assert window.page.tabs.tabText(1) == "Held back  2"
    rows = {model.data(model.index(r, HeldBackModel.NAME)): r for r in range(2)}
    reasons = model.data(model.index(rows["Galway Bay Tours"], HeldBackModel.REASONS))
    assert reasons.splitlines() == ["• The country is missing.", "• The VAT number cannot be checked."]
    assert model.data(model.index(rows["Tom Whitaker"], HeldBackModel.REASONS)) == "The email address is not valid."
    assert model.data(model.index(rows["Tom Whitaker"], HeldBackModel.TYPE)) == "Person"
    window.page.tabs.setCurrentIndex(1)
    held.table.resizeRowsToContents()
    r = held.proxy.mapFromSource(model.index(rows["Galway Bay Tours"], 0)).row()
    one = held.proxy.mapFromSource(model.index(rows["Tom Whitaker"], 0)).row()
    assert held.table.rowHeight(r) > held.table.rowHeight(one)  # two reasons: a taller row, nothing cut


def test_recent_runs_strip(make_window, ids) -> None:
    window = make_window()
    model = window.page.runs.model
    assert model.rowCount() == 2
    assert model.data(model.index(0, RunsModel.RESULT)) == "Partly synced"  # newest first
    assert model.data(model.index(0, RunsModel.TRIGGER)) == "Sync now"
    assert model.data(model.index(1, RunsModel.SUMMARY)) == "Created 3 customers, linked 2 to existing ones"
    assert model.data(model.index(1, RunsModel.TOOK)) == "1 min 34 s"
    assert isinstance(model.data(model.index(0, 0), RowRole).id, int)


def test_models_pass_qtmodeltester(make_window, ids, qtmodeltester) -> None:
    window = make_window()
    page = window.page
    for model in (page.linked.model, page.held.model, page.runs.model, window.list_model,
                  page.linked.proxy, page.held.proxy):
        qtmodeltester.check(model, force_py=True)
    empty = LinkedModel()
    qtmodeltester.check(empty, force_py=True)


def test_empty_window_runs_the_demo_in_the_window(store, qtbot, tmp_path) -> None:
    """"Try the demo" sets up the sandboxes and syncs them on a worker thread, with progress, and
    never sends the bookkeeper to a terminal."""
    from PySide6.QtWidgets import QLabel

    make_application()
    window = MainWindow(store, MemoryTokenStore(), pool=QThreadPool(), now=lambda: NOW, home=tmp_path)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    empty = window.empty
    assert window.stack.currentWidget() is empty and window.sidebar.none_yet.isVisible()
    words = " ".join(label.text() for label in empty.findChildren(QLabel))
    assert "terminal" not in words and "crossledger demo" not in words
    assert empty.demo_button.text() == "Try the demo" and empty.demo_button.isEnabled()
    shown: list[str] = []  # what the empty window said at each step of the demo
    real = empty.demo_progressed

    def progressed(stage: str, done: int, total: int) -> None:
        real(stage, done, total)
        shown.append(empty.stage.text())

    empty.demo_progressed = progressed
    qtbot.mouseClick(empty.demo_button, Qt.MouseButton.LeftButton)
    assert empty.busy and not empty.demo_button.isEnabled() and not empty.add_button.isEnabled()
    qtbot.waitUntil(lambda: not window.demo_job.running, timeout=180_000)
    assert any(line.startswith("Connecting to HubSpot…") for line in shown), shown[:5]
    assert any(" of " in line for line in shown)  # "n of N" where the step has a count
    assert window.stack.currentWidget() is window.page
    page = window.page
    assert page.header.title.text() == "demo"
    assert page.banner.title.text() == "The demo is ready"
    held = page.header.held_tile.value.text()
    assert f"Now {held} held back" in page.banner.detail.text()
    assert page.tabs.tabText(page.HELD_TAB) == f"Held back  {held}"
    assert window.shutdown(10000)


def test_check_again_picks_up_a_new_workspace(make_window, store, qtbot) -> None:
    window = make_window()
    assert window.stack.currentWidget() is window.empty
    populate(store)
    qtbot.mouseClick(window.empty.refresh_button, Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.page
    assert window.page.header.title.text() == "Acme Books"


def test_screenshot_size(make_window, ids, tmp_path) -> None:
    window = make_window()
    path = tmp_path / "w.png"
    assert window.grab().save(str(path))
    from PySide6.QtGui import QImage

    image = QImage(str(path))
    assert (image.width(), image.height()) == (1280, 800)


def test_run_gui_shows_the_window_and_returns_the_exit_code(store, ids, qapp, tmp_path) -> None:
    shown: list[MainWindow] = []

    def look_and_quit(tries: int = 0) -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if not all(w.is_loaded for w in windows) and tries < 1500:  # the workspaces are read just after it shows
            QTimer.singleShot(20, lambda: look_and_quit(tries + 1))
            return
        shown.extend(windows)
        for window in shown:
            window.close()  # the last window closing ends the event loop, as when the bookkeeper closes it

    QTimer.singleShot(50, look_and_quit)
    assert run_gui(store=store, home=tmp_path, tokens=MemoryTokenStore()) == 0
    assert len(shown) == 1
    assert shown[0].windowTitle() == "Crossledger"
    assert shown[0].page.header.title.text() == "Acme Books"


def test_run_gui_schedules_the_workspaces_and_a_second_start_only_raises_the_first(
        store, ids, qapp, tmp_path) -> None:
    from app.sched import jobs
    from app.ui.single_instance import SingleInstance, instance_key
    seen: dict[str, object] = {}
    jobs.install(None)  # a scheduler an earlier test left installed is not this window's

    def look_and_quit() -> None:
        if jobs._context is None and len(seen) < 500:  # the scheduler starts just after the first paint
            seen[f"look {len(seen)}"] = True
            QTimer.singleShot(20, look_and_quit)
            return
        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        menus = [a.text() for a in window.menuBar().actions()]
        seen["menus"] = menus
        seen["file"] = [a.text() for a in window.menuBar().actions()[0].menu().actions() if a.text()]
        ctx = jobs._context
        seen["scheduler_running"] = ctx is not None
        second = SingleInstance(instance_key(tmp_path))
        seen["second_is_primary"] = second.acquire()
        second.close()
        window.quit_app()

    QTimer.singleShot(100, look_and_quit)
    assert run_gui(store=store, home=tmp_path, tokens=MemoryTokenStore()) == 0
    assert seen["menus"] == ["&File", "&Workspace", "&Help"]
    assert seen["file"] == ["&Settings…", "&Quit"]
    assert seen["scheduler_running"] is True  # the app's scheduler was up while the window showed
    assert seen["second_is_primary"] is False  # a second start hands over to the running one
    with store.session() as s:
        from sqlalchemy import text as sql
        job_ids = {r[0] for r in s.execute(sql("select id from apscheduler_jobs"))}
    assert {f"realtime:{ids['acme']}", f"batch:{ids['acme']}"} <= job_ids


def test_closing_the_window_with_a_tray_keeps_syncing_in_the_background(make_window, ids, qtbot) -> None:
    window = make_window()
    told: list[str] = []
    window.keep_running_in_tray = True
    window.on_close_to_tray = lambda: told.append("told")
    window.close()
    assert not window.isVisible() and told == ["told"]  # hidden, not closed: the scheduler keeps running
    window.show()
    window.keep_running_in_tray = False
    window.close()
    assert not window.isVisible() and told == ["told"]


# -- Sync now -----------------------------------------------------------------------------------

def test_sync_now_runs_in_the_background_and_reports(make_window, ids, store, qtbot) -> None:
    fake = FakeSync(store)
    window = make_window(fake)
    header, page = window.page.header, window.page
    assert header.progress_row.isHidden()

    qtbot.mouseClick(header.sync_button, Qt.MouseButton.LeftButton)
    assert fake.reached.wait(60)
    qtbot.waitUntil(lambda: header.progress.maximum() == 4 and header.progress.value() == 1, timeout=60_000)
    assert fake.thread is not threading.main_thread()
    assert fake.calls == ["Acme Books"]
    assert not header.sync_button.isEnabled()
    assert header.sync_button.text() == "Syncing…"
    assert header.progress_row.isVisible()
    assert header.cancel_button.isEnabled()
    assert header.stage.text() == "Reading company records from the CRM…"
    assert window.list_model.data(window.list_model.index(0), window.list_model.StateRole) == "Syncing…"

    ticks: list[int] = []  # the UI thread keeps running timers while the sync waits
    timer = QTimer(window)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=60_000)
    timer.stop()
    assert fake.reached.is_set() and not fake.release.is_set()

    header.sync_button.click()  # disabled: a second run of the same workspace cannot start
    assert fake.calls == ["Acme Books"]

    fake.release.set()
    qtbot.waitUntil(lambda: page.banner.isVisible(), timeout=60_000)
    assert page.banner.title.text() == "Sync finished"
    # what the run did, then where the workspace stands in the Held back tab's own number
    assert page.banner.detail.text() == "Created 3 customers, linked 2 to existing ones. Now 2 held back."
    # the views are re-read after the run, on a worker thread, and shown a moment later
    qtbot.waitUntil(lambda: page.linked.model.rowCount() == 6, timeout=60_000)
    assert page.tabs.tabText(page.HELD_TAB) == "Held back  2" and header.held_tile.value.text() == "2"
    assert header.progress_row.isHidden()
    assert header.sync_button.isEnabled() and header.sync_button.text() == "Sync now"
    assert page.linked.model.rowCount() == 6  # the views were re-read after the run
    assert header.linked_tile.value.text() == "6"
    assert page.runs.model.rowCount() == 3
    assert window.list_model.data(window.list_model.index(0), window.list_model.StateRole) == "Synced today, 15:40"


def test_cancel_sets_the_event(make_window, ids, store, qtbot) -> None:
    fake = FakeSync(store)
    window = make_window(fake)
    header = window.page.header
    header.sync_button.click()
    assert fake.reached.wait(60)
    qtbot.waitUntil(header.cancel_button.isVisible, timeout=60_000)
    qtbot.mouseClick(header.cancel_button, Qt.MouseButton.LeftButton)
    assert fake.cancel is not None and fake.cancel.is_set()
    qtbot.waitUntil(lambda: window.page.banner.isVisible(), timeout=60_000)
    assert window.page.banner.title.text() == "Sync cancelled"
    assert window.page.linked.model.rowCount() == 5


def test_cancel_shows_cancelling_until_the_run_stops(make_window, ids, store, qtbot) -> None:
    fake = FakeSync(store)
    window = make_window(fake)
    header = window.page.header
    fake_cancel_seen = threading.Event()

    def slow_result(name: str, cancel: threading.Event) -> RunResult:
        fake_cancel_seen.wait(60)
        return RunResult(7, name, "cancelled", False, {})

    fake.result = slow_result
    header.sync_button.click()
    assert fake.reached.wait(60)
    qtbot.waitUntil(header.cancel_button.isVisible, timeout=60_000)
    header.cancel_button.click()
    qtbot.waitUntil(lambda: header.stage.text() == "Cancelling after the current batch…", timeout=60_000)
    assert not header.cancel_button.isEnabled()
    fake_cancel_seen.set()
    qtbot.waitUntil(lambda: window.page.banner.isVisible(), timeout=60_000)


@pytest.mark.parametrize(("error", "title", "words"), [
    (AuthExpired("invalid_grant: refresh token revoked", provider="hubspot"), "The sign-in to HubSpot has expired",
     "Click Reconnect HubSpot… under the workspace's name, then sync again"),
    (RateLimited("429", provider="quickbooks", retry_after=30), "QuickBooks Online asked Crossledger to slow down",
     "Sync again in 30 seconds"),
    (TransportError("ReadTimeout", provider="quickbooks"), "Could not reach QuickBooks Online",
     "Check the internet connection"),
    (Busy("A sync of 'Acme Books' is already running. It will be picked up when that one ends."),
     "Already syncing", "already running"),
    (UserError("Workspace 'Acme Books' has no HubSpot connection yet. Connect it with 'crossledger connect'."),
     "This workspace is not ready to sync", "Click Connect… beside the tabs to connect it."),
    (RuntimeError("KeyError: 'DisplayName' at line 88"), "Something went wrong during the sync", "Nothing was lost"),
])
def test_errors_become_plain_words(make_window, ids, store, qtbot, error, title, words) -> None:
    fake = FakeSync(store, error=error)
    fake.release.set()
    window = make_window(fake)
    window.page.header.sync_button.click()
    banner = window.page.banner
    qtbot.waitUntil(banner.isVisible, timeout=60_000)
    assert banner.property("level") in ("error", "warning", "info")
    assert banner.title.text() == title
    assert words in banner.detail.text()
    assert "crossledger " not in banner.text()  # never a command to type: the window has a button for it
    shown = banner.text()
    assert "Traceback" not in shown and "KeyError" not in shown and "invalid_grant" not in shown
    assert window.page.header.sync_button.isEnabled()
    assert window.page.header.progress_row.isHidden()


def test_a_run_refreshes_only_its_own_workspace(make_window, ids, store, qtbot) -> None:
    fake = FakeSync(store)
    window = make_window(fake)
    window.page.header.sync_button.click()
    assert fake.reached.wait(60)
    select(window, ids["beta"])  # look at another client while Acme syncs
    header = window.page.header
    assert header.sync_button.isEnabled() and header.progress_row.isHidden()
    fake.release.set()
    acme_row = window.list_model.row_of(ids["acme"])
    qtbot.waitUntil(lambda: window.list_model.data(window.list_model.index(acme_row),
                                                   window.list_model.StateRole) == "Synced today, 15:40",
                    timeout=60_000)
    assert window.page.workspace_id == ids["beta"]  # the selection and the page stayed put
    assert not window.page.banner.isVisible()
    assert window.page.linked.model.rowCount() == 0
    select(window, ids["acme"])  # the result waits for the bookkeeper on Acme's page
    assert window.page.banner.isVisible()
    assert window.page.banner.title.text() == "Sync finished"
    assert window.page.linked.model.rowCount() == 6


def test_failed_run_result_is_explained(make_window, ids, store, qtbot) -> None:
    fake = FakeSync(store, result=lambda name, _c: RunResult(
        8, name, "failed", False, {"read": 0}, ["QuickBooks Online did not answer in time."]))
    fake.release.set()
    window = make_window(fake)
    window.page.header.sync_button.click()
    qtbot.waitUntil(window.page.banner.isVisible, timeout=60_000)
    assert window.page.banner.title.text() == "The sync could not finish"
    assert window.page.banner.detail.text().startswith("QuickBooks Online did not answer in time.")


def test_many_qt_calls_do_not_exhaust_none(qapp) -> None:
    """PySide6 6.12 on Python 3.11 drops a reference to None/True per void call or emit (see pyside_guard)."""
    from PySide6.QtCore import QObject, Signal

    from app.ui import pyside_guard

    class Emitter(QObject):
        fired = Signal(int)

    emitter = Emitter()
    for _ in range(30000):
        emitter.setObjectName("x")
        emitter.fired.emit(1)
    assert sys.getrefcount(None) > 30000
    assert pyside_guard.apply() in (True, False)  # idempotent


# -- the words, without Qt ----------------------------------------------------------------------

def test_plain_words() -> None:
    assert text.run_summary({"created": 143, "linked": 22, "quarantined": 18}) == (
        "Created 143 customers, linked 22 to existing ones")  # held back: the workspace's count, said apart
    assert text.run_summary({"created": 1}) == "Created 1 customer"
    assert text.run_summary({"read": 4}) == "Everything was already in sync"
    assert text.run_summary({"read": 40, "quarantined": 16}) == "Nothing changed"
    assert [text.how_label(h) for h in ("created", "email", "tax_id", "name", "duplicate")] == [
        "Created", "Same email", "Same tax ID", "Same name", "Duplicate in CRM"]
    assert text.pair_label("hubspot", "quickbooks") == "HubSpot ↔ QuickBooks Online"
    assert text.format_duration(T0, T0 + dt.timedelta(seconds=125)) == "2 min 5 s"
    assert text.format_when(T0 - dt.timedelta(days=400), NOW) == f"{(T0 - dt.timedelta(days=400)).day} " \
        f"{text.local(T0 - dt.timedelta(days=400)):%b %Y}"


def test_a_scheduled_run_refreshes_last_sync_in_the_header_and_list(make_window, store, ids, qtbot) -> None:
    """The scheduler's job context reaches the window through a Qt signal (app.ui.app.window_scheduler):
    after a scheduled run, "Last sync" moves on without anyone clicking Sync now."""
    from app.ui.app import window_scheduler

    window = make_window()
    header = window.page.header
    assert header.last_sync.text().startswith("Last sync: Today, 14:40")
    main_thread = threading.current_thread()
    ran_on: list[threading.Thread] = []

    def scheduled(_ctx: object, name: str) -> RunResult:  # a fake job: what a real run leaves behind
        ran_on.append(threading.current_thread())
        with store.session() as s:
            ws = s.query(Workspace).filter_by(name=name).one()
            s.add(Run(workspace_id=ws.id, trigger="schedule", status="ok", started_at=T0, finished_at=T0,
                      counts={"read": 3, "updated": 1}))
            s.add(Quarantine(workspace_id=ws.id, side="crm", record_type="company", record_id="q9", name="New Hold",
                             reasons={"items": [{"field": "email", "message": "The email address is not valid."}]}))
        return RunResult(9, name, "ok", False, {"read": 3, "updated": 1})

    scheduler = window_scheduler(window, store, MemoryTokenStore(), runners={"realtime": scheduled})
    scheduler.start()
    try:
        scheduler.run_now("Acme Books")
        qtbot.waitUntil(lambda: header.last_sync.text().startswith("Last sync: Today, 15:40"), timeout=60_000)
    finally:
        scheduler.shutdown(wait=True)
    assert ran_on and ran_on[0] is not main_thread  # the job ran on the scheduler's thread
    assert window.list_model.data(window.list_model.index(0), window.list_model.StateRole) == "Synced today, 15:40"
    assert header.held_tile.value.text() == "3"
    assert window.page.tabs.tabText(window.page.HELD_TAB) == "Held back  3"


def test_each_page_is_walked_with_the_keyboard_and_every_control_has_a_name(make_window, store, ids, qtbot) -> None:
    """Tab alone reaches every enabled control of each page, read-only tables let it go on (arrows
    move in them), and each control has a name a screen reader says."""
    from app.store.models import ConflictRow
    from tests.keyboard import walk_problems

    with store.session() as s:  # something to decide on the Review page
        s.add(ConflictRow(workspace_id=ids["acme"], crm_type="company", crm_id="crm-0", acct_id="1", field="phone",
                          crm_value="+44 1", acct_value="+44 2", base_value="+44 0", rule="ask", outcome="open",
                          created_at=T0))
    window = make_window()
    window.activateWindow()
    page = window.page
    for index in range(page.tabs.count()):
        page.tabs.setCurrentIndex(index)
        for pool in [QThreadPool.globalInstance(), *window.findChildren(QThreadPool)]:
            pool.waitForDone(60_000)  # a page's first load reads in the background: walk it once that
        qtbot.wait(50)  # read has landed, not while its rows are being swapped in
        problems = walk_problems(window, page.tabs.tabBar(), page.tabs.tabText(index))
        assert not problems, problems
    assert page.review.count == 1
