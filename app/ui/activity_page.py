"""Activity: every run of a workspace, the field changes each made, their export, a record's history, and undo.

The reading is ``app.ops.history_export.load_activity`` and the undo is ``app.ops.undo``; both run off the
UI thread through ``BackgroundJob``. This page filters what was read and draws it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QDate, QEvent, QObject, QSortFilterProxyModel, Qt, QThreadPool, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QIcon, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QDialog,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.connectors.errors import ConnectorError
from app.ops.history_export import (
    Activity,
    ActivityChange,
    ActivityRun,
    field_label,
    load_activity,
    record_history,
    rule_label,
    side_label,
    status_label,
    trigger_label,
    write_workbook,
)
from app.ops.status import LinkRow
from app.store.db import Store
from app.ui import text
from app.ui.banner import MessageBanner
from app.ui.eta import Clock, Eta
from app.ui.models import Index, RowRole, RowTableModel, SortRole, _stamp
from app.ui.resources import icon
from app.ui.tables import Fill, PaddedTextDelegate, TableOrNote, make_table
from app.ui.text import Notice, notice_for_error
from app.ui.theme import LEVEL_COLORS, Palette
from app.ui.widgets import ask_xlsx_path, dot_icon
from app.ui.workers import BackgroundJob, ProgressFn

log = logging.getLogger(__name__)

SaveDialog = Callable[[QWidget, str, str], str]  # (parent, suggested path, filter) -> chosen path or ""
OpenUrl = Callable[[QUrl], Any]
EMPTY = "(empty)"
# Fitting each row to its text measures every row at once: beyond this many rows (a first sync of
# thousands of records) that would freeze the window for seconds, so rows keep the standard height.
FIT_ROWS_MAX = 500


def ask_save_path(parent: QWidget, suggested: str, filters: str) -> str:
    """The real Save dialog; tests pass their own function instead."""
    path, _ = QFileDialog.getSaveFileName(parent, "Export the activity to Excel", suggested, filters)
    return path


def when_text(value: dt.datetime | None) -> str:
    return "" if value is None else f"{text.local(value):%d %b %Y, %H:%M}"


def value_text(value: str | None) -> str:
    return value if value not in (None, "") else EMPTY


# -- undo, as the page calls it ------------------------------------------------------------------------
class UndoActions(Protocol):
    """What the page needs from ``app.ops.undo``; tests and the window pass the real one."""

    def undoable(self, workspace: str) -> set[int] | None: ...  # None: undo is not available
    def plan(self, workspace: str, run_id: int) -> Any: ...  # UndoPlan
    def apply(self, workspace: str, run_id: int, progress: ProgressFn, cancel: threading.Event) -> Any: ...


@dataclass
class StoreUndo:
    """``app.ops.undo`` over the window's store and keyring."""

    store: Store
    tokens: Any

    def undoable(self, workspace: str) -> set[int] | None:
        try:
            from app.ops import undo
        except ImportError:  # a build without undo: the page still shows the activity
            return None
        return set(undo.undoable_runs(self.store, workspace))

    def plan(self, workspace: str, run_id: int) -> Any:
        from app.ops import undo
        return undo.plan_undo(self.store, self.tokens, workspace, run_id)

    def apply(self, workspace: str, run_id: int, progress: ProgressFn, cancel: threading.Event) -> Any:
        from app.ops import undo
        return undo.apply_undo(self.store, self.tokens, workspace, run_id, progress=progress, cancel=cancel)


def notice_for_undo_error(exc: BaseException, workspace: str) -> Notice:
    """UndoError carries plain words by contract; anything else is mapped, never shown raw."""
    if type(exc).__name__ == "UndoError" and type(exc).__module__ == "app.ops.undo":
        return Notice("warning", "This run cannot be undone", text.in_window_words(str(exc)))
    if isinstance(exc, ConnectorError):
        notice = notice_for_error(exc, workspace=workspace)
        return Notice(notice.level, notice.title, notice.detail.replace("nothing was synced", "nothing was undone")
                      .replace("sync again", "try the undo again"))
    log.error("Undo failed with an unexpected error", exc_info=exc)
    return Notice("error", "The undo stopped",
                  "Something unexpected stopped it. What was already put back is recorded as an undo run in the "
                  "list; open this page again and try once more. If it keeps happening, send the log file to "
                  "support.")


# -- the tables --------------------------------------------------------------------------------------------
class RunModel(RowTableModel[ActivityRun]):
    """One row per run, newest first."""

    RUN, TRIGGER, STARTED, FINISHED, STATUS, COUNTS, MESSAGE = range(7)
    HEADERS = ("Run", "Kind", "Started", "Finished", "Result", "What it did", "Messages")

    def display(self, row: ActivityRun, col: int) -> str:
        if col == self.RUN:
            return f"#{row.id}"
        if col == self.TRIGGER:
            return trigger_label(row.trigger) + (" (dry run)" if row.dry_run else "")
        if col == self.STARTED:
            return text.format_when(row.started_at, self._now())
        if col == self.FINISHED:
            if row.finished_at is None:
                return ""
            same_day = text.local(row.finished_at).date() == text.local(row.started_at).date()
            return f"{text.local(row.finished_at):%H:%M}" if same_day else text.format_when(row.finished_at,
                                                                                             self._now())
        if col == self.STATUS:
            return status_label(row.status)
        if col == self.COUNTS:
            return row.counts_text()
        message = (row.message or "").splitlines()[0] if row.message else ""
        if row.errors:
            errors = text.plural(row.errors, "error")
            return f"{errors}: {message}" if message else errors
        return message

    def sort_key(self, row: ActivityRun, col: int) -> Any:
        if col == self.RUN:
            return row.id
        if col == self.STARTED:
            return _stamp(row.started_at)
        if col == self.FINISHED:
            return _stamp(row.finished_at)
        return super().sort_key(row, col)

    def search_text(self, row: ActivityRun) -> str:
        return " ".join((str(row.id), trigger_label(row.trigger), status_label(row.status), row.message or "",
                         row.counts_text())).casefold()

    def tooltip(self, row: ActivityRun, col: int) -> str | None:
        if col in (self.STARTED, self.FINISHED):
            value = row.started_at if col == self.STARTED else row.finished_at
            took = text.format_duration(row.started_at, row.finished_at)
            return f"{when_text(value)}" + (f" (took {took})" if took and col == self.FINISHED else "")
        if col == self.COUNTS:
            read = int(row.counts.get("read") or 0)
            return f"{row.counts_text()}\n{text.plural(read, 'record')} read from both sides"
        if col == self.MESSAGE and row.message:
            return row.message
        if col == self.TRIGGER and row.trigger == "undo":
            return "This run put back the changes of an earlier run. An undo cannot itself be undone."
        return None

    def foreground(self, row: ActivityRun, col: int) -> QColor | None:
        if col == self.MESSAGE and row.errors:
            return QColor(Palette.ERROR)
        if col in (self.RUN, self.FINISHED):
            return QColor(Palette.TEXT_MUTED)
        if col == self.TRIGGER and row.trigger == "undo":
            return QColor(Palette.WARNING_TEXT)
        return None

    def decoration(self, row: ActivityRun, col: int) -> QIcon | None:
        if col == self.STATUS:
            return dot_icon(LEVEL_COLORS[text.run_level(row.status)])
        if col == self.TRIGGER and row.trigger == "undo":
            return icon("sync")
        return None


