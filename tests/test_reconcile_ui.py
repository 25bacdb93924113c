"""The Reconcile page on the real demo (sandboxes served by this process), one of each discrepancy planted.

Run, progress, Cancel, filters by kind and severity, Open in HubSpot / QuickBooks, Export to Excel.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import openpyxl
import pytest
from PySide6.QtCore import QDate, Qt, QThreadPool, QUrl
from PySide6.QtWidgets import QToolButton

from app.connectors.tokens import MemoryTokenStore
from app.ui.main_window import MainWindow
from app.ui.reconcile_page import DiscrepancyModel, ReconcilePage, reconcile_runner
from tests.reconcile_seed import MONTH, Planted, planted_demo

TODAY = dt.date(2026, 11, 27)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    with planted_demo(tmp_path_factory.mktemp("reconcile-ui")) as planted:
        yield planted


class Recorder:
    """Stands in for QDesktopServices.openUrl and the Save dialog."""

    def __init__(self, answer: str = "") -> None:
        self.urls: list[str] = []
        self.asked: list[str] = []
        self.answer = answer

    def open(self, url: QUrl) -> bool:
        self.urls.append(url.toString())
        return True

    def save(self, _parent: object, suggested: str, _filters: str) -> str:
        self.asked.append(suggested)
        return self.answer


@pytest.fixture
def page(qtbot, demo: Planted) -> Iterator[tuple[ReconcilePage, Recorder]]:
    rec = Recorder()
    pool = QThreadPool()
    p = ReconcilePage(reconcile_runner(demo.store, demo.tokens), today=lambda: TODAY, pool=pool,
                      save_dialog=rec.save, open_url=rec.open)
    qtbot.addWidget(p)
    p.resize(1280, 820)
    p.set_workspace("demo")
    p.month.setDate(QDate(2026, 9, 1))
    yield p, rec
    p.shutdown()


def run(qtbot, p: ReconcilePage) -> None:
    qtbot.mouseClick(p.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not p.running, timeout=60_000)


def select(p: ReconcilePage, kind: str) -> None:
    for r in range(p.proxy.rowCount()):
        if p.proxy.data(p.proxy.index(r, 0), Qt.ItemDataRole.UserRole + 1).kind == kind:
            p.table.selectRow(r)
            return
    raise AssertionError(f"no {kind} row shown")


def test_run_lists_each_planted_discrepancy_with_totals_and_counts(qtbot, page):
    p, _ = page
    assert p.selected_month() == MONTH
    assert not p.export_button.isEnabled()
    qtbot.mouseClick(p.run_button, Qt.MouseButton.LeftButton)
    assert p.running and not p.run_button.isEnabled() and not p.progress_row.isHidden()
    qtbot.waitUntil(lambda: not p.running, timeout=60_000)
    assert p.progress_row.isHidden() and p.run_button.isEnabled() and p.export_button.isEnabled()

    kinds = Counter(d.kind for d in p.visible_rows())
    # None of the 16 records the demo holds back has a deal won or an invoice issued in September: they are
    # not September's discrepancies, but one folded data-quality section under the table.
    assert "held_back" not in kinds
    assert kinds == dict.fromkeys(["won_without_invoice", "invoice_without_deal", "amount_mismatch",
                                   "currency_mismatch", "customer_mismatch", "payment_status_mismatch",
                                   "duplicate_customer", "void_while_won", "crm_record_gone",
                                   "ledger_customer_gone", "not_won_invoiced"], 1)
    report = p.result.report
    assert p.model.rowCount() == len(report.discrepancies)
    assert not p.quality_toggle.isHidden() and p.quality_table.isHidden()
    assert p.quality_toggle.text() == "Data quality (16)"
    assert p.quality_toggle.toolTip().startswith("16 records held back or in Review: none of them touches")
    assert "September 2026" in p.quality_toggle.toolTip()
    qtbot.mouseClick(p.quality_toggle, Qt.MouseButton.LeftButton)
    assert not p.quality_table.isHidden() and p.quality_model.rowCount() == 16
    assert {p.quality_model.row(r).kind for r in range(16)} == {"held_back"}
    # The summary strip shows the engine's counts by severity and its totals per currency.
    assert p.summary.counts["high"].text() == "5"
    assert p.summary.counts["medium"].text() == "5" and p.summary.counts["low"].text() == "1"
    cells = [p.summary.totals.itemAt(i).widget().text() for i in range(p.summary.totals.count())]
    assert "Won in HubSpot" in cells and "Invoiced in QuickBooks Online" in cells
    for cur, total in report.crm_totals.items():
        assert cur in cells and f"{total:,.2f}" in cells
        assert f"{report.ledger_totals.get(cur, Decimal(0)):,.2f}" in cells
    assert any(report.gap(c) for c in report.crm_totals), "the void and the extra licence open a gap"
    assert p.kind_filter.currentText() == f"Every discrepancy ({len(report.discrepancies)})"
    assert p.shown.text() == ""  # nothing filtered out
    assert p.banner.isHidden()  # the summary says it all; the banner is for problems


def test_filters_by_kind_and_severity(qtbot, page):
    p, _ = page
    run(qtbot, p)
    total = p.model.rowCount()
    p.set_severity("high")
    assert {d.severity for d in p.visible_rows()} == {"high"} and len(p.visible_rows()) == 5
    assert p.shown.text() == f"Showing 5 of {total:,}"
    p.set_kind("amount_mismatch")
    assert [d.kind for d in p.visible_rows()] == ["amount_mismatch"]
    p.set_severity("low")  # amount differences are never low
    assert p.visible_rows() == [] and p.body.currentWidget() is p.body.note
    p.set_severity(None)
    p.set_kind("duplicate_customer")
    assert {d.kind for d in p.visible_rows()} == {"duplicate_customer"}
    p.set_kind(None)
    assert len(p.visible_rows()) == total and p.body.currentWidget() is p.table
    # The kind list names only what this month has, each with its count.
    items = [p.kind_filter.itemText(i) for i in range(p.kind_filter.count())]
    assert items[0] == f"Every discrepancy ({total})" and "Invoice with no deal (1)" in items
    kinds = {d.kind for d in p.visible_rows()}  # 11 planted kinds, and a payment recorded after the month
    assert len(kinds) >= 11 and len(items) == len(kinds) + 1  # was closed once a report of it was made


def test_money_comes_first_with_its_gap_in_view(qtbot, page):
    p, _ = page
    p.show()
    run(qtbot, p)
    rows = p.visible_rows()
    money = [d for d in rows if d.is_money]
    assert rows[:len(money)] == money and len(money) == 6  # before every other discrepancy
    gaps = [abs(d.gap) for d in money if d.gap is not None]
    assert gaps == sorted(gaps, reverse=True)
    # The Gap column is in view without scrolling sideways, at the width the page has in a 1280 px window.
    p.resize(1280 - 260 - 48, 700)  # the window less the sidebar and the page's margins
    qtbot.wait(50)
    header = p.table.horizontalHeader()
    col = DiscrepancyModel.AMOUNTS
    assert header.sectionViewportPosition(col) + header.sectionSize(col) <= p.table.viewport().width()
    first = p.proxy.index(0, col).data()
    assert first.endswith(f"{money[0].gap:+,.2f}")


def test_open_either_record_in_its_web_app(qtbot, page, demo):
    p, rec = page
    run(qtbot, p)
    assert not p.open_crm_button.isEnabled() and not p.open_ledger_button.isEnabled()
    assert p.open_crm_button.text() == "Open in HubSpot" and p.open_ledger_button.text() == "Open in QuickBooks Online"
    select(p, "amount_mismatch")
    qtbot.mouseClick(p.open_crm_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(p.open_ledger_button, Qt.MouseButton.LeftButton)
    deal = demo.deals[demo.changed]
    assert rec.urls[0].startswith("https://app.hubspot.com/contacts/") and rec.urls[0].endswith(f"/{deal}")
    assert rec.urls[1].endswith(f"/app/invoice?txnId={demo.changed}")
    select(p, "invoice_without_deal")  # there is no deal to open
    assert not p.open_crm_button.isEnabled() and p.open_ledger_button.isEnabled()
    p.quality_toggle.setChecked(True)  # a CRM record held back, in the data-quality section, opens in the CRM
    p.quality_table.selectRow(0)
    assert p.selected().kind == "held_back" and p.open_crm_button.isEnabled()
    select(p, "won_without_invoice")
    assert p.open_crm_button.isEnabled() and not p.open_ledger_button.isEnabled()
    select(p, "duplicate_customer")  # opens the first of the ledger customers to merge
    qtbot.mouseClick(p.open_ledger_button, Qt.MouseButton.LeftButton)
    assert "/app/customerdetail?nameId=" in rec.urls[-1]


def test_export_writes_the_workbook_to_the_chosen_file(qtbot, page, tmp_path):
    p, rec = page
    run(qtbot, p)
    rec.answer = ""  # the bookkeeper cancels the dialog: nothing is written
    assert not p.export()
    rec.answer = str(tmp_path / "october")  # no extension typed
    qtbot.mouseClick(p.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not p.running, timeout=30_000)
    assert rec.asked[-1].endswith("demo-reconciliation-2026-09.xlsx")
    path = tmp_path / "october.xlsx"
    assert p.banner.title.text() == "Workbook saved" and str(path) in p.banner.detail.text()
    wb = openpyxl.load_workbook(path)
    try:
        assert wb.sheetnames == ["Summary", "Discrepancies", "Deals", "Invoices", "Payments", "Data quality"]
        disc = wb["Discrepancies"]
        assert disc.max_row - 1 == p.model.rowCount()
        kinds = Counter(row[1] for row in disc.iter_rows(min_row=2, values_only=True))
        assert kinds["Amounts differ"] == 1 and kinds["Invoice voided or deleted, deal still won"] == 1
        assert wb["Summary"]["A1"].value == "Reconciliation for September 2026"
    finally:
        wb.close()
    qtbot.mouseClick(p.banner.action, Qt.MouseButton.LeftButton)  # "Open the workbook"
    assert rec.urls[-1] == QUrl.fromLocalFile(str(path)).toString()


def test_export_to_a_folder_that_cannot_be_written_says_so(qtbot, page, tmp_path):
    p, rec = page
    run(qtbot, p)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    rec.answer = str(blocker / "r.xlsx")
    assert p.export()
    qtbot.waitUntil(lambda: not p.running, timeout=30_000)
    assert p.banner.title.text() == "The workbook was not saved"
    assert "choose another folder" in p.banner.detail.text() and "Errno" not in p.banner.detail.text()


def test_cancel_stops_the_run_and_changes_nothing(qtbot, demo):
    real = reconcile_runner(demo.store, demo.tokens)
    started = threading.Event()

    def held_until_cancelled(name, month, progress, cancel):
        started.set()
        cancel.wait(10)  # the real run, started once Cancel has been pressed
        return real(name, month, progress, cancel)

    p = ReconcilePage(held_until_cancelled, today=lambda: TODAY, pool=QThreadPool())
    qtbot.addWidget(p)
    p.set_workspace("demo")
    assert p.start()
    assert started.wait(60)
    assert p.ticker.isActive() and p.ticker.interval() <= 1000  # the count and time left, every second
    qtbot.mouseClick(p.cancel_button, Qt.MouseButton.LeftButton)
    assert p.stage.text() == "Cancelling…" and not p.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not p.running, timeout=30_000)
    assert p.banner.title.text() == "Reconciliation cancelled"
    assert "Nothing was changed" in p.banner.detail.text() and p.result is None and not p.ticker.isActive()
    p.shutdown()


def test_a_workspace_that_is_gone_gets_a_plain_message(qtbot, page):
    p, _ = page
    p.set_workspace("no such workspace")
    run(qtbot, p)
    assert p.banner.title.text() == "September 2026 could not be reconciled"
    assert "no such workspace" in p.banner.detail.text() and "Traceback" not in p.banner.detail.text()


def test_the_model_is_well_behaved(qtmodeltester, qtbot, page):
    p, _ = page
    run(qtbot, p)
    qtmodeltester.check(p.model)
    qtmodeltester.check(p.proxy)
    p.table.sortByColumn(DiscrepancyModel.SEVERITY, Qt.SortOrder.AscendingOrder)
    severities = [d.severity for d in p.visible_rows()]
    assert severities == sorted(severities, key=["high", "medium", "low"].index)


def test_the_workspace_page_has_a_reconcile_tab(qtbot, demo):
    window = MainWindow(demo.store, MemoryTokenStore())
    qtbot.addWidget(window)
    tabs = window.page.tabs
    assert "Reconcile" in [tabs.tabText(i) for i in range(tabs.count())]
    assert window.page.reconcile.workspace == "demo" and window.page.reconcile.run_button.isEnabled()


def test_a_reconciliation_is_not_a_sync_and_keeps_its_own_history(qtbot, demo):
    from app.ops import status

    window = MainWindow(demo.store, demo.tokens)
    qtbot.addWidget(window)
    before = next(ws for ws in status.workspace_statuses(demo.store) if ws.name == "demo").last_run
    runs_before = [r.id for r in status.recent_runs(demo.store, window.page.workspace_id)]
    header = window.page.header

    def header_words() -> list[str]:  # all but the calls made today, which a reconciliation adds to
        return [w.text() for w in header.findChildren(type(window.page.reconcile.history)) if w is not header.budget]

    last_sync_words = header_words()
    page = window.page.reconcile
    page.month.setDate(QDate(2026, 9, 1))
    assert page.start()
    qtbot.waitUntil(lambda: not page.running, timeout=60_000)
    assert page.result is not None
    window.reload()
    after = next(ws for ws in status.workspace_statuses(demo.store) if ws.name == "demo").last_run
    assert (after.id, after.trigger) == (before.id, before.trigger)  # "Last sync" did not move
    assert [r.id for r in status.recent_runs(demo.store, window.page.workspace_id)] == runs_before
    assert all(r.trigger != "reconcile" for r in status.recent_runs(demo.store, window.page.workspace_id))
    from app.ops.history_export import load_activity

    assert all(r.trigger != "reconcile" for r in load_activity(demo.store, "demo").runs)  # nor in Activity
    from sqlalchemy import select

    from app.store.models import Reconciliation, Run

    with demo.store.session() as s:
        assert s.scalars(select(Run).where(Run.trigger == "reconcile")).first() is None  # not recorded as a sync
        mine = s.scalars(select(Reconciliation).order_by(Reconciliation.id.desc())).first()
        assert (mine.month, mine.status, mine.trigger) == ("2026-09", "ok", "manual")
        assert mine.counts["discrepancies"] == len(page.result.report.discrepancies) and mine.finished_at
    assert header_words() == last_sync_words
    assert page.history.text().startswith("Last: September 2026, checked ")
    assert page.history.text().endswith(f"· {len(page.result.report.discrepancies)} discrepancies")


def test_each_page_shows_ten_rows_of_its_table_at_1280_by_800_and_one_banner_at_a_time(qtbot, demo):
    from app.ui.app import make_application
    from app.ui.text import Notice

    make_application()  # the real theme: its fonts and paddings
    window = MainWindow(demo.store, demo.tokens)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    page = window.page
    rec = page.reconcile
    rec.month.setDate(QDate(2026, 9, 1))
    assert rec.start()
    qtbot.waitUntil(lambda: not rec.running, timeout=60_000)
    # A message in the window's banner and one from a page: the newest shows, never both.
    page.show_notice(Notice("success", "Synced", "12 records updated."))
    assert page.banner.isVisible()
    rec.banner.show_notice(Notice("info", "Workbook saved", "/tmp/x.xlsx"))
    assert not page.banner.isVisible() and not rec.banner.isHidden()
    page.show_notice(Notice("success", "Synced", "12 records updated."))
    assert page.banner.isVisible() and rec.banner.isHidden()
    qtbot.mouseClick(page.banner.findChild(QToolButton, "BannerClose"), Qt.MouseButton.LeftButton)
    assert not page.banner.isVisible()  # dismissed
    bodies = {"Linked": (page.linked, page.linked.body), "Held back": (page.held, page.held.body),
              "Review": (page.review, page.review.list), "Activity": (page.activity, page.activity.runs_body),
              "Reconcile": (rec, rec.body)}
    for name, (tab, body) in bodies.items():
        page.tabs.setCurrentWidget(tab)
        qtbot.wait(30)
        table = body.table
        room = body.height() - table.horizontalHeader().sizeHint().height()
        rows = room // table.verticalHeader().defaultSectionSize()
        # Activity's runs take the room their rows need, ten at most, and leave the rest to the selected
        # run's field changes: with fewer than ten runs, every run is in view.
        want = min(10, table.model().rowCount()) if tab is page.activity else 10
        assert rows >= want, f"{name}: {rows} rows of {table.verticalHeader().defaultSectionSize()} px in {room} px"


def test_month_defaults_to_last_month_and_cannot_be_in_the_future(qtbot):
    p = ReconcilePage(None, today=lambda: dt.date(2027, 1, 5))
    qtbot.addWidget(p)
    assert p.selected_month() == "2026-12"
    p.month.setDate(p.month.date().addMonths(6))
    assert p.selected_month() == "2027-01"
    assert not p.run_button.isEnabled()  # no workspace yet



def test_the_scheduled_reconciliation_is_told_in_the_tray_with_where_the_workbook_is(tmp_path, qtbot, qapp):
    from app.ops.reconcile_month import ReconcileResult
    from app.reconcile.engine import reconcile
    from tests.test_reconcile import data
    from tests.test_tray import Env

    report = reconcile(data())  # one of each kind, in November 2026
    book = tmp_path / "reports" / "Acme-reconciliation-2026-11.xlsx"
    env = Env(tmp_path)
    try:
        tray = env.make_tray()
        env.behaviour["Acme"] = lambda: ReconcileResult("Acme", "2026-11", report, book)
        with qtbot.waitSignal(tray.notified, timeout=60_000) as told:  # the minute only matters on failure
            env.scheduler.run_now("Acme")
        title, body, level = told.args
        assert title == f"Acme: {len(report.discrepancies)} discrepancies in November 2026"
        assert str(book) in body and "4 of them need attention first" in body and level == "warning"
    finally:
        env.close()
