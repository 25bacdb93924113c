"""Migrate existing records…: thin Qt pages over app.wizard.migration_flow.

Reading both sides and applying run on the thread pool (BackgroundJob); the pages show the plan
the flow holds and hand the bookkeeper's choices back to it. Apply writes exactly the plan shown.
Cancel and Pause stop after the batch being written; the next opening offers to continue.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QColor
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
    QWizardPage,
)

from app.connectors.tokens import TokenStore
from app.domain.models import PARTY_FIELDS
from app.ops.migration import ACTIONS, FIELD_WORDS, MigrationResult
from app.ops.workspaces import UserError
from app.store.db import Store
from app.ui import text
from app.ui.connect_wizard import WIZARD_STYLE, start_job
from app.ui.text import Notice
from app.ui.theme import Palette
from app.ui.wizard_kit import add_step_indicator, style_main_action
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

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow

PAGE_IDS = {"resume": 0, "read": 1, "plan": 2, "invalid": 3, "review": 4, "start": 5, "apply": 6, "done": 7}
Index = QModelIndex | QPersistentModelIndex
LIST_WORDS = {LINK: "→ same customer: link", APART: "→ different customers", LATER: "→ left for later"}

STYLE = WIZARD_STYLE + f"""
QLabel#Count {{ font-size: 20px; font-weight: 600; color: {Palette.TEXT}; }}
QLabel#CountWord {{ color: {Palette.TEXT_MUTED}; }}
QFrame#CountBox {{ background: {Palette.SURFACE}; border: 1px solid {Palette.BORDER}; border-radius: 6px; }}
QFrame#Detail {{ background: {Palette.ROW_ALT}; border: 1px solid {Palette.BORDER_SOFT}; border-radius: 6px; }}
QLabel#Stage {{ color: {Palette.TEXT}; }}
"""


def _label(value: str = "", name: str = "", wrap: bool = True) -> QLabel:
    label = QLabel(value)
    label.setWordWrap(wrap)
    if name:
        label.setObjectName(name)
    return label


def _failure_words(exc: Exception, workspace: str) -> str:
    if isinstance(exc, UserError):
        return str(exc)
    notice = text.notice_for_error(exc, workspace=workspace)
    return f"{notice.title}. {notice.detail.replace('sync again', 'try again').replace('Sync again', 'Try again')}"


class PlanModel(QAbstractTableModel):
    """The plan's rows: a check box to keep or leave out each, what happens, before and after, and why."""

    INCLUDE, WHAT, RECORD, NOW, AFTER, WHY = range(6)
    HEADERS = ("Apply", "What happens", "Record", "Now", "After", "Why")

    changed = Signal()

    def __init__(self, flow: MigrationFlow | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.flow = flow
        self.rows: list[PlanRow] = []

    def load(self, flow: MigrationFlow) -> None:
        self.beginResetModel()
        self.flow = flow
        self.rows = flow.rows()
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        row = self.rows[index.row()]
        if index.column() == self.INCLUDE and row.id > 0 and row.action != "invalid" and not self.flow.committed:
            base |= Qt.ItemFlag.ItemIsUserCheckable
        return base

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.CheckStateRole and col == self.INCLUDE:
            # A record that is not valid is never applied: no tick, and none to give it.
            return Qt.CheckState.Unchecked if row.excluded or row.action == "invalid" else Qt.CheckState.Checked
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            value = {self.INCLUDE: "", self.WHAT: row.what, self.RECORD: row.name, self.NOW: row.before,
                     self.AFTER: row.after, self.WHY: row.why}[col]
            if role == Qt.ItemDataRole.ToolTipRole and col == self.INCLUDE:
                if row.action == "invalid":
                    return "Not valid: Apply skips it. It is listed under Held back with what to correct."
                return "Untick to leave this row out: Apply does not touch it."
            return value
        if role == Qt.ItemDataRole.ForegroundRole:
            if row.excluded:
                return QColor(Palette.TEXT_FAINT)
            if col == self.WHAT and row.action == "invalid":
                return QColor(Palette.ERROR)
            if col == self.WHAT and row.action == "review":
                return QColor(Palette.WARNING_TEXT)
        if role == Qt.ItemDataRole.UserRole:
            return row
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.CheckStateRole or index.column() != self.INCLUDE:
            return False
        if not self.flags(index) & Qt.ItemFlag.ItemIsUserCheckable:
            return False
        row = self.rows[index.row()]
        excluded = Qt.CheckState(value) != Qt.CheckState.Checked
        self.flow.set_excluded(row.id, excluded)
        row.excluded = excluded
        self.dataChanged.emit(self.index(index.row(), 0), self.index(index.row(), self.columnCount() - 1))
        self.changed.emit()
        return True


class PlanFilter(QSortFilterProxyModel):
    """Search words (all of them, anywhere in the row) and one kind of row at a time."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.words = ""
        self.action: str | None = None

    def set_filter(self, words: str, action: str | None) -> None:
        self.beginFilterChange()
        self.words, self.action = words, action
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        row: PlanRow = self.sourceModel().rows[source_row]
        return (self.action is None or row.action == self.action) and (not self.words or row.matches(self.words))


class _Page(QWizardPage):
    step_id = ""

    def __init__(self, wizard: MigrationWizard, step_id: str, title: str, subtitle: str = "") -> None:
        super().__init__()
        self.w = wizard
        self.step_id = step_id
        self.setTitle(title)
        if subtitle:
            self.setSubTitle(subtitle)
        self.errors = _label(name="ErrorText")
        self.errors.hide()

    @property
    def mf(self) -> MigrationFlow:
        return self.w.mf

    def show_problems(self, problems: dict[str, str]) -> None:
        self.errors.setText(" ".join(problems.values()))
        self.errors.setVisible(bool(problems))

    def nextId(self) -> int:
        nxt = self.mf.flow.step(self.step_id).next(self.mf.flow.data)
        return PAGE_IDS[nxt] if nxt else -1

    def validatePage(self) -> bool:
        problems = self.mf.flow.submit({}, self.step_id)
        self.show_problems(problems)
        return not problems


class CountsBar(QWidget):
    """Link N · create M on each side · skip K · check J, as five boxes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.numbers: dict[str, QLabel] = {}
        self.words: dict[str, QLabel] = {}
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        for action in ACTIONS:
            box = QFrame()
            box.setObjectName("CountBox")
            col = QVBoxLayout(box)
            col.setContentsMargins(10, 6, 10, 6)
            col.setSpacing(0)
            self.numbers[action] = _label("0", "Count", wrap=False)
            self.words[action] = _label("", "CountWord")
            col.addWidget(self.numbers[action])
            col.addWidget(self.words[action])
            row.addWidget(box, 1)

    def show_counts(self, counts: dict[str, int], crm: str, ledger: str) -> None:
        words = {"link": f"to link to customers already in {ledger}", "create_ledger": f"to create in {ledger}",
                 "create_crm": f"to create in {crm}", "invalid": "to skip: not valid",
                 "review": "to check by hand"}
        for action in ACTIONS:
            self.numbers[action].setText(f"{counts.get(action, 0):,}")
            self.words[action].setText(words[action])


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


def _esc(value: str) -> str:
    import html

    return html.escape(value)


class InvalidPage(_Page):
    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "invalid", "Records that are not valid",
                         "These records are not written. After Apply they are listed under Held back with what "
                         "to correct; once you correct them, the regular sync picks them up.")
        self.list = QListWidget()
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


