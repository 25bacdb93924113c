"""The Activity tab on real HTTP sandboxes (HubSpot and QuickBooks Online): runs, field changes, filters,
the Excel export, a linked record's history, and undoing a run from its preview.

Sync creates three customers; addresses edited in HubSpot reach QuickBooks on the second sync; one of those
is then changed again in QuickBooks by hand, so undoing the second sync puts back the other and refuses it.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import datetime as dt
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pytest
from PySide6.QtCore import Qt, QThreadPool

from app.connectors.base import CustomerWrite
from app.connectors.tokens import MemoryTokenStore
from app.ops import status
from app.ops.history_export import Activity, ActivityChange, ActivityRun, export_history, load_activity, write_workbook
from app.ops.sync_run import run_sync
from app.ops.workspaces import add_workspace, save_connection
from app.store.db import Store
from app.ui.activity import ActivityPage, ChangeModel, RunModel, StoreUndo
from app.ui.app import make_application
from app.ui.main_window import MainWindow
from tests.shots import screenshot_dir
from tests.support import Connected, over_http

SHOTS = screenshot_dir()
COMPANIES = {  # name: (address, city, postcode)
    "Maple Grove Nursery": ("14 Station Road", "Bramley", "GU5 0AA"),
    "Stonebridge Bakery": ("2 Mill Lane", "Ashby", "LE65 1AA"),
    "Harbor Light Marine": ("The Quay", "Penrose", "TR10 8AB"),
}


@dataclass
class World:
    store: Store
    tokens: MemoryTokenStore
    crm: Connected
    acct: Connected
    name: str
    ids: dict[str, tuple[str, str]]  # company -> (HubSpot id, QuickBooks id)
    run_ids: list[int]

    def sync(self) -> int:
        result = run_sync(self.store, self.tokens, self.name)
        assert result.status == "ok", result.errors
        self.run_ids.append(result.run_id)
        return result.run_id

    def ledger(self, company: str):
        [cust] = self.acct.connector.get_customers([self.ids[company][1]])
        return cust.party

    def edit_ledger(self, company: str, **fields) -> None:
        [cust] = self.acct.connector.get_customers([self.ids[company][1]])
        [res] = self.acct.connector.update_customers(
            [CustomerWrite(f"test-{company}-{sorted(fields.items())}", cust.party.with_fields(fields), id=cust.id,
                           version=cust.version)])
        assert res.ok, res.error


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Sync (creates 3 customers), edit two in HubSpot, sync again, then change one by hand in QuickBooks."""
    tokens = MemoryTokenStore()
    store = Store(f"sqlite:///{tmp_path}/activity.db")
    ws = add_workspace(store, "Maple Books", "hubspot", "quickbooks")
    with ExitStack() as stack:
        crm = stack.enter_context(over_http("hubspot", "empty", tokens=tokens))
        acct = stack.enter_context(over_http("quickbooks", "empty", tokens=tokens))
        save_connection(store, ws, crm.conn)
        save_connection(store, ws, acct.conn)
        crm_ids = {name: crm.sandbox.create("companies", name=name, address=a, city=c, zip=z, country="GB")
                   for name, (a, c, z) in COMPANIES.items()}
        w = World(store, tokens, crm, acct, ws.name, {}, [])
        w.sync()
        links = {lk.crm_id: lk.acct_id for lk in status.linked_records(store, ws.id)}
        w.ids = {name: (rid, links[rid]) for name, rid in crm_ids.items()}
        crm.sandbox.edit("companies", w.ids["Maple Grove Nursery"][0], city="Guildford")
        crm.sandbox.edit("companies", w.ids["Stonebridge Bakery"][0], city="Leicester", address="9 Mill Lane")
        w.sync()
        assert w.ledger("Maple Grove Nursery").city == "Guildford"
        assert w.ledger("Stonebridge Bakery").city == "Leicester"
        w.edit_ledger("Stonebridge Bakery", city="Loughborough")  # changed again since: undo must leave it
        yield w
    store.dispose()


class Recorder:
    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def save(self, _parent: object, suggested: str, _filters: str) -> str:
        self.asked.append(suggested)
        return self.answer


