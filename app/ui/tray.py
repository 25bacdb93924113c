"""The system tray: an icon that says how syncing goes, a menu rebuilt each time it opens, and
notifications for what needs a person.

Scheduled jobs run on APScheduler's worker threads. Their callbacks only emit signals of
``SchedulerEvents``, connected with queued connections, so every reaction (icon, menu, message)
runs on the UI thread. What to show is decided by the Qt-free functions of ``tray_state``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from apscheduler.schedulers.base import STATE_PAUSED
from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QFont, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon
from sqlalchemy.exc import SQLAlchemyError

from app.domain.clock import SYSTEM_CLOCK, Clock
from app.domain.settings import WorkspaceSettings
from app.ops import status
from app.ops.reconcile_month import ReconcileResult
from app.ops.status import WorkspaceStatus
from app.ops.workspace_settings import readable_settings
from app.sched.service import Scheduler
from app.store.db import Store
from app.sync.engine import Busy, RunResult
from app.ui import text, tray_state
from app.ui.resources import icon
from app.ui.tray_state import NO_TRAY_REASON, Expiring, Message, TrayState, state_for
from app.ui.workers import BackgroundJob

__all__ = ["NO_TRAY_REASON", "SchedulerEvents", "TrayController", "describe_menu", "state_for", "tray_icon"]

log = logging.getLogger("crossledger.ui.tray")

REFRESH_MS = 60_000  # relative times ("today 14:02") and next runs stay current
EXPIRY_CHECK_MS = 6 * 3600_000
FIRST_EXPIRY_CHECK_MS = 15_000  # not at the very start: the window and the first sync come first
SUBMENU_AFTER = 3  # more workspaces than this: one submenu each instead of sections
MESSAGE_MS = 15_000

_MESSAGE_ICONS = {
    "error": QSystemTrayIcon.MessageIcon.Critical,
    "warning": QSystemTrayIcon.MessageIcon.Warning,
    "info": QSystemTrayIcon.MessageIcon.Information,
    "success": QSystemTrayIcon.MessageIcon.Information,
}

_ICONS: dict[str, QIcon] = {}


def tray_icon(state: TrayState) -> QIcon:
    """``resources/icons/tray-<state>.svg``, drawn to read at 16-22 px on light and dark panels."""
    if state not in _ICONS:
        _ICONS[state] = icon(f"tray-{state}")
    return _ICONS[state]


class SchedulerEvents(QObject):
    """The scheduler's thread callbacks as signals. Emitted on worker threads; connect with
    ``Qt.QueuedConnection`` so slots run on the receiver's (UI) thread."""

    job_started = Signal(str, int)  # job id ("realtime:3"), run times submitted
    job_ended = Signal(str)  # job id
    run_finished = Signal(str, str, object)  # kind, workspace name, result
    run_failed = Signal(str, str, object)  # kind, workspace name, exception

    _MASK = EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._scheduler: Scheduler | None = None
        self._previous: tuple[Callable[..., None], Callable[..., None]] | None = None

    def attach(self, scheduler: Scheduler) -> None:
        """Chain onto the job context's callbacks (keeping the ones already there) and listen for
        job starts and ends."""
        ctx = scheduler.context
        prev_result, prev_error = ctx.on_result, ctx.on_error
        self._previous = (prev_result, prev_error)

        def on_result(kind: str, workspace: str, result: Any) -> None:
            try:
                prev_result(kind, workspace, result)
            finally:
                self._emit(self.run_finished, kind, workspace, result)

        def on_error(kind: str, workspace: str, exc: BaseException) -> None:
            try:
                prev_error(kind, workspace, exc)
            finally:
                self._emit(self.run_failed, kind, workspace, exc)

        ctx.on_result, ctx.on_error = on_result, on_error
        scheduler.scheduler.add_listener(self._on_event, self._MASK)
        self._scheduler = scheduler

    def detach(self) -> None:
        if self._scheduler is None:
            return
        if self._previous is not None:
            self._scheduler.context.on_result, self._scheduler.context.on_error = self._previous
        self._scheduler.scheduler.remove_listener(self._on_event)
        self._scheduler = None

    def _on_event(self, event: JobEvent) -> None:  # a scheduler or executor thread
        if event.code == EVENT_JOB_SUBMITTED:
            self._emit(self.job_started, event.job_id, len(getattr(event, "scheduled_run_times", None) or [1]))
        else:
            self._emit(self.job_ended, event.job_id)

    @staticmethod
    def _emit(signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the receiver was deleted while the app quits; nobody left to tell
            log.debug("tray gone; dropped %s", args)


class TrayController(QObject):
    """The tray icon, its menu and its notifications, over a store and a running ``Scheduler``.

    ``open_window()`` shows and raises the main window; ``quit_app()`` ends the application.
    ``sync_now(workspace_id, name)`` starts a run (default: the scheduler's ``run_now``, which is
    refused while the workspace is paused). ``clock`` (the scheduler's by default) dates the menu's
    lines and the once-a-day reminders. Without a system tray ``available`` is False and
    ``reason`` says so in words the window can show; notifications are then only emitted as
    ``notified`` for the window to display.
    """

    notified = Signal(str, str, str)  # title, body, level
    state_changed = Signal(str)

    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        open_window: Callable[[], None],
        quit_app: Callable[[], None],
        *,
        tokens: Any = None,
        sync_now: Callable[[int, str], None] | None = None,
        clock: Clock | None = None,
        available: bool | None = None,
        pool: QThreadPool | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._scheduler = scheduler
        self._open_window = open_window
        self._quit_app = quit_app
        self._tokens = tokens if tokens is not None else getattr(scheduler.context, "tokens", None)
        self._custom_sync = sync_now
        # the scheduler's clock, by default
        self._clock: Clock = clock if clock is not None else getattr(scheduler, "clock", SYSTEM_CLOCK)
        self._pool = pool or QThreadPool(self)

        self.available = QSystemTrayIcon.isSystemTrayAvailable() if available is None else available
        self.reason = "" if self.available else NO_TRAY_REASON

        self._statuses: list[WorkspaceStatus] = []
        self._settings: dict[str, WorkspaceSettings] = {}
        self._job_runs: Counter[str] = Counter()  # job id -> runs in flight (may dip below 0 briefly)
        self._manual: set[str] = set()  # runs started from the window, reported by set_running
        self._failures: dict[str, str] = {}  # workspace -> what went wrong (a notice title)
        self._waiting: dict[str, int] = {}  # workspace -> records waiting for review, last seen
        self._expiry_told: set[tuple[str, dt.date]] = set()
        self._expiry_job: BackgroundJob[list[Expiring]] | None = None
        self._submenus: list[QMenu] = []
        self.state: TrayState = "idle"
        self._closed = False

        self.menu = QMenu()  # a tray menu has no parent window; this controller keeps it alive
        self.menu.setObjectName("TrayMenu")
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.icon = QSystemTrayIcon(tray_icon("idle"), self)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.icon.messageClicked.connect(self._open)

        self.events = SchedulerEvents(self)
        queued = Qt.ConnectionType.QueuedConnection
        self.events.job_started.connect(self._job_started, queued)
        self.events.job_ended.connect(self._job_ended, queued)
        self.events.run_finished.connect(self._run_finished, queued)
        self.events.run_failed.connect(self._run_failed, queued)
        self.events.attach(scheduler)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._expiry_timer = QTimer(self)
        self._expiry_timer.setInterval(EXPIRY_CHECK_MS)
        self._expiry_timer.timeout.connect(self.check_expiring)
        self.refresh()
        self.rebuild_menu()

    # -- life --------------------------------------------------------------------------------------
    def show(self) -> bool:
        """Show the icon and start the timers; False (and nothing shown) without a system tray."""
        self._refresh_timer.start()
        self._expiry_timer.start()
        QTimer.singleShot(FIRST_EXPIRY_CHECK_MS, self, self.check_expiring)
        if self.available:
            self.icon.show()
        return self.available

    def shutdown(self) -> None:
        """Stop listening to the scheduler and hide the icon (before the scheduler shuts down)."""
        self._closed = True
        self._refresh_timer.stop()
        self._expiry_timer.stop()
        self.events.detach()
        self.icon.hide()
        self._pool.waitForDone(3000)

    # -- what runs ---------------------------------------------------------------------------------
    def everything_paused(self) -> bool:
        return getattr(self._scheduler.scheduler, "state", None) == STATE_PAUSED

    def running_workspaces(self) -> set[str]:
        names = {ws.id: ws.name for ws in self._statuses}
        out = set(self._manual)
        for job_id, n in self._job_runs.items():
            if n > 0:
                wid = job_id.partition(":")[2]
                if wid.isdigit() and int(wid) in names:
                    out.add(names[int(wid)])
        return out

    def set_running(self, workspace: str | int, running: bool) -> None:
        """For runs started elsewhere (the window's Sync now), so the icon shows them too.
        ``workspace`` is a name or an id (``SyncController`` signals carry ids)."""
        name = workspace if isinstance(workspace, str) else next(
            (ws.name for ws in self._statuses if ws.id == workspace), None)
        if name is None:
            return
        if running:
            self._manual.add(name)
        else:
            self._manual.discard(name)
        self.refresh()

    def _paused_names(self) -> set[str]:
        return {name for name, s in self._settings.items() if s.schedule.paused}

    # -- icon and tooltip --------------------------------------------------------------------------
    @Slot()
    def refresh(self) -> None:
        """Re-read every workspace and redraw the icon and tooltip."""
        try:
            self._statuses = status.workspace_statuses(self._store)
            self._settings = readable_settings(self._store)
        except SQLAlchemyError:  # e.g. the database busy with a run's write: what runs is still known here
            log.warning("tray could not read the workspaces; redrawing from the last reading", exc_info=True)
        for ws in self._statuses:  # the baseline: only an increase after a run is news
            self._waiting.setdefault(ws.name, tray_state.waiting_for_review(ws))
        running = self.running_workspaces()
        everything = self.everything_paused()
        paused: bool | set[str] = True if everything else self._paused_names()
        state = state_for(self._statuses, running, paused, failed=self._failures.keys())
        self.icon.setToolTip(tray_state.tooltip(state, self._statuses, running=running, paused=paused,
                                                failed=self._failures.keys(), now=self._clock.now()))
        if state != self.state or self.icon.icon().isNull():
            self.state = state
            self.icon.setIcon(tray_icon(state))
            self.state_changed.emit(state)

    # -- the menu ----------------------------------------------------------------------------------
    @Slot()
    def rebuild_menu(self) -> None:
        """Build the menu from the current state; connected to ``aboutToShow``."""
        self.refresh()
        menu = self.menu
        menu.clear()
        for sub in self._submenus:
            sub.deleteLater()
        self._submenus = []
        running = self.running_workspaces()
        everything = self.everything_paused()
        try:
            jobs = self._scheduler.jobs()
        except SQLAlchemyError:
            log.warning("tray could not read the scheduled jobs", exc_info=True)
            jobs = []
        views = tray_state.workspace_menus(self._statuses, self._settings, jobs, running=running,
                                           everything_paused=everything, failures=self._failures,
                                           now=self._clock.now())

        # First what people reach for most, last Quit, as in Dropbox's and Nextcloud's tray menus.
        menu.setDefaultAction(self._action(menu, "Open Crossledger", "open", self._open))  # bold, like a click
        menu.addSeparator()
        summary = menu.addAction(tray_state.summary_line(self.state, self._statuses, running, self._failures))
        summary.setEnabled(False)
        summary.setObjectName("summary")
        bold = QFont(menu.font())
        bold.setBold(True)
        if views:
            if len(views) > SUBMENU_AFTER:
                menu.addSeparator()
                for view in views:
                    sub = menu.addMenu(tray_icon(view.state), view.name)
                    sub.menuAction().setObjectName(f"workspace:{view.name}")
                    self._submenus.append(sub)
                    self._add_workspace(sub, view, everything)
            else:
                for view in views:
                    section = menu.addSection(view.name)
                    section.setObjectName(f"workspace:{view.name}")
                    section.setFont(bold)
                    self._add_workspace(menu, view, everything)
            menu.addSeparator()
            if everything:
                self._action(menu, "Resume all syncing", "resume-all", self.resume_all)
            else:
                self._action(menu, "Pause all syncing", "pause-all", self.pause_all)
        menu.addSeparator()
        self._action(menu, "Quit Crossledger", "quit", self._quit)

    def _add_workspace(self, menu: QMenu, view: tray_state.WorkspaceMenu, everything: bool) -> None:
        for line, key in ((view.last_run, "last"), (view.next_run, "next"), (view.status, "state")):
            info = menu.addAction(line)
            info.setEnabled(False)
            info.setObjectName(f"{key}:{view.name}")
        sync = self._action(menu, "Sync now", f"sync:{view.name}", partial(self.sync_now, view.id, view.name))
        # The scheduler's run_now would un-pause a paused job, so it is not offered then.
        sync.setEnabled(not view.running and (self._custom_sync is not None or not (view.paused or everything)))
        if view.paused:
            self._action(menu, "Resume syncing", f"resume:{view.name}", partial(self.set_paused, view.name, False))
        else:
            self._action(menu, "Pause syncing", f"pause:{view.name}", partial(self.set_paused, view.name, True))

    def _action(self, menu: QMenu, label: str, name: str, slot: Callable[[], None]) -> QAction:
        action = menu.addAction(label)
        action.setObjectName(name)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    # -- menu actions ------------------------------------------------------------------------------
    def sync_now(self, workspace_id: int, name: str) -> None:
        try:
            if self._custom_sync is not None:
                self._custom_sync(workspace_id, name)
            else:
                self._scheduler.run_now(name)
        except (StopIteration, AttributeError, LookupError, SQLAlchemyError):
            log.warning("could not start a sync of %s from the tray", name, exc_info=True)
        self.refresh()

    def set_paused(self, name: str, paused: bool) -> None:
        try:
            self._scheduler.set_paused(name, paused)
        except (StopIteration, SQLAlchemyError):
            log.warning("could not %s %s from the tray", "pause" if paused else "resume", name, exc_info=True)
        self.refresh()

    def pause_all(self) -> None:
        self._scheduler.pause_all()
        self.refresh()

    def resume_all(self) -> None:
        self._scheduler.resume_all()
        self.refresh()

    def _open(self) -> None:
        self._open_window()

    def _quit(self) -> None:
        self._quit_app()

    @Slot(QSystemTrayIcon.ActivationReason)
    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self._open()

    # -- scheduler events (queued: these run on the UI thread) -------------------------------------
    @Slot(str, int)
    def _job_started(self, job_id: str, runs: int) -> None:
        self._job_runs[job_id] += runs
        self.refresh()

    @Slot(str)
    def _job_ended(self, job_id: str) -> None:
        self._job_runs[job_id] -= 1
        if self._job_runs[job_id] == 0:
            del self._job_runs[job_id]
        self.refresh()

    @Slot(str, str, object)
    def _run_finished(self, kind: str, workspace: str, result: object) -> None:
        if isinstance(result, RunResult):
            if result.status in ("failed", "held"):
                self._failed(workspace, text.notice_for_result(result))
            elif result.status in ("ok", "partial"):
                self._failures.pop(workspace, None)
        elif isinstance(result, ReconcileResult):  # the monthly workbook is written: say so once
            self.notify(workspace, tray_state.reconcile_message(result))
        self.refresh()
        self._check_review(workspace)

    @Slot(str, str, object)
    def _run_failed(self, kind: str, workspace: str, exc: object) -> None:
        if isinstance(exc, Busy):  # another run holds the workspace: nothing failed
            return
        if isinstance(exc, BaseException):
            self._failed(workspace, text.notice_for_error(exc, workspace=workspace))
        self.refresh()

    def _failed(self, workspace: str, notice: text.Notice) -> None:
        before = self._failures.get(workspace)
        self._failures[workspace] = notice.title
        if before != notice.title:  # the first failure, or a new kind of it; not every two minutes
            self.notify(workspace, tray_state.failed_run_message(workspace, notice))

    def _check_review(self, workspace: str) -> None:
        ws = next((w for w in self._statuses if w.name == workspace), None)
        if ws is None:
            return
        waiting = tray_state.waiting_for_review(ws)
        before = self._waiting.get(workspace, 0)
        self._waiting[workspace] = waiting
        if waiting > before:
            self.notify(workspace, tray_state.review_message(workspace, ws.quarantined, ws.to_review,
                                                             ledger=text.provider_label(ws.accounting)))

    # -- sign-ins about to expire ------------------------------------------------------------------
    @Slot()
    def check_expiring(self) -> None:
        """Look for dying sign-ins off the UI thread (the keyring may be slow)."""
        if self._closed or self._tokens is None or (self._expiry_job is not None and self._expiry_job.running):
            return
        store, tokens, now = self._store, self._tokens, self._clock.now().timestamp()
        self._expiry_job = BackgroundJob(
            lambda _progress: tray_state.expiring_connections(store, tokens, now=now),
            on_success=self._expiring_found,
            on_failure=lambda exc: log.warning("could not check sign-ins for expiry: %s", exc),
            parent=self,
        )
        self._expiry_job.start(self._pool)

    def _expiring_found(self, items: list[Expiring]) -> None:
        today = self._clock.now().date()
        for item in items:
            key = (item.connection_id, today)
            if key not in self._expiry_told:
                self._expiry_told.add(key)
                self.notify(item.workspace, tray_state.expiring_message(item))

    # -- notifications -----------------------------------------------------------------------------
    def notifications_on(self, workspace: str) -> bool:
        return self._settings.get(workspace, WorkspaceSettings()).notifications

    def notify(self, workspace: str, message: Message) -> bool:
        """Tell the person, unless they turned notifications off for this workspace."""
        if not self.notifications_on(workspace):
            return False
        self.notified.emit(message.title, message.body, message.level)
        if self.available and self.icon.isVisible() and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(message.title, message.body, _MESSAGE_ICONS[message.level], MESSAGE_MS)
        return True


def describe_menu(menu: QMenu) -> list[dict[str, Any]]:
    """The menu as plain data (tests, the tray probe): text, kind, enabled, and submenus."""
    out: list[dict[str, Any]] = []
    for action in menu.actions():
        entry: dict[str, Any] = {"text": action.text(), "name": action.objectName(), "enabled": action.isEnabled()}
        if action.menu() is not None:
            entry["kind"] = "submenu"
            entry["items"] = describe_menu(action.menu())
        elif action.isSeparator():
            entry["kind"] = "section" if action.text() else "separator"
        else:
            entry["kind"] = "action"
        out.append(entry)
    return out
