"""One small helper to run a function off the UI thread.

The function runs on a QThreadPool thread; its progress, result and failure come back as
queued signals, so the callbacks always run on the UI thread and may touch widgets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QCoreApplication, QObject, QThreadPool, Signal, Slot

T = TypeVar("T")
ProgressFn = Callable[[str, int, int], None]


class _Relay(QObject):
    """Lives on the UI thread; emitted from the pool thread, so its connections are queued."""

    progressed = Signal(str, int, int)
    succeeded = Signal(object)
    failed = Signal(object)


def _work(fn: Callable[[ProgressFn], Any], relay: _Relay) -> None:
    """What the pool thread runs. The relay belongs to the application, not to the job, and its deletion is
    the last thing asked here: the UI thread deletes it after the outcome is delivered, so neither a job
    deleted meanwhile (a dialog closed, ``deleteLater`` after the result) nor Python dropping a reference can
    delete a Qt object this thread is still emitting from. (Under load a job deleted while its pool thread was
    still inside ``emit`` crashed the process.)"""
    try:
        try:
            result = fn(relay.progressed.emit)
        except Exception as exc:  # noqa: BLE001 - handed to the failure callback on the UI thread
            relay.failed.emit(exc)
        else:
            relay.succeeded.emit(result)
    finally:
        relay.deleteLater()


class BackgroundJob(QObject, Generic[T]):
    """``fn(progress)`` on a pool thread; ``on_success(result)`` or ``on_failure(exc)`` on the UI thread.

    The pool runs a plain callable (Qt owns the task it wraps it in), so no Python-made ``QRunnable`` can be
    freed while a pool thread runs it; the job may be deleted at any time, its outcome then goes nowhere."""

    done = Signal()

    def __init__(
        self,
        fn: Callable[[ProgressFn], T],
        *,
        on_success: Callable[[T], None],
        on_failure: Callable[[Exception], None],
        on_progress: ProgressFn | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._on_success = on_success
        self._on_failure = on_failure
        self._on_progress = on_progress
        self._fn: Callable[[ProgressFn], T] | None = fn
        self.running = False

    def start(self, pool: QThreadPool) -> None:
        fn, self._fn = self._fn, None  # the pool thread's closure holds the work from here
        if fn is None:
            raise RuntimeError("a background job runs once")
        relay = _Relay(QCoreApplication.instance())  # owned by the application until the pool thread lets go
        relay.progressed.connect(self._progressed)
        relay.succeeded.connect(self._succeeded)
        relay.failed.connect(self._failed)
        self.running = True
        pool.start(lambda: _work(fn, relay))

    def dispose(self) -> None:
        """Delete this job when control is back in the event loop, after leaving its parent.

        A job is disposed of from its own callback, and its parent may then be deleted at once (a dialog
        Python frees when its last reference goes). Had the job stayed a child, the parent would delete it
        and the posted deletion would later delete it a second time: under load that crashed a test worker
        (``QObject::~QObject`` on freed memory, seen under gdb). Without a parent only the posted deletion
        deletes it."""
        self.setParent(None)
        self.deleteLater()

    @Slot(str, int, int)
    def _progressed(self, stage: str, done: int, total: int) -> None:
        if self._on_progress is not None and self.running:
            self._on_progress(stage, done, total)

    @Slot(object)
    def _succeeded(self, result: T) -> None:
        self.running = False
        try:
            self._on_success(result)
        finally:
            self.done.emit()

    @Slot(object)
    def _failed(self, exc: Exception) -> None:
        self.running = False
        try:
            self._on_failure(exc)
        finally:
            self.done.emit()


class WriteQueues(QObject):
    """One worker per workspace for the window's database writes: a pool of one thread each, so two
    writes to one workspace (a release, a saved choice, an undo) run one after the other, in the order
    asked, never at once; writes to different workspaces do not wait for each other."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pools: dict[int, QThreadPool] = {}

    def pool(self, workspace_id: int) -> QThreadPool:
        pool = self._pools.get(workspace_id)
        if pool is None:
            pool = QThreadPool(self)
            pool.setMaxThreadCount(1)
            self._pools[workspace_id] = pool
        return pool

    def run(self, workspace_id: int, fn: Callable[[ProgressFn], T], *, on_success: Callable[[T], None],
            on_failure: Callable[[Exception], None], parent: QObject | None = None) -> BackgroundJob[T]:
        """``fn`` on the workspace's worker, after the writes queued before it."""
        job: BackgroundJob[T] = BackgroundJob(fn, on_success=on_success, on_failure=on_failure,
                                              parent=parent or self)
        job.done.connect(job.dispose)
        job.start(self.pool(workspace_id))
        return job

    def wait(self, timeout_ms: int = 15000) -> bool:
        """Wait for every queued write (the window closing)."""
        return all(pool.waitForDone(timeout_ms) for pool in self._pools.values())
