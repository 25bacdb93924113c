"""Sync now: one background run per workspace, its progress ("1,234 of 10,000 · about 2 min left",
redrawn every second), Cancel, and what it ended with."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from app.connectors.tokens import TokenStore
from app.ops.status import workspace_counts
from app.store.db import Store
from app.ui.eta import Clock, Eta
from app.ui.heap import HeapKeeper
from app.ui.text import Notice, notice_for_error, notice_for_result
from app.ui.workers import BackgroundJob, ProgressFn

if TYPE_CHECKING:
    from app.sync.engine import RunResult


class SyncFn(Protocol):
    """The shape of ``app.ops.sync_run.run_sync``; tests pass a fake."""

    def __call__(self, store: Store, tokens: TokenStore, name: str, *, trigger: str = ...,
                 progress: ProgressFn | None = ..., cancel: threading.Event | None = ...) -> RunResult: ...


@dataclass
class RunState:
    """A run in progress, as the header shows it."""

    workspace_id: int
    name: str
    cancel: threading.Event = field(default_factory=threading.Event)
    stage: str = "Starting"
    done: int = 0
    total: int = 0
    job: BackgroundJob[tuple[RunResult, Any]] | None = None
    eta: Eta = field(default_factory=Eta)  # the count and the time left, from the pace of this stage

    @property
    def count_text(self) -> str:
        """'1,234 of 10,000 · about 2 min left' ('' before the first count)."""
        return self.eta.text()

    @property
    def cancelling(self) -> bool:
        return self.cancel.is_set()


PROGRESS_EVERY_MS = 50  # the window draws a run's progress at most this often


class SyncController(QObject):
    """Starts and cancels runs; publishes which workspace changed so views refresh only that one."""

    started = Signal(int)
    progressed = Signal(int)  # also once a second while it runs, so the time left is redrawn
    finished = Signal(int, object)  # workspace id, Notice

    def __init__(self, store: Store, tokens: TokenStore, sync: SyncFn | None = None,
                 pool: QThreadPool | None = None, parent: QObject | None = None,
                 clock: Clock = time.monotonic) -> None:
        super().__init__(parent)
        self._store = store
        self._tokens = tokens
        self._sync = sync
        self._pool = pool or QThreadPool(self)
        self._clock = clock
        self._runs: dict[int, RunState] = {}
        self._notices: dict[int, Notice] = {}
        self.ticker = QTimer(self)  # redraws "about 2 min left" every second, counted or not
        self.ticker.setInterval(1000)
        self.ticker.timeout.connect(self._tick)
        self.heap = HeapKeeper(self)  # full garbage collections held off while runs last (app/ui/heap.py)
        # A run reports every record; the window shows the latest at most every PROGRESS_EVERY_MS. Each
        # report drawn at once cost the window up to a second of a 10,000-record run (a progress bar
        # repaints as soon as its value moves a pixel), and stalled it for up to 150 ms at a time.
        self._unshown: set[int] = set()
        self._coalesce = QTimer(self)
        self._coalesce.setSingleShot(True)
        self._coalesce.setInterval(PROGRESS_EVERY_MS)
        self._coalesce.timeout.connect(self._show_unshown)

    def is_running(self, workspace_id: int) -> bool:
        return workspace_id in self._runs

    def state(self, workspace_id: int) -> RunState | None:
        return self._runs.get(workspace_id)

    def notice(self, workspace_id: int) -> Notice | None:
        return self._notices.get(workspace_id)

    def dismiss(self, workspace_id: int) -> None:
        self._notices.pop(workspace_id, None)

    def start(self, workspace_id: int, name: str, *, allow_mass_change: bool = False) -> bool:
        if workspace_id in self._runs:
            return False
        state = RunState(workspace_id, name, eta=Eta(self._clock))
        extra = {"allow_mass_change": True} if allow_mass_change else {}
        sync = self._sync if self._sync is not None else _run_sync()

        def work(progress: ProgressFn) -> tuple[RunResult, Any]:
            result = sync(self._store, self._tokens, name, trigger="manual", progress=progress,
                          cancel=state.cancel, **extra)
            # The tabs' numbers after the run, counted here on the pool thread: with 10,000 records
            # these queries would hold the window still for a moment on the UI thread.
            return result, workspace_counts(self._store, workspace_id)

        state.job = BackgroundJob(
            work,
            on_success=lambda done: self._end(state, notice_for_result(*done)),
            on_failure=lambda exc: self._end(state, notice_for_error(exc, workspace=name)),
            on_progress=lambda stage, done, total: self._progress(state, stage, done, total),
            parent=self,
        )
        self._runs[workspace_id] = state
        self._notices.pop(workspace_id, None)
        # Python's full garbage collection stops every thread, this window's too; with 10,000 records in
        # memory each pass took up to 1.5 s (bench ui_stall). While runs last, what exists is set aside
        # from those passes (now and at every second's tick); when the last run ends it is handed back
        # once the window is left alone for a moment (app/ui/heap.py).
        self.heap.hold()
        state.job.start(self._pool)
        self.ticker.start()
        self.started.emit(workspace_id)
        return True

    def cancel(self, workspace_id: int) -> None:
        state = self._runs.get(workspace_id)
        if state is not None:
            state.cancel.set()
            self.progressed.emit(workspace_id)

    def shutdown(self, timeout_ms: int = 15000) -> bool:
        """Ask every run to stop and wait for the threads (window closing)."""
        for state in self._runs.values():
            state.cancel.set()
        return self._pool.waitForDone(timeout_ms)

    def _progress(self, state: RunState, stage: str, done: int, total: int) -> None:
        if stage != state.stage:
            state.eta.restart()  # a new stage counts other things at another pace
        state.stage, state.done, state.total = stage, done, total
        if total > 1 and not stage.startswith("Reading"):  # reading counts steps, not records
            state.eta.update(done, total)
        if self._coalesce.isActive():  # shown when the interval is over, with whatever came last
            self._unshown.add(state.workspace_id)
            return
        self.progressed.emit(state.workspace_id)
        self._coalesce.start()

    def _show_unshown(self) -> None:
        unshown, self._unshown = self._unshown, set()
        for workspace_id in unshown:
            if workspace_id in self._runs:
                self.progressed.emit(workspace_id)
        if unshown:
            self._coalesce.start()

    def _tick(self) -> None:
        if not self._runs:
            self.ticker.stop()
            return
        self.heap.hold()
        for workspace_id in list(self._runs):
            self.progressed.emit(workspace_id)

    def _end(self, state: RunState, notice: Notice) -> None:
        self._runs.pop(state.workspace_id, None)
        if not self._runs:
            self.ticker.stop()
            self.heap.release_when_idle()
        self._notices[state.workspace_id] = notice
        if state.job is not None:
            state.job.dispose()
        self.finished.emit(state.workspace_id, notice)


def _run_sync() -> Any:
    """app.ops.sync_run.run_sync, imported at the first Sync now rather than when the window starts."""
    from app.ops.sync_run import run_sync

    return run_sync