@pytest.fixture
def window(world: World, qtbot) -> Iterator[MainWindow]:
    make_application()
    pool = QThreadPool()
    win = MainWindow(world.store, world.tokens, pool=pool)
    qtbot.addWidget(win)
    win.resize(1280, 860)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.page.activity.shutdown()
    win.sync.shutdown()
    pool.waitForDone(60_000)


def open_activity(win: MainWindow, qtbot) -> ActivityPage:
    win.reload()
    page = win.page.activity
    win.page.tabs.setCurrentWidget(page)
    qtbot.waitUntil(lambda: page.activity is not None and not page.running, timeout=60_000)
    return page


def cells(page: ActivityPage, model_cols: tuple[int, ...]) -> list[tuple[str, ...]]:
    m = page.change_model
    return sorted(tuple(m.display(m.row(r), c) for c in model_cols) for r in range(m.rowCount()))


# -- the workbook, without Qt -------------------------------------------------------------------------
def test_export_writes_runs_and_changes_with_real_dates(world: World, tmp_path: Path) -> None:
    path = export_history(world.store, world.name, tmp_path / "history.xlsx")
    wb = openpyxl.load_workbook(path)
    try:
        assert wb.sheetnames == ["Runs", "Changes"]
        runs, changes = wb["Runs"], wb["Changes"]
        assert [c.value for c in runs[1]][:5] == ["Run", "Trigger", "Started", "Finished", "Status"]
        assert [c.value for c in changes[1]] == ["Record", "Record ID", "Field", "Side", "Before", "After", "Rule",
                                                 "Run", "Run started", "Trigger"]
        for ws in (runs, changes):
            assert ws.freeze_panes == "A2" and ws.auto_filter.ref.startswith("A1:")
            assert all((ws.column_dimensions[col].width or 0) >= 7 for col in "ABCDEFGHIJ")
        run_rows = list(runs.iter_rows(min_row=2, values_only=True))
        assert sorted(r[0] for r in run_rows) == sorted(world.run_ids)
        assert all(isinstance(r[2], dt.datetime) and r[4] == "Synced" for r in run_rows)
        rows = list(changes.iter_rows(min_row=2, values_only=True))
        second = world.run_ids[1]
        named = {r[:1] + r[2:6] for r in rows}
        assert ("Maple Grove Nursery", "City", "QuickBooks Online", "Bramley", "Guildford") in named
        assert ("Stonebridge Bakery", "City", "QuickBooks Online", "Ashby", "Leicester") in named
        assert {r[7] for r in rows if r[5] in ("Guildford", "Leicester")} == {second}
        assert all(isinstance(r[8], dt.datetime) for r in rows)
        assert changes.cell(row=2, column=9).number_format == "yyyy-mm-dd hh:mm"
        assert {r[6] for r in rows} == {"New customer", "Changed in HubSpot"}  # the rule, in words
    finally:
        wb.close()


def test_workbook_keeps_formula_like_values_as_text(tmp_path: Path) -> None:
    started = dt.datetime(2026, 11, 2, 9, 14, 30, 123456)
    run = ActivityRun(7, "schedule", "partial", started, started + dt.timedelta(seconds=40),
                      {"read": 4, "writes": 1, "errors": 1}, "1 record was refused by the ledger", False, 1)
    change = ActivityChange(7, started, "schedule", "crm", "501", "501", "=HYPERLINK(\"x\")", "company", "phone",
                            "+44 20 7946 0000", "@home", "ledger-changed")
    path = write_workbook(Activity("Acme", [run], [change], "HubSpot", "Xero"), tmp_path / "a.xlsx")
    wb = openpyxl.load_workbook(path)
    try:
        runs = list(wb["Runs"].iter_rows(min_row=2, values_only=True))
        assert runs[0][:2] == (7, "Scheduled") and runs[0][4] == "Partly synced" and runs[0][8] == 1
        # The store keeps UTC; the sheet has the workstation's time, as a real date, to the second.
        assert runs[0][2] == started.replace(tzinfo=dt.UTC).astimezone().replace(tzinfo=None, microsecond=0)
        assert runs[0][9] == "1 record was refused by the ledger"
        row = next(wb["Changes"].iter_rows(min_row=2))
        assert [c.value for c in row[:7]] == ['=HYPERLINK("x")', "501", "Phone", "HubSpot", "+44 20 7946 0000",
                                              "@home", "Changed in Xero"]
        assert all(c.data_type == "s" for c in row[:7])  # text, never a formula
    finally:
        wb.close()


