"""Start the window: ``run_gui`` is what ``crossledger`` and ``crossledger gui`` call.

The window is painted first, saying "Opening your client workspaces…"; just after that first paint it
reads the workspaces and shows them with the selected one's tables; after that paint come the Reconcile,
Review and Activity tabs, and only then are the scheduler (APScheduler with its SQLAlchemy job store) and
the tray made and started, so none of that delays the first paint or the workspaces.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from app import __version__
from app.connectors.tokens import KeyringTokenStore, TokenStore
from app.store.db import Store
from app.ui.main_window import MainWindow
from app.ui.resources import icon
from app.ui.single_instance import SingleInstance, bring_to_front, instance_key
from app.ui.theme import apply_theme

if TYPE_CHECKING:
    from app.sched.service import Scheduler


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication, themed; reuses one that already exists (tests)."""
    # While a sync's worker thread runs Python, the window waits for the GIL each time it needs Python (a
    # timer, a slot, a model's data() for each cell it paints) up to the switch interval, 5 ms by default:
    # a repaint just after Sync now waited several of those in a row (80-120 ms stalls in 3 runs of 10).
    # At 1 ms those waits stay short; the worker loses little to the more frequent hand-overs.
    sys.setswitchinterval(0.001)
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Crossledger")
    app.setApplicationDisplayName("Crossledger")
    app.setOrganizationName("Crossledger")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("crossledger")
    app.setWindowIcon(icon("crossledger"))
    apply_theme(app)
    return app


def _settings_dialog(window: MainWindow, store: Store, scheduler: Scheduler) -> None:
    """File › Settings: the per-workspace schedule and notification settings in a dialog."""
    from PySide6.QtWidgets import QDialog, QVBoxLayout

    from app.ui.settings_page import SettingsPage

    dialog = QDialog(window)
    dialog.setWindowTitle("Settings — Crossledger")
    dialog.resize(720, 620)
    page = SettingsPage(store, scheduler, parent=dialog)
    selected = window.page.workspace
    if selected is not None:
        page.select(selected.name)
    layout = QVBoxLayout(dialog)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(page)
    page.saved.connect(lambda _name: window.reload())
    dialog.exec()


def window_scheduler(window: MainWindow, store: Store, tokens: TokenStore,
                     runners: dict[str, Callable[..., Any]] | None = None) -> Scheduler:
    """The scheduler of the window's process. Its jobs end on the scheduler's threads; the window's
    ``scheduled_job_done`` signal carries each end to the UI thread, so the header and the list show
    the new "Last sync" and counts after a scheduled run too, not only after Sync now."""

    from app.sched import jobs
    from app.sched.service import Scheduler

    def tell(kind: str, workspace: str, _what: object) -> None:
        with contextlib.suppress(RuntimeError):  # the window is gone: the app is quitting
            window.scheduled_job_done.emit(kind, workspace)

    return Scheduler(store, jobs.Context(store, tokens, on_result=tell, on_error=tell, runners=dict(runners or {})))


class _AfterFirstPaint(QObject):
    """Calls ``then`` once, just after ``window``'s next paint (its first, when it is being shown), or
    ``latest_ms`` after it was asked if the window is not on screen (opened minimized, on another desktop)
    and will not paint; on screen, it waits for the paint, at most ten times as long."""

    def __init__(self, window: QObject, then: Callable[[], None], latest_ms: int = 1500) -> None:
        super().__init__(window)
        self.window = window
        self.then: Callable[[], None] | None = then
        self.painted = False
        self.looks_left = 10
        app = QApplication.instance()
        assert app is not None
        self.app: QCoreApplication = app
        self.app.installEventFilter(self)  # the first paint may be any child's
        self.latest_ms = latest_ms
        QTimer.singleShot(latest_ms, self, self._no_paint)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not self.painted and event.type() == QEvent.Type.Paint:
            self.painted = True
            self.app.removeEventFilter(self)
            QTimer.singleShot(0, self, self._run)  # after this paint has reached the screen
        return False

    def _no_paint(self) -> None:
        if self.painted:
            return
        handle = self.window.windowHandle() if isinstance(self.window, QWidget) else None
        self.looks_left -= 1
        if handle is not None and handle.isExposed() and self.looks_left > 0:  # a paint is on its way
            QTimer.singleShot(self.latest_ms, self, self._no_paint)
        else:
            self.painted = True
            self.app.removeEventFilter(self)
            self._run()

    def _run(self) -> None:
        then, self.then = self.then, None
        if then is not None:
            then()

    def cancel(self) -> None:
        """Never call ``then`` (the app quit before that paint): nothing of this start runs later."""
        self.then = None
        self.app.removeEventFilter(self)