class ChangeModel(RowTableModel[ActivityChange]):
    """The field changes of the runs shown: what each field was and became, and the rule that decided."""

    RECORD, FIELD, SIDE, BEFORE, AFTER, RULE = range(6)
    HEADERS = ("Record", "Field", "Changed in", "Before", "After", "Why")

    def __init__(self, parent: QObject | None = None, *, side_names: dict[str, str] | None = None) -> None:
        super().__init__(parent)
        self.side_names = side_names or {}

    def display(self, row: ActivityChange, col: int) -> str:
        if col == self.RECORD:
            return row.record
        if col == self.FIELD:
            return field_label(row.field)
        if col == self.SIDE:
            return self.side_names.get(row.side) or side_label(row.side)
        if col == self.BEFORE:
            return value_text(row.before)
        if col == self.AFTER:
            return value_text(row.after)
        return rule_label(row.rule, self.side_names.get("crm", "the CRM"),
                          self.side_names.get("accounting", "the ledger"))

    def search_text(self, row: ActivityChange) -> str:
        return row.search_text()

    def tooltip(self, row: ActivityChange, col: int) -> str | None:
        if col == self.RECORD:
            return f"{row.record}\nID {row.record_id} in the {side_label(row.side).lower()}"
        if col in (self.BEFORE, self.AFTER):
            return value_text(row.before if col == self.BEFORE else row.after)
        return None

    def foreground(self, row: ActivityChange, col: int) -> QColor | None:
        if col in (self.BEFORE, self.SIDE, self.RULE):
            return QColor(Palette.TEXT_MUTED)
        return None


@dataclass(frozen=True)
class Filters:
    search: list[str]
    record: str | None
    field: str | None
    trigger: str | None
    since: dt.date | None
    until: dt.date | None

    def run_ok(self, run: ActivityRun) -> bool:
        day = text.local(run.started_at).date()
        return ((self.trigger is None or run.trigger == self.trigger)
                and (self.since is None or day >= self.since) and (self.until is None or day <= self.until))

    def change_ok(self, change: ActivityChange) -> bool:
        if self.record is not None and change.record_key != self.record:
            return False
        if self.field is not None and change.field != self.field:
            return False
        haystack = change.search_text()
        return all(word in haystack for word in self.search)

    @property
    def narrows_changes(self) -> bool:
        return bool(self.search or self.record or self.field)