# -- the tab --------------------------------------------------------------------------------------------
def test_activity_lists_runs_and_changes_and_filters(world: World, window: MainWindow, qtbot,
                                                     qtmodeltester) -> None:
    tabs = window.page.tabs
    assert [tabs.tabText(i).split("  ")[0] for i in range(tabs.count())][-2:] == ["Review", "Activity"]
    page = open_activity(window, qtbot)
    first, second = world.run_ids
    assert [r.id for r in page.visible_runs()] == [second, first]  # newest first
    assert page.shown.text() == "2 runs"
    runs = page.run_model
    assert runs.display(runs.row(0), RunModel.TRIGGER) == "Sync now"
    assert runs.display(runs.row(0), RunModel.STATUS) == "Synced"
    assert "fields changed" in runs.display(runs.row(0), RunModel.COUNTS)
    qtmodeltester.check(runs)

    # The newest run is selected: its field changes, named, with the side that changed.
    assert page.selected_run().id == second
    cols = (ChangeModel.RECORD, ChangeModel.FIELD, ChangeModel.SIDE, ChangeModel.BEFORE, ChangeModel.AFTER)
    shown = cells(page, cols)
    assert ("Maple Grove Nursery", "City", "QuickBooks Online", "Bramley", "Guildford") in shown
    assert ("Stonebridge Bakery", "City", "QuickBooks Online", "Ashby", "Leicester") in shown
    assert ("Stonebridge Bakery", "Address", "QuickBooks Online", "2 Mill Lane", "9 Mill Lane") in shown
    assert {r[0] for r in shown} == {"Maple Grove Nursery", "Stonebridge Bakery"}
    qtmodeltester.check(page.change_model)
    assert f"run #{second}" in page.changes_title.text()

    # The first run created all three: its changes start from empty.
    page.select_run(first)
    assert {r[0] for r in cells(page, cols)} == set(COMPANIES)
    assert all(r[3] == "(empty)" for r in cells(page, cols))

    # Record filter: only runs that changed it, only its changes.
    page.select_run(second)
    assert page.set_record(world.ids["Harbor Light Marine"][0])
    assert [r.id for r in page.visible_runs()] == [first]
    assert {r[0] for r in cells(page, cols)} == {"Harbor Light Marine"}
    page.set_record(world.ids["Stonebridge Bakery"][0])
    page.select_run(second)
    assert {r[:2] for r in cells(page, cols)} == {("Stonebridge Bakery", "City"), ("Stonebridge Bakery", "Address")}
    assert "showing 2 of 3" in page.changes_title.text()
    # Field filter on top.
    assert page.set_field("address_line1")
    assert [r[1] for r in cells(page, cols)] == ["Address"]
    page.clear_filters()
    assert len(page.visible_runs()) == 2

    # Words: a value typed in the search box.
    qtbot.keyClicks(page.search, "guildford")
    assert [r.id for r in page.visible_runs()] == [second]
    assert cells(page, cols) == [("Maple Grove Nursery", "City", "QuickBooks Online", "Bramley", "Guildford")]
    page.search.clear()

    # Kind of run and dates.
    assert page.set_trigger("manual") and len(page.visible_runs()) == 2
    assert not page.set_trigger("schedule")  # no scheduled run to choose
    today = dt.date.today()
    page.set_dates(today - dt.timedelta(days=9), today - dt.timedelta(days=2))
    assert page.visible_runs() == [] and page.runs_body.currentWidget() is page.runs_body.note
    assert "Clear filters" in page.runs_body.note.text()
    page.set_dates(today - dt.timedelta(days=1), today + dt.timedelta(days=1))
    assert len(page.visible_runs()) == 2
    page.clear_filters()



