"""Linked records: CRM records and their ledger customers, searchable and sortable."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QMenu, QPushButton, QVBoxLayout, QWidget

from app.ops.status import LinkRow
from app.ui.models import LinkedModel, RowRole, SearchFilterProxy
from app.ui.resources import icon
from app.ui.tables import Fill, TableOrNote, make_table


class LinkedView(QWidget):
    history_requested = Signal(object)  # the LinkRow whose field history to show

    def __init__(self, model: LinkedModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = SearchFilterProxy(self)
        self.proxy.setSourceModel(model)

        self.search = QLineEdit()
        self.search.setObjectName("Search")
        self.search.setPlaceholderText("Search by name or email")
        self.search.setAccessibleName("Search linked records")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.search.setMinimumWidth(340)
        self.search.textChanged.connect(self._search_changed)
        self.count = QLabel()
        self.count.setObjectName("Muted")

        bar = QHBoxLayout()
        bar.setContentsMargins(16, 14, 16, 10)
        bar.addWidget(self.search)
        bar.addStretch(1)
        bar.addWidget(self.count)
        self.history_button = QPushButton("History…")
        self.history_button.setToolTip("How each field of the selected record got its current value")
        self.history_button.clicked.connect(self.request_history)
        bar.addWidget(self.history_button)

        # CRM record, Type, Email, Ledger customer, Matched by, Last synced
        self.table = make_table(self.proxy, (Fill(170), 96, Fill(170), Fill(170), 136, 140))
        self.table.sortByColumn(LinkedModel.NAME, Qt.SortOrder.AscendingOrder)
        self.body = TableOrNote(self.table)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.body, 1)
        self._update_count()
        self._selection_changed()

    def selected_row(self) -> LinkRow | None:
        rows = self.table.selectionModel().selectedRows()
        return self.proxy.data(rows[0], RowRole) if rows else None

    def request_history(self) -> bool:
        row = self.selected_row()
        if row is not None:
            self.history_requested.emit(row)
        return row is not None

    def _selection_changed(self) -> None:
        self.history_button.setEnabled(self.selected_row() is not None)

    def _context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        self.table.selectRow(index.row())
        menu = QMenu(self)
        action = QAction("History…", menu)
        action.triggered.connect(self.request_history)
        menu.addAction(action)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def set_rows(self, rows: list[LinkRow], *, in_order: bool = False) -> None:
        self.model.set_rows(rows, in_order=in_order)
        self._update_count()
        self._selection_changed()

    def visible_rows(self) -> int:
        return self.proxy.rowCount()

    def _search_changed(self, query: str) -> None:
        self.proxy.set_search(query)
        self._update_count()

    def _update_count(self) -> None:
        total, shown = self.model.rowCount(), self.proxy.rowCount()
        if total == 0:
            self.count.setText("")
            self.body.show_note("No linked records yet.\nSync now links each CRM customer to its ledger "
                                "customer, or creates it there.")
            return
        if shown == 0:
            self.body.show_note(f"Nothing matches “{self.search.text().strip()}”.")
        else:
            self.body.show_table()
        self.count.setText(f"{total:,} linked" if shown == total else f"Showing {shown:,} of {total:,}")