def run_gui(store: Store, home: Path | None = None, tokens: TokenStore | None = None,
            *, hidden: bool = False) -> int:
    """Show the main window on ``store`` with the tray and the scheduler; returns the exit code.

    A second start for the same data folder only raises the first window. With a system tray,
    closing the window leaves scheduled syncs running; File › Quit or the tray's Quit ends them.
    ``hidden`` starts in the tray only (used by the log-in autostart entry).
    """
    app = make_application()
    guard = SingleInstance(instance_key(home))
    if not guard.acquire():
        print("Crossledger is already open; its window was brought to the front.")
        return 0
    tokens = tokens if tokens is not None else KeyringTokenStore()
    window = MainWindow(store, tokens, home=home, load=False)
    started: dict[str, Any] = {}
    waiting: list[_AfterFirstPaint] = []  # what is still to run after a paint, cancelled if the app quits first

    def start_background() -> None:
        """The tray and the scheduler: after the first paint (or at once when starting in the tray)."""
        from app.ui.tray import TrayController

        scheduler = started["scheduler"] = window_scheduler(window, store, tokens)
        tray = started["tray"] = TrayController(store, scheduler, lambda: bring_to_front(window), window.quit_app,
                                                tokens=tokens, sync_now=lambda wid, name: window.sync.start(wid, name),
                                                parent=app)
        told = False

        def closed_to_tray() -> None:
            nonlocal told
            if not told:
                told = True
                tray.icon.showMessage("Crossledger is still running",
                                      "Scheduled syncs carry on in the background. To stop them, choose Quit "
                                      "Crossledger in the menu of Crossledger's icon here in the system tray.")

        window.keep_running_in_tray = tray.show()
        window.on_close_to_tray = closed_to_tray
        window.on_settings = lambda: _settings_dialog(window, store, scheduler)
        app.setQuitOnLastWindowClosed(not tray.available)
        window.sync.started.connect(lambda wid: tray.set_running(wid, True))
        window.sync.finished.connect(lambda wid, _notice: tray.set_running(wid, False))
        scheduler.start()

    def stop() -> None:
        if "tray" in started:
            started["tray"].shutdown()
        if "scheduler" in started:
            started["scheduler"].shutdown(wait=False)
        window.shutdown()

    guard.message_received.connect(lambda _m: bring_to_front(window))
    app.aboutToQuit.connect(stop)
    window.resize(1280, 800)

    def after_first_paint() -> None:
        window.reload()  # the workspaces and their statuses, shown at once
        waiting.append(_AfterFirstPaint(window, after_workspaces))  # once they have been painted

    def after_workspaces() -> None:
        window.add_pages()  # the Reconcile, Review and Activity tabs
        waiting.append(_AfterFirstPaint(window, start_background))

    if hidden:
        window.add_pages()
        window.reload()
        start_background()
        if not started["tray"].available:
            window.show()
    else:
        waiting.append(_AfterFirstPaint(window, after_first_paint))
        window.show()
    try:
        return app.exec()
    finally:
        for step in waiting:
            step.cancel()
        if "scheduler" in started and started["scheduler"].scheduler.running:
            stop()
        guard.close()