def test_export_button_writes_what_the_page_shows(world: World, window: MainWindow, qtbot, tmp_path: Path) -> None:
    page = open_activity(window, qtbot)
    rec = Recorder(str(tmp_path / "maple"))  # no suffix typed: .xlsx is added
    page._save_dialog = rec.save
    page.set_record(world.ids["Maple Grove Nursery"][0])
    assert page.export_button.isEnabled()
    qtbot.mouseClick(page.export_button, Qt.MouseButton.LeftButton)
    assert rec.asked[0].endswith(f"Maple Books-activity-{dt.date.today():%Y-%m-%d}.xlsx")
    qtbot.waitUntil(lambda: not page.running, timeout=60_000)
    assert page.banner.isVisible() and page.banner.title.text() == "Workbook saved"
    assert "2 runs on the Runs sheet" in page.banner.text()
    wb = openpyxl.load_workbook(tmp_path / "maple.xlsx")
    try:
        rows = list(wb["Changes"].iter_rows(min_row=2, values_only=True))
        assert rows and {r[0] for r in rows} == {"Maple Grove Nursery"}
        assert ("City", "Bramley", "Guildford") in {(r[2], r[4], r[5]) for r in rows}
        assert len(list(wb["Runs"].iter_rows(min_row=2))) == 2
    finally:
        wb.close()


def test_history_of_a_linked_record_shows_each_fields_chain(world: World, window: MainWindow, qtbot) -> None:
    window.reload()
    linked = window.page.linked
    assert not linked.history_button.isEnabled()
    linked.search.setText("Maple")
    linked.table.selectRow(0)
    assert linked.history_button.isEnabled()
    qtbot.mouseClick(linked.history_button, Qt.MouseButton.LeftButton)
    dialog = window.page.activity.history_dialog
    assert dialog is not None and dialog.isVisible()
    city = dialog.chains["city"]
    assert [(c.before, c.after) for c in city] == [(None, "Bramley"), ("Bramley", "Guildford")]
    assert [c.run_id for c in city] == world.run_ids
    m = dialog.model
    texts = [[m.display(m.row(r), c) for c in range(5)] for r in range(m.rowCount())]
    at = next(n for n, t in enumerate(texts) if t[0] == "City")
    assert [texts[at][2], texts[at][3]] == ["QuickBooks Online", "(empty) → Bramley"]
    assert texts[at + 1][0] == "" and texts[at + 1][3] == "Bramley → Guildford"  # same field: named once
    assert texts[0][0] == "Name"  # fields in the order a bookkeeper reads a customer
    qtbot.wait(50)  # laid out, as the bookkeeper sees it
    dialog.grab().save(str(SHOTS / "activity-history.png"))
    # "Show in Activity" switches to the tab, filtered to this record.
    dialog.show_in_activity.emit()
    page = window.page.activity
    assert window.page.tabs.currentWidget() is page
    qtbot.waitUntil(lambda: page.record_filter.currentData() == world.ids["Maple Grove Nursery"][0]
                    and not page.running, timeout=20000)  # chosen as soon as the activity has been read
    assert {r.id for r in page.visible_runs()} == set(world.run_ids)
    assert {page.change_model.row(r).record for r in range(page.change_model.rowCount())} == {"Maple Grove Nursery"}
    assert not dialog.isVisible()


