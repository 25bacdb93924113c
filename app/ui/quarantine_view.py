"""Held back: records the sync did not send, each with why, one reason per line.

Two groups: records that need correcting (the checks held them), and records you held back yourself by
undoing a run; several of the latter can be picked and synced again at once.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QHeaderView, QLabel, QPushButton, QVBoxLayout, QWidget

from app.ops.status import QuarantineRow
from app.ui.models import HeldBackModel, SearchFilterProxy
from app.ui.tables import Fill, PaddedTextDelegate, TableOrNote, make_table

Index = QModelIndex | QPersistentModelIndex
CHECKS, UNDONE = "checks", "undone"
NOTE_EMPTY = "Nothing is held back. Every record passed the checks."


class HeldBackFilter(SearchFilterProxy):
    """The search, and one group: held by the checks, or held by an undo (None: both)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.group: str | None = None

    def set_group(self, group: str | None) -> None:
        if group != self.group:
            self.change_filter(lambda: setattr(self, "group", group))

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        if (self.group is not None and isinstance(model, HeldBackModel)
                and model.row(source_row).undone != (self.group == UNDONE)):
            return False
        return super().filterAcceptsRow(source_row, source_parent)


class HeldBackView(QWidget):
    """``release_many([(record_type, record_id), ...])``: the user lets records held by an undo sync again."""

    release_many = Signal(list)

    def __init__(self, model: HeldBackModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = HeldBackFilter(self)
        self.proxy.setSourceModel(model)

        self.intro = QLabel()
        self.intro.setObjectName("Muted")
        self.intro.setWordWrap(True)

        # The two groups, shown when both have records
        self.checks_button = QPushButton()
        self.undone_button = QPushButton()
        self.groups = QButtonGroup(self)
        self.groups.setExclusive(True)
        for button, group in ((self.checks_button, CHECKS), (self.undone_button, UNDONE)):
            button.setCheckable(True)
            button.setObjectName("CompactButton")
            button.setProperty("group", group)
            self.groups.addButton(button)
        self.checks_button.setToolTip("Records the checks held back: correct them in the CRM")
        self.undone_button.setToolTip("Records you held back by undoing a run: pick them and sync them again")
        self.checks_button.setChecked(True)
        self.groups.buttonToggled.connect(self._group_toggled)

        # Record, Type, Why it was held back, Held since
        self.table = make_table(self.proxy, (230, 90, Fill(320), 150))
        self.table.setWordWrap(True)
        self.table.setItemDelegate(PaddedTextDelegate(self.table))
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().sectionResized.connect(lambda *_: self.table.resizeRowsToContents())
        self.table.sortByColumn(HeldBackModel.NAME, Qt.SortOrder.AscendingOrder)
        self.table.setTabKeyNavigation(False)
        self.body = TableOrNote(self.table)
        self.release = QPushButton("Sync again")
        self.release.setObjectName("PrimaryButton")
        self.release.setToolTip("The next sync creates or links the selected records again. Pick several with "
                                "Ctrl or Shift, or Ctrl+A for all.")
        self.release.setEnabled(False)
        self.release.clicked.connect(self._release)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        top = QHBoxLayout()
        top.setContentsMargins(16, 10, 16, 8)
        top.setSpacing(8)
        top.addWidget(self.checks_button)
        top.addWidget(self.undone_button)
        top.addWidget(self.intro, 1)
        top.addWidget(self.release, 0, Qt.AlignmentFlag.AlignVCenter)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addWidget(self.body, 1)
        self.body.show_note(NOTE_EMPTY)
        self._group_changed()

    @property
    def group(self) -> str:
        return UNDONE if self.undone_button.isChecked() else CHECKS

    def show_group(self, group: str) -> None:
        (self.undone_button if group == UNDONE else self.checks_button).setChecked(True)

    def selected_rows(self) -> list[QuarantineRow]:
        return [self.model.row(self.proxy.mapToSource(i).row()) for i in self.table.selectionModel().selectedRows()]

    def selected(self) -> QuarantineRow | None:
        rows = self.selected_rows()
        return rows[0] if rows else None

    def _selection_changed(self) -> None:
        undone = [r for r in self.selected_rows() if r.undone]
        self.release.setEnabled(bool(undone))
        self.release.setText(f"Sync {len(undone):,} again" if len(undone) > 1 else "Sync again")

    def _release(self) -> None:
        undone = [(r.record_type, r.record_id) for r in self.selected_rows() if r.undone]
        if not undone:
            return
        self.release_many.emit(undone)

    def _group_toggled(self, _button: object, on: bool) -> None:
        if on:
            self._group_changed()

    def _group_changed(self) -> None:
        rows = [self.model.row(n) for n in range(self.model.rowCount())]
        n_undone = sum(r.undone for r in rows)
        n_checks = len(rows) - n_undone
        both = bool(n_undone and n_checks)
        group = self.group if both else (UNDONE if n_undone else CHECKS)
        self.proxy.set_group(group if rows else None)
        self.checks_button.setText(f"To correct  {n_checks:,}")
        self.undone_button.setText(f"Undone by you  {n_undone:,}")
        self.checks_button.setVisible(both)
        self.undone_button.setVisible(both)
        self.release.setVisible(group == UNDONE and n_undone > 0)
        self.intro.setText(
            "Records you held back by undoing a run. Select them (Ctrl or Shift for several) and click Sync "
            "again: the next sync creates or links them again." if group == UNDONE else
            "These records were not sent to the other side. Correct them in the CRM and the next sync picks "
            "them up.")
        self.table.clearSelection()
        self._selection_changed()
        if rows:
            self.body.show_table()
        else:
            self.body.show_note(NOTE_EMPTY)

    def set_rows(self, rows: list[QuarantineRow]) -> None:
        self.model.set_rows(rows)
        self._group_changed()