class StartPage(_Page):
    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "start", "Ready to apply",
                         "Apply does exactly this plan and nothing else.")
        self.counts = CountsBar()
        self.eta = _label(name="BoxTitle")
        self.more = _label(name="Help")
        layout = QVBoxLayout(self)
        layout.addWidget(self.counts)
        layout.addSpacing(12)
        layout.addWidget(self.eta)
        layout.addWidget(self.more)
        layout.addStretch(1)
        layout.addWidget(self.errors)
        self.setCommitPage(True)

    def initializePage(self) -> None:
        mf = self.mf
        self.counts.show_counts(mf.counts(), self.w.crm_label, self.w.ledger_label)
        self.eta.setText(mf.eta_text())
        left_out = len(mf.excluded)
        self.more.setText(
            (f"{text.plural(left_out, 'row')} you left out {'is' if left_out == 1 else 'are'} not touched. "
             if left_out else "") +
            "You can pause or cancel at any time: what is done stays done, and the rest can be continued later "
            "without doing anything twice.")
        self.w.setButtonText(QWizard.WizardButton.CommitButton, "Apply")

    def validatePage(self) -> bool:
        problems = self.mf.flow.check({}, "start")
        if not problems:
            try:
                self.mf.commit()
            except UserError as exc:
                problems = {"start": str(exc)}
        if problems:
            self.show_problems(problems)
            return False
        return super().validatePage()


