"""When Python's full garbage collections happen while the window is open.

A full collection walks every object and holds the interpreter while it does: the window stops for as
long (0.1 s and more once a 10,000-record run's records are in memory). While a run lasts, what exists is
set aside from those passes (``gc.freeze``, at the start and at every second's tick), and no full pass is
made at all. When the last run ends, all of it is handed back to the collector and collected in one
pass, but only once the mouse has been left alone (not moved, no button held) for a moment, or at the
latest after a minute: the pause then falls where nobody feels it, not in the middle of scrolling the
table the run just filled. The mouse is looked at every quarter second, not watched through an event
filter: a Python filter on the whole app sees every event, and the first time it does, PySide sets up 86
enum types, itself a 0.1 s pause.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QCursor, QGuiApplication

IDLE_MS = 2000  # the mouse left alone this long: the collection may run
LATEST_MS = 60_000  # after the last run ended, it runs by then in any case (frozen garbage is kept meanwhile)
LOOK_MS = 250  # how often the mouse is looked at while a collection waits
NO_FULL_PASS = 1_000_000  # young collections before a full one while runs last: never, in practice


def _mouse() -> Any:
    """Where the mouse is and whether a button is held: what changes while someone uses the window."""
    return QCursor.pos().toTuple(), QGuiApplication.mouseButtons() != Qt.MouseButton.NoButton


class HeapKeeper(QObject):
    def __init__(self, parent: QObject | None = None, *, idle_ms: int = IDLE_MS, latest_ms: int = LATEST_MS,
                 clock: Callable[[], float] = time.monotonic, mouse: Callable[[], Any] = _mouse) -> None:
        super().__init__(parent)
        self._idle_ms, self._latest_ms, self._clock, self._mouse = idle_ms, latest_ms, clock, mouse
        self._holding = False  # a run is going
        self._waiting_since: float | None = None  # the last run ended then; not collected yet
        self._last_input = clock()
        self._last_mouse: Any = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.collect_if_idle)
        self.collections = 0  # how many times the set-aside heap was handed back and collected
        self._thresholds: tuple[int, int, int] | None = None  # the collector's own, while they are changed

    def hold(self) -> None:
        """A run starts or goes on: set aside what exists now, and make no full pass until it is handed
        back (what the run keeps between two ticks would otherwise be walked: 30-60 ms of a 10,000-record
        run, several times). Young objects are still collected as usual."""
        if self._thresholds is None:
            self._thresholds = gc.get_threshold()
            gc.set_threshold(self._thresholds[0], self._thresholds[1], NO_FULL_PASS)
        self._holding = True
        self._timer.stop()
        gc.freeze()

    def release_when_idle(self) -> None:
        """The last run has ended: hand everything back once the window is left alone."""
        self._holding = False
        self._waiting_since = self._clock()
        self._last_input = self._clock()
        self._last_mouse = self._mouse()
        self._timer.start(LOOK_MS)

    def collect_if_idle(self) -> bool:
        """Hand back and collect now if nobody has touched the window for a while (or it has waited long
        enough); otherwise look again later. True if it collected."""
        if self._holding or self._waiting_since is None:
            return False
        now = self._clock()
        mouse = self._mouse()
        if mouse != self._last_mouse or mouse[1]:  # moved, or a button held (dragging, scrolling by the bar)
            self._last_mouse, self._last_input = mouse, now
        quiet_ms = (now - self._last_input) * 1000
        waited_ms = (now - self._waiting_since) * 1000
        if quiet_ms < self._idle_ms and waited_ms < self._latest_ms:
            self._timer.start(LOOK_MS)
            return False
        self._waiting_since = None
        gc.unfreeze()  # collected as usual again: a cycle made before or during the run is not kept
        gc.collect()
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
        self.collections += 1
        return True