def test_undo_preview_lists_steps_and_refusals_and_applying_reverts_the_ledger(
        world: World, window: MainWindow, qtbot, qtmodeltester) -> None:
    page = open_activity(window, qtbot)
    second = world.run_ids[1]
    page.select_run(second)
    assert page.undo_button.isEnabled() and page.undo_hint.text() == ""
    # A preview, then Cancel: nothing is changed and the run can still be undone.
    qtbot.mouseClick(page.undo_button, Qt.MouseButton.LeftButton)
    looked = page.undo_dialog
    assert looked is not None and looked.isVisible() and looked.progress_row.isVisible()  # reading, off the UI
    assert not looked.confirm_button.isEnabled()
    qtbot.waitUntil(lambda: looked.plan is not None, timeout=30000)
    qtbot.mouseClick(looked.cancel_button, Qt.MouseButton.LeftButton)
    assert not looked.isVisible() and looked.result is None
    assert world.ledger("Maple Grove Nursery").city == "Guildford" and page.undo_button.isEnabled()

    qtbot.mouseClick(page.undo_button, Qt.MouseButton.LeftButton)
    dialog = page.undo_dialog
    assert dialog is not looked
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=30000)
    steps = {(s.label, s.field): (s.current, s.restore_to) for s in dialog.plan.steps}
    assert steps[("Maple Grove Nursery", "city")] == ("Guildford", "Bramley")
    refused = {(r.label, r.field): r.reason for r in dialog.plan.refusals}
    assert ("Stonebridge Bakery", "city") in refused and "Loughborough" in refused[("Stonebridge Bakery", "city")]
    n = len(dialog.plan.steps)
    assert dialog.confirm_button.isEnabled() and dialog.confirm_button.text() == f"Undo {n} change" + (
        "s" if n != 1 else "")
    assert dialog.step_model.rowCount() == n and dialog.refusal_model.rowCount() == len(dialog.plan.refusals)
    what = [dialog.step_model.display(dialog.step_model.row(r), 1) for r in range(n)]
    assert "Put City back in QuickBooks Online" in what
    qtmodeltester.check(dialog.step_model)
    qtmodeltester.check(dialog.refusal_model)
    # Nothing has changed yet: a preview only reads.
    assert world.ledger("Maple Grove Nursery").city == "Guildford"

    qtbot.wait(50)  # let the dialog settle its layout before the picture
    window.grab().save(str(SHOTS / "activity-page.png"))
    dialog.grab().save(str(SHOTS / "activity-undo.png"))

    qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)
    assert dialog.running and dialog.progress_row.isVisible() and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=60000)
    assert dialog.result.status in ("ok", "partial") and dialog.result.done == n
    assert page.banner.isVisible() and dialog.result.message in page.banner.text()
    assert world.ledger("Maple Grove Nursery").city == "Bramley"  # put back on the provider
    assert world.ledger("Stonebridge Bakery").city == "Loughborough"  # refused: left alone

    # The undo is a run of its own, shown as such, and cannot be undone again.
    qtbot.waitUntil(lambda: not page.running and len(page.visible_runs()) == 3, timeout=60_000)
    newest = page.visible_runs()[0]
    assert newest.trigger == "undo"
    assert page.run_model.display(newest, RunModel.TRIGGER) == "Undo"
    assert f"Undid run #{second}" in page.run_model.display(newest, RunModel.COUNTS)
    page.select_run(newest.id)
    assert not page.undo_button.isEnabled() and "cannot be undone again" in page.undo_hint.text()
    assert ("Maple Grove Nursery", "City", "QuickBooks Online", "Guildford", "Bramley") in cells(
        page, (ChangeModel.RECORD, ChangeModel.FIELD, ChangeModel.SIDE, ChangeModel.BEFORE, ChangeModel.AFTER))
    assert page.set_trigger("undo") and [r.id for r in page.visible_runs()] == [newest.id]
    page.clear_filters()
    page.select_run(second)
    assert not page.undo_button.isEnabled()  # already undone
    assert second not in StoreUndo(world.store, world.tokens).undoable(world.name)


def test_loading_happens_off_the_ui_thread(world: World, qtbot) -> None:
    make_application()
    pool = QThreadPool()
    page = ActivityPage(world.store, pool=pool)
    qtbot.addWidget(page)
    page.set_workspace(world.name)
    assert not page.running  # not looked at yet: nothing read
    page.show()
    assert page.running and page.progress_row.isVisible()  # reading, not yet shown
    qtbot.waitUntil(lambda: not page.running, timeout=60_000)
    assert len(page.visible_runs()) == 2
    assert not page.undo_button.isEnabled() and page.undo_hint.text() == "Undo is not available in this version."
    activity = load_activity(world.store, world.name)
    assert [r.id for r in page.visible_runs()] == [r.id for r in activity.runs]
    pool.waitForDone(60_000)


def test_cancel_while_undoing_stops_before_any_change_and_the_run_can_be_undone_later(
        world: World, window: MainWindow, qtbot) -> None:
    page = open_activity(window, qtbot)
    second = world.run_ids[1]
    page.select_run(second)
    qtbot.mouseClick(page.undo_button, Qt.MouseButton.LeftButton)
    dialog = page.undo_dialog
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=30000)
    qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)
    # The undo reads both sides again before its first change; Cancel lands well before that.
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert dialog.cancel_event.is_set() and not dialog.cancel_button.isEnabled()
    assert dialog.isVisible() and "Stopping" in dialog.stage.text()  # it waits for the worker to stop
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=60000)
    assert dialog.result.status == "cancelled" and dialog.result.done == 0
    assert page.banner.title.text() == f"Undo of run #{second} cancelled"
    assert world.ledger("Maple Grove Nursery").city == "Guildford"
    qtbot.waitUntil(lambda: not page.running and len(page.visible_runs()) == 3, timeout=60_000)
    assert page.visible_runs()[0].trigger == "undo" and page.visible_runs()[0].status == "cancelled"
    page.select_run(second)
    assert page.undo_button.isEnabled()  # nothing was undone: it can be undone later


