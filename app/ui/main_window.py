"""The main window: wires the workspace list, the workspace page and Sync now together."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QMainWindow, QStackedWidget, QVBoxLayout, QWidget

from app.connectors.tokens import KeyringTokenStore, MemoryTokenStore, TokenStore
from app.ops import changes, status
from app.ops.changes import Changed
from app.ops.status import WorkspaceStatus
from app.store.db import Store
from app.ui import text
from app.ui.accessibility import name_controls
from app.ui.changes import ChangeHub
from app.ui.empty_state import EmptyState
from app.ui.migration_actions import MigrationActions
from app.ui.models import WorkspaceListModel
from app.ui.resources import icon
from app.ui.sync_controller import SyncController, SyncFn
from app.ui.text import Notice
from app.ui.workers import BackgroundJob, WriteQueues
from app.ui.workspace_actions import WorkspaceActions
from app.ui.workspace_list import WorkspaceListPanel
from app.ui.workspace_page import WorkspacePage

if TYPE_CHECKING:
    from app.ops.demo import DemoResult

log = logging.getLogger("crossledger.ui.window")
DemoFn = Callable[..., "DemoResult"]  # app.ops.demo.run_demo(store, tokens, home, progress=...)


def _run_demo(*args: Any, **kwargs: Any) -> DemoResult:
    """app.ops.demo.run_demo, imported when the demo is asked for, not when the window starts."""
    from app.ops.demo import run_demo

    return run_demo(*args, **kwargs)


# What each kind of scheduled job may change (app/sched/jobs.py)
JOB_CHANGES = {"realtime": changes.SYNC, "batch": changes.SYNC, "reconcile": (changes.RECONCILIATIONS,),
               "keepalive": (changes.CONNECTIONS,)}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _opening_panel() -> QWidget:
    """What the content area shows for the moment between the window's first paint and the first read."""
    panel = QWidget()
    note = QLabel("Opening your client workspaces…")
    note.setObjectName("Muted")
    note.setAlignment(Qt.AlignmentFlag.AlignCenter)
    column = QVBoxLayout(panel)
    column.addWidget(note)
    return panel


