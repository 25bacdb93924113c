"""Held back: records the sync did not send, each with why, one reason per line."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QLabel, QVBoxLayout, QWidget

from app.ops.status import QuarantineRow
from app.ui.models import HeldBackModel, SearchFilterProxy
from app.ui.tables import Fill, PaddedTextDelegate, TableOrNote, make_table


class HeldBackView(QWidget):
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

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(intro)
        layout.addWidget(self.body, 1)
        self.body.show_note("Nothing is held back. Every record passed the checks.")

    def set_rows(self, rows: list[QuarantineRow]) -> None:
        self.model.set_rows(rows)
        if rows:
            self.body.show_table()
        else:
            self.body.show_note("Nothing is held back. Every record passed the checks.")
