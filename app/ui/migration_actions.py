"""Workspace › Migrate existing records…: the menu entry and the button under a workspace's name.

The wizard itself (app/ui/migration_wizard.py) is imported when it is first opened, not when the
window starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtGui import QAction

from app.connectors.tokens import TokenStore
from app.store.db import Store
from app.ui.text import Notice

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow
    from app.ui.migration_wizard import MigrationWizard
    from app.wizard.migration_flow import Connectors


class MigrationActions(QObject):
    """Workspace › Migrate existing records…, for the main window."""

    notice = Signal(object)

    def __init__(self, window: MainWindow, store: Store, tokens: TokenStore, pool: QThreadPool | None = None,
                 connectors: Connectors | None = None) -> None:
        super().__init__(window)
        self.window, self.store, self.tokens, self.pool = window, store, tokens, pool
        self.connectors = connectors  # tests: connectors over in-process sandboxes
        self.wizard: MigrationWizard | None = None
        menu = window.workspace_actions.menu
        actions = menu.actions()
        rename = actions.index(window.workspace_actions.rename_action)
        self.action = QAction("Mi&grate existing records…", self)
        menu.insertAction(actions[rename - 1] if rename else actions[rename], self.action)
        self.action.setToolTip("Bring the customers already on both sides to one clean list, once, before syncing")
        self.action.triggered.connect(self.open_wizard)
        window.page.migrate_clicked.connect(self.open_wizard)  # the button under the workspace's name
        menu.aboutToShow.connect(self._update)
        self.notice.connect(window.workspace_actions.notice)

    def _update(self) -> None:
        self.action.setEnabled(self.window.page.workspace is not None
                               and self.window.stack.currentWidget() is self.window.page)

    def open_wizard(self) -> MigrationWizard | None:
        ws = self.window.page.workspace
        if ws is None:
            return None
        if self.window.sync.is_running(ws.id):
            self.notice.emit(Notice("warning", "A sync is running",
                                    f"Start the migration of “{ws.name}” when its sync has finished."))
            return None
        from app.ui.migration_wizard import MigrationWizard

        wizard = MigrationWizard(self.store, self.tokens, ws.name, connectors=self.connectors, pool=self.pool,
                                 parent=self.window)
        wizard.migrated.connect(self._migrated)
        wizard.rejected.connect(lambda: self._stopped(wizard))
        self.wizard = wizard
        wizard.open()
        return wizard

    def _migrated(self, name: str) -> None:
        self.window.reload()
        self.notice.emit(Notice("success", f"The migration of “{name}” is done",
                                "Possible matches left for later are on the Review tab, and records that were not "
                                "valid are under Held back. From now on Sync now keeps both sides in step."))

    def _stopped(self, wizard: MigrationWizard) -> None:
        if wizard.mf.applied is not None or getattr(wizard.page_for("apply"), "running", False):
            self.notice.emit(Notice("info", "The migration is paused",
                                    f"What is done so far is saved. Open Workspace › Migrate existing records… to "
                                    f"continue the migration of “{wizard.workspace}”."))
