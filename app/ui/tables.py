"""Shared table set-up, so every table aligns, sorts and reads the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    QTimer,
)
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QLabel,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True, slots=True)
class Fill:
    """A column that takes a share of the spare width, but never less than ``minimum`` pixels."""

    minimum: int = 160


Width = int | Fill


class _ColumnFitter(QObject):
    """Spreads the viewport's spare width over the Fill columns; below their minimums the table scrolls."""

    def __init__(self, table: QTableView, widths: Sequence[Width]) -> None:
        super().__init__(table)
        self._table = table
        self._widths = list(widths)
        self._due = False
        table.viewport().installEventFilter(self)
        table.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.fit()  # at once, for the paint that follows
            if not self._due:
                # and again once the table has laid out its viewport (and its scroll bars) at the new size:
                # fitted only at once, the columns followed a passing width and the table scrolled sideways
                self._due = True
                QTimer.singleShot(0, self, self._fit_now)  # never after the table is gone
        return False

    def _fit_now(self) -> None:
        self._due = False
        self.fit()

    def fit(self) -> None:
        """The fixed columns their width; the Fill columns the spare width in proportion to their minimums,
        so that together they fill the viewport exactly (equal shares pushed a wide minimum past its edge, and
        the table scrolled sideways by a few pixels). Below the minimums the table scrolls."""
        table, header = self._table, self._table.horizontalHeader()
        shown = [(col, w) for col, w in enumerate(self._widths) if not table.isColumnHidden(col)]
        fills = [(col, w) for col, w in shown if isinstance(w, Fill)]
        for col, width in enumerate(self._widths):
            if isinstance(width, int):
                header.resizeSection(col, width)
        spare = max(0, table.viewport().width() - sum(w for _, w in shown if isinstance(w, int)))
        least = sum(w.minimum for _, w in fills)
        given = 0
        for n, (col, width) in enumerate(fills):
            if spare <= least:
                size = width.minimum
            else:  # the last takes what rounding left
                size = spare - given if n == len(fills) - 1 else spare * width.minimum // least
            header.resizeSection(col, size)
            given += size


def make_table(model: QAbstractItemModel, widths: Sequence[Width], *, sortable: bool = True,
               row_height: int = 36) -> QTableView:
    """``widths``: pixels for a column, or Fill(minimum) for the columns that share the spare room."""
    table = QTableView()
    table.setModel(model)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.setWordWrap(False)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setTabKeyNavigation(False)  # read-only: Tab leaves the table for the next control, arrows move
    table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    table.setTextElideMode(Qt.TextElideMode.ElideRight)
    table.setFrameShape(QTableView.Shape.NoFrame)
    table.setCornerButtonEnabled(False)
    vertical = table.verticalHeader()
    vertical.hide()
    vertical.setDefaultSectionSize(row_height)
    vertical.setMinimumSectionSize(row_height)
    header = table.horizontalHeader()
    header.setHighlightSections(False)
    header.setSectionsMovable(False)
    header.setMinimumSectionSize(60)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    header.setStretchLastSection(False)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    _ColumnFitter(table, widths).fit()
    if sortable:
        table.setSortingEnabled(True)
    return table


class TableOrNote(QStackedWidget):
    """A table, or a sentence in its place when there is nothing to show."""

    def __init__(self, table: QTableView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = table
        self.note = QLabel()
        self.note.setObjectName("Muted")
        self.note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.note.setWordWrap(True)
        self.note.setContentsMargins(40, 40, 40, 40)
        self.addWidget(table)
        self.addWidget(self.note)

    def show_table(self) -> None:
        self.setCurrentWidget(self.table)

    def show_note(self, words: str) -> None:
        self.note.setText(words)
        self.setCurrentWidget(self.note)


class PaddedTextDelegate(QStyledItemDelegate):
    """Top-aligned text with even padding that wraps to the column width; '• ' lines get a hanging indent.

    The stock delegate measures wrapped text without the style sheet's padding, which crops the
    last line; this one measures and paints with the same geometry.
    """

    PAD_X = 13
    PAD_Y = 9
    BULLET = "• "

    def __init__(self, table: QTableView) -> None:
        super().__init__(table)
        self._table = table

    def _layout(self, text: str, width: int, metrics: QFontMetrics) -> list[tuple[str, QRect, bool]]:
        """Each line, its rectangle relative to the text area, and whether it has a bullet."""
        indent = metrics.horizontalAdvance(self.BULLET)
        flags = int(Qt.TextFlag.TextWordWrap)
        out, y = [], 0
        for line in text.split("\n"):
            bullet = line.startswith(self.BULLET)
            body = line[len(self.BULLET):] if bullet else line
            left = indent if bullet else 0
            rect = metrics.boundingRect(QRect(0, 0, max(20, width - left), 100000), flags, body or " ")
            out.append((body, QRect(left, y, max(20, width - left), rect.height()), bullet))
            y += rect.height()
        return out

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        width = self._table.columnWidth(index.column())
        lines = self._layout(str(index.data() or ""), width - 2 * self.PAD_X, QFontMetrics(option.font))
        height = lines[-1][1].bottom() + 1 if lines else 0
        return QSize(width, height + 2 * self.PAD_Y)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        text = str(index.data() or "")  # not opt.text: displayText() turns "\n" into U+2028
        opt.text = ""
        style = opt.widget.style() if opt.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        painter.save()
        colour = index.data(Qt.ItemDataRole.ForegroundRole)
        painter.setPen(QColor(colour) if colour is not None else opt.palette.color(QPalette.ColorRole.Text))
        painter.setFont(opt.font)
        area = opt.rect.adjusted(self.PAD_X, self.PAD_Y, -self.PAD_X, -self.PAD_Y)
        flags = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap)
        for body, rect, bullet in self._layout(text, area.width(), QFontMetrics(opt.font)):
            placed = rect.translated(area.topLeft())
            if bullet:
                painter.drawText(QRect(area.left(), placed.top(), rect.left(), placed.height()), flags, "•")
            painter.drawText(placed, flags, body)
        painter.restore()