class MainWindow(QMainWindow):
    # A scheduled job (kind, workspace name) has finished or failed. Emitted from the scheduler's
    # worker thread by the job context's on_result/on_error (app/ui/app.py); queued to the UI thread,
    # where the header and the workspace list re-read "Last sync" and the counts.
    scheduled_job_done = Signal(str, str)
    # The workspaces and the selected one's page have been read and shown (after each reload)
    loaded = Signal()

    def __init__(
        self,
        store: Store,
        tokens: TokenStore,
        *,
        sync: SyncFn | None = None,  # app.ops.sync_run.run_sync unless a test gives another
        pool: QThreadPool | None = None,
        now: Callable[[], dt.datetime] = _utcnow,
        parent: QWidget | None = None,
        home: Path | None = None,
        demo: DemoFn = _run_demo,
        load: bool = True,
    ) -> None:
        """``load=False`` (the app's start, app/ui/app.py): the window is made without reading the store and
        shows "Opening your client workspaces…" until ``reload()``, which run_gui calls just after the
        first paint; the list then fills in, never showing a count or "None yet" before it was read. The
        Reconcile, Review and Activity tabs follow with ``add_pages()``, once the workspaces are painted."""
        super().__init__(parent)
        self.setWindowTitle("Crossledger")
        self.setWindowIcon(icon("crossledger"))
        self.setMinimumSize(1040, 640)
        self._store = store
        self._tokens = tokens
        self._home = home
        self._demo = demo
        self._demo_pool = pool or QThreadPool(self)
        self.demo_job: BackgroundJob | None = None
        self.keep_running_in_tray = False  # set by run_gui when a system tray holds the app
        self.on_close_to_tray: Callable[[], None] | None = None
        self.on_settings: Callable[[], None] | None = None

        self.sync = SyncController(store, tokens, sync, pool, parent=self)
        # What operations changed (app/ops/changes.py), whichever thread or click ran them: the one signal
        # the list and the page refresh from. The window's own writes go through one worker per workspace.
        self.changes = ChangeHub(store, self)
        self.writes = WriteQueues(self)
        # After a change (a run's end, a scheduled job, a saved choice) the workspace's line is read here,
        # off the UI thread; a change told while that read is out is read once more when it is back.
        self._reads = QThreadPool(self)
        self._reads.setMaxThreadCount(1)
        self._reading: set[int] = set()
        self._read_again: dict[int, Changed] = {}
        self.list_model = WorkspaceListModel(self, now=now)
        self.sidebar = WorkspaceListPanel(self.list_model)
        self.page = WorkspacePage(store, now, tokens=tokens, writes=self.writes, pages=load)
        self.empty = EmptyState()
        self.opening = _opening_panel()
        self.stack = QStackedWidget()
        self.stack.setObjectName("Content")
        self.stack.addWidget(self.page)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.opening)

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self.sidebar)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.sidebar.selected.connect(self._workspace_selected)
        self.page.header.sync_clicked.connect(self.sync_selected)
        self.page.header.cancel_clicked.connect(self.cancel_selected)
        self.page.banner.dismissed.connect(lambda: self.sync.dismiss(self.page.workspace_id))
        self.page.banner.action_clicked.connect(self._banner_action)
        self.empty.refresh_clicked.connect(self.reload)
        self.empty.demo_clicked.connect(self.try_demo)
        self.sync.started.connect(self._run_started)
        self.sync.progressed.connect(self._run_progressed)
        self.sync.finished.connect(self._run_finished)
        self.scheduled_job_done.connect(self._scheduled_job_done)
        self.changes.changed.connect(self._changed)
        self._add_actions()
        # Add client…, Connect…, Reconnect, Field mapping…, Rename…, Remove… (app/ui/workspace_actions.py)
        self.workspace_actions = WorkspaceActions(self, store, tokens, home, pool)
        self.migration_actions = MigrationActions(self, store, tokens, pool)  # Migrate existing records…
        self.is_loaded = False
        self._pages_wired = False
        if load:
            self.add_pages()
            self.reload()
        else:
            self.sidebar.set_opening(True)
            self.stack.setCurrentWidget(self.opening)
        # Every control Tab reaches has a name a screen reader says (app/ui/accessibility.py); pages
        # fill in controls as they load, so their new ones are named when they are shown.
        name_controls(self)
        self.page.tabs.currentChanged.connect(lambda _i: name_controls(self.page))

    def _add_actions(self) -> None:
        for label, keys, slot in (
            ("Refresh", QKeySequence.StandardKey.Refresh, self.reload),
            ("Find", QKeySequence.StandardKey.Find, self._focus_search),
        ):
            action = QAction(label, self)
            action.setShortcut(keys)
            action.triggered.connect(slot)
            self.addAction(action)
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.settings_action = file_menu.addAction("&Settings…")
        self.settings_action.setShortcut(QKeySequence.StandardKey.Preferences)
        self.settings_action.triggered.connect(self._open_settings)
        file_menu.addSeparator()
        self.quit_action = file_menu.addAction("&Quit")
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self.quit_app)
        help_menu = bar.addMenu("&Help")
        self.about_action = help_menu.addAction("&About Crossledger")
        self.about_action.triggered.connect(self._about)

    def _open_settings(self) -> None:
        if self.on_settings is not None:
            self.on_settings()

    def _about(self) -> None:
        from app.ui.about import show_about

        show_about(self)

    def quit_app(self) -> None:
        """File › Quit: end the app, even when a tray would keep it running."""
        in_tray, self.keep_running_in_tray = self.keep_running_in_tray, False
        self.close()  # without a tray, closing the last window already ends the app
        app = QApplication.instance()
        if in_tray and app is not None:
            app.quit()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the window keeps scheduled syncs running in the tray, when there is one."""
        if self.keep_running_in_tray:
            event.ignore()
            self.hide()
            if self.on_close_to_tray is not None:
                self.on_close_to_tray()
            return
        super().closeEvent(event)

    # -- loading ---------------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read every workspace (start, F5, Check again), keeping the selection."""
        keep = self.sidebar.current_id()
        items = status.workspace_statuses(self._store)
        self.list_model.set_items(items)
        self.sidebar.set_opening(False)
        for ws in items:
            self.list_model.set_running(ws.id, self.sync.is_running(ws.id))
        if not items:
            self.stack.setCurrentWidget(self.empty)
        else:
            self.stack.setCurrentWidget(self.page)
            if keep != -1 and self.list_model.row_of(keep) is not None:
                self.sidebar.select(keep)
            else:
                self.sidebar.select_first()
        self.is_loaded = True
        self.loaded.emit()

    def add_pages(self) -> None:
        """The page's Reconcile, Review and Activity tabs: at once, or (the app's start) just after the
        workspaces have been painted."""
        if not self._pages_wired:
            self.page.add_pages()
            self.page.review.apply_now_clicked.connect(self.sync_selected)  # Review: apply saved choices now
            self._pages_wired = True
            name_controls(self.page)

    def _workspace_selected(self, workspace_id: int) -> None:
        if workspace_id == -1:
            return
        row = self.list_model.row_of(workspace_id)
        if row is None:
            return
        self.page.load(self.list_model.item(row))
        self.page.show_run(self.sync.state(workspace_id))
        self.page.show_notice(self.sync.notice(workspace_id))

    def _changed(self, what: Changed) -> None:
        """Something changed in the store: re-read that workspace's line in the list, and on its page only
        what ``what`` names (app/ui/workspace_page.py); the list again when workspaces came or went.
        The line is read on a worker thread: after a big run the UI thread only shows what was read."""
        if what.workspace_id is None or what.touches(changes.WORKSPACES):
            self.reload()
            return
        wid = what.workspace_id
        if wid in self._reading:
            before = self._read_again.get(wid)
            self._read_again[wid] = what if before is None else before | what
            return
        self._reading.add(wid)
        store = self._store

        def read(_progress: object) -> WorkspaceStatus | None:
            return next((ws for ws in status.workspace_statuses(store) if ws.id == wid), None)

        def shown(fresh: WorkspaceStatus | None) -> None:
            self._reading.discard(wid)
            again = self._read_again.pop(wid, None)
            if fresh is None:  # removed meanwhile
                self.reload()
            elif self.list_model.row_of(wid) is not None:
                self.list_model.update_item(fresh)
                if self.page.workspace_id == wid:
                    self.page.refresh(fresh, what)
            if again is not None:
                self._changed(again)

        def failed(exc: Exception) -> None:
            log.warning("reading workspace %s after a change failed", wid, exc_info=exc)
            self._reading.discard(wid)
            again = self._read_again.pop(wid, None)
            if again is not None:
                self._changed(again)

        job: BackgroundJob[WorkspaceStatus | None] = BackgroundJob(read, on_success=shown, on_failure=failed,
                                                                   parent=self)
        job.done.connect(job.dispose)
        job.start(self._reads)

    def _scheduled_job_done(self, kind: str, workspace: str) -> None:
        """A scheduled job ended (well or not): what its kind of job may change, as a change record; a sync
        it ran has announced the same already, and the hub folds the two into one refresh."""
        items = (self.list_model.item(row) for row in range(self.list_model.rowCount()))
        ws_id = next((ws.id for ws in items if ws.name == workspace), None)
        self.changes.tell(Changed(ws_id, frozenset(JOB_CHANGES.get(kind, changes.KINDS))))

    # -- the demo, from the empty window ------------------------------------------------------------
    def try_demo(self) -> None:
        """Set up and sync the demo on a worker thread, its progress in the empty window."""
        if self.demo_job is not None and self.demo_job.running:
            return
        from app.ops.sandbox_signin import IN_MEMORY_NOTE, keyring_available
        from app.store.db import default_home

        store, home = self._store, self._home or default_home()
        tokens = self._tokens
        note = None
        if isinstance(tokens, KeyringTokenStore) and not keyring_available():
            tokens, note = MemoryTokenStore(), IN_MEMORY_NOTE  # the sandboxes' sign-ins open nothing else

        def done(result: DemoResult) -> None:
            self.empty.demo_finished()
            self.reload()
            ws = next((self.list_model.item(r) for r in range(self.list_model.rowCount())
                       if self.list_model.item(r).name == result.workspace), None)
            if ws is not None:
                self.sidebar.select(ws.id)
                notice = text.notice_for_result(result.run, status.workspace_counts(store, ws.id))
                detail = (f"A sample {text.provider_label(result.crm)} and {text.provider_label(result.accounting)} "
                          f"were set up on this computer and synced. {notice.detail}")
                self.page.show_notice(Notice(notice.level, "The demo is ready",
                                             detail + (f" {note}" if note else "")))

        def failed(exc: Exception) -> None:
            self.empty.demo_finished(f"The demo could not be set up. {text.notice_for_error(exc).detail}")

        self.empty.demo_started()
        self.demo_job = BackgroundJob(lambda progress: self._demo(store, tokens, home, progress=progress),
                                      on_success=done, on_failure=failed, on_progress=self.empty.demo_progressed,
                                      parent=self)
        self.demo_job.start(self._demo_pool)

    # -- Sync now ------------------------------------------------------------------------------
    def sync_selected(self) -> None:
        ws = self.page.workspace
        if ws is not None:
            self.sync.start(ws.id, ws.name)

    def _banner_action(self, action: str) -> None:
        from app.ui.text import ALLOW_LARGE_CHANGE

        ws = self.page.workspace
        if ws is not None and action == ALLOW_LARGE_CHANGE:
            self.sync.start(ws.id, ws.name, allow_mass_change=True)

    def cancel_selected(self) -> None:
        if self.page.workspace is not None:
            self.sync.cancel(self.page.workspace_id)

    def _run_started(self, workspace_id: int) -> None:
        self.list_model.set_running(workspace_id, True)
        if self.page.workspace_id == workspace_id:
            self.page.show_notice(None)
            self.page.show_run(self.sync.state(workspace_id))

    def _run_progressed(self, workspace_id: int) -> None:
        if self.page.workspace_id == workspace_id:
            self.page.show_run(self.sync.state(workspace_id))

    def _run_finished(self, workspace_id: int, notice: Notice) -> None:
        self.list_model.set_running(workspace_id, False)
        if self.page.workspace_id == workspace_id:
            self.page.show_run(None)
            self.page.show_notice(notice)
        # What the run changed is read again on the event loop's next turn (folded with the run's own
        # record): the button and the notice are drawn first, and the window answers in between.
        QTimer.singleShot(0, self, lambda: self.changes.tell(Changed(workspace_id, frozenset(changes.SYNC))))

    def _focus_search(self) -> None:
        if self.stack.currentWidget() is self.page:
            self.page.tabs.setCurrentIndex(self.page.LINKED_TAB)
            self.page.linked.search.setFocus()
            self.page.linked.search.selectAll()

    def shutdown(self, timeout_ms: int = 15000) -> bool:
        """On quit (not on close: a tray may keep the app running): stop runs after their current batch.

        Their journal makes stopping there safe. True if every worker thread has finished.
        """
        self.changes.stop()
        pages = [self.page.shutdown(timeout_ms), self._demo_pool.waitForDone(timeout_ms),
                 self._reads.waitForDone(timeout_ms)]
        return self.sync.shutdown(timeout_ms) and all(pages)
