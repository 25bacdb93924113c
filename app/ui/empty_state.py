"""What the window shows before there is any workspace: try the demo first."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from app.ui.resources import icon

DEMO_COMMAND = "crossledger demo"


class EmptyState(QWidget):
    refresh_clicked = Signal()
    add_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        art = QLabel()
        art.setPixmap(icon("empty").pixmap(QSize(200, 120)))
        art.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel("No client workspaces yet")
        title.setObjectName("EmptyTitle")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        intro = QLabel("Each client company gets a workspace that links its CRM to its accounting system. "
                       "The quickest way to see how Crossledger matches customers and holds back records that "
                       "need a look is the demo: it sets up a sample HubSpot and QuickBooks Online on this "
                       "computer and syncs them. Run this in a terminal:")
        intro.setObjectName("Muted")
        intro.setWordWrap(True)
        intro.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.command = QLabel(DEMO_COMMAND)
        self.command.setObjectName("Command")
        self.command.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        copy = QPushButton(icon("copy"), "Copy")
        copy.setToolTip("Copy the command")
        copy.clicked.connect(self._copy)
        command_row = QHBoxLayout()
        command_row.addStretch(1)
        command_row.addWidget(self.command)
        command_row.addWidget(copy)
        command_row.addStretch(1)

        then = QLabel("Or add a client now: the wizard connects its CRM and accounting system (or the built-in "
                      "sandboxes, to try it out) in a few clicks.")
        then.setObjectName("Muted")
        then.setWordWrap(True)
        then.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.refresh_button = QPushButton("Check again")
        self.refresh_button.clicked.connect(self.refresh_clicked)
        self.add_button = QPushButton("Add a client…")
        self.add_button.setObjectName("PrimaryButton")
        self.add_button.clicked.connect(self.add_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.refresh_button)
        buttons.addStretch(1)

        column = QVBoxLayout()
        column.setSpacing(14)
        column.addWidget(art)
        column.addSpacing(6)
        column.addWidget(title)
        column.addWidget(intro)
        column.addLayout(command_row)
        column.addSpacing(6)
        column.addWidget(then)
        column.addSpacing(6)
        column.addLayout(buttons)
        box = QWidget()
        box.setLayout(column)
        box.setFixedWidth(560)
        box.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Maximum)

        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(box, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(DEMO_COMMAND)
