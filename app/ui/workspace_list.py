"""The left side: the app's name and the client workspaces, each with how its last sync went."""

from __future__ import annotations

from PySide6.QtCore import QItemSelection, QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.ui.models import WorkspaceListModel
from app.ui.resources import icon
from app.ui.theme import LEVEL_COLORS, Palette

Index = QModelIndex | QPersistentModelIndex


class WorkspaceDelegate(QStyledItemDelegate):
    """Name, 'HubSpot ↔ QuickBooks Online', and a dot with the last run's state."""

    PAD_X = 14
    PAD_Y = 10
    LINE_GAP = 3

    def _fonts(self, base: QFont) -> tuple[QFont, QFont]:
        name = QFont(base)
        name.setWeight(QFont.Weight.DemiBold)
        name.setPointSizeF(base.pointSizeF() + 0.5)
        small = QFont(base)
        small.setPointSizeF(max(8.0, base.pointSizeF() - 1))
        return name, small

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        name, small = self._fonts(option.font)
        height = (QFontMetrics(name).height() + 2 * QFontMetrics(small).height() + 2 * self.LINE_GAP
                  + 2 * self.PAD_Y)
        return QSize(220, height + 4)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        card = option.rect.adjusted(8, 2, -8, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected:
            painter.setPen(QPen(QColor(Palette.BORDER), 1))
            painter.setBrush(QColor(Palette.SURFACE))
            painter.drawRoundedRect(card.adjusted(0, 0, -1, -1), 8, 8)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(Palette.ACCENT))
            painter.drawRoundedRect(QRect(card.left() + 1, card.top() + 10, 3, card.height() - 20), 1.5, 1.5)
        elif hovered:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#E3E7EC"))
            painter.drawRoundedRect(card, 8, 8)

        name_font, small_font = self._fonts(option.font)
        name_fm, small_fm = QFontMetrics(name_font), QFontMetrics(small_font)
        x = card.left() + self.PAD_X
        width = card.width() - 2 * self.PAD_X
        y = card.top() + self.PAD_Y

        painter.setFont(name_font)
        painter.setPen(QColor(Palette.TEXT))
        name = name_fm.elidedText(index.data() or "", Qt.TextElideMode.ElideRight, width)
        painter.drawText(QRect(x, y, width, name_fm.height()), Qt.AlignmentFlag.AlignVCenter, name)
        y += name_fm.height() + self.LINE_GAP

        painter.setFont(small_font)
        painter.setPen(QColor(Palette.TEXT_MUTED))
        subtitle = small_fm.elidedText(index.data(WorkspaceListModel.SubtitleRole) or "",
                                       Qt.TextElideMode.ElideRight, width)
        painter.drawText(QRect(x, y, width, small_fm.height()), Qt.AlignmentFlag.AlignVCenter, subtitle)
        y += small_fm.height() + self.LINE_GAP

        level = index.data(WorkspaceListModel.LevelRole) or "idle"
        dot = 8
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(LEVEL_COLORS.get(level, Palette.TEXT_FAINT)))
        painter.drawEllipse(QRect(x, y + (small_fm.height() - dot) // 2, dot, dot))
        painter.setPen(QColor(Palette.TEXT_MUTED))
        state = small_fm.elidedText(index.data(WorkspaceListModel.StateRole) or "", Qt.TextElideMode.ElideRight,
                                    width - dot - 7)
        painter.drawText(QRect(x + dot + 7, y, width - dot - 7, small_fm.height()), Qt.AlignmentFlag.AlignVCenter,
                         state)
        painter.restore()


class WorkspaceListPanel(QFrame):
    """Emits ``selected(workspace_id)``, or -1 when nothing is selected."""

    selected = Signal(int)
    add_clicked = Signal()

    def __init__(self, model: WorkspaceListModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.setFixedWidth(256)
        self.model = model

        brand = QHBoxLayout()
        brand.setSpacing(10)
        logo = QLabel()
        logo.setPixmap(icon("crossledger").pixmap(QSize(28, 28)))
        name = QLabel("Crossledger")
        name.setObjectName("AppName")
        brand.addWidget(logo)
        brand.addWidget(name)
        brand.addStretch(1)

        section = QLabel("CLIENT WORKSPACES")
        section.setObjectName("SectionLabel")

        self.view = QListView()
        self.view.setAccessibleName("Client workspaces")
        self.view.setObjectName("WorkspaceList")
        self.view.setModel(model)
        self.view.setItemDelegate(WorkspaceDelegate(self.view))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setMouseTracking(True)
        self.view.setUniformItemSizes(True)
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 18, 0, 12)
        layout.setSpacing(0)
        brand_box = QWidget()
        brand_box.setLayout(brand)
        brand.setContentsMargins(20, 0, 16, 0)
        layout.addWidget(brand_box)
        layout.addSpacing(22)
        section.setContentsMargins(22, 0, 16, 6)
        layout.addWidget(section)
        layout.addWidget(self.view, 1)
        self.none_yet = QLabel("None yet")
        self.none_yet.setObjectName("Muted")
        self.none_yet.setContentsMargins(22, 4, 16, 0)
        layout.insertWidget(layout.indexOf(self.view), self.none_yet)
        self.add_button = QPushButton("Add client…")
        self.add_button.setToolTip("Add a client company and connect its CRM and accounting system")
        self.add_button.clicked.connect(self.add_clicked)
        add_row = QHBoxLayout()
        add_row.setContentsMargins(16, 8, 16, 0)
        add_row.addWidget(self.add_button)
        layout.addLayout(add_row)
        model.modelReset.connect(self._update_none_yet)
        self._update_none_yet()

    def set_opening(self, opening: bool) -> None:
        """While the window opens (the store not read yet), the list says so rather than "None yet"."""
        self.none_yet.setText("Opening…" if opening else "None yet")
        self._update_none_yet()

    def _update_none_yet(self) -> None:
        self.none_yet.setVisible(self.model.rowCount() == 0)

    def current_id(self) -> int:
        rows = self.view.selectionModel().selectedRows()
        return rows[0].data(WorkspaceListModel.IdRole) if rows else -1

    def select(self, workspace_id: int) -> None:
        row = self.model.row_of(workspace_id)
        if row is not None:
            self.view.setCurrentIndex(self.model.index(row))

    def select_first(self) -> None:
        if self.model.rowCount() > 0:
            self.view.setCurrentIndex(self.model.index(0))

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self.selected.emit(self.current_id())
