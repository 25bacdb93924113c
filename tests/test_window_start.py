"""The app's start (run_gui): the window paints first, then shows the real workspaces, then starts the
scheduler and the tray. What the first paint shows must never be a number or "None yet" not yet read."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from app.connectors.tokens import MemoryTokenStore
from app.ops.workspaces import add_workspace
from app.sched import jobs
from app.store.db import Store
from app.ui.app import make_application, run_gui
from app.ui.main_window import MainWindow

NAMES = ["Acme Books", "Birch & Co", "Cedar Studio"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(f"sqlite:///{tmp_path}/t.db")
    for name, crm, acct in zip(NAMES, ("hubspot", "pipedrive", "salesforce"), ("quickbooks", "xero", "zohobooks"),
                               strict=True):
        add_workspace(st, name, crm, acct)
    yield st
    st.dispose()


def _window_of(obj: QObject) -> MainWindow | None:
    window = obj.window() if isinstance(obj, QWidget) else None
    return window if isinstance(window, MainWindow) else None


def test_first_paint_then_the_workspaces_then_the_scheduler_and_tray(store: Store, tmp_path: Path) -> None:
    from app.ui.tray import TrayController

    app = make_application()
    jobs.install(None)  # a scheduler an earlier test left installed is not this window's
    first: dict[str, object] = {}
    after: dict[str, object] = {}

    class FirstPaint(QObject):
        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            window = _window_of(obj)
            if not first and window is not None and event.type() == QEvent.Type.Paint:
                first.update(loaded=window.is_loaded, rows=window.list_model.rowCount(),
                             content=window.stack.currentWidget(), opening=window.opening,
                             sidebar_note=window.sidebar.none_yet.text(),
                             note_shown=not window.sidebar.none_yet.isHidden(),
                             scheduler=jobs._context is not None)
            return False

    spy = FirstPaint()
    app.installEventFilter(spy)

    def look_and_quit(tries: int = 0) -> None:
        window = next((w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()),
                      None)
        trays = app.findChildren(TrayController)
        if (window is None or jobs._context is None or not trays) and tries < 1500:
            QTimer.singleShot(20, lambda: look_and_quit(tries + 1))
            return
        assert window is not None
        model = window.list_model
        after.update(names=[model.item(r).name for r in range(model.rowCount())],
                     page=window.page.workspace.name if window.page.workspace else None,
                     content_is_page=window.stack.currentWidget() is window.page,
                     tabs=[window.page.tabs.tabText(i).split("  ")[0] for i in range(window.page.tabs.count())],
                     scheduler=jobs._context is not None, trays=len(trays),
                     settings=window.on_settings is not None)
        window.quit_app()

    QTimer.singleShot(0, look_and_quit)
    try:
        assert run_gui(store=store, home=tmp_path, tokens=MemoryTokenStore()) == 0
    finally:
        app.removeEventFilter(spy)

    # The first paint: the window, saying it is opening; no list, no counts, no "None yet", no scheduler yet
    assert first["loaded"] is False and first["rows"] == 0
    assert first["content"] is first["opening"]
    assert first["sidebar_note"] == "Opening…" and first["note_shown"] is True
    assert first["scheduler"] is False
    # Then the real workspaces, the first one's page with all its tabs, and the scheduler and tray behind them
    assert after["names"] == NAMES
    assert after["page"] == "Acme Books" and after["content_is_page"] is True
    assert after["tabs"] == ["Linked records", "Held back", "Reconcile", "Review", "Activity"]
    assert after["scheduler"] is True and after["trays"] >= 1 and after["settings"] is True
    with store.session() as s:
        from sqlalchemy import text as sql
        job_ids = {r[0] for r in s.execute(sql("select id from apscheduler_jobs"))}
    assert {j for j in job_ids if j.startswith("realtime:")}, job_ids  # the workspaces are scheduled


def test_a_window_made_without_loading_shows_nothing_read_until_reload(store: Store, qtbot) -> None:
    """The workspaces at reload; the page's Reconcile, Review and Activity tabs at add_pages, showing the
    selected workspace, and wired: Review's "Apply now" still starts Sync now."""
    window = MainWindow(store, MemoryTokenStore(), load=False)
    qtbot.addWidget(window)
    assert window.stack.currentWidget() is window.opening and window.list_model.rowCount() == 0
    assert window.page.tabs.count() == 2 and not window.page.has_pages
    started: list[int] = []
    window.sync.start = lambda wid, name, **kw: started.append(wid)  # type: ignore[method-assign]
    with qtbot.waitSignal(window.loaded, timeout=30_000):
        window.reload()
    assert [window.list_model.item(r).name for r in range(window.list_model.rowCount())] == NAMES
    assert window.sidebar.none_yet.isHidden() and window.stack.currentWidget() is window.page
    assert window.page.workspace is not None and window.page.workspace.name == "Acme Books"
    assert window.page.tabs.count() == 2
    window.add_pages()
    assert window.page.tabs.count() == 5
    assert window.page.reconcile.workspace == "Acme Books"  # the new tabs show the selected workspace
    window.page.review.apply_now_clicked.emit()
    assert started == [window.page.workspace_id]
    window.reload()  # again, and add_pages again: the tabs are not made twice
    window.add_pages()
    assert window.page.tabs.count() == 5
    window.shutdown()


def test_the_start_goes_on_when_nothing_paints(qtbot) -> None:
    """A window opened minimized (or on another desktop) may not paint at once: the workspaces are read and
    the scheduler started all the same, a moment later."""
    from app.ui.app import _AfterFirstPaint

    owner = QObject()
    called: list[str] = []
    step = _AfterFirstPaint(owner, lambda: called.append("started"), latest_ms=0)
    qtbot.waitUntil(lambda: called == ["started"], timeout=10_000)
    step.cancel()  # after it ran: nothing more
    assert called == ["started"]
