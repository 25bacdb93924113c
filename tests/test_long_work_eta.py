"""Long work says "n of N" and the time left, redrawn every second, and can be cancelled: Sync now in
the window's header, and the migration wizard's apply. A fake clock sets the pace; nothing waits on
the wall clock (the worker thread is driven step by step through a queue)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QThreadPool

from app.connectors.tokens import MemoryTokenStore
from app.domain.clock import FakeClock
from app.ops.workspaces import add_workspace
from app.store.db import Store
from app.sync.engine import RunResult
from app.ui.app import make_application
from app.ui.header import WorkspaceHeader
from app.ui.sync_controller import SyncController
from tests.test_migration_wizard import qapp_themed, sides  # noqa: F401 - fixtures

LONG = 60_000  # ms: a state that comes on its own; only a broken run takes this long

Step = tuple[str, int, int] | None


class SteppedSync:
    """Stands in for run_sync on the pool thread: reports each step the test puts on its queue, and
    returns when the test puts None or the run is cancelled."""

    def __init__(self) -> None:
        self.steps: queue.Queue[Step] = queue.Queue()
        self.cancelled = threading.Event()

    def __call__(self, store: Store, tokens: object, name: str, *, trigger: str = "manual",
                 progress: Callable[[str, int, int], None] | None = None,
                 cancel: threading.Event | None = None) -> RunResult:
        assert progress is not None and cancel is not None
        while True:
            try:
                step = self.steps.get(timeout=0.05)
            except queue.Empty:
                if cancel.is_set():
                    self.cancelled.set()
                    return RunResult(1, name, "cancelled", False, {})
                continue
            if step is None:
                return RunResult(1, name, "ok", False, {"created": 1000})
            progress(*step)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'crossledger.db'}")
    add_workspace(store, "Acme Books", "hubspot", "quickbooks")
    yield store
    store.dispose()


def test_sync_now_shows_n_of_n_and_the_time_left_every_second_and_cancels(qtbot, store) -> None:
    import datetime as dt

    make_application()
    clock = FakeClock(dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC))
    sync = SteppedSync()
    controller = SyncController(store, MemoryTokenStore(), sync=sync, pool=QThreadPool(), clock=clock.monotonic)
    header = WorkspaceHeader(now=clock.now)
    qtbot.addWidget(header)
    header.show()
    ws_id = 1
    controller.progressed.connect(lambda wid: header.set_run(controller.state(wid)))
    controller.started.connect(lambda wid: header.set_run(controller.state(wid)))
    controller.finished.connect(lambda wid, _notice: header.set_run(None))
    header.cancel_clicked.connect(lambda: controller.cancel(ws_id))

    assert controller.start(ws_id, "Acme Books")
    try:
        assert header.progress_row.isVisibleTo(header) and header.count.text() == ""
        sync.steps.put(("Reading company records from the CRM", 1, 3))  # steps, not records: no count
        qtbot.waitUntil(lambda: header.stage.text() == "Reading company records from the CRM…", timeout=LONG)
        assert header.count.text() == ""
        sync.steps.put(("Creating customers in the ledger", 100, 1000))
        qtbot.waitUntil(lambda: header.count.text() == "100 of 1,000", timeout=LONG)  # no pace yet
        clock.advance(10)
        sync.steps.put(("Creating customers in the ledger", 300, 1000))  # 200 in 10 s: 700 left take 35 s
        qtbot.waitUntil(lambda: header.count.text().startswith("300 of"), timeout=LONG)
        assert header.count.text() == "300 of 1,000 · about 35 seconds left"
        assert header.progress.maximum() == 1000 and header.progress.value() == 300

        # Nothing new for a while: the time left is redrawn every second all the same, and grows
        assert controller.ticker.isActive() and controller.ticker.interval() <= 1000
        clock.advance(50)
        controller.ticker.timeout.emit()
        assert header.count.text() == "300 of 1,000 · about 4 min left"  # 200 in 60 s: 700 left take 210 s

        # Cancel: the run stops after its current step; the header says so, then goes back to Sync now
        with qtbot.waitSignal(controller.finished, timeout=LONG):
            header.cancel_button.click()
            assert header.stage.text() == "Cancelling after the current batch…"
            assert not header.cancel_button.isEnabled()
        assert sync.cancelled.is_set()
        assert not header.progress_row.isVisibleTo(header) and header.sync_button.text() == "Sync now"
        assert not controller.ticker.isActive()
    finally:  # a failed check must not leave the run waiting on its queue for ever
        controller.cancel(ws_id)
        assert controller.shutdown(10000)


def test_the_migration_apply_shows_n_of_n_and_the_time_left_every_second(qtbot, qapp_themed, sides) -> None:  # noqa: F811
    from app.ui.migration_wizard import MigrationWizard

    now = [500.0]
    wizard = MigrationWizard(sides.store, None, sides.name, connectors=sides.connectors, clock=lambda: now[0])
    qtbot.addWidget(wizard)
    apply = wizard.page_for("apply")
    assert apply.ticker.interval() <= 1000
    apply.pace.restart()
    # What the apply reports from its pool thread, in the order it does
    apply._progress("Applying the plan: about 9 minutes at the providers' limits", 0, 1)
    assert apply.eta.text() == "About 9 minutes at the providers' limits."  # the estimate, until counting starts
    apply._progress("Creating customers in QuickBooks Online (about 9 min left)", 50, 2000)
    assert apply.done_text.text() == "50 of 2,000 records done"
    now[0] += 30
    apply._progress("Creating customers in QuickBooks Online (about 9 min left)", 350, 2000)
    assert apply.done_text.text() == "350 of 2,000 records done"
    assert apply.eta.text() == "About 3 min left."  # 300 in 30 s: 1,650 left take 165 s
    assert apply.stage.text() == "Creating customers in QuickBooks Online…"
    now[0] += 90  # a slow batch: the second's redraw says the new pace without waiting for it
    apply.ticker.timeout.emit()
    assert apply.eta.text() == "About 11 min left."  # 300 in 120 s: 1,650 left take 660 s
    wizard.reject()