def test_records_held_by_an_undo_are_released_from_the_held_back_tab(world: World, window: MainWindow,
                                                                      qtbot) -> None:
    """Undoing the first sync archives its three customers and holds their companies, in a group of their own
    on the Held back tab; 'Sync again' lets the ones picked (several at once) through, and the next sync makes
    exactly those again."""
    from app.ops.undo import apply_undo

    first = world.run_ids[0]
    result = apply_undo(world.store, world.tokens, world.name, first)
    assert result.status in ("ok", "partial"), result.message
    window.reload()
    page = window.page
    page.tabs.setCurrentWidget(page.held)
    held = page.held
    rows = [held.model.row(n) for n in range(held.model.rowCount())]
    undone = [r for r in rows if r.undone]
    assert len(undone) == 3 and held.release.isVisible() and not held.release.isEnabled()
    # Only the undo's records are listed (any held by the checks are in the other group), none selected.
    shown = [held.model.row(held.proxy.mapToSource(held.proxy.index(r, 0)).row()) for r in range(held.proxy.rowCount())]
    assert shown and all(r.undone for r in shown) and len(shown) == 3
    picked = {"Harbor Light Marine", "Stonebridge Bakery"}
    selection = held.table.selectionModel()
    for r in range(held.proxy.rowCount()):
        if shown[r].name in picked:
            selection.select(held.proxy.index(r, 0), selection.SelectionFlag.Select | selection.SelectionFlag.Rows)
    assert held.release.isEnabled() and held.release.text() == "Sync 2 again"
    window.grab().save(str(SHOTS / "held-back-release.png"))
    qtbot.mouseClick(held.release, Qt.MouseButton.LeftButton)  # released on the workspace's writer
    qtbot.waitUntil(lambda: page.banner.title.text() == "2 records will be synced again", timeout=60_000)
    undo_run = next(r for r in status.recent_runs(world.store, page.workspace_id) if r.trigger == "undo")
    from app.ui.text import run_summary
    assert run_summary(undo_run.counts).startswith(f"Undid run #{first}: 3 customers made inactive")
    qtbot.waitUntil(lambda: {r.name for r in (held.model.row(n) for n in range(held.model.rowCount()))
                             if r.undone} == {"Maple Grove Nursery"}, timeout=10000)

    before = {c.id for c in world.acct.connector.read_customers(None).records}
    world.sync()
    made = [c for c in world.acct.connector.read_customers(None).records if c.id not in before]
    assert sorted(c.party.name for c in made) == sorted(picked)  # those again, and only those


def test_a_big_linked_table_is_read_off_the_ui_thread_and_shown_when_ready(world: World, window: MainWindow,
                                                                            qtbot, monkeypatch) -> None:
    """Past BIG_LINKED records the Linked table is read and sorted on a worker thread: load() returns at
    once with the count in the tab, and the rows arrive when the read is done."""
    import threading

    from app.ui import workspace_page

    monkeypatch.setattr(workspace_page, "BIG_LINKED", 1)
    threads: list[str] = []
    real = status.linked_records
    monkeypatch.setattr(status, "linked_records",
                        lambda *a, **k: (threads.append(threading.current_thread().name), real(*a, **k))[1])
    window.reload()
    page = window.page
    assert page.tabs.tabText(page.LINKED_TAB) == "Linked records  3"
    # the rows of the last load are still there: wait for the read this load started
    qtbot.waitUntil(lambda: bool(threads) and page.linked.model.rowCount() == 3, timeout=60_000)
    assert threading.main_thread().name not in threads
    names = [page.linked.model.row(n).name for n in range(3)]
    assert sorted(names) == sorted(COMPANIES)


