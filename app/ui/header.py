"""The selected workspace's header: its connections, counts, Sync now, progress and Cancel."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.ops.status import ConnectionInfo, WorkspaceStatus
from app.ui import text
from app.ui.resources import icon
from app.ui.sync_controller import RunState
from app.ui.widgets import ElidedLabel


def _label(value: str = "", name: str | None = None) -> QLabel:
    label = QLabel(value)
    if name:
        label.setObjectName(name)
    return label


def _restyle(widget: QWidget) -> None:
    """Re-apply the style sheet after a dynamic property changed."""
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class StatTile(QWidget):
    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.value = _label("0", "StatValue")
        self.caption = _label(caption, "StatLabel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 0, 18, 0)
        layout.setSpacing(0)
        layout.addWidget(self.value, 0, Qt.AlignmentFlag.AlignRight)
        layout.addWidget(self.caption, 0, Qt.AlignmentFlag.AlignRight)

    def set_value(self, n: int, *, attention: bool = False) -> None:
        self.value.setText(f"{n:,}")
        self.value.setProperty("attention", attention)
        _restyle(self.value)


class WorkspaceHeader(QFrame):
    sync_clicked = Signal()
    cancel_clicked = Signal()

    def __init__(self, now: Callable[[], dt.datetime], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        self._now = now

        self.title = _label("", "PageTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.crm_chip = self._chip()
        self.acct_chip = self._chip()
        arrow = _label("↔", "Arrow")
        chips = QHBoxLayout()
        chips.setSpacing(8)
        chips.addWidget(self.crm_chip, 1)
        chips.addWidget(arrow)
        chips.addWidget(self.acct_chip, 1)
        chips.addStretch(0)
        self.last_sync = _label("", "Muted")

        # Each connection's calls today against its daily cap, counted by every process using it.
        self.budget = _label("", "Muted")
        self.budget.setToolTip("Calls to each system today (Pipedrive counts API tokens), by this computer and "
                               "any other using this workspace. Scheduled syncs leave at least a fifth of a "
                               "daily cap for you.")
        self.budget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        left = QVBoxLayout()
        left.setSpacing(6)
        left.addWidget(self.title)
        left.addWidget(self.last_sync)
        left.addWidget(self.budget)

        self.linked_tile = StatTile("linked customers")
        self.held_tile = StatTile("held back")
        self.review_tile = StatTile("to review")  # the words and numbers of the tabs (docs/glossary.md)
        dividers = []
        for _ in range(2):
            divider = QFrame()
            divider.setObjectName("Divider")
            divider.setFixedHeight(44)
            dividers.append(divider)

        self.sync_button = QPushButton(icon("sync"), "Sync now")
        self.sync_button.setObjectName("PrimaryButton")
        self.sync_button.setIconSize(QSize(16, 16))
        self.sync_button.setToolTip("Send new and changed customers between the CRM and the ledger now")
        self.sync_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.sync_button.clicked.connect(self.sync_clicked)

        top = QHBoxLayout()
        top.setSpacing(0)
        top.addLayout(left, 1)
        top.addWidget(self.linked_tile, 0, Qt.AlignmentFlag.AlignVCenter)
        top.addWidget(dividers[0], 0, Qt.AlignmentFlag.AlignVCenter)
        top.addWidget(self.held_tile, 0, Qt.AlignmentFlag.AlignVCenter)
        top.addWidget(dividers[1], 0, Qt.AlignmentFlag.AlignVCenter)
        top.addWidget(self.review_tile, 0, Qt.AlignmentFlag.AlignVCenter)
        top.addSpacing(12)
        top.addWidget(self.sync_button, 0, Qt.AlignmentFlag.AlignVCenter)

        # Shown only while this workspace syncs.
        self.progress_row = QWidget()
        self.stage = _label("", "Muted")
        self.stage.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.count = _label("", "Muted")  # "1,234 of 10,000 · about 2 min left", redrawn every second
        self.count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton(icon("cancel"), "Cancel")
        self.cancel_button.setToolTip("Stop after the current batch; what was already sent is kept")
        self.cancel_button.clicked.connect(self.cancel_clicked)
        grid = QGridLayout(self.progress_row)
        grid.setContentsMargins(0, 14, 0, 0)
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(6)
        grid.addWidget(self.stage, 0, 0)
        grid.addWidget(self.count, 0, 1)
        grid.addWidget(self.progress, 1, 0, 1, 2)
        grid.addWidget(self.cancel_button, 0, 2, 2, 1, Qt.AlignmentFlag.AlignVCenter)
        grid.setColumnStretch(0, 1)
        self.progress_row.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addSpacing(12)
        layout.addLayout(chips)
        layout.addWidget(self.progress_row)

    @staticmethod
    def _chip() -> ElidedLabel:
        chip = ElidedLabel()
        chip.setObjectName("Chip")
        chip.setContentsMargins(10, 3, 10, 3)
        chip.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        return chip

    def set_workspace(self, ws: WorkspaceStatus, *, linked: int, held: int) -> None:
        """``linked`` and ``held`` are the rows the tables show, so the numbers always agree; "to review"
        is ``ws.counts`` (app.ops.status.workspace_counts), the Review tab's count."""
        self.title.setText(ws.name)
        by_side = {c.side: c for c in ws.connections}
        self._set_chip(self.crm_chip, ws.crm, by_side.get("crm"))
        self._set_chip(self.acct_chip, ws.accounting, by_side.get("accounting"))
        self.linked_tile.set_value(linked)
        self.held_tile.set_value(held, attention=held > 0)
        self.review_tile.set_value(ws.to_review, attention=ws.to_review > 0)
        self.budget.setText("   ·   ".join(ws.budget))
        self.budget.setVisible(bool(ws.budget))
        crm, ledger = text.provider_label(ws.crm), text.provider_label(ws.accounting)
        self.sync_button.setToolTip(f"Send new and changed customers between {crm} and {ledger} now")
        run = ws.last_run
        if run is None:
            self.last_sync.setText("Not synced yet. Sync now reads both sides and links what matches.")
        else:
            when = text.format_when(run.started_at, self._now())
            self.last_sync.setText(f"Last sync: {when} · {text.run_status_label(run.status)}")

    def _set_chip(self, chip: ElidedLabel, provider: str, conn: ConnectionInfo | None) -> None:
        label = text.provider_label(provider)
        if conn is None:
            chip.setText(f"{label} · not connected")
            chip.setProperty("state", "reconnect")
            chip.setToolTip(f"Connect {label} to this workspace before syncing.")
        else:
            company = conn.label or "connected"
            sandbox = " (demo sandbox)" if text.is_sandbox(conn.base_url) else ""
            needs = " · reconnect needed" if conn.status == "reconnect" else ""
            chip.setText(f"{label} · {company}{sandbox}{needs}")
            chip.setProperty("state", conn.status)
            chip.setToolTip(f"{label}: {company}{sandbox}{needs}\n{conn.base_url}")
        _restyle(chip)

    def set_run(self, state: RunState | None) -> None:
        """Show a run of this workspace (or none): the button, the stage, the bar, Cancel."""
        running = state is not None
        self.progress_row.setVisible(running)
        self.sync_button.setEnabled(not running)
        self.sync_button.setText("Syncing…" if running else "Sync now")
        if state is None:
            return
        if state.cancelling:
            self.stage.setText("Cancelling after the current batch…")
            self.cancel_button.setEnabled(False)
        else:
            self.stage.setText(text.progress_text(state.stage))
            self.cancel_button.setEnabled(True)
        self.count.setText(state.count_text)
        if state.total > 0:
            # QProgressBar repaints at once when its value moves a pixel; with updates paused around the
            # change it is drawn with the count's text in the window's next paint instead.
            self.progress.setUpdatesEnabled(False)
            self.progress.setRange(0, state.total)
            self.progress.setValue(min(state.done, state.total))
            self.progress.setUpdatesEnabled(True)
        else:
            self.progress.setRange(0, 0)  # busy until the first count arrives
