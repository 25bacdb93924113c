"""After a run, the heap set aside from Python's full collections is handed back only once the window is
left alone (app/ui/heap.py); a fake clock drives it, the timer is only looked at, never waited on."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QApplication, QWidget

from app.ui.heap import HeapKeeper


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_collects_after_the_run_only_once_the_window_is_left_alone(qapp) -> None:
    clock = Clock()
    keeper = HeapKeeper(idle_ms=2000, latest_ms=60_000, clock=clock)
    widget = QWidget()
    try:
        keeper.hold()  # a run starts
        assert gc.get_freeze_count() > 0
        clock.now += 5
        assert keeper.collect_if_idle() is False  # still running: nothing handed back
        keeper.release_when_idle()  # the last run ended
        clock.now += 1.5
        assert keeper.collect_if_idle() is False and gc.get_freeze_count() > 0  # too soon
        clock.now += 1.0
        QApplication.sendEvent(widget, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Down, Qt.KeyboardModifier.NoModifier))
        clock.now += 1.5  # 2.5 s after the end, but 1.5 s after a key
        assert keeper.collect_if_idle() is False and gc.get_freeze_count() > 0
        clock.now += 0.6
        assert keeper.collect_if_idle() is True
        assert gc.get_freeze_count() == 0 and keeper.collections == 1
        assert keeper.collect_if_idle() is False  # once per run's end
    finally:
        gc.unfreeze()
        widget.deleteLater()


def test_a_busy_user_waits_a_minute_at_most_and_a_new_run_holds_it_again(qapp) -> None:
    clock = Clock()
    keeper = HeapKeeper(idle_ms=2000, latest_ms=60_000, clock=clock)
    widget = QWidget()
    try:
        keeper.hold()
        keeper.release_when_idle()
        keeper.hold()  # another run started before the window was left alone
        clock.now += 30
        assert keeper.collect_if_idle() is False and gc.get_freeze_count() > 0
        keeper.release_when_idle()
        for _ in range(59):  # the mouse moves every second for a minute
            clock.now += 1
            QApplication.sendEvent(widget, QMouseEvent(QEvent.Type.MouseMove, QPointF(5, 5), QPointF(5, 5),
                                                       Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                                                       Qt.KeyboardModifier.NoModifier))
            assert keeper.collect_if_idle() is False
        clock.now += 1.5
        assert keeper.collect_if_idle() is True and gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        widget.deleteLater()
