"""A dismissable message under the header: a run's result, or what went wrong and what to do."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QVBoxLayout, QWidget

from app.ui.resources import icon
from app.ui.text import Notice


class MessageBanner(QFrame):
    dismissed = Signal()
    shown = Signal()  # a message is shown: the page keeps one banner at a time
    action_clicked = Signal(str)  # the action's words (Notice.action)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Banner")
        self.icon = QLabel()
        self.icon.setFixedSize(20, 20)
        self.title = QLabel()
        self.title.setObjectName("BannerTitle")
        self.detail = QLabel()
        self.detail.setObjectName("BannerText")
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setObjectName("BannerClose")
        close.setIcon(icon("close"))
        close.setIconSize(QSize(14, 14))
        close.setToolTip("Dismiss")
        close.setAccessibleName("Dismiss this message")
        close.setCursor(Qt.CursorShape.PointingHandCursor)
        close.clicked.connect(self._dismiss)

        words = QVBoxLayout()
        words.setSpacing(2)
        words.addWidget(self.title)
        words.addWidget(self.detail)
        self.action = QPushButton()
        self.action.setObjectName("BannerAction")
        self.action.clicked.connect(lambda: self.action_clicked.emit(self.action.text()))
        self.action.hide()
        actions = QHBoxLayout()
        actions.setContentsMargins(0, 4, 0, 0)
        actions.addWidget(self.action)
        actions.addStretch(1)
        words.addLayout(actions)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 8, 6)
        layout.setSpacing(10)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(words, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_notice(self, notice: Notice | None) -> None:
        if notice is None:
            self.hide()
            return
        self.setProperty("level", notice.level)
        self.style().unpolish(self)
        self.style().polish(self)
        self.icon.setPixmap(icon(notice.level).pixmap(QSize(20, 20)))
        self.title.setText(notice.title)
        self.detail.setText(notice.detail)
        self.detail.setVisible(bool(notice.detail))
        self.action.setText(notice.action)
        self.action.setVisible(bool(notice.action))
        self.show()
        self.shown.emit()

    def text(self) -> str:
        return f"{self.title.text()}\n{self.detail.text()}".strip()

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()