class ApplyPage(_Page):
    progressed = Signal(str, int, int)  # for tests and screenshots: a step of the apply was shown

    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "apply", "Applying the plan",
                         "Everything written is saved as it goes. Pause or Cancel stops after the current batch; "
                         "the rest can be continued later.")
        self.job: BackgroundJob | None = None
        self.cancel_event: threading.Event | None = None
        self.pausing = False
        self.stage = _label(name="Stage")
        self.eta = _label(name="Help")
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.done_text = _label(name="Help", wrap=False)
        widest = "999,999 of 999,999 records done"
        self.done_text.setMinimumWidth(self.done_text.fontMetrics().horizontalAdvance(widest))
        self.eta.setWordWrap(False)
        self.eta.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Stop after the current batch; Continue picks up where it stopped")
        self.pause_button.clicked.connect(self.pause_or_continue)
        row = QHBoxLayout()
        row.addWidget(self.done_text)
        row.addStretch(1)
        row.addWidget(self.eta)
        self.counts = CountsBar()
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.pause_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.stage)
        layout.addWidget(self.bar)
        layout.addLayout(row)
        layout.addLayout(buttons)
        layout.addSpacing(16)
        layout.addWidget(_label("The plan being applied", "BoxTitle"))
        layout.addWidget(self.counts)
        layout.addStretch(1)
        layout.addWidget(self.errors)

    def initializePage(self) -> None:
        u = self.mf.unfinished
        counts = self.mf.counts() if self.mf.result is not None else (u.counts if u else {})
        self.counts.show_counts(counts, self.w.crm_label, self.w.ledger_label)
        if self.mf.applied is None or self.mf.applied.status not in ("applied", "partial", "nothing_to_do"):
            self.start()

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def isComplete(self) -> bool:
        a = self.mf.applied
        return a is not None and a.status in ("applied", "partial", "nothing_to_do") and not self.running

    def start(self) -> None:
        if self.running:
            return
        self.show_problems({})
        self.pausing = False
        self.pause_button.setText("Pause")
        self.pause_button.setEnabled(True)
        self.stage.setText("Starting…")
        self.eta.setText(self.mf.eta_text() if self.mf.result else "")
        cancel = self.cancel_event = threading.Event()
        mf = self.mf

        def work(progress: Any) -> MigrationResult:
            return mf.apply(progress, cancel)

        self.job = BackgroundJob(work, on_success=self._done, on_failure=self._failed, on_progress=self._progress)
        start_job(self.job, self.w.pool)
        self.completeChanged.emit()

    def stop(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()

    def pause_or_continue(self) -> None:
        if self.running:
            self.pausing = True
            self.stop()
            self.pause_button.setEnabled(False)
            self.stage.setText("Pausing after the current batch…")
        else:
            self.start()

    def _progress(self, stage: str, done: int, total: int) -> None:
        if self.w.closed:
            return
        words, _, left = stage.partition(" (")
        if stage.startswith("Applying the plan: "):
            self.eta.setText(f"About {stage.split(': ', 1)[1].removeprefix('about ')}.")
        elif left:
            self.eta.setText(f"Time left: {left.rstrip(')').removesuffix(' left')}.")
        if not self.pausing:
            self.stage.setText(text.progress_text(words) if words != "Done" else "Finishing…")
        if total > 1:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
            self.done_text.setText(f"{done:,} of {total:,} records done")
        self.progressed.emit(stage, done, total)

    def _done(self, result: MigrationResult) -> None:
        if self.w.closed:
            return
        self.mf.record_applied(result)
        if result.status in ("applied", "partial", "nothing_to_do"):
            self.bar.setValue(self.bar.maximum())
            self.pause_button.hide()
            self.stage.setText("The plan is done.")
            self.eta.setText("")
            self.completeChanged.emit()
            if self.w.currentPage() is self:
                QTimer.singleShot(0, self.w.next)
            return
        self.pause_button.setEnabled(True)
        self.pause_button.setText("Continue")
        u = self.mf.unfinished
        done = f" {u.done:,} of {u.done + u.left:,} records are done." if u else ""
        if result.status == "cancelled":
            self.stage.setText(f"Paused.{done} Everything so far is saved; Continue picks up where it stopped.")
        else:
            self.stage.setText(f"The migration stopped before the end.{done} Everything so far is saved.")
            self.show_problems({"apply": " ".join(result.errors[:3]) or
                                "Continue to try the rest again; nothing done is done twice."})
        self.eta.setText("")
        self.completeChanged.emit()

    def _failed(self, exc: Exception) -> None:
        if self.w.closed:
            return
        self.pause_button.setEnabled(True)
        self.pause_button.setText("Continue")
        self.stage.setText("The migration stopped before the end. Everything so far is saved.")
        self.show_problems({"apply": _failure_words(exc, self.w.workspace)})
        self.completeChanged.emit()


class DonePage(_Page):
    def __init__(self, wizard: MigrationWizard) -> None:
        super().__init__(wizard, "done", "Migration done")
        self.lines = _label()
        self.lines.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.lines)
        layout.addStretch(1)

    def initializePage(self) -> None:
        lines = self.mf.done_lines()
        self.lines.setText("<br><br>".join(_esc(line) for line in lines))
        res = self.mf.applied
        if res is not None and res.status != "nothing_to_do":
            self.setSubTitle(f"{self.w.workspace}: both sides now start from one clean list of customers "
                             f"(took {self.mf.elapsed_text()}).")


