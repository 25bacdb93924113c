"""Under the workspace header: Connect…, Field mapping…, Migrate…, and Reconnect when a sign-in has died."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

from app.ops.status import WorkspaceStatus
from app.ui import text


class ConnectionBar(QWidget):
    connect_clicked = Signal()
    mapping_clicked = Signal()
    migrate_clicked = Signal()
    reconnect_clicked = Signal(str)  # side

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.reconnect_side = ""
        self.reconnect_button = QPushButton()
        self.reconnect_button.setObjectName("PrimaryButton")
        self.reconnect_button.clicked.connect(lambda: self.reconnect_clicked.emit(self.reconnect_side))
        self.connect_button = QPushButton("Connect…")
        self.connect_button.setToolTip("Connect or change this client's CRM and accounting sign-ins")
        self.connect_button.clicked.connect(self.connect_clicked)
        self.mapping_button = QPushButton("Mapping…")
        self.mapping_button.setToolTip("Choose which CRM fields fill the ledger's customer fields")
        self.mapping_button.clicked.connect(self.mapping_clicked)
        self.migrate_button = QPushButton("Migrate…")  # the Workspace menu names it in full
        self.migrate_button.setToolTip("Once, before syncing: bring the customers already on both sides to one "
                                       "clean list, with a plan to check first")
        self.migrate_button.clicked.connect(self.migrate_clicked)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 0, 0, 4)  # beside the tabs, under the header
        row.setSpacing(6)
        for button in (self.reconnect_button, self.connect_button, self.mapping_button, self.migrate_button):
            button.setObjectName(button.objectName() or "CompactButton")
        row.addWidget(self.reconnect_button)
        row.addWidget(self.connect_button)
        row.addWidget(self.mapping_button)
        row.addWidget(self.migrate_button)
        row.addStretch(1)  # each connection's calls today are in the header (app/ui/header.py): room for the tabs
        self.reconnect_button.hide()

    def set_workspace(self, ws: WorkspaceStatus) -> None:
        dead = next((c for c in ws.connections if c.status == "reconnect"), None)
        self.reconnect_side = dead.side if dead else ""
        if dead is not None:
            self.reconnect_button.setText(f"Reconnect {text.provider_label(dead.provider)}…")
        self.reconnect_button.setVisible(dead is not None)
        sides = {c.side for c in ws.connections}
        self.connect_button.setText("Connect…" if len(sides) == 2 else "Connect… (unfinished)")
        self.mapping_button.setEnabled("crm" in sides)
        self.migrate_button.setEnabled(len(sides) == 2)
        self.migrate_button.setToolTip("Once, before syncing: bring the customers already on both sides to one "
                                       "clean list, with a plan to check first" if len(sides) == 2
                                       else "Connect both the CRM and the ledger first.")
        self.mapping_button.setToolTip("Choose which CRM fields fill the ledger's customer fields" if "crm" in sides
                                       else "Connect the CRM first: the mapping is made from its fields.")
