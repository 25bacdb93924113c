"""The window's one helper for work off the UI thread (``app.ui.workers.BackgroundJob``): results and
failures come back on the UI thread, and a job deleted while its work still runs (a dialog closed, the
result's own ``deleteLater``) is safe: the outcome goes nowhere and nothing crashes."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QThread, QThreadPool

from app.ui.app import make_application
from app.ui.workers import BackgroundJob


def _flush() -> None:
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()


def test_the_result_and_the_progress_arrive_on_the_ui_thread(qtbot):
    make_application()
    pool, seen = QThreadPool(), []
    ui = QThread.currentThread()

    def work(progress):
        progress("Reading", 1, 2)
        return 42

    job = BackgroundJob(work, on_success=lambda r: seen.append(("ok", r, QThread.currentThread() is ui)),
                        on_failure=lambda e: seen.append(("failed", e)),
                        on_progress=lambda *a: seen.append(("progress", a, QThread.currentThread() is ui)))
    job.start(pool)
    qtbot.waitUntil(lambda: any(s[0] == "ok" for s in seen), timeout=60_000)
    assert seen == [("progress", ("Reading", 1, 2), True), ("ok", 42, True)] and not job.running
    pool.waitForDone(60_000)


def test_a_failure_arrives_as_the_exception(qtbot):
    make_application()
    pool, seen = QThreadPool(), []

    def work(_progress):
        raise ValueError("the ledger said no")

    job = BackgroundJob(work, on_success=seen.append, on_failure=seen.append)
    job.start(pool)
    qtbot.waitUntil(lambda: bool(seen), timeout=60_000)
    assert isinstance(seen[0], ValueError) and str(seen[0]) == "the ledger said no"
    pool.waitForDone(60_000)


def test_a_job_deleted_while_its_work_runs_is_safe_and_says_nothing(qtbot):
    make_application()
    pool, seen = QThreadPool(), []
    go = threading.Event()
    for _ in range(20):  # many times: the deletion lands at different points of the worker's emit
        def work(progress):
            go.wait(30)
            progress("Working", 1, 1)
            return "done"

        job = BackgroundJob(work, on_success=seen.append, on_failure=seen.append,
                            on_progress=lambda *a: seen.append(a))
        job.start(pool)
        job.deleteLater()
        del job
        _flush()
        go.set()
        pool.waitForDone(60_000)
        _flush()
        go.clear()
    assert seen == []


def test_a_job_runs_once(qtbot):
    make_application()
    pool = QThreadPool()
    job = BackgroundJob(lambda _p: 1, on_success=lambda _r: None, on_failure=lambda _e: None)
    job.start(pool)
    with pytest.raises(RuntimeError, match="runs once"):
        job.start(pool)
    pool.waitForDone(60_000)



def test_a_disposed_job_leaves_its_dialog_and_is_deleted_once_by_the_event_loop(qtbot):
    """A dialog disposes of its job from the job's own callback and may then be freed at once (Python drops
    its last reference). The job must not still be the dialog's child then: the dialog would delete it and
    the posted deletion would delete it again (a crashed test worker under load, seen under gdb)."""
    from PySide6.QtWidgets import QDialog

    make_application()
    held, deaths, parents = {"dialog": QDialog()}, [], []

    def done(_result) -> None:  # what a dialog's callback does: dispose of the job, then close
        held["job"].dispose()
        parents.append(held["job"].parent())
        held["dialog"].accept()

    held["job"] = BackgroundJob(lambda _p: 1, on_success=done, on_failure=lambda e: None, parent=held["dialog"])
    held["job"].destroyed.connect(lambda *_: deaths.append("job"))
    held["job"]._succeeded(1)  # the outcome as the UI thread receives it; its deletion is posted, not yet done
    assert parents == [None] and deaths == []
    del held["job"]
    held["dialog"].destroyed.connect(lambda *_: deaths.append("dialog"))
    del held["dialog"]  # freed now, by Python, while the job's deletion is still posted
    assert deaths == ["dialog"]
    _flush()
    assert deaths == ["dialog", "job"]  # deleted once, by the event loop
