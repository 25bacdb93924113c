"""What the migration wizard's pages share: their ids, the base page, the plan's table model and
filter, and the counts bar (app/ui/migration_wizard.py assembles the wizard)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget, QWizardPage

from app.ops.migration import ACTIONS
from app.ops.workspaces import UserError
from app.ui import text
from app.ui.theme import Palette
from app.ui.wizard_kit import label as _label
from app.wizard.migration_flow import APART, LATER, LINK, MigrationFlow, PlanRow

if TYPE_CHECKING:
    from app.ui.migration_wizard import MigrationWizard

PAGE_IDS = {"resume": 0, "read": 1, "plan": 2, "invalid": 3, "review": 4, "start": 5, "apply": 6, "done": 7}
Index = QModelIndex | QPersistentModelIndex
LIST_WORDS = {LINK: "→ same customer: link", APART: "→ different customers", LATER: "→ left for later"}


def migration_style() -> str:
    """The migration wizard's own rules, in the colours of the palette in use now."""
    p = Palette
    return f"""
QLabel#Count {{ font-size: 20px; font-weight: 600; color: {p.TEXT}; }}
QLabel#CountWord {{ color: {p.TEXT_MUTED}; }}
QFrame#CountBox {{ background: {p.SURFACE}; border: 1px solid {p.BORDER}; border-radius: 6px; }}
QFrame#Detail {{ background: {p.ROW_ALT}; border: 1px solid {p.BORDER_SOFT}; border-radius: 6px; }}
QLabel#Stage {{ color: {p.TEXT}; }}
"""


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
        committed = self.flow is not None and self.flow.committed
        if index.column() == self.INCLUDE and row.id > 0 and row.action != "invalid" and not committed:
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
        if self.flow is None or not self.flags(index) & Qt.ItemFlag.ItemIsUserCheckable:
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
        model = self.sourceModel()
        assert isinstance(model, PlanModel)
        row: PlanRow = model.rows[source_row]
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



def _esc(value: str) -> str:
    return html.escape(value)
