"""The recent-runs strip: one small card per run, newest on the left."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.ops.status import RunRow
from app.ui import text
from app.ui.models import RowRole, RunsModel
from app.ui.theme import LEVEL_COLORS, Palette

Index = QModelIndex | QPersistentModelIndex

CARD_WIDTH = 232
GAP = 8


class RunCardDelegate(QStyledItemDelegate):
    """'Today, 14:48 … 5 s' / '● Synced · Sync now' / 'Created 3 customers, …'."""

    PAD = 12

    def _fonts(self, base: QFont) -> tuple[QFont, QFont]:
        bold = QFont(base)
        bold.setWeight(QFont.Weight.DemiBold)
        small = QFont(base)
        small.setPointSizeF(max(8.0, base.pointSizeF() - 1))
        return bold, small

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        bold, small = self._fonts(option.font)
        height = QFontMetrics(bold).height() + 2 * QFontMetrics(small).height() + 2 * 4 + 2 * self.PAD
        return QSize(CARD_WIDTH + GAP, height)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        row: RunRow | None = index.data(RowRole)
        if row is None:
            return
        model = index.model()
        r = index.row()
        when = model.data(model.index(r, RunsModel.WHEN))
        took = model.data(model.index(r, RunsModel.TOOK))
        how = model.data(model.index(r, RunsModel.TRIGGER))
        result = model.data(model.index(r, RunsModel.RESULT))
        summary = model.data(model.index(r, RunsModel.SUMMARY))

        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        card = option.rect.adjusted(0, 0, -GAP - 1, -1)
        painter.setPen(QPen(QColor(Palette.BORDER), 1))
        painter.setBrush(QColor(Palette.SURFACE))
        painter.drawRoundedRect(card, 8, 8)

        bold, small = self._fonts(option.font)
        bold_fm, small_fm = QFontMetrics(bold), QFontMetrics(small)
        x, y = card.left() + self.PAD, card.top() + self.PAD
        width = card.width() - 2 * self.PAD

        painter.setFont(small)
        painter.setPen(QColor(Palette.TEXT_MUTED))
        took_width = small_fm.horizontalAdvance(took) if took else 0
        painter.drawText(QRect(x, y, width, bold_fm.height()), Qt.AlignmentFlag.AlignRight
                         | Qt.AlignmentFlag.AlignVCenter, took)
        painter.setFont(bold)
        painter.setPen(QColor(Palette.TEXT))
        painter.drawText(QRect(x, y, width - took_width - 8, bold_fm.height()), Qt.AlignmentFlag.AlignVCenter,
                         bold_fm.elidedText(when, Qt.TextElideMode.ElideRight, width - took_width - 8))
        y += bold_fm.height() + 4

        dot = 8
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(LEVEL_COLORS[text.run_level(row.status)]))
        painter.drawEllipse(QRect(x, y + (small_fm.height() - dot) // 2, dot, dot))
        painter.setFont(small)
        painter.setPen(QColor(Palette.TEXT))
        line = small_fm.elidedText(f"{result}  ·  {how}", Qt.TextElideMode.ElideRight, width - dot - 7)
        painter.drawText(QRect(x + dot + 7, y, width - dot - 7, small_fm.height()), Qt.AlignmentFlag.AlignVCenter,
                         line)
        y += small_fm.height() + 4

        painter.setPen(QColor(Palette.TEXT_MUTED))
        painter.drawText(QRect(x, y, width, small_fm.height()), Qt.AlignmentFlag.AlignVCenter,
                         small_fm.elidedText(summary, Qt.TextElideMode.ElideRight, width))
        painter.restore()


class RunsStrip(QWidget):
    def __init__(self, model: RunsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        title = QLabel("Recent runs")
        title.setObjectName("SectionTitle")
        self.note = QLabel("No runs yet.")
        self.note.setObjectName("Muted")

        self.view = QListView()
        self.view.setObjectName("RunStrip")
        self.view.setModel(model)
        self.view.setModelColumn(RunsModel.WHEN)
        self.view.setItemDelegate(RunCardDelegate(self.view))
        self.view.setFlow(QListView.Flow.LeftToRight)
        self.view.setWrapping(False)
        self.view.setSpacing(0)
        self.view.setUniformItemSizes(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.view.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setFrameShape(QFrame.Shape.NoFrame)
        card = RunCardDelegate().sizeHint(QStyleOptionViewItem(), model.index(0, 0))
        self.view.setFixedHeight(card.height() + 14)  # room for a thin scroll bar when runs overflow

        heading = QHBoxLayout()
        heading.addWidget(title)
        heading.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addLayout(heading)
        layout.addWidget(self.view)
        layout.addWidget(self.note)
        self.note.hide()

    def set_rows(self, rows: list[RunRow]) -> None:
        self.model.set_rows(rows)
        self.view.setVisible(bool(rows))
        self.note.setVisible(not rows)