class MigrationWizard(QWizard):
    migrated = Signal(str)  # the workspace's name, when a migration finished

    def __init__(self, store: Store, tokens: TokenStore | None, workspace: str, *,
                 connectors: Connectors | None = None, pool: QThreadPool | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mf = MigrationFlow(store, tokens, workspace, connectors=connectors)
        self.workspace = self.mf.workspace
        self.crm_label = text.provider_label(self.mf.ws.crm)
        self.ledger_label = text.provider_label(self.mf.ws.accounting)
        self.pool = pool or QThreadPool.globalInstance()
        self.closed = False
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setStyleSheet(STYLE)
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


class MigrationActions(QObject):
    """Workspace › Migrate existing records…, for the main window."""

    notice = Signal(object)

    def __init__(self, window: MainWindow, store: Store, tokens: TokenStore, pool: QThreadPool | None = None,
                 connectors: Connectors | None = None) -> None:
        super().__init__(window)
        self.window, self.store, self.tokens, self.pool = window, store, tokens, pool
        self.connectors = connectors  # tests: connectors over in-process sandboxes
        self.wizard: MigrationWizard | None = None
        menu = window.workspace_actions.menu
        actions = menu.actions()
        rename = actions.index(window.workspace_actions.rename_action)
        self.action = QAction("Mi&grate existing records…", self)
        menu.insertAction(actions[rename - 1] if rename else actions[rename], self.action)
        self.action.setToolTip("Bring the customers already on both sides to one clean list, once, before syncing")
        self.action.triggered.connect(self.open_wizard)
        window.page.migrate_clicked.connect(self.open_wizard)  # the button under the workspace's name
        menu.aboutToShow.connect(self._update)
        self.notice.connect(window.workspace_actions.notice)

    def _update(self) -> None:
        self.action.setEnabled(self.window.page.workspace is not None
                               and self.window.stack.currentWidget() is self.window.page)

    def open_wizard(self) -> MigrationWizard | None:
        ws = self.window.page.workspace
        if ws is None:
            return None
        if self.window.sync.is_running(ws.id):
            self.notice.emit(Notice("warning", "A sync is running",
                                    f"Start the migration of “{ws.name}” when its sync has finished."))
            return None
        wizard = MigrationWizard(self.store, self.tokens, ws.name, connectors=self.connectors, pool=self.pool,
                                 parent=self.window)
        wizard.migrated.connect(self._migrated)
        wizard.rejected.connect(lambda: self._stopped(wizard))
        self.wizard = wizard
        wizard.open()
        return wizard

    def _migrated(self, name: str) -> None:
        self.window.reload()
        self.notice.emit(Notice("success", f"The migration of “{name}” is done",
                                "Possible matches left for later are on the Review tab, and records that were not "
                                "valid are under Held back. From now on Sync now keeps both sides in step."))

    def _stopped(self, wizard: MigrationWizard) -> None:
        if wizard.mf.applied is not None or wizard.pages["apply"].running:
            self.notice.emit(Notice("info", "The migration is paused",
                                    f"What is done so far is saved. Open Workspace › Migrate existing records… to "
                                    f"continue the migration of “{wizard.workspace}”."))
