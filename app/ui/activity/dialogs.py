"""The Activity page's dialogs: the undo (preview, confirm, progress) and a record's history."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import QThreadPool, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.connectors.errors import ConnectorError
from app.ops.history_export import (
    ActivityChange,
    ActivityRun,
    trigger_label,
)
from app.ops.status import LinkRow
from app.store.db import Store
from app.ui import text
from app.ui.activity.models import HistoryModel, RefusalModel, StepModel, when_text
from app.ui.eta import Clock, Eta
from app.ui.resources import icon
from app.ui.tables import Fill, PaddedTextDelegate, TableOrNote, make_table
from app.ui.text import Notice, notice_for_error
from app.ui.workers import BackgroundJob, ProgressFn

log = logging.getLogger(__name__)


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
            self.job.dispose()
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
