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
