"""Held back: records the sync did not send, each with why, one reason per line."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QLabel, QPushButton, QVBoxLayout, QWidget

from app.ops.status import QuarantineRow
from app.ui.models import HeldBackModel, SearchFilterProxy
from app.ui.tables import Fill, PaddedTextDelegate, TableOrNote, make_table


class HeldBackView(QWidget):
    """``release_requested(record_type, record_id)``: the user lets a record held by an undo sync again."""

    release_requested = Signal(str, str)

    def __init__(self, model: HeldBackModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = SearchFilterProxy(self)
        self.proxy.setSourceModel(model)

        intro = QLabel("These records were not sent to the ledger. Correct them in the CRM and the next "
                       "sync picks them up.")
        intro.setObjectName("Muted")
        intro.setWordWrap(True)
        intro.setContentsMargins(16, 14, 16, 10)

        # Record, Type, Why it was held back, Held since
        self.table = make_table(self.proxy, (230, 90, Fill(320), 150))
        self.table.setWordWrap(True)
        self.table.setItemDelegate(PaddedTextDelegate(self.table))
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().sectionResized.connect(lambda *_: self.table.resizeRowsToContents())
        self.table.sortByColumn(HeldBackModel.NAME, Qt.SortOrder.AscendingOrder)
        self.body = TableOrNote(self.table)
        self.release = QPushButton("Sync it again")
        self.release.setToolTip("For a record you held back by undoing a run: the next sync creates or links "
                                "it again.")
        self.release.setEnabled(False)
        self.release.clicked.connect(self._release)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 16, 0)
        top.addWidget(intro, 1)
        top.addWidget(self.release, 0, Qt.AlignmentFlag.AlignVCenter)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addWidget(self.body, 1)
        self.body.show_note("Nothing is held back. Every record passed the checks.")

    def selected(self) -> QuarantineRow | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.row(self.proxy.mapToSource(rows[0]).row())

    def _selection_changed(self) -> None:
        row = self.selected()
        self.release.setEnabled(bool(row and row.undone))

    def _release(self) -> None:
        row = self.selected()
        if row is not None and row.undone:
            self.release_requested.emit(row.record_type, row.record_id)

    def set_rows(self, rows: list[QuarantineRow]) -> None:
        self.model.set_rows(rows)
        self.release.setVisible(any(r.undone for r in rows))
        self._selection_changed()
        if rows:
            self.body.show_table()
        else:
            self.body.show_note("Nothing is held back. Every record passed the checks.")
