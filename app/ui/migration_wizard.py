"""Migrate existing records…: thin Qt pages over app.wizard.migration_flow.

Reading both sides and applying run on the thread pool (BackgroundJob); the pages show the plan
the flow holds and hand the bookkeeper's choices back to it. Apply writes exactly the plan shown.
Cancel and Pause stop after the batch being written; the next opening offers to continue.
The plan's model and the shared page are in app/ui/migration_plan.py, the apply pages in
app/ui/migration_apply.py, the menu entry in app/ui/migration_actions.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from PySide6.QtCore import QModelIndex, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableView,
    QVBoxLayout,
    QWidget,
    QWizard,
)

from app.connectors.tokens import TokenStore
from app.domain.models import PARTY_FIELDS
from app.ops.migration import ACTIONS, FIELD_WORDS
from app.ops.workspaces import UserError
from app.store.db import Store
from app.ui import text
from app.ui.connect_wizard import start_job
from app.ui.eta import Clock
from app.ui.migration_apply import ApplyPage, DonePage, StartPage
from app.ui.migration_plan import (
    LIST_WORDS,
    PAGE_IDS,
    CountsBar,
    PlanFilter,
    PlanModel,
    _esc,
    _failure_words,
    _label,
    _Page,
    migration_style,
)
from app.ui.theme import Palette
from app.ui.wizard_kit import add_step_indicator, follow_palette, style_main_action
from app.ui.workers import BackgroundJob
from app.wizard.migration_flow import (
    APART,
    CHOICE_LABEL,
    LATER,
    LINK,
    Connectors,
    MigrationFlow,
    PlanRow,
    ReadResult,
    action_label,
)

__all__ = ["PAGE_IDS", "ApplyPage", "MigrationWizard", "PlanModel"]


class ResumePage(_Page):
    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "resume", "Continue the migration",
                         "A migration of this workspace was started and stopped before the end.")
        self.body = _label()
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.done_text = _label(name="Help")
        layout = QVBoxLayout(self)
        layout.addWidget(self.body)
        layout.addWidget(self.bar)
        layout.addWidget(self.done_text)
        layout.addStretch(1)
        layout.addWidget(self.errors)

    def initializePage(self) -> None:
        u = self.mf.unfinished
        if u is None:
            return
        total = u.done + u.left
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(u.done)
        self.done_text.setText(f"{u.done:,} of {total:,} records done")
        when = text.format_when(u.started) if u.started else "earlier"
        self.body.setText(
            f"The plan made {when} is {u.done:,} of {total:,} records done. Continue to finish exactly that plan: "
            f"what is done already is not done again, and no customer is created twice. "
            f"{text.plural(u.left, 'record')} {'is' if u.left == 1 else 'are'} left.")


class ReadPage(_Page):
    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "read", "Read both sides",
                         "Crossledger reads every customer on both sides and works out a plan. Nothing is "
                         "written yet: you check the plan first.")
        self.job: BackgroundJob | None = None
        self.cancel_event: threading.Event | None = None
        self.stage = _label(name="Stage")
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Stop reading")
        self.cancel_button.clicked.connect(self.cancel)
        self.retry_button = QPushButton("Read again")
        self.retry_button.clicked.connect(self.start)
        self.retry_button.hide()
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.retry_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.stage)
        layout.addWidget(self.bar)
        layout.addLayout(buttons)
        layout.addStretch(1)
        layout.addWidget(self.errors)

    def initializePage(self) -> None:
        if self.mf.result is None:
            self.start()

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def isComplete(self) -> bool:
        return self.mf.result is not None and not self.running

    def start(self) -> None:
        if self.running:
            return
        self.show_problems({})
        self.retry_button.hide()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.stage.setText(f"Connecting to {self.w.crm_label} and {self.w.ledger_label}…")
        self.bar.setRange(0, 0)
        cancel = self.cancel_event = threading.Event()
        mf = self.mf

        def work(progress: Any) -> ReadResult:
            return mf.read(progress, cancel)

        self.job = BackgroundJob(work, on_success=self._done, on_failure=self._failed, on_progress=self._progress)
        start_job(self.job, self.w.pool)
        self.completeChanged.emit()

    def cancel(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()
        self.cancel_button.setEnabled(False)

    def _progress(self, stage: str, done: int, total: int) -> None:
        if self.w.closed:
            return
        self.stage.setText(text.progress_text(stage))
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(done)

    def _done(self, read: ReadResult) -> None:
        if self.w.closed:
            return
        self.cancel_button.hide()
        if read.result.status == "cancelled":
            self.stage.setText("Reading stopped. Nothing was written; read again when you are ready.")
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.retry_button.show()
            self.completeChanged.emit()
            return
        self.mf.record_read(read)
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.stage.setText("Both sides are read and the plan is ready.")
        self.completeChanged.emit()
        if self.w.currentPage() is self:
            QTimer.singleShot(0, self.w.next)

    def _failed(self, exc: Exception) -> None:
        if self.w.closed:
            return
        self.cancel_button.hide()
        self.retry_button.show()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.stage.setText("The records could not be read.")
        self.show_problems({"read": _failure_words(exc, self.w.workspace)})
        self.completeChanged.emit()


class PlanPage(_Page):
    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "plan", "The plan",
                         "What Apply will do, record by record. Untick a row to leave it out. Nothing is written "
                         "until you press Apply.")
        self.counts = CountsBar()
        self.model = PlanModel(parent=self)
        self.model.changed.connect(self._counts)
        self.proxy = PlanFilter(self)
        self.proxy.setSourceModel(self.model)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search names, emails, reasons…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filter)
        self.kind = QComboBox()
        self.kind.currentIndexChanged.connect(self._filter)
        self.shown = _label(name="Help", wrap=False)
        self.view = QTableView()
        self.view.setAccessibleName("The plan, a row a record")
        self.view.setTabKeyNavigation(False)  # Tab goes on to the buttons; arrows and Space work in the table
        self.view.setModel(self.proxy)
        self.view.setAlternatingRowColors(True)
        self.view.setShowGrid(False)
        self.view.setWordWrap(False)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(30)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.horizontalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for col, width in enumerate((64, 220, 200, 250, 250)):
            self.view.setColumnWidth(col, width)
        self.view.selectionModel().currentRowChanged.connect(self._selected)
        self.detail = _label(name="Help")
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.detail.setMinimumHeight(self.detail.fontMetrics().lineSpacing() * 5 + 4)
        detail_box = QFrame()
        detail_box.setObjectName("Detail")
        QVBoxLayout(detail_box).addWidget(self.detail)
        self.detail.setText("Select a row to read what it holds now, what it will hold and why.")

        tools = QHBoxLayout()
        tools.addWidget(self.search, 1)
        tools.addWidget(self.kind)
        tools.addWidget(self.shown)
        self.deals = QLabel()  # what the first sync will do with the won deals
        self.deals.setObjectName("Muted")
        self.deals.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.counts)
        layout.addWidget(self.deals)
        layout.addLayout(tools)
        layout.addWidget(self.view, 1)
        layout.addWidget(detail_box)
        layout.addWidget(self.errors)

    def initializePage(self) -> None:
        mf = self.mf
        self.kind.blockSignals(True)
        self.kind.clear()
        self.kind.addItem("Every row", None)
        for action in ACTIONS:
            self.kind.addItem(action_label(action, self.w.crm_label, self.w.ledger_label), action)
        self.kind.blockSignals(False)
        self.model.load(mf)
        self._filter()
        self._counts()
        self.deals.setText(mf.deals_text())
        self.deals.setVisible(bool(mf.deals_text()))

    def _filter(self) -> None:
        self.proxy.set_filter(self.search.text(), self.kind.currentData())
        self.shown.setText(f"{self.proxy.rowCount():,} of {self.model.rowCount():,} rows")

    def _counts(self) -> None:
        self.counts.show_counts(self.mf.counts(), self.w.crm_label, self.w.ledger_label)

    def _selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        row: PlanRow | None = current.data(Qt.ItemDataRole.UserRole) if current.isValid() else None
        if row is None:
            return
        left = " (left out: Apply does not touch it)" if row.excluded else ""
        self.detail.setText(f"<b>{_esc(row.name)}</b> — {_esc(row.what)}{left}<br>Now: {_esc(row.before)}"
                            f"<br>After: {_esc(row.after)}" + (f"<br>Why: {_esc(row.why)}" if row.why else ""))

    def select_row(self, row_id: int) -> QModelIndex:
        for r in range(self.proxy.rowCount()):
            index = self.proxy.index(r, PlanModel.INCLUDE)
            if index.data(Qt.ItemDataRole.UserRole).id == row_id:
                self.view.setCurrentIndex(index)
                self.view.scrollTo(index)
                return index
        return QModelIndex()


class InvalidPage(_Page):
    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "invalid", "Records that are not valid",
                         "These records are not written. After Apply they are listed under Held back with what "
                         "to correct; once you correct them, the regular sync picks them up.")
        self.list = QListWidget()
        self.list.setAccessibleName("Records that are not valid")
        self.list.setWordWrap(True)
        self.list.setSpacing(2)
        self.list.setAlternatingRowColors(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.errors)

    def initializePage(self) -> None:
        self.list.clear()
        for row in self.mf.rows("invalid"):
            side = self.w.crm_label if row.crm_fields else self.w.ledger_label
            item = QListWidgetItem(f"{row.name}  ({side})\n{row.why}")
            if row.excluded:
                item.setForeground(QColor(Palette.TEXT_FAINT))
            self.list.addItem(item)


class ReviewMatchesPage(_Page):
    """Possible matches side by side; each can be linked, kept apart or left for later."""

    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "review", "Possible matches",
                         "Crossledger is not sure these are the same customer. Compare the two sides and choose; "
                         "anything you leave for later waits on the Review tab and nothing is written for it.")
        self.list = QListWidget()
        self.list.setAccessibleName("Possible matches")
        self.list.setMaximumWidth(260)
        self.list.setSpacing(3)
        self.list.currentRowChanged.connect(self._show)
        self.why = _label()
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(16)
        self.grid.setColumnStretch(1, 1)
        self.grid.setColumnStretch(2, 1)
        self.heads = (_label("", "BoxTitle"), _label("", "BoxTitle"))
        self.grid.addWidget(self.heads[0], 0, 1)
        self.grid.addWidget(self.heads[1], 0, 2)
        self.cells: dict[str, tuple[QLabel, QLabel]] = {}
        for n_row, f in enumerate(PARTY_FIELDS, 1):
            word = FIELD_WORDS.get(f, f)
            self.grid.addWidget(_label(word[:1].upper() + word[1:], "Help", wrap=False), n_row, 0)
            self.cells[f] = (_label(), _label())
            self.grid.addWidget(self.cells[f][0], n_row, 1)
            self.grid.addWidget(self.cells[f][1], n_row, 2)
        grid_box = QFrame()
        grid_box.setObjectName("Detail")
        grid_box.setLayout(self.grid)
        self.choices = QButtonGroup(self)
        self.radios: dict[str, QRadioButton] = {}
        choice_box = QVBoxLayout()
        for choice in (LINK, APART, LATER):
            radio = QRadioButton(CHOICE_LABEL[choice])
            self.radios[choice] = radio
            self.choices.addButton(radio)
            choice_box.addWidget(radio)
            radio.toggled.connect(lambda on, c=choice: on and self._choose(c))
        self.effect = _label(name="Help")
        right = QVBoxLayout()
        right.addWidget(self.why)
        right.addWidget(grid_box)
        right.addLayout(choice_box)
        right.addWidget(self.effect)
        right.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.list)
        row.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(row, 1)
        layout.addWidget(self.errors)
        self.rows: list[PlanRow] = []

    def initializePage(self) -> None:
        self.rows = self.mf.review_rows()
        self.list.clear()
        for row in self.rows:
            self.list.addItem(self._item_text(row))
        if self.rows:
            self.list.setCurrentRow(0)

    def _item_text(self, row: PlanRow) -> str:
        return f"{row.name}\n{LIST_WORDS[row.choice or LATER]}"

    def current(self) -> PlanRow | None:
        n = self.list.currentRow()
        return self.rows[n] if 0 <= n < len(self.rows) else None

    def _show(self, n: int) -> None:
        row = self.current()
        if row is None:
            return
        self.why.setText(row.why)
        crm, ledger = row.crm_fields or {}, row.ledger_fields or {}
        self.heads[0].setText(self.w.crm_label if crm else "")
        self.heads[1].setText(self.w.ledger_label if ledger else f"Also in {self.w.crm_label}")
        second = ledger or self._other_crm(row)
        for f, (a_label, b_label) in self.cells.items():
            a, b = crm.get(f), second.get(f)
            differ = (a or "") != (b or "")
            for label, value in ((a_label, a), (b_label, b)):
                label.setText(str(value) if value else "—")
                label.setStyleSheet(f"color: {Palette.WARNING_TEXT}; font-weight: 600;" if differ and value else "")
        allowed = self.mf.choices_for(row.id)
        for choice, radio in self.radios.items():
            radio.setVisible(choice in allowed)
            radio.blockSignals(True)
            radio.setChecked(choice == (row.choice or LATER))
            radio.blockSignals(False)
        self._effect(row)

    def _other_crm(self, row: PlanRow) -> dict[str, Any]:
        for r in self.mf.result.rows if self.mf.result else []:
            if r.id == row.id:
                return r.before.get("other_crm") or {}
        return {}

    def _effect(self, row: PlanRow) -> None:
        crm, ledger = self.w.crm_label, self.w.ledger_label
        words = {LINK: "Apply links the two; blanks are filled in from the other side.",
                 APART: (f"Apply creates a customer in {ledger} for the {crm} record"
                         + (f", and a record in {crm} for the {ledger} customer." if row.ledger_fields and
                            row.crm_fields else ".")) if row.crm_fields else
                 f"Apply creates a record in {crm} for this {ledger} customer.",
                 LATER: "Nothing is written for either record. It waits on the Review tab."}
        self.effect.setText(words[row.choice or LATER])

    def _choose(self, choice: str) -> None:
        row = self.current()
        if row is None or (row.choice or LATER) == choice:
            return
        try:
            self.mf.decide(row.id, choice)
        except UserError as exc:
            self.show_problems({"review": str(exc)})
            return
        self.show_problems({})
        n = self.list.currentRow()
        self.rows = self.mf.review_rows()
        self.list.item(n).setText(self._item_text(self.rows[n]))
        self._show(n)

    def choose(self, row_id: int, choice: str) -> None:
        """Select the row and click its choice (as a person would)."""
        n = next(i for i, r in enumerate(self.rows) if r.id == row_id)
        self.list.setCurrentRow(n)
        self.radios[choice].click()


class MigrationWizard(QWizard):
    migrated = Signal(str)  # the workspace's name, when a migration finished

    def __init__(self, store: Store, tokens: TokenStore | None, workspace: str, *,
                 connectors: Connectors | None = None, pool: QThreadPool | None = None,
                 parent: QWidget | None = None, clock: Clock = time.monotonic) -> None:
        super().__init__(parent)
        self.clock = clock  # the pace of the apply ("about 2 min left"): tests move it by hand
        self.mf = MigrationFlow(store, tokens, workspace, connectors=connectors)
        self.workspace = self.mf.workspace
        self.crm_label = text.provider_label(self.mf.ws.crm)
        self.ledger_label = text.provider_label(self.mf.ws.accounting)
        self.pool = pool or QThreadPool.globalInstance()
        self.closed = False
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        follow_palette(self, migration_style)  # light or dark, as the window; made again if the system switches
        self.setWindowTitle(f"Migrate existing records — {workspace} — Crossledger")
        self.setMinimumSize(1040, 680)
        self.pages: dict[str, _Page] = {"resume": ResumePage(self), "read": ReadPage(self), "plan": PlanPage(self),
                                        "invalid": InvalidPage(self), "review": ReviewMatchesPage(self),
                                        "start": StartPage(self), "apply": ApplyPage(self), "done": DonePage(self)}
        for step, page in self.pages.items():
            self.setPage(PAGE_IDS[step], page)
        self.setStartId(PAGE_IDS[self.mf.flow.history[0]])
        self.setButtonText(QWizard.WizardButton.FinishButton, "Finish")
        self.currentIdChanged.connect(self._page_changed)
        style_main_action(self, commit="Apply")
        steps = {v: k for k, v in PAGE_IDS.items()}
        add_step_indicator(self, lambda page_id: self.mf.flow.position(steps[page_id]) if page_id in steps else None)

    def page_for(self, step: str) -> _Page:
        return self.pages[step]

    def _page_changed(self, page_id: int) -> None:
        self.setButtonText(QWizard.WizardButton.NextButton, "Next")
        if page_id == PAGE_IDS["resume"]:
            self.setButtonText(QWizard.WizardButton.NextButton, "Continue")
        if page_id in (PAGE_IDS["apply"], PAGE_IDS["done"]):
            self.button(QWizard.WizardButton.BackButton).hide()
        self.button(QWizard.WizardButton.CancelButton).setVisible(page_id != PAGE_IDS["done"])

    def done(self, result: int) -> None:
        if result == QWizard.DialogCode.Accepted:
            super().done(result)
            self.closed = True
            self.migrated.emit(self.workspace)
            return
        self.closed = True  # Cancel: a read or an apply stops after its current batch; the apply can be continued
        self.pages["read"].cancel()
        self.pages["apply"].stop()
        super().done(result)

    @property
    def job(self) -> BackgroundJob | None:
        """The apply or read running now, if any."""
        for step in ("apply", "read"):
            job = self.pages[step].job
            if job is not None and job.running:
                return job
        return None
