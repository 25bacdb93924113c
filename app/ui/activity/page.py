"""The Activity page: the runs of a workspace, the field changes each made, their export, and undo."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QThreadPool, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.ops.history_export import (
    Activity,
    ActivityRun,
    load_activity,
    record_history,
    trigger_label,
    write_workbook,
)
from app.ops.status import LinkRow
from app.store.db import Store
from app.ui import text
from app.ui.activity.dialogs import RecordHistoryDialog, UndoActions, UndoDialog
from app.ui.activity.filtering import Filtering
from app.ui.activity.models import ChangeModel, RunFilter, RunModel, when_text
from app.ui.banner import MessageBanner
from app.ui.eta import Clock
from app.ui.resources import icon
from app.ui.tables import Fill, PaddedTextDelegate, TableOrNote, make_table
from app.ui.text import Notice
from app.ui.widgets import OpenUrl, SaveDialog, ask_xlsx_path, save_dialog, suggested_path, workbook_not_saved
from app.ui.workers import BackgroundJob, ProgressFn

log = logging.getLogger(__name__)

# Fitting each row to its text measures every row at once: beyond this many rows (a first sync of
# thousands of records) that would freeze the window for seconds, so rows keep the standard height.
FIT_ROWS_MAX = 500


ask_save_path = save_dialog("Export the activity to Excel")


RUN_ROW = 30  # a run's row: compact, so ten fit above the changes at 1280×800
RUNS_SHOWN, MIN_RUNS_SHOWN = 10, 3  # runs in view above their changes before the table scrolls


class ActivityPage(Filtering, QWidget):
    """Filters, the runs, the selected run's field changes, Export to Excel and Undo this run."""

    undone = Signal()  # an undo changed the store (it announced what): Held back shows its group
    show_me = Signal()  # "Show in Activity" from a record's history: the window switches to this tab

    def __init__(self, store: Store, *, undo: UndoActions | None = None, pool: QThreadPool | None = None,
                 save_dialog: SaveDialog = ask_save_path, open_url: OpenUrl = QDesktopServices.openUrl,
                 today: Callable[[], dt.date] = dt.date.today, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._undo = undo
        self.clock: Clock = time.monotonic  # the undo dialog's time left; tests put a fake clock here
        self._pool = pool or QThreadPool(self)
        self.write_pool: QThreadPool | None = None  # the workspace's writer (the window sets it): the undo runs there
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
        # The runs get the room their rows need, up to ten in view at 1280×800; the selected run's changes get
        # the rest: four runs leave most of the page to their field changes. A drag decides from then on.
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self._user_sized = False
        self.splitter.setSizes([self._runs_room(), 120])
        self.splitter.splitterMoved.connect(self._sized_by_hand)
        self.splitter.installEventFilter(self)
        for signal in (self.run_proxy.modelReset, self.run_proxy.rowsInserted, self.run_proxy.rowsRemoved,
                       self.run_proxy.layoutChanged):
            signal.connect(lambda *_: QTimer.singleShot(0, self._fit_runs))

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
            self.job.dispose()
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

    # -- the selected run ---------------------------------------------------------------------------
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
        return suggested_path(self._last_export, f"{self.workspace}-activity-{self._today():%Y-%m-%d}.xlsx")

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
        self.banner.show_notice(workbook_not_saved(path, exc))

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
        dialog = UndoDialog(self._undo, self.workspace, run, self.write_pool or self._pool, parent=self,
                            side_names=self._side_names, clock=self.clock)
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

    def _runs_room(self) -> int:
        """The height the runs need: their header and rows, three at least and ten at most."""
        shown = max(MIN_RUNS_SHOWN, min(self.run_proxy.rowCount(), RUNS_SHOWN))
        return self.runs_table.horizontalHeader().sizeHint().height() + shown * RUN_ROW + 8

    def _sized_by_hand(self, *_: object) -> None:
        self._user_sized = True

    def _fit_runs(self) -> None:
        sizes = self.splitter.sizes()
        total, room = sum(sizes), self._runs_room()
        if not sizes or total < room + 80:  # no room to share: the splitter's own shares stand
            return
        if self._user_sized:  # a drag is kept, but never below the room ten runs (or fewer) need
            if sizes[0] < room:
                self.splitter.setSizes([room, total - room])
            return
        if sizes[0] != room:
            self.splitter.setSizes([room, total - room])

    def _undo_finished(self, notice: Notice, changed: bool) -> None:
        self.banner.show_notice(notice)
        if changed:  # the undo announced what it changed: the window re-reads this page with the rest
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
