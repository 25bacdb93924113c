"""What the window shows before there is any workspace: try the demo first, right here."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from app.ui.resources import icon


class EmptyState(QWidget):
    demo_clicked = Signal()
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
                       "computer and syncs them. Nothing leaves this computer.")
        intro.setObjectName("Muted")
        intro.setWordWrap(True)
        intro.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.demo_button = QPushButton(icon("sync"), "Try the demo")
        self.demo_button.setObjectName("PrimaryButton")
        self.demo_button.setDefault(True)
        self.demo_button.setToolTip("Set up a sample HubSpot and QuickBooks Online on this computer and sync them")
        self.demo_button.clicked.connect(self.demo_clicked)
        self.add_button = QPushButton("Add a client…")
        self.add_button.setToolTip("Connect a client's CRM and accounting system (or the built-in sandboxes)")
        self.add_button.clicked.connect(self.add_clicked)
        self.refresh_button = QPushButton("Check again")
        self.refresh_button.setToolTip("Look again for workspaces added meanwhile (from another window or the "
                                       "command line)")
        self.refresh_button.clicked.connect(self.refresh_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.demo_button, self.add_button, self.refresh_button):
            buttons.addWidget(button)
        buttons.addStretch(1)

        # Shown while the demo is being set up: what it does now, and how far it is.
        self.stage = QLabel("")
        self.stage.setObjectName("Muted")
        self.stage.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stage.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName("Demo progress")
        self.stage.hide()
        self.progress.hide()
        self.error = QLabel("")
        self.error.setObjectName("FieldError")
        self.error.setWordWrap(True)
        self.error.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.error.hide()

        column = QVBoxLayout()
        column.setSpacing(14)
        column.addWidget(art)
        column.addSpacing(6)
        column.addWidget(title)
        column.addWidget(intro)
        column.addSpacing(6)
        column.addLayout(buttons)
        column.addWidget(self.stage)
        column.addWidget(self.progress)
        column.addWidget(self.error)
        box = QWidget()
        box.setLayout(column)
        box.setFixedWidth(560)
        box.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Maximum)

        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(box, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)

    # -- the demo, run by the window on a worker thread ------------------------------------------
    @property
    def busy(self) -> bool:
        return self.progress.isVisible()

    def demo_started(self) -> None:
        for button in (self.demo_button, self.add_button, self.refresh_button):
            button.setEnabled(False)
        self.demo_button.setText("Setting up the demo…")
        self.error.hide()
        self.stage.setText("Starting…")
        self.progress.setRange(0, 0)  # busy until the first count arrives
        self.stage.show()
        self.progress.show()

    def demo_progressed(self, stage: str, done: int, total: int) -> None:
        self.stage.setText(f"{stage}…" if total <= 0 else f"{stage}… {min(done, total):,} of {total:,}")
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
        else:
            self.progress.setRange(0, 0)

    def demo_finished(self, error: str | None = None) -> None:
        for button in (self.demo_button, self.add_button, self.refresh_button):
            button.setEnabled(True)
        self.demo_button.setText("Try the demo again" if error else "Try the demo")
        self.stage.hide()
        self.progress.hide()
        self.error.setText(error or "")
        self.error.setVisible(bool(error))
