"""Add client…, Connect…, Reconnect, Field mapping…, Rename… and Remove… for the main window.

One controller for this area, so the main window only wires it in. Dialogs are opened
window-modal with ``open()`` (never a nested event loop), and every outcome is told in a notice.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QInputDialog, QLineEdit, QMessageBox

from app.connectors import errors as cerr
from app.connectors import registry
from app.connectors.tokens import TokenStore
from app.ops import workspaces
from app.store.db import Store, default_home
from app.ui.text import Notice

if TYPE_CHECKING:
    from app.ui.connect_wizard import ConnectWizard  # the wizards are imported when first opened
    from app.ui.main_window import MainWindow
    from app.ui.mapping_wizard import MappingWizard


def removal_notice(name: str, providers: list[str]) -> Notice:
    """What removing a workspace did, including the keyring."""
    labels = [registry.info(p).label for p in providers]
    if labels:
        signins = " and ".join(labels)
        detail = (f"Its sign-ins to {signins} were deleted from the system keyring. Nothing was deleted in "
                  f"{signins} themselves.")
    else:
        detail = "It had no connections, so there was nothing to delete from the system keyring."
    return Notice("info", f"Removed “{name}”", detail)


class WorkspaceActions(QObject):
    """Owns the wizards and the rename/remove dialogs; ``notice`` carries what happened."""

    notice = Signal(object)  # Notice

    def __init__(self, window: MainWindow, store: Store, tokens: TokenStore, home: Path | None,
                 pool: QThreadPool | None = None, **wizard_kw: Any) -> None:
        super().__init__(window)
        self.window, self.store, self.tokens = window, store, tokens
        self.home = home or default_home()
        self.pool = pool
        self.wizard_kw = wizard_kw  # tests: open_browser, follow, timeout
        self.wizard: ConnectWizard | MappingWizard | None = None
        self.dialog: QInputDialog | QMessageBox | None = None
        self.last_notice: Notice | None = None
        self._build_menu()
        self.notice.connect(self._show)
        window.sidebar.add_clicked.connect(self.add_client)
        window.empty.add_clicked.connect(self.add_client)
        window.page.connect_clicked.connect(self.connect_selected)
        window.page.mapping_clicked.connect(self.mapping_selected)
        window.page.reconnect_clicked.connect(self.reconnect_selected)

    def _show(self, notice: Notice) -> None:
        self.last_notice = notice
        if self.window.stack.currentWidget() is self.window.page:
            self.window.page.show_notice(notice)
        else:
            self.window.statusBar().showMessage(f"{notice.title}. {notice.detail}", 20000)

    def _build_menu(self) -> None:
        bar = self.window.menuBar()
        menu = bar.addMenu("&Workspace")
        help_action = next((a for a in bar.actions() if a.text() == "&Help"), None)
        if help_action is not None:
            bar.insertMenu(help_action, menu)
        self.add_action = self._action(menu, "&Add client…", self.add_client, QKeySequence.StandardKey.New)
        self.connect_action = self._action(menu, "&Connect…", self.connect_selected)
        self.mapping_action = self._action(menu, "Field &mapping…", self.mapping_selected)
        menu.addSeparator()
        self.rename_action = self._action(menu, "Re&name…", self.rename_selected, "F2")
        self.remove_action = self._action(menu, "&Remove…", self.remove_selected)
        menu.aboutToShow.connect(self._update_actions)
        self.menu = menu

    def _action(self, menu: Any, label: str, slot: Any, keys: Any = None) -> QAction:
        action = menu.addAction(label)
        if keys is not None:
            action.setShortcut(keys)
        action.triggered.connect(slot)
        self.window.addAction(action)  # shortcuts work with the menu closed
        return action

    def _update_actions(self) -> None:
        has = self.window.page.workspace is not None and self.window.stack.currentWidget() is self.window.page
        for action in (self.connect_action, self.mapping_action, self.rename_action, self.remove_action):
            action.setEnabled(has)

    def _selected(self) -> str | None:
        ws = self.window.page.workspace
        if ws is None or self.window.stack.currentWidget() is not self.window.page:
            return None
        return ws.name

    # -- wizards ---------------------------------------------------------------------------------------
    def add_client(self) -> ConnectWizard:
        return self._connect_wizard(None, None)

    def connect_selected(self) -> ConnectWizard | None:
        name = self._selected()
        return self._connect_wizard(name, None) if name else None

    def reconnect_selected(self, side: str) -> ConnectWizard | None:
        name = self._selected()
        return self._connect_wizard(name, side) if name else None

    def _connect_wizard(self, name: str | None, side: str | None) -> ConnectWizard:
        from app.ui.connect_wizard import ConnectWizard

        wizard = ConnectWizard(self.store, self.tokens, self.home, workspace=name, reconnect=side, pool=self.pool,
                               parent=self.window, **self.wizard_kw)
        wizard.saved.connect(self._connected)
        self.wizard = wizard
        wizard.open()
        return wizard

    def _connected(self, name: str) -> None:
        ws = workspaces.get_workspace(self.store, name)
        self.window.reload()
        self.window.sidebar.select(ws.id)
        self.notice.emit(Notice("success", f"“{name}” is connected",
                                "The sign-ins are saved in the system keyring. Check Field mapping… if you like, "
                                "then click Sync now."))

    def mapping_selected(self) -> MappingWizard | None:
        name = self._selected()
        if not name:
            return None
        from app.ui.mapping_wizard import MappingWizard

        transport = self.wizard_kw.get("transport")
        wizard = MappingWizard(self.store, self.tokens, name, pool=self.pool, parent=self.window,
                               transport=transport)
        wizard.saved.connect(self._mapped)
        self.wizard = wizard
        wizard.open()
        return wizard

    def _mapped(self, name: str, version: int) -> None:
        self.window.reload()
        self.notice.emit(Notice("success", f"Field mapping saved (version {version})",
                                f"The next sync of “{name}” uses it. Older versions are listed in Field mapping…"))

    # -- rename and remove -----------------------------------------------------------------------------
    def rename_selected(self) -> QInputDialog | None:
        name = self._selected()
        if not name:
            return None
        dialog = QInputDialog(self.window)
        dialog.setWindowTitle("Rename workspace — Crossledger")
        dialog.setLabelText(f"New name for “{name}”:")
        dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
        dialog.setTextValue(name)
        dialog.setOkButtonText("Rename")
        dialog.textValueSelected.connect(lambda new: self._rename(name, new))
        self.dialog = dialog
        dialog.open()
        return dialog

    def _rename(self, old: str, new: str) -> None:
        if self.window.sync.is_running(workspaces.get_workspace(self.store, old).id):
            self.notice.emit(Notice("warning", "A sync is running", f"Rename “{old}” when its sync has finished."))
            return
        try:
            ws = workspaces.rename_workspace(self.store, old, new)
        except workspaces.UserError as exc:
            self.notice.emit(Notice("warning", "The workspace was not renamed", str(exc)))
            return
        self.window.reload()
        self.window.sidebar.select(ws.id)
        if ws.name != old:
            self.notice.emit(Notice("success", f"Renamed to “{ws.name}”",
                                    "Its connections, links, mapping, history and schedule are unchanged."))

    def remove_selected(self) -> QMessageBox | None:
        name = self._selected()
        if not name:
            return None
        ws = workspaces.get_workspace(self.store, name)
        labels = " and ".join(registry.info(p).label for p in (ws.crm, ws.accounting))
        box = QMessageBox(QMessageBox.Icon.Warning, "Remove workspace — Crossledger", f"Remove “{name}”?",
                          QMessageBox.StandardButton.Cancel, self.window)
        box.setInformativeText(
            f"Crossledger forgets this client's links, field mapping, history and schedule, and deletes its "
            f"sign-ins to {labels} from the system keyring. Nothing is deleted in {labels} themselves.")
        remove = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda button: self._remove(name) if button is remove else None)
        self.dialog = box
        box.open()
        return box

    def _remove(self, name: str) -> None:
        ws = workspaces.get_workspace(self.store, name)
        if self.window.sync.is_running(ws.id):
            self.notice.emit(Notice("warning", "A sync is running",
                                    f"Cancel the sync of “{name}” or let it finish, then remove the workspace."))
            return
        try:
            removed = workspaces.remove_workspace(self.store, self.tokens, name)
        except cerr.KeyringUnavailable:
            self.notice.emit(Notice("error", "The workspace was kept",
                                    "Crossledger could not reach the system keyring to delete this client's "
                                    "sign-ins, so nothing was removed. Unlock or start the keyring, then try "
                                    "again."))
            return
        self.window.reload()
        self.notice.emit(removal_notice(name, removed))