class RunFilter(QSortFilterProxyModel):
    """Runs of the kind and dates chosen; with a record, field or words chosen, only runs that changed them."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SortRole)
        self.filters: Filters | None = None
        self.matching_runs: set[int] = set()
        self.search_runs: set[int] = set()

    def set_filters(self, filters: Filters, matching_runs: set[int], search_runs: set[int]) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.10+
            self.beginFilterChange()
            self.filters, self.matching_runs, self.search_runs = filters, matching_runs, search_runs
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.filters, self.matching_runs, self.search_runs = filters, matching_runs, search_runs
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        if self.filters is None or not isinstance(model, RunModel):
            return True
        run = model.row(source_row)
        if not self.filters.run_ok(run):
            return False
        if self.filters.narrows_changes:
            return run.id in self.matching_runs or run.id in self.search_runs
        return True


# -- the page --------------------------------------------------------------------------------------------
RUN_ROW = 30  # a run's row: compact, so ten fit above the changes at 1280×800


class ActivityPage(QWidget):
    """Filters, the runs, the selected run's field changes, Export to Excel and Undo this run."""

    undone = Signal()  # an undo changed the store: the window re-reads the workspace
    show_me = Signal()  # "Show in Activity" from a record's history: the window switches to this tab

    def __init__(self, store: Store, *, undo: UndoActions | None = None, pool: QThreadPool | None = None,
                 save_dialog: SaveDialog = ask_save_path, open_url: OpenUrl = QDesktopServices.openUrl,
                 today: Callable[[], dt.date] = dt.date.today, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._undo = undo
        self.clock: Clock = time.monotonic  # the undo dialog's time left; tests put a fake clock here
        self._pool = pool or QThreadPool(self)
        self._save_dialog = save_dialog
        self._open_url = open_url
        self._today = today
        self.workspace: str | None = None
        self.activity: Activity | None = None
        self.undoable: set[int] | None = None
        self.job: BackgroundJob[Any] | None = None
        self.undo_dialog: UndoDialog | None = None
        self.history_dialog: RecordHistoryDialog | None = None
        self._last_export: Path | None = None
        self._dates_chosen = False
        self._reload_pending = False
        self._pending_record: str | None = None
        self._stale = False
        self._side_names: dict[str, str] = {}

        # Filters: words, record, field, kind, dates
        self.search = QLineEdit()
        self.search.setObjectName("Search")
        self.search.setPlaceholderText("Search records, fields and values")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.search.setMinimumWidth(260)
        self.record_filter = QComboBox()
        self.record_filter.setMinimumWidth(190)
        self.record_filter.setMaximumWidth(280)
        self.field_filter = QComboBox()
        self.field_filter.setMinimumWidth(130)
        self.trigger_filter = QComboBox()
        self.trigger_filter.setMinimumWidth(140)
        self.since = QDateEdit()
        self.until = QDateEdit()
        for box in (self.since, self.until):
            box.setCalendarPopup(True)
            box.setDisplayFormat("d MMM yyyy")
            box.setMinimumWidth(124)
        self.since.setToolTip("Show runs that started on or after this day")
        self.until.setToolTip("Show runs that started on or before this day")
        self._fill_filters(None)
        self.export_button = QPushButton("Export to Excel…")
        self.export_button.setToolTip("Save the runs and field changes shown here as an Excel workbook")
        self.export_button.clicked.connect(self.export)

        row1 = QHBoxLayout()
        row1.setSpacing(8)
        row1.addWidget(self.search, 2)
        for words, box in (("Record", self.record_filter), ("Field", self.field_filter)):
            label = QLabel(words)
            label.setObjectName("Muted")
            row1.addWidget(label)
            row1.addWidget(box, 1)
        row1.addStretch(0)
        row1.addWidget(self.export_button)
        row2 = QHBoxLayout()
        row2.setSpacing(8)
        for words, box in (("Kind", self.trigger_filter), ("From", self.since), ("to", self.until)):
            label = QLabel(words)
            label.setObjectName("Muted")
            row2.addWidget(label)
            row2.addWidget(box)
        self.clear_button = QPushButton("Clear filters")
        self.clear_button.clicked.connect(self.clear_filters)
        row2.addWidget(self.clear_button)
        row2.addStretch(1)
        self.shown = QLabel()
        self.shown.setObjectName("Muted")
        row2.addWidget(self.shown)

        # Progress while reading, exporting
        self.progress_row = QWidget()
        self.stage = QLabel()
        self.stage.setObjectName("Muted")
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setRange(0, 0)
        pl = QHBoxLayout(self.progress_row)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.setSpacing(12)
        pl.addWidget(self.stage)
        pl.addWidget(self.progress, 1)
        self.progress_row.hide()
        self.banner = MessageBanner()
        self.banner.action_clicked.connect(self._banner_action)

        # The runs
        self.run_model = RunModel(self)
        self.run_proxy = RunFilter(self)
        self.run_proxy.setSourceModel(self.run_model)
        self.runs_table = make_table(self.run_proxy, (60, 112, 118, 84, 120, Fill(220), 160), row_height=RUN_ROW)
        self.runs_table.setSelectionMode(self.runs_table.SelectionMode.SingleSelection)
        self.runs_table.sortByColumn(RunModel.STARTED, Qt.SortOrder.DescendingOrder)
        self.runs_table.selectionModel().selectionChanged.connect(lambda *_: self._run_selected())
        self.runs_body = TableOrNote(self.runs_table)
        self.undo_hint = QLabel()
        self.undo_hint.setObjectName("Muted")
        self.undo_button = QPushButton("Undo this run…")
        self.undo_button.setToolTip("See what undoing the selected run would put back, then confirm")
        self.undo_button.clicked.connect(self.start_undo)
        # no "Runs" title: the filters above say "n runs", and the table's rows get the room
        row2.addWidget(self.undo_hint)
        row2.addWidget(self.undo_button)
        runs_box = QWidget()
        rl = QVBoxLayout(runs_box)
        rl.setContentsMargins(0, 0, 0, 6)
        rl.setSpacing(6)
        rl.addWidget(self.runs_body, 1)

        # The selected run's changes
        self.change_model = ChangeModel(self)
        self.changes_table = make_table(self.change_model, (Fill(150), 110, 150, Fill(130), Fill(130), Fill(150)),
                                        row_height=34)
        self.changes_table.setWordWrap(True)
        self.changes_table.setItemDelegate(PaddedTextDelegate(self.changes_table))
        self.changes_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.changes_body = TableOrNote(self.changes_table)
        self.changes_table.setMinimumHeight(40)  # the runs come first; drag the divider up to read more here
        self.changes_body.note.setMinimumHeight(0)
        self.changes_body.note.setContentsMargins(12, 4, 12, 4)
        self.changes_title = QLabel("Field changes")
        self.changes_title.setObjectName("SectionTitle")
        changes_box = QWidget()
        cl = QVBoxLayout(changes_box)
        cl.setContentsMargins(0, 2, 0, 0)
        cl.setSpacing(6)
        cl.addWidget(self.changes_title)
        cl.addWidget(self.changes_body, 1)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(runs_box)
        self.splitter.addWidget(changes_box)
        # at least ten runs in view at 1280×800; the selected run's changes get the rest (drag to share)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self._runs_room = self.runs_table.horizontalHeader().sizeHint().height() + 10 * RUN_ROW + 8
        self.splitter.setSizes([self._runs_room, 120])
        self.splitter.installEventFilter(self)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 10, 16, 8)
        layout.setSpacing(8)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(self.progress_row)
        layout.addWidget(self.banner)
        layout.addWidget(self.splitter, 1)

        self.search.textChanged.connect(lambda _t: self._apply_filters())
        for combo in (self.record_filter, self.field_filter, self.trigger_filter):
            combo.currentIndexChanged.connect(lambda _i: self._apply_filters())
        for box in (self.since, self.until):
            box.dateChanged.connect(self._dates_changed)
        self.runs_body.show_note("No runs yet.")
        self.changes_body.show_note("Select a run to see the fields it changed.")
        self._update_buttons()

    # -- loading ------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None

    def set_workspace(self, name: str | None, side_names: dict[str, str] | None = None) -> None:
        """Show ``name``'s activity; the same workspace again (after a sync) reads it again."""
        if side_names is not None:
            self._side_names = side_names
            self.change_model.side_names = side_names
        if name != self.workspace:
            self.workspace = name
            self.activity = None
            self.banner.show_notice(None)
            self._dates_chosen = False
            self.search.clear()
            self._show_activity(None)
        self._stale = True
        if self.isVisible():
            self.reload()

    def showEvent(self, event: QShowEvent) -> None:
        """Read when the tab is first looked at after a change, not on every refresh of the window."""
        super().showEvent(event)
        if self._stale:
            self.reload()

    def reload(self) -> bool:
        """Read the runs and changes off the UI thread (a workspace may have years of them)."""
        if self.workspace is None:
            return False
        if self.running:
            self._reload_pending = True  # read again when the current job is over
            return False
        self._reload_pending = False
        self._stale = False
        name, store, undo = self.workspace, self._store, self._undo

        def work(_progress: ProgressFn) -> tuple[Activity, set[int] | None]:
            return load_activity(store, name), (undo.undoable(name) if undo is not None else None)

        self._begin(BackgroundJob(work, on_success=lambda r: self._loaded(name, r),
                                  on_failure=lambda exc: self._load_failed(name, exc), parent=self),
                    "Reading the activity…")
        return True

    def _begin(self, job: BackgroundJob[Any], words: str) -> None:
        self.job = job
        self.stage.setText(words)
        self.progress_row.show()
        self._update_buttons()
        job.start(self._pool)

    def _end_job(self) -> None:
        if self.job is not None:
            self.job.deleteLater()
        self.job = None
        self.progress_row.hide()
        self._update_buttons()
        if self._reload_pending:
            self.reload()

    def _loaded(self, name: str, result: tuple[Activity, set[int] | None]) -> None:
        if name != self.workspace:
            self._reload_pending = True  # another workspace was chosen meanwhile
            self._end_job()
            return
        activity, undoable = result
        self.undoable = undoable
        self._show_activity(activity)
        self._end_job()

    def _load_failed(self, name: str, exc: Exception) -> None:
        self._end_job()
        log.error("Reading the activity failed", exc_info=exc)
        if name == self.workspace:
            self.banner.show_notice(Notice("error", "The activity could not be read",
                                           "Crossledger's database did not answer. Close other copies of "
                                           "Crossledger, then choose the workspace again."))

    def _show_activity(self, activity: Activity | None) -> None:
        keep = self.selected_run()
        self.activity = activity
        if activity is not None:
            self._side_names = {"crm": activity.crm_label, "accounting": activity.ledger_label}
            self.change_model.side_names = self._side_names
        self.run_model.set_rows(activity.runs if activity else [])
        self._fill_filters(activity)
        if activity is not None and self._pending_record is not None:
            self.record_filter.blockSignals(True)
            self.record_filter.setCurrentIndex(max(0, self.record_filter.findData(self._pending_record)))
            self.record_filter.blockSignals(False)
            self._pending_record = None
        self._apply_filters(keep_run=keep.id if keep else None)

    def _fill_filters(self, activity: Activity | None) -> None:
        """The choices are what the runs hold; a choice still held is kept."""
        changes = activity.changes if activity else []
        records = sorted({(c.record_key, c.record) for c in changes}, key=lambda r: (r[1].casefold(), r[0]))
        fields = sorted({c.field for c in changes}, key=lambda f: field_label(f).casefold())
        triggers = sorted({r.trigger for r in activity.runs} if activity else set(), key=trigger_label)
        for combo, every, items in (
                (self.record_filter, "Every record", [(key, name) for key, name in records]),
                (self.field_filter, "Every field", [(f, field_label(f)) for f in fields]),
                (self.trigger_filter, "Every kind of run", [(t, trigger_label(t)) for t in triggers])):
            keep = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(every, None)
            for data, words in items:
                combo.addItem(words, data)
            index = combo.findData(keep) if keep is not None else 0
            combo.setCurrentIndex(max(index, 0))
            combo.blockSignals(False)
        if activity and not self._dates_chosen:
            first = min((text.local(r.started_at).date() for r in activity.runs), default=self._today())
            last = max(self._today(), max((text.local(r.started_at).date() for r in activity.runs), default=first))
            for box, day in ((self.since, first), (self.until, last)):
                box.blockSignals(True)
                box.setDate(QDate(day.year, day.month, day.day))
                box.blockSignals(False)

    def _dates_changed(self, _date: QDate) -> None:
        self._dates_chosen = True
        self._apply_filters()

    # -- filtering ----------------------------------------------------------------------------------
    def filters(self) -> Filters:
        since, until = self.since.date().toPython(), self.until.date().toPython()
        return Filters(self.search.text().casefold().split(), self.record_filter.currentData(),
                       self.field_filter.currentData(), self.trigger_filter.currentData(),
                       since if self.activity and self._dates_chosen else None,
                       until if self.activity and self._dates_chosen else None)

    def _apply_filters(self, keep_run: int | None = None) -> None:
        if keep_run is None:
            current = self.selected_run()
            keep_run = current.id if current else None
        f = self.filters()
        changes = self.activity.changes if self.activity else []
        matching = {c.run_id for c in changes if f.change_ok(c)}
        search_runs = ({self.run_model.row(n).id for n in range(self.run_model.rowCount())
                        if all(w in self.run_model.search_text(self.run_model.row(n)) for w in f.search)}
                       if f.search and not (f.record or f.field) else set())
        self.run_proxy.set_filters(f, matching, search_runs)
        total, shown = self.run_model.rowCount(), self.run_proxy.rowCount()
        if self.activity is None:
            self.shown.setText("")
            self.runs_body.show_note("Reading the activity…" if self.workspace else "Choose a workspace.")
        elif total == 0:
            self.shown.setText("")
            self.runs_body.show_note("No runs yet. Each sync is listed here with every field it changed.")
        elif shown == 0:
            self.shown.setText(f"Showing 0 of {text.plural(total, 'run')}")
            self.runs_body.show_note("No run matches these filters. Choose “Clear filters” to see every run.")
        else:
            self.shown.setText(text.plural(total, "run") if shown == total
                               else f"Showing {shown:,} of {text.plural(total, 'run')}")
            self.runs_body.show_table()
        rows = [self.run_proxy.mapToSource(self.run_proxy.index(r, 0)).row() for r in range(shown)]
        again = next((r for r, src in enumerate(rows) if self.run_model.row(src).id == keep_run), None)
        if again is None and shown:
            again = 0
        if again is not None:
            self.runs_table.selectRow(again)
        else:
            self.runs_table.clearSelection()
        self._run_selected()

    def visible_runs(self) -> list[ActivityRun]:
        return [self.run_proxy.data(self.run_proxy.index(r, 0), RowRole) for r in range(self.run_proxy.rowCount())]

    def visible_changes(self) -> list[ActivityChange]:
        return [self.change_model.row(r) for r in range(self.change_model.rowCount())]

    def exported_changes(self) -> list[ActivityChange]:
        """Every change of the runs shown that passes the filters (not only the selected run's)."""
        if self.activity is None:
            return []
        f, runs = self.filters(), {r.id for r in self.visible_runs()}
        return [c for c in self.activity.changes if c.run_id in runs and f.change_ok(c)]

    def select_run(self, run_id: int) -> bool:
        for r in range(self.run_proxy.rowCount()):
            if self.run_proxy.data(self.run_proxy.index(r, 0), RowRole).id == run_id:
                self.runs_table.selectRow(r)
                return True
        return False

    def set_record(self, record_key: str | None) -> bool:
        if self.activity is None or self.running:
            self._pending_record = record_key  # chosen once the activity has been read
        index = self.record_filter.findData(record_key) if record_key else 0
        if index < 0:
            return False
        self.record_filter.setCurrentIndex(index)
        return True

    def set_field(self, field: str | None) -> bool:
        index = self.field_filter.findData(field) if field else 0
        if index >= 0:
            self.field_filter.setCurrentIndex(index)
        return index >= 0

    def set_trigger(self, trigger: str | None) -> bool:
        index = self.trigger_filter.findData(trigger) if trigger else 0
        if index >= 0:
            self.trigger_filter.setCurrentIndex(index)
        return index >= 0

    def set_dates(self, since: dt.date, until: dt.date) -> None:
        self.since.setDate(QDate(since.year, since.month, since.day))
        self.until.setDate(QDate(until.year, until.month, until.day))

    def clear_filters(self) -> None:
        for combo in (self.record_filter, self.field_filter, self.trigger_filter):
            combo.blockSignals(True)
            combo.setCurrentIndex(0)
            combo.blockSignals(False)
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self._dates_chosen = False
        self._fill_filters(self.activity)
        self._apply_filters()

    # -- the selected run ---------------------------------------------------------------------------
    def selected_run(self) -> ActivityRun | None:
        rows = self.runs_table.selectionModel().selectedRows()
        return self.run_proxy.data(rows[0], RowRole) if rows else None

    def _run_selected(self) -> None:
        run = self.selected_run()
        if run is None or self.activity is None:
            self.change_model.set_rows([])
            self.changes_title.setText("Field changes")
            self.changes_body.show_note("Select a run to see the fields it changed.")
            self._update_buttons()
            return
        f = self.filters()
        all_changes = self.activity.changes_of(run.id)
        shown = [c for c in all_changes if f.change_ok(c)]
        self.change_model.set_rows(shown)
        if len(shown) <= FIT_ROWS_MAX:
            self.changes_table.resizeRowsToContents()
        head = f"Field changes of run #{run.id}  ·  {trigger_label(run.trigger)}, {when_text(run.started_at)}"
        if len(shown) != len(all_changes):
            head += f"  ·  showing {len(shown):,} of {len(all_changes):,}"
        self.changes_title.setText(head)
        if shown:
            self.changes_body.show_table()
        elif all_changes:
            self.changes_body.show_note("None of this run's changes match the filters.")
        elif run.status == "failed":
            self.changes_body.show_note("This run stopped before it changed any field.")
        else:
            self.changes_body.show_note("This run changed no field on either side"
                                        + (" (a dry run only shows what would change)." if run.dry_run else "."))
        self._update_buttons()

    def _undo_state(self, run: ActivityRun | None) -> tuple[bool, str]:
        """Whether the selected run can be undone, and why not in a few words."""
        if run is None:
            return False, ""
        if self._undo is None or self.undoable is None:
            return False, "Undo is not available in this version."
        if run.trigger == "undo":
            return False, "This run was an undo; it cannot be undone again."
        if run.dry_run:
            return False, "A dry run changed nothing."
        if run.status == "running":
            return False, "This run is still going."
        if run.id not in self.undoable:
            return False, "Nothing of this run is left to undo."
        return True, ""

    def _update_buttons(self) -> None:
        busy = self.running
        can, why = self._undo_state(self.selected_run())
        self.undo_button.setEnabled(can and not busy)
        self.undo_hint.setText(why)
        self.export_button.setEnabled(self.activity is not None and bool(self.activity.runs) and not busy)

    # -- export -------------------------------------------------------------------------------------
    def suggested_file(self) -> str:
        folder = self._last_export.parent if self._last_export else Path.home()
        return str(folder / f"{self.workspace}-activity-{self._today():%Y-%m-%d}.xlsx")

    def export(self) -> bool:
        if self.activity is None or self.running:
            return False
        path = ask_xlsx_path(self, self._save_dialog, self.suggested_file())
        if path is None:
            return False
        activity, runs, changes = self.activity, self.visible_runs(), self.exported_changes()
        self._begin(BackgroundJob(lambda _p: write_workbook(activity, path, runs=runs, changes=changes),
                                  on_success=lambda p: self._exported(p, len(runs), len(changes)),
                                  on_failure=lambda exc: self._export_failed(path, exc), parent=self),
                    f"Writing {path.name}…")
        return True

    def _exported(self, path: Path, runs: int, changes: int) -> None:
        self._end_job()
        self._last_export = path
        self.banner.show_notice(Notice("success", "Workbook saved",
                                       f"{path}: {text.plural(runs, 'run')} on the Runs sheet and "
                                       f"{text.plural(changes, 'field change')} on the Changes sheet.",
                                       action="Open the workbook"))

    def _export_failed(self, path: Path, exc: Exception) -> None:
        self._end_job()
        why = ("The folder is not writable, or the file is open in another program." if isinstance(exc, OSError)
               else "The workbook could not be written.")
        self.banner.show_notice(Notice("error", "The workbook was not saved",
                                       f"{why} Close it there, or choose another folder, then export again. "
                                       f"({path})"))

    def _banner_action(self, action: str) -> None:
        if action == "Open the workbook" and self._last_export is not None:
            self._open_url(QUrl.fromLocalFile(str(self._last_export)))

    # -- undo ---------------------------------------------------------------------------------------
    def start_undo(self) -> UndoDialog | None:
        run = self.selected_run()
        can, _why = self._undo_state(run)
        if not can or run is None or self.workspace is None or self._undo is None or self.running:
            return None
        self.banner.show_notice(None)
        if self.undo_dialog is not None and not self.undo_dialog.running:
            self.undo_dialog.deleteLater()  # the last preview, closed
        dialog = UndoDialog(self._undo, self.workspace, run, self._pool, parent=self, side_names=self._side_names,
                            clock=self.clock)
        dialog.finished_undo.connect(self._undo_finished)
        self.undo_dialog = dialog
        dialog.open()
        dialog.start_plan()
        return dialog

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The splitter resized (window resized, a banner shown): ten runs stay in view when there is room."""
        if watched is self.splitter and event.type() == QEvent.Type.Resize:
            QTimer.singleShot(0, self._fit_runs)  # once the splitter has shared out its new height
        return super().eventFilter(watched, event)

    def _fit_runs(self) -> None:
        sizes = self.splitter.sizes()
        total = sum(sizes)
        if sizes and sizes[0] < self._runs_room and total >= self._runs_room + 80:
            self.splitter.setSizes([self._runs_room, total - self._runs_room])

    def _undo_finished(self, notice: Notice, changed: bool) -> None:
        self.banner.show_notice(notice)
        if changed:
            self.reload()
            self.undone.emit()

    # -- a record's history -------------------------------------------------------------------------
    def show_history(self, row: LinkRow) -> RecordHistoryDialog | None:
        if self.workspace is None:
            return None
        chains = record_history(self._store, self.workspace, row.crm_id, row.acct_id)
        if self.history_dialog is not None:
            self.history_dialog.deleteLater()
        dialog = RecordHistoryDialog(row, chains, self._side_names, parent=self)
        dialog.show_in_activity.connect(lambda: self._show_record(row.crm_id))
        self.history_dialog = dialog
        dialog.open()
        return dialog

    def _show_record(self, crm_id: str) -> None:
        if self.history_dialog is not None:
            self.history_dialog.accept()
        self.clear_filters()
        self.set_record(crm_id)
        self.show_me.emit()

    def shutdown(self, timeout_ms: int = 15000) -> bool:
        if self.undo_dialog is not None:
            self.undo_dialog.cancel_event.set()
        return self._pool.waitForDone(timeout_ms)


# -- the undo preview --------------------------------------------------------------------------------------
class StepModel(RowTableModel[Any]):
    """What the undo will do: one row per step, the current value and what it goes back to."""

    RECORD, WHAT, NOW, BACK = range(4)
    HEADERS = ("Record", "What will change", "Now", "Goes back to")

    def __init__(self, parent: QObject | None = None, side_names: dict[str, str] | None = None) -> None:
        super().__init__(parent)
        self.side_names = side_names or {}

    def display(self, row: Any, col: int) -> str:
        if col == self.RECORD:
            return row.label
        if col == self.WHAT:
            return step_words(row, self.side_names)
        if row.kind != "restore_field":
            return ""
        return value_text(row.current if col == self.NOW else row.restore_to)

    def tooltip(self, row: Any, col: int) -> str | None:
        return row.description

    def foreground(self, row: Any, col: int) -> QColor | None:
        return QColor(Palette.TEXT_MUTED) if col == self.NOW else None


class RefusalModel(RowTableModel[Any]):
    RECORD, WHY = range(2)
    HEADERS = ("Left as it is", "Why")

    def display(self, row: Any, col: int) -> str:
        if col == self.RECORD:
            return f"{row.label}: {field_label(row.field)}" if row.field else row.label
        return row.reason


def step_words(step: Any, side_names: dict[str, str]) -> str:
    where = side_names.get(step.side) or side_label(step.side)
    if step.kind == "restore_field":
        return f"Put {field_label(step.field or '')} back in {where}"
    if step.kind == "deactivate_customer":
        return f"Make the customer inactive in {where} (it is not deleted)"
    if step.kind == "void_invoice":
        return f"Void the draft invoice in {where}"
    if step.kind == "unlink":
        return "Unlink it from its ledger customer in Crossledger"
    return step.description


FIT_ROWS = 8


def fit_height(table: QTableView, body: TableOrNote, most: int = FIT_ROWS) -> None:
    """A short list as tall as its rows, so the dialog has no empty box; a long one scrolls."""
    rows = table.model().rowCount()
    if rows == 0 or rows > most:
        body.setMaximumHeight(16777215)
        body.setMinimumHeight(0 if rows == 0 else 160)
        return
    height = table.horizontalHeader().sizeHint().height() + sum(table.rowHeight(r) for r in range(rows)) + 4
    body.setMaximumHeight(height)
    body.setMinimumHeight(height)


class UndoDialog(QDialog):
    """Preview (planned in the background), then a clear confirm, then the undo with progress and Cancel."""

    finished_undo = Signal(object, bool)  # the Notice for the banner, whether anything changed

    def __init__(self, undo: UndoActions, workspace: str, run: ActivityRun, pool: QThreadPool,
                 parent: QWidget | None = None, side_names: dict[str, str] | None = None,
                 clock: Clock = time.monotonic) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Undo run #{run.id}")
        self.eta = Eta(clock)  # "12 of 489 · about 2 min left", redrawn every second while it works
        self.ticker = QTimer(self)
        self.ticker.setInterval(1000)
        self.ticker.timeout.connect(self.tick)
        self.setModal(True)
        self.resize(900, 600)
        self._undo = undo
        self._pool = pool
        self.workspace = workspace
        self.run = run
        self.plan: Any = None
        self.result: Any = None
        self.job: BackgroundJob[Any] | None = None
        self.cancel_event = threading.Event()

        self.title = QLabel(f"Undo run #{run.id}: {trigger_label(run.trigger)}, {when_text(run.started_at)}")
        self.title.setObjectName("SectionTitle")
        self.summary = QLabel("Crossledger is reading both sides to see what can be put back. Nothing is changed "
                              "yet.")
        self.summary.setWordWrap(True)

        self.stage = QLabel("Reading the current values…")
        self.stage.setObjectName("Muted")
        self.count = QLabel()  # n of N and the time left
        self.count.setObjectName("Muted")
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setRange(0, 0)
        self.progress_row = QWidget()
        pl = QVBoxLayout(self.progress_row)
        pl.setContentsMargins(0, 0, 0, 0)
        words = QHBoxLayout()
        words.addWidget(self.stage, 1)
        words.addWidget(self.count)
        pl.addLayout(words)
        pl.addWidget(self.progress)

        self.step_model = StepModel(self, side_names)
        self.steps_table = make_table(self.step_model, (Fill(150), Fill(200), Fill(130), Fill(130)),
                                      sortable=False, row_height=34)
        self.steps_table.setWordWrap(True)
        self.steps_table.setItemDelegate(PaddedTextDelegate(self.steps_table))
        self.steps_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.steps_title = QLabel("What will be put back")
        self.steps_title.setObjectName("SectionLabel")
        self.steps_body = TableOrNote(self.steps_table)
        self.refusal_model = RefusalModel(self)
        self.refusals_table = make_table(self.refusal_model, (240, Fill(300)), sortable=False,
                                         row_height=34)
        self.refusals_table.setWordWrap(True)
        self.refusals_table.setItemDelegate(PaddedTextDelegate(self.refusals_table))
        self.refusals_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.refusals_title = QLabel("Left alone, and why")
        self.refusals_title.setObjectName("SectionLabel")
        self.refusals_body = TableOrNote(self.refusals_table)
        preview = QWidget()
        pv = QVBoxLayout(preview)
        self.preview_layout = pv
        pv.setContentsMargins(0, 0, 0, 0)
        pv.setSpacing(6)
        pv.addWidget(self.steps_title)
        pv.addWidget(self.steps_body, 3)
        pv.addSpacing(6)
        pv.addWidget(self.refusals_title)
        pv.addWidget(self.refusals_body, 2)
        pv.addStretch(1)
        self.body = QStackedWidget()
        self.waiting = QLabel()
        self.body.addWidget(self.waiting)
        self.body.addWidget(preview)

        self.note = QLabel("The undo is recorded as a run of its own. Customers are made inactive, never deleted.")
        self.note.setObjectName("Muted")
        self.note.setWordWrap(True)
        self.cancel_button = QPushButton(icon("cancel"), "Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.confirm_button = QPushButton("Undo changes")
        self.confirm_button.setObjectName("PrimaryButton")
        self.confirm_button.setMinimumWidth(170)
        self.confirm_button.setEnabled(False)
        self.confirm_button.clicked.connect(self.start_apply)
        buttons = QHBoxLayout()
        buttons.setSpacing(10)
        buttons.addWidget(self.note, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.confirm_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 18, 22, 16)
        layout.setSpacing(10)
        layout.addWidget(self.title)
        layout.addWidget(self.summary)
        layout.addSpacing(4)
        layout.addWidget(self.progress_row)
        layout.addWidget(self.body, 1)
        layout.addSpacing(6)
        layout.addLayout(buttons)

    @property
    def running(self) -> bool:
        return self.job is not None

    def _start(self, job: BackgroundJob[Any]) -> None:
        self.job = job
        self.progress_row.show()
        job.start(self._pool)

    def _end_job(self) -> None:
        if self.job is not None:
            self.job.deleteLater()
        self.job = None
        self.ticker.stop()
        self.progress_row.hide()

    def tick(self) -> None:
        """Once a second while the undo works (and at each change): the count and the time left."""
        self.count.setText(self.eta.text())

    # preview
    def start_plan(self) -> None:
        undo, name, run_id = self._undo, self.workspace, self.run.id
        self.stage.setText("Reading the current values on both sides (nothing is changed)…")
        self.progress.setRange(0, 0)
        self._start(BackgroundJob(lambda _p: undo.plan(name, run_id), on_success=self._planned,
                                  on_failure=self._plan_failed, parent=self))

    def _planned(self, plan: Any) -> None:
        self._end_job()
        self.plan = plan
        n = len(plan.steps)
        said = plan.run_summary.rstrip(".")
        said = f"This run made {said.split(': ', 1)[1]}" if ": " in said else said  # the title has the date
        self.summary.setText(f"{said}.\nNothing has been changed yet. Check the lists below, then "
                             f"choose “Undo {text.plural(n, 'change')}” to put these values back." if n else
                             f"{said}.\nNothing of this run can be put back safely; the reasons are "
                             "below. Nothing was changed.")
        self.step_model.set_rows(plan.steps)
        self.refusal_model.set_rows(plan.refusals)
        n, m = len(plan.steps), len(plan.refusals)
        self.steps_title.setText(f"What will be put back ({n:,})" if n else "What will be put back")
        self.refusals_title.setText(f"Left alone, and why ({m:,})" if m else "Left alone")
        if n:
            self.steps_body.show_table()
        else:
            self.steps_body.show_note("Nothing of this run can be put back safely.")
        if m:
            self.refusals_body.show_table()
        else:
            self.refusals_body.show_note("Nothing is left alone: every change of this run can be put back.")
        self.body.setCurrentIndex(1)
        for table, body in ((self.steps_table, self.steps_body), (self.refusals_table, self.refusals_body)):
            table.resizeRowsToContents()
            fit_height(table, body)
        self._shrink_to_fit()
        self.confirm_button.setText(f"Undo {text.plural(n, 'change')}" if n else "Nothing to undo")
        self.confirm_button.setEnabled(n > 0)
        self.cancel_button.setText("Close" if not n else "Cancel")
        if n:
            self.confirm_button.setDefault(True)
            self.confirm_button.setFocus()

    def _shrink_to_fit(self) -> None:
        """Short lists: the dialog as tall as they are, with no empty box under them."""
        if any(t.model().rowCount() > FIT_ROWS for t in (self.steps_table, self.refusals_table)):
            return
        self.layout().invalidate()
        self.layout().activate()
        self.resize(self.width(), max(300, self.minimumSizeHint().height()))

    def _plan_failed(self, exc: Exception) -> None:
        self._end_job()
        self.finished_undo.emit(notice_for_undo_error(exc, self.workspace), False)
        self.reject()

    # apply
    def start_apply(self) -> None:
        if self.plan is None or not self.plan.steps or self.running:
            return
        undo, name, run_id, cancel = self._undo, self.workspace, self.run.id, self.cancel_event
        self.confirm_button.setEnabled(False)
        self.confirm_button.setText("Undoing…")
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop after the current change; what was already put back stays put back")
        n = len(self.plan.steps)
        self.summary.setText(f"Putting {text.plural(n, 'change')} back. Cancel stops after the change in hand: "
                             "what is already put back stays so, and undoing the run again finishes the rest.")
        self.stage.setText("Reading the current values on both sides again…")
        self.progress.setRange(0, 0)  # until the first change is counted
        self.eta.restart()
        self.count.setText("")
        self.ticker.start()
        self._start(BackgroundJob(lambda progress: undo.apply(name, run_id, progress, cancel),
                                  on_success=self._applied, on_failure=self._apply_failed,
                                  on_progress=self._progressed, parent=self))

    def _progressed(self, stage: str, done: int, total: int) -> None:
        if self.cancel_event.is_set():
            return
        self.stage.setText(stage if stage.endswith("…") else text.progress_text(stage) if stage
                           else "Putting the values back…")
        if total > 0:
            self.eta.update(done, total)
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
        self.tick()

    def _applied(self, result: Any) -> None:
        self._end_job()
        self.result = result
        level = {"ok": "success", "partial": "warning", "failed": "error", "cancelled": "info"}.get(
            result.status, "info")
        title = {"ok": f"Run #{self.run.id} undone", "partial": f"Run #{self.run.id} partly undone",
                 "failed": f"Run #{self.run.id} was not undone",
                 "cancelled": f"Undo of run #{self.run.id} cancelled"}.get(result.status, "Undo finished")
        self.finished_undo.emit(Notice(level, title, result.message), True)  # the undo is a run of its own
        self.accept()

    def _apply_failed(self, exc: Exception) -> None:
        self._end_job()
        self.finished_undo.emit(notice_for_undo_error(exc, self.workspace), True)
        self.reject()

    def cancel(self) -> None:
        if self.running and self.plan is not None:  # applying: stop after the current step
            self.cancel_event.set()
            self.stage.setText("Stopping after the current change…")
            self.cancel_button.setEnabled(False)
            return
        self.reject()

    def reject(self) -> None:
        if self.running and self.plan is not None:
            self.cancel()  # Esc while applying: stop, and close when it has stopped
            return
        super().reject()


# -- a record's history ------------------------------------------------------------------------------------
class HistoryModel(RowTableModel[tuple[str, ActivityChange, bool]]):
    """(field, change, first of its field): each field's changes, oldest first, its current value last."""

    FIELD, WHEN, WHERE, CHANGE, RULE = range(5)
    HEADERS = ("Field", "When", "Changed in", "Before → after", "Why")

    def __init__(self, parent: QObject | None = None, side_names: dict[str, str] | None = None) -> None:
        super().__init__(parent)
        self.side_names = side_names or {}

    def display(self, row: tuple[str, ActivityChange, bool], col: int) -> str:
        name, c, first = row
        if col == self.FIELD:
            return field_label(name) if first else ""
        if col == self.WHEN:
            return f"{when_text(c.run_started)} · run #{c.run_id}"
        if col == self.WHERE:
            return self.side_names.get(c.side) or side_label(c.side)
        if col == self.CHANGE:
            return f"{value_text(c.before)} → {value_text(c.after)}"
        return rule_label(c.rule, self.side_names.get("crm", "the CRM"),
                          self.side_names.get("accounting", "the ledger"))

    def tooltip(self, row: tuple[str, ActivityChange, bool], col: int) -> str | None:
        _name, c, _first = row
        if col == self.WHEN:
            return f"Run #{c.run_id}: {trigger_label(c.trigger)}, {when_text(c.run_started)}"
        if col == self.CHANGE:
            return f"Before: {value_text(c.before)}\nAfter: {value_text(c.after)}"
        return None

    def foreground(self, row: tuple[str, ActivityChange, bool], col: int) -> QColor | None:
        if col in (self.WHEN, self.WHERE, self.RULE):
            return QColor(Palette.TEXT_MUTED)
        return None


