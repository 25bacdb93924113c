"""Reconcile: one month of a workspace checked in the background, its discrepancies, and the workbook.

The work is ``app.ops.reconcile_month.reconcile_workspace``; this page only picks the month, shows
progress, filters the flags and hands a chosen file name to the workbook writer, all off the UI thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import (
    QDate,
    Qt,
    QThreadPool,
    QTimer,
    QUrl,
)
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.connectors.errors import ConnectorError
from app.ops.reconcile_month import ReconcileResult, ReconcileRow, last_month
from app.ops.workspaces import UserError
from app.reconcile.engine import KINDS, Discrepancy
from app.sync.run_context import Busy, Cancelled
from app.ui.banner import MessageBanner
from app.ui.eta import Clock, Eta
from app.ui.models import RowRole
from app.ui.reconcile_table import (
    SEVERITY_COLOURS,
    SEVERITY_LABELS,
    DiscrepancyFilter,
    DiscrepancyModel,
    SummaryStrip,
    history_line,
    month_label,
)
from app.ui.resources import icon
from app.ui.tables import Fill, TableOrNote, make_table
from app.ui.text import Notice, in_window_words, notice_for_error
from app.ui.theme import Palette
from app.ui.widgets import OpenUrl, SaveDialog, ask_xlsx_path, dot_icon, save_dialog, suggested_path, workbook_not_saved
from app.ui.workers import BackgroundJob, ProgressFn

log = logging.getLogger(__name__)


class ReconcileFn(Protocol):
    """Reconcile workspace ``name`` for ``month`` (YYYY-MM); the GUI passes no output file."""

    def __call__(self, name: str, month: str, progress: ProgressFn, cancel: threading.Event) -> ReconcileResult: ...




ask_save_path = save_dialog("Export the reconciliation to Excel")


# -- the page ---------------------------------------------------------------------------------------
class ReconcilePage(QWidget):
    """Month picker, Run, progress and Cancel, the summary, the filterable flags, Open and Export."""

    NOTE_BEFORE = ("Pick a month and run the reconciliation. Crossledger reads both sides again (it changes "
                   "nothing) and lists every deal and invoice that do not agree.")

    def __init__(self, run: ReconcileFn | None, *, today: Callable[[], dt.date] = dt.date.today,
                 history: Callable[[str], list[ReconcileRow]] | None = None, clock: Clock = time.monotonic,
                 pool: QThreadPool | None = None, save_dialog: SaveDialog = ask_save_path,
                 open_url: OpenUrl = QDesktopServices.openUrl, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._run = run
        self._history = history
        self._pool = pool or QThreadPool(self)
        self._save_dialog = save_dialog
        self._open_url = open_url
        self.workspace: str | None = None
        self.result: ReconcileResult | None = None
        self.job: BackgroundJob[Any] | None = None
        self._cancel = threading.Event()
        self._last_export: Path | None = None

        # Month, Run
        self.month = QDateEdit()
        self.month.setDisplayFormat("MMMM yyyy")
        self.month.setCalendarPopup(False)
        self.month.setMinimumWidth(150)
        self.month.setToolTip("The month to check: deals won and invoices dated in it")
        default = dt.date.fromisoformat(last_month(today()) + "-01")
        self.month.setDate(QDate(default.year, default.month, 1))
        self.month.setMaximumDate(QDate(today().year, today().month, 1))
        self.month.setCurrentSection(QDateEdit.Section.MonthSection)
        self.run_button = QPushButton(icon("sync"), "Run reconciliation")
        self.run_button.setObjectName("PrimaryButton")
        self.run_button.clicked.connect(self.start)
        self.export_button = QPushButton("Export to Excel…")
        self.export_button.setToolTip("Save these results as an Excel workbook, with a Summary sheet")
        self.export_button.clicked.connect(self.export)
        self.history = QLabel()  # the last reconciliation; earlier ones in its tooltip
        self.history.setObjectName("Muted")
        month_label_ = QLabel("Month")
        month_label_.setObjectName("SectionLabel")
        top = QHBoxLayout()
        top.setSpacing(10)
        top.addWidget(month_label_)
        top.addWidget(self.month)
        top.addWidget(self.run_button)
        top.addSpacing(12)
        top.addStretch(1)  # the filters go before it
        top.addWidget(self.export_button)
        self._top = top

        # Progress and Cancel, shown while running
        self.progress_row = QWidget()
        self.stage = QLabel()
        self.stage.setObjectName("Muted")
        self.count = QLabel()  # "2 of 3 · a few seconds left", redrawn every second while it reads
        self.count.setObjectName("Muted")
        self.eta = Eta(clock)
        self.ticker = QTimer(self)
        self.ticker.setInterval(1000)
        self.ticker.timeout.connect(lambda: self.count.setText(self.eta.text()))
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton(icon("cancel"), "Cancel")
        self.cancel_button.setToolTip("Stop reading; nothing is changed on either side")
        self.cancel_button.clicked.connect(self.cancel)
        grid = QGridLayout(self.progress_row)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(6)
        grid.addWidget(self.stage, 0, 0)
        grid.addWidget(self.count, 0, 0, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(self.progress, 1, 0)
        grid.addWidget(self.cancel_button, 0, 1, 2, 1, Qt.AlignmentFlag.AlignVCenter)
        grid.setColumnStretch(0, 1)
        self.progress_row.hide()

        self.banner = MessageBanner()
        self.banner.action_clicked.connect(self._banner_action)
        self.summary = SummaryStrip()
        self.summary.hide()

        # Filters
        self.kind_filter = QComboBox()
        self.kind_filter.setMinimumWidth(220)
        self.kind_filter.setAccessibleName("Show discrepancies of this kind")
        self.severity_filter = QComboBox()
        self.severity_filter.addItem("Every severity", None)
        for severity, label in SEVERITY_LABELS.items():
            self.severity_filter.addItem(dot_icon(Palette.get(SEVERITY_COLOURS[severity])), label, severity)
        self._fill_kinds({})
        self.kind_filter.currentIndexChanged.connect(self._filter_changed)
        self.severity_filter.currentIndexChanged.connect(self._filter_changed)
        self.shown = QLabel()
        self.shown.setObjectName("Muted")
        self.severity_filter.setAccessibleName("Show discrepancies of this severity")
        for box in (self.kind_filter, self.severity_filter):  # each says what it shows: no label needed
            self._top.insertWidget(self._top.count() - 2, box)

        self.model = DiscrepancyModel(self)
        self.proxy = DiscrepancyFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = self._discrepancy_table(self.proxy)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # the engine's order: money first
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._picked(self.table))
        self.table.doubleClicked.connect(lambda _i: self.open_crm() or self.open_ledger())
        self.body = TableOrNote(self.table)
        self.body.show_note(self.NOTE_BEFORE)

        # Data quality: records held back and duplicate customers that do not touch the month, folded away
        self.quality_model = DiscrepancyModel(self)
        self.quality_table = self._discrepancy_table(self.quality_model)
        self.quality_table.setMaximumHeight(260)
        self.quality_table.hide()
        self.quality_table.selectionModel().selectionChanged.connect(lambda *_: self._picked(self.quality_table))
        self.quality_table.doubleClicked.connect(lambda _i: self.open_crm() or self.open_ledger())
        self.quality_toggle = QToolButton()
        self.quality_toggle.setObjectName("SectionToggle")
        self.quality_toggle.setCheckable(True)
        self.quality_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.quality_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.quality_toggle.setAccessibleName("Show the data-quality items")
        self.quality_toggle.toggled.connect(self._toggle_quality)
        self.quality_toggle.hide()

        self.open_crm_button = QPushButton("Open in CRM")
        self.open_crm_button.clicked.connect(self.open_crm)
        self.open_ledger_button = QPushButton("Open in ledger")
        self.open_ledger_button.clicked.connect(self.open_ledger)
        self.selection_hint = QLabel()  # the selected row's whole explanation, or what to do
        self.selection_hint.setObjectName("Muted")
        self.selection_hint.setWordWrap(True)
        self.selection_hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        actions = QHBoxLayout()
        actions.setContentsMargins(16, 4, 16, 8)
        actions.setSpacing(10)
        actions.addWidget(self.quality_toggle, 0, Qt.AlignmentFlag.AlignTop)
        actions.addWidget(self.selection_hint, 1)
        actions.addWidget(self.open_crm_button)
        actions.addWidget(self.open_ledger_button)

        results = QVBoxLayout()
        results.setContentsMargins(0, 0, 0, 0)
        results.setSpacing(0)
        results.addWidget(self.body, 1)
        self.summary.notes.addWidget(self.history)
        self.summary.notes.addWidget(self.shown)
        self.summary.notes.addStretch(1)
        quality = QVBoxLayout()
        quality.setContentsMargins(16, 4, 16, 0)
        quality.addWidget(self.quality_table)
        results.addLayout(quality)
        results.addLayout(actions)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 10, 16, 0)
        layout.setSpacing(8)
        layout.addLayout(top)
        layout.addWidget(self.progress_row)
        layout.addWidget(self.banner)
        layout.addWidget(self.summary)
        layout.addLayout(results, 1)
        self._update_buttons()

    def _discrepancy_table(self, model: Any) -> QTableView:
        # Severity, Gap, Discrepancy, What to check, CRM record, Ledger record: 900 px fit a 1280 px window.
        # One line a row, so many rows are in view; the selected row's whole explanation is shown below.
        table = make_table(model, (84, 120, 160, Fill(250), 150, 136), row_height=30)
        table.setTabKeyNavigation(False)  # Tab moves on to the buttons, arrows move between rows
        return table

    def _toggle_quality(self, shown: bool) -> None:
        self.quality_table.setVisible(shown)
        self.quality_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def show_history(self) -> None:
        """The last reconciliations of this workspace, from their own history (never the syncs')."""
        rows = self._history(self.workspace) if self._history and self.workspace else []
        self.history.setText(f"Last: {history_line(rows[0])}" if rows else "")
        self.history.setToolTip("Earlier reconciliations:\n" + "\n".join(history_line(r) for r in rows)
                                if rows else "")
        if self.result is None:  # before a run, the page's note says when the last one was
            self.body.show_note(self.NOTE_BEFORE + (f"\n\nLast reconciliation: {history_line(rows[0])}."
                                                    if rows else ""))

    # -- state ------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None

    def selected_month(self) -> str:
        return self.month.date().toString("yyyy-MM")

    def set_workspace(self, name: str | None) -> None:
        """Another workspace selected: its results are not this one's, so clear them."""
        if name == self.workspace:
            return
        self.workspace = name
        self._show_result(None)
        self.banner.show_notice(None)
        self.show_history()
        self._update_buttons()

    def visible_rows(self) -> list[Discrepancy]:
        return [self.proxy.data(self.proxy.index(r, 0), RowRole)
                for r in range(self.proxy.rowCount())]

    # -- running ----------------------------------------------------------------------------------
    def start(self) -> bool:
        if self.running or self.workspace is None or self._run is None:
            return False
        name, month, run = self.workspace, self.selected_month(), self._run
        self._cancel = threading.Event()
        cancel = self._cancel

        def work(progress: ProgressFn) -> ReconcileResult:
            return run(name, month, progress, cancel)

        self.banner.show_notice(None)
        self.job = BackgroundJob(work, on_success=lambda r: self._finished(name, r),
                                 on_failure=lambda exc: self._failed(name, month, exc),
                                 on_progress=self._progressed, parent=self)
        self.stage.setText(f"Reconciling {month_label(month)}: reading both sides (nothing is changed)…")
        self.progress.setRange(0, 0)
        self.eta.restart()
        self.count.setText("")
        self.ticker.start()
        self.cancel_button.setEnabled(True)
        self.progress_row.show()
        self._update_buttons()
        self.job.start(self._pool)
        return True

    def cancel(self) -> None:
        if self.running:
            self._cancel.set()
            self.stage.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    def _progressed(self, stage: str, done: int, total: int) -> None:
        if self._cancel.is_set():
            return
        self.stage.setText(f"{stage}…" if not stage.endswith("…") else stage)
        if total > 0:
            self.eta.update(done, total)
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
        else:
            self.progress.setRange(0, 0)
        self.count.setText(self.eta.text())

    def _end_job(self) -> None:
        if self.job is not None:
            self.job.dispose()
        self.job = None
        self.ticker.stop()
        self.count.setText("")
        self.progress_row.hide()
        self._update_buttons()

    def _finished(self, name: str, result: ReconcileResult) -> None:
        self._end_job()
        if name != self.workspace:
            return  # the bookkeeper moved on to another workspace meanwhile
        self.show_history()
        self._show_result(result)
        when = month_label(result.month)
        if result.stale:
            self.banner.show_notice(Notice(
                "warning", f"{when} was checked against what Crossledger read last time",
                f"One side could not be read just now ({result.stale}) The list below may be out of date; run "
                "it again when the connection is back."))

    def _failed(self, name: str, month: str, exc: Exception) -> None:
        self._end_job()
        if name != self.workspace:
            return
        self.show_history()
        self.banner.show_notice(notice_for_reconcile_error(exc, month=month, workspace=name))

    # -- results ----------------------------------------------------------------------------------
    def _show_result(self, result: ReconcileResult | None) -> None:
        self.result = result
        self.model.set_rows(result.report.discrepancies if result else [])
        apart = result.report.set_apart if result else []
        self.quality_model.set_rows(apart)
        self.quality_toggle.setVisible(bool(apart))
        if apart:
            held = sum(d.kind == "held_back" for d in apart)
            parts = [f"{held:,} record{'s' if held != 1 else ''} held back or in Review"] if held else []
            if len(apart) - held:
                parts.append(f"{len(apart) - held:,} possible duplicate customer group"
                             f"{'s' if len(apart) - held != 1 else ''}")
            self.quality_toggle.setText(f"Data quality ({len(apart):,})")
            self.quality_toggle.setToolTip(f"{' and '.join(parts)}: none of them touches a deal won "
                                           f"or an invoice issued in {month_label(result.month)}. Open to see them.")
        else:
            self.quality_toggle.setChecked(False)
        self._fill_kinds(result.report.counts() if result else {})
        if result is None:
            self.summary.hide()
            self.body.show_note(self.NOTE_BEFORE)
        else:
            self.summary.set_result(result)
            self.summary.show()
            self.open_crm_button.setText(f"Open in {result.crm_label}")
            self.open_ledger_button.setText(f"Open in {result.ledger_label}")
        self._filter_changed()
        self._update_buttons()

    def _fill_kinds(self, counts: dict[str, int]) -> None:
        keep = self.kind_filter.currentData()
        self.kind_filter.blockSignals(True)
        self.kind_filter.clear()
        self.kind_filter.addItem(f"Every discrepancy ({sum(counts.values()):,})" if counts
                                 else "Every discrepancy", None)
        for kind, (_severity, title) in KINDS.items():
            if counts.get(kind):
                self.kind_filter.addItem(f"{title} ({counts[kind]:,})", kind)
        index = self.kind_filter.findData(keep) if keep else 0
        self.kind_filter.setCurrentIndex(max(index, 0))
        self.kind_filter.blockSignals(False)

    def set_kind(self, kind: str | None) -> None:
        index = self.kind_filter.findData(kind) if kind else 0
        if index < 0:
            raise ValueError(f"no discrepancy of kind {kind!r} to show")
        self.kind_filter.setCurrentIndex(index)

    def set_severity(self, severity: str | None) -> None:
        self.severity_filter.setCurrentIndex(self.severity_filter.findData(severity) if severity else 0)

    def _filter_changed(self) -> None:
        self.proxy.set_filter(kind=self.kind_filter.currentData(), severity=self.severity_filter.currentData())
        total, shown = self.model.rowCount(), self.proxy.rowCount()
        if self.result is None:
            self.shown.setText("")
        elif total == 0:
            self.shown.setText("")
            self.body.show_note(f"No discrepancies in {month_label(self.result.month)}. Every won deal has its "
                                "invoice and every amount agrees.")
        elif shown == 0:
            self.shown.setText(f"Showing 0 of {total:,}")
            self.body.show_note("Nothing of this kind and severity. Choose “Every discrepancy” or "
                                "“Every severity” to see the rest.")
        else:
            # every row shown: the kind filter already says how many ("Every discrepancy (9)")
            self.shown.setText("" if shown == total else f"Showing {shown:,} of {total:,}")
            self.body.show_table()
        self._selection_changed()

    def _picked(self, table: QTableView) -> None:
        """A row picked in one table (the month's, or the data-quality one) unpicks the other's."""
        other = self.quality_table if table is self.table else self.table
        if table.selectionModel().hasSelection() and other.selectionModel().hasSelection():
            other.selectionModel().blockSignals(True)
            other.clearSelection()
            other.selectionModel().blockSignals(False)
            other.viewport().update()
        self._selection_changed()

    def selected(self) -> Discrepancy | None:
        for table in (self.table, self.quality_table):
            rows = table.selectionModel().selectedRows()
            if rows:
                return table.model().data(rows[0], RowRole)
        return None

    def _selection_changed(self) -> None:
        row = self.selected()
        self.open_crm_button.setEnabled(bool(row and row.crm_url))
        self.open_ledger_button.setEnabled(bool(row and row.acct_url))
        if self.result is None or (self.model.rowCount() == 0 and row is None):
            self.selection_hint.setText("")
        elif row is not None and (row.crm_url or row.acct_url):
            self.selection_hint.setText(row.explanation)
        elif row is None:
            self.selection_hint.setText("Select a row to open its records.")
        else:
            self.selection_hint.setText(f"{row.explanation} (No record to open in either app.)")

    def open_crm(self) -> bool:
        row = self.selected()
        if row is None or not row.crm_url:
            return False
        self._open_url(QUrl(row.crm_url))
        return True

    def open_ledger(self) -> bool:
        row = self.selected()
        if row is None or not row.acct_url:
            return False
        self._open_url(QUrl(row.acct_url))
        return True

    # -- export -----------------------------------------------------------------------------------
    def suggested_file(self) -> str:
        assert self.result is not None
        return suggested_path(self._last_export, f"{self.result.workspace}-reconciliation-{self.result.month}.xlsx")

    def export(self) -> bool:
        if self.result is None or self.running:
            return False
        path = ask_xlsx_path(self, self._save_dialog, self.suggested_file())
        if path is None:
            return False
        result = self.result
        self.job = BackgroundJob(lambda _progress: result.write(path), on_success=self._exported,
                                 on_failure=lambda exc: self._export_failed(path, exc), parent=self)
        self.stage.setText(f"Writing {path.name}…")
        self.progress.setRange(0, 0)
        self.cancel_button.setEnabled(False)
        self.progress_row.show()
        self._update_buttons()
        self.job.start(self._pool)
        return True

    def _exported(self, path: Path) -> None:
        self._end_job()
        self._last_export = path
        self.banner.show_notice(Notice("success", "Workbook saved",
                                       f"{path}. Its Summary sheet recalculates the totals from the detail "
                                       "sheets when it is opened.", action="Open the workbook"))

    def _export_failed(self, path: Path, exc: Exception) -> None:
        self._end_job()
        self.banner.show_notice(workbook_not_saved(path, exc))

    def _banner_action(self, action: str) -> None:
        if action == "Open the workbook" and self._last_export is not None:
            self._open_url(QUrl.fromLocalFile(str(self._last_export)))

    def _update_buttons(self) -> None:
        can_run = self._run is not None and self.workspace is not None and not self.running
        self.run_button.setEnabled(can_run)
        self.month.setEnabled(not self.running)
        self.run_button.setText("Reconciling…" if self.running else "Run reconciliation")
        self.export_button.setEnabled(self.result is not None and not self.running)

    def shutdown(self, timeout_ms: int = 15000) -> bool:
        """Stop a run in progress and wait for the thread (window closing)."""
        self._cancel.set()
        return self._pool.waitForDone(timeout_ms)


def notice_for_reconcile_error(exc: BaseException, *, month: str, workspace: str) -> Notice:
    """A failed reconciliation in a bookkeeper's words; nothing is ever written by one."""
    when = month_label(month) if len(month) == 7 else month
    if isinstance(exc, Cancelled):
        return Notice("info", "Reconciliation cancelled", "Nothing was changed. Run it again when you are ready.")
    if isinstance(exc, Busy):
        return Notice("info", "A sync of this workspace is running",
                      f"Run the reconciliation of {when} again when the sync has finished.")
    if isinstance(exc, UserError):
        return Notice("warning", f"{when} could not be reconciled", in_window_words(str(exc)))
    if isinstance(exc, ConnectorError):
        notice = notice_for_error(exc, workspace=workspace)
        return Notice(notice.level, notice.title, notice.detail.replace("nothing was synced", "nothing was checked")
                      .replace("sync again", "run the reconciliation again"))
    log.error("Reconciliation failed with an unexpected error", exc_info=exc)
    return Notice("error", f"{when} could not be reconciled",
                  "Something unexpected stopped it; nothing was changed on either side. Try again; if it keeps "
                  "happening, send the log file to support.")


def reconcile_history(store: Any) -> Callable[[str], list[ReconcileRow]]:
    from app.ops.reconcile_month import history

    return lambda name: history(store, name)


def reconcile_runner(store: Any, tokens: Any) -> ReconcileFn:
    """The real work for the page: read both sides again (writing nothing) and flag the month."""
    from app.ops.reconcile_month import reconcile_workspace

    def run(name: str, month: str, progress: ProgressFn, cancel: threading.Event) -> ReconcileResult:
        return reconcile_workspace(store, tokens, name, month, None, progress=progress, cancel=cancel)

    return run