class SteppedUndo:
    """An undo of 489 changes whose steps the test lets through one at a time; time is the test's clock."""

    def __init__(self, n: int) -> None:
        import threading

        from app.ops.undo import UndoPlan, UndoStep

        self.steps = [UndoStep("restore_field", "accounting", "customer", f"c{i}", f"Customer {i}", "city",
                               "Leeds", "York", f"Put City back on Customer {i}") for i in range(n)]
        self.plan_ = UndoPlan("Maple Books", 7, "Run 7: 489 fields changed", self.steps, [])
        self.go = threading.Semaphore(0)
        self.at = threading.Event()  # set when the worker waits for the next step
        self.done = 0

    def undoable(self, workspace: str) -> set[int]:
        return {7}

    def plan(self, workspace: str, run_id: int):
        return self.plan_

    def apply(self, workspace: str, run_id: int, progress, cancel):
        from app.ops.undo import UndoResult

        progress("Reading the current values on both sides again", 0, 0)
        for n, step in enumerate(self.steps):
            self.at.set()
            self.go.acquire()
            if cancel.is_set():
                return UndoResult(8, "cancelled", self.done, 0, 0, f"Stopped after {self.done} change(s).")
            progress(step.description, n, len(self.steps))
            self.done += 1
        return UndoResult(8, "ok", self.done, 0, 0, "Done.")


def test_the_undo_dialog_counts_n_of_n_with_the_time_left_and_cancel_stops_it(qtbot) -> None:
    from app.ui.activity import UndoDialog

    make_application()
    now = [100.0]
    undo = SteppedUndo(489)
    run = ActivityRun(7, "manual", "ok", dt.datetime(2026, 11, 20, 9), dt.datetime(2026, 11, 20, 9, 2),
                      {}, None, False, 489)
    pool = QThreadPool()
    dialog = UndoDialog(undo, "Maple Books", run, pool, clock=lambda: now[0])
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.start_plan()
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=60_000)
    assert "Nothing has been changed yet" in dialog.summary.text()  # the preview: true
    qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)
    assert "Nothing has been changed" not in dialog.summary.text()  # working: it no longer says so
    assert dialog.summary.text().startswith("Putting 489 changes back")
    assert dialog.ticker.isActive() and dialog.ticker.interval() <= 1000  # redrawn at least once a second
    for n in range(13):  # counted from the first change: 12 more done, one every half second
        assert undo.at.wait(60)
        undo.at.clear()
        undo.go.release()
        qtbot.waitUntil(lambda n=n: dialog.eta.done == n, timeout=60_000)
        if n < 12:
            now[0] += 0.5
    assert dialog.count.text() == "12 of 489 · about 4 min left"  # 477 left at two a second
    assert dialog.progress.maximum() == 489 and dialog.progress.value() == 12
    now[0] += 30  # a slow patch: the next second's redraw says so without a new change
    dialog.tick()
    assert dialog.count.text() == "12 of 489 · about 24 min left"
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert dialog.cancel_event.is_set() and "Stopping" in dialog.stage.text()
    assert undo.at.wait(60)
    undo.go.release()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    assert dialog.result.status == "cancelled" and dialog.result.done == 13 and not dialog.ticker.isActive()
    pool.waitForDone(60_000)


def test_a_few_runs_leave_the_page_to_their_field_changes(world: World, qtbot) -> None:
    """Two runs take the room of three rows, not ten: the selected run's field changes get the rest."""
    make_application()
    pool = QThreadPool()
    page = ActivityPage(world.store, pool=pool)
    qtbot.addWidget(page)
    page.resize(1000, 700)
    page.set_workspace(world.name)
    page.show()
    qtbot.waitUntil(lambda: not page.running, timeout=60_000)
    qtbot.waitUntil(lambda: page.splitter.sizes()[0] == page._runs_room(), timeout=5_000)
    runs, changes = page.splitter.sizes()
    header = page.runs_table.horizontalHeader().sizeHint().height()
    assert len(page.visible_runs()) == 2 and runs == header + 3 * 30 + 8
    assert changes > 2 * runs  # most of the page shows what the selected run changed
    if SHOTS:
        page.grab().save(str(SHOTS / "activity-few-runs.png"))
    pool.waitForDone(60_000)


def test_the_fields_crossledger_keeps_on_a_deal_are_labelled_as_the_crm_shows_them() -> None:
    from app.ops.history_export import field_label

    assert [field_label(f) for f in ("crossledger_balance_due", "crossledger_last_payment", "city")] == [
        "Balance due", "Last payment date", "City"]  # not "Crossledger balance due"