class RecordHistoryDialog(QDialog):
    """How each field of one linked record got the value it has now."""

    show_in_activity = Signal()

    def __init__(self, row: LinkRow, chains: dict[str, list[ActivityChange]], side_names: dict[str, str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"History of {row.name or row.crm_id}")
        self.resize(980, 520)
        self.chains = chains
        title = QLabel(f"How each field of {row.name or row.crm_id} got its current value")
        title.setObjectName("SectionTitle")
        intro = QLabel("Oldest change first; the last line of each field is the value it has now. "
                       "Fields Crossledger never changed are not listed.")
        intro.setObjectName("Muted")
        intro.setWordWrap(True)
        self.model = HistoryModel(self, side_names)
        rows = [(name, c, n == 0) for name, chain in chains.items() for n, c in enumerate(chain)]
        self.model.set_rows(rows)
        self.table = make_table(self.model, (110, Fill(210), 150, Fill(220), Fill(160)), sortable=False,
                                row_height=34)
        self.table.setWordWrap(True)
        self.table.setItemDelegate(PaddedTextDelegate(self.table))
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.body = TableOrNote(self.table)
        if rows:
            self.body.show_table()
        else:
            self.body.show_note("Crossledger has not changed any field of this record yet: every value is as it "
                                "was when the record was linked.")
        show = QPushButton("Show in Activity")
        show.setToolTip("List every run that changed this record on the Activity tab")
        show.clicked.connect(self.show_in_activity)
        close = QPushButton("Close")
        close.setObjectName("PrimaryButton")
        close.clicked.connect(self.accept)
        buttons = QGridLayout()
        buttons.setColumnStretch(0, 1)
        buttons.addWidget(show, 0, 1)
        buttons.addWidget(close, 0, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 18, 22, 16)
        layout.setSpacing(10)
        layout.addWidget(title)
        layout.addWidget(intro)
        layout.addWidget(self.body, 1)
        layout.addLayout(buttons)
